"""kontist-auth's token cache: refresh, locking, atomic replacement, file safety."""

import fcntl
import json
import os
import random
import stat
import subprocess
import time
from pathlib import Path

import pytest

from kt_crypto import jwt_claims
from pam_support import sanitizer_runtime
from test_helper_env import (EXIT_AUTH, EXIT_IO, EXIT_OK, EXIT_UNAVAILABLE, kenv,  # noqa: F401
                             kenv_factory)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="giving a file to another user needs root (CI runs as root)")
NOBODY = 65534


# -- refresh ---------------------------------------------------------------------------------

def test_expiring_token_is_refreshed(kenv):
    kenv.confirmed_login()
    old = kenv.expire_soon(30)
    refreshes = len(kenv.token_requests("refresh_token"))
    r = kenv.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    new = r.stdout.strip()
    assert new != old["access_token"]
    assert len(kenv.token_requests("refresh_token")) == refreshes + 1
    data = kenv.cache()
    assert data["access_token"] == new
    assert data["confirmed"] is True
    assert jwt_claims(new)["cnf"]
    assert data["expires_at"] > time.time() + 3000
    assert data["refresh_token"] == old["refresh_token"]  # no rotation: the old one is kept
    assert data["username"] == old["username"] and data["device_id"] == old["device_id"]
    assert stat.S_IMODE(kenv.cache_file.stat().st_mode) == 0o600


# 80 s and 50 s left bracket the 60 s; 80 rather than closer, so that a slow start of the program
# (the seconds from writing the cache to reading it) cannot bring it under 60.
@pytest.mark.parametrize("left,refreshed", [(300, False), (80, False), (50, True), (-100, True)])
def test_a_token_is_handed_out_only_with_60_seconds_left(kenv, left, refreshed):
    kenv.confirmed_login()
    old = kenv.set_cache(expires_at=int(time.time()) + left)["access_token"]
    refreshes = len(kenv.token_requests("refresh_token"))
    token = kenv.token()
    assert (token != old) == refreshed
    assert len(kenv.token_requests("refresh_token")) == refreshes + refreshed


def test_rotated_refresh_token_is_kept(mock_factory, kenv_factory):
    env = kenv_factory(mock_factory(rotate_refresh=True))
    env.confirmed_login()
    first = env.cache()["refresh_token"]
    env.expire_soon()
    env.token()
    second = env.cache()["refresh_token"]
    assert second != first
    # the retired one is useless now: only the kept one can refresh again
    env.expire_soon()
    env.token()
    assert env.cache()["refresh_token"] not in (first, second)
    assert len(env.token_requests("refresh_token")) == 2


def test_rejected_refresh_asks_for_a_new_login(kenv):
    kenv.confirmed_login()
    kenv.set_cache(refresh_token="not-a-refresh-token", expires_at=int(time.time()) + 10)
    r = kenv.run("token")
    assert r.returncode == EXIT_AUTH, r.stderr
    assert r.stdout == ""
    assert "rejected" in r.stderr and "kontist-auth login" in r.stderr
    assert "not-a-refresh-token" not in r.stderr


def test_expired_token_without_refresh_token_asks_for_a_login(kenv):
    kenv.confirmed_login()
    kenv.set_cache(refresh_token=None, expires_at=int(time.time()) - 5)
    r = kenv.run("token")
    assert r.returncode == EXIT_AUTH
    assert "kontist-auth login" in r.stderr


def test_refresh_while_the_service_is_down_keeps_the_cache(kenv):
    kenv.confirmed_login()
    kenv.expire_soon()
    before = kenv.cache_file.read_bytes()
    kenv.mock.set_fault(endpoint="token", kind="status", status=503, retry_after=30)
    r = kenv.run("token")
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert r.stdout == ""
    assert kenv.cache_file.read_bytes() == before
    kenv.mock.clear_faults()
    assert kenv.run("token").returncode == EXIT_OK


