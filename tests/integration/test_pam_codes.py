"""pam_kontist.so return codes, one test per case of pam_kontist(8), under pam_wrapper.

The users here are nss_wrapper users with the test process's own uid, so these tests run with
or without root. Every run also checks (pam_support.check_run) that nothing reached the host's
stdout or stderr and that no secret reached the log.
"""

import json
import os
import stat
from pathlib import Path

import pytest

from kt_crypto import jwt_claims, make_key, write_key_pem
from pam_support import (DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER, FAIL_DELAY_USEC, PAM_PERMIT,
                         PAM_SET_ITEMS, cache_path, check_no_secrets)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

SUCCESS_ENDPOINTS = ["token", "challenge_create", "challenge_verify"]


def service_with_next(world, args):
    """The module, then pam_permit: a PAM_IGNORE leaves the decision to the next module, so the
    stack succeeds; any other code of the module ends the stack with that code (default=die)."""
    return world.service("kontist", args, control="[ignore=ignore default=die]",
                         after=[f"auth required {PAM_PERMIT}"], module_types=("auth",))


def stack_result(module_code):
    return "PAM_SUCCESS" if module_code == "PAM_IGNORE" else module_code


def endpoints(mock, since=0):
    return [r["endpoint"] for r in mock.requests()[since:]]


def assert_failure_delay(run):
    """libpam was asked to delay the failure (the driver handles PAM_FAIL_DELAY itself)."""
    assert run.delays, run
    assert all(d["status"] != 0 for d in run.delays)
    # libpam randomises the delay by up to half either way.
    assert all(FAIL_DELAY_USEC // 2 <= d["usec"] <= FAIL_DELAY_USEC * 3 // 2
               for d in run.delays), run.delays


def attempt(run, code, error):
    """The one attempt line, checked for the code and error kind."""
    fields = run.attempt()
    assert fields["pam"] == code, fields
    assert fields["error"] == error, fields
    return fields


# --- success -------------------------------------------------------------------------------------

def test_verified_login(world, alice, mock):
    home, device_id, _, _, _ = alice
    since = len(mock.requests())
    world.service("kontist")
    run = world.run("kontist", "alice", rhost="198.51.100.7")
    assert run.code == "PAM_SUCCESS", run
    # Password grant, then the device challenge: three requests on one connection.
    requests = mock.requests()[since:]
    assert [r["endpoint"] for r in requests] == SUCCESS_ENDPOINTS
    assert len({r["conn"] for r in requests}) == 1, requests
    # The password is the only question; the device MFA needs none.
    assert run.prompts == [{"style": 1, "msg": "Password: "}]
    # The delay is requested before anything is known (so early and late failures take as long),
    # and libpam hands it to the application with the final status: 0, no delay.
    assert all(d["status"] == 0 for d in run.delays), run.delays
    fields = attempt(run, "PAM_SUCCESS", "ok")
    assert fields["service"] == "kontist"
    assert fields["user"] == "alice"
    assert fields["rhost"] == "198.51.100.7"
    assert fields["kontist_user"] == DEMO_USER
    assert fields["device"] == device_id
    assert fields["outcome"] == "success"
    assert int(fields["duration_ms"]) >= 0
    # Informational priority, authpriv facility.
    [(priority, _)] = [(p, m) for p, m in run.syslog if " auth service=" in m]
    assert priority == (10 << 3) | 6


def test_verified_login_keeps_token_for_setcred(world, alice, mock):
    home = alice.home
    world.service("kontist")
    run = world.run("kontist", "alice", ops=("auth", "setcred-establish"))
    assert run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"]
    cache = cache_path(home)
    st = cache.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    import json
    data = json.loads(cache.read_text())
    token = next(v for k, v in data.items() if k in ("access_token", "token"))
    assert "cnf" in jwt_claims(token)
    # No token of any kind in the log.
    check_no_secrets([m for _, m in run.syslog], extra=[token])


# --- wrong password, rejected MFA ----------------------------------------------------------------

