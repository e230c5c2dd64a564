"""pam_kontist.so with real, throwaway users: per-user files read and written with privileges
dropped to the user, and the hand-off of the confirmed token to `kontist-auth token`.

These tests create users with useradd and remove them afterwards, so they need root; without
root they are skipped (test_pam_codes and test_pam_cred cover the same logic with nss_wrapper
users that share the test process's uid, where dropping privileges changes nothing).
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from kt_crypto import jwt_claims, make_key, write_key_pem
from pam_support import DEMO_CLIENT_ID, DEMO_USER, cache_path

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creating throwaway users with useradd needs "
                       "root; the nss_wrapper tests cover the module logic without root"),
    pytest.mark.usefixtures("no_mock_tracebacks"),
]


class RealUser:
    def __init__(self, name, uid, gid, home):
        self.name, self.uid, self.gid, self.home = name, uid, gid, Path(home)

    def run(self, *args, env=None, **kw):
        """Runs a command as this user with a clean environment."""
        base = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "LC_ALL": "C"}
        base.update(env or {})
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                               "--init-groups", "env", "-i",
                               *[f"{k}={v}" for k, v in base.items()], *args],
                              capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def user_base():
    """A directory every test user can reach (pytest's own tmp is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="ktpam-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_user(user_base):
    created = []

    def make():
        name = "ktp" + uuid.uuid4().hex[:10]
        home = user_base / name
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell",
                        "/usr/sbin/nologin", "--user-group", name], check=True,
                       capture_output=True)
        created.append(name)
        out = subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True)
        uid = int(out.stdout)
        gid = int(subprocess.run(["id", "-g", name], capture_output=True, text=True,
                                 check=True).stdout)
        home.mkdir(mode=0o700)
        os.chown(home, uid, gid)
        return RealUser(name, uid, gid, home)

    yield make
    for name in created:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def enrolled(world, make_user):
    user = make_user()
    device_id = world.enroll(user.home, uid=user.uid, gid=user.gid)[0]
    user.device_id = device_id
    return user


def run_real(world, service, user, **kw):
    """The driver as root, real users from the system's NSS."""
    run = world.run(service, user.name, nss=False, **kw)
    # Whatever the module dropped to, the host gets its identity back.
    assert (run.result["euid"], run.result["egid"]) == (0, 0), run.result
    return run


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, stat.S_IMODE(st.st_mode)


def helper_config(world, user_base, mock):
    """Configuration for the helper run as the user: no client secret (root's), a CA copy the
    user can read."""
    ca = user_base / "ca.pem"
    shutil.copy(mock.ca_file, ca)
    os.chmod(ca, 0o644)
    path = user_base / "helper.conf"
    path.write_text(f"base_url = {mock.url}\nclient_id = {DEMO_CLIENT_ID}\nca_file = {ca}\n")
    os.chmod(path, 0o644)
    return path


def test_login_and_hand_off_to_the_helper(world, enrolled, mock, build_dir, user_base):
    """The whole story: a PAM login of an enrolled user makes three API requests over one
    connection and leaves a confirmed token that `kontist-auth token` hands out offline."""
    user = enrolled
    world.service("kontist")
    since = len(mock.requests())
    run = run_real(world, "kontist", user, ops=("auth", "setcred-establish"))
    assert run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"], run
    requests = mock.requests()[since:]
    assert [r["endpoint"] for r in requests] == ["token", "challenge_create", "challenge_verify"]
    assert len({r["conn"] for r in requests}) == 1
    assert run.attempt()["device"] == user.device_id

    # Written with the user's identity: owned by the user, private.
    cache = cache_path(user.home)
    assert owner_mode(cache) == (user.uid, 0o600)
    assert owner_mode(cache.parent) == (user.uid, 0o700)
    assert os.lstat(user.home / ".local").st_uid == user.uid
    token = json.loads(cache.read_text())["access_token"]
    assert "cnf" in jwt_claims(token)

    config = helper_config(world, user_base, mock)
    before = len(mock.requests())
    helper = user.run(str(build_dir / "helper" / "kontist-auth"), "token",
                      env={"KONTIST_CONFIG": str(config)})
    assert helper.returncode == 0, helper.stderr
    assert helper.stdout == token + "\n"
    # Handed out from the cache: no request at all, in particular none to the token endpoint.
    assert mock.requests()[before:] == []


