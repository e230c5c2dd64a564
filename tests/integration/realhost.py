"""Running pam_kontist.so in the real PAM hosts of this machine: OpenSSH's sshd, sudo and su.

The tests that use this need root and change the machine for the time of a test, and undo the
changes afterwards, also when the test fails (all but the last one here):

- real users (``useradd``, names ``ktrh-<random>``) with homes below a 0755 directory of their own
  (``/var/tmp/ktrh-<random>``: /tmp/pytest-of-root is 0700, so no other user could reach a home
  there), removed with ``userdel -r``;
- PAM services ``/etc/pam.d/<host>-kt<random>``, sudoers drop-ins ``/etc/sudoers.d/ktrh-<random>``
  (checked with ``visudo -c`` before they are put in place); the real ``/etc/pam.d/sshd``,
  ``sudo`` and ``su`` are never touched (su only sees our stack in a private mount namespace);
- ``/run/sshd`` (sshd's privilege separation directory, normally made at boot) is made when it
  is missing, and left in place: another test's sshd may be using it.

The test users run the build tree's kontist-auth when every directory up to it is searchable by
others, else a copy in their 0755 base directory (a checkout below /root is not reachable).

A sanitizer build's module needs the ASan runtime loaded before it: sshd gets it preloaded; sudo
and su are set-user-ID, so nothing can be preloaded into them and the module runs there with the
runtime loaded late (``verify_asan_link_order=0``), checked less but still run.

``RealHost`` holds one test's world: a kontist-mock, the module's root-owned configuration and
authfile, users and their enrollments, and starts an sshd (``Sshd``), sudo or su on a pty
(``PtyProcess``).  Nothing here uses pexpect: the ptys are the standard library's.

The module comes from the build tree by absolute path; ``helper=`` is passed only when the build
has ``pam_kontist/kontist-pam-helper`` (the module with a helper process), so that the same
fixtures also run against a module without one.
"""

import base64
import fcntl
import json
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import termios
import time
from pathlib import Path

import mock_launcher
from kt_crypto import make_key, write_key_pem
from pam_support import (DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER, built_module,
                         built_pam_helper, device_record, free_port, module_config_lines,
                         sanitizer_runtime)

RUN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _tool(name):
    """The system's program (never one from /usr/local or the caller's PATH)."""
    return shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


# Debian's programs: openssh-server, openssh-client, sshpass, sudo, util-linux, mount, passwd.
SSHD = _tool("sshd")
SSH = _tool("ssh")
SSH_KEYGEN = _tool("ssh-keygen")
SSHPASS = _tool("sshpass")
SUDO = _tool("sudo")
SU = _tool("su")
VISUDO = _tool("visudo")
REQUIRED_TOOLS = {"sshd": SSHD, "ssh": SSH, "ssh-keygen": SSH_KEYGEN, "sshpass": SSHPASS,
                  "sudo": SUDO, "visudo": VISUDO, "su": SU, "setpriv": _tool("setpriv"),
                  "unshare": _tool("unshare"), "mount": _tool("mount"),
                  "useradd": _tool("useradd"), "userdel": _tool("userdel"),
                  "chpasswd": _tool("chpasswd")}
PAM_DIR = Path("/etc/pam.d")
SUDOERS_DIR = Path("/etc/sudoers.d")
PRIVSEP_DIR = Path("/run/sshd")
BASE_PARENT = Path("/var/tmp")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pam.d"

OTHER_USER = "other@example.com"
OTHER_PASSWORD = "other-password-456"
# The module's pam_fail_delay (2 s).  libpam does not wait exactly that long: it multiplies the
# delay by 1 + (the mean of three pseudo-random numbers in [0, 1)) - 0.5, so a failure waits
# between half and one and a half times the delay (its comment says +/- 25 %, its code allows
# 50 %; below 75 % happens in about one failure in fourteen).  Half is the bound that holds.
FAIL_DELAY = 2.0
MIN_FAIL_TIME = FAIL_DELAY * 0.5

PROMPT = re.compile(r"[Pp]assword[^\n]*:\s*\Z")


