"""pam_kontist.so in the real PAM hosts of the machine: OpenSSH's sshd, sudo and su.

Unlike the other PAM tests (pam_wrapper, fake users), these run Debian's own sshd, sudo and su as
root with real users made for each test, so they see what those hosts really do with the module:
sshd's keyboard-interactive authentication in a separate process, sudo and su switching PAM_USER,
prompts shown through a terminal.  Each test builds its world with realhost.RealHost and removes
it afterwards, also on failure: users (userdel -r), /etc/pam.d/<host>-kt<random>, the sudoers
drop-in.  The machine's own /etc/pam.d/sshd, sudo and su are never changed (su sees the test's
stack only inside a private mount namespace).

The module and kontist-auth come from $KONTIST_BUILDDIR by absolute path.  The whole module is
skipped when not root, or when sshd, ssh, sshpass, sudo or the util-linux/passwd tools are missing
(scripts/install-deps installs them).
"""

import json
import os
import stat
import subprocess
import time

import pytest

from realhost import (DEMO_PASSWORD, DEMO_USER, MIN_FAIL_TIME, OTHER_PASSWORD, OTHER_USER,
                      PROMPT, REQUIRED_TOOLS, RealHost, jwt_payload, kontist_related,
                      missing_requirements, new_or_changed, snapshot, users_with_other)

REASON = missing_requirements()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=REASON or ""),
              pytest.mark.usefixtures("no_mock_tracebacks")]

LOGGED_IN = "kontist-realhost-session-ran"
SSH_METHODS = ["keyboard-interactive", "password"]


@pytest.fixture
def host_factory(build_dir, mock_factory):
    """make(*mock_args) -> RealHost with a mock that knows DEMO_USER and OTHER_USER."""
    module = build_dir / "pam_kontist" / ".libs" / "pam_kontist.so"
    assert module.exists(), f"{module} is not built (KONTIST_BUILDDIR={build_dir})"
    hosts = []

    def make(*mock_args):
        h = RealHost(build_dir, mock_factory(*mock_args, users=users_with_other()))
        hosts.append(h)
        return h

    yield make
    for h in hosts:
        h.close()


@pytest.fixture
def host(host_factory):
    return host_factory()


def diag(host, *parts, sshd=None):
    """Everything useful when a login did not go as expected."""
    out = [repr(p) for p in parts]
    if sshd is not None:
        out.append("sshd log:\n" + sshd.log()[-4000:])
    out.append("mock requests: " + repr([(r["endpoint"], r["status"])
                                         for r in host.mock.requests()]))
    out.append(f"helper={host.pam_helper}")
    return "\n".join(out)


def requests_since(host, since, endpoint=None):
    """The mock's requests after the first `since` ones (of one endpoint if given)."""
    return [q for q in host.mock.requests()[since:] if endpoint in (None, q["endpoint"])]


def token_command(host):
    return f"{host.kontist_auth} --config {host.user_config} token; echo {LOGGED_IN}"


def assert_confirmed_token(host, user, output, device_id, context=None):
    lines = [line for line in output.splitlines() if line.strip()]
    assert LOGGED_IN in lines, output
    token = lines[0]
    assert token.count(".") == 2, f"no token from kontist-auth in the session: {output!r}\n" + \
        diag(host, context)
    claims = jwt_payload(token)
    assert claims.get("cnf") == {"kid": device_id}, claims
    assert claims.get("iss") is not None
    # The cache the session read belongs to the user alone.
    st = os.lstat(user.cache)
    assert st.st_uid == user.uid and stat.S_IMODE(st.st_mode) == 0o600, st
    return token


def assert_refused(result, *, sshd, host):
    """An sshpass login (CompletedProcess) that did not get to run its command."""
    assert result.returncode != 0 and LOGGED_IN not in result.stdout, \
        diag(host, result, sshd=sshd)


