"""kontist-mock: the device-binding and push-MFA flows, driven over HTTP only."""

import re
import time

import pytest

from conftest import (DEFAULT_SCOPE, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER,
                      PUBLIC_CLIENT_ID)
from kt_crypto import jwt_claims, make_key, public_key_hex, sign_hex, verify_hex

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")
CLIENT = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)


def password_grant(mock, scope=DEFAULT_SCOPE):
    return mock.api("POST", "/api/oauth/token", basic=CLIENT, form={
        "grant_type": "password", "username": DEMO_USER, "password": DEMO_PASSWORD,
        "scope": scope})


def refresh(mock, refresh_token):
    return mock.api("POST", "/api/oauth/token", basic=CLIENT, form={
        "grant_type": "refresh_token", "refresh_token": refresh_token})


@pytest.mark.parametrize("rotate", [False, True], ids=["no-rotation", "rotation"])
def test_whole_device_binding_flow(mock_factory, rotate):
    mock = mock_factory(rotate_refresh=rotate)

    # 1. password grant with offline: an unconfirmed token pair
    before = time.time()
    status, headers, grant = password_grant(mock)
    after = time.time()
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert grant["token_type"] == "Bearer"
    assert grant["expires_in"] == 3599
    assert grant["scope"] == DEFAULT_SCOPE
    assert grant["refresh_token"]
    access = grant["access_token"]
    claims = jwt_claims(access)
    assert claims["sub"] == DEMO_USER
    assert claims["client_id"] == DEMO_CLIENT_ID
    assert claims["scope"] == DEFAULT_SCOPE
    assert "cnf" not in claims
    # issued now (whole seconds), valid for the advertised 3599 s
    assert before - 1 <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == 3599
    assert claims["jti"]

    # the banking API wants a confirmed token
    assert mock.api("GET", "/api/accounts", token=access)[0] == 403

    # 2. a device binding request, which the person confirms (in the app, or by email)
    binding = mock.request_binding(access, "laptop", confirm=False)
    assert binding["confirmedAt"] is None
    assert [b["id"] for b in mock.state()["binding_requests"]] == [binding["id"]]
    mock.answer_binding(binding["id"], "CONFIRMED")
    assert mock.state()["binding_requests"] == []

    # 3. create a device with our key; the OTP arrives by "SMS"
    key = make_key()
    status, _, created = mock.api("POST", "/api/user/devices", token=access,
                                  json={"name": "laptop", "key": public_key_hex(key)})
    assert status == 201
    device_id, challenge_id = created["deviceId"], created["challengeId"]
    [sms] = mock.sms()
    assert sms["username"] == DEMO_USER
    assert sms["device_id"] == device_id
    assert sms["challenge_id"] == challenge_id
    assert re.fullmatch(r"\d{6}", sms["otp"])
    assert mock.last_otp() == sms["otp"]

    # 4. verify the device with the signed OTP
    status, _, body = mock.api("POST", f"/api/user/devices/{device_id}/verify", token=access,
                               json={"challengeId": challenge_id,
                                     "signature": sign_hex(key, sms["otp"])})
    assert (status, body) == (204, None)
    [device] = mock.state()["devices"]
    assert device["id"] == device_id and device["verified"] is True
    assert device["key"] == public_key_hex(key)

    # 5. device challenge, signed
    status, _, challenge = mock.api("POST", f"/api/user/devices/{device_id}/challenges",
                                    token=access)
    assert status == 201
    assert set(challenge) == {"id", "stringToSign"}
    signature = sign_hex(key, challenge["stringToSign"])
    assert verify_hex(public_key_hex(key), challenge["stringToSign"], signature)
    status, _, confirmed = mock.api(
        "POST", f"/api/user/devices/{device_id}/challenges/{challenge['id']}/verify",
        token=access, json={"signature": signature})
    assert status == 200
    assert set(confirmed) == {"token", "refresh_token"}

    # 6. the confirmed token carries cnf and opens the banking API; the refresh tokens are
    # JWTs as well, with cnf once confirmed
    claims = jwt_claims(confirmed["token"])
    assert claims["cnf"] == {"kid": device_id}
    refresh_claims = jwt_claims(confirmed["refresh_token"])
    assert refresh_claims["cnf"] == {"kid": device_id}
    assert {"sub", "scope", "client_id", "iat", "exp"} <= set(refresh_claims)
    assert refresh_claims["sub"] == DEMO_USER and refresh_claims["client_id"] == DEMO_CLIENT_ID
    assert "cnf" not in jwt_claims(grant["refresh_token"])
    # a refresh token is no access token
    assert mock.api("GET", "/api/user", token=confirmed["refresh_token"])[0] == 401
    assert claims["sub"] == DEMO_USER and claims["scope"] == DEFAULT_SCOPE
    status, _, accounts = mock.api("GET", "/api/accounts", token=confirmed["token"])
    assert status == 200 and accounts["accounts"][0]["iban"]

    # 7. the confirmed refresh token renews confirmed access tokens
    first_refresh = confirmed["refresh_token"]
    status, _, renewed = refresh(mock, first_refresh)
    assert status == 200
    assert jwt_claims(renewed["access_token"])["cnf"] == {"kid": device_id}
    assert renewed["access_token"] != confirmed["token"]
    assert mock.api("GET", "/api/accounts", token=renewed["access_token"])[0] == 200
    if rotate:
        new_refresh = renewed["refresh_token"]
        assert new_refresh != first_refresh
        status, _, error = refresh(mock, first_refresh)
        assert (status, error["error"]) == (400, "invalid_grant")
        status, _, again = refresh(mock, new_refresh)
        assert status == 200
        assert jwt_claims(again["access_token"])["cnf"] == {"kid": device_id}
        assert again["refresh_token"] not in (first_refresh, new_refresh)
    else:
        assert "refresh_token" not in renewed
        status, _, again = refresh(mock, first_refresh)
        assert status == 200 and "refresh_token" not in again
        assert jwt_claims(again["access_token"])["cnf"] == {"kid": device_id}

    # the unconfirmed refresh token still gives only unconfirmed tokens
    status, _, plain = refresh(mock, grant["refresh_token"])
    assert status == 200 and "cnf" not in jwt_claims(plain["access_token"])