def test_wrong_password(world, alice, mock):
    since = len(mock.requests())
    world.service("kontist")
    run = world.run("kontist", "alice", password="not-the-password")
    assert run.code == "PAM_AUTH_ERR", run
    assert endpoints(mock, since) == ["token"]
    assert_failure_delay(run)
    fields = attempt(run, "PAM_AUTH_ERR", "bad_credentials")
    assert fields["outcome"] == "failure"
    check_no_secrets([m for _, m in run.syslog], extra=["not-the-password"])


def test_empty_password_is_refused_without_a_request(world, alice, mock):
    since = len(mock.requests())
    world.service("kontist")
    run = world.run("kontist", "alice", conv="empty")
    assert run.code == "PAM_AUTH_ERR", run
    assert endpoints(mock, since) == []
    attempt(run, "PAM_AUTH_ERR", "bad_credentials")


def test_challenge_signature_rejected(world, mock):
    """The record names a bound device, but the key on disk is another one."""
    home = world.add_user("mallory")
    device_id, _, key_path, _ = world.enroll(home)[:4]
    write_key_pem(make_key(), key_path)
    since = len(mock.requests())
    world.service("kontist")
    run = world.run("kontist", "mallory")
    assert run.code == "PAM_AUTH_ERR", run
    assert endpoints(mock, since) == SUCCESS_ENDPOINTS
    assert mock.requests()[-1]["status"] != 200
    assert_failure_delay(run)
    fields = attempt(run, "PAM_AUTH_ERR", "mfa_failed")
    assert fields["device"] == device_id


def test_unknown_device(world, mock):
    """A record naming a device the server does not know cannot pass MFA."""
    home = world.add_user("bob")
    world.enroll(home, device_id="0a0b0c0d-0000-4000-8000-000000000000")
    world.service("kontist")
    run = world.run("kontist", "bob")
    # The bank no longer knows the device (removed there): the user is not enrolled any more.
    assert run.code == "PAM_USER_UNKNOWN", run
    assert_failure_delay(run)


def test_unknown_device_is_not_ignored_with_nouserok(world, mock):
    """nouserok is for users this machine has no mapping for. A device removed at the bank (by
    anyone holding a token) must not turn an enrolled user's Kontist login into PAM_IGNORE, which
    leaves the decision to the modules after this one."""
    home = world.add_user("bob")
    world.enroll(home, device_id="0a0b0c0d-0000-4000-8000-000000000000")
    service_with_next(world, "nouserok")
    run = world.run("kontist", "bob")
    assert run.code == "PAM_USER_UNKNOWN", run
    assert_failure_delay(run)
    fields = attempt(run, "PAM_USER_UNKNOWN", "not_enrolled")
    assert fields["outcome"] == "failure"


@pytest.mark.parametrize("status", [400, 403])
def test_challenge_refused(world, alice, mock, status):
    """The bank refuses to challenge the device: a failed MFA, not an unavailable API (which a
    stack may answer by falling back to another module)."""
    mock.set_fault(endpoint="challenge_create", kind="status", status=status,
                   body={"error": "device_blocked"})
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTH_ERR", run
    assert_failure_delay(run)
    attempt(run, "PAM_AUTH_ERR", "mfa_failed")


# --- not enrolled --------------------------------------------------------------------------------

@pytest.mark.parametrize("nouserok, code", [(False, "PAM_USER_UNKNOWN"), (True, "PAM_IGNORE")])
def test_not_enrolled(world, mock, nouserok, code):
    world.add_user("carol")
    since = len(mock.requests())
    service_with_next(world, "nouserok" if nouserok else "")
    run = world.run("kontist", "carol")
    assert run.code == stack_result(code), run
    # The same question as for an enrolled user (the prompt must not tell them apart), and
    # nothing sent.
    assert run.prompts == [{"style": 1, "msg": "Password: "}]
    assert endpoints(mock, since) == []
    fields = attempt(run, code, "not_enrolled")
    assert fields["outcome"] == ("ignored" if nouserok else "failure")


