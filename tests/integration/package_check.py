"""The Debian packages, installed into a root of their own (dpkg --root, maintainer scripts run
chrootless with DPKG_ROOT, so pam-auth-update and debconf work on that root, never on this
machine): the installed files, the pam-auth-update profile, purge, and kontist-auth doctor
of the installed binary against the mock, on a good setup and on every broken one of
test_helper_doctor's table.

Not collected with the other integration tests (its name does not start with test_):
scripts/check-package runs it after building the packages, with KONTIST_DEB_DIR naming the
directory that holds them."""

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_helper_doctor import BROKEN, DoctorEnv, assert_all_pass, checks

DEB_DIR = Path(os.environ.get("KONTIST_DEB_DIR", "/nonexistent"))
MULTIARCH = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True,
                           text=True).stdout.strip()
ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def deb(name):
    (path,) = glob.glob(str(DEB_DIR / f"{name}_*.deb"))
    return path


def new_root(path):
    """An empty dpkg root with what pam-auth-update and debconf need: the common-* stacks and
    profiles of this machine, copied."""
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/pam.d", "var/lib/pam",
              "usr/share/pam-configs", "var/cache/debconf"):
        (path / d).mkdir(parents=True)
    for f in ("var/lib/dpkg/status", "var/lib/dpkg/available"):
        (path / f).touch()
    shutil.copy("/etc/debconf.conf", path / "etc")
    for f in glob.glob("/etc/pam.d/common-*"):
        shutil.copy(f, path / "etc/pam.d")
    for f in glob.glob("/var/lib/pam/*"):
        shutil.copy(f, path / "var/lib/pam")
    for f in glob.glob("/usr/share/pam-configs/*"):
        if not f.endswith("/kontist"):
            shutil.copy(f, path / "usr/share/pam-configs")
    return path


