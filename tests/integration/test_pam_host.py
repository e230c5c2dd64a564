"""pam_kontist.so as a guest in its host process: what it exports, threads and several handles,
memory over many authentications, nothing on the host's stdout/stderr, one syslog line per
attempt.

Leak checks: in a sanitizer build (the driver linked with ASan) LeakSanitizer checks every driver
process at exit, so the 1000-authentication run is a LeakSanitizer run; in a plain build the same
run compares the heap in use before and after, and valgrind's memcheck runs a shorter series of
every kind of outcome. test_leak_checkers_see_a_leak proves each checker catches a real leak.
"""

import json
import re
import shutil
import subprocess

import pytest

from pam_support import DEMO_PASSWORD, cache_path

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

ALLOWED_EXPORTS = {"pam_sm_authenticate", "pam_sm_setcred", "pam_sm_acct_mgmt",
                   "pam_sm_open_session", "pam_sm_close_session", "pam_sm_chauthtok"}
# Heap that one-time caches (libcurl, OpenSSL, NSS) may still take after the warm-up run.
HEAP_SLACK = 64 * 1024
VALGRIND = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--error-exitcode=99"]


def dynamic_symbols(path, *flags):
    out = subprocess.run(["nm", "-D", *flags, str(path)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def test_exports_only_pam_sm(build_dir):
    module = build_dir / "pam_kontist" / ".libs" / "pam_kontist.so"
    defined = dynamic_symbols(module, "--defined-only")
    assert defined == ALLOWED_EXPORTS


def test_no_stdio_in_the_module(build_dir):
    """Nothing in the module can write to the host's standard streams."""
    module = build_dir / "pam_kontist" / ".libs" / "pam_kontist.so"
    undefined = dynamic_symbols(module, "--undefined-only")
    stdio = {"stdout", "stderr", "printf", "puts", "putchar", "perror", "fprintf", "fputs",
             "fwrite", "vprintf", "vfprintf", "__printf_chk", "__fprintf_chk", "__vfprintf_chk",
             "dprintf", "__dprintf_chk", "err", "warn", "errx", "warnx", "syslog", "vsyslog",
             "__syslog_chk", "__vsyslog_chk"}
    assert not (undefined & stdio), undefined & stdio


def test_threads_with_separate_handles(world, mock):
    """8 threads, 10 logins each, two users: every login succeeds on its own connection and each
    user's cache ends up with that user's device, not the other's."""
    homes = {}
    for name in ("alice", "bob"):
        homes[name] = (world.add_user(name), world.enroll(world.homes / name)[0])
    world.service("kontist")
    since = len(mock.requests())
    # Each login is bounded by its own login_timeout; the total only catches a hung process,
    # and 81 logins under AddressSanitizer on a loaded machine take a while.
    run = world.run("kontist", "alice,bob", ops=("auth", "setcred-establish"), threads=8,
                    repeat=10, expect=("PAM_SUCCESS", "PAM_SUCCESS"), timeout=600)
    assert run.result["runs"] == 80
    assert run.result["mismatches"] == 0, run.result["first_mismatch"]
    requests = mock.requests()[since:]
    by_conn = {}
    for r in requests:
        by_conn.setdefault(r["conn"], []).append(r["endpoint"])
    # 80 logins plus the driver's warm-up run, three requests each on one connection.
    assert len(by_conn) == 81
    assert all(v == ["token", "challenge_create", "challenge_verify"] for v in by_conn.values())
    for name, (home, device_id) in homes.items():
        assert json.loads(cache_path(home).read_text())["device_id"] == device_id
    assert len(run.attempt_lines()) == 81


def test_thousand_authentications_in_one_process(world, alice, mock):
    world.service("kontist")
    ops = ("auth", "setcred-establish", "setcred-delete")
    # The heap growth below needs many logins to show; LeakSanitizer reports any leak of a login
    # at exit however few ran, and each login under it costs several times as much.
    repeat = 200 if world.asan else 1000
    # Each login is bounded by its own login_timeout; the total only catches a hung process.
    run = world.run("kontist", "alice", ops=ops, repeat=repeat, expect=("PAM_SUCCESS",) * 3,
                    timeout=1800)
    assert run.result["runs"] == repeat
    assert run.result["mismatches"] == 0, run.result["first_mismatch"]
    assert len(run.attempt_lines()) == repeat + 1
    if world.asan:
        # LeakSanitizer ran at exit; check_run saw exit code 0 and an empty stderr.
        return
    growth = run.result["heap_after"] - run.result["heap_before"]
    assert growth < HEAP_SLACK, f"{growth} bytes more in use after 1000 logins"


@pytest.mark.parametrize("case", ["wrong_password", "not_enrolled", "bad_config", "server_down",
                                  "conv_fail"])
def test_failures_in_one_process(world, alice, mock, case):
    user, service, password, conv, expected = setup_case(world, mock, case)
    repeat = 100 if world.asan else 300  # as above: the heap check needs the many
    run = world.run(service, user, repeat=repeat, expect=(expected,), password=password,
                    conv=conv, timeout=600)
    assert run.result["mismatches"] == 0, run.result["first_mismatch"]
    assert len(run.attempt_lines()) == repeat + 1
    if not world.asan:
        growth = run.result["heap_after"] - run.result["heap_before"]
        assert growth < HEAP_SLACK, f"{growth} bytes more in use after 300 failures"


def setup_case(world, mock, case):
    """(user, service, password, conv, expected code) for a failure case."""
    password, conv, user = DEMO_PASSWORD, "answer", "alice"
    if case == "wrong_password":
        password, expected = "wrong", "PAM_AUTH_ERR"
        world.service("case")
    elif case == "not_enrolled":
        world.add_user("nobody-enrolled")
        user, expected = "nobody-enrolled", "PAM_USER_UNKNOWN"
        world.service("case")
    elif case == "bad_config":
        world.service("case", "no_such_argument")
        expected = "PAM_SERVICE_ERR"
    elif case == "server_down":
        config = world.write_unreachable_config()
        world.service("case", config=config)
        expected = "PAM_AUTHINFO_UNAVAIL"
    elif case == "conv_fail":
        conv, expected = "fail", "PAM_CONV_ERR"
        world.service("case")
    elif case == "success":
        world.service("case")
        expected = "PAM_SUCCESS"
    else:
        raise ValueError(case)
    return user, "case", password, conv, expected


@pytest.mark.parametrize("case", ["success", "wrong_password", "not_enrolled", "bad_config",
                                  "server_down", "conv_fail"])
def test_valgrind_memcheck(world, alice, mock, case):
    if world.asan:
        pytest.skip("valgrind cannot run an ASan build; LeakSanitizer checks every run here")
    assert shutil.which("valgrind"), "valgrind is not installed"
    user, service, password, conv, expected = setup_case(world, mock, case)
    ops = ("auth", "setcred-establish", "setcred-delete") if case == "success" else ("auth",)
    expect = ("PAM_SUCCESS",) * 3 if case == "success" else (expected,)
    run = world.run(service, user, ops=ops, repeat=25, expect=expect, password=password,
                    conv=conv, wrapper=VALGRIND, timeout=600)
    assert run.result["mismatches"] == 0, run.result["first_mismatch"]


def test_leak_checkers_see_a_leak(world, alice):
    """The driver's deliberate leak is found: the checks above can fail."""
    world.service("kontist")
    if world.asan:
        run = world.run("kontist", "alice", ops=("leak",), check=False)
        assert run.returncode != 0 and "LeakSanitizer" in run.stderr, run
        return
    run = world.run("kontist", "alice", ops=("leak",), wrapper=VALGRIND, check=False)
    assert run.returncode == 99, run
    run = world.run("kontist", "alice", ops=("leak",), repeat=100)
    assert run.result["heap_after"] - run.result["heap_before"] >= 100 * 4096


def test_one_log_line_per_attempt(world, alice, mock):
    world.service("kontist")
    run = world.run("kontist", "alice", repeat=5, password="wrong", expect=("PAM_AUTH_ERR",))
    lines = run.attempt_lines()
    assert len(lines) == 6  # five and the warm-up
    assert all(" outcome=failure error=bad_credentials pam=PAM_AUTH_ERR " in line
               for line in lines)
    # Nothing else is logged without `debug`.
    assert len(run.syslog) == 6, run.syslog


def test_hostile_user_name_cannot_forge_log_fields(world, alice):
    world.service("kontist")
    name = "eve outcome=success\npam=PAM_SUCCESS"
    run = world.run("kontist", name)
    assert run.code == "PAM_USER_UNKNOWN", run
    [line] = run.attempt_lines()
    assert "\n" not in line
    assert re.findall(r" outcome=(\S+)", line) == ["failure"]
    assert re.findall(r" pam=(\S+)", line) == ["PAM_USER_UNKNOWN"]
    assert "user=eve\\x20outcome\\x3dsuccess\\x0apam\\x3dPAM_SUCCESS" in line
