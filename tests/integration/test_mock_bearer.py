"""kontist-mock: bearer token checks and the confirmed-token gate."""

import base64
import json
import time

import pytest

from conftest import DEMO_USER
from kt_crypto import jwt_claims

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")
BEARER_ENDPOINTS = [("GET", "/api/user"), ("GET", "/api/accounts"),
                    ("POST", "/api/user/devices"), ("POST", "/api/user/mfa/challenges"),
                    ("GET", "/api/user/mfa/challenges/x"), ("POST", "/api/graphql")]


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def assert_401(answer):
    status, headers, body = answer
    assert status == 401, body
    assert body["error"] == "invalid_token"
    assert headers["WWW-Authenticate"].startswith("Bearer ")
    return body


def test_missing_token(mock):
    for method, path in BEARER_ENDPOINTS:
        assert_401(mock.api(method, path, json={} if method == "POST" else None))


def test_forged_and_malformed_tokens(mock):
    real = mock.password_grant()["access_token"]
    header, payload, signature = real.split(".")
    claims = jwt_claims(real)
    confirmed_claims = dict(claims, cnf={"kid": "forged-device"})
    forged = [
        f"{header}.{b64(confirmed_claims)}.{signature}",         # claims changed
        f"{header}.{payload}.{signature[:-4]}AAAA",              # signature changed
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(confirmed_claims)}.",
        f"{header}.{payload}",
        "not-a-jwt",
        "a.b.c",
    ]
    for token in forged:
        assert_401(mock.api("GET", "/api/user", token=token))
    for value in ("Basic " + real, real, "Bearer", "Bearer    "):
        assert_401(mock.api("GET", "/api/user", headers={"Authorization": value}))
    # the real one works, also with the scheme in lower case
    assert mock.api("GET", "/api/user", headers={"Authorization": "bearer " + real})[0] == 200


def test_expired_token(mock_factory):
    # exp is whole seconds: at least 2 s left for the grant and the first call, however loaded
    mock = mock_factory(token_lifetime=3)
    grant = mock.password_grant()
    assert grant["expires_in"] == 3
    token = grant["access_token"]
    status, _, body = mock.api("GET", "/api/user", token=token)
    assert (status, body) == (200, {"email": DEMO_USER})
    time.sleep(max(0.0, jwt_claims(token)["exp"] - time.time()) + 0.05)
    body = assert_401(mock.api("GET", "/api/user", token=token))
    assert "expired" in body["message"]


def test_zero_lifetime_token_is_expired_at_once(mock_factory):
    mock = mock_factory(token_lifetime=0)
    grant = mock.password_grant()
    assert grant["expires_in"] == 0
    assert_401(mock.api("GET", "/api/user", token=grant["access_token"]))


def test_tokens_from_another_mock_are_forged(mock_factory):
    one, two = mock_factory(), mock_factory()
    assert_401(two.api("GET", "/api/user", token=one.password_grant()["access_token"]))


def test_unconfirmed_token_refused_on_accounts(mock):
    token = mock.password_grant()["access_token"]
    status, headers, body = mock.api("GET", "/api/accounts", token=token)
    assert status == 403
    assert headers["Content-Type"] == "application/json"
    assert body["error"] == "mfa_required"
    device_id, key = mock.enroll_device(token=token)
    confirmed = mock.confirm(token, device_id, key)["token"]
    status, _, body = mock.api("GET", "/api/accounts", token=confirmed)
    assert status == 200 and body["accounts"][0]["currency"] == "EUR"


def test_user_endpoint(mock):
    status, headers, body = mock.api("GET", "/api/user",
                                     token=mock.password_grant()["access_token"])
    assert (status, body) == (200, {"email": DEMO_USER})
    assert headers["Content-Type"] == "application/json"
