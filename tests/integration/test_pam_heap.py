"""No secret left behind in the memory of pam_kontist.so's host process.

pam_driver runs with tests/pam/freescan.so preloaded in front of pam_wrapper: every block the
process frees (or gives up through realloc), from start-up through pam_authenticate, pam_setcred,
pam_end and exit, is searched for the planted secrets (the Kontist password, a wrong or local
password where the case has one, the client secret, the Basic credentials built from it, a line
of the device's private key) and for anything that looks like a JWT (every token the mock issues
is one). A hit is a secret some code freed without wiping it first; the report names the block
and a backtrace of the free. At exit, after pam_end, all the process's private writable memory
(heap and arenas, stacks, libraries' data) is searched the same way, which also finds secrets
that were never freed or sit outside the heap (the environment, which hands the earlier module's
password to pam_set_items, and freescan's own list are left out).

The driver wipes its own copies of the password; libpam wipes PAM_AUTHTOK and conversation
answers. The negative controls show that the check works in the same process: the driver's
`free-secrets` op frees the password and a JWT-looking string unwiped, and both are reported.

An LD_PRELOAD free() cannot sit next to AddressSanitizer, which owns malloc and free: these tests
skip under a sanitizer build.
"""

import base64
import itertools
import os
import re

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from pam_support import DEMO_PASSWORD, PAM_SET_ITEMS, sanitizer_runtime

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

WRONG_PASSWORD = "not-the-password-42"
LOCAL_PASSWORD = "a-local-password-7"
RUNS = itertools.count(1)
HIT = re.compile(r"^hit kind=(\w+)(?: index=(\d+))? size=(\d+) offset=(\d+) via=(\S+) pid=(\d+)$")


@pytest.fixture
def freescan(build_dir):
    """The library's path; skips the test under a sanitizer build (before any mock starts)."""
    if (os.environ.get("KONTIST_SANITIZE") == "1"
            or sanitizer_runtime(build_dir / "tests" / "pam" / "pam_driver")):
        pytest.skip("an LD_PRELOAD free() wrapper cannot work under AddressSanitizer, "
                    "which replaces malloc and free itself")
    lib = build_dir / "tests" / "pam" / ".libs" / "freescan.so"
    assert lib.exists(), f"{lib} is missing: run `make check` in {build_dir}"
    return lib


class Scan:
    """One driver run under freescan: the secrets planted and the report's lines."""

    def __init__(self, run, names, lines):
        self.run = run
        self.names = names  # index (1-based, as in the report) -> name
        self.lines = lines

    @property
    def starts(self):
        return [line for line in self.lines if line.startswith("start ")]

    @property
    def hits(self):
        """(what, size, via) of each hit: what is a secret's name or "jwt"."""
        out = []
        for line in self.lines:
            m = HIT.match(line)
            if m:
                what = "jwt" if m.group(1) == "jwt" else self.names[int(m.group(2))]
                out.append((what, int(m.group(3)), m.group(5)))
        return out

    @property
    def freed(self):
        """Hits in blocks as they were freed: (what, block size, free|realloc|realloc-shrink)."""
        return [hit for hit in self.hits if not hit[2].startswith("exit:")]

    @property
    def at_exit(self):
        """Hits in the process's writable memory at exit: (what, mapping)."""
        return [(what, via[len("exit:"):]) for what, _, via in self.hits
                if via.startswith("exit:")]

    def __repr__(self):
        return "\n".join([f"planted: {self.names}", *self.lines, repr(self.run)])


def key_line(key_path):
    """The first line of base64 inside the device key's PEM: unique key material."""
    lines = key_path.read_text().splitlines()
    return next(line for line in lines[1:] if not line.startswith("-----"))


def scan_run(world, lib, service, user, secrets, ops, **kw):
    """Runs the driver with freescan preloaded; returns a Scan."""
    tag = f"freescan{next(RUNS)}"
    secrets_path = world.base / f"{tag}.secrets"
    report_path = world.base / f"{tag}.report"
    names = {}
    fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for i, (name, value) in enumerate(secrets.items(), start=1):
            assert value and "\n" not in value
            f.write(value + "\n")
            names[i] = name
    extra_env = dict(kw.pop("extra_env", None) or {})
    extra_env.update({
        "LD_PRELOAD": f"{lib}:{world.env()['LD_PRELOAD']}",
        "KT_FREESCAN_SECRETS": str(secrets_path),
        "KT_FREESCAN_REPORT": str(report_path),
        "KT_FREESCAN_BACKTRACE": "1",
        "KT_FREESCAN_AT_EXIT": "1",
    })
    run = world.run(service, user, ops=ops, extra_env=extra_env, **kw)
    lines = report_path.read_text().splitlines() if report_path.exists() else []
    scan = Scan(run, names, lines)
    print(repr(scan))  # the whole report, backtraces included, in the output of a failed test
    assert len(scan.starts) >= 1, f"freescan did not start:\n{scan!r}"
    assert f"secrets={len(secrets)}" in scan.starts[0], scan
    assert any(line.startswith("exit ") for line in scan.lines), f"no scan at exit:\n{scan!r}"
    return scan


