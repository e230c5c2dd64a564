"""pam_kontist.so and the bank's answers by meaning, not by shape: for every endpoint a PAM login
calls, every status in the table x every body shape (RFC 6749, {"message"}, HTML, empty) gives
the error kind and PAM code pam_kontist(8) documents, and the bank's words reach the log line's
reason="..." when the body has any (never an HTML page).

Each test walks one endpoint's whole table against one mock and one enrolled user (a fault with
count 1 per login) and reports every cell that does not match at once."""

import pytest

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

STATUSES = (400, 401, 403, 404, 409, 422, 429, 500, 502, 503)
WORDS = "Ask the bank K7"
BODIES = {
    "rfc": ({"kind": "status", "body": {"error": "access_denied", "error_description": WORDS}},
            True),
    "message": ({"kind": "message_body", "message": WORDS}, True),
    "html": ({"kind": "html_body"}, False),
    "empty": ({"kind": "empty_body"}, False),
}


def expected(endpoint, status):
    """(PAM code, error kind) as pam_kontist(8) and the core's table have them."""
    if status == 429:
        return "PAM_AUTH_ERR", "rate_limited"
    if status >= 500:
        return "PAM_AUTHINFO_UNAVAIL", "unavailable"
    if endpoint == "token":
        return "PAM_AUTH_ERR", "bad_credentials"
    if status == 401:
        return "PAM_AUTH_ERR", "login_required"
    if status == 404 and endpoint == "challenge_create":
        return "PAM_USER_UNKNOWN", "not_enrolled"
    return "PAM_AUTH_ERR", "mfa_failed"


@pytest.mark.parametrize("endpoint", ["token", "challenge_create", "challenge_verify"])
def test_every_status_and_body_shape(world, alice, mock, endpoint):
    world.service("kontist")
    wrong = []
    for status in STATUSES:
        for name, (extra, words) in BODIES.items():
            mock.clear_faults()
            mock.set_fault(**dict(extra, endpoint=endpoint, status=status, count=1))
            run = world.run("kontist", "alice")
            code, kind = expected(endpoint, status)
            fields = run.attempt()
            reason = fields.get("reason", "")
            problems = []
            if (run.code, fields.get("pam"), fields.get("error")) != (code, code, kind):
                problems.append(f"{run.code} {fields.get('error')}, want {code} {kind}")
            if words and WORDS not in reason:
                problems.append("the bank's words are missing")
            if not words and ("DOCTYPE" in reason or "kontist-mock" in reason):
                problems.append("the HTML page was copied")
            if problems:
                wrong.append(f"{endpoint} {status} {name}: {'; '.join(problems)}\n"
                             f"    reason={reason!r}")
    mock.clear_faults()
    assert not wrong, "\n".join(wrong)