def missing_requirements():
    """Why the real-host tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "the real-host PAM tests need root (real users, sshd, sudo, /etc/pam.d)"
    missing = [name for name, path in REQUIRED_TOOLS.items() if path is None]
    if missing:
        return ("missing " + ", ".join(missing) +
                " (scripts/install-deps installs openssh-server, openssh-client, sshpass, sudo, "
                "passwd, util-linux, mount)")
    return None


def users_with_other(*extra):
    """A mock users file (dict): tests/mock/demo-users.json (the demo user and clients) with
    OTHER_USER and *extra* users added."""
    users = mock_launcher.demo_users()
    users["users"] += [{"username": OTHER_USER, "password": OTHER_PASSWORD,
                        "phone": "+49 1512 0000000"}, *extra]
    return users


def jwt_payload(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def example_auth_lines(example):
    """(control, args) of the pam_kontist line and the pam_unix line of an example's auth stack."""
    lines = {}
    for raw in (EXAMPLES / example).read_text().splitlines():
        m = re.match(r"^auth\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)$", raw)
        if m and m.group(2) in ("pam_kontist.so", "pam_unix.so"):
            assert m.group(2) not in lines, f"{example}: two {m.group(2)} auth lines"
            lines[m.group(2)] = (m.group(1), m.group(3))
    assert list(lines) == ["pam_kontist.so", "pam_unix.so"], (example, lines)
    return lines["pam_kontist.so"], lines["pam_unix.so"]


def _write(path, text, mode=0o644, uid=0, gid=0):
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    os.chown(path, uid, gid)
    return path


def _run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 30)
    return subprocess.run([str(a) for a in args], **kw)


def _check(args, **kw):
    r = _run(args, **kw)
    if r.returncode != 0:
        command = " ".join(map(str, args))
        raise RuntimeError(f"{command}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def reachable_by_others(path):
    """Whether every directory up to path is searchable by others, and path readable and
    executable by them."""
    path = Path(path).resolve()
    for d in list(path.parents)[::-1]:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IROTH and mode & stat.S_IXOTH)


