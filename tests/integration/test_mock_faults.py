"""kontist-mock: every fault kind, as a client sees it on the wire."""

import http.client
import json
import socket
import threading
import time

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER
from kt_crypto import jwt_claims, make_key, public_key_hex, sign_hex

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")
CLIENT = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
FORM = {"grant_type": "password", "username": DEMO_USER, "password": DEMO_PASSWORD,
        "scope": "offline users"}


def login(mock, timeout=10, conn=None):
    return mock.api("POST", "/api/oauth/token", basic=CLIENT, form=FORM, timeout=timeout,
                    conn=conn)


def connected(mock, timeout):
    """An HTTPSConnection whose TCP connect and TLS handshake are done (with a timeout a loaded
    machine cannot run out of), and whose reads from now on wait *timeout* seconds at most."""
    conn = mock.connect(timeout=10)
    conn.connect()
    conn.sock.settimeout(timeout)
    return conn


def raw_exchange(mock, request_bytes, timeout):
    """Send raw bytes over TLS; return the socket for the caller to read, each read waiting
    *timeout* seconds at most (connect and handshake have 10 s)."""
    sock = socket.create_connection((mock.host, mock.port), timeout=10)
    tls = mock.ssl_context().wrap_socket(sock, server_hostname=mock.host)
    tls.settimeout(timeout)
    tls.sendall(request_bytes)
    return tls


def test_delay(mock):
    mock.set_fault(endpoint="token", kind="delay", seconds=0.5)
    started = time.monotonic()
    status, _, body = login(mock)
    assert time.monotonic() - started >= 0.5
    assert status == 200 and body["access_token"]
    assert mock.requests()[-1]["faults"] == ["delay"]


def test_hang_times_the_client_out_without_blocking_others(mock):
    mock.set_fault(endpoint="token", kind="hang")
    conn = connected(mock, 1)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            login(mock, conn=conn)
    finally:
        conn.close()
    assert 0.9 <= time.monotonic() - started < 5
    # other endpoints and connections carry on
    assert mock.api("GET", "/api/user")[0] == 401
    entry = mock.requests("token")[-1]
    assert entry["status"] is None and entry["faults"] == ["hang"]
    # and shutdown does not wait for the hanging connection (stop() kills after 5 s: not 0)
    assert mock.stop() == 0


def test_hang_with_seconds_closes_without_answer(mock):
    mock.set_fault(endpoint="user", kind="hang", seconds=0.3)
    started = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        mock.api("GET", "/api/user", timeout=5)
    assert 0.3 <= time.monotonic() - started < 3


