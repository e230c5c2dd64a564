"""kontist-mock: requests.jsonl and sms.jsonl."""

import json
import re

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER
from kt_crypto import make_key, public_key_hex, sign_hex

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def test_keep_alive_shares_one_connection(mock):
    conn = mock.connect()
    try:
        token = None
        for _ in range(2):
            status, headers, body = mock.api("POST", "/api/oauth/token", conn=conn,
                                             basic=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
                                             form={"grant_type": "password",
                                                   "username": DEMO_USER,
                                                   "password": DEMO_PASSWORD,
                                                   "scope": "users"})
            assert status == 200 and headers["Connection"] is None
            token = body["access_token"]
        assert mock.api("GET", "/api/user", token=token, conn=conn)[0] == 200
        assert mock.api("GET", "/api/nowhere", conn=conn)[0] == 404
        assert mock.api("GET", "/api/accounts", token=token, conn=conn)[0] == 403
    finally:
        conn.close()
    mock.api("GET", "/api/user", token=token)
    log = mock.requests()
    assert len(log) == 6
    assert len({entry["conn"] for entry in log[:5]}) == 1
    assert log[5]["conn"] != log[0]["conn"]
    assert all(isinstance(entry["conn"], int) for entry in log)


def test_connection_close_is_honoured(mock):
    conn = mock.connect()
    try:
        status, headers, _ = mock.api("GET", "/api/user", conn=conn,
                                      headers={"Connection": "close"})
        assert status == 401 and headers["Connection"] == "close"
    finally:
        conn.close()


def test_log_fields(mock):
    grant = mock.password_grant()
    mock.api("GET", "/api/user", token=grant["access_token"])
    mock.api("POST", "/api/oauth/token", basic=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
             form={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
    mock.api("GET", "/api/missing?secret=1")
    token_req, user_req, refresh_req, missing = mock.requests()
    assert set(token_req) == {"time", "conn", "method", "path", "status", "endpoint",
                              "faults", "headers", "body_keys", "grant_type"}
    assert token_req["method"] == "POST" and token_req["path"] == "/api/oauth/token"
    assert token_req["status"] == 200 and token_req["endpoint"] == "token"
    assert token_req["grant_type"] == "password"
    assert token_req["body_keys"] == ["grant_type", "username", "password", "scope"]
    assert token_req["headers"]["authorization"] == "Basic ***"
    assert token_req["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert token_req["headers"]["accept"] == "application/json"
    assert token_req["time"].endswith("Z")
    assert user_req["headers"]["authorization"] == "Bearer ***"
    assert user_req["endpoint"] == "user" and "grant_type" not in user_req
    assert refresh_req["grant_type"] == "refresh_token"
    assert refresh_req["body_keys"] == ["grant_type", "refresh_token"]
    assert missing["path"] == "/api/missing" and missing["status"] == 404
    assert missing["endpoint"] is None
    assert mock.requests("user") == [user_req]


def test_secrets_never_logged(mock):
    grant = mock.password_grant()
    token = grant["access_token"]
    key = make_key()
    mock.request_binding(token)
    status, _, created = mock.api("POST", "/api/user/devices", token=token,
                                  json={"name": "laptop", "key": public_key_hex(key)})
    otp = mock.last_otp()
    otp_signature = sign_hex(key, otp)
    mock.api("POST", f"/api/user/devices/{created['deviceId']}/verify", token=token,
             json={"challengeId": created["challengeId"], "signature": otp_signature})
    _, _, challenge = mock.api("POST", f"/api/user/devices/{created['deviceId']}/challenges",
                               token=token)
    challenge_signature = sign_hex(key, challenge["stringToSign"])
    _, _, confirmed = mock.api(
        "POST", f"/api/user/devices/{created['deviceId']}/challenges/{challenge['id']}/verify",
        token=token, json={"signature": challenge_signature})
    mock.api("GET", "/api/accounts", token=confirmed["token"])
    mock.api("POST", "/api/oauth/token", form={
        "grant_type": "refresh_token", "refresh_token": confirmed["refresh_token"],
        "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET})
    mock.api("GET", "/api/user", headers={"Authorization": token})   # scheme forgotten

    text = (mock.state_dir / "requests.jsonl").read_text()
    assert len(text.splitlines()) == 9
    for secret in (DEMO_PASSWORD, DEMO_CLIENT_SECRET, token, grant["refresh_token"],
                   confirmed["token"], confirmed["refresh_token"], otp_signature,
                   challenge_signature, challenge["stringToSign"]):
        assert secret not in text
    # the OTP is six digits; search the log without the paths (which hold UUIDs)
    for line in text.splitlines():
        entry = json.loads(line)
        entry.pop("path")
        assert otp not in json.dumps(entry)
    assert '"authorization":"***"' in text
    verify = mock.requests("device_verify")[0]
    assert verify["body_keys"] == ["challengeId", "signature"]


def test_sms_log(mock):
    token = mock.password_grant()["access_token"]
    device_ids = [mock.enroll_device(token=token)[0] for _ in range(2)]
    messages = mock.sms()
    assert [m["device_id"] for m in messages] == device_ids
    for message in messages:
        assert {"time", "username", "device_id", "challenge_id", "otp"} <= set(message)
        assert message["username"] == DEMO_USER
        assert re.fullmatch(r"\d{6}", message["otp"])
        assert message["time"].endswith("Z")
    assert messages[0]["challenge_id"] != messages[1]["challenge_id"]
    assert mock.last_otp(device_ids[0]) == messages[0]["otp"]


def test_a_line_being_written_is_not_read_yet(mock):
    """Tests read the log while the mock writes it: a line without its newline is one still being
    written, left out until it is whole (not read as broken JSON)."""
    mock.api("GET", "/api/user")
    assert len(mock.requests()) == 1
    path = mock.state_dir / "requests.jsonl"
    whole = path.read_text().splitlines()[0] + "\n"
    with open(path, "a") as f:
        f.write(whole[:len(whole) // 2])
        f.flush()
        assert len(mock.requests()) == 1
        f.write(whole[len(whole) // 2:])
    assert len(mock.requests()) == 2