def test_cache_written_during_authentication_as_the_user(world, enrolled):
    """Written by pam_authenticate (sshd's keyboard-interactive process never calls
    pam_setcred), as the user; pam_setcred(PAM_DELETE_CRED) leaves it to the user."""
    world.service("kontist")
    run = run_real(world, "kontist", enrolled, ops=("auth",))
    assert run.codes == ["PAM_SUCCESS"], run
    assert owner_mode(cache_path(enrolled.home)) == (enrolled.uid, 0o600)
    assert owner_mode(cache_path(enrolled.home).parent) == (enrolled.uid, 0o700)
    run = run_real(world, "kontist", enrolled, ops=("setcred-establish", "setcred-delete"))
    assert run.codes == ["PAM_SUCCESS"] * 2, run
    assert cache_path(enrolled.home).exists()


def test_logout_on_close_as_the_user(world, enrolled):
    world.service("kontist", "logout_on_close")
    run_real(world, "kontist", enrolled, ops=("auth", "setcred-establish"))
    assert cache_path(enrolled.home).exists()
    run_real(world, "kontist", enrolled, ops=("close",))
    assert not cache_path(enrolled.home).exists()


def test_key_only_root_can_read(world, enrolled):
    """A key root could read but the user cannot: read as the user, it is unusable."""
    key_path = enrolled.home / ".config" / "kontist" / "device-key.pem"
    os.chown(key_path, 0, 0)
    os.chmod(key_path, 0o600)
    world.service("kontist")
    run = run_real(world, "kontist", enrolled)
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert run.attempt()["error"] == "key_unusable"


def test_config_dir_pointing_into_roots_files(world, make_user, mock, tmp_path):
    """The user points ~/.config/kontist at a root-only directory holding a valid record and
    key (root-owned files pass the owner check). Read as the user, it is out of reach."""
    user = make_user()
    world.pin(user.name)
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir(mode=0o700)
    fake_home = tmp_path / "roothome"
    fake_home.mkdir()
    world.enroll(fake_home)  # root-owned record and key
    shutil.move(str(fake_home / ".config" / "kontist"), str(secret_dir / "kontist"))
    os.chmod(secret_dir / "kontist", 0o700)
    (user.home / ".config").mkdir(mode=0o700)
    os.chown(user.home / ".config", user.uid, user.gid)
    os.symlink(secret_dir / "kontist", user.home / ".config" / "kontist")
    os.lchown(user.home / ".config" / "kontist", user.uid, user.gid)
    world.service("kontist")
    run = run_real(world, "kontist", user)
    assert run.code != "PAM_SUCCESS"
    assert run.code == "PAM_SYSTEM_ERR", run
    assert run.attempt()["error"] == "io"


def test_key_of_another_user(world, enrolled, make_user):
    other = make_user()
    key_path = enrolled.home / ".config" / "kontist" / "device-key.pem"
    os.chown(key_path, other.uid, other.gid)
    world.service("kontist")
    run = run_real(world, "kontist", enrolled)
    assert run.code == "PAM_CRED_INSUFFICIENT", run


def test_record_of_another_user(world, enrolled, make_user):
    other = make_user()
    record = enrolled.home / ".config" / "kontist" / "device.json"
    os.chmod(enrolled.home / ".config" / "kontist", 0o755)
    os.chmod(record, 0o600)
    os.chown(record, other.uid, other.gid)
    world.service("kontist")
    run = run_real(world, "kontist", enrolled)
    assert run.code in ("PAM_SYSTEM_ERR",), run


def test_state_dir_the_user_cannot_write(world, enrolled):
    """Root could write here; the user cannot, so the cache is not written."""
    state_parent = enrolled.home / ".local" / "state"
    state_parent.mkdir(parents=True)
    os.chown(enrolled.home / ".local", enrolled.uid, enrolled.gid)
    os.chmod(state_parent, 0o755)  # root's
    world.service("kontist")
    run = run_real(world, "kontist", enrolled, ops=("auth", "setcred-establish"))
    # The login stands; the failed write is logged.
    assert run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"], run
    assert any("token cache not written" in m for _, m in run.syslog), run.syslog
    assert not (state_parent / "kontist").exists()