def _user_pids(uid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid or int(line.split()[2]) == uid:
                            pids.append(int(entry))
                        break
        except (OSError, ValueError):
            continue
    return pids


class User:
    """A real local user made for one test."""

    def __init__(self, name, uid, gid, home, local_password):
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = Path(home)
        self.local_password = local_password

    @property
    def kontist_dir(self):
        return self.home / ".config" / "kontist"

    @property
    def cache(self):
        return self.home / ".local" / "state" / "kontist" / "tokens.json"

    def __repr__(self):
        return f"<User {self.name} uid={self.uid}>"


class PtyProcess:
    """A process on a new pty that is its controlling terminal (as for a person at a terminal).

    ``converse(answers)`` answers each password prompt (the last line of output ends in
    "...assword...:") with the next answer, then reads to the end; it records the prompts, when
    each answer went out and when the output ended.
    """

    def __init__(self, argv, env, cwd="/"):
        master, slave = os.openpty()
        self.argv = [str(a) for a in argv]
        try:
            self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave,
                                         env=env, cwd=cwd, start_new_session=True,
                                         preexec_fn=_take_ctty)
        finally:
            os.close(slave)
        self.master = master
        self.data = b""
        self.prompts = []
        self.answered_at = []
        self.ended_at = None

    @property
    def text(self):
        return self.data.decode(errors="replace").replace("\r\n", "\n")

    def _read(self, timeout):
        """Reads what is there within timeout; False at end of output."""
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: every holder of the slave side is gone
            chunk = b""
        if not chunk:
            self.ended_at = time.monotonic()
            return False
        self.data += chunk
        return True

    def expect(self, pattern, timeout=20, since=0):
        """Waits until pattern matches the output (from offset since); returns the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            m = regex.search(self.data.decode(errors="replace"), since)
            if m:
                return m
            if self.ended_at is not None or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not seen from {self.argv}: {self.text!r}")
            self._read(min(0.2, deadline - time.monotonic()))

    def send(self, line):
        os.write(self.master, line.encode() + b"\n")

    def converse(self, answers, timeout=30):
        """Answers up to len(answers) prompts; a further prompt ends the process (SIGKILL)."""
        deadline = time.monotonic() + timeout
        answers = list(answers)
        seen = 0
        while self.ended_at is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no end of {self.argv} in {timeout} s: {self.text!r}")
            if not self._read(0.1):
                break
            text = self.data.decode(errors="replace")[seen:]
            last = text.replace("\r", "\n").rsplit("\n", 1)[-1]
            if PROMPT.search(last):
                seen = len(self.data.decode(errors="replace"))
                self.prompts.append(last)
                if not answers:
                    self.kill()
                    break
                # The prompt is out, so echo is off already: type the answer.
                self.answered_at.append(time.monotonic())
                self.send(answers.pop(0))
        return self.wait(max(5, deadline - time.monotonic()))

    def wait(self, timeout=20):
        """Reads to the end of output (or a second after the process exited); the exit code."""
        deadline = time.monotonic() + timeout
        exited_at = None
        while self.ended_at is None and time.monotonic() < deadline:
            self._read(0.1)
            if self.proc.poll() is not None:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 1:
                    break
        try:
            rc = self.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.wait()
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def close(self):
        self.kill()
        try:
            os.close(self.master)
        except OSError:
            pass

    def __repr__(self):
        return f"<PtyProcess {self.argv} rc={self.proc.returncode} prompts={self.prompts} " \
               f"output={self.text!r}>"


def _take_ctty():
    # After setsid (start_new_session): make the pty on stdin the controlling terminal, so that
    # ssh, sudo and su read passwords from /dev/tty as they would for a person.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Sshd:
    """An sshd on 127.0.0.1 under its own PAM service name (a symlink named sshd-kt<random>)."""

    def __init__(self, host, service, pam_lines, password_auth=False):
        self.host = host
        self.service = service
        self.dir = host.base / service
        self.dir.mkdir(mode=0o700)
        self.log_path = self.dir / "sshd.log"
        self.proc = None
        self.port = None
        host.install_pam_service(service, pam_lines)
        self.binary = self.dir / service
        os.symlink(SSHD, self.binary)
        self.host_key = self.dir / "ssh_host_ed25519_key"
        _check([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", service, "-f", self.host_key])
        self.password_auth = password_auth

    def _config(self, port):
        cfg = self.dir / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            "UsePAM yes",
            "KbdInteractiveAuthentication yes",
            f"PasswordAuthentication {'yes' if self.password_auth else 'no'}",
            "PubkeyAuthentication no",
            "AuthorizedKeysFile none",
            "PermitRootLogin no",
            "PermitEmptyPasswords no",
            # Only the users the tests make (an unknown ktrh- name is still asked for a password).
            "AllowUsers ktrh-*",
            "LoginGraceTime 60",
            "MaxAuthTries 6",
            "MaxStartups 50",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "PermitTunnel no",
            "LogLevel VERBOSE",
        ]) + "\n")
        os.chmod(cfg, 0o600)
        return cfg

    def start(self):
        # sshd's privilege separation directory, normally made at boot.  It stays: an sshd of
        # another test running at the same time needs it for every connection.
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        for _ in range(5):
            port = free_port()
            cfg = self._config(port)
            _check([self.binary, "-t", "-f", cfg])
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([str(self.binary), "-D", "-e", "-f", str(cfg)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=self.host.host_env())
            log.close()
            if _wait_port(port, self.proc, 10):
                self.port = port
                return self
            self.stop()
        raise RuntimeError(f"sshd did not start: {self.log()}")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- clients -------------------------------------------------------------------------------

    def ssh_args(self, user, method="keyboard-interactive", command=None, extra=(),
                 log_level="ERROR"):
        args = [SSH, "-F", "/dev/null", "-p", str(self.port),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"LogLevel={log_level}",
                "-o", f"PreferredAuthentications={method}", "-o", "PubkeyAuthentication=no",
                "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10",
                "-o", "BatchMode=no", *extra, f"{user}@127.0.0.1"]
        if command is not None:
            args += ["--", command]
        return args

    def sshpass(self, user, password, command="true", method="keyboard-interactive",
                timeout=40):
        """Logs in with sshpass (password through its pty) and runs command; CompletedProcess."""
        env = {"PATH": RUN_PATH, "LANG": "C", "SSHPASS": password, "HOME": str(self.dir)}
        args = [SSHPASS, "-e", "-P", "assword", *self.ssh_args(user, method, command)]
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def ssh_pty(self, user, command="true", method="keyboard-interactive", extra=(),
                log_level="ERROR"):
        """ssh on a pty of its own (prompts visible as a person sees them)."""
        env = {"PATH": RUN_PATH, "LANG": "C", "HOME": str(self.dir), "TERM": "dumb"}
        return PtyProcess(self.ssh_args(user, method, command, extra, log_level), env)


def _wait_port(port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


class RealHost:
    """One test's world on the real host; ``close()`` undoes everything (call it in a finally)."""

    def __init__(self, build_dir, mock):
        self.build_dir = Path(build_dir)
        self.mock = mock
        self.tag = secrets.token_hex(3)
        self.cleanups = []
        self.users = []
        self.base = Path(tempfile.mkdtemp(prefix=f"ktrh-{self.tag}-", dir=BASE_PARENT))
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self):
        os.chmod(self.base, 0o755)
        self.etc = self.base / "etc"
        self.homes = self.base / "home"
        for d in (self.etc, self.homes):
            d.mkdir(mode=0o755)
        self.module = built_module(self.build_dir)
        helper = built_pam_helper(self.build_dir)
        self.pam_helper = helper if helper.exists() else None
        self.asan = sanitizer_runtime(self.module)
        self.kontist_auth = self._user_runnable(self.build_dir / "helper" / "kontist-auth")
        self.authfile = _write(self.etc / "users", "# local-user kontist-username [device key]\n")
        self.pins = []
        self.config = self._write_configs() if self.mock is not None else None

    # -- files ---------------------------------------------------------------------------------

    def _user_runnable(self, binary):
        """The CLI by a path the test users can run: the build tree's own when every directory
        up to it is searchable by others, else a copy in the 0755 base directory."""
        if reachable_by_others(binary):
            return binary
        copy = self.base / "bin" / binary.name
        copy.parent.mkdir(mode=0o755, exist_ok=True)
        shutil.copy2(binary, copy)
        os.chmod(copy, 0o755)
        return copy

    def _write_configs(self):
        ca = self.etc / "ca.pem"
        shutil.copyfile(self.mock.ca_file, ca)
        os.chmod(ca, 0o644)
        secret = _write(self.etc / "client-secret", DEMO_CLIENT_SECRET + "\n", mode=0o600)
        # What the users' own kontist-auth reads: no client secret (a valid cache needs none).
        self.user_config = _write(self.etc / "user.conf",
                                  "\n".join(module_config_lines(self.mock, ca_file=ca)) + "\n")
        return _write(self.etc / "kontist.conf", "\n".join(
            module_config_lines(self.mock, ca_file=ca, secret_file=secret)) + "\n")

    def module_args(self, extra=""):
        args = [f"config={self.config}", f"authfile={self.authfile}"]
        if self.pam_helper is not None:
            args.append(f"helper={self.pam_helper}")
        return " ".join(args + ([extra] if extra else []))

    def module_line(self, control, extra=""):
        return f"auth {control} {self.module} {self.module_args(extra)}"

    def example_auth(self, example):
        """An example's auth stack (pam_kontist + pam_unix), with the test's module arguments."""
        (k_control, k_args), (u_control, u_args) = example_auth_lines(example)
        return [self.module_line(k_control, k_args), f"auth {u_control} pam_unix.so {u_args}"]

    @staticmethod
    def stack(auth_lines, session="common-session"):
        return list(auth_lines) + ["@include common-account", f"@include {session}"]

    def install_pam_service(self, name, lines):
        path = PAM_DIR / name
        assert not path.exists(), path
        self.cleanups.append(lambda: path.unlink(missing_ok=True))
        _write(path, "# kontist-auth real-host test; removed after the test\n" +
               "\n".join(lines) + "\n")
        return path

    def write_stack_file(self, name, lines):
        """A PAM service file outside /etc/pam.d (for su, bind-mounted in a private namespace)."""
        return _write(self.etc / name, "\n".join(lines) + "\n")

    # -- users ---------------------------------------------------------------------------------

    def add_user(self, local_password=None):
        name = f"ktrh-{secrets.token_hex(3)}"
        home = self.homes / name
        local_password = local_password or f"local-{secrets.token_hex(6)}"
        self.cleanups.append(lambda: _remove_user(name))
        _check([REQUIRED_TOOLS["useradd"], "-m", "-d", home, "-s", "/bin/sh", "-c",
                "kontist-auth test", name])
        _check([REQUIRED_TOOLS["chpasswd"]], input=f"{name}:{local_password}\n")
        pw = pwd.getpwnam(name)
        user = User(name, pw.pw_uid, pw.pw_gid, home, local_password)
        self.users.append(user)
        return user

    def unknown_user(self):
        """A name no local user has (and sshd's AllowUsers pattern still lets try)."""
        return f"ktrh-{secrets.token_hex(4)}"

    # -- pins and enrollment -------------------------------------------------------------------

    def pin(self, user, kontist_user, device_id=None, key_ref=None):
        fields = [user.name, kontist_user] + ([device_id, str(key_ref)] if device_id else [])
        self.pins.append("  ".join(fields))
        _write(self.authfile, "# local-user kontist-username [device key]\n" +
               "\n".join(self.pins) + "\n")

    def enroll_device(self, kontist_user=DEMO_USER, password=DEMO_PASSWORD, key=None, name=None):
        """A verified device at the mock for kontist_user; returns (device_id, key)."""
        token = self.mock.password_grant(username=kontist_user, password=password)["access_token"]
        return self.mock.enroll_device(key=key or make_key(), token=token,
                                       name=name or f"realhost {self.tag}")

    def write_device_record(self, user, kontist_user, device_id, key):
        """~/.config/kontist/device.json and device-key.pem as `kontist-auth device enroll`
        leaves them: owned by the user, 0700 directory, 0600 files."""
        for d in (user.home / ".config", user.kontist_dir):
            d.mkdir(mode=0o700, exist_ok=True)
            os.chown(d, user.uid, user.gid)
        os.chmod(user.kontist_dir, 0o700)
        key_path = user.kontist_dir / "device-key.pem"
        key_path.unlink(missing_ok=True)
        write_key_pem(key, key_path)
        os.chown(key_path, user.uid, user.gid)
        record = device_record(kontist_user, device_id, key_path, f"realhost {self.tag}")
        _write(user.kontist_dir / "device.json", json.dumps(record), mode=0o600, uid=user.uid,
               gid=user.gid)
        return key_path

    def self_enroll(self, user, kontist_user=DEMO_USER, password=DEMO_PASSWORD, pin=True):
        """Pin (authfile line without device) + the user's own device record and key."""
        device_id, key = self.enroll_device(kontist_user, password)
        self.write_device_record(user, kontist_user, device_id, key)
        if pin:
            self.pin(user, kontist_user)
        return device_id

    def central_enroll(self, user, kontist_user=DEMO_USER, password=DEMO_PASSWORD):
        """A four-field authfile line with a root-owned key (nothing in the user's home)."""
        device_id, key = self.enroll_device(kontist_user, password)
        keys = self.etc / "keys"
        keys.mkdir(mode=0o700, exist_ok=True)
        key_path = keys / f"{user.name}.pem"
        write_key_pem(key, key_path)
        self.pin(user, kontist_user, device_id, key_path)
        return device_id

    # -- hosts ---------------------------------------------------------------------------------

    def sshd(self, pam_lines, password_auth=False):
        s = Sshd(self, f"sshd-kt{secrets.token_hex(4)}", pam_lines, password_auth)
        self.cleanups.append(s.stop)
        return s.start()

    def host_env(self):
        """Environment of sshd.  A sanitizer build's module needs the ASan runtime loaded first:
        sshd (started here, not set-user-ID) gets it preloaded; its leak check is off because it
        would report sshd's own allocations."""
        env = {"PATH": RUN_PATH, "LANG": "C"}
        if self.asan:
            env["LD_PRELOAD"] = self.asan
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
            env["UBSAN_OPTIONS"] = os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1")
        return env

    def user_env(self, user):
        """Environment of sudo and su run by user.  They are set-user-ID, so nothing can be
        preloaded into them: a sanitizer build's module runs with the runtime loaded late
        (verify_asan_link_order=0), which checks less but lets the module run."""
        env = {"PATH": RUN_PATH, "HOME": str(user.home), "USER": user.name,
               "LOGNAME": user.name, "SHELL": "/bin/sh", "LANG": "C", "TERM": "dumb"}
        if self.asan:
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0:verify_asan_link_order=0"
        return env

    def as_user(self, user):
        return [REQUIRED_TOOLS["setpriv"], f"--reuid={user.uid}", f"--regid={user.gid}",
                "--init-groups", "--"]

    def sudo_service(self, user, pam_lines, command="/usr/bin/id"):
        """PAM service sudo-kt<random> and a sudoers drop-in that lets user run command with it."""
        service = f"sudo-kt{secrets.token_hex(4)}"
        self.install_pam_service(service, pam_lines)
        text = (f"# kontist-auth real-host test; removed after the test\n"
                f"Defaults:{user.name} pam_service={service}, pam_login_service={service}, "
                f"lecture=never, timestamp_timeout=0, passwd_tries=1, !mail_badpass\n"
                f"{user.name} ALL=(root) {command}\n")
        staged = _write(self.etc / f"sudoers-{service}", text, mode=0o440)
        _check([VISUDO, "-c", "-q", "-f", staged])
        target = SUDOERS_DIR / f"ktrh-{self.tag}-{service}"
        self.cleanups.append(lambda: target.unlink(missing_ok=True))
        shutil.copyfile(staged, target)
        os.chmod(target, 0o440)
        _check([VISUDO, "-c", "-q"])
        return service

    def sudo(self, user, password, tries=1, command="/usr/bin/id"):
        """user runs `sudo command` on a pty and types password at each of up to tries prompts."""
        p = PtyProcess(self.as_user(user) + [SUDO, command], self.user_env(user),
                       cwd=str(user.home))
        p.rc = p.converse([password] * tries)
        return p

    def su(self, user, target, stack_file, password, tries=1, command="id"):
        """user runs `su target -c command` on a pty, with stack_file as /etc/pam.d/su in a private
        mount namespace (the machine's own su stack is never changed)."""
        script = 'mount --bind "$1" /etc/pam.d/su || exit 97; shift; exec "$@"'
        argv = [REQUIRED_TOOLS["unshare"], "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", script, "sh", str(stack_file), *self.as_user(user),
                SU, target.name, "-c", command]
        p = PtyProcess(argv, self.user_env(user), cwd=str(user.home))
        p.rc = p.converse([password] * tries)
        return p

    # -- state ---------------------------------------------------------------------------------

    def home_files(self, user):
        """Every path below the user's home, relative, with (owner uid, mode)."""
        out = {}
        for root, dirs, files in os.walk(user.home):
            for name in dirs + files:
                p = Path(root) / name
                st = os.lstat(p)
                out[str(p.relative_to(user.home))] = (st.st_uid, stat.S_IMODE(st.st_mode))
        return out

    def close(self):
        errors = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep undoing the rest
                errors.append(repr(e))
        self.cleanups.clear()
        shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise RuntimeError("clean-up failed: " + "; ".join(errors))


