"""kontist-auth's configuration as an administrator writes it: trailing comments, errors that name
the file and the line, and the files it names (secret, CA, pinned key) checked before anyone is
asked for a password."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, PUBLIC_CLIENT_ID
from test_helper_env import EXIT_OK, EXIT_USAGE, kenv  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

NOBODY = pwd.getpwnam("nobody")


def filled_pipe(data):
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def login_reading_nothing(kenv, *args, env=None, preexec_fn=None, cwd=None):
    """`login --password-stdin` with the password waiting in a pipe; returns the completed
    process and what was left unread of standard input."""
    full_env = dict(kenv.env, **(env or {}))
    r = filled_pipe((DEMO_PASSWORD + "\n").encode())
    try:
        proc = subprocess.run([str(kenv.auth), *args, "login", "--password-stdin", "--mfa", "none"], stdin=r,
                              capture_output=True, text=True, env=full_env, timeout=30,
                              start_new_session=True, preexec_fn=preexec_fn,
                              cwd=cwd or kenv.root)
        left = os.read(r, 4096).decode()
    finally:
        os.close(r)
    return proc, left


def config_lines(path):
    return Path(path).read_text().splitlines()


def line_of(path, key):
    """1-based number of the line that sets key."""
    for n, line in enumerate(config_lines(path), 1):
        if line.split("=", 1)[0].strip() == key:
            return n
    raise AssertionError(f"{key} not in {path}")


# -- syntax -----------------------------------------------------------------------------------


def test_trailing_comment_after_a_value(kenv):
    """The line doc/enrolling.md used to show: the comment is not part of the file name."""
    kenv.config.write_text(
        kenv.config.read_text().replace(
            f"client_secret_file = {kenv.secret_file}\n",
            f"client_secret_file = {kenv.secret_file}   # root:root 0600; omit for a public "
            "client\n"))
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr


def test_quoted_value_with_a_hash(kenv):
    odd_dir = kenv.root / "ca #1"
    odd_dir.mkdir()
    shutil.copy(kenv.mock.ca_file, odd_dir / "ca.pem")
    kenv.write_config(ca_file=f'"{odd_dir}/ca.pem"  # quoted: the # is part of the name')
    r = kenv.login()
    assert r.returncode == EXIT_OK, r.stderr


def test_hash_inside_a_value_is_an_error_naming_file_and_line(kenv):
    kenv.write_config(client_id="kontist-auth#demo")
    line = line_of(kenv.config, "client_id")
    proc, left = login_reading_nothing(kenv)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert f"{kenv.config}:{line}: client_id: '#' inside a value" in proc.stderr
    assert left, "the password was read"


# -- files the configuration names ------------------------------------------------------------


def test_missing_secret_file_names_file_and_line(kenv):
    missing = kenv.root / "no-such-secret"
    kenv.write_config(client_secret_file=missing)
    line = line_of(kenv.config, "client_secret_file")
    proc, left = login_reading_nothing(kenv)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert f"{kenv.config}:{line}: client_secret_file {missing} does not exist" in proc.stderr
    assert left, "the password was read before the configuration was checked"
    assert kenv.token_requests() == []


def test_missing_ca_file_is_a_configuration_error(kenv):
    """Not `network error ... try again later` (exit 5) after the password was typed."""
    missing = kenv.root / "no-such-ca.pem"
    kenv.write_config(ca_file=missing)
    line = line_of(kenv.config, "ca_file")
    proc, left = login_reading_nothing(kenv)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert f"{kenv.config}:{line}: ca_file {missing} does not exist" in proc.stderr
    assert "try again later" not in proc.stderr
    assert left, "the password was read before the configuration was checked"
    assert kenv.mock.requests() == []
    r = kenv.run("token")
    assert r.returncode == EXIT_USAGE and str(missing) in r.stderr


def test_missing_pinned_key_file_is_a_configuration_error(kenv):
    missing = kenv.root / "server.pub"
    kenv.write_config(pinned_pubkey=missing)
    proc, left = login_reading_nothing(kenv)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert f"pinned_pubkey {missing} does not exist" in proc.stderr
    assert left


class UserWorld:
    """A world the unprivileged user `nobody` can reach: the pytest directory is root's (0700)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="kt-config-"))
        os.chmod(self.root, 0o755)
        self.home = self.root / "home"
        self.home.mkdir(mode=0o700)
        os.chown(self.home, NOBODY.pw_uid, NOBODY.pw_gid)
        self.etc = self.root / "etc"
        self.etc.mkdir(mode=0o755)

    def as_nobody(self):
        os.setgroups([])
        os.setgid(NOBODY.pw_gid)
        os.setuid(NOBODY.pw_uid)

    def env(self, config):
        return {"HOME": str(self.home), "KONTIST_CONFIG": str(config)}

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def user_world():
    if os.geteuid() != 0:
        pytest.skip("needs root to run kontist-auth as another user")
    w = UserWorld()
    yield w
    w.remove()


