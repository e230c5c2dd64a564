"""Hardware device keys through pam_kontist.so under pam_wrapper: a key born in a (software)
TPM with `kontist-auth device enroll --tpm`, then a PAM login with the real kontist-pam-helper.

The helper runs with an empty environment, as it always does: it finds the TPM the way the
TPM software stack does by default (the kernel's /dev/tpmrm0, else a simulator on
127.0.0.1:2321), so the swtpm here listens on that port.  Needs swtpm, tpm2-openssl and
libtss2-tcti-swtpm0 (scripts/install-deps).
"""

import json
import os
import socket
import subprocess
import time

import pytest

from pam_support import PamWorld
from test_helper_env import EXIT_OK, HelperEnv

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
