"""kontist-auth with a device key held in a TPM 2.0 (software TPM, no hardware).

A private swtpm holds a P-256 signing key made persistent with tpm2-tools; the
helper reaches it through the provider URI path of kt_key_load
(``handle:0x81000001``) with the tpm2 OpenSSL 3 provider loaded by an
OPENSSL_CONF of the test's own.  Needs the Debian packages swtpm, swtpm-tools,
tpm2-tools, tpm2-openssl and libtss2-tcti-swtpm0 (scripts/install-deps installs
them); without them the tests fail, they are not skipped.
"""

import ctypes.util
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import DEMO_PASSWORD
from test_helper_env import EXIT_MFA, EXIT_OK, kenv  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

KEY_HANDLE = "0x81000001"
MISSING_HANDLE = "0x81000007"
TOOLS = ("swtpm", "tpm2_createprimary", "tpm2_create", "tpm2_load", "tpm2_evictcontrol",
         "tpm2_flushcontext", "tpm2_readpublic", "openssl")
PACKAGES = "swtpm swtpm-tools tpm2-tools tpm2-openssl libtss2-tcti-swtpm0"
START_TIMEOUT = 10
TOOL_TIMEOUT = 20
START_ATTEMPTS = 5

OPENSSL_CONF = """\
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
tpm2 = tpm2_sect

[default_sect]
activate = 1

[tpm2_sect]
activate = 1
"""


def _free_port_pair():
    """Two free adjacent loopback ports: the swtpm TCTI finds the control port at port + 1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
                try:
                    c.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port, port + 1
    pytest.fail("no two adjacent free loopback ports for the swtpm")


def _answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class SoftTpm:
    """A swtpm on loopback TCP ports of its own, with its state in a private directory."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True)
        self.state = self.root / "state"
        self.state.mkdir(mode=0o700)
        self.log = self.root / "swtpm.log"
        self.proc = None
        self.port = None

    def start(self):
        # Ports found free may be taken before swtpm binds them: then swtpm exits, try others.
        for _ in range(START_ATTEMPTS):
            port, ctrl = _free_port_pair()
            proc = subprocess.Popen(
                ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state}",
                 "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                 "--ctrl", f"type=tcp,port={ctrl},bindaddr=127.0.0.1",
                 "--flags", "not-need-init,startup-clear", "--log", f"file={self.log}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                start_new_session=True)
            deadline = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if _answers(ctrl) and _answers(port):
                    self.proc, self.port = proc, port
                    return self
                time.sleep(0.02)
            self._end(proc)
        pytest.fail(f"swtpm did not start:\n{self.log.read_text(errors='replace')}"
                    if self.log.exists() else "swtpm did not start")

    @staticmethod
    def _end(proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self):
        if self.proc is not None:
            self._end(self.proc)

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def tool(self, *args):
        """Runs one tpm2-tools command against this TPM."""
        env = dict(os.environ, TPM2TOOLS_TCTI=self.tcti, TSS2_LOG="all+none")
        r = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=self.root,
                           timeout=TOOL_TIMEOUT)
        assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout}{r.stderr}"
        # swtpm has no resource manager: objects a tool left loaded would fill the TPM.
        if args[0] != "tpm2_flushcontext":
            self.tool("tpm2_flushcontext", "--transient-object")
        return r

    def make_signing_key(self, handle):
        """A P-256 ECDSA key under the owner's primary, persistent at handle.  Returns its
        public key as the uncompressed point in hex."""
        self.tool("tpm2_createprimary", "-C", "o", "-G", "ecc256", "-c", "primary.ctx")
        self.tool("tpm2_create", "-C", "primary.ctx", "-G", "ecc256:ecdsa", "-u", "key.pub",
                  "-r", "key.priv")
        self.tool("tpm2_load", "-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv",
                  "-c", "key.ctx")
        self.tool("tpm2_evictcontrol", "-C", "o", "-c", "key.ctx", handle)
        self.tool("tpm2_readpublic", "-c", handle, "-f", "pem", "-o", "key-public.pem")
        public = serialization.load_pem_public_key((self.root / "key-public.pem").read_bytes())
        return public.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.UncompressedPoint).hex()