@pytest.mark.parametrize("nouserok", [False, True])
def test_record_without_device(world, mock, nouserok):
    """A record that only names the Kontist user cannot pass device MFA; root pinned the user,
    so nouserok does not let it fall through to the next module."""
    code = "PAM_CRED_INSUFFICIENT"
    home = world.add_user("dave")
    world.enroll(home, device_id="unused", record_extra={"device_id": None, "key": None},
                 with_key_file=False)
    service_with_next(world, "nouserok" if nouserok else "")
    run = world.run("kontist", "dave")
    assert run.code == stack_result(code), run
    attempt(run, code, "key_unusable")


@pytest.mark.parametrize("nouserok", [False, True])
def test_unknown_local_user(world, mock, nouserok):
    service_with_next(world, "nouserok" if nouserok else "")
    run = world.run("kontist", "nosuchuser")
    assert run.code == "PAM_USER_UNKNOWN", run
    attempt(run, "PAM_USER_UNKNOWN", "no_such_user")
    assert run.prompts == [{"style": 1, "msg": "Password: "}]


# --- device key ----------------------------------------------------------------------------------

def test_key_missing(world, alice, mock):
    alice.key_path.unlink()
    since = len(mock.requests())
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    # MFA is impossible: nothing is sent (the password is asked for all the same, first, as for
    # every user).
    assert len(run.prompts) == 1
    assert endpoints(mock, since) == []
    assert_failure_delay(run)
    attempt(run, "PAM_CRED_INSUFFICIENT", "key_unusable")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_with_bad_permissions(world, alice, mode):
    os.chmod(alice.key_path, mode)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    attempt(run, "PAM_CRED_INSUFFICIENT", "key_unusable")


def test_key_unparsable(world, alice):
    key_path = alice.key_path
    key_path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    os.chmod(key_path, 0o600)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_CRED_INSUFFICIENT", run
    attempt(run, "PAM_CRED_INSUFFICIENT", "key_unusable")


def test_key_wrong_curve(world, alice):
    from cryptography.hazmat.primitives.asymmetric import ec
    write_key_pem(ec.generate_private_key(ec.SECP384R1()), alice.key_path)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_CRED_INSUFFICIENT", run


def test_key_is_symlink(world, alice, tmp_path):
    real = tmp_path / "elsewhere.pem"
    write_key_pem(make_key(), real)
    alice.key_path.unlink()
    alice.key_path.symlink_to(real)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_CRED_INSUFFICIENT", run


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-0000 file anyway; "
                    "test_pam_users covers unreadable keys with privileges dropped")
def test_key_unreadable(world, alice):
    os.chmod(alice.key_path, 0)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_CRED_INSUFFICIENT", run


# --- the API unavailable -------------------------------------------------------------------------

