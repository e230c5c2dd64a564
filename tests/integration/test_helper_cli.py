"""kontist-auth: commands, options, configuration, login, enrollment and their exit codes."""

import json
import os
import re
import stat
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import DEMO_PASSWORD, DEMO_USER
from kt_crypto import jwt_claims, make_key, public_key_hex, write_key_pem
from test_helper_env import (EXIT_AUTH, EXIT_IO, EXIT_MFA, EXIT_OK, EXIT_UNAVAILABLE,
                             EXIT_USAGE, kenv, kenv_factory)  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def assert_no_secret(kenv, *texts):
    """No token of the cache, no password and no JWT at all in texts."""
    secrets = [DEMO_PASSWORD]
    if kenv.cache_file.exists():
        data = kenv.cache()
        secrets += [data.get("access_token"), data.get("refresh_token")]
    for text in texts:
        for s in filter(None, secrets):
            assert s not in text
        assert not JWT.search(text), text


# -- help, usage, version --------------------------------------------------------------------

HELP_ARGS = [
    ["--help"], ["-h"], ["login", "--help"], ["device", "--help"], ["device", "enroll", "--help"],
    ["token", "--help"], ["status", "--help"], ["logout", "--help"], ["credential", "--help"],
]


@pytest.mark.parametrize("args", HELP_ARGS, ids=" ".join)
def test_help_documents_usage_and_every_exit_code(kenv, args):
    r = kenv.run(*args)
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout.startswith("Usage: ")
    assert "Exit status:" in r.stdout
    for code in range(7):
        assert re.search(rf"^  {code}  \S", r.stdout, re.M), f"exit code {code} undocumented"
    assert r.stderr == ""


def test_credential_binary_help(kenv):
    r = kenv.run("--help", binary=kenv.cred)
    assert r.returncode == EXIT_OK
    assert r.stdout.startswith("Usage: git-credential-kontist")
    assert "Exit status:" in r.stdout


def test_version(kenv):
    r = kenv.run("--version")
    assert r.returncode == EXIT_OK
    assert re.fullmatch(r"kontist-auth \d+\.\d+\.\d+\nlibcurl \S+ \(.*\)\nOpenSSL .*\njson-c .*\n",
                        r.stdout)


@pytest.mark.parametrize("args,needle", [
    ([], "no command given"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["--bogus"], "unknown option '--bogus'"),
    (["login", "--bogus"], "unknown option '--bogus'"),
    (["login", "--user"], "option '--user' needs an argument"),
    (["login", "extra"], "unexpected argument 'extra'"),
    (["token", "-x"], "unknown option '-x'"),
    (["status", "now"], "unexpected argument 'now'"),
    (["device"], "no subcommand given"),
    (["device", "rename"], "unknown subcommand 'rename' (enroll, list, remove)"),
    (["device", "remove"], "give either a device ID or --this"),
    (["device", "remove", "--this", "--bogus"], "unknown option '--bogus'"),
    (["device", "list", "extra"], "unexpected argument 'extra'"),
    (["device", "enroll", "--name", ""], "name must have 1 to"),
    (["device", "enroll", "--name", "a\tb"], "control characters"),
    (["credential"], "no operation given"),
    (["credential", "get", "more"], "too many arguments"),
    # Every command knows only its own options from the one table.
    (["token", "--yes"], "unknown option '--yes'"),
    (["login", "--json"], "unknown option '--json'"),
    (["status", "-V"], "unknown option '-V'"),
    (["device", "remove", "-u", "x"], "unknown option '-u'"),
    (["device", "enroll", "--pam-dir", "/etc/pam.d"], "unknown option '--pam-dir'"),
    (["doctor", "--tpm"], "unknown option '--tpm'"),
    (["device", "enroll", "--pkcs11"], "option '--pkcs11' needs an argument"),
    (["device", "enroll", "-n"], "option '-n' needs an argument"),
    (["login", "--mfa", "push", "--no-device"], "--no-device contradicts an earlier option"),
    (["login", "--no-device", "--mfa", "push"], "--mfa contradicts an earlier option"),
    (["login", "--mfa", "push", "--mfa=device"], "--mfa contradicts an earlier option"),
    (["login", "--mfa", "sms"], "--mfa:"),
    # A value is checked where it stands: a bad one is not hidden by a later one or by --help.
    (["login", "--mfa", "bad", "--mfa", "push"], "--mfa:"),
    (["login", "--mfa", "bad", "--help"], "--mfa:"),
    (["device", "enroll", "--confirm-timeout=0", "--help"], "--confirm-timeout must be"),
    (["device", "enroll", "--confirm-timeout", "0", "--confirm-timeout", "5"],
     "--confirm-timeout must be"),
    (["device", "enroll", "--pkcs11=file:x", "-h"], "--pkcs11 takes a pkcs11: URI"),
    (["device", "enroll", "--pkcs11=file:x", "--pkcs11=pkcs11:token=a"],
     "--pkcs11 takes a pkcs11: URI"),
    (["device", "enroll", "--tpm", "--tpm-handle", "0x80000000"], "--tpm-handle takes a persistent"),
    # A value given to an option that takes none is named as that, not as an unknown letter.
    (["login", "--no-device=x"], "option '--no-device' takes no value"),
    (["device", "enroll", "--otp-stdin=x"], "option '--otp-stdin' takes no value"),
    (["token", "--json=1"], "option '--json' takes no value"),
    (["device", "remove", "--yes=1"], "option '--yes' takes no value"),
    (["device", "remove", "a", "b"], "unexpected argument 'b'"),
])
def test_usage_errors_exit_2_with_a_message(kenv, args, needle):
    r = kenv.run(*args)
    assert r.returncode == EXIT_USAGE, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "--help" in r.stderr
    assert r.stdout == ""