# -- sshd --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", SSH_METHODS)
def test_ssh_login_hands_the_confirmed_token_to_the_session(host, method):
    """examples/pam.d/sshd's auth stack: the Kontist password over keyboard-interactive or
    password authentication logs in, and in the session `kontist-auth token` prints the
    device-confirmed token (cnf claim naming the user's device) without logging in again."""
    user = host.add_user()
    device_id = host.self_enroll(user)
    sshd = host.sshd(host.stack(host.example_auth("sshd")), password_auth=method == "password")
    since = len(host.mock.requests())
    r = sshd.sshpass(user.name, DEMO_PASSWORD, token_command(host), method)
    assert r.returncode == 0, diag(host, r, sshd=sshd)
    token = assert_confirmed_token(host, user, r.stdout, device_id, r)
    # The login's password grant and device challenge, and nothing after them: the session's
    # `kontist-auth token` found a valid cache (its configuration has no client secret anyway).
    login = [(q["endpoint"], q.get("grant_type"), q["status"])
             for q in requests_since(host, since)]
    assert ("token", "password", 200) in login, login
    assert login[-1] == ("challenge_verify", None, 200), login
    # The bank takes it as a confirmed token (an unconfirmed one gets 403 mfa_required).
    assert host.mock.api("GET", "/api/accounts", token=token)[0] == 200


@pytest.mark.parametrize("method", SSH_METHODS)
def test_ssh_wrong_password_is_refused(host, method):
    """A wrong password, and then the user's own local password (not the Kontist one), are both
    refused by examples/pam.d/sshd's stack, and neither writes the user's token cache."""
    user = host.add_user()
    host.self_enroll(user)
    sshd = host.sshd(host.stack(host.example_auth("sshd")), password_auth=method == "password")
    for password in ("wrong-password-789", user.local_password):
        since = len(host.mock.requests())
        r = sshd.sshpass(user.name, password, f"echo {LOGGED_IN}", method)
        assert_refused(r, sshd=sshd, host=host)
        assert "Permission denied" in r.stderr, diag(host, r, sshd=sshd)
        # Kontist refused the password (so the module asked it, and then pam_unix was not).
        grants = [q["status"] for q in requests_since(host, since, "token")]
        assert grants and all(400 <= status < 500 for status in grants), diag(host, r)
    assert not user.cache.exists()
    assert not user.cache.parent.exists() or not any(user.cache.parent.iterdir())


def test_kontist_only_stack(host):
    """`auth requisite pam_kontist.so` alone: a Kontist login (here with a central authfile line
    and a root-owned key) runs the session's command; a user without a pin, with the right local
    password, and the pinned user's local password get nothing."""
    user = host.add_user()
    device_id = host.central_enroll(user)
    unpinned = host.add_user()
    sshd = host.sshd(host.stack([host.module_line("requisite")]))
    r = sshd.sshpass(user.name, DEMO_PASSWORD, f"echo uid=$(id -u); {token_command(host)}")
    assert r.returncode == 0, diag(host, r, sshd=sshd)
    assert f"uid={user.uid}" in r.stdout
    assert_confirmed_token(host, user, r.stdout.split("\n", 1)[1], device_id, r)
    for who, password in ((unpinned, unpinned.local_password), (user, user.local_password)):
        r = sshd.sshpass(who.name, password, f"echo {LOGGED_IN}")
        assert_refused(r, sshd=sshd, host=host)
    assert not unpinned.cache.exists()