def test_ca_file_users_cannot_read(kenv, user_world):
    """A CA file in a root-only directory: PAM (root) works, users get a configuration error
    naming the file, the directory in the way, its owner and mode, before the password."""
    private = user_world.etc / "private"
    private.mkdir(mode=0o700)
    ca = private / "ca.pem"
    shutil.copy(kenv.mock.ca_file, ca)
    os.chmod(ca, 0o644)
    config = user_world.etc / "kontist.conf"
    config.write_text(f"base_url = {kenv.mock.url}\nclient_id = {PUBLIC_CLIENT_ID}\n"
                      f"ca_file = {ca}   # readable by everyone who runs kontist-auth\n")
    os.chmod(config, 0o644)
    proc, left = login_reading_nothing(kenv, env=user_world.env(config),
                                       preexec_fn=user_world.as_nobody, cwd=user_world.root)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    err = proc.stderr
    assert f"{config}:3: ca_file {ca} cannot be read by nobody (uid {NOBODY.pw_uid})" in err, err
    assert f"{private} (root:" in err and "mode 0700" in err, err
    assert "everyone who uses this configuration" in err, err
    assert "try again later" not in err
    assert left, "the password was read"
    assert kenv.mock.requests() == []

    # The file itself closed, the directory open.
    os.chmod(private, 0o755)
    os.chmod(ca, 0o600)
    r = subprocess.run([str(kenv.auth), "status"], capture_output=True, text=True,
                       env=dict(kenv.env, **user_world.env(config)), timeout=30,
                       preexec_fn=user_world.as_nobody, start_new_session=True,
                       cwd=user_world.root)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert f"ca_file {ca} (root:" in r.stderr and "mode 0600) cannot be read by nobody" in \
        r.stderr, r.stderr


def test_secret_users_cannot_read(kenv, user_world):
    """The split the docs warn about: a root-only client secret in the users' configuration."""
    secret = user_world.etc / "client-secret"
    secret.write_text(DEMO_CLIENT_SECRET + "\n")
    os.chmod(secret, 0o600)
    config = user_world.etc / "kontist.conf"
    config.write_text(f"base_url = {kenv.mock.url}\nclient_id = {DEMO_CLIENT_ID}\n"
                      f"client_secret_file = {secret}\n")
    os.chmod(config, 0o644)
    proc, left = login_reading_nothing(kenv, env=user_world.env(config),
                                       preexec_fn=user_world.as_nobody, cwd=user_world.root)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    err = proc.stderr
    assert f"{config}:3: client_secret_file {secret} (root:" in err, err
    assert "mode 0600) cannot be read by nobody" in err, err
    assert "public client" in err, err
    assert left, "the password was read"


# -- no configuration --------------------------------------------------------------------------


def test_no_configuration_names_the_files_looked_for(kenv):
    if os.path.exists("/etc/kontist/kontist.conf"):
        pytest.skip("this machine has /etc/kontist/kontist.conf")
    r = kenv.run("status", env={"KONTIST_CONFIG": None})
    assert r.returncode == EXIT_USAGE, r.stderr
    user_conf = kenv.home / ".config" / "kontist" / "kontist.conf"
    assert "/etc/kontist/kontist.conf" in r.stderr and str(user_conf) in r.stderr, r.stderr
    assert "client_id is not set" in r.stderr


def test_missing_key_names_the_file(kenv):
    kenv.config.write_text(f"base_url = {kenv.mock.url}\n")
    r = kenv.run("status")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert f"{kenv.config}: client_id is not set" in r.stderr
