"""kontist-auth login with push MFA: the person approves the login in the Kontist app.

The mock's control endpoint stands in for the phone: a thread waits for the push challenge the
login creates and answers it as the person would. Every test checks what the token cache holds
afterwards, file by file where the login must leave nothing behind.
"""

import datetime
import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import termios
import threading
import time

import pytest

from test_helper_env import EXIT_MFA, EXIT_UNAVAILABLE, EXIT_USAGE, HelperEnv  # noqa: F401
from test_helper_env import kenv, kenv_factory  # noqa: F401
from conftest import DEMO_PASSWORD, DEMO_USER


def pending_challenges(mock):
    return [c for c in mock.state()["mfa_challenges"] if c["status"] == "PENDING"]


def wait_for_challenge(mock, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pending_challenges(mock)
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("no push challenge was created")


def answer_later(mock, status, delay=0.3, after_checks=0):
    """Answers the next push challenge with status (VERIFIED or DENIED) from a thread: once the
    mock has answered *after_checks* of its checks (mfa_get; the mock logs a request once its
    answer is made, so all of those saw it pending), and *delay* seconds more."""
    result = {}

    def run():
        challenge = wait_for_challenge(mock)
        deadline = time.monotonic() + 60
        while (len(mock.requests("mfa_get")) < after_checks
               and time.monotonic() < deadline):
            time.sleep(0.02)
        time.sleep(delay)
        result["id"] = challenge["id"]
        mock.mfa(challenge["id"], status)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def logged_at(request):
    """When the mock took *request* in (its log's "time", milliseconds, UTC), as a Unix time."""
    return datetime.datetime.fromisoformat(request["time"].replace("Z", "+00:00")).timestamp()


# The log's times have milliseconds, cut off rather than rounded: two times that are really 3 s
# apart may show 2.999 s.
CLOCK_SLACK = 0.01


def check_gaps(mock):
    """Seconds between the push challenge's creation and its first check, and between each
    check and the next, from the mock's log."""
    times = [logged_at(r) for r in mock.requests() if r["endpoint"] in ("mfa_create", "mfa_get")]
    return [b - a for a, b in zip(times, times[1:])]


def state_files(kenv):
    """Every file below the user's state and config directories, with its bytes."""
    out = {}
    for base in (kenv.state_dir, kenv.config_dir):
        if base.exists():
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    out[str(p)] = p.read_bytes()
    return out


def quick_first_check(mock):
    """The bank may ask for the first check of a push challenge sooner than the client's 3 s
    (Retry-After on the challenge it creates); the mock does so once, for the tests that do not
    watch the pace of the checks, to keep them quick."""
    mock.set_fault(endpoint="mfa_create", kind="retry_after", seconds=1, count=1)


def login_push(kenv, *args, quick=True, **kw):
    """`login --mfa push`; with quick, the first check comes after 1 s (quick_first_check)."""
    if quick:
        quick_first_check(kenv.mock)
    return kenv.login("--mfa", "push", *args, **kw)


def test_push_approved_gives_a_confirmed_cache(kenv):
    thread, answered = answer_later(kenv.mock, "VERIFIED")
    r = login_push(kenv)
    thread.join(5)
    assert r.returncode == 0, r.stderr
    assert "Confirm the login in the Kontist app" in r.stderr
    # time left, as m:ss
    assert " left)" in r.stderr
    assert "confirmed in the Kontist app (push)" in r.stderr
    cache = json.loads(kenv.cache_file.read_text())
    assert cache["confirmed"] is True
    assert cache["mfa"] == "push"
    assert cache.get("device_id") is None
    # the token came from exactly one token call for the challenge that was approved
    tokens = kenv.mock.requests("mfa_token")
    assert len(tokens) == 1
    assert answered["id"] in tokens[0]["path"]
    # no terminal here: no waiting line (no carriage returns or escape sequences)
    assert "\r" not in r.stderr and "\033" not in r.stderr
    status = kenv.run("status")
    assert status.returncode == 0, status.stderr
    assert "confirmed:     yes (push MFA in the Kontist app)" in status.stdout


def test_push_is_polled_every_three_seconds(kenv):
    # approved once two checks found the challenge pending: the third one sees the approval
    thread, _ = answer_later(kenv.mock, "VERIFIED", delay=0, after_checks=2)
    r = login_push(kenv, quick=False)
    thread.join(30)
    assert r.returncode == 0, r.stderr
    assert [q["status"] for q in kenv.mock.requests("mfa_get")] == [200] * 3
    gaps = check_gaps(kenv.mock)
    # never sooner than 3 s after the one before: no busy loop
    assert min(gaps) >= 3 - CLOCK_SLACK, gaps
    # and not at a slower pace either, nor one that grows (6 s, then 12, say): the usual check
    # comes a busy machine's latency after its 3 s, and a single stall stays under twice that
    assert sorted(gaps)[len(gaps) // 2] < 4.5 and max(gaps) < 9, gaps


def test_push_denied_fails_with_a_precise_message(kenv):
    thread, _ = answer_later(kenv.mock, "DENIED")
    r = login_push(kenv)
    thread.join(5)
    assert r.returncode == EXIT_MFA, r.stderr
    assert "the login was denied in the Kontist app" in r.stderr
    assert "someone else did" in r.stderr
    assert not kenv.cache_file.exists()
    assert kenv.mock.requests("mfa_token") == []


def test_push_expired_has_its_own_message(mock_factory, kenv_factory):
    mock = mock_factory("--challenge-lifetime", "4")
    env = kenv_factory(mock)
    r = login_push(env, quick=False)
    assert r.returncode == EXIT_MFA, r.stderr
    assert "expired before it was approved" in r.stderr
    assert "denied" not in r.stderr
    assert not env.cache_file.exists()
    assert mock.requests("mfa_token") == []


def test_push_bounded_by_login_timeout(kenv):
    kenv.write_config(login_timeout=5)
    start = time.monotonic()
    r = login_push(kenv, quick=False)
    assert r.returncode == EXIT_MFA, r.stderr
    assert "within the login timeout (5 s)" in r.stderr
    # well before the challenge's own 180 s (the run's limit is 30 s)
    assert time.monotonic() - start < 25
    assert not kenv.cache_file.exists()


def test_ctrl_c_while_waiting_leaves_the_cache_alone(kenv):
    # a confirmed login by push first: the cache the interrupted login must not touch
    thread, _ = answer_later(kenv.mock, "VERIFIED")
    assert login_push(kenv).returncode == 0
    thread.join(5)
    before = state_files(kenv)
    assert str(kenv.cache_file) in before
    proc = kenv.popen("login", "--password-stdin", "--mfa", "push")
    proc.stdin.write(DEMO_PASSWORD + "\n")
    proc.stdin.flush()
    challenge = wait_for_challenge(kenv.mock)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGINT, err
    assert "stopped: nothing was saved" in err
    assert "left to expire" in err
    assert state_files(kenv) == before
    # no temporary file left beside the cache either, and the challenge was left pending
    assert [c["status"] for c in kenv.mock.state()["mfa_challenges"]
            if c["id"] == challenge["id"]] == ["PENDING"]
    assert len(kenv.mock.requests("mfa_token")) == 1


def test_rate_limited_polling_is_waited_out(kenv):
    kenv.mock.set_fault(endpoint="mfa_get", kind="status", status=429, retry_after=1, count=2)
    thread, _ = answer_later(kenv.mock, "VERIFIED", delay=0.1)
    r = login_push(kenv)
    thread.join(5)
    assert r.returncode == 0, r.stderr
    statuses = [q["status"] for q in kenv.mock.requests("mfa_get")]
    assert statuses[:2] == [429, 429]
    assert statuses[-1] == 200


def test_lasting_rate_limit_stays_a_rate_limit(kenv):
    kenv.mock.set_fault(endpoint="mfa_get", kind="status", status=429, retry_after=1)
    r = login_push(kenv)
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert "rate limited" in r.stderr
    assert "the bank is rate limiting requests" in r.stderr
    assert not kenv.cache_file.exists()


def test_retry_after_on_a_poll_is_honoured(kenv):
    kenv.mock.set_fault(endpoint="mfa_get", kind="retry_after", seconds=6, count=1)
    # approved once the first check (the one with Retry-After: 6) found it pending
    thread, _ = answer_later(kenv.mock, "VERIFIED", delay=0, after_checks=1)
    r = login_push(kenv, quick=False)
    thread.join(30)
    assert r.returncode == 0, r.stderr
    polls = kenv.mock.requests("mfa_get")
    assert len(polls) == 2, polls
    assert "retry_after" in polls[0]["faults"] and polls[1]["faults"] == []
    # first check after 3 s, which asked for 6 s: the second one only then
    first, second = check_gaps(kenv.mock)
    assert first >= 3 - CLOCK_SLACK, first
    assert second >= 6 - CLOCK_SLACK, second


def test_rate_limited_create_opens_nothing(kenv):
    kenv.mock.set_fault(endpoint="mfa_create", kind="status", status=429, retry_after=30)
    r = login_push(kenv, quick=False)
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr
    assert "try again in 30 s" in r.stderr
    assert not kenv.cache_file.exists()


# -- which factor ----------------------------------------------------------------------------


def test_default_order_uses_push_without_a_device_and_says_so(kenv):
    thread, _ = answer_later(kenv.mock, "VERIFIED")
    quick_first_check(kenv.mock)
    r = kenv.run("login", "--password-stdin", input=DEMO_PASSWORD + "\n")
    thread.join(5)
    assert r.returncode == 0, r.stderr
    assert "no device MFA for demo@example.com: no device is enrolled here" in r.stderr
    assert "(push) instead" in r.stderr
    assert json.loads(kenv.cache_file.read_text())["mfa"] == "push"


def test_mfa_device_alone_without_a_device_refuses(kenv):
    r = kenv.login("--mfa", "device")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "device MFA is the only factor allowed" in r.stderr
    assert kenv.mock.requests("mfa_create") == []
    assert not kenv.cache_file.exists()


def test_configured_order_device_alone_refuses(kenv):
    kenv.write_config(mfa="device")
    r = kenv.run("login", "--password-stdin", input=DEMO_PASSWORD + "\n")
    assert r.returncode == EXIT_MFA, r.stderr
    assert kenv.mock.requests("mfa_create") == []
    # no password went to the bank either: the choice is made first
    assert kenv.mock.requests("token") == []


def test_enrolled_device_is_used_first(kenv):
    assert kenv.login("--mfa", "none").returncode == 0
    r = kenv.enroll()
    assert r.returncode == 0, r.stderr
    r = kenv.login()
    assert r.returncode == 0, r.stderr
    assert "confirmed by device" in r.stderr
    assert kenv.mock.requests("mfa_create") == []
    cache = json.loads(kenv.cache_file.read_text())
    assert cache["mfa"] == "device"
    status = kenv.run("status")
    assert "confirmed:     yes (device MFA, device " in status.stdout


def test_push_first_in_the_order_wins_over_a_device(kenv):
    assert kenv.login("--mfa", "none").returncode == 0
    assert kenv.enroll().returncode == 0
    thread, _ = answer_later(kenv.mock, "VERIFIED")
    quick_first_check(kenv.mock)
    r = kenv.login("--mfa", "push,device")
    thread.join(5)
    assert r.returncode == 0, r.stderr
    assert json.loads(kenv.cache_file.read_text())["mfa"] == "push"


def test_unusable_key_falls_back_to_push_with_a_message(kenv):
    assert kenv.login("--mfa", "none").returncode == 0
    assert kenv.enroll().returncode == 0
    kenv.key_file.unlink()
    thread, _ = answer_later(kenv.mock, "VERIFIED")
    quick_first_check(kenv.mock)
    r = kenv.login()
    thread.join(5)
    assert r.returncode == 0, r.stderr
    assert "the device key cannot be used" in r.stderr
    assert "(push) instead" in r.stderr


def test_key_the_bank_rejects_never_falls_back_to_push(kenv):
    assert kenv.login("--mfa", "none").returncode == 0
    assert kenv.enroll().returncode == 0
    kenv.mock.set_fault(endpoint="challenge_verify", kind="status", status=403)
    r = kenv.login()
    assert r.returncode == EXIT_MFA, r.stderr
    assert kenv.mock.requests("mfa_create") == []
    assert "push" not in r.stderr


def test_bank_errors_on_the_device_challenge_open_no_push(kenv):
    assert kenv.login("--mfa", "none").returncode == 0
    assert kenv.enroll().returncode == 0
    for fault in ({"kind": "status", "status": 429, "retry_after": 5},
                  {"kind": "status", "status": 503}):
        kenv.mock.clear_faults()
        kenv.mock.set_fault(endpoint="challenge_create", **fault)
        r = kenv.login()
        assert r.returncode == EXIT_UNAVAILABLE, r.stderr
        assert kenv.mock.requests("mfa_create") == []


def test_wrong_password_opens_no_push(kenv):
    r = kenv.login("--mfa", "push", password="wrong-password")
    assert r.returncode == 3, r.stderr
    assert kenv.mock.requests("mfa_create") == []


def test_mfa_none_only_from_the_command_line(kenv):
    kenv.write_config(mfa="none")
    r = kenv.run("login", "--password-stdin", input=DEMO_PASSWORD + "\n")
    assert r.returncode == EXIT_USAGE, r.stderr
    assert "none is no MFA factor to configure" in r.stderr
    kenv.write_config()
    r = kenv.login("--mfa", "none")
    assert r.returncode == 0, r.stderr
    assert "NOT confirmed" in r.stderr
    assert json.loads(kenv.cache_file.read_text())["confirmed"] is False


@pytest.mark.parametrize("value", ["sms", "device,device", "none,push", "push,", ""])
def test_bad_mfa_option_is_a_usage_error(kenv, value):
    r = kenv.login("--mfa", value)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert kenv.mock.requests("token") == []


def test_old_cache_without_factor_reads_as_device(kenv):
    assert kenv.login("--mfa", "none").returncode == 0
    assert kenv.enroll().returncode == 0
    assert kenv.login().returncode == 0
    cache = json.loads(kenv.cache_file.read_text())
    del cache["mfa"]
    kenv.cache_file.write_text(json.dumps(cache))
    status = kenv.run("status")
    assert "confirmed:     yes (device MFA, device " in status.stdout
    cache.pop("device_id")
    kenv.cache_file.write_text(json.dumps(cache))
    status = kenv.run("status")
    assert "confirmed:     yes (by an unknown factor)" in status.stdout


def test_waiting_line_only_on_a_terminal(kenv):
    """On a terminal (standard error and the controlling terminal a pty) the wait shows a status
    line with the time waited, redrawn in place; the earlier tests check that there is none
    without one."""
    quick_first_check(kenv.mock)
    master, slave = pty.openpty()

    def take_terminal():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([str(kenv.auth), "login", "--mfa", "push"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=kenv.env,
                            preexec_fn=take_terminal, pass_fds=(slave,), cwd=kenv.root)
    output = b""

    def read_until(needle, timeout=20):
        nonlocal output
        deadline = time.monotonic() + timeout
        while needle not in output:
            assert time.monotonic() < deadline, f"no {needle!r} on the terminal: {output!r}"
            if select.select([master], [], [], 0.2)[0]:
                try:
                    output += os.read(master, 4096)
                except OSError:
                    pass

    try:
        read_until(b"password for")
        os.write(master, (DEMO_PASSWORD + "\n").encode())
        read_until(b"Confirm the login in the Kontist app (")
        read_until(b"waiting for your confirmation in the Kontist app... 0:0")
        assert b"\r\033[K" in output and b"(Ctrl-C to stop)" in output
        kenv.mock.mfa(wait_for_challenge(kenv.mock)["id"], "VERIFIED")
        read_until(b"confirmed in the Kontist app (push)")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
