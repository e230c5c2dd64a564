"""Running pam_kontist.so under pam_wrapper for the PAM integration tests.

``PamWorld`` builds a private PAM world in a temporary directory: service files that name the
built module by absolute path (plus an ``other`` service that denies), a root-owned-or-own
configuration pointing at a kontist-mock, fake users for nss_wrapper (same uid as the test
process, homes in the temporary directory) and the device enrollment of a user.

``PamWorld.run`` starts ``tests/pam/pam_driver`` with LD_PRELOAD=libpam_wrapper.so (and
libnss_wrapper.so for fake users) and returns a ``Run``: the PAM codes of each call, the prompts
the conversation saw, the delays libpam asked for, what the process wrote on stdout and stderr,
and the syslog lines it produced (the driver stands in for syslog and appends them to a file).

Every run checks what must hold whatever the case: nothing on stdout or stderr (the module must
not write to its host's terminal), no sanitizer report, and no secret in any logged line.
"""

import contextlib
import fcntl
import glob
import json
import os
import re
import socket
import subprocess
import time
from collections import namedtuple
from pathlib import Path

import mock_launcher
from kt_crypto import make_key, write_key_pem

# The demo account of tests/mock/demo-users.json (what the default mock knows); conftest.py
# hands the same constants to the other test modules.
DEMO = mock_launcher.demo_account()
DEMO_USER = DEMO.user
DEMO_PASSWORD = DEMO.password
DEMO_CLIENT_ID = DEMO.client_id
DEMO_CLIENT_SECRET = DEMO.client_secret
FAIL_DELAY_USEC = 2_000_000

# Secrets that must never show up in a log line: the password, any JWT (tokens start with the
# base64url of '{"'), private key material.
SECRET_PATTERNS = [re.escape(DEMO_PASSWORD), r"eyJ[A-Za-z0-9_-]{8,}", "PRIVATE KEY"]

SYSLOG_LINE = re.compile(r"^(\d+) (.*)$")


