"""Which OAuth client the PAM module and the users' own kontist-auth use (doc/enrolling.md,
"Which OAuth client").

A refresh token works only with the client it was issued to. The token cache records that
client (and when the login ran); kontist-auth shows it, and does not try a refresh with another
client but says what to do. Two setups are supported and tested here end to end, with the module
under pam_wrapper and the user's kontist-auth on the cache the module wrote:

- one public client for both: the module's tokens are refreshed by the user's tools;
- a confidential client for the module (secret readable by root only) and the public client for
  the users: the module's tokens are used while valid, then the user logs in with kontist-auth.
"""

import json
import os
import subprocess
import time

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_PASSWORD, PUBLIC_CLIENT_ID
from pam_support import cache_path

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

EXIT_OK, EXIT_AUTH = 0, 3


def public_config(world, name):
    """A configuration for the public client: no client_secret_file at all."""
    path = world.etc / name
    path.write_text(f"base_url = {world.mock.url}\n"
                    f"client_id = {PUBLIC_CLIENT_ID}   # public: no secret\n"
                    f"ca_file = {world.mock.ca_file}\n")
    os.chmod(path, 0o644)
    return path


class User:
    """The user's own kontist-auth, on the home the PAM world gave them."""

    def __init__(self, world, home, config):
        self.auth = world.build_dir / "helper" / "kontist-auth"
        self.home = home
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C",
                    "KONTIST_CONFIG": str(config)}

    def run(self, *args, input=None):
        return subprocess.run([str(self.auth), *args], input=input, capture_output=True,
                              text=True, env=self.env, timeout=30, start_new_session=True)

    def cache(self):
        return json.loads(cache_path(self.home).read_text())

    def expire_soon(self):
        """Leaves the access token less than a minute: the next `token` must refresh."""
        path = cache_path(self.home)
        data = self.cache()
        data["expires_at"] = int(time.time()) + 30
        tmp = path.with_name("tokens.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)


def refreshes(mock):
    return [r for r in mock.requests("token") if r.get("grant_type") == "refresh_token"]


def test_confidential_module_public_users_mismatch_is_explained(world, mock):
    """The split setup: after a PAM login with the module's confidential client, the user's
    kontist-auth (public client) hands out the token while it lasts, then says which client the
    tokens belong to and what to do, without sending the refresh token to the bank."""
    home = world.add_user("alice")
    world.enroll(home)
    world.service("sudo", "nouserok")  # the world's configuration: the confidential client
    before = time.time()
    run = world.run("sudo", "alice")
    assert run.code == "PAM_SUCCESS", run
    cache = json.loads(cache_path(home).read_text())
    assert cache["client_id"] == DEMO_CLIENT_ID
    assert before - 1 <= cache["login_at"] <= time.time() + 1
    assert cache["confirmed"] is True

    user = User(world, home, public_config(world, "users.conf"))
    r = user.run("status")
    assert r.returncode == EXIT_OK, r.stderr
    assert f"issued to:     client {DEMO_CLIENT_ID} by the login at " in r.stdout, r.stdout
    assert f"only client {DEMO_CLIENT_ID} can use it" in r.stdout, r.stdout
    assert f"client is {PUBLIC_CLIENT_ID}" in r.stdout
    # While the access token is valid, it is the user's to use.
    r = user.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout.strip() == cache["access_token"]

    user.expire_soon()
    r = user.run("token")
    assert r.returncode == EXIT_AUTH, r.stderr
    assert f"these tokens were issued to client {DEMO_CLIENT_ID} by the login at " in r.stderr
    assert "log in again to get tokens this client can refresh" in r.stderr, r.stderr
    # The core says what is wrong, the helper what to run, once.
    assert r.stderr.count("kontist-auth login") == 1, r.stderr
    assert PUBLIC_CLIENT_ID in r.stderr
    assert refreshes(mock) == [], "the refresh token was sent with the wrong client"
    r = user.run("status")
    assert r.returncode == EXIT_AUTH, r.stdout

    # What the message says to do works: a login of the user's own, with the public client.
    r = user.run("login", "--password-stdin", input=DEMO_PASSWORD + "\n")
    assert r.returncode == EXIT_OK, r.stderr
    assert user.cache()["client_id"] == PUBLIC_CLIENT_ID
    assert user.cache()["confirmed"] is True
    user.expire_soon()
    r = user.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    assert len(refreshes(mock)) == 1


def test_one_public_client_for_module_and_users(world, mock):
    """The setup with one public client: the module needs no secret, and the tokens a PAM login
    leaves behind are refreshed by the user's own kontist-auth."""
    home = world.add_user("bob")
    world.enroll(home)
    config = public_config(world, "kontist.conf")
    world.service("sudo", "nouserok", config=config)
    run = world.run("sudo", "bob")
    assert run.code == "PAM_SUCCESS", run
    assert json.loads(cache_path(home).read_text())["client_id"] == PUBLIC_CLIENT_ID

    user = User(world, home, config)
    r = user.run("status")
    assert r.returncode == EXIT_OK, r.stderr
    assert f"issued to:     client {PUBLIC_CLIENT_ID} by the login at " in r.stdout
    assert "refresh token: present\n" in r.stdout
    old = user.cache()["access_token"]
    user.expire_soon()
    r = user.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    assert r.stdout.strip() != old
    assert len(refreshes(mock)) == 1
    cache = user.cache()
    assert cache["client_id"] == PUBLIC_CLIENT_ID and cache["confirmed"] is True
    # git gets the refreshed token through the credential helper as well.
    r = subprocess.run([str(world.build_dir / "helper" / "git-credential-kontist"), "get"],
                       input=f"protocol=https\nhost={mock.url.split('://', 1)[1]}\n\n",
                       capture_output=True, text=True, env=user.env, timeout=30,
                       start_new_session=True)
    assert r.returncode == EXIT_OK, r.stderr
    assert f"password={cache['access_token']}" in r.stdout


def test_cache_from_before_clients_were_recorded(world, mock):
    """An old cache names no client: kontist-auth still refreshes it, and then records the
    client that could."""
    home = world.add_user("carol")
    world.enroll(home)
    config = public_config(world, "kontist.conf")
    world.service("sudo", "nouserok", config=config)
    assert world.run("sudo", "carol").code == "PAM_SUCCESS"
    user = User(world, home, config)
    data = user.cache()
    del data["client_id"], data["login_at"]
    cache_path(home).write_text(json.dumps(data))
    r = user.run("status")
    assert "issued to:     client unknown" in r.stdout, r.stdout
    user.expire_soon()
    r = user.run("token")
    assert r.returncode == EXIT_OK, r.stderr
    assert user.cache()["client_id"] == PUBLIC_CLIENT_ID
