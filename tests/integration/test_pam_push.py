"""pam_kontist.so with push MFA (mfa=push, mfa=device,push) under pam_wrapper.

The mock's control endpoint stands in for the phone. The driver answers the module's push
prompt (an echoing prompt) at once, as a person pressing Enter before approving would; the
module then waits for the helper's answer.
"""

import json
import threading
import time

import pytest

from pam_support import PamWorld, cache_path

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

PUSH_PROMPT_START = "Confirm the login in the Kontist app ("
PUSH_PROMPT_END = " left), then press Enter: "
PAM_PROMPT_ECHO_OFF = 1
PAM_PROMPT_ECHO_ON = 2


def wait_for_challenge(mock, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [c for c in mock.state()["mfa_challenges"] if c["status"] == "PENDING"]
        if pending:
            return pending[-1]
        time.sleep(0.05)
    raise AssertionError("no push challenge was created")


def quick_first_check(mock):
    """The bank may ask for the first check of a push challenge sooner than the client's 3 s
    (Retry-After on the challenge it creates); the mock does so once, for the tests that do not
    watch the pace or the timing of the checks, to keep them quick."""
    mock.set_fault(endpoint="mfa_create", kind="retry_after", seconds=1, count=1)


def answer_later(mock, status, delay=0.3):
    def run():
        challenge = wait_for_challenge(mock)
        time.sleep(delay)
        mock.mfa(challenge["id"], status)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def bob(world):
    """A user root pins to the demo account, with no device on this machine."""
    home = world.add_user("bob")
    world.pin("bob")
    return home


def push_prompts(run):
    return [p for p in run.prompts if p["msg"].startswith(PUSH_PROMPT_START)]


def test_push_approved(world, bob, mock):
    world.service("kontist", "mfa=push login_timeout=30")
    quick_first_check(mock)
    thread = answer_later(mock, "VERIFIED")
    run = world.run("kontist", "bob")
    thread.join(5)
    assert run.code == "PAM_SUCCESS", run
    # the password first, then the instruction, as a prompt the client shows at once
    assert run.prompts[0] == {"style": PAM_PROMPT_ECHO_OFF, "msg": "Password: "}
    assert len(run.prompts) == 2, run.prompts
    prompt = run.prompts[1]
    assert prompt["style"] == PAM_PROMPT_ECHO_ON
    assert prompt["msg"].startswith(PUSH_PROMPT_START) and prompt["msg"].endswith(PUSH_PROMPT_END)
    fields = run.attempt()
    assert fields["mfa"] == "push" and fields["factor"] == "push", fields
    assert fields["error"] == "ok"
    cache = json.loads(cache_path(bob).read_text())
    assert cache["confirmed"] is True and cache["mfa"] == "push"
    assert [r["endpoint"] for r in mock.requests()].count("mfa_token") == 1


def test_push_denied_is_auth_err(world, bob, mock):
    world.service("kontist", "mfa=push login_timeout=30")
    quick_first_check(mock)
    thread = answer_later(mock, "DENIED")
    run = world.run("kontist", "bob")
    thread.join(5)
    assert run.code == "PAM_AUTH_ERR", run
    fields = run.attempt()
    assert fields["error"] == "mfa_failed", fields
    assert "denied in the Kontist app" in fields["reason"]
    assert not cache_path(bob).exists()
    assert mock.requests("mfa_token") == []


@pytest.mark.parametrize("status", ["EXPIRED", "CANCELLED"])
def test_a_challenge_state_the_client_does_not_know_is_no_outage(world, bob, mock, status):
    """The bank answers about the challenge with a state the documentation does not name: not
    approved, and never an outage that would open a stack's fallback (authinfo_unavail)."""
    world.service("kontist", "mfa=push login_timeout=20")
    quick_first_check(mock)

    def answer():
        challenge = wait_for_challenge(mock)
        mock.set_fault(endpoint="mfa_get", kind="status", status=200,
                       body={"id": challenge["id"], "status": status,
                             "expiresAt": "2099-01-01T00:00:00Z"})

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    run = world.run("kontist", "bob")
    thread.join(5)
    assert run.code == "PAM_AUTH_ERR", run
    fields = run.attempt()
    assert fields["error"] == "mfa_failed", fields
    assert f"the challenge is {status}, not approved" in fields["reason"], fields
    assert not cache_path(bob).exists()
    assert mock.requests("mfa_token") == []


def test_push_expired_is_auth_err_with_its_own_reason(tmp_path, build_dir, mock_factory):
    mock = mock_factory("--challenge-lifetime", "4")
    world = PamWorld(tmp_path / "w2", build_dir, mock)
    home = world.add_user("bob")
    world.pin("bob")
    world.service("kontist", "mfa=push login_timeout=30")
    run = world.run("kontist", "bob")
    assert run.code == "PAM_AUTH_ERR", run
    fields = run.attempt()
    assert fields["error"] == "mfa_expired", fields
    assert "expired" in fields["reason"]
    assert len(push_prompts(run)) == 1
    assert not cache_path(home).exists()


def test_push_bounded_by_login_timeout(world, bob, mock):
    world.service("kontist", "mfa=push login_timeout=5")
    run = world.run("kontist", "bob")
    assert run.code == "PAM_AUTH_ERR", run
    fields = run.attempt()
    assert fields["error"] == "mfa_expired"
    # Polling gives up 2 s before the deadline: at 3 s here. Were the module's login_timeout=5
    # not applied, the configuration's 20 s would have it give up at 18 s.
    assert int(fields["duration_ms"]) < 17000, fields
    # the prompt says how long is left: no more than login_timeout
    msg = push_prompts(run)[0]["msg"]
    left = msg[len(PUSH_PROMPT_START):-len(PUSH_PROMPT_END)]
    minutes, seconds = left.split(":")
    assert int(minutes) * 60 + int(seconds) <= 5


def test_rate_limited_push_is_auth_err_never_a_fallback(world, bob, mock):
    world.service("kontist", "mfa=push login_timeout=30")
    mock.set_fault(endpoint="mfa_create", kind="status", status=429, retry_after=30)
    run = world.run("kontist", "bob")
    assert run.code == "PAM_AUTH_ERR", run
    assert run.attempt()["error"] == "rate_limited"
    assert push_prompts(run) == []


def test_device_push_uses_the_device_when_there(world, alice, mock):
    world.service("kontist", "mfa=device,push login_timeout=30")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SUCCESS", run
    assert push_prompts(run) == []
    assert run.attempt()["factor"] == "device"
    assert mock.requests("mfa_create") == []


def test_device_push_falls_back_to_push_and_logs_why(world, bob, mock):
    world.service("kontist", "mfa=device,push login_timeout=30")
    quick_first_check(mock)
    thread = answer_later(mock, "VERIFIED")
    run = world.run("kontist", "bob")
    thread.join(5)
    assert run.code == "PAM_SUCCESS", run
    assert run.attempt()["factor"] == "push"
    assert any("no device MFA, push instead" in msg for _, msg in run.syslog), run.syslog


def test_device_key_the_bank_rejects_never_falls_back(world, alice, mock):
    world.service("kontist", "mfa=device,push login_timeout=30")
    mock.set_fault(endpoint="challenge_verify", kind="status", status=403)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTH_ERR", run
    assert run.attempt()["error"] == "mfa_failed"
    assert push_prompts(run) == []
    assert mock.requests("mfa_create") == []


def test_wrong_password_sends_no_push(world, bob, mock):
    world.service("kontist", "mfa=push login_timeout=30")
    run = world.run("kontist", "bob", password="wrong-password")
    assert run.code == "PAM_AUTH_ERR", run
    assert run.attempt()["error"] == "bad_credentials"
    assert push_prompts(run) == []
    assert mock.requests("mfa_create") == []


def test_mfa_device_stays_device_whatever_the_users_files_say(world, bob, mock):
    # the user's own configuration asks for push: the module's mfa=device decides
    cfg = bob / ".config" / "kontist"
    cfg.mkdir(parents=True, mode=0o700)
    (cfg / "kontist.conf").write_text("mfa = push\n")
    world.service("kontist", "mfa=device login_timeout=30")
    run = world.run("kontist", "bob")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    assert push_prompts(run) == []
    assert mock.requests("mfa_create") == []


def test_unpinned_user_gets_no_push(world, mock):
    world.add_user("carol")
    world.service("kontist", "mfa=push login_timeout=30")
    run = world.run("kontist", "carol")
    assert run.code == "PAM_USER_UNKNOWN", run
    assert mock.requests("token") == []
    assert push_prompts(run) == []


@pytest.mark.parametrize("value", ["sms", "push,push", "device,none", ""])
def test_bad_mfa_argument_is_service_err(world, bob, value):
    world.service("kontist", f"mfa={value}")
    run = world.run("kontist", "bob")
    assert run.code == "PAM_SERVICE_ERR", run
