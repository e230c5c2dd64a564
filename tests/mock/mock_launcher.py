#!/usr/bin/python3
"""Starting and stopping kontist-mock, and the demo account it knows: the one way the tests and
the scripts run the mock.

From Python (the integration tests' conftest.py, realhost.py, scripts/bench)::

    sys.path.insert(0, "<repo>/tests/mock")
    import mock_launcher
    mock = mock_launcher.start(state_dir, tls_dir=..., users=..., rotate_refresh=True)
    mock.url, mock.ca_file, mock.control_url, mock.state_dir, mock.host, mock.port
    mock.stop()
    account = mock_launcher.demo_account()   # from demo-users.json

``start`` runs the mock on a free port of 127.0.0.1 (``--listen 127.0.0.1:0``) and returns once
its start-up line says where it listens (``RuntimeError`` with its stderr if it does not within
``START_TIMEOUT`` seconds). The mock's standard input is a pipe from this process
(``--watch-stdin``), so the mock also stops when whoever started it dies without stopping it.

From a shell script (scripts/demo), as a small command::

    mock_launcher.py account [--users FILE]
        prints the demo account, one "name value" line each: user, password, client_id,
        client_secret, public_client_id, scopes
    mock_launcher.py serve --state-dir DIR [--stderr FILE] [-- MOCK-ARGUMENTS...]
        starts the mock, prints "url", "ca_file", "control_url", "state_dir" and "pid" lines,
        the demo account's lines as for `account` (of the --users file the mock was given, if
        any), then a line "ready"; stops the mock at end of its standard input or on SIGTERM,
        SIGINT or SIGHUP. Exits non-zero, with the reason on stderr, when the mock does not
        start.

Environment: KONTIST_MOCK (path of the mock program, default kontist-mock next to this file),
KONTIST_PYTHON (interpreter for it, default /usr/bin/python3).
"""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
DEMO_USERS_FILE = HERE / "demo-users.json"
MOCK_PROGRAM = Path(os.environ.get("KONTIST_MOCK") or HERE / "kontist-mock")
PYTHON = os.environ.get("KONTIST_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)

START_TIMEOUT = 15
STOP_TIMEOUT = 5


# -- the demo account ---------------------------------------------------------------------------

def demo_account(users_file=DEMO_USERS_FILE):
    """The demo user and clients of a users file (default: demo-users.json).

    ``user``, ``password``, ``phone``: the first user (the one the file names as the demo user);
    ``client_id``, ``client_secret``, ``scopes`` (a tuple): the first confidential client (one
    with a secret); ``public_client_id``: the first public client (empty secret), or None.
    """
    data = json.loads(Path(users_file).read_text(encoding="utf-8"))
    user = data["users"][0]
    confidential = next(c for c in data["clients"] if c.get("client_secret"))
    public = next((c for c in data["clients"] if not c.get("client_secret")), None)
    return SimpleNamespace(user=user["username"], password=user["password"],
                           phone=user.get("phone"), client_id=confidential["client_id"],
                           client_secret=confidential["client_secret"],
                           scopes=tuple(confidential["scopes"]),
                           public_client_id=public["client_id"] if public else None)


def demo_users():
    """The contents of demo-users.json, for tests that add users of their own to it."""
    return json.loads(DEMO_USERS_FILE.read_text(encoding="utf-8"))


# -- one running mock ----------------------------------------------------------------------------

class RunningMock:
    """A started kontist-mock process.

    Attributes: ``url`` (https://127.0.0.1:PORT), ``ca_file``, ``state_dir`` (Path),
    ``control_url``, ``host``, ``port``, ``proc`` (the Popen), ``stderr_path``, ``args``.
    """

    def __init__(self, proc, info, stderr_path, args=()):
        self.proc = proc
        self.url = info["url"]
        self.ca_file = info["ca_file"]
        self.state_dir = Path(info["state_dir"])
        self.control_url = info["control_url"]
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port
        self.stderr_path = Path(stderr_path)
        self.args = list(args)

    def __repr__(self):
        return f"<{type(self).__name__} {self.url} state={self.state_dir}>"

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=STOP_TIMEOUT):
        """Terminate the mock (kill it after *timeout*); returns its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        return self.proc.returncode


def mock_arguments(state_dir, *extra_args, tls_dir=None, users=None, faults=(),
                   rotate_refresh=False, token_lifetime=None, refresh_lifetime=None,
                   challenge_lifetime=None, cert_fault=None):
    """The mock's command line (without the interpreter) for the options of ``start``.
    ``users`` must be a path here."""
    args = [str(MOCK_PROGRAM), "--listen", "127.0.0.1:0", "--state-dir", str(state_dir)]
    if tls_dir is not None:
        args += ["--tls-dir", str(tls_dir)]
    args.append("--watch-stdin")
    if users is not None:
        args += ["--users", str(users)]
    for spec in faults:
        args += ["--fault", json.dumps(spec)]
    if rotate_refresh:
        args.append("--rotate-refresh")
    for flag, value in (("--token-lifetime", token_lifetime),
                        ("--refresh-lifetime", refresh_lifetime),
                        ("--challenge-lifetime", challenge_lifetime),
                        ("--cert-fault", cert_fault)):
        if value is not None:
            args += [flag, str(value)]
    return args + [str(a) for a in extra_args]


def start(state_dir, *extra_args, tls_dir=None, users=None, faults=(), rotate_refresh=False,
          token_lifetime=None, refresh_lifetime=None, challenge_lifetime=None, cert_fault=None,
          stderr_path=None, users_path=None, timeout=START_TIMEOUT, cls=RunningMock):
    """Start a mock with its state in *state_dir* (made if missing) and wait until it listens.

    tls_dir: where the CA and certificates are kept (made by the first mock that uses it, then
    reused: a mock with an existing one starts in a fraction of a second). users: a users file,
    or a dict in that format (written to *users_path*, default ``<state_dir>.users.json``).
    faults: fault specs (``--fault``). extra_args go to the command line as they are.
    stderr_path: where the mock's stderr goes (default ``<state_dir>/stderr.log``).
    cls: the RunningMock (sub)class to return.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(users, dict):
        users_path = Path(users_path or state_dir.with_name(state_dir.name + ".users.json"))
        users_path.write_text(json.dumps(users))
        users = users_path
    args = [PYTHON] + mock_arguments(
        state_dir, *extra_args, tls_dir=tls_dir, users=users, faults=faults,
        rotate_refresh=rotate_refresh, token_lifetime=token_lifetime,
        refresh_lifetime=refresh_lifetime, challenge_lifetime=challenge_lifetime,
        cert_fault=cert_fault)
    stderr_path = Path(stderr_path or state_dir / "stderr.log")
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, bufsize=0)
    line = _read_line(proc, timeout)
    if not line:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            pipe.close()
        raise RuntimeError(f"kontist-mock did not start: {' '.join(args)}\n"
                           f"{stderr_path.read_text(errors='replace')}")
    return cls(proc, json.loads(line), stderr_path, args)


