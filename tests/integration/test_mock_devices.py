"""kontist-mock: device creation, verification, challenges and GraphQL."""

import time

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from kt_crypto import jwt_claims, make_key, public_key_hex, sign_hex

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


@pytest.fixture
def token(mock):
    return mock.password_grant()["access_token"]


def create_device(mock, token, key, name="device"):
    mock.request_binding(token, name)
    status, _, body = mock.api("POST", "/api/user/devices", token=token,
                               json={"name": name, "key": public_key_hex(key)})
    assert status == 201, body
    return body["deviceId"], body["challengeId"]


def verify_device(mock, token, device_id, challenge_id, signature):
    return mock.api("POST", f"/api/user/devices/{device_id}/verify", token=token,
                    json={"challengeId": challenge_id, "signature": signature})


def new_challenge(mock, token, device_id):
    status, _, body = mock.api("POST", f"/api/user/devices/{device_id}/challenges", token=token)
    assert status == 201, body
    return body


def verify_challenge(mock, token, device_id, challenge_id, signature):
    return mock.api("POST",
                    f"/api/user/devices/{device_id}/challenges/{challenge_id}/verify",
                    token=token, json={"signature": signature})


VALID_KEY = public_key_hex(make_key())
BAD_KEYS = {
    "short": VALID_KEY[:-2],
    "long": VALID_KEY + "00",
    "compressed": "02" + VALID_KEY[2:66],
    "not-hex": "zz" + VALID_KEY[2:],
    "zero-point": "04" + "00" * 64,
    "off-curve": "04" + VALID_KEY[2:-1] + ("1" if VALID_KEY[-1] != "1" else "2"),
    "empty": "",
    "number": 42,
    "missing": None,
}


def test_create_device_rejects_bad_keys(mock, token):
    for name, key in BAD_KEYS.items():
        status, _, body = mock.api("POST", "/api/user/devices", token=token,
                                   json={"name": "x", "key": key})
        assert (status, body["error"]) == (400, "invalid_key"), name
    assert mock.sms() == [] and mock.state()["devices"] == []


def test_create_device_accepts_upper_case_hex(mock, token):
    mock.request_binding(token)
    status, _, _ = mock.api("POST", "/api/user/devices", token=token,
                            json={"name": "x", "key": VALID_KEY.upper()})
    assert status == 201


