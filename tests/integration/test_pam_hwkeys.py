"""Hardware device keys through pam_kontist.so under pam_wrapper: a key born in a (software)
TPM with `kontist-auth device enroll --tpm`, and keys on a PKCS#11 token (SoftHSM2), enrolled
with the real kontist-auth, then PAM logins with the real kontist-pam-helper.

The PKCS#11 module the keys name is tests/pkcs11/p11shim (built by `make check`): it passes
every call on to SoftHSM2, configured by a file next to it (the helper's environment is empty,
so SOFTHSM2_CONF cannot reach SoftHSM2 any other way), and can lock the PIN or hang.

The helper runs with an empty environment, as it always does, and reaches the TPM only through
the tpm_tcti setting of root's kontist.conf (default device:/dev/tpmrm0): never through the TPM
software stack's own fallbacks, the last of which is a simulator on 127.0.0.1:2321, a port any
local user could listen on.  The swtpm here listens on exactly that port, to show that nothing
reaches it unless the setting names it.  Needs swtpm, tpm2-openssl and libtss2-tcti-swtpm0
(scripts/install-deps).

PKCS#11 token PINs are asked for, and the token logged in to, only after the bank accepted the
password: the shim counts C_Login calls to show it.
"""

import json
import os
import re
import socket
import subprocess
import time
from urllib.parse import unquote

import pytest

from pam_support import DEMO_USER, PamWorld
from test_helper_env import EXIT_OK, HelperEnv
from test_helper_pkcs11 import PIN, TOKEN, shim_token  # noqa: F401 (fixture)
from test_helper_tpm import LOCKOUT_MESSAGE, _da_failures, in_lockout, lock_out, tpm2

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

DEFAULT_SWTPM_PORT = 2321  # the TSS default TCTI's simulator port; control port + 1


def _answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def default_swtpm(tmp_path):
    if _answers(DEFAULT_SWTPM_PORT):
        pytest.fail(f"port {DEFAULT_SWTPM_PORT} is taken: another TPM simulator is running")
    state = tmp_path / "swtpm"
    state.mkdir(mode=0o700)
    proc = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
         "--server", f"type=tcp,port={DEFAULT_SWTPM_PORT},bindaddr=127.0.0.1",
         "--ctrl", f"type=tcp,port={DEFAULT_SWTPM_PORT + 1},bindaddr=127.0.0.1",
         "--flags", "not-need-init,startup-clear"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 10
    while not _answers(DEFAULT_SWTPM_PORT) and proc.poll() is None:
        assert time.monotonic() < deadline, "swtpm did not start"
        time.sleep(0.05)
    assert proc.poll() is None, "swtpm did not start"
    yield
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


DEFAULT_TCTI = f"swtpm:host=127.0.0.1,port={DEFAULT_SWTPM_PORT}"


def dead_tcti():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"swtpm:host=127.0.0.1,port={s.getsockname()[1]}"


