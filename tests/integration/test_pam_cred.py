"""pam_setcred, the session hooks, pam_acct_mgmt and pam_chauthtok of pam_kontist.so.

The module's own code for each call is read from its `debug` line ("<call>: <why>: <code>"),
since libpam folds a lone PAM_IGNORE into another code for the application; the application's
code is checked too where it says something.
"""

import json
import os
import stat

import pytest

from kt_crypto import jwt_claims
from pam_support import DEMO_USER, PAM_PERMIT, cache_path

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def module_code(run, call):
    """The code the module returned from `call` (setcred, close_session, ...), from its debug
    line; asserts there is exactly one such line."""
    codes = []
    for _, message in run.syslog:
        text = message.split("): ", 1)[-1]
        last = text.rsplit(": ", 1)[-1]
        if text.startswith(call + ": ") and last.startswith("PAM_"):
            codes.append(last)
    assert len(codes) == 1, run.syslog
    return codes[0]


def cached(home):
    return json.loads(cache_path(home).read_text())


def write_foreign_cache(home):
    """A token cache the user got some other way (kontist-auth login): it is not ours to drop."""
    path = cache_path(home)
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write('{"marker": "foreign"}')
    return path


@pytest.mark.parametrize("op", ["setcred-establish", "setcred-reinit", "setcred-refresh"])
def test_setcred_writes_confirmed_tokens(world, alice, op):
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("auth", op))
    assert run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"], run
    assert module_code(run, "setcred") == "PAM_SUCCESS"
    data = cached(alice.home)
    assert data["confirmed"] is True
    assert data["username"] == DEMO_USER
    assert "cnf" in jwt_claims(data["access_token"])
    assert data.get("refresh_token")
    st = cache_path(alice.home).stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o600)


def test_setcred_replaces_an_older_cache(world, alice):
    world.service("kontist")
    world.run("kontist", "alice", ops=("auth", "setcred-establish"))
    first = cached(alice.home)["access_token"]
    world.run("kontist", "alice", ops=("auth", "setcred-establish"))
    assert cached(alice.home)["access_token"] != first


def test_authentication_alone_writes_the_cache(world, alice):
    """OpenSSH runs keyboard-interactive authentication in a process of its own that never calls
    pam_setcred: the cache must be there after pam_authenticate alone."""
    world.service("kontist")
    run = world.run("kontist", "alice", ops=("auth",))
    assert run.codes == ["PAM_SUCCESS"], run
    assert cached(alice.home)["confirmed"] is True


def test_setcred_delete_leaves_the_cache(world, alice):
    """The cache belongs to the user, like one `kontist-auth login` wrote; only logout_on_close
    removes it, at the end of a session."""
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("auth", "setcred-establish", "setcred-delete"))
    assert run.codes == ["PAM_SUCCESS"] * 3, run
    assert cached(alice.home)["confirmed"] is True


def test_setcred_delete_keeps_a_cache_it_did_not_write(world, alice):
    path = write_foreign_cache(alice.home)
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("setcred-delete",))
    assert module_code(run, "setcred") == "PAM_SUCCESS"
    assert path.read_text() == '{"marker": "foreign"}'


def test_setcred_without_authentication(world, alice):
    """pam_setcred establishes nothing of its own and never fails (libpam would turn a lone
    PAM_IGNORE into PAM_PERM_DENIED and end the session of a Kontist-only stack)."""
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("setcred-establish",))
    assert module_code(run, "setcred") == "PAM_SUCCESS"
    assert run.code == "PAM_SUCCESS"
    assert not cache_path(alice.home).exists()


@pytest.mark.parametrize("password, conv", [("wrong-password", "answer"), (None, "fail")])
def test_setcred_after_failed_authentication(world, alice, password, conv):
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("auth", "setcred-establish"), password=password,
                    conv=conv)
    assert run.codes[0] != "PAM_SUCCESS"
    assert not cache_path(alice.home).exists()


def test_sudo_like_user_switch_writes_only_the_authenticated_users_cache(world, alice):
    """sudo authenticates alice, then sets PAM_USER to the target user before pam_setcred: the
    tokens are alice's and land in alice's cache only."""
    target_home = world.add_user("target")
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("auth", "setuser:target", "setcred-establish"))
    assert run.codes == ["PAM_SUCCESS"] * 3, run
    assert cached(alice.home)["confirmed"] is True
    assert not cache_path(target_home).exists()


def test_cache_that_cannot_be_written_does_not_fail_the_login(world, alice):
    """A full disk or a broken state directory is logged; the login goes on."""
    state = cache_path(alice.home).parent
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("not a directory")
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("auth", "setcred-establish"))
    assert run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"], run
    assert any("auth user=alice token cache not written" in m for _, m in run.syslog), run.syslog


# --- sessions ------------------------------------------------------------------------------------

def test_session_open_is_ignored(world, alice):
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("open",))
    assert module_code(run, "open_session") == "PAM_IGNORE"


def test_close_session_keeps_cache_by_default(world, alice):
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("auth", "setcred-establish", "open", "close"))
    assert module_code(run, "close_session") == "PAM_IGNORE"
    assert cache_path(alice.home).exists()


