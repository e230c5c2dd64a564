"""kontist-mock: start-up, shutdown, command line, HTTP basics."""

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

import conftest

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def test_demo_users_file_matches_the_fixture_constants():
    data = json.loads((conftest.REPO_DIR / "tests/mock/demo-users.json").read_text())
    users = {u["username"]: u["password"] for u in data["users"]}
    assert users[conftest.DEMO_USER] == conftest.DEMO_PASSWORD
    clients = {c["client_id"]: c for c in data["clients"]}
    demo = clients[conftest.DEMO_CLIENT_ID]
    assert demo["client_secret"] == conftest.DEMO_CLIENT_SECRET
    assert sorted(demo["grants"]) == ["password", "refresh_token"]
    assert sorted(demo["scopes"]) == sorted(conftest.ALL_SCOPES)
    public = clients[conftest.PUBLIC_CLIENT_ID]
    assert public["client_secret"] == ""


def test_startup_line_and_files(mock_factory, mock_tls_dir):
    mock = mock_factory()  # the launcher gives up when the startup line is late
    assert mock.url == f"https://127.0.0.1:{mock.port}"
    assert mock.host == "127.0.0.1" and mock.port > 0
    assert mock.control_url == mock.url + "/__control"
    assert Path(mock.ca_file) == mock_tls_dir / "ca.pem" and Path(mock.ca_file).is_file()
    assert mock.state_dir.is_absolute()
    assert (mock.state_dir / "requests.jsonl").read_text() == ""
    assert (mock.state_dir / "sms.jsonl").read_text() == ""
    assert mock.stop() == 0


def test_startup_prints_exactly_one_line(tmp_path, mock_tls_dir):
    proc = subprocess.Popen([conftest.PYTHON, str(conftest.MOCK_BIN), "--listen", "127.0.0.1:0",
                             "--state-dir", str(tmp_path / "state"),
                             "--tls-dir", str(mock_tls_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"url", "ca_file", "state_dir", "control_url"}
        assert info["state_dir"] == str(tmp_path / "state")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert out == b"" and err == b""


def test_own_tls_material_without_tls_dir(tmp_path):
    proc = subprocess.Popen([conftest.PYTHON, str(conftest.MOCK_BIN), "--state-dir",
                             str(tmp_path)], stdout=subprocess.PIPE)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["ca_file"] == str(tmp_path / "tls" / "ca.pem")
        assert os.stat(tmp_path / "tls" / "server-key.pem").st_mode & 0o077 == 0
    finally:
        proc.terminate()
        proc.communicate(timeout=5)
    assert proc.returncode == 0


def test_sigint_stops_cleanly(mock):
    mock.proc.send_signal(2)
    assert mock.proc.wait(5) == 0


def test_stdin_eof_stops_the_mock(mock):
    mock.proc.stdin.close()
    assert mock.proc.wait(5) == 0


def test_bad_users_file(mock_factory, tmp_path):
    with pytest.raises(RuntimeError, match="unknown keys"):
        mock_factory(users={"users": [{"username": "a", "password": "b", "pin": "1"}]})
    with pytest.raises(RuntimeError, match="unknown scopes"):
        mock_factory(users={"clients": [{"client_id": "c", "grants": [],
                                         "scopes": ["everything"]}]})


def test_unknown_path_and_method(mock):
    status, headers, body = mock.api("GET", "/api/unknown")
    assert status == 404 and body["error"] == "not_found"
    assert headers["Content-Type"] == "application/json"
    status, headers, body = mock.api("DELETE", "/api/user")
    assert status == 405 and headers["Allow"] == "GET"


def test_request_body_limit(mock):
    status, _, _ = mock.api("POST", "/api/user/devices", body=b"x" * (1024 * 1024 + 1),
                            headers={"Content-Type": "application/json"})
    assert status == 413


def test_chunked_request_body(mock):
    conn = mock.connect()
    try:
        conn.request("POST", "/api/oauth/token",
                     body=iter(chunk.encode() for chunk in [
                         f"grant_type=password&username={quote(conftest.DEMO_USER)}",
                         f"&password={quote(conftest.DEMO_PASSWORD)}&scope=users",
                         f"&client_id={quote(conftest.DEMO_CLIENT_ID)}"
                         f"&client_secret={quote(conftest.DEMO_CLIENT_SECRET)}"]),
                     headers={"Content-Type": "application/x-www-form-urlencoded"},
                     encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        assert json.loads(response.read())["access_token"]
    finally:
        conn.close()


def test_rate_limit(mock_factory):
    mock = mock_factory("--rate-limit", "3")
    assert [mock.api("GET", "/api/user")[0] for _ in range(3)] == [401] * 3
    status, headers, body = mock.api("GET", "/api/user")
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert body["error"] == "rate_limited"


def test_build_dir_fixture(build_dir):
    expected = os.environ.get("KONTIST_BUILDDIR") or str(conftest.REPO_DIR / "build")
    assert build_dir == Path(expected).absolute()