def has_open(pid, path):
    """Whether process *pid* has *path* open (False once it has ended)."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        return False
    for name in names:
        try:
            if os.readlink(f"{fd_dir}/{name}") == path:
                return True
        except FileNotFoundError:
            pass
    return False


@pytest.mark.parametrize("rotate", [False, True], ids=["no-rotation", "rotation"])
def test_50_concurrent_calls_refresh_once(mock_factory, kenv_factory, rotate):
    env = kenv_factory(mock_factory(rotate_refresh=rotate))
    env.confirmed_login()
    old = env.expire_soon(20)
    refreshes = len(env.token_requests("refresh_token"))
    # Hold the cache lock, as a process in the middle of a refresh would, while all 50 start:
    # every one of them finds the expiring token and queues for the lock (it has the lock file
    # open). Each waits at most 5 s for the lock: it is let go the moment the last one queued,
    # and the 50 are started together (each behind a shell that waits at a gate, a pipe, until
    # all are there) rather than one after the other, so that the first ones do not wait for the
    # last ones' start-up on top.
    lock_path = os.path.realpath(env.lock_file)
    gate, opening = os.pipe()
    with open(env.lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            procs = [env.popen("-c", 'read -r _; exec "$0" token </dev/null', env.auth,
                               binary="/bin/sh", stdin=gate) for _ in range(50)]
        finally:
            os.close(gate)
            os.close(opening)                 # end of file at the gate: all go
        waiting = list(procs)
        deadline = time.monotonic() + 30
        while waiting and time.monotonic() < deadline:
            waiting = [p for p in waiting if not has_open(p.pid, lock_path)]
            time.sleep(0.005)
        fcntl.flock(lock, fcntl.LOCK_UN)
    # all 50 queued (one that had ended or never came would be here)
    assert waiting == [], [p.poll() for p in waiting]
    results = [p.communicate(timeout=60) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [EXIT_OK] * 50, [err for _, err in results if err]
    tokens = {out.strip() for out, _ in results}
    assert len(tokens) == 1
    token = tokens.pop()
    assert token != old["access_token"]
    assert len(env.token_requests("refresh_token")) == refreshes + 1
    data = env.cache()
    assert data["access_token"] == token
    if rotate:
        assert data["refresh_token"] != old["refresh_token"]
    # and the kept refresh token still works
    env.expire_soon()
    assert env.token() != token


def _wait_for_refresh_answer(kenv, proc, refreshes, timeout=30.0):
    """True once the mock has logged its answer to a new refresh request (it logs just before
    sending it); False if *proc* ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(kenv.token_requests("refresh_token")) > refreshes:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    raise AssertionError("the refresh request never reached the mock")


def test_sigkill_during_refreshes_never_tears_the_cache(kenv):
    kenv.confirmed_login()
    required = {"version", "access_token", "refresh_token", "expires_at", "confirmed"}
    rng = random.Random(20240501)
    killed = answered = dripped = 0
    issued = set()
    # How long one refresh takes here (the longest of three); the blind kills are spread over it.
    duration = 0.0
    for _ in range(3):
        kenv.expire_soon(20)
        started = time.monotonic()
        kenv.token()
        duration = max(duration, time.monotonic() - started)
    for i in range(60):
        before = kenv.expire_soon(20)
        issued.add(before["access_token"])
        refreshes = len(kenv.token_requests("refresh_token"))
        aim = i % 3
        if aim == 2:
            # the answer comes a byte at a time: the kill lands while it is being read
            kenv.mock.set_fault(endpoint="token", kind="drip", interval=0.002, count=1)
        proc = kenv.popen("token", stdin=subprocess.DEVNULL)
        if aim == 0:
            # blind: start-up, the TLS handshake, the request
            time.sleep(rng.uniform(0.0, duration))
        elif _wait_for_refresh_answer(kenv, proc, refreshes):
            # the bank has answered: reading it, storing it, or just done
            time.sleep(rng.uniform(0.0, 0.005) if aim == 1 else rng.uniform(0.0, 0.1))
        proc.kill()
        proc.communicate()
        if proc.returncode == -9:
            killed += 1
            if len(kenv.token_requests("refresh_token")) > refreshes:
                answered += 1
                dripped += aim == 2
        kenv.mock.clear_faults()
        data = json.loads(kenv.cache_file.read_text())  # never torn
        assert required <= data.keys()
        assert data["refresh_token"] == before["refresh_token"]
        # the old token or a new one issued by the bank, nothing in between
        assert data["access_token"] == before["access_token"] or \
            jwt_claims(data["access_token"])["cnf"]
        assert stat.S_IMODE(kenv.cache_file.stat().st_mode) == 0o600
        r = kenv.run("status")
        assert r.returncode == EXIT_OK and "corrupt" not in r.stdout, r.stdout
    # A dripped answer takes seconds to read, so each of those twenty kills comes after the
    # bank answered; the other kills fall wherever this machine's speed puts them.
    assert dripped == 20, f"{dripped} of 20 kills during a dripped answer ({killed} killed)"
    assert killed >= 20 and answered >= 20
    kenv.expire_soon()
    assert kenv.token() not in issued