def test_logout_on_close_removes_cache(world, alice):
    world.service("kontist", "debug logout_on_close")
    run = world.run("kontist", "alice", ops=("auth", "setcred-establish", "open", "close"))
    assert run.codes[:2] == ["PAM_SUCCESS", "PAM_SUCCESS"], run
    assert module_code(run, "close_session") == "PAM_SUCCESS"
    assert not cache_path(alice.home).exists()


def test_logout_on_close_in_a_separate_handle(world, alice):
    """A session closed by another process than the one that logged in still logs out."""
    world.service("kontist", "debug logout_on_close")
    world.run("kontist", "alice", ops=("auth", "setcred-establish"))
    assert cache_path(alice.home).exists()
    run = world.run("kontist", "alice", ops=("close",))
    assert module_code(run, "close_session") == "PAM_SUCCESS"
    assert not cache_path(alice.home).exists()


def test_logout_on_close_without_cache(world, alice):
    world.service("kontist", "debug logout_on_close")
    run = world.run("kontist", "alice", ops=("close",))
    assert module_code(run, "close_session") == "PAM_SUCCESS"


# --- account and password ------------------------------------------------------------------------

def test_acct_mgmt_is_never_a_success_of_its_own(world, alice):
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("auth", "acct"))
    assert module_code(run, "acct_mgmt") == "PAM_IGNORE"
    # Alone in the account stack, an ignoring module does not let anyone in.
    assert run.codes[1] != "PAM_SUCCESS"


def test_acct_mgmt_leaves_the_decision_to_the_stack(world, alice):
    world.service("kontist", "debug", control="[ignore=ignore default=die]",
                  after=[f"account required {PAM_PERMIT}"], module_types=("account",))
    run = world.run("kontist", "alice", ops=("acct",))
    assert run.code == "PAM_SUCCESS", run


def test_chauthtok_refuses(world, alice):
    world.service("kontist", "debug")
    run = world.run("kontist", "alice", ops=("chauthtok",))
    assert run.code == "PAM_AUTHTOK_ERR", run
    assert module_code(run, "chauthtok") == "PAM_AUTHTOK_ERR"
    # The person is told why (PAM_ERROR_MSG), once.
    assert [p["style"] for p in run.prompts] == [3]
    assert "cannot be changed" in run.prompts[0]["msg"]


def test_chauthtok_silent(world, alice):
    world.service("kontist")
    run = world.run("kontist", "alice", ops=("chauthtok",), silent=True)
    assert run.code == "PAM_AUTHTOK_ERR", run
    assert run.prompts == []


@pytest.mark.parametrize("op, code", [("setcred-establish", "PAM_SUCCESS"),
                                      ("open", "PAM_SERVICE_ERR"), ("close", "PAM_SERVICE_ERR"),
                                      ("acct", "PAM_SERVICE_ERR"),
                                      ("chauthtok", "PAM_SERVICE_ERR")])
def test_bad_argument_in_other_stacks(world, alice, op, code):
    world.service("kontist", "logout_on_clse")
    run = world.run("kontist", "alice", ops=(op,))
    assert run.code == code, run
    assert any("configuration error: unknown module argument" in m
               for _, m in run.syslog), run.syslog


def _unsigned_jwt(claims):
    import base64

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return b64({"alg": "none"}) + "." + b64(claims) + ".sig"


@pytest.mark.parametrize("claims", [
    {"sub": "mallory@example.com", "cnf": {"kid": "ffffffff-other-device"}},
    {"sub": "mallory@example.com", "cnf": {}},
    {"sub": "SAME", "cnf": {"kid": "ffffffff-other-device"}},
], ids=["other-subject-and-device", "other-subject", "other-device"])
def test_a_confirmed_token_for_someone_else_fails_the_login(world, alice, mock, claims):
    """The bank's verify answer must be the password login's subject, confirmed by the device
    whose key signed: anything else fails the login (not only the cache write)."""
    import time
    now = int(time.time())
    if claims["sub"] == "SAME":
        grant = mock.password_grant()
        claims = dict(claims, sub=jwt_claims(grant["access_token"])["sub"])
    token = _unsigned_jwt(dict(claims, iat=now, exp=now + 600))
    world.service("kontist")
    mock.set_fault(endpoint="challenge_verify", kind="status", status=200, body={"token": token})
    run = world.run("kontist", "alice", ops=("auth",))
    assert run.codes == ["PAM_AUTH_ERR"], run
    assert any("mfa_failed" in m for _, m in run.syslog), run.syslog
    assert not cache_path(alice.home).exists()


def test_a_cache_lock_held_by_the_user_does_not_undo_an_accepted_login(world, alice, mock):
    """A process of the user's holding tokens.lock: the login the bank accepted stands (the cache
    is not written and the log says so); the helper's watchdog is not reached."""
    import fcntl
    # 2 s for the whole login (password grant, challenge, verify) on a loaded machine; the save
    # then waits for the lock until a second past that deadline (3 s in all). A save that ignored
    # the deadline would wait the full 5 s lock wait and run into the helper's watchdog
    # (login_timeout + 3 = 5 s, counted from before the flow started), failing the login.
    world.service("kontist", "login_timeout=2")
    lock = cache_path(alice.home).parent / "tokens.lock"
    lock.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        run = world.run("kontist", "alice", ops=("auth",))
    finally:
        os.close(fd)
    assert run.codes == ["PAM_SUCCESS"], run
    assert any("cache" in m for _, m in run.syslog), run.syslog
    assert not cache_path(alice.home).exists()