@pytest.fixture(scope="module")
def tpm(tmp_path_factory):
    """A running swtpm holding a P-256 signing key at KEY_HANDLE (and nothing at
    MISSING_HANDLE); .public_hex is that key's public point."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if ctypes.util.find_library("tss2-tcti-swtpm") is None:
        missing.append("libtss2-tcti-swtpm.so")
    if missing:
        pytest.fail(f"missing {' '.join(missing)}: install the Debian packages {PACKAGES} "
                    "(scripts/install-deps)")
    root = tmp_path_factory.mktemp("swtpm")
    conf = root / "openssl.cnf"
    conf.write_text(OPENSSL_CONF)
    soft = SoftTpm(root / "tpm").start()
    try:
        # The provider connects to the TPM as it loads, so this needs the swtpm running.
        r = subprocess.run(["openssl", "list", "-providers"], capture_output=True, text=True,
                           env=dict(os.environ, OPENSSL_CONF=str(conf),
                                    TPM2OPENSSL_TCTI=soft.tcti),
                           timeout=TOOL_TIMEOUT)
        if r.returncode != 0 or "tpm2" not in r.stdout:
            pytest.fail(f"the tpm2 OpenSSL provider does not load: install tpm2-openssl "
                        f"(scripts/install-deps)\n{r.stdout}{r.stderr}")
        soft.public_hex = soft.make_signing_key(KEY_HANDLE)
        soft.openssl_conf = conf
        yield soft
    finally:
        soft.stop()


@pytest.fixture
def tenv(kenv, tpm):
    """The helper's world, with the tpm2 provider loaded and pointed at the swtpm."""
    kenv.env.update(OPENSSL_CONF=str(tpm.openssl_conf), TPM2OPENSSL_TCTI=tpm.tcti,
                    TSS2_LOG="all+none")
    # In a sanitizer run the provider and TSS libraries run inside the instrumented helper too.
    kenv.env.update({k: v for k, v in os.environ.items()
                     if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")})
    return kenv


def test_device_key_in_a_tpm_confirms_the_login(tenv, tpm):
    r = tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    assert tenv.cache()["confirmed"] is False

    r = tenv.enroll("--key", f"handle:{KEY_HANDLE}")
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(tenv.record_file.read_text())
    assert record["key"] == f"handle:{KEY_HANDLE}"
    assert not tenv.key_file.exists()  # nothing of the key outside the TPM
    # the bank holds the TPM key's public half, and its verification passed
    devices = [d for d in tenv.mock.state()["devices"] if d["id"] == record["device_id"]]
    assert len(devices) == 1 and devices[0]["verified"] is True
    assert devices[0]["key"] == tpm.public_hex
    assert [q["status"] for q in tenv.mock.requests("device_verify")] == [204]

    before = len(tenv.mock.requests())
    r = tenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert "confirmed by device" in r.stderr
    login = tenv.mock.requests()[before:]
    assert [q["endpoint"] for q in login] == ["token", "challenge_create", "challenge_verify"]
    assert login[-1]["status"] == 200

    r = tenv.run("token", "--json")
    assert r.returncode == EXIT_OK, r.stderr
    token = json.loads(r.stdout)
    assert token["confirmed"] is True
    assert tenv.cache()["device_id"] == record["device_id"]


def test_a_handle_without_a_key_is_unusable(tenv, tpm):
    r = tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    r = tenv.enroll("--key", f"handle:{MISSING_HANDLE}", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert "device key (handle: URI) yields no private key: cannot load key" in r.stderr, r.stderr
    # refused before the bank heard of a device
    assert tenv.mock.requests("devices_create") == []
    assert not tenv.record_file.exists()


@pytest.fixture
def plain_tenv(tenv):
    """As tenv, but without an openssl.cnf that loads the tpm2 provider: kontist-auth loads it
    itself for a TPM key."""
    tenv.env.pop("OPENSSL_CONF", None)
    return tenv


def test_enroll_tpm_generates_the_key_inside_the_tpm(plain_tenv, tpm, tmp_path):
    tenv = plain_tenv
    r = tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    r = tenv.enroll("--tpm", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(tenv.record_file.read_text())
    blob = tenv.config_dir / "device-key.tss2"
    assert record["key"] == f"tpm2:{blob}"
    assert blob.stat().st_mode & 0o777 == 0o600
    assert blob.read_text().startswith("-----BEGIN TSS2 PRIVATE KEY-----")
    assert not tenv.key_file.exists()
    devices = [d for d in tenv.mock.state()["devices"] if d["id"] == record["device_id"]]
    assert len(devices) == 1 and devices[0]["verified"] is True

    before = len(tenv.mock.requests())
    r = tenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert "confirmed by device" in r.stderr
    assert [q["endpoint"] for q in tenv.mock.requests()[before:]] == [
        "token", "challenge_create", "challenge_verify"]
    r = tenv.run("status")
    assert r.returncode == EXIT_OK, r.stderr
    assert "(tpm)" in r.stdout, r.stdout

    # The blob alone is worth nothing: another TPM cannot load it, so nothing is signed.
    other = SoftTpm(tmp_path / "other-tpm").start()
    try:
        before = len(tenv.mock.requests())
        env = {"TPM2OPENSSL_TCTI": other.tcti}
        # The key is opened only after the password; one that then fails ends the login.
        r = tenv.login("--mfa", "device", env=env, timeout=TOOL_TIMEOUT)
        assert r.returncode == EXIT_MFA, r.stderr
        assert "the TPM cannot load the key blob" in r.stderr, r.stderr
        assert all(q["endpoint"] != "challenge_verify"
                   for q in tenv.mock.requests()[before:])
    finally:
        other.stop()


def test_enroll_tpm_without_a_tpm_says_so_and_writes_nothing(plain_tenv, tmp_path):
    tenv = plain_tenv
    r = tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    # a TCTI where nothing answers
    port, _ = _free_port_pair()
    tenv.env["TPM2OPENSSL_TCTI"] = f"swtpm:host=127.0.0.1,port={port}"
    r = tenv.enroll("--tpm", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert "the TPM named by TPM2OPENSSL_TCTI does not answer" in r.stderr, r.stderr
    assert not tenv.record_file.exists()
    assert not (tenv.config_dir / "device-key.tss2").exists()
    assert tenv.mock.requests("devices_create") == []


def _handle_in_use(tpm, handle):
    env = dict(os.environ, TPM2TOOLS_TCTI=tpm.tcti, TSS2_LOG="all+none")
    r = subprocess.run(["tpm2_readpublic", "-c", handle], capture_output=True, text=True,
                       env=env, timeout=TOOL_TIMEOUT)
    return r.returncode == 0


def test_enroll_tpm_handle_keeps_the_key_persistent(plain_tenv, tpm):
    tenv = plain_tenv
    handle = "0x81000010"
    r = tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    # An enrollment that fails removes the key it made persistent.
    r = tenv.enroll("--tpm", "--tpm-handle", handle, binding="REJECTED", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert not tenv.record_file.exists()
    assert not _handle_in_use(tpm, handle)

    r = tenv.enroll("--tpm", "--tpm-handle", handle, timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(tenv.record_file.read_text())
    assert record["key"] == f"handle:{handle}"
    assert not (tenv.config_dir / "device-key.tss2").exists()
    assert _handle_in_use(tpm, handle)
    r = tenv.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert "confirmed by device" in r.stderr

    # A handle that holds a key already is not overwritten.
    r = tenv.enroll("--tpm", "--tpm-handle", handle, "--force", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert f"TPM handle {handle} already holds a key" in r.stderr, r.stderr
    assert json.loads(tenv.record_file.read_text()) == record
    assert _handle_in_use(tpm, handle)


def test_the_tpm_comes_from_tpm_tcti_without_the_environment(plain_tenv, tpm, tmp_path):
    """Without TPM2OPENSSL_TCTI, kontist-auth reaches the TPM that tpm_tcti names (and nothing
    else: without the setting it is /dev/tpmrm0, never the TSS's search); with it, the person's
    own variable wins."""
    tenv = plain_tenv
    tenv.env.pop("TPM2OPENSSL_TCTI")
    r = tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    tenv.write_config(tpm_tcti=tpm.tcti)
    r = tenv.enroll("--tpm", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_OK, r.stderr
    before = len(tenv.mock.requests())
    r = tenv.login(timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_OK, r.stderr
    assert [q["endpoint"] for q in tenv.mock.requests()[before:]] == [
        "token", "challenge_create", "challenge_verify"]

    # The person's TPM2OPENSSL_TCTI wins over the setting: here a TPM where nothing answers.
    port, _ = _free_port_pair()
    r = tenv.login("--mfa", "device", env={"TPM2OPENSSL_TCTI": f"swtpm:host=127.0.0.1,port={port}"},
                   timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert "the TPM named by TPM2OPENSSL_TCTI does not answer" in r.stderr, r.stderr

    # No setting, no variable: /dev/tpmrm0 only.
    tenv.write_config()
    r = tenv.login("--mfa", "device", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert "/dev/tpmrm0" in r.stderr, r.stderr


# What kontist-auth says when the TPM refuses its keys for dictionary-attack lockout.
LOCKOUT_MESSAGE = ("the TPM is in dictionary-attack lockout: wait for it to end, or have the TPM "
                   "owner clear it (tpm2_dictionarylockout --clear-lockout)")


def tpm2(tcti, workdir, *args, check=True):
    """One tpm2-tools command against the TPM at tcti, then the transient objects it left flushed
    (a swtpm has no resource manager).  With check, it must succeed."""
    env = dict(os.environ, TPM2TOOLS_TCTI=tcti, TSS2_LOG="all+none")
    r = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=workdir,
                       timeout=TOOL_TIMEOUT)
    subprocess.run(["tpm2_flushcontext", "--transient-object"], capture_output=True, env=env,
                   timeout=TOOL_TIMEOUT, check=True)
    assert not check or r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout}{r.stderr}"
    return r


def in_lockout(tcti, workdir):
    out = tpm2(tcti, workdir, "tpm2_getcap", "properties-variable").stdout
    return any(line.split() == ["inLockout:", "1"] for line in out.splitlines())


def lock_out(tcti, workdir):
    """Puts the TPM at tcti into dictionary-attack lockout the way a password guesser does: the
    TPM allows one failed authorization before it locks (for an hour), and a DA-protected key
    with a password is then asked to sign with the wrong one.  workdir takes the tools' files."""
    def run(*args, check=True):
        return tpm2(tcti, workdir, *args, check=check)

    run("tpm2_dictionarylockout", "--setup-parameters", "--max-tries=1",
        "--recovery-time=3600", "--lockout-recovery-time=3600")
    run("tpm2_createprimary", "-C", "o", "-G", "ecc256", "-c", "da-primary.ctx")
    run("tpm2_create", "-C", "da-primary.ctx", "-G", "ecc256:ecdsa", "-p", "right",
        "-u", "da.pub", "-r", "da.priv")
    run("tpm2_load", "-C", "da-primary.ctx", "-u", "da.pub", "-r", "da.priv", "-c", "da.ctx")
    Path(workdir, "message").write_text("guess\n")
    r = run("tpm2_sign", "-c", "da.ctx", "-p", "wrong", "-g", "sha256", "-o", "sig", "message",
            check=False)
    assert r.returncode != 0 and "0x98E" in r.stderr, r.stderr  # the DA counter went up
    r = run("tpm2_sign", "-c", "da.ctx", "-p", "right", "-g", "sha256", "-o", "sig", "message",
            check=False)
    assert r.returncode != 0 and "0x921" in r.stderr, r.stderr  # TPM_RC_LOCKOUT, even for it
    assert in_lockout(tcti, workdir)


@pytest.fixture
def own_tpm(tmp_path):
    """A swtpm of the test's own, which the test may put into lockout."""
    soft = SoftTpm(tmp_path / "own-tpm").start()
    yield soft
    soft.stop()


@pytest.fixture
def own_tenv(plain_tenv, own_tpm):
    plain_tenv.env["TPM2OPENSSL_TCTI"] = own_tpm.tcti
    r = plain_tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    return plain_tenv


@pytest.mark.parametrize("where", [(), ("--tpm-handle", "0x81000020")],
                         ids=["blob", "persistent"])
def test_enroll_tpm_in_lockout_says_so_and_writes_nothing(own_tenv, own_tpm, where):
    """A TPM in lockout still makes keys (the tpm2 provider's parent key is exempt from
    dictionary-attack protection) but then refuses to sign with them: the enrollment stops
    before the bank hears of a device, and writes nothing."""
    tenv = own_tenv
    cache = tenv.cache_file.read_bytes()
    lock_out(own_tpm.tcti, own_tpm.root)
    before = len(tenv.mock.requests())
    r = tenv.enroll("--tpm", *where, timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert LOCKOUT_MESSAGE in r.stderr, r.stderr
    assert not tenv.record_file.exists()
    assert not (tenv.config_dir / "device-key.tss2").exists()
    assert not tenv.key_file.exists()
    assert not tenv.config_dir.exists() or list(tenv.config_dir.iterdir()) == []
    assert tenv.cache_file.read_bytes() == cache
    # nothing went to the bank: no binding request, no device
    assert tenv.mock.requests()[before:] == []
    assert tenv.mock.state()["devices"] == []
    if where:
        assert not _handle_in_use(own_tpm, where[1])
    assert in_lockout(own_tpm.tcti, own_tpm.root)


def test_enroll_an_existing_tpm_key_in_lockout_says_so_before_the_bank(own_tenv, own_tpm):
    """A key already in the TPM (--key handle:) is tried with one signature before the bank is
    asked anything: in lockout no device is created there and nothing is written here."""
    tenv = own_tenv
    own_tpm.make_signing_key("0x81000030")
    cache = tenv.cache_file.read_bytes()
    lock_out(own_tpm.tcti, own_tpm.root)
    before = len(tenv.mock.requests())
    r = tenv.enroll("--key", "handle:0x81000030", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert LOCKOUT_MESSAGE in r.stderr, r.stderr
    assert not tenv.record_file.exists()
    assert not tenv.key_file.exists()
    assert tenv.cache_file.read_bytes() == cache
    assert tenv.mock.requests()[before:] == []
    assert tenv.mock.state()["devices"] == []
    # the key is the person's: it stays where it was
    assert _handle_in_use(own_tpm, "0x81000030")


def _da_failures(tcti, workdir):
    """The TPM's count of failed authorizations (TPM2_PT_LOCKOUT_COUNTER)."""
    out = tpm2(tcti, workdir, "tpm2_getcap", "properties-variable").stdout
    counters = [int(line.split(":")[1].strip(), 16) for line in out.splitlines()
                if "TPM2_PT_LOCKOUT_COUNTER" in line]
    assert len(counters) == 1, out
    return counters[0]


@pytest.mark.parametrize("form", ["path", "file-uri"])
def test_a_tss2_blob_named_as_a_file_never_reaches_the_tpm(tenv, own_tpm, tmp_path, form):
    """A key file is a software key, decoded by OpenSSL's default provider only, even where
    openssl.cnf loads the tpm2 provider (as here): a TSS2 blob under a key file's name is not
    loaded into the TPM, so a wrong password cannot spend a dictionary-attack try through it
    (the blob's parent has a password this process does not know)."""
    tenv.env["TPM2OPENSSL_TCTI"] = own_tpm.tcti
    tools = tmp_path / "tools"
    tools.mkdir()
    tpm2(own_tpm.tcti, tools, "tpm2_createprimary", "-C", "o", "-G", "ecc256", "-p", "parent-pw",
         "-c", "parent.ctx")
    tpm2(own_tpm.tcti, tools, "tpm2_evictcontrol", "-C", "o", "-c", "parent.ctx", "0x81000040")
    r = tenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    r = tenv.enroll()
    assert r.returncode == EXIT_OK, r.stderr
    blob = tenv.config_dir / "blob.pem"
    env = dict(os.environ, TPM2OPENSSL_TCTI=own_tpm.tcti, TPM2OPENSSL_PARENT_AUTH="parent-pw",
               TSS2_LOG="all+none")
    env.pop("ASAN_OPTIONS", None)
    r = subprocess.run(["openssl", "genpkey", "-provider", "tpm2", "-provider", "default",
                        "-algorithm", "EC", "-pkeyopt", "group:P-256",
                        "-pkeyopt", "parent:0x81000040", "-out", str(blob)],
                       capture_output=True, text=True, env=env, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, r.stderr
    blob.chmod(0o600)
    record = json.loads(tenv.record_file.read_text())
    record["key"] = str(blob) if form == "path" else f"file://{blob}"
    tenv.record_file.write_text(json.dumps(record))
    failures = _da_failures(own_tpm.tcti, tools)

    for password in ("wrong-password", DEMO_PASSWORD):
        r = tenv.login("--mfa", "device", password=password, timeout=TOOL_TIMEOUT)
        assert r.returncode == EXIT_MFA, r.stderr
        assert "holds no usable private key" in r.stderr, r.stderr
    assert _da_failures(own_tpm.tcti, tools) == failures


@pytest.mark.parametrize("mfa", [(), ("--mfa", "device")], ids=["default", "device-only"])
def test_login_with_a_tpm_key_in_lockout_says_so(own_tenv, own_tpm, mfa):
    tenv = own_tenv
    r = tenv.enroll("--tpm", timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(tenv.record_file.read_text())
    blob = tenv.config_dir / "device-key.tss2"
    blob_text = blob.read_bytes()
    cache = tenv.cache_file.read_bytes()
    lock_out(own_tpm.tcti, own_tpm.root)

    before = len(tenv.mock.requests())
    r = tenv.login(*mfa, timeout=TOOL_TIMEOUT)
    assert r.returncode == EXIT_MFA, r.stderr
    assert LOCKOUT_MESSAGE in r.stderr, r.stderr
    # the password was accepted and a challenge asked for; nothing was signed, nothing cached
    assert [q["endpoint"] for q in tenv.mock.requests()[before:]] == [
        "token", "challenge_create"]
    assert tenv.cache_file.read_bytes() == cache
    assert json.loads(tenv.record_file.read_text()) == record
    assert blob.read_bytes() == blob_text
