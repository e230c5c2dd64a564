"""git-credential-kontist: the git credential protocol, with real git and directly."""

import os
import pty
import subprocess
import time

import pytest

from conftest import DEMO_USER
from test_helper_env import (EXIT_AUTH, EXIT_MFA, EXIT_OK, EXIT_USAGE, kenv,  # noqa: F401
                             kenv_factory)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def attributes(text):
    """The key=value lines of a protocol answer, as a list of pairs (order kept)."""
    return [tuple(line.split("=", 1)) for line in text.splitlines() if line]


def request(kenv, *extra, host=None, protocol="https"):
    lines = [f"protocol={protocol}", f"host={host or kenv.host}", *extra]
    return "\n".join(lines) + "\n\n"


# -- get ---------------------------------------------------------------------------------------

def test_get_answers_with_the_confirmed_token(kenv):
    kenv.confirmed_login()
    r = kenv.credential("get", request(kenv))
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stderr == ""
    data = kenv.cache()
    assert attributes(r.stdout) == [
        ("username", DEMO_USER),
        ("password", data["access_token"]),
        ("password_expiry_utc", str(data["expires_at"] - 60)),
    ]


def test_get_with_authtype_capability(kenv):
    kenv.confirmed_login()
    r = kenv.credential("get", request(kenv, "capability[]=authtype", "capability[]=state"))
    assert r.returncode == EXIT_OK, r.stderr
    token = kenv.cache()["access_token"]
    answer = dict(attributes(r.stdout))
    assert ("capability[]", "authtype") in attributes(r.stdout)
    assert answer["authtype"] == "Bearer"
    assert answer["credential"] == token
    assert answer["password"] == token
    assert answer["username"] == DEMO_USER
    assert int(answer["password_expiry_utc"]) == kenv.cache()["expires_at"] - 60
    # a capability we do not have is not claimed
    assert ("capability[]", "state") not in attributes(r.stdout)


def test_get_without_the_capability_sends_no_authtype(kenv):
    kenv.confirmed_login()
    r = kenv.credential("get", request(kenv))
    keys = [k for k, _ in attributes(r.stdout)]
    assert "authtype" not in keys and "credential" not in keys and "capability[]" not in keys


def test_unknown_attributes_are_ignored(kenv):
    kenv.confirmed_login()
    r = kenv.credential("get", request(kenv, "path=org/repo.git", "wwwauth[]=Bearer realm=x",
                                       "frobnication=on", "x=", "quit=0"))
    assert r.returncode == EXIT_OK, r.stderr
    assert dict(attributes(r.stdout))["password"] == kenv.cache()["access_token"]


def test_url_attribute_and_default_port(kenv):
    kenv.confirmed_login()
    r = kenv.credential("get", f"url={kenv.mock.url}/some/path\n\n")
    assert dict(attributes(r.stdout)).get("password") == kenv.cache()["access_token"]
    # git percent-decodes the user part of a URL
    r = kenv.credential("get", f"url=https://{DEMO_USER.replace('@', '%40')}@{kenv.host}/\n\n")
    assert dict(attributes(r.stdout)).get("password") == kenv.cache()["access_token"]
    r = kenv.credential("get", f"url=https://other%40example.com@{kenv.host}/\n\n")
    assert (r.returncode, r.stdout) == (EXIT_OK, "")


def test_host_is_matched_case_insensitively(kenv):
    kenv.confirmed_login()
    kenv.write_config(base_url=kenv.mock.url.replace("127.0.0.1", "localhost"))
    r = kenv.credential("get", request(kenv, host=kenv.host.replace("127.0.0.1", "LocalHost")))
    assert dict(attributes(r.stdout)).get("password") == kenv.cache()["access_token"]


@pytest.mark.parametrize("case", ["other-host", "other-port", "http", "no-host", "other-user",
                                  "empty"])
def test_other_requests_get_nothing(kenv, case):
    kenv.confirmed_login()
    host, port = kenv.host.rsplit(":", 1)
    req = {
        "other-host": request(kenv, host="github.com"),
        "other-port": request(kenv, host=f"{host}:{int(port) + 1}"),
        "http": request(kenv, protocol="http"),
        "no-host": "protocol=https\n\n",
        "other-user": request(kenv, "username=someone-else@example.com"),
        "empty": "\n",
    }[case]
    before = len(kenv.mock.requests())
    r = kenv.credential("get", req)
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout == ""
    assert r.stderr == ""
    assert len(kenv.mock.requests()) == before