def dpkg(root, *args):
    r = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                        *args], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def pam_auth_update(root, *args):
    r = subprocess.run(["pam-auth-update", "--root", str(root), *args], capture_output=True,
                       text=True, env=dict(ENV, DPKG_ROOT=str(root)), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def install(root):
    dpkg(root, "-i", deb("libpam-kontist"), deb("kontist-auth"))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = new_root(tmp_path_factory.mktemp("deb") / "root")
    install(path)
    return path


EXPECTED = [
    f"lib/{MULTIARCH}/security/pam_kontist.so",
    "usr/libexec/kontist-auth/kontist-pam-helper",
    "usr/share/pam-configs/kontist",
    "usr/share/man/man8/pam_kontist.8.gz",
    "usr/share/doc/libpam-kontist/README.Debian",
    "usr/share/doc/libpam-kontist/copyright",
    "usr/bin/kontist-auth",
    "usr/bin/git-credential-kontist",
    "usr/share/man/man1/kontist-auth.1.gz",
    "usr/share/man/man1/git-credential-kontist.1.gz",
    "usr/share/man/man5/kontist.conf.5.gz",
    "usr/share/bash-completion/completions/kontist-auth",
    "usr/share/bash-completion/completions/git-credential-kontist",
    "usr/share/zsh/vendor-completions/_kontist-auth",
    "usr/share/doc/kontist-auth/examples/pam.d/sshd",
    "usr/share/doc/kontist-auth/copyright",
]


@pytest.mark.parametrize("path", EXPECTED)
def test_installed_file(root, path):
    assert (root / path).exists(), path


def test_installed_modes_and_links(root):
    assert os.readlink(root / "usr/bin/git-credential-kontist") == "kontist-auth"
    for exe in ("usr/bin/kontist-auth", "usr/libexec/kontist-auth/kontist-pam-helper"):
        assert (root / exe).stat().st_mode & 0o7777 == 0o755, exe
    module = root / f"lib/{MULTIARCH}/security/pam_kontist.so"
    assert module.stat().st_mode & 0o7777 == 0o644
    # The module runs the helper where the package put it.
    assert b"/usr/libexec/kontist-auth/kontist-pam-helper" in module.read_bytes()
    assert not list(root.rglob("*.la")) and not list(root.rglob("*.a"))


def test_installed_version(root):
    r = subprocess.run([root / "usr/bin/kontist-auth", "--version"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("kontist-auth ") and "\nlibcurl " in r.stdout


def test_profile_is_registered_but_not_enabled(root):
    # What the postinst ran, once more by hand: the profile stays off.
    pam_auth_update(root, "--package")
    assert "kontist" in (root / "var/lib/pam/seen").read_text().split()
    assert "pam_kontist" not in (root / "etc/pam.d/common-auth").read_text()
    profile = (root / "usr/share/pam-configs/kontist").read_text()
    assert "Default: no" in profile and "/etc/kontist/users" in profile


def test_profile_enable_puts_kontist_before_unix_then_disable(root):
    pam_auth_update(root, "--enable", "kontist")
    lines = [x for x in (root / "etc/pam.d/common-auth").read_text().splitlines()
             if x.startswith("auth")]
    kontist = [i for i, x in enumerate(lines) if "pam_kontist.so" in x]
    unix = [i for i, x in enumerate(lines) if "pam_unix.so" in x]
    assert kontist and unix and kontist[0] < unix[0], lines
    # Kontist or nothing for pinned users: common-auth is sudo's and su's too, so no fallback to
    # the local password when the API is unavailable.
    assert "authinfo_unavail" not in lines[kontist[0]], lines
    assert "default=die" in lines[kontist[0]] and "ignore=ignore" in lines[kontist[0]]
    # success=end resolved to a jump over the rest of the primary block, onto pam_permit.
    assert "success=end" not in lines[kontist[0]]
    jump = int(lines[kontist[0]].split("success=")[1].split()[0].rstrip("]"))
    landing = lines[kontist[0] + jump + 1]
    assert "pam_permit.so" in landing or "pam_deny.so" not in landing, (jump, lines)
    assert all("pam_deny.so" not in x for x in lines[kontist[0] + jump + 1:]), (jump, lines)
    pam_auth_update(root, "--disable", "kontist")
    assert "pam_kontist" not in (root / "etc/pam.d/common-auth").read_text()


def test_remove_and_purge(tmp_path):
    root = new_root(tmp_path / "root")
    install(root)
    pam_auth_update(root, "--enable", "kontist")
    assert "pam_kontist" in (root / "etc/pam.d/common-auth").read_text()
    # Removing the module takes it out of the stacks before its files go.
    dpkg(root, "--remove", "libpam-kontist")
    assert "pam_kontist" not in (root / "etc/pam.d/common-auth").read_text()
    assert not (root / f"lib/{MULTIARCH}/security/pam_kontist.so").exists()
    dpkg(root, "--purge", "libpam-kontist", "kontist-auth")
    assert "kontist" not in (root / "var/lib/pam/seen").read_text().split()
    left = [p for p in root.rglob("*kontist*")]
    assert left == [], left


def test_remove_refused_while_a_hand_written_stack_names_the_module(tmp_path):
    """A stack written by hand (pam_kontist(8)'s sudo example) would refuse everyone, root
    included, once the module is gone: the prerm refuses the removal and names the stack."""
    root = new_root(tmp_path / "root")
    install(root)
    sudo = root / "etc/pam.d/sudo"
    sudo.write_text("# pam_kontist.so in a comment does not count\n"
                    "auth [success=done ignore=ignore default=die] pam_kontist.so nouserok\n"
                    "auth required pam_unix.so try_first_pass\n")
    r = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                        "--remove", "libpam-kontist"], capture_output=True, text=True, env=ENV,
                       timeout=120)
    assert r.returncode != 0, r.stdout + r.stderr
    assert str(sudo) in r.stderr and "still name pam_kontist.so" in r.stderr, r.stderr
    assert (root / f"lib/{MULTIARCH}/security/pam_kontist.so").exists()
    # Without the line (a comment naming the module is fine) the removal goes through.
    sudo.write_text("# pam_kontist.so in a comment does not count\n"
                    "auth required pam_unix.so\n")
    dpkg(root, "--remove", "libpam-kontist")
    assert not (root / f"lib/{MULTIARCH}/security/pam_kontist.so").exists()


# -- kontist-auth doctor, the installed binary, against the mock -----------------------------

@pytest.fixture
def installed_build(root, tmp_path):
    """A directory laid out like a build tree whose binaries are the installed ones, for
    DoctorEnv."""
    fake = tmp_path / "installed"
    (fake / "helper").mkdir(parents=True)
    (fake / "pam_kontist").mkdir()
    (fake / "helper" / "kontist-auth").symlink_to(root / "usr/bin/kontist-auth")
    (fake / "pam_kontist" / "kontist-pam-helper").symlink_to(
        root / "usr/libexec/kontist-auth/kontist-pam-helper")
    return fake


@pytest.fixture
def denv(tmp_path, mock, installed_build):
    return DoctorEnv(tmp_path, mock, installed_build)


def test_installed_doctor_good_setup(denv):
    r, report = denv.run()
    assert_all_pass(r, report)
    assert checks(report, "device-bound")[0]["status"] == "ok"


@pytest.mark.parametrize("breaker,check,detail,fix", BROKEN,
                         ids=[b[0].__name__[len("break_"):] for b in BROKEN])
def test_installed_doctor_broken_setup(denv, mock_factory, breaker, check, detail, fix):
    breaker(denv, mock_factory)
    r, report = denv.run()
    assert r.returncode != 0 and report["ok"] is False
    mine = [c for c in report["checks"] if c["status"] == "fail" and c["name"] == check]
    assert mine, (check, json.dumps(report["checks"], indent=1))
    assert detail in mine[0]["detail"] and fix in (mine[0]["fix"] or ""), mine[0]
