"""Hardware device keys through pam_kontist.so under pam_wrapper: a key born in a (software)
TPM with `kontist-auth device enroll --tpm`, and keys on a PKCS#11 token (SoftHSM2), enrolled
with the real kontist-auth, then PAM logins with the real kontist-pam-helper.

The PKCS#11 module the keys name is tests/pkcs11/p11shim (built by `make check`): it passes
every call on to SoftHSM2, configured by a file next to it (the helper's environment is empty,
so SOFTHSM2_CONF cannot reach SoftHSM2 any other way), and can lock the PIN or hang.

The helper runs with an empty environment, as it always does: it finds the TPM the way the
TPM software stack does by default (the kernel's /dev/tpmrm0, else a simulator on
127.0.0.1:2321), so the swtpm here listens on that port.  Needs swtpm, tpm2-openssl and
libtss2-tcti-swtpm0 (scripts/install-deps).
"""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pam_support import PamWorld
from test_helper_env import EXIT_OK, HelperEnv
from test_helper_pkcs11 import MODULE, PIN, TOKEN, SoftToken

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


def test_tpm_key_confirms_a_pam_login(default_swtpm, tmp_path, mock, build_dir):
    kenv = HelperEnv(tmp_path / "k", mock, build_dir)
    kenv.env.update({k: v for k, v in os.environ.items()
                     if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")})
    kenv.env["TSS2_LOG"] = "all+none"
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
    world.service("kontist")
    since = len(mock.requests())
    run = world.run("kontist", "tpmuser")
    assert run.code == "PAM_SUCCESS", run
    assert [q["endpoint"] for q in mock.requests()[since:]] == [
        "token", "challenge_create", "challenge_verify"]
    assert run.attempt()["device"] == record["device_id"]


class ShimToken(SoftToken):
    """A SoftHSM2 token reached through p11shim, whose behaviour the test can change."""

    def __init__(self, root, build_dir):
        super().__init__(root)
        shim = Path(build_dir) / "tests" / "pkcs11" / ".libs" / "p11shim.so"
        assert shim.exists(), f"{shim} is missing: run make check first"
        self.shim = self.root / "p11shim.so"
        shutil.copy(shim, self.shim)
        self.set_mode(None)

    def set_mode(self, mode):
        lines = [f"module {MODULE}", f"env SOFTHSM2_CONF={self.conf}"]
        if mode:
            lines.append(f"mode {mode}")
        Path(f"{self.shim}.conf").write_text("\n".join(lines) + "\n")

    def shim_uri(self, *attrs, pin_file=None):
        return self.uri(*attrs, pin_file=pin_file, module=self.shim)


@pytest.fixture
def shim_token(tmp_path, build_dir):
    return ShimToken(tmp_path / "hsm", build_dir)


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
        shim_token.shim_uri("object=made-before", pin_file=shim_token.pin_file),
        login_timeout=3)
    set_record_key(kenv, shim_token.shim_uri("object=made-before"))
    return kenv, world


def test_the_pin_is_asked_once_in_the_conversation(pkcs11_tool_key_world, mock):
    kenv, world = pkcs11_tool_key_world
    since = len(mock.requests())
    run = world.run("kontist", "hwuser", pin=PIN)
    assert run.code == "PAM_SUCCESS", run
    assert [p["msg"] for p in pin_prompts(run)] == [f'PIN for token "{TOKEN}": ']
    # one password grant: the first helper stopped before the bank was asked anything
    assert [q["endpoint"] for q in mock.requests()[since:]] == [
        "token", "challenge_create", "challenge_verify"]


def test_a_wrong_pin_fails_without_asking_again(pkcs11_tool_key_world, mock):
    kenv, world = pkcs11_tool_key_world
    since = len(mock.requests())
    run = world.run("kontist", "hwuser", pin="999999")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert len(pin_prompts(run)) == 1
    assert mock.requests()[since:] == []
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
    assert mock.requests()[since:] == []
    assert "is locked" in " ".join(m for _, m in run.syslog), run.syslog


def test_a_hanging_token_is_bounded_by_login_timeout(pkcs11_tool_key_world, shim_token):
    kenv, world = pkcs11_tool_key_world
    set_record_key(kenv, shim_token.shim_uri("object=made-before",
                                             pin_file=shim_token.pin_file))
    shim_token.set_mode("hang")
    run = world.run("kontist", "hwuser", timeout=60)
    assert run.code != "PAM_SUCCESS", run
    # login_timeout=3: the helper's own deadline (3 s more) ends it, well before the module's
    assert 3 <= run.elapsed < 3 + 3 + 4, run.elapsed
