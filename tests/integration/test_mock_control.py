"""kontist-mock: the control endpoint."""

import socket
import ssl

import pytest

from conftest import DEMO_USER

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def test_faults_set_list_clear(mock):
    assert mock.control("GET", "faults") == {"faults": []}
    faults = mock.set_fault(endpoint="user", kind="status", status=503)
    assert faults == [{"endpoint": "user", "kind": "status", "status": 503}]
    mock.set_fault(endpoint="token", kind="delay", seconds=0.1)
    assert [f["kind"] for f in mock.control("GET", "faults")["faults"]] == ["status", "delay"]
    assert mock.api("GET", "/api/user")[0] == 503
    mock.clear_faults()
    assert mock.state()["faults"] == []
    assert mock.api("GET", "/api/user")[0] == 401


def test_faults_as_a_list(mock):
    body = mock.control("POST", "faults", [{"endpoint": "user", "kind": "close", "count": 1},
                                           {"endpoint": "accounts", "kind": "hang"}])
    assert [f["endpoint"] for f in body["faults"]] == ["user", "accounts"]


BAD_SPECS = [
    {"endpoint": "tokens", "kind": "status"},
    {"endpoint": "token", "kind": "slow"},
    {"endpoint": "token", "kind": "status", "status": 99},
    {"endpoint": "token", "kind": "status", "retry_after": "1\r\nX-Evil: 1"},
    {"endpoint": "token", "kind": "delay", "secs": 1},
    {"endpoint": "token", "kind": "delay", "seconds": "1"},
    {"endpoint": "token", "kind": "drip", "interval": 0},
    {"endpoint": "token", "kind": "close", "count": 0},
    {"endpoint": "token", "kind": "close", "count": True},
    {"kind": "close"},
    "close",
]


def test_bad_fault_specs_are_refused(mock):
    for spec in BAD_SPECS:
        status, _, body = mock.api("POST", "/__control/faults", json=spec)
        assert (status, body["error"]) == (400, "invalid_fault"), spec
    status, _, body = mock.api("POST", "/__control/faults", body="{",
                               headers={"Content-Type": "application/json"})
    assert status == 400
    assert mock.state()["faults"] == []


def test_state(mock):
    token = mock.password_grant()["access_token"]
    device_id, _ = mock.enroll_device(name="box", token=token)
    mock.api("GET", "/api/user", token=token)
    state = mock.state()
    assert [(d["id"], d["name"], d["verified"]) for d in state["devices"]] == \
        [(device_id, "box", True)]
    assert state["counts"] == {"token": 1, "graphql": 1, "devices_create": 1, "device_verify": 1,
                               "user": 1}
    assert [(r["username"], r["kid"]) for r in state["refresh_tokens"]] == \
        [(DEMO_USER, None)]
    assert state["connections"] >= 5


def test_mfa_control_errors(mock):
    status, _, body = mock.api("POST", "/__control/mfa/unknown", json={"status": "VERIFIED"})
    assert status == 404
    token = mock.password_grant()["access_token"]
    _, _, challenge = mock.api("POST", "/api/user/mfa/challenges", token=token)
    status, _, body = mock.api("POST", f"/__control/mfa/{challenge['id']}",
                               json={"status": "MAYBE"})
    assert status == 400
    assert mock.state()["mfa_challenges"][0]["status"] == "PENDING"


def test_unknown_control_path(mock):
    assert mock.api("GET", "/__control/nothing")[0] == 404
    assert mock.api("PUT", "/__control/faults", json={})[0] == 404


def test_control_is_not_logged_or_faulted(mock):
    mock.set_fault(endpoint="*", kind="hang")
    mock.state()
    mock.clear_faults()
    assert mock.requests() == []


def _outside_address():
    """A local, non-loopback address of this machine, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))         # no packet is sent for UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_control_answers_loopback_only(mock_factory):
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    mock = mock_factory("--listen", "0.0.0.0:0")
    context = ssl.create_default_context(cafile=mock.ca_file)
    context.check_hostname = False              # the cert names 127.0.0.1, not this address
    conn = mock.connect(context=context)
    conn.host = address
    try:
        status, _, body = mock.api("GET", "/__control/state", conn=conn)
        assert (status, body["error"]) == (403, "forbidden")
        assert mock.api("GET", "/api/user", conn=conn)[0] == 401
    finally:
        conn.close()
    assert mock.state()["counts"]["user"] == 1      # loopback is fine