def _process_state(pid):
    """The state letter of /proc/PID/stat (R, S, T for stopped, ...), or None once it is gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[1].split()[0]


def test_sigkill_between_writing_and_renaming_keeps_the_old_cache(kenv, build_dir):
    """The one moment that decides whether a crash can tear the cache, hit every time: the new
    tokens are written to the temporary file and the rename has not happened (tests/shims/
    stoprename stops kontist-auth there). The cache is the old one, whole; the next run refreshes
    again and removes the temporary file the killed one left."""
    shim = Path(build_dir) / "tests" / "shims" / ".libs" / "stoprename.so"
    assert shim.exists(), f"{shim} is missing: run `make check` in {build_dir}"
    asan = sanitizer_runtime(kenv.auth)
    kenv.confirmed_login()
    before = kenv.expire_soon(20)
    refreshes = len(kenv.token_requests("refresh_token"))
    env = dict(kenv.env, LD_PRELOAD=":".join(p for p in (asan, str(shim)) if p),
               KT_STOPRENAME_TARGET=str(kenv.cache_file))
    proc = subprocess.Popen([str(kenv.auth), "token"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while (proc.poll() is None and _process_state(proc.pid) != "T"
               and time.monotonic() < deadline):
            time.sleep(0.01)
        if _process_state(proc.pid) != "T":
            proc.kill()
            pytest.fail(f"kontist-auth never came to the rename: {proc.communicate(timeout=10)}")
        # Stopped with the bank's answer written beside the cache, not yet in its place.
        assert len(kenv.token_requests("refresh_token")) == refreshes + 1
        temps = list(kenv.cache_file.parent.glob(f".{kenv.cache_file.name}.tmp-*"))
        assert len(temps) == 1, temps
        written = json.loads(temps[0].read_text())
        assert written["access_token"] != before["access_token"]
        assert json.loads(kenv.cache_file.read_text()) == before
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -9
    data = json.loads(kenv.cache_file.read_text())
    assert data == before
    assert stat.S_IMODE(kenv.cache_file.stat().st_mode) == 0o600
    r = kenv.run("status")
    assert r.returncode == EXIT_OK and "corrupt" not in r.stdout, r.stdout
    token = kenv.token()
    assert token not in (before["access_token"], written["access_token"])
    assert len(kenv.token_requests("refresh_token")) == refreshes + 2
    assert list(kenv.cache_file.parent.glob(f".{kenv.cache_file.name}.tmp-*")) == []


# -- a corrupt cache ------------------------------------------------------------------------

CORRUPT = {
    "garbage": "this is not json\n",
    "truncated": '{"version":1,"access_token":"eyJ',
    "empty": "",
    "wrong-type": '{"version":1,"access_token":5,"expires_at":1,"confirmed":true}',
    "binary": "\0\1\2\3",
    "array": "[1,2,3]",
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_cache_is_reported_and_treated_as_absent(kenv, content):
    kenv.confirmed_login()
    kenv.write_cache_text(content)
    r = kenv.run("token")
    assert r.returncode == EXIT_AUTH, r.stderr
    assert "corrupt" in r.stderr and "kontist-auth login" in r.stderr
    assert r.stdout == ""
    r = kenv.run("status")
    assert r.returncode == EXIT_AUTH
    assert "corrupt, ignored" in r.stdout and "logged in:     no" in r.stdout
    r = kenv.credential("get", f"protocol=https\nhost={kenv.host}\n\n")
    assert r.returncode == EXIT_AUTH and r.stdout == ""
    # a new login replaces it
    assert kenv.login().returncode == EXIT_OK
    assert kenv.cache()["confirmed"] is True


# -- unsafe files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_cache_readable_or_writable_by_others_is_refused(kenv, mode):
    kenv.confirmed_login()
    kenv.cache_file.chmod(mode)
    r = kenv.run("token")
    assert r.returncode == EXIT_IO, r.stderr
    assert str(kenv.cache_file) in r.stderr
    assert r.stdout == ""
    r = kenv.run("status")
    assert r.returncode == EXIT_IO
    assert "refused" in r.stdout


def test_symlinked_cache_is_refused(kenv):
    kenv.confirmed_login()
    real = kenv.root / "elsewhere.json"
    os.replace(kenv.cache_file, real)
    kenv.cache_file.symlink_to(real)
    r = kenv.run("token")
    assert r.returncode == EXIT_IO, r.stderr
    assert r.stdout == ""


def test_world_writable_state_directory_is_refused(kenv):
    kenv.state_dir.mkdir(parents=True, mode=0o700)
    kenv.state_dir.chmod(0o777)
    r = kenv.login()
    assert r.returncode == EXIT_IO, r.stderr
    assert not kenv.cache_file.exists()


@needs_root
def test_foreign_owned_cache_is_refused(kenv):
    kenv.confirmed_login()
    os.chown(kenv.cache_file, NOBODY, NOBODY)
    for args in (["token"], ["status"]):
        r = kenv.run(*args)
        assert r.returncode == EXIT_IO, (args, r.stdout, r.stderr)
    r = kenv.credential("get", f"protocol=https\nhost={kenv.host}\n\n")
    assert r.returncode == EXIT_IO and r.stdout == ""
    assert "password" not in r.stdout


@needs_root
def test_foreign_owned_state_directory_is_refused(kenv):
    kenv.state_dir.mkdir(parents=True, mode=0o700)
    os.chown(kenv.state_dir, NOBODY, NOBODY)
    r = kenv.login()
    assert r.returncode == EXIT_IO, r.stderr
    assert not kenv.cache_file.exists()


@needs_root
def test_foreign_owned_device_record_is_refused(kenv):
    kenv.confirmed_login()
    os.chown(kenv.record_file, NOBODY, NOBODY)
    r = kenv.login()
    assert r.returncode == EXIT_IO, r.stderr
    r = kenv.run("status")
    assert r.returncode == EXIT_IO
    assert "unusable record" in r.stdout


@needs_root
def test_foreign_owned_config_in_kontist_config_is_refused(kenv):
    os.chown(kenv.config, NOBODY, NOBODY)
    r = kenv.run("status")
    assert r.returncode == 2, r.stderr
    assert str(kenv.config) in r.stderr