def _find_lib(name):
    for pattern in (f"/usr/lib/*-linux-gnu/{name}", f"/usr/lib64/{name}", f"/usr/lib/{name}",
                    f"/lib/*-linux-gnu/{name}"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def _find_pam_module(name):
    for pattern in (f"/lib/*-linux-gnu/security/{name}", f"/usr/lib/*-linux-gnu/security/{name}",
                    f"/lib64/security/{name}", f"/lib/security/{name}",
                    f"/usr/lib/*-linux-gnu/pam_wrapper/{name}", f"/usr/lib/pam_wrapper/{name}"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


PAM_WRAPPER_LIB = _find_lib("libpam_wrapper.so")
NSS_WRAPPER_LIB = _find_lib("libnss_wrapper.so")
PAM_DENY = _find_pam_module("pam_deny.so")
PAM_MATRIX = _find_pam_module("pam_matrix.so")
PAM_SET_ITEMS = _find_pam_module("pam_set_items.so")
PAM_PERMIT = _find_pam_module("pam_permit.so")

# pam_wrapper picks its directory /tmp/pam.<c> by lstat and then mkdir: two drivers starting at
# the same moment (the strict and the sanitizer suites run side by side) can pick the same one,
# and the second prints "Failed to create pam_wrapper config dir". Drivers start one at a time.
# The lock is the caller's own (another user's file could be held for ever), and waiting for it
# has a bound: a driver holds it for PWRAP_START_WAIT at most.
PWRAP_START_LOCK = f"/tmp/kontist-tests-pam-wrapper.{os.getuid()}.lock"
PWRAP_START_WAIT = 10.0
PWRAP_LOCK_WAIT = 300.0


_pwrap_lock_stuck = []


@contextlib.contextmanager
def _pam_wrapper_start_lock():
    # One lock that was never let go fails every later run at once, not after minutes each.
    assert not _pwrap_lock_stuck, _pwrap_lock_stuck[0]
    try:
        try:
            fd = os.open(PWRAP_START_LOCK,
                         os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            fd = os.open(PWRAP_START_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise AssertionError(f"cannot open {PWRAP_START_LOCK} ({e}): remove it") from e
    try:
        st = os.fstat(fd)
        assert st.st_uid == os.getuid(), \
            f"{PWRAP_START_LOCK} belongs to uid {st.st_uid}: remove it"
        deadline = time.monotonic() + PWRAP_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    _pwrap_lock_stuck.append(f"{PWRAP_START_LOCK} held for {PWRAP_LOCK_WAIT:.0f} s"
                                             f" (see `fuser {PWRAP_START_LOCK}`)")
                    raise AssertionError(_pwrap_lock_stuck[0])
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)


def _pam_wrapper_ready(pid):
    """Whether the process has made its pam_wrapper directory (and written its pid there)."""
    for path in glob.glob("/tmp/pam.?/pid"):
        try:
            if Path(path).read_text().strip() == str(pid):
                return True
        except OSError:
            pass
    return False


def start_pam_wrapped(args, **popen_kw):
    """Popen for a program under pam_wrapper, once no other one of ours is choosing its
    directory: returns (the process, when it started) once it has made its own, or ended, or
    after PWRAP_START_WAIT."""
    with _pam_wrapper_start_lock():
        started = time.monotonic()
        proc = subprocess.Popen(args, **popen_kw)
        deadline = time.monotonic() + PWRAP_START_WAIT
        while (proc.poll() is None and not _pam_wrapper_ready(proc.pid)
               and time.monotonic() < deadline):
            time.sleep(0.002)
    return proc, started


def built_module(build_dir):
    """pam_kontist.so in a build tree."""
    return Path(build_dir) / "pam_kontist" / ".libs" / "pam_kontist.so"


def built_pam_helper(build_dir):
    """kontist-pam-helper in a build tree (the module's root helper process)."""
    return Path(build_dir) / "pam_kontist" / "kontist-pam-helper"


def write_private(path, text):
    """Writes a file only its owner can read (0600), as secrets and per-user records are kept."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return Path(path)


def module_config_lines(mock, ca_file=None, client_id=DEMO_CLIENT_ID, base_url=None,
                        secret_file=None):
    """The lines of a configuration for the module (or a user's kontist-auth) that point at
    mock: base_url, client_id (left out when None), ca_file, and client_secret_file and
    login_timeout when secret_file is given."""
    lines = [f"base_url = {base_url or mock.url}"]
    if client_id is not None:
        lines.append(f"client_id = {client_id}")
    lines.append(f"ca_file = {ca_file or mock.ca_file}")
    if secret_file is not None:
        lines += [f"client_secret_file = {secret_file}", "login_timeout = 20"]
    return lines


def device_record(username, device_id, key_path, name):
    """What `kontist-auth device enroll` writes to ~/.config/kontist/device.json."""
    return {"username": username, "device_id": device_id, "key": str(key_path), "name": name}


# What PamWorld.enroll made for a user: the home and the device (the shared `alice` fixture).
EnrolledUser = namedtuple("EnrolledUser", "home device_id key key_path record_path")


def sanitizer_runtime(binary):
    """Path of the ASan runtime a binary is linked against, or None."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    return None


class Run:
    """The outcome of one pam_driver process."""

    def __init__(self, result, stdout, stderr, syslog, elapsed, returncode):
        self.result = result
        self.stdout = stdout
        self.stderr = stderr
        self.syslog = syslog  # list of (priority, message)
        self.elapsed = elapsed
        self.returncode = returncode

    @property
    def codes(self):
        return [op["name"] for op in self.result["ops"]]

    @property
    def code(self):
        """The code of the first call (usually pam_authenticate)."""
        return self.codes[0]

    @property
    def prompts(self):
        return self.result["prompts"]

    @property
    def delays(self):
        return self.result["delays"]

    def attempt_lines(self):
        """The module's one-per-attempt lines."""
        return [msg for _, msg in self.syslog if "pam_kontist(" in msg and " auth service=" in msg]

    def attempt(self):
        """The fields of the only attempt line, as a dict; asserts there is exactly one."""
        lines = self.attempt_lines()
        assert len(lines) == 1, self.syslog
        return parse_fields(lines[0])

    def __repr__(self):
        return (f"<Run codes={self.codes} prompts={self.prompts} syslog={self.syslog} "
                f"stderr={self.stderr!r}>")


def parse_fields(line):
    """key=value fields of an attempt line; reason="..." may contain spaces."""
    fields = {}
    body = line.split(": ", 1)[1] if ": " in line else line
    for m in re.finditer(r'(\w+)=("([^"]*)"|\S+)', body):
        fields[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(2)
    return fields


class PamWorld:
    """A private PAM configuration, users and mock for one test."""

    def __init__(self, base, build_dir, mock=None):
        self.base = Path(base)
        self.build_dir = Path(build_dir)
        self.mock = mock
        self.module = built_module(self.build_dir)
        self.helper = built_pam_helper(self.build_dir)
        self.driver = self.build_dir / "tests" / "pam" / "pam_driver"
        self.services = self.base / "pam.d"
        self.etc = self.base / "etc"
        self.homes = self.base / "home"
        for d in (self.services, self.etc, self.homes):
            d.mkdir(parents=True, exist_ok=True)
        self.passwd = self.etc / "passwd"
        self.group = self.etc / "group"
        self.users = {}
        # Root's pins (the module's authfile=): local user -> Kontist username. enroll() adds one.
        self.pins = self.etc / "pins"
        self.pin_lines = {}
        self._write_pins()
        self.asan = sanitizer_runtime(self.driver)
        self.runs = 0
        self._write_other()
        self.config = self.write_config() if mock is not None else None
        self._write_nss()

    # -- configuration ------------------------------------------------------------------------

    def write_config(self, name="kontist.conf", extra="", mode=0o644, base_url=None,
                     secret=DEMO_CLIENT_SECRET, client_id=DEMO_CLIENT_ID):
        secret_file = write_private(self.etc / (name + ".secret"), secret + "\n")
        path = self.etc / name
        lines = module_config_lines(self.mock, client_id=client_id, base_url=base_url,
                                    secret_file=secret_file)
        path.write_text("\n".join(lines) + "\n" + extra)
        os.chmod(path, mode)
        return path

    def write_unreachable_config(self, name="down.conf"):
        """A configuration whose base_url is a loopback port nothing listens on: the API is
        down."""
        return self.write_config(name, base_url=f"https://127.0.0.1:{free_port()}")

    def service(self, name, args="", before=(), after=(), config=None, module_types=None,
                control="required"):
        """Writes a service file: `before` lines, the module in every stack, `after` lines.

        The module gets the world's pins as authfile= and the built helper as helper=, unless
        args names its own."""
        config = config if config is not None else self.config
        # The failure floor (a second by default) only slows the suite down; tests of it ask
        # for it. First, so that it holds even when a later argument is refused.
        floor = "" if "fail_floor_ms=" in args else "fail_floor_ms=0 "
        argv = floor + (f"config={config} " if config else "") + args
        if "authfile=" not in args:
            argv += f" authfile={self.pins}"
        if "helper=" not in args:
            argv += f" helper={self.helper}"
        lines = list(before)
        for kind in module_types or ("auth", "account", "session", "password"):
            lines.append(f"{kind} {control} {self.module} {argv}".rstrip())
        lines += list(after)
        (self.services / name).write_text("\n".join(lines) + "\n")
        return name

    def pin(self, name, username=DEMO_USER):
        """Root pins local user `name` to a Kontist username (None removes the pin)."""
        if username is None:
            self.pin_lines.pop(name, None)
        else:
            self.pin_lines[name] = username
        self._write_pins()

    def _write_pins(self):
        text = "".join(f"{n} {u}\n" for n, u in self.pin_lines.items())
        self.pins.write_text("# local-user kontist-username\n" + text)
        os.chmod(self.pins, 0o644)

    def _write_other(self):
        deny = PAM_DENY or "pam_deny.so"
        (self.services / "other").write_text(
            "".join(f"{kind} required {deny}\n"
                    for kind in ("auth", "account", "session", "password")))

    # -- users (nss_wrapper) ------------------------------------------------------------------

    def add_user(self, name):
        """A fake user with the test process's uid and a home below the world's directory."""
        home = self.homes / name
        home.mkdir(mode=0o755, exist_ok=True)
        self.users[name] = (os.geteuid(), os.getegid(), home)
        self._write_nss()
        return home

    def _write_nss(self):
        gid = os.getegid()
        lines = [f"{n}:x:{u}:{g}:test user:{h}:/bin/false" for n, (u, g, h) in self.users.items()]
        self.passwd.write_text("\n".join(lines) + "\n")
        self.group.write_text(f"ktgroup:x:{gid}:\n")

    # -- enrollment -----------------------------------------------------------------------------

    def enroll(self, home, uid=None, gid=None, key=None, record_extra=None, device_id=None,
               with_key_file=True, pin=True):
        """Binds a device at the mock and writes the user's key and device record; with pin,
        root pins the user (named after the home) to the demo account.

        Returns (device_id, key, key_path, record_path)."""
        if pin:
            self.pin(Path(home).name)
        uid = os.geteuid() if uid is None else uid
        gid = os.getegid() if gid is None else gid
        key = key or make_key()
        if device_id is None:
            device_id, key = self.mock.enroll_device(key=key, name=f"pam test {home.name}")
        cfg = Path(home) / ".config" / "kontist"
        cfg.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(cfg, 0o700)
        key_path = cfg / "device-key.pem"
        if with_key_file:
            write_key_pem(key, key_path)
        record = device_record(DEMO_USER, device_id, key_path, f"pam test {home.name}")
        record.update(record_extra or {})
        record = {k: v for k, v in record.items() if v is not None}
        record_path = write_private(cfg / "device.json", json.dumps(record))
        for p in (Path(home) / ".config", cfg, key_path, record_path):
            if p.exists():
                os.chown(p, uid, gid)
        return device_id, key, key_path, record_path

    # -- running -------------------------------------------------------------------------------

    def env(self, nss=True, syslog_path=None):
        preload = [PAM_WRAPPER_LIB]
        if nss:
            preload.append(NSS_WRAPPER_LIB)
        if self.asan:
            preload.insert(0, self.asan)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LD_PRELOAD": ":".join(preload),
            "PAM_WRAPPER": "1",
            "PAM_WRAPPER_SERVICE_DIR": str(self.services),
            "PAM_WRAPPER_USE_SYSLOG": "1",
            # Lets libpam bind syslog to the driver's stand-in (and is needed under ASan).
            "PAM_WRAPPER_DISABLE_DEEPBIND": "1",
            "KT_TEST_SYSLOG": str(syslog_path) if syslog_path else "",
            "ASAN_OPTIONS": "detect_leaks=1:exitcode=86:abort_on_error=0",
            "LSAN_OPTIONS": "exitcode=87",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=88",
        }
        if nss:
            env.update(NSS_WRAPPER_PASSWD=str(self.passwd), NSS_WRAPPER_GROUP=str(self.group))
        return env

    def run(self, service, user, ops=("auth",), password=DEMO_PASSWORD, conv="answer",
            rhost=None, repeat=1, threads=1, expect=None, nss=True, timeout=120, silent=False,
            wrapper=(), check=True, extra_env=None, pin=None):
        self.runs += 1
        tag = f"run{self.runs}"
        result_path = self.base / f"{tag}.json"
        syslog_path = self.base / f"{tag}.syslog"
        args = [*wrapper, str(self.driver), "--result", str(result_path), "--ops", ",".join(ops),
                "--conv", conv, "--repeat", str(repeat), "--threads", str(threads)]
        if password is not None:
            pw = write_private(self.base / f"{tag}.password", password + "\n")
            args += ["--password-file", str(pw)]
        if pin is not None:
            pin_path = self.base / f"{tag}.pin"
            fd = os.open(pin_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pin + "\n")
            args += ["--pin-file", str(pin_path)]
        if rhost:
            args += ["--rhost", rhost]
        if expect:
            args += ["--expect", ",".join(expect)]
        if silent:
            args.append("--silent")
        args += [service, user]
        env = self.env(nss=nss, syslog_path=syslog_path)
        env.update(extra_env or {})
        proc, start = start_pam_wrapped(args, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        elapsed = time.monotonic() - start
        stdout = out.decode(errors="replace")
        stderr = err.decode(errors="replace")
        syslog = []
        if syslog_path.exists():
            for line in syslog_path.read_text(errors="replace").splitlines():
                m = SYSLOG_LINE.match(line)
                assert m, line
                syslog.append((int(m.group(1)), m.group(2)))
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        run = Run(result, stdout, stderr, syslog, elapsed, proc.returncode)
        if check:
            check_run(run)
        return run


def check_run(run):
    """What every run must satisfy."""
    assert run.returncode == 0, f"driver exit {run.returncode}: {run.stderr}"
    assert run.stdout == "", f"output on the host's stdout: {run.stdout!r}"
    assert run.stderr == "", f"output on the host's stderr: {run.stderr!r}"
    assert run.result is not None
    check_no_secrets([msg for _, msg in run.syslog])


def check_no_secrets(lines, extra=()):
    patterns = SECRET_PATTERNS + [re.escape(s) for s in extra if s]
    for line in lines:
        for pattern in patterns:
            assert not re.search(pattern, line), f"secret /{pattern}/ logged: {line}"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_path(home):
    return Path(home) / ".local" / "state" / "kontist" / "tokens.json"


def copy_tree_owner(path, uid, gid):
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid)
    os.chown(path, uid, gid)


__all__ = ["PamWorld", "Run", "EnrolledUser", "built_module", "built_pam_helper",
           "write_private", "module_config_lines", "device_record", "DEMO_CLIENT_ID",
           "DEMO_CLIENT_SECRET", "check_no_secrets", "free_port", "cache_path", "parse_fields",
           "DEMO_USER", "DEMO_PASSWORD", "FAIL_DELAY_USEC", "PAM_MATRIX", "PAM_SET_ITEMS",
           "PAM_PERMIT", "PAM_WRAPPER_LIB", "NSS_WRAPPER_LIB", "copy_tree_owner"]