def _wait_sessions_gone(sshd, timeout=15):
    """Waits until the sshd has no child processes (every connection finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = _children(sshd.proc.pid)
        if not children:
            return
        time.sleep(0.1)
    raise AssertionError(f"sshd connections still running: {_children(sshd.proc.pid)}")


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _helper_processes(host):
    if host.pam_helper is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe") == str(host.pam_helper):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _tokens(value):
    """The access and refresh tokens anywhere in a decoded JSON document (the token cache)."""
    if isinstance(value, list):
        return [t for v in value for t in _tokens(v)]
    if not isinstance(value, dict):
        return []
    found = [v for k, v in value.items()
             if k in ("access_token", "refresh_token") and isinstance(v, str) and v]
    return found + [t for v in value.values() for t in _tokens(v)]


def test_abandoned_login_leaves_no_stash(host, tmp_path_factory):
    """Nothing of a Kontist login stays on the machine outside the user's token cache: not after
    a failed login, not after a client that authenticated and disconnected at once, not after a
    client that gave up while the login was under way.  /run and /tmp get nothing kontist-related
    (owned by the user or named after it, holding a token of the login or the password, or in
    /run named after Kontist) and the home gets nothing but
    ~/.local/state/kontist; a failed login does not write the cache."""
    user = host.add_user()
    device_id = host.self_enroll(user)
    sshd = host.sshd(host.stack(host.example_auth("sshd")))
    roots = ["/run", "/tmp"]
    # pytest's own directories (the mock's logs) are not the module's doing.
    exclude = [str(tmp_path_factory.getbasetemp().parent), str(host.base)]
    before = snapshot(roots, exclude)
    home_before = host.home_files(user)
    started = time.time()

    # A failed login: the cache is not written.
    r = sshd.sshpass(user.name, "wrong-password-789", f"echo {LOGGED_IN}")
    assert_refused(r, sshd=sshd, host=host)
    assert not user.cache.exists()
    assert host.home_files(user) == home_before

    # A client that gives up while the module is at work (right after typing the password).
    p = sshd.ssh_pty(user.name, command=None, extra=["-N"])
    try:
        p.expect(PROMPT.pattern)
        p.send(DEMO_PASSWORD)
        time.sleep(0.05)
    finally:
        p.close()
    # A client that authenticated and then disconnected before doing anything.
    p = sshd.ssh_pty(user.name, command=None, extra=["-N"], log_level="VERBOSE")
    try:
        p.expect(PROMPT.pattern)
        p.send(DEMO_PASSWORD)
        p.expect(r"Authenticated to ", timeout=30)
    finally:
        p.close()
    _wait_sessions_gone(sshd)
    deadline = time.monotonic() + 15
    while _helper_processes(host) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _helper_processes(host), "kontist-pam-helper still running"

    after = snapshot(roots, exclude)
    # Not the device id: the module logs it, and a syslog daemon may keep logs below /run or /tmp.
    markers = [DEMO_PASSWORD]
    if user.cache.exists():
        markers += _tokens(json.loads(user.cache.read_text()))
    left = [path for path in new_or_changed(before, after)
            if kontist_related(path, user, markers, DEMO_USER, started,
                               by_name=path.startswith("/run/"))]
    assert not left, f"left behind: {left}\n{diag(host, sshd=sshd)}"
    home_after = host.home_files(user)
    added = {p: v for p, v in home_after.items() if home_before.get(p) != v}
    cache_dir = str(user.cache.parent.relative_to(user.home))
    allowed = {".local", ".local/state", cache_dir}
    stray = [p for p in added if p not in allowed and not p.startswith(cache_dir + "/")]
    assert not stray, f"new in the home: {stray}"
    for path, (uid, mode) in added.items():
        assert uid == user.uid, (path, uid)
        assert not mode & 0o077 or path in (".local", ".local/state"), (path, oct(mode))


@pytest.mark.parametrize("stack", ["kontist-only", "examples-sshd"])
def test_prompts_do_not_tell_users_apart(host, stack):
    """What an ssh client shows (keyboard-interactive, on a terminal) for a user unknown to the
    system, a local user without a pin and a pinned, enrolled user: the same prompts in the same
    order; each failure waits for the module's fail delay (which libpam randomizes to between
    half and one and a half times it, hence MIN_FAIL_TIME), and only a pinned user's password
    goes to Kontist.  No tight timing bound: these machines are noisy."""
    pinned = host.add_user()
    host.self_enroll(pinned)
    unpinned = host.add_user()
    if stack == "kontist-only":
        lines = [host.module_line("requisite")]
    else:
        lines = host.example_auth("sshd")
    sshd = host.sshd(host.stack(lines))
    seen = {}
    for kind, name in (("unknown", host.unknown_user()), ("unpinned", unpinned.name),
                       ("pinned", pinned.name)):
        since = len(host.mock.requests())
        p = sshd.ssh_pty(name, command=f"echo {LOGGED_IN}")
        try:
            rc = p.converse(["wrong-password-789"])
        finally:
            p.close()
        assert rc != 0 and LOGGED_IN not in p.text, diag(host, kind, p, sshd=sshd)
        assert "Permission denied" in p.text, diag(host, kind, p, sshd=sshd)
        prompts = [t.replace(f"({name}@127.0.0.1) ", "").strip() for t in p.prompts]
        elapsed = p.ended_at - p.answered_at[-1] if p.answered_at else 0.0
        seen[kind] = (prompts, elapsed)
        # Only a pinned user's password goes to Kontist.
        asked = requests_since(host, since, "token")
        assert len(asked) == (1 if kind == "pinned" else 0), (kind, asked)
    prompts = {kind: v[0] for kind, v in seen.items()}
    assert prompts["pinned"], seen
    assert prompts["unknown"] == prompts["pinned"] and prompts["unpinned"] == prompts["pinned"], \
        diag(host, seen, sshd=sshd)
    times = [elapsed for _, elapsed in seen.values()]
    assert min(times) >= MIN_FAIL_TIME, seen
    assert max(times) - min(times) < 5, seen  # loose: noisy machines


# -- sudo and su -------------------------------------------------------------------------------


def sudo_stack(host):
    return host.stack(host.example_auth("sudo"), session="common-session-noninteractive")


def test_sudo_legitimate_login(host):
    """examples/pam.d/sudo's auth stack under real sudo (pam_service= in a sudoers drop-in): the
    enrolled user's Kontist password runs the command as root; the user's local password is
    refused (a Kontist refusal does not fall back to pam_unix)."""
    user = host.add_user()
    host.self_enroll(user)
    host.sudo_service(user, sudo_stack(host))
    p = host.sudo(user, DEMO_PASSWORD)
    assert p.rc == 0 and "uid=0(root)" in p.text, diag(host, p)
    assert len(p.prompts) == 1, p
    p = host.sudo(user, user.local_password, tries=2)
    assert p.rc != 0 and "uid=0(root)" not in p.text, diag(host, p)
    assert len(p.prompts) == 1, p


def _swap_identity(host):
    """A user pinned to DEMO_USER whose own device record names OTHER_USER, with a key enrolled
    for OTHER_USER (the attacker knows that account's password), and whose local password is that
    password too: if pam_unix were asked it would say yes."""
    attacker = host.add_user(local_password=OTHER_PASSWORD)
    host.pin(attacker, DEMO_USER)
    device_id, key = host.enroll_device(OTHER_USER, OTHER_PASSWORD)
    host.write_device_record(attacker, OTHER_USER, device_id, key)
    return attacker


def _unswap(host, attacker):
    """The control: the attacker's record names the pinned account again (with a device of it)."""
    device_id, key = host.enroll_device(DEMO_USER, DEMO_PASSWORD)
    host.write_device_record(attacker, DEMO_USER, device_id, key)


def test_sudo_identity_swap_is_refused(host):
    """The attacker types the other account's password at sudo: refused after one prompt, so
    neither a Kontist login as the other account nor pam_unix (which would accept that password)
    let the attacker in; the attacker's cache gets no token.  Control: with a record naming the
    pinned account the same stack lets the same user in (the refusal was the module's)."""
    attacker = _swap_identity(host)
    host.sudo_service(attacker, sudo_stack(host))
    p = host.sudo(attacker, OTHER_PASSWORD, tries=2)
    assert p.rc != 0 and "uid=0(root)" not in p.text, diag(host, p)
    assert len(p.prompts) == 1, p
    assert not attacker.cache.exists()
    _unswap(host, attacker)
    p = host.sudo(attacker, DEMO_PASSWORD)
    assert p.rc == 0 and "uid=0(root)" in p.text, diag(host, p)


@pytest.fixture(scope="session")
def private_mounts():
    """su has fixed PAM service names: its stack is bind-mounted in a private mount namespace."""
    r = subprocess.run([REQUIRED_TOOLS["unshare"], "--mount", "--propagation", "private",
                        "true"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("unshare --mount does not work here, so su cannot be given a private "
                    f"/etc/pam.d/su: {r.stderr.strip()}")


def test_su_legitimate_login(host, private_mounts):
    """Real util-linux su, run by an ordinary user, with the sudo example's auth stack as
    /etc/pam.d/su in a private mount namespace: the target's Kontist password gets a shell of the
    target (id runs as the target)."""
    caller = host.add_user()
    target = host.add_user()
    host.self_enroll(target)
    stack_file = host.write_stack_file("su", host.stack(host.example_auth("sudo")))
    p = host.su(caller, target, stack_file, DEMO_PASSWORD)
    assert p.rc == 0 and f"uid={target.uid}({target.name})" in p.text, diag(host, p)
    assert len(p.prompts) == 1, p
    p = host.su(caller, target, stack_file, target.local_password, tries=2)
    assert p.rc != 0 and f"uid={target.uid}(" not in p.text, diag(host, p)


def test_su_identity_swap_is_refused(host, private_mounts):
    """The same swap through su: the attacker authenticates as itself (su to its own account)
    with the other account's password; refused after one prompt, pam_unix not reached.  Control
    as for sudo."""
    attacker = _swap_identity(host)
    stack_file = host.write_stack_file("su", host.stack(host.example_auth("sudo")))
    p = host.su(attacker, attacker, stack_file, OTHER_PASSWORD, tries=2)
    assert p.rc != 0 and f"uid={attacker.uid}(" not in p.text, diag(host, p)
    assert len(p.prompts) == 1, p
    assert not attacker.cache.exists()
    _unswap(host, attacker)
    p = host.su(attacker, attacker, stack_file, DEMO_PASSWORD)
    assert p.rc == 0 and f"uid={attacker.uid}(" in p.text, diag(host, p)


# -- rate limit --------------------------------------------------------------------------------


def test_rate_limited_kontist_refuses_the_local_password(host_factory):
    """With Kontist answering 429 (the mock's --rate-limit), examples/pam.d/sshd and
    examples/pam.d/sudo do not fall back to the local password: an enrolled user's correct local
    Unix password logs in neither over ssh nor at sudo.  (A user without a pin still logs in with
    the local password through the same sshd: the stack itself works.)"""
    host = host_factory("--rate-limit", "10")
    user = host.add_user()
    host.self_enroll(user)
    plain = host.add_user()
    sshd = host.sshd(host.stack(host.example_auth("sshd")))
    host.sudo_service(user, sudo_stack(host))
    # Use up the minute's requests (the enrollment made some already).
    for _ in range(20):
        if host.mock.api("GET", "/api/user")[0] == 429:
            break
    else:
        pytest.fail("the mock never answered 429")
    since = len(host.mock.requests())

    r = sshd.sshpass(user.name, user.local_password, f"echo {LOGGED_IN}")
    assert_refused(r, sshd=sshd, host=host)
    assert host.mock.api("GET", "/api/user")[0] == 429
    p = host.sudo(user, user.local_password, tries=2)
    assert p.rc != 0 and "uid=0(root)" not in p.text, diag(host, p)
    assert len(p.prompts) == 1, p
    # Kontist was asked, once for ssh and once for sudo, and said 429 (the refusals are the rate
    # limit's, not a broken stack's).
    answered = [(q["endpoint"], q["status"]) for q in requests_since(host, since)]
    assert answered.count(("token", 429)) >= 2, answered
    assert host.mock.api("GET", "/api/user")[0] == 429, "the rate limit ran out during the test"

    r = sshd.sshpass(plain.name, plain.local_password, f"echo {LOGGED_IN}")
    assert r.returncode == 0 and LOGGED_IN in r.stdout, diag(host, r, sshd=sshd)


# -- push MFA over ssh keyboard-interactive ------------------------------------------------------

PUSH_PROMPT = r"Confirm the login in the Kontist app \((\d+):(\d\d) left\), then press Enter: "


@pytest.mark.parametrize("answer", ["VERIFIED", "DENIED"])
def test_ssh_push_instruction_reaches_the_client_before_the_wait(host, answer):
    """mfa=push over keyboard-interactive on a real sshd and ssh client: after the password the
    client shows the push instruction while the challenge is still pending (so the person reads
    it before anything is waited for, although OpenSSH holds info messages back); the person
    then approves (the session runs, with a token confirmed by push) or denies (refused)."""
    user = host.add_user()
    host.pin(user, DEMO_USER)
    sshd = host.sshd(host.stack([host.module_line("requisite", "mfa=push login_timeout=50")]))
    p = sshd.ssh_pty(user.name, command=token_command(host))
    try:
        p.expect(r"[Pp]assword[^\n]*:\s*$")
        p.send(DEMO_PASSWORD)
        m = p.expect(PUSH_PROMPT, timeout=30)
        left = int(m.group(1)) * 60 + int(m.group(2))
        assert 0 < left <= 50, m.group(0)
        # The instruction is on the client's screen and the challenge is still waiting for the
        # person: it came before the wait, not after it.
        pending = [c for c in host.mock.state()["mfa_challenges"] if c["status"] == "PENDING"]
        assert len(pending) == 1, diag(host, p, sshd=sshd)
        host.mock.mfa(pending[0]["id"], answer)
        p.send("")
        rc = p.wait(40)
    finally:
        p.close()
    if answer == "VERIFIED":
        assert rc == 0, diag(host, p, sshd=sshd)
        lines = [line for line in p.text.splitlines() if line.count(".") == 2 and " " not in line]
        assert lines, diag(host, p, sshd=sshd)
        claims = jwt_payload(lines[-1].strip())
        assert claims["cnf"]["kid"] == "mfa:" + pending[0]["id"], claims
        assert json.loads(user.cache.read_text())["mfa"] == "push"
    else:
        assert rc != 0 and LOGGED_IN not in p.text, diag(host, p, sshd=sshd)
        assert not user.cache.exists()
        assert requests_since(host, 0, "mfa_token") == []