# -- configuration ----------------------------------------------------------------------------

def test_missing_config_file_is_a_config_error(kenv):
    r = kenv.login(env={"KONTIST_CONFIG": str(kenv.root / "nope.conf")})
    assert r.returncode == EXIT_USAGE
    assert "nope.conf" in r.stderr


def test_bad_config_line_names_file_and_line(kenv):
    kenv.config.write_text(f"base_url = {kenv.mock.url}\nfrobnication = yes\n")
    r = kenv.run("token")
    assert r.returncode == EXIT_USAGE
    assert f"{kenv.config}:2" in r.stderr


def test_group_writable_config_is_refused(kenv):
    kenv.config.chmod(0o664)
    r = kenv.run("status")
    assert r.returncode == EXIT_USAGE
    assert str(kenv.config) in r.stderr


def test_readable_client_secret_file_is_refused(kenv):
    kenv.secret_file.chmod(0o644)
    r = kenv.login()
    assert r.returncode == EXIT_USAGE
    assert "secret" in r.stderr.lower()
    assert not kenv.cache_file.exists()


def test_config_option_wins_over_environment(kenv):
    other = kenv.write_config(kenv.root / "other.conf", username="other@example.com")
    r = kenv.run("--config", other, "status")
    assert f"configuration: {other}\n" in r.stdout
    r = kenv.run("status", "--config", other)
    assert f"configuration: {other}\n" in r.stdout
    r = kenv.run("status")
    assert f"configuration: {kenv.config}\n" in r.stdout


def test_relative_config_path(kenv):
    r = kenv.run("--config", "kontist.conf", "status", cwd=kenv.root)
    assert f"configuration: {kenv.config}\n" in r.stdout


def test_user_config_under_xdg_config_home(kenv):
    xdg = kenv.root / "xdg-config"
    (xdg / "kontist").mkdir(parents=True, mode=0o700)
    user_conf = kenv.write_config(xdg / "kontist" / "kontist.conf")
    r = kenv.run("status", env={"KONTIST_CONFIG": None, "XDG_CONFIG_HOME": str(xdg)})
    assert str(user_conf) in r.stdout.splitlines()[0]
    # and XDG_STATE_HOME moves the cache
    state = kenv.root / "xdg-state"
    r = kenv.login(env={"XDG_STATE_HOME": str(state)})
    assert r.returncode == EXIT_OK, r.stderr
    assert (state / "kontist" / "tokens.json").exists()
    assert not kenv.cache_file.exists()


# -- login --------------------------------------------------------------------------------------