def test_api_unreachable(world, alice, mock):
    config = world.write_unreachable_config()
    world.service("kontist", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTHINFO_UNAVAIL", run
    assert_failure_delay(run)
    fields = attempt(run, "PAM_AUTHINFO_UNAVAIL", "unavailable")
    assert fields["outcome"] == "failure"


@pytest.mark.parametrize("endpoint", ["token", "challenge_create", "challenge_verify"])
def test_api_hangs_past_the_deadline(world, alice, mock, endpoint):
    mock.set_fault(endpoint=endpoint, kind="hang")
    world.service("kontist", "login_timeout=2")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTHINFO_UNAVAIL", run
    fields = attempt(run, "PAM_AUTHINFO_UNAVAIL", "unavailable")
    # The whole flow has two seconds, whichever request hangs: the module's answer comes from
    # that deadline, before the helper's watchdog (login_timeout + 3 s from the helper's start)
    # would have ended it (which would not be "unavailable" either).
    assert int(fields["duration_ms"]) < 5000, fields


@pytest.mark.parametrize("endpoint", ["token", "challenge_create", "challenge_verify"])
@pytest.mark.parametrize("status", [500, 502, 503])
def test_api_5xx(world, alice, mock, endpoint, status):
    mock.set_fault(endpoint=endpoint, kind="status", status=status)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTHINFO_UNAVAIL", run
    assert_failure_delay(run)
    attempt(run, "PAM_AUTHINFO_UNAVAIL", "unavailable")


@pytest.mark.parametrize("endpoint", ["token", "challenge_create", "challenge_verify"])
def test_api_429(world, alice, mock, endpoint):
    mock.set_fault(endpoint=endpoint, kind="status", status=429, retry_after=30)
    world.service("kontist")
    run = world.run("kontist", "alice")
    # Anyone can cause a 429: it is a refusal, never "unavailable" (which stacks fall back on).
    assert run.code == "PAM_AUTH_ERR", run
    fields = attempt(run, "PAM_AUTH_ERR", "rate_limited")
    # The module does not sit out a Retry-After inside a login: one that did would wait until
    # the configuration's login_timeout (20 s) ended the flow.
    assert int(fields["duration_ms"]) < 17000, fields


def test_token_endpoint_refusal_is_not_an_outage(world, alice, mock):
    """An OAuth error the module has no name for is still the bank saying no: PAM_AUTH_ERR, never
    PAM_AUTHINFO_UNAVAIL (which a fallback stack would wave through)."""
    mock.set_fault(endpoint="token", kind="status", status=403,
                   body={"error": "access_denied", "error_description": "account locked"})
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTH_ERR", run
    assert_failure_delay(run)
    attempt(run, "PAM_AUTH_ERR", "bad_credentials")


def test_token_with_another_content_type(world, alice, mock):
    mock.set_fault(endpoint="token", kind="wrong_content_type")
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SUCCESS", run


# A usable token is a usable token whatever Content-Type the bank labels it with (see
# test_token_with_another_content_type), so that pair is not a malformed answer.
MALFORMED = [(e, k) for e in ("token", "challenge_create", "challenge_verify")
             for k in ("malformed_json", "wrong_content_type", "huge_body", "close")
             if (e, k) != ("token", "wrong_content_type")]


@pytest.mark.parametrize("endpoint, kind", MALFORMED)
def test_api_malformed_response(world, alice, mock, endpoint, kind):
    mock.set_fault(endpoint=endpoint, kind=kind)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTHINFO_UNAVAIL", run
    assert_failure_delay(run)
    assert run.attempt()["error"] in ("protocol", "unavailable")


def test_unconfirmed_token_from_challenge_is_not_a_login(world, alice, mock):
    """A challenge answer whose token lacks the cnf claim would be MFA passed on trust."""
    mock.set_fault(endpoint="challenge_verify", kind="status", status=200,
                   body={"token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.x"})
    world.service("kontist")
    run = world.run("kontist", "alice")
    # The bank answered after accepting the password: MFA failed, never an outage (fallback).
    assert run.code == "PAM_AUTH_ERR", run
    fields = attempt(run, "PAM_AUTH_ERR", "mfa_failed")
    assert "not confirmed" in fields["reason"], fields


# --- configuration -------------------------------------------------------------------------------

def test_unknown_module_argument(world, alice, mock):
    since = len(mock.requests())
    world.service("kontist", "use_fist_pass")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run
    assert run.prompts == []
    assert endpoints(mock, since) == []
    fields = attempt(run, "PAM_SERVICE_ERR", "config")
    assert "use_fist_pass" in fields["reason"]
    assert fields["user"] == "alice"


@pytest.mark.parametrize("arg", ["mfa=sms", "login_timeout=0", "login_timeout=soon",
                                 "config=relative.conf", "authfile="])
def test_bad_module_argument_values(world, alice, arg):
    world.service("kontist", arg)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run


def test_config_missing(world, alice):
    world.service("kontist", config=world.etc / "absent.conf")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run
    attempt(run, "PAM_SERVICE_ERR", "config")


def test_config_unknown_key(world, alice):
    config = world.write_config("typo.conf", extra="bsae_url = https://evil.example\n")
    world.service("kontist", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run
    assert "typo.conf:6" in run.attempt()["reason"]


def test_config_world_writable(world, alice):
    config = world.write_config("loose.conf", mode=0o666)
    world.service("kontist", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run


def test_config_without_client_id(world, alice):
    config = world.write_config("noclient.conf", client_id=None)
    world.service("kontist", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run


def test_config_http_url(world, alice):
    config = world.write_config("http.conf", base_url="http://127.0.0.1:1")
    world.service("kontist", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run


BROKEN_CONFIGS = ["missing", "typo", "world-writable", "secret-missing"]


def broken_config(world, how):
    """A configuration the helper refuses, each way an administrator can get it wrong."""
    if how == "missing":
        return world.etc / "absent.conf"
    if how == "typo":
        return world.write_config("typo.conf", extra="bsae_url = https://evil.example\n")
    if how == "world-writable":
        return world.write_config("loose.conf", mode=0o666)
    config = world.write_config("nosecret.conf")
    rewrite_config(config, "client_secret_file", world.etc / "no-such-secret")
    return config


@pytest.mark.parametrize("how", BROKEN_CONFIGS)
@pytest.mark.parametrize("nouserok, code", [(False, "PAM_USER_UNKNOWN"), (True, "PAM_IGNORE")])
def test_broken_config_leaves_unpinned_users_alone(world, mock, how, nouserok, code):
    """The pin is looked up before the configuration is read: a user root has not pinned is not
    enrolled whatever state kontist.conf is in. Otherwise one typo in the file would turn every
    login on the machine into PAM_SERVICE_ERR, and a default=die stack would refuse root too."""
    world.add_user("carol")
    config = broken_config(world, how)
    world.service("kontist", "nouserok" if nouserok else "", config=config,
                  control="[ignore=ignore default=die]", after=[f"auth required {PAM_PERMIT}"],
                  module_types=("auth",))
    since = len(mock.requests())
    run = world.run("kontist", "carol")
    assert run.code == stack_result(code), run
    attempt(run, code, "not_enrolled")
    assert endpoints(mock, since) == []


@pytest.mark.parametrize("how", BROKEN_CONFIGS)
def test_broken_config_fails_pinned_users(world, alice, mock, how):
    """A pinned user still fails hard: nouserok does not apply to them, and a broken configuration
    is never the PAM_AUTHINFO_UNAVAIL a fallback acts on."""
    config = broken_config(world, how)
    world.service("kontist", "nouserok", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run
    attempt(run, "PAM_SERVICE_ERR", "config")


def rewrite_config(path, key, value):
    """Sets key in a configuration world.write_config wrote; returns its line number."""
    lines = Path(path).read_text().splitlines()
    for n, line in enumerate(lines):
        if line.split("=", 1)[0].strip() == key:
            lines[n] = f"{key} = {value}"
            Path(path).write_text("\n".join(lines) + "\n")
            return n + 1
    raise AssertionError(key)


@pytest.mark.parametrize("key", ["ca_file", "client_secret_file"])
def test_config_names_a_missing_file(world, alice, mock, key):
    """A file the configuration names that is not there is the configuration's fault, named with
    file and line: never the PAM_AUTHINFO_UNAVAIL of an outage, which fallback stacks act on."""
    config = world.write_config("missing-file.conf")
    missing = world.etc / f"no-such-{key}"
    line = rewrite_config(config, key, missing)
    world.service("kontist", config=config)
    since = len(mock.requests())
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run
    reason = attempt(run, "PAM_SERVICE_ERR", "config")["reason"]
    assert f"missing-file.conf:{line}: {key} " in reason and "does not exist" in reason, reason
    assert endpoints(mock, since) == []


def test_config_trailing_comment(world, alice, mock):
    """`value   # comment`: the comment is not part of the value (the secret file's name)."""
    config = world.write_config("commented.conf")
    secret = world.etc / "commented.conf.secret"
    rewrite_config(config, "client_secret_file", f"{secret}   # root:root 0600; omit for a "
                   "public client")
    world.service("kontist", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SUCCESS", run


def test_wrong_client_secret(world, alice, mock):
    """invalid_client: the installation is misconfigured, not the user's password wrong."""
    config = world.write_config("badsecret.conf", secret="not-the-secret")
    world.service("kontist", config=config)
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run
    check_no_secrets([m for _, m in run.syslog], extra=["not-the-secret", DEMO_CLIENT_SECRET])


def test_malformed_device_record(world, alice):
    record = alice.record_path
    record.write_text('{"username": ')
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SERVICE_ERR", run


def test_device_record_readable_by_others(world, alice):
    os.chmod(alice.record_path, 0o644)
    world.service("kontist")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SYSTEM_ERR", run
    attempt(run, "PAM_SYSTEM_ERR", "io")


# --- conversation --------------------------------------------------------------------------------

def test_conversation_failure(world, alice, mock):
    since = len(mock.requests())
    world.service("kontist")
    run = world.run("kontist", "alice", conv="fail")
    assert run.code == "PAM_CONV_ERR", run
    assert endpoints(mock, since) == []
    assert_failure_delay(run)
    attempt(run, "PAM_CONV_ERR", "conversation")


def test_no_answer_to_password_prompt(world, alice, mock):
    world.service("kontist")
    run = world.run("kontist", "alice", password=None)
    assert run.code == "PAM_CONV_ERR", run


# --- use_first_pass / try_first_pass -------------------------------------------------------------

@pytest.fixture
def first_pass(world):
    """A stack whose first module (pam_wrapper's pam_set_items) puts the password the driver got
    in $PAM_AUTHTOK into PAM_AUTHTOK, as a password module earlier in a real stack does."""
    assert PAM_SET_ITEMS, "pam_set_items.so (libpam-wrapper) is not installed"

    def make(name, args):
        return world.service(name, args, before=[f"auth required {PAM_SET_ITEMS}"],
                             module_types=("auth",))
    return make


def test_use_first_pass(world, alice, mock, first_pass):
    service = first_pass("firstpass", "use_first_pass")
    run = world.run(service, "alice", extra_env={"PAM_AUTHTOK": DEMO_PASSWORD})
    assert run.code == "PAM_SUCCESS", run
    assert run.prompts == []


def test_use_first_pass_uses_the_earlier_answer(world, alice, mock, first_pass):
    """The earlier module's password is wrong for Kontist: no question of our own, a failure."""
    service = first_pass("firstpass", "use_first_pass")
    run = world.run(service, "alice", extra_env={"PAM_AUTHTOK": "a-local-password"})
    assert run.code == "PAM_AUTH_ERR", run
    assert run.prompts == []
    attempt(run, "PAM_AUTH_ERR", "bad_credentials")
    check_no_secrets([m for _, m in run.syslog], extra=["a-local-password"])


def test_use_first_pass_without_earlier_password(world, alice, mock):
    since = len(mock.requests())
    world.service("kontist", "use_first_pass")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_AUTH_ERR", run
    assert run.prompts == []
    assert endpoints(mock, since) == []


def test_try_first_pass_asks_when_nothing_earlier(world, alice):
    world.service("kontist", "try_first_pass")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SUCCESS", run
    assert len(run.prompts) == 1


def test_try_first_pass_does_not_ask_again(world, alice, mock, first_pass):
    """The earlier module's password failed at Kontist: no second question. A second prompt only
    for users the bank knows would tell an attacker which accounts are enrolled."""
    service = first_pass("tryfirst", "try_first_pass")
    since = len(mock.requests())
    run = world.run(service, "alice", extra_env={"PAM_AUTHTOK": "a-local-password"})
    assert run.code == "PAM_AUTH_ERR", run
    assert run.prompts == []
    assert endpoints(mock, since) == ["token"]
    attempt(run, "PAM_AUTH_ERR", "bad_credentials")
    check_no_secrets([m for _, m in run.syslog], extra=["a-local-password"])


def test_try_first_pass_takes_earlier_password(world, alice, first_pass):
    service = first_pass("tryfirst", "try_first_pass")
    run = world.run(service, "alice", extra_env={"PAM_AUTHTOK": DEMO_PASSWORD})
    assert run.code == "PAM_SUCCESS", run
    assert run.prompts == []


# --- mfa=none ------------------------------------------------------------------------------------

def test_mfa_none_needs_only_the_mapping(world, mock):
    """mfa=none: password grant only; the record needs no device and no key is read."""
    home = world.add_user("erin")
    world.enroll(home, device_id="unused", record_extra={"device_id": None, "key": None},
                 with_key_file=False)
    since = len(mock.requests())
    world.service("kontist", "mfa=none")
    run = world.run("kontist", "erin", ops=("auth", "setcred-establish"))
    assert run.codes == ["PAM_SUCCESS", "PAM_SUCCESS"]
    assert endpoints(mock, since) == ["token"]
    fields = run.attempt()
    assert fields["mfa"] == "none"
    assert fields["device"] == "-"
    import json
    data = json.loads(cache_path(home).read_text())
    token = data.get("access_token")
    assert token and "cnf" not in jwt_claims(token)


def test_mfa_none_ignores_a_broken_key(world, alice, mock):
    alice.key_path.unlink()
    world.service("kontist", "mfa=none")
    run = world.run("kontist", "alice")
    assert run.code == "PAM_SUCCESS", run


def test_mfa_none_still_needs_a_mapping(world, mock):
    world.add_user("frank")
    world.service("kontist", "mfa=none")
    run = world.run("kontist", "frank")
    assert run.code == "PAM_USER_UNKNOWN", run


# --- the authfile --------------------------------------------------------------------------------

def write_authfile(world, text, mode=0o644):
    path = world.etc / "kontist-users"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_authfile(world, mock, tmp_path):
    """Central mapping: a root-owned (here: the process's own) file and key."""
    world.add_user("gina")
    key = make_key()
    device_id, key = mock.enroll_device(key=key, name="central")
    keydir = world.etc / "keys"
    keydir.mkdir(mode=0o700)
    key_path = write_key_pem(key, keydir / "gina.pem")
    authfile = write_authfile(world, f"# users\ngina {DEMO_USER} {device_id} {key_path}\n")
    world.service("kontist", f"authfile={authfile}")
    run = world.run("kontist", "gina")
    assert run.code == "PAM_SUCCESS", run
    assert run.attempt()["device"] == device_id


def test_authfile_user_absent(world, mock):
    world.add_user("hank")
    authfile = write_authfile(world, f"someone {DEMO_USER}\n")
    service_with_next(world, f"authfile={authfile} nouserok")
    run = world.run("kontist", "hank")
    assert run.code == stack_result("PAM_IGNORE"), run
    attempt(run, "PAM_IGNORE", "not_enrolled")
    service_with_next(world, f"authfile={authfile}")
    run = world.run("kontist", "hank")
    assert run.code == "PAM_USER_UNKNOWN", run


@pytest.mark.parametrize("text", ["hank\n", "hank a@b dev-1\n", "hank a@b c d e\n"])
def test_authfile_malformed(world, mock, text):
    world.add_user("hank")
    authfile = write_authfile(world, text)
    world.service("kontist", f"authfile={authfile} nouserok")
    run = world.run("kontist", "hank")
    assert run.code == "PAM_SERVICE_ERR", run
    assert "kontist-users:1" in run.attempt()["reason"]


def test_authfile_missing(world, mock):
    world.add_user("hank")
    world.service("kontist", f"authfile={world.etc / 'nothere'} nouserok")
    assert world.run("kontist", "hank").code == "PAM_SERVICE_ERR"


def test_authfile_group_writable(world, mock):
    world.add_user("hank")
    authfile = write_authfile(world, f"hank {DEMO_USER}\n", mode=0o664)
    world.service("kontist", f"authfile={authfile}")
    assert world.run("kontist", "hank").code == "PAM_SERVICE_ERR"


# --- identity pinned by root ---------------------------------------------------------------------

def test_record_naming_another_identity_is_refused(world, mock):
    """Code running as the user rewrites the device record to name another Kontist account (one
    whose password it knows, with a key it enrolled there): root pinned the user to the demo
    account, so the login is refused, whatever password the other account has."""
    home = world.add_user("mallory")
    device_id, _, _, record = world.enroll(home)
    data = json.loads(record.read_text())
    data["username"] = "other@example.com"
    record.write_text(json.dumps(data))
    since = len(mock.requests())
    service_with_next(world, "nouserok")
    run = world.run("kontist", "mallory")
    assert run.code == "PAM_AUTH_ERR", run
    attempt(run, "PAM_AUTH_ERR", "identity_mismatch")
    # Refused before anything is sent to the bank.
    assert endpoints(mock, since) == []


def test_template_pin_for_self_enrolled_users(world, mock):
    home = world.add_user("frank")
    world.enroll(home, pin=False)
    pins = world.etc / "template-pins"
    pins.write_text("*  %u-kontist@example.com\n")
    world.service("kontist", f"authfile={pins}")
    run = world.run("kontist", "frank")
    # The record names the demo user, the template frank-kontist@example.com.
    assert run.code == "PAM_AUTH_ERR", run
    attempt(run, "PAM_AUTH_ERR", "identity_mismatch")
    pins.write_text(f"*  {DEMO_USER}-%u\n")
    run = world.run("kontist", "frank")
    assert run.code == "PAM_AUTH_ERR", run


def test_unpinned_user_with_a_record_is_not_enrolled(world, mock):
    """A device record alone enrolls nobody: without root's pin the user is not enrolled."""
    home = world.add_user("gail")
    world.enroll(home, pin=False)
    since = len(mock.requests())
    service_with_next(world, "nouserok")
    run = world.run("kontist", "gail")
    assert run.code == stack_result("PAM_IGNORE"), run
    attempt(run, "PAM_IGNORE", "not_enrolled")
    assert endpoints(mock, since) == []


def test_missing_default_pins_file_enrolls_nobody(world, mock, alice):
    """authfile= not given and /etc/kontist/users absent: nobody is pinned (not a broken
    configuration), so even alice, with a device record, is not enrolled."""
    assert not Path("/etc/kontist/users").exists()
    (world.services / "nopins").write_text(
        f"auth [ignore=ignore default=die] {world.module} config={world.config} "
        f"helper={world.helper} nouserok\n"
        f"auth required {PAM_PERMIT}\n")
    run = world.run("nopins", "alice")
    assert run.code == "PAM_SUCCESS", run
    fields = attempt(run, "PAM_IGNORE", "not_enrolled")
    assert "/etc/kontist/users does not exist" in fields["reason"]


@pytest.mark.parametrize("user", ["nosuchuser", "carol", "alice"])
def test_failure_floor_hides_where_a_login_failed(world, alice, mock, user):
    """An unknown user fails locally in milliseconds, a pinned one after the bank answered: with
    the floor, every failure takes at least fail_floor_ms inside the module, whichever it was."""
    world.add_user("carol")  # known, not pinned
    world.service("floor", "fail_floor_ms=600")
    run = world.run("floor", user, password="wrong-password")
    assert run.code != "PAM_SUCCESS", run
    assert int(run.attempt()["duration_ms"]) >= 600, run.attempt()
    assert run.prompts == [{"style": 1, "msg": "Password: "}]


def test_failure_floor_does_not_slow_a_success(world, alice, mock):
    world.service("floor", "fail_floor_ms=10000")
    run = world.run("floor", "alice")
    assert run.code == "PAM_SUCCESS", run
    # The module's own time for the attempt (the floor, were it applied, comes before the
    # attempt line), and the whole run: a floor would make either 10 s at least.
    assert int(run.attempt()["duration_ms"]) < 10000, run.attempt()
    assert run.elapsed < 10, run
