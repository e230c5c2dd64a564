"""kontist-auth on a terminal: prompts on /dev/tty with echo off before the prompt appears,
type-ahead kept, echo restored on every path; without a terminal, secrets are not read at all
unless an option says they come from standard input."""

import fcntl
import os
import pty
import resource
import select
import signal
import subprocess
import termios
import time

import pytest

from conftest import DEMO_PASSWORD, DEMO_USER
from test_helper_env import EXIT_OK, EXIT_USAGE, kenv  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


class Terminal:
    """A pty that becomes the controlling terminal of the process run on it."""

    def __init__(self):
        self.master, self.slave = pty.openpty()
        self.output = b""

    def run(self, kenv, *args, stdin=subprocess.DEVNULL):
        slave = self.slave

        def take_terminal():
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGQUIT must not leave a core

        # stdin is not the terminal: a prompt must go to /dev/tty by itself
        return subprocess.Popen([str(kenv.auth), *args], stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=kenv.env, preexec_fn=take_terminal,
                                pass_fds=(slave,), cwd=kenv.root)

    def read_until(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {needle!r} on the terminal; got {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.master, 4096)
                except OSError:
                    pass

    def drain(self):
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def echo(self):
        return bool(termios.tcgetattr(self.slave)[3] & termios.ECHO)

    def pending_input(self, timeout=1):
        """What is left unread in the terminal's input queue (read through the slave side)."""
        data = b""
        flags = fcntl.fcntl(self.slave, fcntl.F_GETFL)
        fcntl.fcntl(self.slave, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            while select.select([self.slave], [], [], timeout)[0]:
                try:
                    chunk = os.read(self.slave, 4096)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                data += chunk
                timeout = 0.2
        finally:
            fcntl.fcntl(self.slave, fcntl.F_SETFL, flags)
        return data

    def wait_for_echo(self, state, timeout=30):
        deadline = time.monotonic() + timeout
        while self.echo() != state:
            assert time.monotonic() < deadline, f"echo never became {state}"
            time.sleep(0.01)

    def type(self, text):
        os.write(self.master, text.encode())

    def close(self):
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal():
    t = Terminal()
    yield t
    t.close()


def test_password_is_read_from_the_terminal_without_echo(kenv, terminal):
    assert terminal.echo()
    proc = terminal.run(kenv, "login", "--mfa", "none")
    terminal.read_until(f"Kontist password for {DEMO_USER}: ".encode())
    terminal.wait_for_echo(False)
    terminal.type(DEMO_PASSWORD + "\n")
    out, err = proc.communicate(timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert DEMO_PASSWORD.encode() not in terminal.output
    assert terminal.echo(), "echo was not restored"
    assert kenv.cache()["username"] == DEMO_USER


def confirm_binding_request(kenv, timeout=30):
    """The person confirms the device binding request (in the app; here: the control endpoint)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in kenv.mock.state()["binding_requests"]:
            kenv.mock.answer_binding(request["id"], "CONFIRMED")
            return
        time.sleep(0.05)
    raise AssertionError("no device binding request")


def test_sms_code_is_read_from_the_terminal_without_echo(kenv, terminal):
    assert kenv.login().returncode == EXIT_OK
    proc = terminal.run(kenv, "device", "enroll")
    confirm_binding_request(kenv)
    terminal.read_until(b" left): ")
    terminal.wait_for_echo(False)
    otp = kenv.mock.last_otp()
    terminal.type(otp + "\n")
    out, err = proc.communicate(timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert otp.encode() not in terminal.output
    assert terminal.echo()
    assert kenv.record_file.exists()


def test_echo_is_off_before_the_prompt_appears(kenv, terminal):
    """Typed the moment the prompt shows (fast typing, a paste): nothing of it is echoed."""
    proc = terminal.run(kenv, "login", "--mfa", "none")
    terminal.read_until(f"Kontist password for {DEMO_USER}: ".encode())
    # No waiting: echo must already be off when the prompt can be seen.
    assert not terminal.echo(), "the prompt was printed while echo was still on"
    terminal.type(DEMO_PASSWORD + "\n")
    out, err = proc.communicate(timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert DEMO_PASSWORD.encode() not in terminal.output
    assert terminal.echo()
    assert kenv.cache()["username"] == DEMO_USER


def test_sms_code_prompt_echo_is_off_before_the_prompt(kenv, terminal):
    assert kenv.login().returncode == EXIT_OK
    proc = terminal.run(kenv, "device", "enroll")
    confirm_binding_request(kenv)
    terminal.read_until(b" left): ")
    assert not terminal.echo()
    otp = kenv.mock.last_otp()
    terminal.type(otp + "\n")
    _, err = proc.communicate(timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert otp.encode() not in terminal.output
    assert terminal.echo()


def test_type_ahead_is_kept(kenv, terminal):
    """The password and the next line typed in one go: the first line is the password (nothing
    was flushed before it was read) and the second stays in the terminal's input queue for the
    shell (nothing was flushed when echo came back)."""
    proc = terminal.run(kenv, "login", "--mfa", "none")
    terminal.read_until(b"password for")
    terminal.type(DEMO_PASSWORD + "\nnext-command\n")
    _, err = proc.communicate(timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert terminal.pending_input() == b"next-command\n"
    assert DEMO_PASSWORD.encode() not in terminal.output
    assert b"next-command" not in terminal.output
    assert terminal.echo()


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                                   signal.SIGUSR1, signal.SIGALRM])
def test_a_signal_during_the_prompt_restores_echo(kenv, terminal, signo):
    proc = terminal.run(kenv, "login", "--mfa", "none")
    terminal.read_until(b"password for")
    terminal.wait_for_echo(False)
    terminal.type("half-typed")
    proc.send_signal(signo)
    proc.communicate(timeout=30)
    # the process died of the signal, as it would have without the prompt
    assert proc.returncode == -signo
    assert terminal.echo(), "echo stays off after the signal"
    assert not kenv.cache_file.exists()


# A minimal job-control shell: it owns the session and the terminal and runs the command in a
# process group of its own in the foreground. Without such a parent, the command's group would
# be orphaned and the kernel would drop the stop signals this test is about.
JOB_SHELL = """
import os, signal, sys
tty = int(sys.argv[1])
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.tcsetpgrp(tty, os.getpid())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execv(sys.argv[2], sys.argv[2:])
os.setpgid(pid, pid)
print(pid, flush=True)
while True:
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        sys.exit(os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
"""


def test_suspend_and_resume_during_the_prompt(kenv, terminal):
    slave = terminal.slave

    def take_terminal():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    shell = subprocess.Popen(["/usr/bin/python3", "-c", JOB_SHELL, str(slave), str(kenv.auth),
                              "login", "--mfa", "none"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=kenv.env, preexec_fn=take_terminal,
                             pass_fds=(slave,), text=True)
    pid = None
    try:
        pid = int(shell.stdout.readline())
        terminal.read_until(b"password for")
        terminal.wait_for_echo(False)
        os.kill(pid, signal.SIGTSTP)
        # stopped, and meanwhile the terminal echoes again
        terminal.wait_for_echo(True)
        deadline = time.monotonic() + 30
        while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "the process did not stop"
            time.sleep(0.01)
        terminal.output = b""
        os.kill(pid, signal.SIGCONT)
        # the prompt starts over, echo off again
        terminal.read_until(b"password for")
        terminal.wait_for_echo(False)
        terminal.type(DEMO_PASSWORD + "\n")
        _, err = shell.communicate(timeout=30)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert shell.returncode == EXIT_OK, err
    assert terminal.echo()
    assert kenv.cache()["username"] == DEMO_USER


# Like JOB_SHELL, but with `stty tostop` and the command started in the background: its first
# write to the terminal stops it (SIGTTOU); the shell reports the stop, then brings it to the
# foreground (`fg`).
BACKGROUND_JOB_SHELL = """
import os, signal, sys, termios
tty = int(sys.argv[1])
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
attrs = termios.tcgetattr(tty)
attrs[3] |= termios.TOSTOP
termios.tcsetattr(tty, termios.TCSANOW, attrs)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execv(sys.argv[2], sys.argv[2:])
os.setpgid(pid, pid)
print(pid, flush=True)
_, status = os.waitpid(pid, os.WUNTRACED)
if not os.WIFSTOPPED(status):
    sys.exit(90)
print("stopped", os.WSTOPSIG(status), flush=True)
os.tcsetpgrp(tty, pid)
os.kill(pid, signal.SIGCONT)
while True:
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        sys.exit(os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
"""


def test_prompt_from_the_background_stops_until_foreground(kenv, terminal):
    """With tostop, a background job that writes its prompt gets SIGTTOU: it must stop (and
    prompt again in the foreground), not retry the interrupted write for ever."""
    slave = terminal.slave

    def take_terminal():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    shell = subprocess.Popen(["/usr/bin/python3", "-c", BACKGROUND_JOB_SHELL, str(slave),
                              str(kenv.auth), "login", "--mfa", "none"],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kenv.env,
                             preexec_fn=take_terminal, pass_fds=(slave,), text=True)
    pid = None
    try:
        pid = int(shell.stdout.readline())
        ready, _, _ = select.select([shell.stdout], [], [], 30)
        assert ready, "the background job did not stop on its terminal output"
        assert shell.stdout.readline().split() == ["stopped", str(int(signal.SIGTTOU))]
        terminal.read_until(b"password for")
        terminal.wait_for_echo(False)
        terminal.type(DEMO_PASSWORD + "\n")
        _, err = shell.communicate(timeout=30)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert shell.returncode == EXIT_OK, err
    assert terminal.echo()
    assert kenv.cache()["username"] == DEMO_USER


def test_end_of_input_on_the_terminal(kenv, terminal):
    # stdin holds the right password, but ^D on the terminal is the answer: no login
    proc = terminal.run(kenv, "login", "--mfa", "none", stdin=subprocess.PIPE)
    proc.stdin.write((DEMO_PASSWORD + "\n").encode())
    proc.stdin.flush()
    terminal.read_until(b"password for")
    terminal.wait_for_echo(False)
    terminal.type("\x04")  # ^D: end of input
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert b"no answer on the terminal" in err
    assert terminal.echo()
    assert kenv.token_requests() == []


def test_password_stdin_does_not_touch_the_terminal(kenv, terminal):
    proc = terminal.run(kenv, "login", "--mfa", "none", "--password-stdin", stdin=subprocess.PIPE)
    out, err = proc.communicate(input=(DEMO_PASSWORD + "\n").encode(), timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert terminal.output == b""


# -- without a terminal ---------------------------------------------------------------------------
#
# `su - user -c CMD` (and cron, and a pipe) give CMD no controlling terminal. Reading the secret
# from standard input there would show it (su -c: standard input is still the terminal, with echo
# on): the commands refuse at once, before reading anything or asking the bank for an SMS.


def run_without_terminal(kenv, args, stdin):
    """Runs kontist-auth in a new session (setsid: no controlling terminal) with stdin as given."""
    return subprocess.run([str(kenv.auth), *args], stdin=stdin, capture_output=True, text=True,
                          env=kenv.env, start_new_session=True, timeout=30, cwd=kenv.root)


def filled_pipe(data):
    """A pipe holding data; returns the read end (the write end is closed)."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def test_login_without_terminal_refuses_without_reading_stdin(kenv):
    r = filled_pipe((DEMO_PASSWORD + "\n").encode())
    try:
        proc = run_without_terminal(kenv, ["login"], r)
        left = os.read(r, 4096)
    finally:
        os.close(r)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "--password-stdin" in proc.stderr
    assert left == (DEMO_PASSWORD + "\n").encode(), "standard input was read"
    assert DEMO_PASSWORD not in proc.stdout + proc.stderr
    assert kenv.token_requests() == []
    assert not kenv.cache_file.exists()


def test_enroll_without_terminal_refuses_before_any_sms(kenv):
    assert kenv.login().returncode == EXIT_OK
    r = filled_pipe(b"123456\n")
    try:
        proc = run_without_terminal(kenv, ["device", "enroll"], r)
        left = os.read(r, 4096)
    finally:
        os.close(r)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "--otp-stdin" in proc.stderr
    assert left == b"123456\n", "standard input was read"
    assert kenv.mock.sms() == [], "the bank was asked for an SMS anyway"
    assert not kenv.record_file.exists() and not kenv.key_file.exists()


@pytest.mark.parametrize("args, option", [(["login"], "--password-stdin"),
                                          (["device", "enroll"], "--otp-stdin")])
def test_su_c_terminal_that_is_not_controlling_refuses(kenv, terminal, args, option):
    """su USER -c: standard input is a terminal, but not the controlling one of the command
    (new session), so echo could not be switched off: refuse, say how to do it instead."""
    if args[0] == "device":
        assert kenv.login().returncode == EXIT_OK
    terminal.type("typed-ahead\n")
    proc = run_without_terminal(kenv, args, terminal.slave)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "su - " in proc.stderr and option in proc.stderr, proc.stderr
    assert terminal.pending_input() == b"typed-ahead\n", "the terminal was read"
    assert kenv.mock.sms() == []
    assert not kenv.cache_file.exists() or args[0] == "device"


def test_stdin_options_still_read_stdin_without_terminal(kenv):
    r = filled_pipe((DEMO_PASSWORD + "\n").encode())
    try:
        proc = run_without_terminal(kenv, ["login", "--password-stdin", "--mfa", "none"], r)
    finally:
        os.close(r)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert kenv.cache()["username"] == DEMO_USER


@pytest.mark.parametrize("args, option", [(["login", "--password-stdin"], "--password-stdin"),
                                          (["device", "enroll", "--otp-stdin"], "--otp-stdin")])
def test_stdin_options_refuse_a_terminal(kenv, terminal, args, option):
    """su USER -c with --password-stdin: standard input is a terminal that echoes what is typed,
    so the option that reads pipes refuses it instead of showing the secret."""
    if args[0] == "device":
        assert kenv.login().returncode == EXIT_OK
    terminal.type(DEMO_PASSWORD + "\n")
    proc = run_without_terminal(kenv, args, terminal.slave)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert option in proc.stderr and "pipe" in proc.stderr, proc.stderr
    assert terminal.pending_input() == (DEMO_PASSWORD + "\n").encode(), "the terminal was read"
    assert DEMO_PASSWORD not in proc.stdout + proc.stderr
    assert kenv.mock.sms() == []
