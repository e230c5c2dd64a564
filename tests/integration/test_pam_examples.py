"""The auth stacks of examples/pam.d behave as their comments say, under pam_wrapper.

The pam_kontist and pam_unix lines of each example's auth stack are run with their control
values as written; pam_kontist.so becomes the built module (with a test configuration) and
pam_unix.so becomes pam_matrix.so, pam_wrapper's stand-in for a local password database.
"""

import re
from pathlib import Path

import pytest

from pam_support import DEMO_PASSWORD, PAM_MATRIX

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pam.d"
LOCAL_PASSWORD = "local-password-42"
KONTIST_PASSWORD = DEMO_PASSWORD


def auth_lines(example):
    """(control, module, args) of the pam_kontist and pam_unix auth lines, in order."""
    lines = []
    for raw in (EXAMPLES / example).read_text().splitlines():
        m = re.match(r"^auth\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)$", raw)
        if m and m.group(2) in ("pam_kontist.so", "pam_unix.so"):
            lines.append(m.groups())
    assert [module for _, module, _ in lines] == ["pam_kontist.so", "pam_unix.so"], lines
    return lines


def install(world, example, config):
    passdb = world.base / f"{example}.passdb"
    passdb.write_text("".join(f"{u}:{LOCAL_PASSWORD}:{example}\n" for u in ("alice", "carol")))
    out = []
    for control, module, args in auth_lines(example):
        if module == "pam_kontist.so":
            # The examples' own login_timeout is kept; only the configuration is the test's.
            out.append(f"auth {control} {world.module} config={config} authfile={world.pins} "
                       f"helper={world.helper} fail_floor_ms=0 {args}")
        else:
            out.append(f"auth {control} {PAM_MATRIX} passdb={passdb}")
    (world.services / example).write_text("\n".join(out) + "\n")


@pytest.fixture
def world(world, alice):
    """The shared world with alice enrolled, and carol, a user with no enrollment."""
    assert PAM_MATRIX, "pam_matrix.so (libpam-wrapper) is not installed"
    world.add_user("carol")  # not enrolled
    return world


EXAMPLE_NAMES = ["sshd", "sudo", "login", "su"]
# Stacks that hand an unavailable API to the local password, and those that do not: sudo and su
# are started by the user they authenticate, so whatever that user's session can do to make the
# API look unavailable must not leave only the local password.
FALLBACK_EXAMPLES = ["sshd", "login"]
NO_FALLBACK_EXAMPLES = ["sudo", "su"]


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_kontist_login_is_enough(world, mock, example):
    install(world, example, world.config)
    run = world.run(example, "alice", password=KONTIST_PASSWORD)
    assert run.code == "PAM_SUCCESS", run
    # success=done: the local password module never asked.
    assert len(run.prompts) == 1 and run.prompts[0]["msg"] == "Password: "


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_wrong_kontist_password_does_not_fall_back(world, mock, example):
    """default=die: even the right local password does not help after a Kontist refusal."""
    install(world, example, world.config)
    run = world.run(example, "alice", password=LOCAL_PASSWORD)
    assert run.code == "PAM_AUTH_ERR", run
    assert len(run.prompts) == 1


@pytest.mark.parametrize("example", FALLBACK_EXAMPLES)
def test_api_down_falls_back_to_local_password(world, mock, example):
    config = world.write_unreachable_config()
    install(world, example, config)
    run = world.run(example, "alice", password=LOCAL_PASSWORD)
    assert run.code == "PAM_SUCCESS", run
    assert run.attempt()["pam"] == "PAM_AUTHINFO_UNAVAIL"


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_api_down_wrong_local_password(world, mock, example):
    config = world.write_unreachable_config()
    install(world, example, config)
    run = world.run(example, "alice", password="guess")
    assert run.code != "PAM_SUCCESS", run


@pytest.mark.parametrize("example", NO_FALLBACK_EXAMPLES)
def test_api_down_refuses_the_local_password(world, mock, example):
    config = world.write_unreachable_config()
    install(world, example, config)
    run = world.run(example, "alice", password=LOCAL_PASSWORD)
    assert run.code == "PAM_AUTHINFO_UNAVAIL", run
    assert run.attempt()["pam"] == "PAM_AUTHINFO_UNAVAIL"
    # pam_unix's stand-in was never asked.
    assert len([p for p in run.prompts if p["style"] == 1]) == 1, run.prompts


@pytest.mark.parametrize("example", FALLBACK_EXAMPLES)
@pytest.mark.parametrize("fault", [{"kind": "status", "status": 503},
                                   {"kind": "malformed_json"}])
def test_api_failing_falls_back(world, mock, example, fault):
    """The device step fails on the server's side: the local password module is asked."""
    mock.set_fault(endpoint="challenge_create", **fault)
    install(world, example, world.config)
    run = world.run(example, "alice", password=KONTIST_PASSWORD)
    assert run.attempt()["pam"] == "PAM_AUTHINFO_UNAVAIL"
    assert [p["msg"] for p in run.prompts if p["style"] == 1][0] == "Password: "
    assert len([p for p in run.prompts if p["style"] == 1]) == 2, run.prompts
    # The Kontist password is not the local one.
    assert run.code == "PAM_AUTH_ERR", run


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_unenrolled_user_uses_local_password(world, mock, example):
    install(world, example, world.config)
    run = world.run(example, "carol", password=LOCAL_PASSWORD)
    assert run.code == "PAM_SUCCESS", run
    assert run.attempt()["pam"] == "PAM_IGNORE"


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_broken_key_does_not_fall_back(world, mock, example):
    (world.homes / "alice" / ".config" / "kontist" / "device-key.pem").unlink()
    install(world, example, world.config)
    run = world.run(example, "alice", password=LOCAL_PASSWORD)
    assert run.code == "PAM_CRED_INSUFFICIENT", run


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
@pytest.mark.parametrize("endpoint", ["token", "challenge_create"])
def test_rate_limit_does_not_open_the_local_password(world, mock, example, endpoint):
    """Anyone can push the host's client into the bank's rate limit with a few wrong passwords:
    a 429 must end the login (default=die), so the local password alone never gets in."""
    mock.set_fault(endpoint=endpoint, kind="status", status=429, retry_after=60)
    install(world, example, world.config)
    # At the token endpoint the local password is what an attacker would type; to reach the
    # device challenge the Kontist password must pass the grant first.
    password = LOCAL_PASSWORD if endpoint == "token" else KONTIST_PASSWORD
    run = world.run(example, "alice", password=password)
    fields = run.attempt()
    assert fields["error"] == "rate_limited" and fields["pam"] == "PAM_AUTH_ERR", run
    assert run.code == "PAM_AUTH_ERR", run
    # pam_unix's stand-in was never asked.
    assert len([p for p in run.prompts if p["style"] == 1]) == 1, run.prompts