def test_close_cuts_the_body(mock):
    mock.set_fault(endpoint="token", kind="close")
    conn = mock.connect()
    try:
        conn.request("POST", "/api/oauth/token", body="x=1",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        assert response.status == 401          # the real answer's status line went out
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert 0 < len(cut.value.partial) < int(response.headers["Content-Length"])
    finally:
        conn.close()


def test_close_on_a_204_still_cuts_and_the_request_took_effect(mock):
    token = mock.password_grant()["access_token"]
    key = make_key()
    mock.request_binding(token)
    _, _, created = mock.api("POST", "/api/user/devices", token=token,
                             json={"name": "x", "key": public_key_hex(key)})
    mock.set_fault(endpoint="device_verify", kind="close")
    with pytest.raises(http.client.IncompleteRead):
        mock.api("POST", f"/api/user/devices/{created['deviceId']}/verify", token=token,
                 json={"challengeId": created["challengeId"],
                       "signature": sign_hex(key, mock.last_otp())})
    assert mock.state()["devices"][0]["verified"] is True


def test_status_with_retry_after(mock):
    for status in (429, 500, 502, 503):
        mock.set_fault(endpoint="token", kind="status", status=status, retry_after=7)
        got, headers, body = login(mock)
        mock.clear_faults()
        assert got == status
        assert headers["Retry-After"] == "7"
        assert headers["Content-Type"] == "application/json"
        assert isinstance(body, dict) and body["error"]
        assert mock.requests()[-1]["status"] == status
    mock.set_fault(endpoint="token", kind="status", status=429,
                   retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    assert login(mock)[1]["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"


def test_status_with_custom_body_and_no_retry_after(mock):
    mock.set_fault(endpoint="token", kind="status", status=400,
                   body={"error": "invalid_grant", "error_description": "locked"})
    status, headers, body = login(mock)
    assert (status, body) == (400, {"error": "invalid_grant", "error_description": "locked"})
    assert headers["Retry-After"] is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 500, 502, 503])
def test_non_rfc_error_bodies(mock, status):
    mock.set_fault(endpoint="token", kind="message_body", status=status, message="Go away",
                   retry_after=3, count=1)
    got, headers, body = login(mock)
    assert (got, body) == (status, {"message": "Go away"})
    assert headers["Content-Type"] == "application/json"
    assert headers["Retry-After"] == "3"

    mock.set_fault(endpoint="token", kind="html_body", status=status, count=1)
    got, headers, body = login(mock)
    assert got == status
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert body.startswith("<!DOCTYPE html>") and str(status) in body
    assert headers["Retry-After"] is None

    mock.set_fault(endpoint="token", kind="empty_body", status=status, count=1)
    got, headers, body = login(mock)
    assert (got, body) == (status, None)
    assert headers["Content-Length"] == "0" and headers["Content-Type"] is None
    assert [r["faults"] for r in mock.requests("token")] == \
        [["message_body"], ["html_body"], ["empty_body"]]
    # none of them let the request do anything: no refresh token was issued
    assert mock.state()["refresh_tokens"] == []


def test_body_faults_on_every_endpoint(mock):
    mock.set_fault(endpoint="*", kind="message_body", status=409, message="busy")
    for method, path in (("POST", "/api/user/devices"), ("POST", "/api/graphql"),
                         ("POST", "/api/user/devices/x/challenges"), ("GET", "/api/user")):
        assert mock.api(method, path)[0:3:2] == (409, {"message": "busy"}), path


def test_retry_after_decorates_the_real_answer(mock):
    mock.set_fault(endpoint="token", kind="retry_after", seconds=2, count=1)
    status, headers, body = login(mock)
    assert status == 200 and body["access_token"] and headers["Retry-After"] == "2"
    assert login(mock)[1]["Retry-After"] is None
    with pytest.raises(AssertionError):
        mock.set_fault(endpoint="token", kind="retry_after", seconds=1.5)


def test_faults_for_one_graphql_operation(mock):
    token = mock.password_grant()["access_token"]
    mock.set_fault(endpoint="graphql", operation="listBoundDevices", kind="status",
                   status=502)
    assert mock.api("POST", "/api/graphql", token=token,
                    json={"query": "{ listBoundDevices { id } }"})[0] == 502
    binding = mock.request_binding(token, confirm=False)
    assert binding["id"]
    with pytest.raises(AssertionError):
        mock.set_fault(endpoint="token", operation="listBoundDevices", kind="status")


def test_status_fault_does_not_run_the_request(mock):
    mock.set_fault(endpoint="devices_create", kind="status", status=503, count=1)
    token = mock.password_grant()["access_token"]
    status, _, _ = mock.api("POST", "/api/user/devices", token=token, json={"name": "x"})
    assert status == 503 and mock.sms() == []


def test_malformed_json(mock):
    mock.set_fault(endpoint="token", kind="malformed_json")
    status, headers, body = login(mock)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert isinstance(body, str)
    with pytest.raises(ValueError):
        json.loads(body)


def test_wrong_content_type(mock):
    mock.set_fault(endpoint="token", kind="wrong_content_type")
    status, headers, body = login(mock)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body["access_token"]                 # the body itself is fine JSON


def test_huge_body(mock):
    mock.set_fault(endpoint="token", kind="huge_body")
    conn = mock.connect()
    try:
        status, headers, body = login(mock, conn=conn)
    finally:
        conn.close()
    assert status == 200
    assert int(headers["Content-Length"]) == 10 * 1024 * 1024
    assert len(json.dumps(body, separators=(",", ":"))) == 10 * 1024 * 1024
    assert body["access_token"] and len(body["padding"]) > 10_000_000


def test_drip(mock):
    read_timeout = 1
    mock.set_fault(endpoint="user", kind="drip", interval=0.005)
    tls = raw_exchange(mock, b"GET /api/user HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                       timeout=10)
    try:
        chunks = [tls.recv(65536)]               # the answer's first byte (however slow) ...
        started = time.monotonic()
        tls.settimeout(read_timeout)
        while True:
            chunk = tls.recv(65536)              # ... then each recv waits 1 s at most ...
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        tls.close()
    elapsed = time.monotonic() - started
    data = b"".join(chunks)
    assert data.startswith(b"HTTP/1.1 401 ")
    assert data.endswith(b"}")
    assert max(len(c) for c in chunks) <= 2      # ... but only ever gets a byte or so
    # the mock waits 5 ms before each byte after the first read's
    assert elapsed >= 0.9 * 0.005 * (len(data) - len(chunks[0]))
    assert elapsed > read_timeout                # longer than any single read's timeout


def test_expire_tokens(mock):
    mock.set_fault(endpoint="token", kind="expire_tokens", count=1)
    status, _, grant = login(mock)
    assert status == 200
    assert grant["expires_in"] == 0
    assert jwt_claims(grant["access_token"])["exp"] < time.time()
    assert mock.api("GET", "/api/user", token=grant["access_token"])[0] == 401
    status, _, fresh = login(mock)
    assert fresh["expires_in"] == 3599
    assert mock.api("GET", "/api/user", token=fresh["access_token"])[0] == 200


def test_expire_tokens_on_confirmed_tokens(mock):
    token = mock.password_grant()["access_token"]
    device_id, key = mock.enroll_device(token=token)
    mock.set_fault(endpoint="*", kind="expire_tokens")
    confirmed = mock.confirm(token, device_id, key)
    assert jwt_claims(confirmed["token"])["exp"] < time.time()
    assert mock.api("GET", "/api/accounts", token=confirmed["token"])[0] == 401
    # non-issuing endpoints do not use the fault up, and it stays for the next issue
    assert mock.state()["faults"] == [{"endpoint": "*", "kind": "expire_tokens"}]


def test_count_applies_once(mock):
    mock.set_fault(endpoint="token", kind="status", status=503, count=1)
    assert mock.state()["faults"][0]["count"] == 1
    assert login(mock)[0] == 503
    assert login(mock)[0] == 200
    assert login(mock)[0] == 200
    assert mock.state()["faults"] == []
    assert [r["faults"] for r in mock.requests("token")] == [["status"], [], []]


def test_count_two_then_gone(mock):
    mock.set_fault(endpoint="user", kind="status", status=500, count=2)
    assert [mock.api("GET", "/api/user")[0] for _ in range(3)] == [500, 500, 401]


def test_star_matches_every_endpoint(mock):
    mock.set_fault(endpoint="*", kind="status", status=502)
    assert login(mock)[0] == 502
    assert mock.api("GET", "/api/user")[0] == 502
    assert mock.api("POST", "/api/graphql", json={})[0] == 502
    assert mock.control("GET", "state")["counts"]["token"] == 1   # control is spared


def test_fault_only_hits_its_endpoint(mock):
    mock.set_fault(endpoint="accounts", kind="status", status=503)
    assert login(mock)[0] == 200
    assert mock.api("GET", "/api/user")[0] == 401


def test_faults_from_the_command_line(mock_factory):
    mock = mock_factory(faults=[{"endpoint": "token", "kind": "status", "status": 429,
                                 "retry_after": 3, "count": 1}])
    status, headers, _ = login(mock)
    assert (status, headers["Retry-After"]) == (429, "3")
    assert login(mock)[0] == 200


def test_bad_fault_on_the_command_line_stops_the_start(mock_factory):
    with pytest.raises(RuntimeError, match="unknown kind"):
        mock_factory(faults=[{"endpoint": "token", "kind": "explode"}])


def test_hang_does_not_block_parallel_logins(mock):
    mock.set_fault(endpoint="token", kind="hang", count=1)
    outcome = []

    conn = connected(mock, 1)  # the mock's side of the hang lasts, whenever the client gives up

    def hanging_login():
        try:
            outcome.append(login(mock, conn=conn)[0])
        except TimeoutError:
            outcome.append("timeout")
        finally:
            conn.close()

    hung = threading.Thread(target=hanging_login)
    hung.start()
    deadline = time.monotonic() + 10
    while not mock.requests("token") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mock.requests("token")[0]["faults"] == ["hang"]
    started = time.monotonic()
    assert login(mock)[0] == 200
    assert time.monotonic() - started < 5  # the hanging one holds its connection forever
    hung.join()
    assert outcome == ["timeout"]