@pytest.fixture
def tpm_world(default_swtpm, tmp_path, mock, build_dir):
    """A key born in the swtpm on the TSS's fallback port, enrolled by kontist-auth (told where
    the TPM is by TPM2OPENSSL_TCTI: its own process, the person's own choice)."""
    kenv = HelperEnv(tmp_path / "k", mock, build_dir)
    kenv.env.update({k: v for k, v in os.environ.items()
                     if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")})
    kenv.env["TSS2_LOG"] = "all+none"
    kenv.env["TPM2OPENSSL_TCTI"] = DEFAULT_TCTI
    r = kenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    r = kenv.enroll("--tpm", timeout=60)
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(kenv.record_file.read_text())
    assert record["key"].startswith("tpm2:/")

    world = PamWorld(tmp_path / "w", build_dir, mock)
    world.users["tpmuser"] = (os.geteuid(), os.getegid(), kenv.home)
    world._write_nss()
    world.pin("tpmuser")
    return world, record


def use_tcti(world, tcti):
    world.config = world.write_config(extra=f"tpm_tcti = {tcti}\n" if tcti else "")
    world.service("kontist")


# Everything through which a PAM application's caller could point a TSS at another TPM.
HOSTILE_TSS_ENV = ("TPM2OPENSSL_TCTI", "TPM2TOOLS_TCTI", "TCTI", "TSS2_TCTI")


def test_tpm_key_confirms_a_pam_login_through_the_tcti_setting(tpm_world, mock):
    world, record = tpm_world
    use_tcti(world, DEFAULT_TCTI)
    since = len(mock.requests())
    # The caller's environment names a TPM where nothing answers: it must not matter.
    dead = dead_tcti()
    run = world.run("kontist", "tpmuser", extra_env={k: dead for k in HOSTILE_TSS_ENV})
    assert run.code == "PAM_SUCCESS", run
    assert [q["endpoint"] for q in mock.requests()[since:]] == [
        "token", "challenge_create", "challenge_verify"]
    assert run.attempt()["device"] == record["device_id"]


def test_the_callers_tss_environment_is_ignored(tpm_world, mock):
    world, record = tpm_world
    # The setting names a TPM where nothing answers; the caller's environment names the one
    # that holds the key. The setting decides: the login fails.
    use_tcti(world, dead_tcti())
    since = len(mock.requests())
    run = world.run("kontist", "tpmuser", extra_env={k: DEFAULT_TCTI for k in HOSTILE_TSS_ENV})
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    # the TPM is reached only once the password was accepted
    assert [q["endpoint"] for q in mock.requests()[since:]] == ["token"]
    assert "the TPM named by tpm_tcti does not answer" in " ".join(
        m for _, m in run.syslog), run.syslog


def test_without_the_setting_nothing_falls_back_to_the_simulator_port(tpm_world, mock):
    world, record = tpm_world
    # No tpm_tcti: the kernel's /dev/tpmrm0 and nothing else, although a TPM answers on
    # 127.0.0.1:2321 (where the TPM software stack would look last by itself).
    use_tcti(world, None)
    since = len(mock.requests())
    run = world.run("kontist", "tpmuser")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert [q["endpoint"] for q in mock.requests()[since:]] == ["token"]
    log = " ".join(m for _, m in run.syslog)
    assert "/dev/tpmrm0" in log, run.syslog
    if not os.path.exists("/dev/tpmrm0"):
        assert "no TPM on this machine (/dev/tpmrm0 does not exist" in log, run.syslog


def test_a_tpm_in_lockout_fails_with_cred_insufficient_and_says_why(tpm_world, mock, tmp_path):
    """A key enrolled before the TPM went into dictionary-attack lockout: the PAM login fails
    with PAM_CRED_INSUFFICIENT (never a fallback), and the log says the TPM is in lockout."""
    world, record = tpm_world
    use_tcti(world, DEFAULT_TCTI)
    tools = tmp_path / "tpm2-tools"
    tools.mkdir()
    lock_out(DEFAULT_TCTI, tools)
    since = len(mock.requests())
    run = world.run("kontist", "tpmuser")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert run.attempt()["error"] == "key_unusable", run.attempt()
    assert LOCKOUT_MESSAGE in " ".join(m for _, m in run.syslog), run.syslog
    # the password was accepted and a challenge asked for; nothing was signed
    assert [q["endpoint"] for q in mock.requests()[since:]] == ["token", "challenge_create"]
    assert in_lockout(DEFAULT_TCTI, tools)


def test_a_wrong_password_never_reaches_the_tpm(tpm_world, mock, tmp_path):
    """A key blob names its own parent, which may have a password the helper does not know: the
    TPM counts each such load as a failed authorization towards its dictionary-attack lockout.
    The key is opened only after the bank accepted the password, so strangers' guesses cannot
    lock every user's TPM."""
    world, record = tpm_world
    use_tcti(world, DEFAULT_TCTI)
    tools = tmp_path / "tpm2-tools"
    tools.mkdir()
    tpm2(DEFAULT_TCTI, tools, "tpm2_createprimary", "-C", "o", "-G", "ecc256", "-p", "parent-pw",
         "-c", "parent.ctx")
    tpm2(DEFAULT_TCTI, tools, "tpm2_evictcontrol", "-C", "o", "-c", "parent.ctx", "0x81000040")
    blob = tmp_path / "k" / "parent-with-password.tss2"
    env = dict(os.environ, TPM2OPENSSL_TCTI=DEFAULT_TCTI, TPM2OPENSSL_PARENT_AUTH="parent-pw",
               TSS2_LOG="all+none")
    env.pop("ASAN_OPTIONS", None)
    r = subprocess.run(["openssl", "genpkey", "-provider", "tpm2", "-provider", "default",
                        "-algorithm", "EC", "-pkeyopt", "group:P-256",
                        "-pkeyopt", "parent:0x81000040", "-out", str(blob)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    blob.chmod(0o600)
    record_file = next((tmp_path / "k").rglob("device.json"))
    own = json.loads(record_file.read_text())
    own["key"] = f"tpm2:{blob}"
    record_file.write_text(json.dumps(own))
    failures = _da_failures(DEFAULT_TCTI, tools)

    for _ in range(3):
        since = len(mock.requests())
        run = world.run("kontist", "tpmuser", password="wrong-password")
        assert run.code == "PAM_AUTH_ERR", run
        assert [q["endpoint"] for q in mock.requests()[since:]] == ["token"]
    assert _da_failures(DEFAULT_TCTI, tools) == failures
    assert not in_lockout(DEFAULT_TCTI, tools)

    # With the right password the key is tried: the parent's password is not the helper's to
    # know, so the login fails for the key, and only now does the TPM count a failure.
    since = len(mock.requests())
    run = world.run("kontist", "tpmuser")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert [q["endpoint"] for q in mock.requests()[since:]] == ["token"]
    assert _da_failures(DEFAULT_TCTI, tools) == failures + 1


def enrolled_world(tmp_path, mock, build_dir, *enroll_args, login_timeout=None):
    """kontist-auth enrolls a key for a user whose home the PAM world then uses."""
    kenv = HelperEnv(tmp_path / "k", mock, build_dir)
    kenv.env.update({k: v for k, v in os.environ.items()
                     if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")})
    r = kenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    r = kenv.enroll(*enroll_args, timeout=60)
    assert r.returncode == EXIT_OK, r.stderr
    world = PamWorld(tmp_path / "w", build_dir, mock)
    # Root lets the PAM helper load the module the key names (pkcs11_modules): the helper loads
    # no module by path that root's configuration does not list.
    modules = [unquote(m.group(1)) for a in enroll_args
               for m in [re.search(r"module-path=([^;?&]*)", a)] if m]
    if modules:
        world.config = world.write_config(extra=f"pkcs11_modules = {','.join(modules)}\n")
    world.users["hwuser"] = (os.geteuid(), os.getegid(), kenv.home)
    world._write_nss()
    world.pin("hwuser")
    world.service("kontist", args=f"login_timeout={login_timeout}" if login_timeout else "")
    return kenv, world


def set_record_key(kenv, key):
    record = json.loads(kenv.record_file.read_text())
    record["key"] = key
    kenv.record_file.write_text(json.dumps(record))
    return record


def pin_prompts(run):
    return [p for p in run.prompts if p["msg"].startswith("PIN for token")]


def test_generated_token_key_with_pin_source_confirms_a_pam_login(shim_token, tmp_path, mock,
                                                                   build_dir):
    kenv, world = enrolled_world(
        tmp_path, mock, build_dir, "--pkcs11",
        shim_token.shim_uri("object=kontist", pin_file=shim_token.pin_file), "--generate")
    record = json.loads(kenv.record_file.read_text())
    since = len(mock.requests())
    run = world.run("kontist", "hwuser")
    assert run.code == "PAM_SUCCESS", run
    assert pin_prompts(run) == []  # pin-source: nothing more to ask
    assert [q["endpoint"] for q in mock.requests()[since:]] == [
        "token", "challenge_create", "challenge_verify"]
    assert run.attempt()["device"] == record["device_id"]


@pytest.fixture
def pkcs11_tool_key_world(shim_token, tmp_path, mock, build_dir):
    """A key made with pkcs11-tool, enrolled; the record then names it without a pin-source, so
    that the PAM module has to ask for the PIN."""
    shim_token.keypair("EC:prime256v1", "5a", "made-before")
    kenv, world = enrolled_world(
        tmp_path, mock, build_dir, "--pkcs11",
        shim_token.shim_uri("object=made-before", pin_file=shim_token.pin_file))
    set_record_key(kenv, shim_token.shim_uri("object=made-before"))
    return kenv, world


def test_the_pin_is_asked_once_in_the_conversation(pkcs11_tool_key_world, shim_token, mock):
    kenv, world = pkcs11_tool_key_world
    since = len(mock.requests())
    logins = shim_token.logins()
    run = world.run("kontist", "hwuser", pin=PIN)
    assert run.code == "PAM_SUCCESS", run
    assert [p["msg"] for p in pin_prompts(run)] == [f'PIN for token "{TOKEN}": ']
    # the password first, then the PIN: one helper run, one password grant, one token login
    assert [p["msg"] for p in run.prompts].index(pin_prompts(run)[0]["msg"]) > 0
    assert [q["endpoint"] for q in mock.requests()[since:]] == [
        "token", "challenge_create", "challenge_verify"]
    assert shim_token.logins() - logins == 1


def test_a_wrong_password_brings_no_pin_prompt_and_no_token_login(pkcs11_tool_key_world,
                                                                    shim_token, mock):
    kenv, world = pkcs11_tool_key_world
    since = len(mock.requests())
    logins = shim_token.logins()
    run = world.run("kontist", "hwuser", password="not the password", pin=PIN)
    assert run.code == "PAM_AUTH_ERR", run
    assert pin_prompts(run) == []
    assert shim_token.logins() == logins  # the token's PIN retry counter is not touched
    assert [q["endpoint"] for q in mock.requests()[since:]] == ["token"]


def test_a_wrong_pin_fails_without_asking_again(pkcs11_tool_key_world, shim_token, mock):
    kenv, world = pkcs11_tool_key_world
    since = len(mock.requests())
    logins = shim_token.logins()
    run = world.run("kontist", "hwuser", pin="999999")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert len(pin_prompts(run)) == 1
    assert shim_token.logins() - logins == 1
    # the password was accepted first; nothing after the wrong PIN
    assert [q["endpoint"] for q in mock.requests()[since:]] == ["token"]
    assert "wrong PIN" in " ".join(m for _, m in run.syslog), run.syslog


def test_no_pin_from_the_conversation_is_a_conversation_error(pkcs11_tool_key_world, mock):
    kenv, world = pkcs11_tool_key_world
    run = world.run("kontist", "hwuser", conv="empty")
    assert run.code != "PAM_SUCCESS", run


def test_a_locked_token_fails_without_a_prompt(pkcs11_tool_key_world, shim_token, mock):
    kenv, world = pkcs11_tool_key_world
    shim_token.set_mode("locked")
    since = len(mock.requests())
    run = world.run("kontist", "hwuser", pin=PIN)
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert pin_prompts(run) == []
    assert [q["endpoint"] for q in mock.requests()[since:]] == ["token"]
    assert "is locked" in " ".join(m for _, m in run.syslog), run.syslog


def test_the_last_pin_try_is_not_used_by_a_pam_login(pkcs11_tool_key_world, shim_token, mock):
    """Whoever has the password may retry a PAM login a few times a connection: with one PIN try
    left the token is not logged in to, and the person is told to use a terminal."""
    kenv, world = pkcs11_tool_key_world
    shim_token.set_mode("final-try")
    logins = shim_token.logins()
    run = world.run("kontist", "hwuser", pin=PIN)
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert pin_prompts(run) == []
    assert shim_token.logins() == logins
    assert "one PIN try is left" in " ".join(m for _, m in run.syslog), run.syslog


def test_a_hanging_token_is_bounded_by_login_timeout(pkcs11_tool_key_world, shim_token):
    kenv, world = pkcs11_tool_key_world
    set_record_key(kenv, shim_token.shim_uri("object=made-before",
                                             pin_file=shim_token.pin_file))
    shim_token.set_mode("hang")
    world.service("kontist", args="login_timeout=3")
    run = world.run("kontist", "hwuser", timeout=60)
    assert run.code != "PAM_SUCCESS", run
    # The helper's own deadline (login_timeout and 3 s) ends it, well before the module would
    # kill it (login_timeout and 10 s); measured inside the module, without process start-ups.
    duration = int(run.attempt()["duration_ms"])
    assert 3000 <= duration < 3000 + 3000 + 4000, run.attempt()


def test_the_prompts_before_the_password_is_checked_are_the_same_for_everyone(
        pkcs11_tool_key_world, tmp_path, mock):
    """A wrong password gets the same prompts whether the account is unknown, has no hardware
    key or has a key on a token: nothing tells a prober which accounts have a token."""
    kenv, world = pkcs11_tool_key_world
    world.enroll(world.add_user("filekey"))
    prompts = {}
    for user in ("nosuchuser", "filekey", "hwuser"):
        run = world.run("kontist", user, password="not the password", pin=PIN)
        assert run.code in ("PAM_AUTH_ERR", "PAM_USER_UNKNOWN"), run
        prompts[user] = [(p["style"], p["msg"]) for p in run.prompts]
    assert prompts["hwuser"] == prompts["filekey"] == prompts["nosuchuser"], prompts
    assert len(prompts["hwuser"]) == 1, prompts


def test_an_authfile_token_key_without_pin_source_is_a_config_error(shim_token, tmp_path,
                                                                     mock, build_dir):
    kenv, world = enrolled_world(
        tmp_path, mock, build_dir, "--pkcs11",
        shim_token.shim_uri("object=kontist", pin_file=shim_token.pin_file), "--generate")
    record = json.loads(kenv.record_file.read_text())
    key = re.sub(r"pin-source=[^&]*&?", "", record["key"]).rstrip("?&")
    assert "pin-source" not in key
    world.pin_lines["hwuser"] = f"{DEMO_USER} {record['device_id']} {key}"
    world._write_pins()
    since = len(mock.requests())
    logins = shim_token.logins()
    run = world.run("kontist", "hwuser", pin=PIN)
    assert run.code not in ("PAM_SUCCESS", "PAM_IGNORE"), run
    assert run.attempt()["error"] == "config", run.attempt()
    assert pin_prompts(run) == []
    assert shim_token.logins() == logins
    assert mock.requests()[since:] == []
    assert "needs pin-source" in " ".join(m for _, m in run.syslog), run.syslog


def test_an_authfile_token_key_with_pin_source_confirms_without_a_prompt(shim_token, tmp_path,
                                                                          mock, build_dir):
    kenv, world = enrolled_world(
        tmp_path, mock, build_dir, "--pkcs11",
        shim_token.shim_uri("object=kontist", pin_file=shim_token.pin_file), "--generate")
    record = json.loads(kenv.record_file.read_text())
    assert "pin-source" in record["key"]
    world.pin_lines["hwuser"] = f"{DEMO_USER} {record['device_id']} {record['key']}"
    world._write_pins()
    run = world.run("kontist", "hwuser", pin=PIN)
    assert run.code == "PAM_SUCCESS", run
    assert pin_prompts(run) == []


def test_a_module_root_did_not_list_is_not_loaded(shim_token, tmp_path, mock, build_dir):
    """A user's record may name any module-path; the PAM helper, whose real uid is root's, loads
    only the modules root lists in pkcs11_modules (a module on a file system the user mounted
    keeps the owners it was made with, and would run as root)."""
    kenv, world = enrolled_world(
        tmp_path, mock, build_dir, "--pkcs11",
        shim_token.shim_uri("object=kontist", pin_file=shim_token.pin_file), "--generate")
    assert world.run("kontist", "hwuser").code == "PAM_SUCCESS"
    world.config = world.write_config()  # root lists no module
    world.service("kontist")
    since = len(mock.requests())
    logins = shim_token.logins()
    run = world.run("kontist", "hwuser")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert run.attempt()["error"] == "key_unusable", run.attempt()
    assert "is not one root allows here" in " ".join(m for _, m in run.syslog), run.syslog
    assert shim_token.logins() == logins
    assert all(q["endpoint"] == "token" for q in mock.requests()[since:])
