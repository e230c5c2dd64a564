"""The session's promises about the token cache, seen from kontist-auth: a full disk never costs
a rotated refresh token, and a crash's temporary copy of the tokens does not outlive logout."""

import os
import subprocess
import time

import pytest

from test_helper_env import EXIT_IO, EXIT_OK, kenv, kenv_factory  # noqa: F401

pytestmark = [
    pytest.mark.usefixtures("no_mock_tracebacks"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI is root)"),
]


@pytest.fixture
def small_state_dir():
    """Puts a HelperEnv's state directory on its own 1 MiB tmpfs, so the test can fill it."""
    mounted = []

    def mount(env):
        saved = {p.name: p.read_bytes() for p in env.state_dir.iterdir()}
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                        str(env.state_dir)], check=True)
        mounted.append(env.state_dir)
        for name, data in saved.items():
            path = env.state_dir / name
            path.write_bytes(data)
            path.chmod(0o600)
        return env.state_dir

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(directory):
    """Writes a file until the file system is full; returns its path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def test_a_disk_that_fills_during_a_rotating_refresh_loses_nothing(mock_factory, kenv_factory,
                                                                    small_state_dir):
    mock = mock_factory(rotate_refresh=True)
    env = kenv_factory(mock)
    env.confirmed_login()
    state = small_state_dir(env)
    old = env.expire_soon()
    # The bank answers after 3 s; the disk fills up while the request is on its way, once the
    # file the answer goes into exists (kontist-auth makes it before it asks).
    mock.set_fault(endpoint="token", kind="delay", seconds=3, count=1)
    p = env.popen("token")
    deadline = time.time() + 20
    while not list(state.glob(".tokens.json.tmp-*")) and time.time() < deadline:
        time.sleep(0.01)
    assert list(state.glob(".tokens.json.tmp-*")), "kontist-auth never prepared the cache file"
    filler = fill(state)
    out, err = p.communicate(timeout=30)
    assert p.returncode == EXIT_OK, err
    data = env.cache()
    assert data["access_token"] == out.strip()
    # The bank retired the old refresh token: the new one is the only way on, and it was kept.
    assert data["refresh_token"] != old["refresh_token"]
    filler.unlink()
    env.expire_soon()
    assert env.run("token").returncode == EXIT_OK
    assert len(env.token_requests("refresh_token")) == 2


def test_a_full_disk_stops_the_refresh_before_it_is_asked_for(mock_factory, kenv_factory,
                                                              small_state_dir):
    mock = mock_factory(rotate_refresh=True)
    env = kenv_factory(mock)
    env.confirmed_login()
    state = small_state_dir(env)
    old = env.expire_soon()
    filler = fill(state)
    r = env.run("token")
    assert r.returncode == EXIT_IO, r.stderr
    assert "reserve space" in r.stderr, r.stderr
    assert env.token_requests("refresh_token") == [], "refreshed with nowhere to keep the result"
    assert env.cache() == old
    # With room again, the refresh token that was never sent still works.
    filler.unlink()
    r = env.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    assert env.cache()["refresh_token"] != old["refresh_token"]


def test_logout_removes_what_a_crash_left_behind(kenv):
    kenv.confirmed_login()
    leftover = kenv.state_dir / ".tokens.json.tmp-Ab3dE5gH1jK2"
    leftover.write_text(kenv.cache_file.read_text())
    leftover.chmod(0o600)
    unrelated = kenv.state_dir / "notes.txt"
    unrelated.write_text("mine")
    r = kenv.run("logout")
    assert r.returncode == EXIT_OK, r.stderr
    assert not leftover.exists()
    assert not kenv.cache_file.exists()
    assert unrelated.read_text() == "mine"


def test_a_state_directory_open_to_others_is_refused(kenv):
    kenv.confirmed_login()
    kenv.state_dir.chmod(0o755)
    kenv.expire_soon()
    r = kenv.login()
    kenv.state_dir.chmod(0o700)
    assert r.returncode == EXIT_IO, r.stderr
    assert "open to group or others (mode 0755)" in r.stderr
