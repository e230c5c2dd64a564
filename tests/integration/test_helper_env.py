"""A private world for kontist-auth under test: temporary HOME, configuration, mock.

The test modules import ``kenv``/``HelperEnv`` from here.  Every binary runs in
a new session, so it has no controlling terminal and can never wait for a
person (tests that want a terminal give it a pty of their own), and with an
environment of our making: HOME in the test's tmp dir, XDG variables unset,
KONTIST_CONFIG naming the test's configuration (the real /etc/kontist is never
read).
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER

# Exit codes, as documented in kontist-auth(1).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_MFA = 4
EXIT_UNAVAILABLE = 5
EXIT_IO = 6

RUN_TIMEOUT = 30


class HelperEnv:
    """One user's world: HOME, config, the binaries and the mock they talk to."""

    def __init__(self, root, mock, build_dir, username=DEMO_USER):
        self.root = Path(root)
        self.mock = mock
        self.auth = Path(build_dir) / "helper" / "kontist-auth"
        self.cred = Path(build_dir) / "helper" / "git-credential-kontist"
        assert self.auth.exists(), f"{self.auth} is missing: build first"
        self.home = self.root / "home"
        self.home.mkdir(mode=0o700, parents=True)
        self.config_dir = self.home / ".config" / "kontist"
        self.state_dir = self.home / ".local" / "state" / "kontist"
        self.cache_file = self.state_dir / "tokens.json"
        self.lock_file = self.state_dir / "tokens.lock"
        self.record_file = self.config_dir / "device.json"
        self.key_file = self.config_dir / "device-key.pem"
        self.secret_file = self.root / "client-secret"
        self.secret_file.write_text(DEMO_CLIENT_SECRET + "\n")
        self.secret_file.chmod(0o600)
        self.config = self.root / "kontist.conf"
        self.write_config(username=username)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C",
            "KONTIST_CONFIG": str(self.config),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }

    # -- configuration ----------------------------------------------------

    def write_config(self, path=None, username=DEMO_USER, **extra):
        settings = {
            "base_url": self.mock.url if self.mock else "https://127.0.0.1:9",
            "client_id": DEMO_CLIENT_ID,
            "client_secret_file": str(self.secret_file),
            "ca_file": self.mock.ca_file if self.mock else "/etc/ssl/certs/ca-certificates.crt",
        }
        if username is not None:
            settings["username"] = username
        settings.update(extra)
        path = Path(path or self.config)
        path.write_text("# written by the kontist-auth tests\n" +
                        "".join(f"{k} = {v}\n" for k, v in settings.items() if v is not None))
        path.chmod(0o644)
        return path

    @property
    def host(self):
        return self.mock.url.split("://", 1)[1]

    # -- running the binaries ---------------------------------------------------

    def run(self, *args, input=None, env=None, binary=None, timeout=RUN_TIMEOUT, **kw):
        full_env = dict(self.env)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        return subprocess.run([str(binary or self.auth), *map(str, args)], input=input,
                              capture_output=True, text=True, env=full_env, timeout=timeout,
                              start_new_session=True, **kw)

    def popen(self, *args, binary=None, **kw):
        return subprocess.Popen([str(binary or self.auth), *map(str, args)], env=self.env,
                                stdin=kw.pop("stdin", subprocess.PIPE),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, **kw)

    def login(self, *args, password=DEMO_PASSWORD, **kw):
        """`login --password-stdin`. Without a device record and without --mfa, the default
        order (device,push) would wait for an approval in the app: these logins ask for an
        unconfirmed token instead (--mfa none), as logins before enrolling do; the push tests
        (test_helper_push.py) say what they want."""
        if not self.record_file.exists() and not any(a in ("--mfa", "--no-device") for a in args):
            args = ("--mfa", "none", *args)
        return self.run("login", "--password-stdin", *args, input=password + "\n", **kw)

    def enroll(self, *args, otp=None, timeout=RUN_TIMEOUT, binding="CONFIRMED", **popen_kw):
        """Runs `device enroll --otp-stdin`: answers its device binding request through the
        mock's control endpoint with *binding* (as the person would in the Kontist app; None
        leaves it pending), then the SMS code prompt with the OTP of the SMS it causes."""
        before = len(self.mock.sms())
        # The bank may ask for the first check to come sooner than the client's 3 s (with
        # Retry-After); the mock does so here, to keep the many enrollments of the tests quick.
        self.mock.set_fault(endpoint="graphql", operation="createDeviceBindingRequest",
                            kind="retry_after", seconds=1, count=1)
        proc = self.popen("device", "enroll", "--otp-stdin", *args, **popen_kw)
        deadline = time.monotonic() + timeout
        code = None
        while proc.poll() is None and time.monotonic() < deadline:
            if binding is not None:
                for request in self.mock.state()["binding_requests"]:
                    self.mock.answer_binding(request["id"], binding)
            messages = self.mock.sms()
            if len(messages) > before:
                code = messages[-1]["otp"]
                break
            time.sleep(0.05)
        answer = (otp(code) if callable(otp) else otp) if otp is not None else code
        out, err = proc.communicate(input=(answer + "\n") if answer is not None else "",
                                    timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def confirmed_login(self):
        """Log in, enroll a device, log in again: the cache holds a confirmed token set.

        The mock confirms this enrollment's binding request the moment it is made (its "auto"
        mode), so that the many tests that need a confirmed login do not each wait out the
        client's first check; enroll() and the enrollment tests keep the person's part."""
        r = self.login()
        assert r.returncode == EXIT_OK, r.stderr
        before = self.mock.binding_mode("auto")
        try:
            r = self.enroll()
        finally:
            self.mock.binding_mode(before)
        assert r.returncode == EXIT_OK, r.stderr
        r = self.login()
        assert r.returncode == EXIT_OK, r.stderr
        assert self.cache()["confirmed"] is True
        return self.cache()

    def token(self):
        r = self.run("token")
        assert r.returncode == EXIT_OK, r.stderr
        return r.stdout.strip()

    def credential(self, operation, request, binary=None, env=None, **kw):
        """Runs git-credential-kontist directly with a request (str or bytes)."""
        text = isinstance(request, str)
        full_env = dict(self.env, **(env or {}))
        return subprocess.run([str(binary or self.cred), operation], input=request,
                              capture_output=True, text=text, env=full_env,
                              timeout=kw.pop("timeout", RUN_TIMEOUT), start_new_session=True,
                              **kw)

    def git(self, action, request, helper=None):
        """Real `git credential ACTION` with only our helper configured."""
        helper = helper or f"!'{self.cred}'"
        return subprocess.run(["git", "-c", "credential.helper=", "-c",
                               f"credential.helper={helper}", "credential", action],
                              input=request, capture_output=True, text=True, env=self.env,
                              timeout=RUN_TIMEOUT, start_new_session=True, cwd=self.root)

    # -- the files ------------------------------------------------------------

    def cache(self):
        return json.loads(self.cache_file.read_text())

    def set_cache(self, **changes):
        """Rewrites the cache with some members changed (None removes one), keeping it private."""
        data = self.cache()
        for k, v in changes.items():
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v
        self.write_cache_text(json.dumps(data))
        return data

    def write_cache_text(self, text, mode=0o600):
        tmp = self.cache_file.with_name("test-tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        os.replace(tmp, self.cache_file)

    def expire_soon(self, seconds=30):
        """Makes the cached access token one that must be refreshed (less than 60 s left)."""
        return self.set_cache(expires_at=int(time.time()) + seconds)

    def token_requests(self, grant_type=None):
        return [r for r in self.mock.requests("token")
                if grant_type is None or r.get("grant_type") == grant_type]


@pytest.fixture
def kenv(tmp_path, mock, build_dir):
    """A HelperEnv against a default mock."""
    return HelperEnv(tmp_path / "env", mock, build_dir)


@pytest.fixture
def kenv_factory(tmp_path, build_dir):
    """Make HelperEnvs against mocks of your choice: ``kenv_factory(mock, name="x")``."""
    def make(mock, name="env", **kw):
        return HelperEnv(tmp_path / name, mock, build_dir, **kw)
    return make