def assert_clean(scan):
    assert scan.freed == [], f"secrets in freed memory:\n{scan!r}"
    assert scan.at_exit == [], f"secrets in memory at exit:\n{scan!r}"


def planted(key_path=None, **extra):
    basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()).decode()
    secrets = {"password": DEMO_PASSWORD, "client secret": DEMO_CLIENT_SECRET,
               "basic credentials": basic}
    if key_path is not None:
        secrets["device key"] = key_line(key_path)
    secrets.update(extra)
    return secrets


# --- the check itself ------------------------------------------------------------------------

def test_detector_reports_unwiped_secrets(freescan, world):
    """Negative control without the module: exactly the driver's own planted frees are seen,
    and what they left in memory is still there at exit."""
    scan = scan_run(world, freescan, "other", "nobody", planted(), ops=("free-secrets",))
    assert sorted((what, via) for what, _, via in scan.freed) == [("jwt", "free"),
                                                                  ("password", "free")], scan
    assert all(size >= (1000 if what == "password" else 600) for what, size, _ in scan.freed)
    assert sorted({what for what, _ in scan.at_exit}) == ["jwt", "password"], scan


def test_detector_reports_unwiped_secrets_after_a_login(freescan, world, alice):
    """Negative control in a process that loaded the module and logged in: still seen."""
    key_path = alice.key_path
    world.service("kontist")
    scan = scan_run(world, freescan, "kontist", "alice", planted(key_path),
                    ops=("auth", "setcred-establish", "free-secrets"))
    assert scan.run.codes == ["PAM_SUCCESS"] * 3, scan
    assert any(what == "password" and size >= 1000 for what, size, _ in scan.freed), scan
    assert any(what == "jwt" and size >= 600 for what, size, _ in scan.freed), scan


# --- the module --------------------------------------------------------------------------------

def test_login_leaves_no_secret(freescan, world, alice):
    """Password, device MFA, pam_setcred, pam_end: nothing of it in freed memory."""
    key_path = alice.key_path
    world.service("kontist")
    scan = scan_run(world, freescan, "kontist", "alice", planted(key_path),
                    ops=("auth", "setcred-establish"))
    assert scan.run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"], scan
    assert_clean(scan)


def test_wrong_password_leaves_no_secret(freescan, world, alice):
    key_path = alice.key_path
    world.service("kontist")
    scan = scan_run(world, freescan, "kontist", "alice",
                    planted(key_path, **{"wrong password": WRONG_PASSWORD}),
                    ops=("auth", "setcred-establish"), password=WRONG_PASSWORD)
    assert scan.run.code == "PAM_AUTH_ERR", scan
    assert_clean(scan)


@pytest.mark.parametrize("earlier", [DEMO_PASSWORD, LOCAL_PASSWORD],
                         ids=["earlier-password-is-kontist", "earlier-password-is-local"])
def test_try_first_pass_leaves_no_secret(freescan, world, alice, earlier):
    """try_first_pass after a module that set PAM_AUTHTOK (pam_wrapper's pam_set_items): with the
    Kontist password a login without a question; with a local one a refused attempt (and a login
    too, should the module ask again). Neither password may stay behind."""
    assert PAM_SET_ITEMS, "pam_set_items.so (libpam-wrapper) is not installed"
    key_path = alice.key_path
    world.service("tryfirst", "try_first_pass", before=[f"auth required {PAM_SET_ITEMS}"],
                  module_types=("auth",))
    scan = scan_run(world, freescan, "tryfirst", "alice",
                    planted(key_path, **{"local password": LOCAL_PASSWORD}),
                    ops=("auth", "setcred-establish"), extra_env={"PAM_AUTHTOK": earlier})
    if earlier == DEMO_PASSWORD:
        assert scan.run.code == "PAM_SUCCESS", scan
        assert scan.run.prompts == [], scan
    else:
        assert scan.run.code in ("PAM_SUCCESS", "PAM_AUTH_ERR"), scan
    assert_clean(scan)