def test_confirmed_tokens_without_offline_have_no_refresh_token(mock):
    token = mock.password_grant(scope="accounts users")["access_token"]
    device_id, key = mock.enroll_device(token=token)
    confirmed = mock.confirm(token, device_id, key)
    assert set(confirmed) == {"token"}
    assert jwt_claims(confirmed["token"])["cnf"] == {"kid": device_id}


def test_factory_helpers_enroll_and_confirm(mock):
    device_id, key = mock.enroll_device(name="helper")
    token = mock.password_grant()["access_token"]
    confirmed = mock.confirm(token, device_id, key)
    assert jwt_claims(confirmed["token"])["cnf"]["kid"] == device_id
    assert [d["name"] for d in mock.state()["devices"]] == ["helper"]


def test_public_client_with_empty_secret(mock):
    for basic in ((PUBLIC_CLIENT_ID, ""), None):
        form = {"grant_type": "password", "username": DEMO_USER, "password": DEMO_PASSWORD,
                "scope": "offline users"}
        if basic is None:
            form["client_id"] = PUBLIC_CLIENT_ID
        status, _, body = mock.api("POST", "/api/oauth/token", basic=basic, form=form)
        assert status == 200, body
        assert jwt_claims(body["access_token"])["client_id"] == PUBLIC_CLIENT_ID
    # a refresh token is bound to the client it was issued to
    status, _, body = refresh(mock, body["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


def push_mfa(mock, token):
    status, _, challenge = mock.api("POST", "/api/user/mfa/challenges", token=token)
    assert status == 201
    return challenge


def test_push_mfa_approved(mock):
    token = mock.password_grant()["access_token"]
    challenge = push_mfa(mock, token)
    assert challenge["status"] == "PENDING"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", challenge["expiresAt"])
    path = f"/api/user/mfa/challenges/{challenge['id']}"

    assert mock.api("GET", path, token=token)[2]["status"] == "PENDING"
    status, _, body = mock.api("POST", path + "/token", token=token)
    assert (status, body["error"]) == (400, "challenge_pending")

    assert mock.mfa(challenge["id"], "VERIFIED")["status"] == "VERIFIED"
    assert mock.api("GET", path, token=token)[2]["status"] == "VERIFIED"
    status, _, confirmed = mock.api("POST", path + "/token", token=token)
    assert status == 200 and set(confirmed) == {"token", "refresh_token"}
    assert jwt_claims(confirmed["token"])["cnf"] == {"kid": "mfa:" + challenge["id"]}
    assert mock.api("GET", "/api/accounts", token=confirmed["token"])[0] == 200
    status, _, renewed = refresh(mock, confirmed["refresh_token"])
    assert status == 200 and "cnf" in jwt_claims(renewed["access_token"])

    # once per challenge
    status, _, body = mock.api("POST", path + "/token", token=token)
    assert (status, body["error"]) == (400, "challenge_used")


def test_push_mfa_denied(mock):
    token = mock.password_grant()["access_token"]
    challenge = push_mfa(mock, token)
    mock.mfa(challenge["id"], "DENIED")
    path = f"/api/user/mfa/challenges/{challenge['id']}"
    assert mock.api("GET", path, token=token)[2]["status"] == "DENIED"
    status, _, body = mock.api("POST", path + "/token", token=token)
    assert (status, body["error"]) == (400, "challenge_denied")


def test_push_mfa_expires(mock_factory):
    mock = mock_factory(challenge_lifetime=0.5)
    token = mock.password_grant()["access_token"]
    challenge = push_mfa(mock, token)
    mock.mfa(challenge["id"], "VERIFIED")
    time.sleep(0.6)
    status, _, body = mock.api("POST", f"/api/user/mfa/challenges/{challenge['id']}/token",
                               token=token)
    assert (status, body["error"]) == (400, "challenge_expired")


def test_push_mfa_of_another_user_is_not_found(mock_factory):
    users = {"users": [{"username": "a@example.com", "password": "password-a"},
                       {"username": "b@example.com", "password": "password-b"}],
             "clients": [{"client_id": "c", "client_secret": "s",
                          "grants": ["password"], "scopes": ["users"]}]}
    mock = mock_factory(users=users)
    tokens = [mock.password_grant("users", user, f"password-{user[0]}", ("c", "s"))
              ["access_token"] for user in ("a@example.com", "b@example.com")]
    challenge = push_mfa(mock, tokens[0])
    status, _, _ = mock.api("GET", f"/api/user/mfa/challenges/{challenge['id']}",
                            token=tokens[1])
    assert status == 404
