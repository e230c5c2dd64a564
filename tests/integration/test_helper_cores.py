"""kontist-auth never leaves a core file: it holds the password, tokens and the device key.

The helper turns core dumps off (PR_SET_DUMPABLE 0, RLIMIT_CORE 0/0) before it reads anything.
To see that, it is started with an unlimited core size in an empty working directory, made to
wait inside a login (the token endpoint hangs, so the password has been read and sent), and
killed with SIGABRT. A control process started the same way but without that protection shows
that the same conditions do produce a core file on this machine, so the test can fail.

Nothing here changes a kernel setting: core_pattern is only read, to know whether a plain core
file is to be expected from the control at all.
"""

import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DEMO_PASSWORD
from test_helper_env import kenv  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

CORE_LIMIT = re.compile(r"^Max core file size\s+(\S+)\s+(\S+)", re.M)
WAIT = 15


def unlimited_cores():
    """preexec_fn: the child starts with core dumps as large as it likes."""
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def core_limits(pid):
    """(soft, hard) "Max core file size" of a running process, as /proc shows them."""
    match = CORE_LIMIT.search(Path(f"/proc/{pid}/limits").read_text())
    assert match, f"/proc/{pid}/limits has no core size line"
    return match.group(1), match.group(2)


def plain_core_pattern():
    """True when the kernel writes a core as a file in the working directory: no pipe to a
    handler, no directory of its own."""
    try:
        pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    except OSError:
        return False
    return pattern != "" and not pattern.startswith("|") and "/" not in pattern


def abort_and_reap(proc):
    """SIGABRT, then the raw wait status (os.WCOREDUMP tells whether the kernel wrote a core)."""
    proc.send_signal(signal.SIGABRT)
    deadline = time.monotonic() + WAIT
    while True:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        assert time.monotonic() < deadline, "the process did not die on SIGABRT"
        time.sleep(0.02)
    proc.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return status


def wait_for(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def settled_listing(directory):
    """The directory's entries once the kernel is done writing (a dump finishes before the
    process is reaped, so this is only belt and braces)."""
    time.sleep(0.2)
    return sorted(p.name for p in directory.iterdir())


def test_no_core_file_from_a_waiting_login(kenv, tmp_path):
    kenv.mock.set_fault(endpoint="token", kind="hang")
    helper_cwd = tmp_path / "helper-cwd"
    control_cwd = tmp_path / "control-cwd"
    helper_cwd.mkdir()
    control_cwd.mkdir()

    # The control: the same start, the same working-directory setup, no protection of its own.
    control = subprocess.Popen(["/usr/bin/sleep", "30"], cwd=control_cwd,
                               preexec_fn=unlimited_cores, start_new_session=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.readlink(f"/proc/{control.pid}/exe") == "/usr/bin/sleep",
                 "the control to run sleep")
        control_limits = core_limits(control.pid)
    finally:
        control_status = abort_and_reap(control)
    assert control_limits == ("unlimited", "unlimited"), control_limits
    control_files = settled_listing(control_cwd)

    with open(tmp_path / "helper-stderr", "w+") as err:
        proc = subprocess.Popen([str(kenv.auth), "login", "--password-stdin", "--mfa", "none"], cwd=helper_cwd,
                                env=kenv.env, preexec_fn=unlimited_cores, start_new_session=True,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            # Keep stdin open: the helper has the password and is waiting for the bank.
            proc.stdin.write((DEMO_PASSWORD + "\n").encode())
            proc.stdin.flush()
            wait_for(lambda: kenv.mock.requests("token") or proc.poll() is not None,
                     "the password grant to reach the mock")
            assert proc.poll() is None, "kontist-auth exited before the token endpoint answered"
            helper_limits = core_limits(proc.pid)
        finally:
            status = abort_and_reap(proc)
            proc.stdin.close()
        err.seek(0)
        stderr = err.read()

    assert proc.returncode == -signal.SIGABRT, stderr
    assert helper_limits == ("0", "0"), f"kontist-auth ran with core size {helper_limits}"
    assert not os.WCOREDUMP(status), "the kernel wrote a core dump of kontist-auth"
    assert settled_listing(helper_cwd) == [], "kontist-auth left a file in its directory"
    assert DEMO_PASSWORD not in stderr

    # The same conditions do produce a core on this machine when nothing prevents it.
    if plain_core_pattern():
        assert os.WCOREDUMP(control_status), "the control left no core: the test proves nothing"
        assert control_files != [], "the control's core file is missing"
