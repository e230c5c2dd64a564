"""kontist-auth device enroll against a mock that, like the bank, creates a device only after a
confirmed device binding request: the happy path, rejection, timeout, Ctrl-C, the 3-minute
window, and the mock's other modes."""

import datetime
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time

import pytest

from conftest import DEMO_PASSWORD
from test_helper_env import (EXIT_AUTH, EXIT_MFA, EXIT_OK, EXIT_USAGE, HelperEnv,  # noqa: F401
                             kenv, kenv_factory)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def wait_for_pending(mock, timeout=30):
    """The device binding request waiting for the person, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = mock.state()["binding_requests"]
        if pending:
            return pending[0]
        time.sleep(0.05)
    raise AssertionError("no device binding request arrived")


def finish(proc, stdin_text="", timeout=30):
    out, err = proc.communicate(input=stdin_text, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def nothing_left(kenv):
    """No record, no key (nor any other file) on this machine, no device at the bank."""
    assert not kenv.record_file.exists()
    assert not kenv.key_file.exists()
    assert not kenv.config_dir.exists() or list(kenv.config_dir.iterdir()) == []
    assert kenv.mock.state()["devices"] == []


def operations(mock):
    """The API calls in order, GraphQL ones by operation."""
    return [r["operation"] if r["endpoint"] == "graphql" else r["endpoint"]
            for r in mock.requests() if r["endpoint"] != "token"]


def logged_at(request):
    """When the mock took *request* in (its log's "time", milliseconds, UTC), as a Unix time:
    the same clock as time.time() here."""
    return datetime.datetime.fromisoformat(request["time"].replace("Z", "+00:00")).timestamp()


def binding_requests_log(mock):
    """The log lines of the device binding request's creation and its checks, in order."""
    return [r for r in mock.requests("graphql")
            if r["operation"] in ("createDeviceBindingRequest", "getDeviceBindingRequest")]


def wait_for_checks(mock, count, timeout=20):
    """The log's getDeviceBindingRequest lines, once there are *count* of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        checks = [r for r in mock.requests("graphql")
                  if r["operation"] == "getDeviceBindingRequest"]
        if len(checks) >= count:
            return checks
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} checks of the device binding request arrived")


# The log's times have milliseconds, cut off rather than rounded: two times that are really 3 s
# apart may show 2.999 s.
CLOCK_SLACK = 0.01


# -- the documented flow -----------------------------------------------------------------------

def test_binding_request_comes_first_and_the_device_after_the_confirmation(kenv):
    assert kenv.login().returncode == EXIT_OK
    proc = kenv.popen("device", "enroll", "--otp-stdin", "--name", "build box")
    request = wait_for_pending(kenv.mock)
    # the bank sees the request, and nothing else yet: no device, no SMS, no key here
    assert request["deviceName"] == "build box"
    assert request["ipAddress"] == "127.0.0.1"
    assert kenv.mock.state()["devices"] == [] and kenv.mock.sms() == []
    assert kenv.mock.requests("devices_create") == []
    assert not kenv.key_file.exists()
    # it keeps checking, at a civil pace: the first check comes 3 s after the request
    wait_for_checks(kenv.mock, 1)
    kenv.mock.answer_binding(request["id"], "CONFIRMED")
    deadline = time.monotonic() + 30
    while not kenv.mock.sms() and time.monotonic() < deadline:
        time.sleep(0.05)
    r = finish(proc, kenv.mock.last_otp() + "\n")
    assert r.returncode == EXIT_OK, r.stderr
    ops = operations(kenv.mock)
    assert ops[0] == "createDeviceBindingRequest"
    assert set(ops[1:-2]) == {"getDeviceBindingRequest"}
    assert ops[-2:] == ["devices_create", "device_verify"]
    # every check (the one that saw the confirmation too) 3 s after the one before, none sooner
    times = [logged_at(r) for r in binding_requests_log(kenv.mock)]
    assert len(times) >= 2
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 3 - CLOCK_SLACK, gaps
    # what the person was told
    assert "confirm it in the Kontist app" in r.stderr
    assert "in the email Kontist sent you" in r.stderr
    assert f"device binding request {request['id']} from 127.0.0.1" in r.stderr
    assert "confirmed: the device is created now" in r.stderr
    # no spinner on a pipe
    assert "\r" not in r.stderr and "waiting for your confirmation" not in r.stderr
    record = json.loads(kenv.record_file.read_text())
    assert record["name"] == "build box"
    [device] = kenv.mock.state()["devices"]
    assert device["id"] == record["device_id"] and device["verified"] is True
    assert kenv.login().returncode == EXIT_OK
    assert kenv.cache()["confirmed"] is True


def test_rejected_request_exits_4_and_creates_nothing(kenv):
    assert kenv.login().returncode == EXIT_OK
    proc = kenv.popen("device", "enroll", "--otp-stdin")
    request = wait_for_pending(kenv.mock)
    kenv.mock.answer_binding(request["id"], "REJECTED")
    r = finish(proc, "123456\n")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "device binding request was rejected" in r.stderr
    assert "nothing was enrolled" in r.stderr
    nothing_left(kenv)
    assert kenv.mock.requests("devices_create") == [] and kenv.mock.sms() == []


def test_nobody_confirms_before_the_timeout(kenv):
    assert kenv.login().returncode == EXIT_OK
    started_wall = time.time()
    started = time.monotonic()
    r = kenv.run("device", "enroll", "--otp-stdin", "--confirm-timeout", "4")
    took = time.monotonic() - started
    assert r.returncode == EXIT_USAGE, r.stderr
    # it gives up: 4 s and then some, not a wait for ever (the run's own limit is 30 s)
    assert 3.99 <= took < 25
    assert "not confirmed within 0:04" in r.stderr
    assert "--confirm-timeout SECONDS allows more time" in r.stderr
    nothing_left(kenv)
    # checked after 3 s and at the end, no more often: one or two checks (one when the
    # request's creation took over a second, so that 3 s after it is past the 4 s already)
    ops = operations(kenv.mock)
    assert ops[0] == "createDeviceBindingRequest"
    assert ops[1:] in (["getDeviceBindingRequest"], ["getDeviceBindingRequest"] * 2), ops
    # each check 3 s after the one before or, earlier than that, at the 4 s timeout (counted
    # from the program's start, which is after started_wall); the last one at the timeout
    timeout_at = started_wall + 4 - CLOCK_SLACK
    times = [logged_at(r) for r in binding_requests_log(kenv.mock)]
    for before, check in zip(times, times[1:]):
        assert check - before >= 3 - CLOCK_SLACK or check >= timeout_at, times
    assert times[-1] >= timeout_at, (times, started_wall)
    # the request is still waiting at the bank: only the person can answer it
    assert len(kenv.mock.state()["binding_requests"]) == 1


@pytest.mark.parametrize("value", ["0", "3601", "abc", "", "-5", "10s", " 10"])
def test_confirm_timeout_must_be_seconds(kenv, value):
    r = kenv.run("device", "enroll", "--otp-stdin", "--confirm-timeout", value)
    assert r.returncode == EXIT_USAGE
    assert "--confirm-timeout must be a number of seconds from 1 to 3600" in r.stderr
    assert kenv.mock.requests() == []


def test_help_explains_the_binding_request(kenv):
    r = kenv.run("device", "enroll", "--help")
    assert r.returncode == EXIT_OK
    for words in ("device binding request", "Kontist app", "email", "every 3 seconds",
                  "--confirm-timeout", "within 3 minutes", "Ctrl-C"):
        assert words in r.stdout, words


# -- the 3-minute window -----------------------------------------------------------------------

def test_device_created_after_the_window_is_refused_and_said_so(mock_factory, kenv_factory):
    mock = mock_factory("--binding-window", "2")
    kenv = kenv_factory(mock)
    assert kenv.login().returncode == EXIT_OK
    # the person confirms at once, but the device creation reaches the bank 3 s later
    mock.set_fault(endpoint="devices_create", kind="delay", seconds=3)
    r = kenv.enroll()
    assert r.returncode == EXIT_MFA, r.stderr
    assert "create device: refused (HTTP 403)" in r.stderr
    assert "binding_request_expired" in r.stderr
    assert "confirmed more than 2 s ago" in r.stderr
    assert "run 'kontist-auth device enroll' again" in r.stderr
    nothing_left(kenv)
    assert mock.sms() == []


def test_sms_code_typed_after_the_window_is_refused(mock_factory, kenv_factory):
    # The window has to hold the client's next check (3 s) and the device's creation on a busy
    # machine; the code is typed only once it has passed.
    window = 10
    mock = mock_factory("--binding-window", str(window))
    kenv = kenv_factory(mock)
    assert kenv.login().returncode == EXIT_OK
    proc = kenv.popen("device", "enroll", "--otp-stdin")
    request = wait_for_pending(mock)
    mock.answer_binding(request["id"], "CONFIRMED")
    window_over = time.time() + window        # the mock confirmed it before this
    deadline = time.monotonic() + 30
    while not mock.sms() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # the device was created within the window: the SMS came
    otp = mock.last_otp()
    time.sleep(max(0.0, window_over - time.time()) + 0.5)
    r = finish(proc, otp + "\n")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "verify device: refused (HTTP 403)" in r.stderr
    assert "binding_request_expired" in r.stderr
    assert not kenv.record_file.exists() and not kenv.key_file.exists()
    # the device exists at the bank, never verified
    [device] = mock.state()["devices"]
    assert device["verified"] is False


# -- the mock's other modes --------------------------------------------------------------------

def test_auto_mode_needs_no_answer_and_no_check(mock_factory, kenv_factory):
    mock = mock_factory("--binding-requests", "auto")
    kenv = kenv_factory(mock)
    assert kenv.login().returncode == EXIT_OK
    r = kenv.enroll(binding=None)
    assert r.returncode == EXIT_OK, r.stderr
    assert operations(mock) == ["createDeviceBindingRequest", "devices_create", "device_verify"]
    # nothing to confirm, so nobody is asked to
    assert "confirm it in the Kontist app" not in r.stderr


def test_off_mode_still_works(mock_factory, kenv_factory):
    mock = mock_factory("--binding-requests", "off")
    kenv = kenv_factory(mock)
    assert kenv.login().returncode == EXIT_OK
    # kontist-auth follows the documented order whatever the bank enforces
    r = kenv.enroll()
    assert r.returncode == EXIT_OK, r.stderr
    assert kenv.login().returncode == EXIT_OK
    assert kenv.cache()["confirmed"] is True
    # and the fixtures' own enrollment works against it as well
    device_id, key = mock.enroll_device(name="second")
    assert mock.confirm(mock.password_grant()["access_token"], device_id, key)["token"]


# -- on a terminal: the spinner, Ctrl-C ----------------------------------------------------------

class Pty:
    """kontist-auth on a pseudo-terminal of its own (its controlling terminal)."""

    def __init__(self, kenv, *args):
        self.master, slave = pty.openpty()
        self.output = b""

        def take_terminal():
            os.setsid()
            import fcntl
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([str(kenv.auth), *args], env=kenv.env, stdin=slave,
                                     stdout=slave, stderr=slave, preexec_fn=take_terminal,
                                     close_fds=True)
        os.close(slave)

    def read_until(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{needle!r} not seen before the end: {self.output!r}")
                self.output += chunk

    def drain(self):
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                return
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def echo(self):
        return bool(termios.tcgetattr(self.master)[3] & termios.ECHO)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def on_pty():
    made = []

    def start(kenv, *args):
        made.append(Pty(kenv, *args))
        return made[-1]
    yield start
    for p in made:
        p.close()


def test_ctrl_c_while_waiting_stops_and_leaves_nothing(kenv, on_pty):
    assert kenv.login().returncode == EXIT_OK
    # The bank asks for the first check only in 60 s (Retry-After, the longest wait the client
    # accepts): a Ctrl-C that were only seen at the next check would take a minute.
    kenv.mock.set_fault(endpoint="graphql", operation="createDeviceBindingRequest",
                        kind="retry_after", seconds=60, count=1)
    term = on_pty(kenv, "device", "enroll")
    term.read_until(b"confirm it in the Kontist app")
    # on a terminal the wait shows: a spinner, the time waited, how to stop
    term.read_until(b"waiting for your confirmation... 0:0")
    term.read_until(b"(Ctrl-C to stop)")
    started = time.monotonic()
    os.write(term.master, b"\x03")           # Ctrl-C: SIGINT to the foreground process group
    term.proc.wait(timeout=30)
    assert time.monotonic() - started < 20
    # it stopped during the wait, before any check
    assert [r["operation"] for r in kenv.mock.requests("graphql")] == [
        "createDeviceBindingRequest"]
    term.drain()
    # ended by the signal, as a shell expects of Ctrl-C
    assert term.proc.returncode == -signal.SIGINT, term.output
    assert b"stopped: nothing was enrolled" in term.output
    assert term.echo()
    nothing_left(kenv)
    assert kenv.mock.requests("devices_create") == []


def test_sigint_at_the_sms_prompt_leaves_no_key(kenv, on_pty):
    assert kenv.login().returncode == EXIT_OK
    started = time.time()
    term = on_pty(kenv, "device", "enroll")
    request = wait_for_pending(kenv.mock)
    kenv.mock.answer_binding(request["id"])
    term.read_until(b"SMS code (")
    term.read_until(b" left): ")
    seen = time.time()
    # the time left of the 3-minute window, counted from the last check that still found the
    # request pending (the creation, when the first check already saw the confirmation)
    shown = re.search(rb"SMS code \((\d+):(\d\d) left\): ", term.output)
    assert shown, term.output
    left = int(shown[1]) * 60 + int(shown[2])
    log = binding_requests_log(kenv.mock)
    assert log[-1]["operation"] == "getDeviceBindingRequest"    # the one that saw it confirmed
    last_pending = logged_at(log[-2])
    [created] = kenv.mock.requests("devices_create")
    # at least the time from that check to the device's creation has passed (the prompt came
    # after it), at most the time since the program started
    assert left <= 180 - (logged_at(created) - last_pending) + CLOCK_SLACK, (left, log)
    assert left >= 180 - (seen - started) - 1, (left, seen - started)
    term.proc.send_signal(signal.SIGINT)
    term.proc.wait(timeout=30)
    term.drain()
    assert term.proc.returncode == -signal.SIGINT, term.output
    assert b"stopped: nothing was enrolled" in term.output
    assert term.echo()
    # the key was never written; the device the bank created was never verified
    assert not kenv.key_file.exists() and not kenv.record_file.exists()
    assert [d["verified"] for d in kenv.mock.state()["devices"]] == [False]


def test_sigterm_while_waiting_ends_the_same_way(kenv):
    assert kenv.login().returncode == EXIT_OK
    proc = kenv.popen("device", "enroll", "--otp-stdin")
    wait_for_pending(kenv.mock)
    proc.send_signal(signal.SIGTERM)
    r = finish(proc, timeout=30)
    assert r.returncode == -signal.SIGTERM
    assert "stopped: nothing was enrolled" in r.stderr
    nothing_left(kenv)


def test_a_password_login_is_still_needed_first(kenv):
    r = kenv.enroll()
    assert r.returncode == EXIT_AUTH
    assert kenv.mock.requests("graphql") == []
    assert DEMO_PASSWORD not in r.stderr