def test_broken_configuration_is_reported_only_for_our_host(kenv):
    kenv.config.write_text(f"base_url = {kenv.mock.url}\nfrobnication = on\n")
    r = kenv.credential("get", request(kenv, host="github.com"))
    assert (r.returncode, r.stdout, r.stderr) == (EXIT_OK, "", "")
    r = kenv.credential("get", request(kenv))
    assert r.returncode == EXIT_USAGE
    assert r.stdout == ""
    assert f"{kenv.config}:2" in r.stderr
    # no configuration at all: the default API host is still recognised
    r = kenv.credential("get", "protocol=https\nhost=api.kontist.com\n\n",
                        env={"KONTIST_CONFIG": str(kenv.root / "missing.conf")})
    assert r.returncode == EXIT_USAGE and "missing.conf" in r.stderr
    r = kenv.credential("get", "protocol=https\nhost=example.com\n\n",
                        env={"KONTIST_CONFIG": str(kenv.root / "missing.conf")})
    assert (r.returncode, r.stdout, r.stderr) == (EXIT_OK, "", "")


def test_matching_username_is_answered(kenv):
    kenv.confirmed_login()
    r = kenv.credential("get", request(kenv, f"username={DEMO_USER.upper()}"))
    assert dict(attributes(r.stdout)).get("password") == kenv.cache()["access_token"]


def test_get_refreshes_an_expiring_token(kenv):
    kenv.confirmed_login()
    old = kenv.expire_soon()["access_token"]
    r = kenv.credential("get", request(kenv))
    assert r.returncode == EXIT_OK, r.stderr
    token = dict(attributes(r.stdout))["password"]
    assert token != old
    assert token == kenv.cache()["access_token"]


@pytest.mark.parametrize("state,code", [("none", EXIT_AUTH), ("unconfirmed", EXIT_MFA)])
def test_no_usable_token_says_why_and_answers_nothing(kenv, state, code):
    if state == "unconfirmed":
        assert kenv.login().returncode == EXIT_OK
    started = time.monotonic()
    r = kenv.credential("get", request(kenv))
    assert time.monotonic() - started < 10
    assert r.returncode == code
    assert r.stdout == ""
    assert "git-credential-kontist:" in r.stderr


def test_never_prompts_even_with_a_terminal(kenv):
    """With a controlling terminal and nothing usable, the helper must not open it and wait."""
    master, slave = pty.openpty()

    def make_tty_controlling():
        os.setsid()
        import fcntl
        import termios
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    try:
        started = time.monotonic()
        proc = subprocess.run([str(kenv.cred), "get"], input=request(kenv).encode(),
                              capture_output=True, env=kenv.env, timeout=20,
                              preexec_fn=make_tty_controlling, pass_fds=(slave,))
        assert time.monotonic() - started < 10
        assert proc.returncode == EXIT_AUTH
        assert proc.stdout == b""
        os.set_blocking(master, False)
        try:
            written = os.read(master, 4096)
        except (BlockingIOError, OSError):
            written = b""
        assert written == b"", "the helper wrote to the terminal"
    finally:
        os.close(master)
        os.close(slave)


# -- malformed requests --------------------------------------------------------------------

BAD_REQUESTS = {
    "nul": b"protocol=https\nhost=x\0y\n\n",
    "overlong-line": b"protocol=https\npath=" + b"a" * 20000 + b"\n\n",
    "overlong-request": b"protocol=https\n" + b"path=" + b"b" * 10000 + b"\n" * 1 +
                        b"".join(b"wwwauth[]=" + b"c" * 1000 + b"\n" for _ in range(80)) + b"\n",
    "no-equals": b"protocol=https\nthis line has no equals sign\n\n",
    "empty-key": b"protocol=https\n=value\n\n",
    "bad-url": b"url=not a url\n\n",
}


