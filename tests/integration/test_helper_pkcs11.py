"""kontist-auth with device keys on a PKCS#11 token: SoftHSM2 as the token, OpenSC's
pkcs11-tool to put keys on it beforehand.  Needs the Debian packages softhsm2 and opensc
(scripts/install-deps installs them); without them the tests fail, they are not skipped.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import DEMO_PASSWORD, DEMO_USER
from test_helper_env import EXIT_AUTH, EXIT_MFA, EXIT_OK, EXIT_USAGE, kenv  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "246810"
SO_PIN = "13572468"
TOKEN = "kt-test"
TOOL_TIMEOUT = 30


class SoftToken:
    """A SoftHSM2 token of its own: configuration and token directory below root."""

    def __init__(self, root):
        self.root = Path(root)
        (self.root / "tokens").mkdir(parents=True)
        self.conf = self.root / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {self.root / 'tokens'}\n"
                             "objectstore.backend = file\nlog.level = ERROR\n")
        self.env = dict(os.environ, SOFTHSM2_CONF=str(self.conf))
        self.pin_file = self.root / "pin"
        self.pin_file.write_text(PIN + "\n")
        self.pin_file.chmod(0o600)
        self.run("softhsm2-util", "--init-token", "--free", "--label", TOKEN,
                 "--pin", PIN, "--so-pin", SO_PIN)

    def run(self, *args, check=True):
        r = subprocess.run(list(args), capture_output=True, text=True, env=self.env,
                           timeout=TOOL_TIMEOUT)
        assert not check or r.returncode == 0, f"{' '.join(args)}:\n{r.stdout}{r.stderr}"
        return r

    def keypair(self, key_type, key_id, label):
        self.run("pkcs11-tool", "--module", MODULE, "--token-label", TOKEN, "--login",
                 "--pin", PIN, "--keypairgen", "--key-type", key_type, "--id", key_id,
                 "--label", label)

    def objects(self):
        return self.run("pkcs11-tool", "--module", MODULE, "--token-label", TOKEN, "--login",
                        "--pin", PIN, "--list-objects").stdout

    def public_point(self, label):
        out = self.run("pkcs11-tool", "--module", MODULE, "--token-label", TOKEN,
                       "--read-object", "--type", "pubkey", "--label", label, "-o",
                       str(self.root / "pub.der")).stdout
        from cryptography.hazmat.primitives import serialization
        pub = serialization.load_der_public_key((self.root / "pub.der").read_bytes())
        return pub.public_bytes(serialization.Encoding.X962,
                                serialization.PublicFormat.UncompressedPoint).hex()

    def uri(self, *attrs, pin_file=None, module=MODULE):
        parts = [f"token={TOKEN}", *attrs]
        query = [f"module-path={module}"]
        if pin_file is not None:
            query.append(f"pin-source=file:{pin_file}")
        return "pkcs11:" + ";".join(parts) + "?" + "&".join(query)


@pytest.fixture
def token(tmp_path):
    missing = [t for t in ("softhsm2-util", "pkcs11-tool") if shutil.which(t) is None]
    if missing or not Path(MODULE).exists():
        pytest.fail("missing SoftHSM2 or OpenSC: install the Debian packages softhsm2 opensc "
                    "(scripts/install-deps)")
    return SoftToken(tmp_path / "hsm")


class ShimToken(SoftToken):
    """A SoftHSM2 token reached through tests/pkcs11/p11shim (built by `make check`), whose
    behaviour the test can change: SoftHSM2 itself never locks a PIN (after any number of wrong
    ones it only sets CKF_USER_PIN_COUNT_LOW), so a locked token is the shim's "mode locked"
    (CKF_USER_PIN_LOCKED in the token's flags, CKR_PIN_LOCKED from C_Login).  The shim counts
    C_Login calls."""

    def __init__(self, root, build_dir):
        super().__init__(root)
        shim = Path(build_dir) / "tests" / "pkcs11" / ".libs" / "p11shim.so"
        assert shim.exists(), f"{shim} is missing: run make check first"
        self.shim = self.root / "p11shim.so"
        shutil.copy(shim, self.shim)
        self.set_mode(None)

    def set_mode(self, mode):
        self.logins_file = self.root / "logins"
        lines = [f"module {MODULE}", f"env SOFTHSM2_CONF={self.conf}",
                 f"count {self.logins_file}"]
        if mode:
            lines.append(f"mode {mode}")
        Path(f"{self.shim}.conf").write_text("\n".join(lines) + "\n")

    def logins(self):
        """How many times the token was asked to log in (C_Login), by anyone."""
        if not self.logins_file.exists():
            return 0
        return len(self.logins_file.read_text().splitlines())

    def shim_uri(self, *attrs, pin_file=None):
        return self.uri(*attrs, pin_file=pin_file, module=self.shim)


@pytest.fixture
def shim_token(tmp_path, build_dir):
    return ShimToken(tmp_path / "shim-hsm", build_dir)


@pytest.fixture
def penv(kenv, token):
    kenv.env["SOFTHSM2_CONF"] = str(token.conf)
    kenv.env.update({k: v for k, v in os.environ.items()
                     if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")})
    r = kenv.login("--no-device")
    assert r.returncode == EXIT_OK, r.stderr
    return kenv


def confirmed_login_with(env, record):
    before = len(env.mock.requests())
    r = env.login()
    assert r.returncode == EXIT_OK, r.stderr
    assert "confirmed by device" in r.stderr
    login = env.mock.requests()[before:]
    assert [q["endpoint"] for q in login] == ["token", "challenge_create", "challenge_verify"]
    assert login[-1]["status"] == 200
    assert env.cache()["confirmed"] is True
    assert env.cache()["device_id"] == record["device_id"]


def bank_key(env, record):
    devices = [d for d in env.mock.state()["devices"] if d["id"] == record["device_id"]]
    assert len(devices) == 1 and devices[0]["verified"] is True
    return devices[0]["key"]


def assert_nothing_written(env):
    assert not env.record_file.exists()
    assert not env.key_file.exists()
    assert env.mock.requests("devices_create") == []


def test_a_key_made_with_pkcs11_tool_confirms_logins(penv, token):
    token.keypair("EC:prime256v1", "a1", "made-before")
    uri = token.uri("object=made-before", pin_file=token.pin_file)
    r = penv.enroll("--pkcs11", uri)
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(penv.record_file.read_text())
    assert record["key"] == uri
    assert not penv.key_file.exists()
    assert bank_key(penv, record) == token.public_point("made-before")
    confirmed_login_with(penv, record)
    r = penv.run("status")
    assert r.returncode == EXIT_OK, r.stderr
    assert "pkcs11" in r.stdout and PIN not in r.stdout


def test_a_key_generated_on_the_token_confirms_logins(penv, token):
    uri = token.uri("object=kontist", pin_file=token.pin_file)
    r = penv.enroll("--pkcs11", uri, "--generate")
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(penv.record_file.read_text())
    assert record["key"].startswith("pkcs11:") and "id=" in record["key"]
    assert f"pin-source=file:{token.pin_file}" in unquote(record["key"])
    assert bank_key(penv, record) == token.public_point("kontist")
    # the private key is sensitive and cannot leave the token
    listing = token.objects()
    assert "Private Key Object; EC" in listing
    assert "sensitive" in listing and "never extractable" in listing
    confirmed_login_with(penv, record)


def test_a_wrong_pin_is_an_error_and_tried_once(penv, token, tmp_path):
    token.keypair("EC:prime256v1", "b2", "k")
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("999999\n")
    wrong.chmod(0o600)
    r = penv.enroll("--pkcs11", token.uri("object=k", pin_file=wrong))
    assert r.returncode == EXIT_MFA, r.stderr
    assert f'wrong PIN for token "{TOKEN}"' in r.stderr, r.stderr
    assert "999999" not in r.stderr
    assert_nothing_written(penv)


def test_generate_with_a_wrong_pin_leaves_the_token_as_it_was(penv, token, tmp_path):
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("999999\n")
    wrong.chmod(0o600)
    r = penv.enroll("--pkcs11", token.uri("object=kontist", pin_file=wrong), "--generate")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "wrong PIN" in r.stderr, r.stderr
    assert_nothing_written(penv)
    assert "kontist" not in token.objects()


def test_a_token_whose_module_is_gone_is_an_error(penv, token, tmp_path):
    gone = tmp_path / "removed" / "libsofthsm2.so"
    r = penv.enroll("--pkcs11", token.uri("object=k", pin_file=token.pin_file, module=gone))
    assert r.returncode == EXIT_MFA, r.stderr
    assert f"PKCS#11 module {gone} cannot be loaded" in r.stderr, r.stderr
    assert_nothing_written(penv)


def test_a_key_not_on_p256_is_refused(penv, token):
    token.keypair("EC:secp384r1", "c3", "p384")
    r = penv.enroll("--pkcs11", token.uri("object=p384", pin_file=token.pin_file))
    assert r.returncode == EXIT_MFA, r.stderr
    assert f'the key on token "{TOKEN}" is on another curve than P-256' in r.stderr, r.stderr
    assert_nothing_written(penv)


def test_a_pin_in_the_uri_is_refused(penv, token):
    token.keypair("EC:prime256v1", "d4", "k")
    r = penv.enroll("--pkcs11", token.uri("object=k") + f"&pin-value={PIN}")
    # refused when the reference is checked, before the token or the bank is asked anything
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "pin-value in a pkcs11: key URI is refused" in r.stderr
    assert "use pin-source=file:/path" in r.stderr
    assert PIN not in r.stderr
    assert_nothing_written(penv)


def test_without_pin_source_or_terminal_the_pin_is_not_guessed(penv, token):
    token.keypair("EC:prime256v1", "e5", "k")
    r = penv.enroll("--pkcs11", token.uri("object=k"))
    assert r.returncode == EXIT_MFA, r.stderr
    assert "needs a PIN and there is no terminal to ask on" in r.stderr, r.stderr
    assert_nothing_written(penv)


def test_a_module_others_could_replace_is_refused(penv, token, tmp_path):
    """A module runs inside the process that loads it (in the PAM helper, a root process): one in
    a directory others may write to could be swapped for anyone's code."""
    token.keypair("EC:prime256v1", "f6", "k")
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(MODULE, shared / "libsofthsm2.so")
    shared.chmod(0o777)
    r = penv.enroll("--pkcs11", token.uri("object=k", pin_file=token.pin_file,
                                          module=shared / "libsofthsm2.so"))
    assert r.returncode == EXIT_MFA, r.stderr
    assert f"{shared} is writable by group or others" in r.stderr, r.stderr
    assert_nothing_written(penv)
    shared.chmod(0o755)
    (shared / "libsofthsm2.so").chmod(0o666)
    r = penv.enroll("--pkcs11", token.uri("object=k", pin_file=token.pin_file,
                                          module=shared / "libsofthsm2.so"))
    assert r.returncode == EXIT_MFA, r.stderr
    assert "libsofthsm2.so is writable by group or others" in r.stderr, r.stderr
    assert_nothing_written(penv)


@pytest.mark.parametrize("module", [None, "softhsm2"])
def test_modules_come_from_the_p11kit_registry(penv, token, module):
    """Without module-path the key is looked for in the modules p11-kit's registry names (the
    softhsm2 package registers its module); module-name= picks one of them."""
    token.keypair("EC:prime256v1", "a7", "registry")
    query = f"?pin-source=file:{token.pin_file}"
    if module:
        query += f"&module-name={module}"
    uri = f"pkcs11:token={TOKEN};object=registry" + query
    r = penv.enroll("--pkcs11", uri)
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(penv.record_file.read_text())
    assert bank_key(penv, record) == token.public_point("registry")
    confirmed_login_with(penv, record)


def test_an_unknown_module_name_is_an_error(penv, token):
    r = penv.enroll("--pkcs11", f"pkcs11:token={TOKEN}?module-name=no-such-module"
                                f"&pin-source=file:{token.pin_file}")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "no PKCS#11 module named no-such-module is registered with p11-kit" in r.stderr
    assert_nothing_written(penv)


def test_the_pin_is_asked_on_the_terminal_without_echo(penv, token):
    """Without a pin-source, kontist-auth asks for the PIN on its terminal, without echo, once."""
    from test_helper_terminal import Terminal, confirm_binding_request
    token.keypair("EC:prime256v1", "b8", "typed")
    uri = token.uri("object=typed")
    terminal = Terminal()
    try:
        proc = terminal.run(penv, "device", "enroll", "--pkcs11", uri)
        terminal.read_until(f'PIN for token "{TOKEN}": '.encode())
        terminal.wait_for_echo(False)
        terminal.type(PIN + "\n")
        confirm_binding_request(penv)
        terminal.read_until(b" left): ")
        terminal.type(penv.mock.last_otp() + "\n")
        out, err = proc.communicate(timeout=60)
        terminal.drain()
        assert proc.returncode == EXIT_OK, err
        assert PIN.encode() not in terminal.output
        assert terminal.echo(), "echo was not restored"
        assert terminal.output.count(b"PIN for token") == 1
        record = json.loads(penv.record_file.read_text())
        assert record["key"] == uri

        # A wrong password at login: no PIN prompt at all, the token is not touched.
        terminal.output = b""
        before = len(penv.mock.requests())
        proc = terminal.run(penv, "login")
        terminal.read_until(f"Kontist password for {DEMO_USER}: ".encode(), timeout=30)
        terminal.type("not the password\n")
        out, err = proc.communicate(timeout=60)
        terminal.drain()
        assert proc.returncode == EXIT_AUTH, err
        assert b"PIN for token" not in terminal.output
        assert [q["endpoint"] for q in penv.mock.requests()[before:]] == ["token"]

        # A wrong PIN at login: asked once, after the bank accepted the password; no second try
        # and nothing sent after it.
        terminal.output = b""
        before = len(penv.mock.requests())
        proc = terminal.run(penv, "login")
        terminal.read_until(f"Kontist password for {DEMO_USER}: ".encode(), timeout=30)
        terminal.type(DEMO_PASSWORD + "\n")
        terminal.read_until(b"PIN for token", timeout=30)
        terminal.type("000000\n")
        out, err = proc.communicate(timeout=60)
        terminal.drain()
        assert proc.returncode == EXIT_MFA, err
        assert b"wrong PIN" in err, err
        assert terminal.output.count(b"PIN for token") == 1
        assert terminal.output.index(b"Kontist password") < terminal.output.index(b"PIN for")
        assert [q["endpoint"] for q in penv.mock.requests()[before:]] == ["token"]
    finally:
        terminal.close()


LOCKED_MESSAGE = (f'the PIN of token "{TOKEN}" is locked: unblock it with the PUK or the '
                  "token's administration tool")


@pytest.mark.parametrize("generate", [False, True], ids=["existing-key", "generate"])
def test_a_locked_token_is_an_error_and_its_pin_is_not_tried(penv, shim_token, generate):
    """The token says its PIN is locked: enrolling ends with the documented error before any
    C_Login (the PIN from pin-source is there, and not tried), and nothing is written: no
    record, no key file, no key on the token, no device at the bank, the cache as it was."""
    if not generate:
        shim_token.keypair("EC:prime256v1", "c9", "k")
    objects = shim_token.objects()
    cache = penv.cache_file.read_bytes()
    shim_token.set_mode("locked")
    before = len(penv.mock.requests())
    args = (["--pkcs11", shim_token.shim_uri("object=kontist", pin_file=shim_token.pin_file),
             "--generate"] if generate else
            ["--pkcs11", shim_token.shim_uri("object=k", pin_file=shim_token.pin_file)])
    r = penv.enroll(*args)
    assert r.returncode == EXIT_MFA, r.stderr
    assert LOCKED_MESSAGE in r.stderr, r.stderr
    assert shim_token.logins() == 0
    assert PIN not in r.stderr
    assert_nothing_written(penv)
    assert not penv.config_dir.exists() or list(penv.config_dir.iterdir()) == []
    assert penv.cache_file.read_bytes() == cache
    assert penv.mock.requests()[before:] == []  # not even a binding request
    assert shim_token.objects() == objects


@pytest.mark.parametrize("mfa", [(), ("--mfa", "device")], ids=["default", "device-only"])
def test_login_with_a_key_on_a_locked_token_is_an_error_without_a_pin_try(penv, shim_token,
                                                                           mfa):
    """A key enrolled while the token was usable; then its PIN is locked. Login: the password
    is accepted, the token says it is locked, and that ends the login (no C_Login, no other
    factor, nothing signed, the cache as it was)."""
    uri = shim_token.shim_uri("object=kontist", pin_file=shim_token.pin_file)
    r = penv.enroll("--pkcs11", uri, "--generate")
    assert r.returncode == EXIT_OK, r.stderr
    record = json.loads(penv.record_file.read_text())
    cache = penv.cache_file.read_bytes()
    logins = shim_token.logins()
    assert logins > 0  # the enrollment did log in
    shim_token.set_mode("locked")

    before = len(penv.mock.requests())
    r = penv.login(*mfa)
    assert r.returncode == EXIT_MFA, r.stderr
    assert LOCKED_MESSAGE in r.stderr, r.stderr
    assert shim_token.logins() == logins
    assert [q["endpoint"] for q in penv.mock.requests()[before:]] == ["token"]
    assert penv.cache_file.read_bytes() == cache
    assert json.loads(penv.record_file.read_text()) == record
