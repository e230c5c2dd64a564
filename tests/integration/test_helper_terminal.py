"""kontist-auth on a terminal: prompts on /dev/tty with echo off, restored on every path."""

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

from conftest import DEMO_PASSWORD
from test_helper_env import EXIT_OK, kenv  # noqa: F401 (fixture)

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

    def read_until(self, needle, timeout=15):
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

    def wait_for_echo(self, state, timeout=5):
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
    proc = terminal.run(kenv, "login")
    terminal.read_until(b"Kontist password for demo@example.com: ")
    terminal.wait_for_echo(False)
    terminal.type(DEMO_PASSWORD + "\n")
    out, err = proc.communicate(timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert DEMO_PASSWORD.encode() not in terminal.output
    assert terminal.echo(), "echo was not restored"
    assert kenv.cache()["username"] == "demo@example.com"


def test_sms_code_is_read_from_the_terminal_without_echo(kenv, terminal):
    assert kenv.login().returncode == EXIT_OK
    proc = terminal.run(kenv, "device", "enroll")
    terminal.read_until(b"SMS code: ")
    terminal.wait_for_echo(False)
    otp = kenv.mock.last_otp()
    terminal.type(otp + "\n")
    out, err = proc.communicate(timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert otp.encode() not in terminal.output
    assert terminal.echo()
    assert kenv.record_file.exists()


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_a_signal_during_the_prompt_restores_echo(kenv, terminal, signo):
    proc = terminal.run(kenv, "login")
    terminal.read_until(b"password for")
    terminal.wait_for_echo(False)
    terminal.type("half-typed")
    proc.send_signal(signo)
    proc.communicate(timeout=15)
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
                              "login"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
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
        deadline = time.monotonic() + 5
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
    assert kenv.cache()["username"] == "demo@example.com"


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
                              str(kenv.auth), "login"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kenv.env,
                             preexec_fn=take_terminal, pass_fds=(slave,), text=True)
    pid = None
    try:
        pid = int(shell.stdout.readline())
        ready, _, _ = select.select([shell.stdout], [], [], 10)
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
    assert kenv.cache()["username"] == "demo@example.com"


def test_end_of_input_on_the_terminal(kenv, terminal):
    # stdin holds the right password, but ^D on the terminal is the answer: no login
    proc = terminal.run(kenv, "login", stdin=subprocess.PIPE)
    proc.stdin.write((DEMO_PASSWORD + "\n").encode())
    proc.stdin.flush()
    terminal.read_until(b"password for")
    terminal.wait_for_echo(False)
    terminal.type("\x04")  # ^D: end of input
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2, err
    assert b"no answer on the terminal" in err
    assert terminal.echo()
    assert kenv.token_requests() == []


def test_password_stdin_does_not_touch_the_terminal(kenv, terminal):
    proc = terminal.run(kenv, "login", "--password-stdin", stdin=subprocess.PIPE)
    out, err = proc.communicate(input=(DEMO_PASSWORD + "\n").encode(), timeout=30)
    terminal.drain()
    assert proc.returncode == EXIT_OK, err
    assert terminal.output == b""