def test_home_not_reachable(world, make_user):
    """A user whose home does not exist is simply not enrolled."""
    user = make_user()
    user.home.rmdir()
    world.service("kontist")
    run = run_real(world, "kontist", user)
    assert run.code == "PAM_USER_UNKNOWN", run


def test_threads_with_real_users(world, make_user, mock):
    """Several handles for different users at once in one root process: each thread switches
    only its own credentials to its user, so no thread reads or writes as another user."""
    users = [make_user() for _ in range(2)]
    for u in users:
        u.device_id = world.enroll(u.home, uid=u.uid, gid=u.gid)[0]
    world.service("kontist")
    # Each login is bounded by its own login_timeout; the total only catches a hung process.
    run = world.run("kontist", ",".join(u.name for u in users), nss=False,
                    ops=("auth", "setcred-establish"), threads=4, repeat=10,
                    expect=("PAM_SUCCESS", "PAM_SUCCESS"), timeout=600)
    assert run.result["mismatches"] == 0, run.result["first_mismatch"]
    assert (run.result["euid"], run.result["egid"]) == (0, 0)
    for u in users:
        cache = cache_path(u.home)
        assert owner_mode(cache) == (u.uid, 0o600)
        assert json.loads(cache.read_text())["device_id"] == u.device_id


# --- the central authfile ------------------------------------------------------------------------

def central_key(world, mock, name):
    keydir = world.etc / "keys"
    keydir.mkdir(mode=0o700, exist_ok=True)
    device_id, key = mock.enroll_device(key=make_key(), name=name)
    return device_id, write_key_pem(key, keydir / f"{name}.pem")


def test_authfile_with_root_keys(world, make_user, mock):
    user = make_user()
    device_id, key_path = central_key(world, mock, user.name)
    authfile = world.etc / "users"
    authfile.write_text(f"{user.name} {DEMO_USER} {device_id} {key_path}\n")
    world.service("kontist", f"authfile={authfile}")
    run = run_real(world, "kontist", user, ops=("auth", "setcred-establish"))
    assert run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"], run
    # The token still goes to the user's own cache, written as the user.
    assert owner_mode(cache_path(user.home)) == (user.uid, 0o600)


def test_authfile_owned_by_a_user(world, make_user, mock):
    user = make_user()
    device_id, key_path = central_key(world, mock, user.name)
    authfile = world.etc / "users"
    authfile.write_text(f"{user.name} {DEMO_USER} {device_id} {key_path}\n")
    os.chown(authfile, user.uid, user.gid)
    world.service("kontist", f"authfile={authfile} nouserok")
    run = run_real(world, "kontist", user)
    assert run.code == "PAM_SERVICE_ERR", run


def test_authfile_key_owned_by_the_user(world, make_user, mock):
    """Central keys are root's: a key the user could replace is refused."""
    user = make_user()
    device_id, key_path = central_key(world, mock, user.name)
    os.chown(key_path, user.uid, user.gid)
    authfile = world.etc / "users"
    authfile.write_text(f"{user.name} {DEMO_USER} {device_id} {key_path}\n")
    world.service("kontist", f"authfile={authfile}")
    run = run_real(world, "kontist", user)
    assert run.code == "PAM_CRED_INSUFFICIENT", run


def test_config_owned_by_a_user(world, make_user):
    """The module trusts only root's configuration: a pinned user's login fails on it. A user
    root has not pinned is told apart before the configuration is read (a broken configuration
    must not lock out everyone the stack lets through with nouserok)."""
    user = make_user()
    other = make_user()
    world.pin(user.name)
    os.chown(world.config, user.uid, user.gid)
    world.service("kontist")
    run = run_real(world, "kontist", user)
    assert run.code == "PAM_SERVICE_ERR", run
    run = run_real(world, "kontist", other)
    assert run.code == "PAM_USER_UNKNOWN", run