def test_login_without_device_stores_an_unconfirmed_token(kenv):
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout == ""
    assert "NOT confirmed" in r.stderr
    assert "device enroll" in r.stderr
    data = kenv.cache()
    assert data["username"] == DEMO_USER
    assert data["confirmed"] is False
    assert "cnf" not in jwt_claims(data["access_token"])
    assert stat.S_IMODE(kenv.cache_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(kenv.state_dir.stat().st_mode) == 0o700
    assert_no_secret(kenv, r.stdout, r.stderr)


def test_no_terminal_without_password_stdin_refuses(kenv):
    """Standard input is read only when --password-stdin says so (test_helper_terminal checks
    that nothing of it is consumed)."""
    r = kenv.run("login", input=DEMO_PASSWORD + "\n")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "--password-stdin" in r.stderr
    assert not kenv.cache_file.exists()
    assert kenv.token_requests() == []


def test_password_with_crlf_line_ending(kenv):
    r = kenv.run("login", "--password-stdin", "--mfa", "none", input=DEMO_PASSWORD + "\r\n")
    assert r.returncode == EXIT_OK, r.stderr


def test_wrong_password_exits_3_and_stores_nothing(kenv):
    r = kenv.login(password="not-the-password")
    assert r.returncode == EXIT_AUTH, r.stderr
    assert "kontist-auth:" in r.stderr
    assert not kenv.cache_file.exists()
    assert "not-the-password" not in r.stderr


def test_user_option_overrides_configuration(kenv):
    r = kenv.login("--user", "nobody@example.com")
    assert r.returncode == EXIT_AUTH
    r = kenv.login("--user", DEMO_USER.upper())
    assert r.returncode == EXIT_OK, r.stderr


def test_no_username_is_a_usage_error(kenv):
    kenv.write_config(username=None)
    r = kenv.login()
    assert r.returncode == EXIT_USAGE
    assert "--user" in r.stderr


@pytest.mark.parametrize("stdin", ["", "\n"], ids=["eof", "empty-line"])
def test_no_password_is_a_usage_error(kenv, stdin):
    r = kenv.run("login", "--password-stdin", input=stdin)
    assert r.returncode == EXIT_USAGE
    assert "password" in r.stderr
    assert kenv.token_requests() == []


def test_overlong_password_is_refused(kenv):
    r = kenv.run("login", "--password-stdin", input="x" * 5000 + "\n")
    assert r.returncode == EXIT_USAGE
    assert "longer than" in r.stderr
    assert kenv.token_requests() == []


def test_password_with_nul_is_refused(kenv):
    r = kenv.run("login", "--password-stdin", input="demo\0password\n")
    assert r.returncode == EXIT_USAGE
    assert "NUL" in r.stderr


def test_service_down_exits_5(kenv):
    kenv.mock.stop()
    r = kenv.login()
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert "try again later" in r.stderr


def test_server_error_exits_5(kenv):
    kenv.mock.set_fault(endpoint="token", kind="status", status=503, retry_after=7)
    r = kenv.login()
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert not kenv.cache_file.exists()


def test_rate_limit_exits_5_with_its_own_message(kenv):
    kenv.mock.set_fault(endpoint="token", kind="status", status=429, retry_after=42,
                        body={"error": "too_many_requests", "message": "Slow down"})
    r = kenv.login()
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert "the bank is rate limiting requests; try again in 42 s" in r.stderr
    assert "rate limited (HTTP 429), retry after 42 s: too_many_requests: Slow down" in r.stderr
    assert "try again later" not in r.stderr
    assert not kenv.cache_file.exists()


def test_rate_limit_without_retry_after(kenv):
    kenv.mock.set_fault(endpoint="token", kind="status", status=429)
    r = kenv.login()
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert "the bank is rate limiting requests; try again later" in r.stderr


def test_wrong_passwords_into_the_rate_limit(mock_factory, kenv_factory):
    # The mock's own limiter: beyond 2 API requests a minute, 429 with Retry-After. Whoever
    # fills it with wrong passwords gets a rate limit, not an outage.
    env = kenv_factory(mock_factory("--rate-limit", "2"))
    codes = [env.login(password="wrong-password").returncode for _ in range(2)]
    assert codes == [EXIT_AUTH, EXIT_AUTH]
    r = env.login()
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert re.search(r"the bank is rate limiting requests; try again in \d+ s", r.stderr)


def test_rate_limited_refresh_keeps_the_cache(kenv):
    kenv.login()
    kenv.expire_soon()
    before = kenv.cache()
    kenv.mock.set_fault(endpoint="token", kind="status", status=429, retry_after=5, count=1)
    r = kenv.run("token")
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert "the bank is rate limiting requests; try again in 5 s" in r.stderr
    assert kenv.cache() == before


@pytest.mark.parametrize("status,body,code", [
    (403, {"message": "Your account is locked"}, EXIT_AUTH),
    (401, "<html><body>Unauthorized</body></html>", EXIT_AUTH),
    (422, None, EXIT_AUTH),
    (401, {"error": "invalid_client"}, EXIT_USAGE),
])
def test_token_endpoint_refusals_are_not_outages(kenv, status, body, code):
    spec = {"endpoint": "token", "kind": "status", "status": status}
    if body is not None:
        spec["body"] = body
    kenv.mock.set_fault(**spec)
    r = kenv.login()
    assert r.returncode == code, r.stderr
    assert "<html>" not in r.stderr
    if isinstance(body, dict):
        assert next(iter(body.values())) in r.stderr


def test_untrusted_certificate_exits_5(mock_factory, kenv_factory):
    env = kenv_factory(mock_factory(cert_fault="untrusted"))
    r = env.login()
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert env.mock.requests() == []


def test_hanging_server_is_given_up_within_the_deadline(kenv):
    kenv.write_config(login_timeout=3, timeout=2, connect_timeout=2)
    kenv.mock.set_fault(endpoint="token", kind="hang", seconds=30)
    started = time.monotonic()
    r = kenv.login()
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    # given up by the client, well before the mock lets go of the request after 30 s
    assert time.monotonic() - started < 25


def test_confirmed_login_uses_one_connection(kenv):
    kenv.confirmed_login()
    before = len(kenv.mock.requests())
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert "confirmed by device" in r.stderr
    login = kenv.mock.requests()[before:]
    assert [q["endpoint"] for q in login] == ["token", "challenge_create", "challenge_verify"]
    assert len({q["conn"] for q in login}) == 1
    data = kenv.cache()
    assert data["confirmed"] is True
    assert jwt_claims(data["access_token"])["cnf"]
    assert data["device_id"] == json.loads(kenv.record_file.read_text())["device_id"]
    assert_no_secret(kenv, r.stdout, r.stderr)


def test_rejected_device_signature_exits_4(kenv):
    kenv.confirmed_login()
    # Another key in the key file: the bank rejects its signature.
    kenv.key_file.unlink()
    write_key_pem(make_key(), kenv.key_file)
    old = kenv.cache_file.read_bytes()
    r = kenv.login()
    assert r.returncode == EXIT_MFA, r.stderr
    assert kenv.cache_file.read_bytes() == old


def test_mfa_fault_exits_4(kenv):
    kenv.confirmed_login()
    kenv.mock.set_fault(endpoint="challenge_verify", kind="status", status=400,
                        body={"error": "invalid_signature"})
    r = kenv.login()
    assert r.returncode == EXIT_MFA, r.stderr


def test_removed_device_then_reenrollment(kenv):
    kenv.confirmed_login()
    device_id = json.loads(kenv.record_file.read_text())["device_id"]
    token = kenv.token()
    status, _, body = kenv.mock.api(
        "POST", "/api/graphql", token=token,
        json={"query": f'mutation {{ deleteBoundDevice(deviceId: "{device_id}") }}'})
    assert body == {"data": {"deleteBoundDevice": True}}

    r = kenv.login()
    assert r.returncode == EXIT_MFA, r.stderr
    assert "--no-device" in r.stderr
    r = kenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    assert kenv.cache()["confirmed"] is False
    r = kenv.enroll()
    assert r.returncode == EXIT_USAGE
    assert "--force" in r.stderr
    r = kenv.enroll("--force")
    assert r.returncode == EXIT_OK, r.stderr
    new_id = json.loads(kenv.record_file.read_text())["device_id"]
    assert new_id != device_id
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert kenv.cache()["device_id"] == new_id


@pytest.mark.parametrize("damage", ["mode", "missing", "garbage"])
def test_unusable_key_exits_4(kenv, damage):
    kenv.confirmed_login()
    if damage == "mode":
        kenv.key_file.chmod(0o644)
    elif damage == "missing":
        kenv.key_file.unlink()
    else:
        kenv.key_file.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    before = len(kenv.mock.requests())
    # With device MFA alone (with device,push, the default, the login would say why and go on
    # to push: test_helper_push.py).
    r = kenv.login("--mfa", "device")
    assert r.returncode == EXIT_MFA, r.stderr
    # refused before anything was sent
    assert kenv.mock.requests()[before:] == []


def test_unsafe_device_record_exits_6(kenv):
    kenv.confirmed_login()
    kenv.record_file.chmod(0o646)
    r = kenv.login()
    assert r.returncode == EXIT_IO, r.stderr
    assert "device.json" in r.stderr


# -- device enroll ------------------------------------------------------------------------------

def test_enroll_writes_a_private_record_and_key(kenv):
    assert kenv.login().returncode == EXIT_OK
    r = kenv.enroll("--name", "build box")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout == ""
    record = json.loads(kenv.record_file.read_text())
    assert record["username"] == DEMO_USER
    assert record["name"] == "build box"
    assert record["key"] == str(kenv.key_file)
    assert stat.S_IMODE(kenv.record_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(kenv.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(kenv.config_dir.stat().st_mode) == 0o700
    devices = [d for d in kenv.mock.state()["devices"] if d["id"] == record["device_id"]]
    assert len(devices) == 1 and devices[0]["verified"] is True
    assert devices[0]["name"] == "build box"
    # the OTP is not repeated anywhere
    otp = kenv.mock.last_otp(record["device_id"])
    assert otp not in r.stderr
    assert_no_secret(kenv, r.stderr)
    # no stray files
    assert sorted(p.name for p in kenv.config_dir.iterdir()) == ["device-key.pem", "device.json"]


def test_enroll_with_an_existing_key_file(kenv):
    key = make_key()
    key_path = write_key_pem(key, kenv.root / "my-key.pem")
    assert kenv.login().returncode == EXIT_OK
    r = kenv.enroll("--key", str(key_path))
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(kenv.record_file.read_text())
    assert record["key"] == str(key_path)
    assert not kenv.key_file.exists()
    devices = {d["id"]: d for d in kenv.mock.state()["devices"]}
    assert devices[record["device_id"]]["key"] == public_key_hex(key)
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert kenv.cache()["confirmed"] is True


def test_enroll_with_a_key_file_from_openssl_ecparam(kenv):
    """`openssl ecparam -genkey` writes an "EC PARAMETERS" block before the key: the key is the
    first private key in the file, whatever comes before it."""
    key_path = kenv.root / "ecparam-key.pem"
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-out", str(key_path)],
                   check=True, capture_output=True, timeout=30)
    key_path.chmod(0o600)
    assert key_path.read_text().startswith("-----BEGIN EC PARAMETERS-----")
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert kenv.login().returncode == EXIT_OK
    r = kenv.enroll("--key", str(key_path))
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(kenv.record_file.read_text())
    devices = {d["id"]: d for d in kenv.mock.state()["devices"]}
    assert devices[record["device_id"]]["key"] == public_key_hex(key)
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert kenv.cache()["confirmed"] is True


@pytest.mark.parametrize("form", ["file-uri", "relative"])
def test_enroll_key_reference_forms(kenv, form):
    key = make_key()
    key_path = write_key_pem(key, kenv.root / "my-key.pem")
    assert kenv.login().returncode == EXIT_OK
    ref = f"file:{key_path}" if form == "file-uri" else "my-key.pem"
    r = kenv.enroll("--key", ref, cwd=kenv.root)
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(kenv.record_file.read_text())
    # a relative path is stored absolute: the record is read from anywhere later
    assert record["key"] == (ref if form == "file-uri" else str(key_path))
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert kenv.cache()["confirmed"] is True


def test_enroll_with_a_readable_key_file_is_refused(kenv):
    key_path = write_key_pem(make_key(), kenv.root / "open-key.pem", mode=0o644)
    assert kenv.login().returncode == EXIT_OK
    r = kenv.enroll("--key", str(key_path))
    assert r.returncode == EXIT_MFA, r.stderr
    assert not kenv.record_file.exists()
    assert kenv.mock.requests("devices_create") == []


def test_enroll_requires_a_login(kenv):
    r = kenv.enroll()
    assert r.returncode == EXIT_AUTH
    assert "kontist-auth login" in r.stderr
    assert not kenv.record_file.exists()


def wrong_code(otp):
    return "000000" if otp != "000000" else "111111"


@pytest.mark.parametrize("answer", [wrong_code, "12ab56", ""],
                         ids=["wrong-code", "not-digits", "empty"])
def test_enroll_with_a_bad_code_exits_4_and_leaves_nothing(kenv, answer):
    assert kenv.login().returncode == EXIT_OK
    r = kenv.enroll(otp=answer)
    assert r.returncode == EXIT_MFA, r.stderr
    assert not kenv.record_file.exists()
    assert not kenv.key_file.exists()


def test_enroll_without_any_answer_exits_2(kenv):
    assert kenv.login().returncode == EXIT_OK
    r = kenv.enroll(otp=lambda code: None)      # standard input ends without a line
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "nothing on standard input" in r.stderr or "no answer" in r.stderr
    assert not kenv.record_file.exists()
    assert not kenv.key_file.exists()


def test_enroll_twice_needs_force(kenv):
    kenv.confirmed_login()
    record = kenv.record_file.read_text()
    key = kenv.key_file.read_bytes()
    r = kenv.enroll()
    assert r.returncode == EXIT_USAGE
    assert "already enrolled" in r.stderr
    assert kenv.record_file.read_text() == record
    assert kenv.key_file.read_bytes() == key


def test_forced_reenrollment_keeps_the_old_key_until_verified(kenv):
    kenv.confirmed_login()
    old_record = json.loads(kenv.record_file.read_text())
    old_key = kenv.key_file.read_bytes()
    # a failed forced enrollment changes nothing
    r = kenv.enroll("--force", otp=wrong_code)
    assert r.returncode == EXIT_MFA
    assert json.loads(kenv.record_file.read_text()) == old_record
    assert kenv.key_file.read_bytes() == old_key
    assert kenv.login().returncode == EXIT_OK
    # a successful one switches to a new key file
    r = kenv.enroll("--force")
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(kenv.record_file.read_text())
    assert record["device_id"] != old_record["device_id"]
    assert record["key"] != old_record["key"]
    assert stat.S_IMODE(os.stat(record["key"]).st_mode) == 0o600
    assert kenv.login().returncode == EXIT_OK
    assert kenv.cache()["device_id"] == record["device_id"]


# -- token, status, logout ---------------------------------------------------------------------------

def test_token_prints_only_the_confirmed_token(kenv):
    kenv.confirmed_login()
    r = kenv.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stderr == ""
    assert r.stdout == kenv.cache()["access_token"] + "\n"
    assert jwt_claims(r.stdout.strip())["cnf"]


def test_token_json(kenv):
    kenv.confirmed_login()
    r = kenv.run("token", "--json")
    assert r.returncode == EXIT_OK, r.stderr
    data = json.loads(r.stdout)
    cache = kenv.cache()
    assert data["access_token"] == cache["access_token"]
    assert data["token_type"] == "Bearer"
    assert data["confirmed"] is True
    assert data["expires_at"] == cache["expires_at"]
    assert 3500 < data["expires_in"] <= 3600
    assert data["username"] == DEMO_USER


def test_token_when_not_logged_in_exits_3(kenv):
    r = kenv.run("token")
    assert r.returncode == EXIT_AUTH
    assert r.stdout == ""
    assert "kontist-auth login" in r.stderr


def test_unconfirmed_token_is_not_handed_out(kenv):
    assert kenv.login().returncode == EXIT_OK
    r = kenv.run("token")
    assert r.returncode == EXIT_MFA
    assert r.stdout == ""
    assert "not confirmed" in r.stderr


def test_status_shows_everything_but_secrets(kenv):
    kenv.confirmed_login()
    r = kenv.run("status")
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(kenv.record_file.read_text())
    assert f"logged in:     {DEMO_USER}" in r.stdout
    assert "confirmed:     yes" in r.stdout
    assert "refresh token: present" in r.stdout
    assert record["device_id"] in r.stdout
    assert str(kenv.key_file) in r.stdout
    assert re.search(r"valid until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", r.stdout)
    assert_no_secret(kenv, r.stdout, r.stderr)
    assert kenv.mock.requests()[-1]["endpoint"] == "challenge_verify"  # no network


def test_status_hides_the_pin_of_a_key_uri(kenv):
    """A key URI may carry the PIN of a token (RFC 7512 pin-value): a device record with one is
    refused (PINs never in URIs), and status says why without ever printing the PIN; a URI
    without one is shown with its kind."""
    pin = "739146"
    uri = f"pkcs11:token=kt;object=device;pin-value={pin}?pin-value={pin}&module-name=p11"
    kenv.config_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    kenv.record_file.write_text(json.dumps({"username": DEMO_USER, "device_id": "dev-1",
                                            "key": uri, "name": "hsm"}))
    kenv.record_file.chmod(0o600)
    r = kenv.run("status")
    assert "device:        unusable record" in r.stdout, r.stdout
    assert "pin-value in a pkcs11: key URI is refused" in r.stdout, r.stdout
    assert pin not in r.stdout + r.stderr

    uri = "pkcs11:token=kt;object=device?module-name=p11"
    kenv.record_file.write_text(json.dumps({"username": DEMO_USER, "device_id": "dev-1",
                                            "key": uri, "name": "hsm"}))
    r = kenv.run("status")
    assert "device:        dev-1" in r.stdout, r.stdout
    assert "device key:    pkcs11:token=kt;object=device?module-name=p11" in r.stdout, r.stdout
    assert "(pkcs11)" in r.stdout, r.stdout


def test_status_does_not_report_a_login_token_would_refuse(kenv):
    """A cache whose tokens name another device than the one they are kept for is what `token`
    refuses; status says so instead of "logged in", and a name with escape sequences in the
    cache (the user's own file) is shown escaped."""
    kenv.confirmed_login()
    data = kenv.cache()
    good = dict(data)
    data["device_id"] = "another-device"
    kenv.cache_file.write_text(json.dumps(data))
    r = kenv.run("status")
    assert r.returncode == EXIT_AUTH, r.stdout
    assert "logged in:     no" in r.stdout
    assert "confirmed by device" in r.stdout and "another-device" in r.stdout, r.stdout
    assert kenv.run("token").returncode == EXIT_AUTH

    data = dict(good, username="demo\x1b[2J\nlogged in:     root")
    kenv.cache_file.write_text(json.dumps(data))
    r = kenv.run("status")
    assert "\x1b" not in r.stdout, r.stdout
    assert not any(line.startswith("logged in:     root") for line in r.stdout.splitlines())
    assert "logged in:     demo\\x1b[2J\\x0alogged in:     root" in r.stdout, r.stdout


def test_status_when_not_logged_in_exits_3(kenv):
    r = kenv.run("status")
    assert r.returncode == EXIT_AUTH
    assert "logged in:     no" in r.stdout
    assert "device:        not enrolled" in r.stdout


def test_logout_removes_the_tokens_but_not_the_device(kenv):
    kenv.confirmed_login()
    r = kenv.run("logout")
    assert r.returncode == EXIT_OK, r.stderr
    assert "logged out" in r.stderr
    assert not kenv.cache_file.exists()
    assert kenv.record_file.exists() and kenv.key_file.exists()
    assert kenv.run("token").returncode == EXIT_AUTH
    assert kenv.run("status").returncode == EXIT_AUTH
    r = kenv.run("logout")
    assert r.returncode == EXIT_OK
    assert "not logged in" in r.stderr


def test_logout_works_with_a_broken_configuration(kenv):
    assert kenv.login().returncode == EXIT_OK
    kenv.config.write_text("nonsense\n")
    r = kenv.run("logout")
    assert r.returncode == EXIT_OK, r.stderr
    assert not kenv.cache_file.exists()