def test_create_device_body_errors(mock, token):
    assert mock.api("POST", "/api/user/devices", token=token,
                    json={"key": VALID_KEY})[2]["error"] == "invalid_name"
    status, _, _ = mock.api("POST", "/api/user/devices", token=token,
                            body='{"name":"x","key":"%s"}' % VALID_KEY,
                            headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _, body = mock.api("POST", "/api/user/devices", token=token, body="{not json",
                               headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (400, "invalid_json")
    assert mock.api("POST", "/api/user/devices", token=token)[0] == 400
    assert mock.api("POST", "/api/user/devices", json={"name": "x", "key": VALID_KEY})[0] == 401


BAD_SIGNATURES = {
    "other-key": lambda key, text: sign_hex(make_key(), text),
    "other-text": lambda key, text: sign_hex(key, text + "0"),
    "not-hex": lambda key, text: "zz" + sign_hex(key, text)[2:],
    "odd-length": lambda key, text: sign_hex(key, text)[:-1],
    "not-der": lambda key, text: "00" * 70,
    "empty": lambda key, text: "",
}


def test_bad_otp_signature_refused(mock, token):
    for name, bad in BAD_SIGNATURES.items():
        key = make_key()
        device_id, challenge_id = create_device(mock, token, key)
        status, _, body = verify_device(mock, token, device_id, challenge_id,
                                        bad(key, mock.last_otp(device_id)))
        assert (status, body["error"]) == (400, "invalid_signature"), name
        status, _, body = mock.api("POST", f"/api/user/devices/{device_id}/challenges",
                                   token=token)
        assert (status, body["error"]) == (400, "device_not_verified"), name
    assert not any(d["verified"] for d in mock.state()["devices"])


def test_bad_challenge_signature_refused(mock, token):
    device_id, key = mock.enroll_device(token=token)
    for name, bad in BAD_SIGNATURES.items():
        challenge = new_challenge(mock, token, device_id)
        status, _, body = verify_challenge(mock, token, device_id, challenge["id"],
                                           bad(key, challenge["stringToSign"]))
        assert (status, body["error"]) == (400, "invalid_signature"), name
        assert "token" not in body


def test_failed_attempt_uses_up_the_otp(mock, token):
    key = make_key()
    device_id, challenge_id = create_device(mock, token, key)
    status, _, body = verify_device(mock, token, device_id, challenge_id,
                                    sign_hex(make_key(), mock.last_otp()))
    assert (status, body["error"]) == (400, "invalid_signature")
    status, _, body = verify_device(mock, token, device_id, challenge_id,
                                    sign_hex(key, mock.last_otp()))
    assert (status, body["error"]) == (400, "challenge_used")


def test_otp_works_once(mock, token):
    key = make_key()
    device_id, challenge_id = create_device(mock, token, key)
    signature = sign_hex(key, mock.last_otp())
    assert verify_device(mock, token, device_id, challenge_id, signature)[0] == 204
    status, _, body = verify_device(mock, token, device_id, challenge_id, signature)
    assert status == 400


def test_verify_device_with_wrong_challenge_id(mock, token):
    key = make_key()
    device_id, _ = create_device(mock, token, key)
    status, _, body = verify_device(mock, token, device_id, "not-the-challenge",
                                    sign_hex(key, mock.last_otp()))
    assert (status, body["error"]) == (400, "unknown_challenge")


def test_challenge_works_once(mock, token):
    device_id, key = mock.enroll_device(token=token)
    challenge = new_challenge(mock, token, device_id)
    signature = sign_hex(key, challenge["stringToSign"])
    status, _, body = verify_challenge(mock, token, device_id, challenge["id"], signature)
    assert status == 200 and "cnf" in jwt_claims(body["token"])
    status, _, body = verify_challenge(mock, token, device_id, challenge["id"], signature)
    assert (status, body["error"]) == (400, "challenge_used")
    assert "token" not in body


def test_fresh_challenge_after_a_failed_one(mock, token):
    device_id, key = mock.enroll_device(token=token)
    challenge = new_challenge(mock, token, device_id)
    signature = sign_hex(key, challenge["stringToSign"])
    assert verify_challenge(mock, token, device_id, challenge["id"], "00")[0] == 400
    status, _, body = verify_challenge(mock, token, device_id, challenge["id"], signature)
    assert (status, body["error"]) == (400, "challenge_used")
    challenge = new_challenge(mock, token, device_id)
    status, _, _ = verify_challenge(mock, token, device_id, challenge["id"],
                                    sign_hex(key, challenge["stringToSign"]))
    assert status == 200


def test_challenges_are_unique(mock, token):
    device_id, _ = mock.enroll_device(token=token)
    first, second = (new_challenge(mock, token, device_id) for _ in range(2))
    assert first["id"] != second["id"]
    assert first["stringToSign"] != second["stringToSign"]


def test_challenge_and_otp_expire(mock_factory):
    # enrolling verifies an OTP within the lifetime: long enough for a loaded machine
    lifetime = 3
    mock = mock_factory(challenge_lifetime=lifetime)
    token = mock.password_grant()["access_token"]
    device_id, key = mock.enroll_device(token=token)
    challenge = new_challenge(mock, token, device_id)
    late_key = make_key()
    late_device, late_challenge = create_device(mock, token, late_key)
    time.sleep(lifetime + 0.1)  # counted from after both challenges were made
    status, _, body = verify_challenge(mock, token, device_id, challenge["id"],
                                       sign_hex(key, challenge["stringToSign"]))
    assert (status, body["error"]) == (400, "challenge_expired")
    status, _, body = verify_device(mock, token, late_device, late_challenge,
                                    sign_hex(late_key, mock.last_otp(late_device)))
    assert (status, body["error"]) == (400, "challenge_expired")


def test_unknown_device_and_challenge(mock, token):
    device_id, key = mock.enroll_device(token=token)
    assert mock.api("POST", "/api/user/devices/nope/challenges", token=token)[0] == 404
    assert verify_challenge(mock, token, device_id, "nope", "00")[0] == 404
    assert verify_device(mock, token, "nope", "nope", "00")[0] == 404


def test_devices_of_another_user_are_not_found(mock_factory):
    users = {"users": [{"username": "a@example.com", "password": "password-a"},
                       {"username": "b@example.com", "password": "password-b"}],
             "clients": [{"client_id": "c", "client_secret": "s",
                          "grants": ["password"], "scopes": ["users"]}]}
    mock = mock_factory(users=users)
    token_a = mock.password_grant("users", "a@example.com", "password-a", ("c", "s"))
    token_b = mock.password_grant("users", "b@example.com", "password-b", ("c", "s"))
    device_id, key = mock.enroll_device(token=token_a["access_token"])
    other = token_b["access_token"]
    assert mock.api("POST", f"/api/user/devices/{device_id}/challenges", token=other)[0] == 404
    status, _, body = mock.api("POST", "/api/graphql", token=other,
                               json={"query": "{ listBoundDevices { id name } }"})
    assert body == {"data": {"listBoundDevices": []}}
    status, _, body = mock.api("POST", "/api/graphql", token=other, json={
        "query": f'mutation {{ deleteBoundDevice(deviceId: "{device_id}") }}'})
    assert body["errors"] and not body["data"]
    assert len(mock.state()["devices"]) == 1


def graphql(mock, token, query, variables=None):
    payload = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return mock.api("POST", "/api/graphql", token=token, json=payload)


def test_graphql_list_and_delete(mock, token):
    first, _ = mock.enroll_device(name="first", token=token)
    second, key = mock.enroll_device(name="second", token=token)
    create_device(mock, token, make_key(), name="never verified")

    status, _, body = graphql(mock, token, "{ listBoundDevices { id name } }")
    assert status == 200
    assert body == {"data": {"listBoundDevices": [{"id": first, "name": "first"},
                                                  {"id": second, "name": "second"}]}}

    confirmed = mock.confirm(token, second, key)
    status, _, body = graphql(mock, token,
                              f'mutation {{ deleteBoundDevice(deviceId: "{second}") }}')
    assert body == {"data": {"deleteBoundDevice": True}}
    status, _, body = graphql(mock, token, "mutation Remove($id: String!) "
                              "{ deleteBoundDevice(deviceId: $id) }", {"id": first})
    assert body == {"data": {"deleteBoundDevice": True}}
    assert graphql(mock, token, "{ listBoundDevices { id } }")[2] == \
        {"data": {"listBoundDevices": []}}

    # gone: no more challenges, and its confirmed refresh token is revoked
    assert mock.api("POST", f"/api/user/devices/{second}/challenges", token=token)[0] == 404
    status, _, body = mock.api("POST", "/api/oauth/token",
                               basic=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
                               form={"grant_type": "refresh_token",
                                     "refresh_token": confirmed["refresh_token"]})
    assert (status, body["error"]) == (400, "invalid_grant")
    status, _, body = graphql(mock, token,
                              f'mutation {{ deleteBoundDevice(deviceId: "{second}") }}')
    assert status == 200 and body["errors"] and body["data"] is None


def test_graphql_errors(mock, token):
    for query in ("{ somethingElse { id } }", "{ listBoundDevices { id secret } }",
                  "mutation { dropEverything }"):
        status, _, body = graphql(mock, token, query)
        assert status == 400 and body["errors"], query
    assert mock.api("POST", "/api/graphql", token=token, json={"nothing": 1})[0] == 400
    assert mock.api("POST", "/api/graphql",
                    json={"query": "{ listBoundDevices { id } }"})[0] == 401
