"""kontist-mock: POST /api/oauth/token, every answer of the contract."""

import time
from urllib.parse import quote

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")
CLIENT = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
TOKEN = "/api/oauth/token"


def password_form(**overrides):
    form = {"grant_type": "password", "username": DEMO_USER, "password": DEMO_PASSWORD,
            "scope": "offline users"}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def assert_oauth_error(answer, status, error):
    got_status, headers, body = answer
    assert (got_status, body["error"]) == (status, error), body
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    return headers, body


def test_password_grant_body_credentials(mock):
    status, _, body = mock.api("POST", TOKEN, form=password_form(
        client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET))
    assert status == 200 and body["access_token"]


def test_username_is_case_insensitive(mock):
    status, _, _ = mock.api("POST", TOKEN, basic=CLIENT,
                            form=password_form(username=DEMO_USER.upper()))
    assert status == 200


def test_invalid_client_basic(mock):
    for basic in ((DEMO_CLIENT_ID, "wrong"), ("no-such-client", "x"), "no-colon",
                  ("kontist-public", "a-secret-it-does-not-have")):
        headers, _ = assert_oauth_error(
            mock.api("POST", TOKEN, basic=basic, form=password_form()), 401, "invalid_client")
        assert headers["WWW-Authenticate"].startswith("Basic ")
    headers, _ = assert_oauth_error(
        mock.api("POST", TOKEN, headers={"Authorization": "Basic !!notbase64"},
                 form=password_form()), 401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic ")


def test_invalid_client_body(mock):
    for creds in ({"client_id": DEMO_CLIENT_ID, "client_secret": "wrong"},
                  {"client_id": DEMO_CLIENT_ID},
                  {"client_id": "no-such-client", "client_secret": "x"}):
        headers, _ = assert_oauth_error(
            mock.api("POST", TOKEN, form=password_form(**creds)), 401, "invalid_client")
        assert headers["WWW-Authenticate"] is None


def test_no_client_authentication(mock):
    headers, _ = assert_oauth_error(mock.api("POST", TOKEN, form=password_form()),
                                    401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic ")


def test_two_client_authentication_methods(mock):
    assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, form=password_form(
        client_secret=DEMO_CLIENT_SECRET)), 400, "invalid_request")


def test_invalid_grant(mock):
    for form in (password_form(password="wrong-password"),
                 password_form(username="nobody@example.com")):
        _, body = assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, form=form),
                                     400, "invalid_grant")
        assert body["error_description"]


def test_unsupported_grant_type(mock):
    for grant in ("client_credentials", "authorization_code", "urn:x"):
        assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT,
                                    form=password_form(grant_type=grant)),
                           400, "unsupported_grant_type")


def test_invalid_scope(mock_factory):
    users = {"users": [{"username": DEMO_USER, "password": DEMO_PASSWORD}],
             "clients": [{"client_id": "narrow", "client_secret": "s",
                          "grants": ["password"], "scopes": ["users", "offline"]}]}
    mock = mock_factory(users=users)
    for scope in ("users nonsense", "accounts", "", "   ", None):
        assert_oauth_error(mock.api("POST", TOKEN, basic=("narrow", "s"),
                                    form=password_form(scope=scope)), 400, "invalid_scope")
    status, _, body = mock.api("POST", TOKEN, basic=("narrow", "s"),
                               form=password_form(scope="users"))
    assert status == 200 and body["scope"] == "users"


def test_grant_not_allowed_for_client(mock_factory):
    users = {"users": [{"username": DEMO_USER, "password": DEMO_PASSWORD}],
             "clients": [{"client_id": "pw-only", "client_secret": "s",
                          "grants": ["password"], "scopes": ["users", "offline"]}]}
    mock = mock_factory(users=users)
    refresh_token = mock.password_grant("offline users", client=("pw-only", "s"))["refresh_token"]
    assert_oauth_error(mock.api("POST", TOKEN, basic=("pw-only", "s"), form={
        "grant_type": "refresh_token", "refresh_token": refresh_token}),
        400, "unauthorized_client")


def test_invalid_request(mock):
    for form in (password_form(username=None), password_form(password=None),
                 password_form(password=""), password_form(grant_type=None),
                 {"grant_type": "refresh_token"},
                 [("grant_type", "password"), ("username", DEMO_USER),
                  ("password", DEMO_PASSWORD), ("scope", "users"), ("scope", "offline")]):
        assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, form=form),
                           400, "invalid_request")


def test_non_form_content_type(mock):
    assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, json=password_form()),
                       400, "invalid_request")
    assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, body="grant_type=password",
                                headers={"Content-Type": "text/plain"}),
                       400, "invalid_request")


def test_form_content_type_with_charset(mock):
    status, _, _ = mock.api(
        "POST", TOKEN, basic=CLIENT,
        body=f"grant_type=password&username={quote(DEMO_USER)}&password={quote(DEMO_PASSWORD)}"
             "&scope=offline+users",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
    assert status == 200


def test_refresh_token_only_with_offline(mock):
    status, _, body = mock.api("POST", TOKEN, basic=CLIENT,
                               form=password_form(scope="accounts users"))
    assert status == 200
    assert "refresh_token" not in body and body["scope"] == "accounts users"
    status, _, body = mock.api("POST", TOKEN, basic=CLIENT, form=password_form())
    assert status == 200 and body["refresh_token"]


def test_refresh_errors(mock):
    refresh_token = mock.password_grant()["refresh_token"]
    assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, form={
        "grant_type": "refresh_token", "refresh_token": "not-a-refresh-token"}),
        400, "invalid_grant")
    assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, form={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "scope": "transfers"}),
        400, "invalid_scope")
    # narrowing is allowed
    status, _, body = mock.api("POST", TOKEN, basic=CLIENT, form={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "scope": "users"})
    assert status == 200 and body["scope"] == "users"


def test_expired_refresh_token(mock_factory):
    lifetime = 3  # long enough for the grant and a refresh on a loaded machine
    mock = mock_factory(refresh_lifetime=lifetime)
    refresh_token = mock.password_grant()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    assert mock.api("POST", TOKEN, basic=CLIENT, form=form)[0] == 200
    time.sleep(lifetime + 0.1)  # counted from after the token was issued
    assert_oauth_error(mock.api("POST", TOKEN, basic=CLIENT, form=form), 400, "invalid_grant")


def test_token_endpoint_only_takes_post(mock):
    status, headers, body = mock.api("GET", TOKEN, basic=CLIENT)
    assert status == 405 and headers["Allow"] == "POST"