def _read_line(proc, timeout):
    """The mock's start-up line, or None if it died or said nothing in time."""
    deadline = time.monotonic() + timeout
    line = b""
    fd = proc.stdout.fileno()
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            line += chunk
    return line.decode()


# -- command line ------------------------------------------------------------------------------

def _print_account(account):
    print(f"user {account.user}")
    print(f"password {account.password}")
    print(f"client_id {account.client_id}")
    print(f"client_secret {account.client_secret}")
    print(f"public_client_id {account.public_client_id or ''}")
    print(f"scopes {' '.join(account.scopes)}")


def _option(argv, name):
    """The value of `name VALUE` in argv (removed from it), or None."""
    if name not in argv:
        return None
    i = argv.index(name)
    if i + 1 >= len(argv):
        raise SystemExit(f"mock_launcher: {name} needs a value")
    value = argv[i + 1]
    del argv[i:i + 2]
    return value


def _serve(argv):
    mock_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, mock_args = argv[:i], argv[i + 1:]
    state_dir = _option(argv, "--state-dir")
    stderr_path = _option(argv, "--stderr")
    if state_dir is None or argv:
        raise SystemExit("usage: mock_launcher.py serve --state-dir DIR [--stderr FILE] "
                         "[-- MOCK-ARGUMENTS...]")
    users = _option(list(mock_args), "--users")

    # A signal only sets the flag: the wait below wakes up and the mock is stopped in one place.
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        mock = start(state_dir, *mock_args, stderr_path=stderr_path)
    except RuntimeError as e:
        print(f"mock_launcher: {e}", file=sys.stderr)
        return 1
    try:
        print(f"url {mock.url}")
        print(f"ca_file {mock.ca_file}")
        print(f"control_url {mock.control_url}")
        print(f"state_dir {mock.state_dir}")
        print(f"pid {mock.proc.pid}")
        _print_account(demo_account(users or DEMO_USERS_FILE))
        print("ready", flush=True)
        while not stopping and mock.proc.poll() is None:
            try:
                ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            except InterruptedError:
                continue
            if ready and not os.read(sys.stdin.fileno(), 4096):
                break
    finally:
        mock.stop()
    return 0


def main(argv):
    if argv[:1] == ["account"]:
        users = _option(argv[1:], "--users") or DEMO_USERS_FILE
        _print_account(demo_account(users))
        return 0
    if argv[:1] == ["serve"]:
        return _serve(argv[1:])
    print(__doc__.split("From a shell script", 1)[1].split("Environment:", 1)[0].strip(),
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.exit(main(sys.argv[1:]))
