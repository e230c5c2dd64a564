"""The bank's answers by meaning, not by shape: every endpoint kontist-auth calls x every status
x every body shape gives the exit code kontist-auth(1) documents, and the bank's own words reach
the person when the body has any (never an HTML page).

Each test walks one endpoint's whole table against one mock (one fault per run, count 1) and
reports every cell that does not match at once; the GraphQL binding-request tables use one mock per
body shape and walk them side by side."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from test_helper_env import (EXIT_AUTH, EXIT_MFA, EXIT_OK, EXIT_UNAVAILABLE,  # noqa: F401
                             kenv, kenv_factory)

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

STATUSES = (400, 401, 403, 404, 409, 422, 429, 500, 502, 503)
WORDS = "Ask the bank K7"
BODIES = {
    # what the fault adds to the spec; whether the bank's words must show
    "rfc": ({"kind": "status", "body": {"error": "access_denied", "error_description": WORDS}},
            True),
    "message": ({"kind": "message_body", "message": WORDS}, True),
    "html": ({"kind": "html_body"}, False),
    "empty": ({"kind": "empty_body"}, False),
}


def expected_exit(endpoint, status):
    """The table of kontist-auth(1): by status and by endpoint, whatever the body."""
    if status == 429 or status >= 500:
        return EXIT_UNAVAILABLE           # rate limited (its own message) or unavailable
    if endpoint.startswith("token"):
        return EXIT_AUTH                  # wrong password / log in again
    if status == 401:
        return EXIT_AUTH                  # the access token was rejected: log in again
    return EXIT_MFA                       # the bank refused: 403 404 409 410 422 ...


def walk_table(endpoint, mock, run, fault_spec):
    """Runs every status x body; returns the cells that went wrong."""
    wrong = []
    for status in STATUSES:
        for name, (extra, words) in BODIES.items():
            mock.clear_faults()
            spec = dict(fault_spec, status=status, count=1, **extra)
            mock.set_fault(**spec)
            r = run()
            want = expected_exit(endpoint, status)
            problems = []
            if r.returncode != want:
                problems.append(f"exit {r.returncode}, want {want}")
            if words and WORDS not in r.stderr:
                problems.append("the bank's words are missing")
            if not words and ("DOCTYPE" in r.stderr or "kontist-mock</p>" in r.stderr):
                problems.append("the HTML page was copied")
            if status == 429 and "rate limiting" not in r.stderr:
                problems.append("no rate-limit message")
            # An outage without Retry-After is an outage, not a rate limit.
            if status >= 500 and "retry_after" not in spec and "rate limiting" in r.stderr:
                problems.append("an outage reported as a rate limit")
            if problems:
                wrong.append(f"{endpoint} {status} {name}: {'; '.join(problems)}\n"
                             f"    {r.stderr.strip()}")
    mock.clear_faults()
    return wrong


def test_token_endpoint_password_grant(kenv):
    wrong = walk_table("token_password", kenv.mock, kenv.login, {"endpoint": "token"})
    assert not wrong, "\n".join(wrong)


def test_token_endpoint_refresh_grant(kenv):
    kenv.confirmed_login()
    saved = kenv.cache_file.read_text()

    def run():
        # an expired access token with a good refresh token: `token` has to refresh
        kenv.write_cache_text(saved)
        kenv.set_cache(expires_at=1)
        return kenv.run("token")
    wrong = walk_table("token_refresh", kenv.mock, run, {"endpoint": "token"})
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("endpoint", ["challenge_create", "challenge_verify"])
def test_device_challenge_endpoints(kenv, endpoint):
    kenv.confirmed_login()
    wrong = walk_table(endpoint, kenv.mock, kenv.login, {"endpoint": endpoint})
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("endpoint", ["devices_create", "device_verify"])
def test_device_creation_endpoints(mock_factory, kenv_factory, endpoint):
    # The binding request is not what is tested here: the mock confirms each one at once.
    mock = mock_factory("--binding-requests", "auto")
    kenv = kenv_factory(mock)
    assert kenv.login().returncode == EXIT_OK
    wrong = walk_table(endpoint, mock, lambda: kenv.enroll(binding=None),
                       {"endpoint": endpoint})
    assert not wrong, "\n".join(wrong)
    assert not kenv.record_file.exists() and not kenv.key_file.exists()


@pytest.mark.parametrize("operation", ["createDeviceBindingRequest", "getDeviceBindingRequest"])
def test_graphql_binding_requests(mock_factory, kenv_factory, operation):
    # Every run of the table waits out its confirmation timeout (1 s, the shortest there is)
    # before the check that meets the fault. The four body shapes walk their statuses side by
    # side, each against a mock and a home of its own (a fault is the whole mock's), so that
    # the table takes ten of those waits instead of forty.
    envs = {}
    for name in BODIES:
        env = kenv_factory(mock_factory(), name=f"env-{name}")
        assert env.login().returncode == EXIT_OK
        envs[name] = env
    spec = {"endpoint": "graphql", "operation": operation}

    def walk_statuses(name):
        env, (extra, words) = envs[name], BODIES[name]
        wrong = []
        for status in STATUSES:
            # a fault that stays for the whole run: every check meets it
            env.mock.clear_faults()
            env.mock.set_fault(**dict(spec, status=status, **extra))
            # nobody confirms: the first check comes at the timeout (1 s), and an outage or a
            # rate limit then has no time left to be waited out
            r = env.run("device", "enroll", "--otp-stdin", "--confirm-timeout", "1", input="")
            want = expected_exit("graphql", status)
            if r.returncode != want or (words and WORDS not in r.stderr) or \
                    (not words and "DOCTYPE" in r.stderr):
                wrong.append(f"{operation} {status} {name}: exit {r.returncode}, want {want}\n"
                             f"    {r.stderr.strip()}")
        env.mock.clear_faults()
        return wrong

    with ThreadPoolExecutor(max_workers=len(BODIES)) as pool:
        wrong = [line for lines in pool.map(walk_statuses, BODIES) for line in lines]
    assert not wrong, "\n".join(wrong)
    for env in envs.values():
        assert not env.record_file.exists() and not env.key_file.exists()


def test_graphql_errors_in_a_200_are_a_refusal_with_the_banks_words(kenv):
    assert kenv.login().returncode == EXIT_OK
    kenv.mock.set_fault(endpoint="graphql", operation="createDeviceBindingRequest",
                        kind="status", status=200,
                        body={"data": None, "errors": [
                            {"message": "Too many devices", "extensions": {"code": "FORBIDDEN"}},
                            {"message": "Remove one first"}]})
    r = kenv.run("device", "enroll", "--otp-stdin", input="")
    assert r.returncode == EXIT_MFA, r.stderr
    assert "FORBIDDEN: Too many devices; Remove one first" in r.stderr
    kenv.mock.clear_faults()
    kenv.mock.set_fault(endpoint="graphql", operation="createDeviceBindingRequest",
                        kind="status", status=200, count=1,
                        body={"data": None, "errors": [
                            {"message": "Session ended",
                             "extensions": {"code": "UNAUTHENTICATED"}}]})
    r = kenv.run("device", "enroll", "--otp-stdin", input="")
    assert r.returncode == EXIT_AUTH, r.stderr
    assert "Session ended" in r.stderr