@pytest.mark.parametrize("data", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
@pytest.mark.parametrize("operation", ["get", "store", "erase"])
def test_malformed_requests_are_rejected_without_a_crash(kenv, data, operation):
    kenv.confirmed_login()
    cache = kenv.cache_file.read_bytes()
    r = kenv.credential(operation, data)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stdout == b""
    assert b"credential request" in r.stderr
    assert kenv.cache_file.read_bytes() == cache


def test_request_ending_at_eof_without_blank_line(kenv):
    kenv.confirmed_login()
    r = kenv.credential("get", f"protocol=https\nhost={kenv.host}")
    assert dict(attributes(r.stdout)).get("password") == kenv.cache()["access_token"]


def test_request_that_never_ends_is_not_waited_for_forever(kenv):
    """Input that stays open without its blank line: the helper gives up on its own."""
    proc = subprocess.Popen([str(kenv.cred), "get"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kenv.env,
                            start_new_session=True)
    try:
        proc.stdin.write(b"protocol=https\n")
        proc.stdin.flush()
        # stdin stays open; the helper's own limit is 20 s
        started = time.monotonic()
        proc.wait(timeout=60)
        elapsed = time.monotonic() - started
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == EXIT_USAGE
    assert 15 < elapsed < 40
    assert out == b""
    assert b"no end of input" in err


def test_unknown_operation_is_ignored(kenv):
    kenv.confirmed_login()
    r = kenv.credential("capability", request(kenv))
    assert (r.returncode, r.stdout, r.stderr) == (EXIT_OK, "", "")
    r = kenv.credential("frobnicate", request(kenv))
    assert (r.returncode, r.stdout, r.stderr) == (EXIT_OK, "", "")


# -- store and erase -------------------------------------------------------------------------

def test_store_keeps_nothing(kenv):
    kenv.confirmed_login()
    before = {p.name: p.read_bytes() for p in kenv.state_dir.iterdir()}
    config_before = sorted(p.name for p in kenv.config_dir.iterdir())
    r = kenv.credential("store", request(kenv, "username=u", "password=some-other-secret"))
    assert (r.returncode, r.stdout) == (EXIT_OK, "")
    assert {p.name: p.read_bytes() for p in kenv.state_dir.iterdir()} == before
    assert sorted(p.name for p in kenv.config_dir.iterdir()) == config_before
    assert not list(kenv.home.rglob("*credential*"))


def test_erase_drops_the_access_token_only(kenv):
    kenv.confirmed_login()
    data = kenv.cache()
    r = kenv.credential("erase", request(kenv, f"username={DEMO_USER}",
                                         f"password={data['access_token']}"))
    assert (r.returncode, r.stdout) == (EXIT_OK, ""), r.stderr
    after = kenv.cache()
    assert "access_token" not in after
    assert after["refresh_token"] == data["refresh_token"]
    # the next get refreshes
    refreshes = len(kenv.token_requests("refresh_token"))
    r = kenv.credential("get", request(kenv))
    token = dict(attributes(r.stdout))["password"]
    assert token != data["access_token"]
    assert len(kenv.token_requests("refresh_token")) == refreshes + 1


def test_erase_with_a_stale_password_keeps_the_new_token(kenv):
    kenv.confirmed_login()
    before = kenv.cache_file.read_bytes()
    r = kenv.credential("erase", request(kenv, "password=an-older-token"))
    assert r.returncode == EXIT_OK
    assert kenv.cache_file.read_bytes() == before


def test_erase_for_another_host_keeps_the_token(kenv):
    kenv.confirmed_login()
    before = kenv.cache_file.read_bytes()
    r = kenv.credential("erase", request(kenv, f"password={kenv.cache()['access_token']}",
                                         host="example.com"))
    assert r.returncode == EXIT_OK
    assert kenv.cache_file.read_bytes() == before


# -- real git --------------------------------------------------------------------------------

def test_git_credential_fill(kenv):
    kenv.confirmed_login()
    r = kenv.git("fill", request(kenv))
    assert r.returncode == 0, r.stderr
    answer = dict(attributes(r.stdout))
    assert answer["protocol"] == "https"
    assert answer["host"] == kenv.host
    assert answer["username"] == DEMO_USER
    assert answer["password"] == kenv.token()


def test_git_finds_the_helper_by_name_on_path(kenv):
    """`git config credential.helper kontist` runs git-credential-kontist from PATH."""
    kenv.confirmed_login()
    kenv.env["PATH"] = f"{kenv.cred.parent}:{kenv.env['PATH']}"
    r = kenv.git("fill", request(kenv), helper="kontist")
    assert r.returncode == 0, r.stderr
    assert dict(attributes(r.stdout))["password"] == kenv.token()


def test_git_credential_fill_via_kontist_auth_credential(kenv):
    kenv.confirmed_login()
    r = kenv.git("fill", request(kenv), helper=f"!'{kenv.auth}' credential")
    assert r.returncode == 0, r.stderr
    assert dict(attributes(r.stdout))["password"] == kenv.token()


def test_git_fill_for_another_host_gets_nothing(kenv):
    kenv.confirmed_login()
    r = kenv.git("fill", request(kenv, host="github.com"))
    # git would prompt now; prompts are off, so it fails without any credential
    assert r.returncode != 0
    assert "password=" not in r.stdout
    assert kenv.cache()["access_token"] not in r.stdout + r.stderr


def test_git_approve_keeps_nothing_and_reject_drops_the_token(kenv):
    kenv.confirmed_login()
    fill = kenv.git("fill", request(kenv))
    assert fill.returncode == 0, fill.stderr
    before = kenv.cache_file.read_bytes()
    r = kenv.git("approve", fill.stdout + "\n")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    assert kenv.cache_file.read_bytes() == before
    r = kenv.git("reject", fill.stdout + "\n")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    assert "access_token" not in kenv.cache()
    again = kenv.git("fill", request(kenv))
    assert again.returncode == 0, again.stderr
    assert dict(attributes(again.stdout))["password"] != dict(attributes(fill.stdout))["password"]
    assert dict(attributes(again.stdout))["password"] == kenv.cache()["access_token"]