def _remove_user(name):
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    # Whatever still runs as the user (a session sshd has not reaped yet) was started by the test.
    for _ in range(20):
        pids = _user_pids(uid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    r = _run([REQUIRED_TOOLS["userdel"], "-r", name])
    if r.returncode not in (0, 12):  # 12: home not removed (it is removed with the base anyway)
        raise RuntimeError(f"userdel -r {name}: exit {r.returncode}: {r.stderr}")


def snapshot(roots, exclude=()):
    """{path: (uid, size, mtime_ns)} of everything below roots, except below exclude."""
    exclude = [str(Path(e)) for e in exclude]
    out = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs
                       if not any(os.path.join(dirpath, d) == e or
                                  os.path.join(dirpath, d).startswith(e + "/") for e in exclude)]
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                out[p] = (st.st_uid, st.st_size, st.st_mtime_ns)
    return out


def new_or_changed(before, after):
    return sorted(p for p, v in after.items() if before.get(p) != v)


JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.([A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]*")


def kontist_related(path, user, markers, kontist_user, since, by_name=True):
    """Whether a file left on the machine belongs to a Kontist login of user: owned by the user
    (outside the user's /run/user directory, which a session manager may make), named after the
    user or (by_name) after Kontist, or holding one of markers (the password, the cached tokens)
    or a JWT for kontist_user issued since `since` (UNIX time).

    The name rule is meant for /run: /tmp is shared with whatever else runs on the machine, and
    other programs' files there may well be named after Kontist."""
    if user.name in path or (by_name and "kontist" in path.lower()):
        return True
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if st.st_uid == user.uid and not path.startswith(f"/run/user/{user.uid}"):
        return True
    if not stat.S_ISREG(st.st_mode) or st.st_size > 4 * 1024 * 1024:
        return False
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    if any(m.encode() in data for m in markers if m):
        return True
    for m in JWT.finditer(data):
        try:
            claims = jwt_payload("x." + m.group(1).decode() + ".x")
        except ValueError:
            continue
        if claims.get("sub") == kontist_user and claims.get("iat", 0) >= since - 1:
            return True
    return False
