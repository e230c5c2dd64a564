"""kontist-mock: device binding requests, the gate on device creation, the 180 s windows and
the GraphQL schema as the documentation has it."""

import datetime
import time

import pytest

from conftest import DEMO_USER
from kt_crypto import jwt_claims, make_key, public_key_hex, sign_hex

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")

BINDING_FIELDS = ("id", "ipAddress", "deviceName", "address", "createdAt", "confirmedAt",
                  "rejectedAt")
SELECTION = " ".join(BINDING_FIELDS)
CREATE = ("mutation Bind($name: String!, $device: String) { createDeviceBindingRequest("
          f"deviceName: $name, deviceId: $device) {{ {SELECTION} }} }}")
GET = f"query Get($id: String) {{ getDeviceBindingRequest(id: $id) {{ {SELECTION} }} }}"

OTHER = {"users": [{"username": DEMO_USER, "password": "pw-demo"},
                   {"username": "other@example.com", "password": "pw-other"}],
         "clients": [{"client_id": "c", "client_secret": "s",
                      "grants": ["password"], "scopes": ["users"]}]}


def graphql(mock, token, query, variables=None):
    payload = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return mock.api("POST", "/api/graphql", token=token, json=payload)


@pytest.fixture
def token(mock):
    return mock.password_grant()["access_token"]


def create_binding(mock, token, name="laptop"):
    status, _, body = graphql(mock, token, CREATE, {"name": name})
    assert status == 200 and "errors" not in body, body
    return body["data"]["createDeviceBindingRequest"]


def get_binding(mock, token, binding_id):
    status, _, body = graphql(mock, token, GET, {"id": binding_id})
    assert status == 200 and "errors" not in body, body
    return body["data"]["getDeviceBindingRequest"]


def create_device(mock, token, key=None):
    key = key or make_key()
    status, _, body = mock.api("POST", "/api/user/devices", token=token,
                               json={"name": "laptop", "key": public_key_hex(key)})
    return status, body, key


def parse_time(text):
    assert text.endswith("Z"), text
    return datetime.datetime.fromisoformat(text[:-1] + "+00:00").timestamp()


# -- the request itself ----------------------------------------------------------------------

def test_binding_request_has_the_documented_fields(mock, token):
    before = time.time()
    binding = create_binding(mock, token)
    assert set(binding) == set(BINDING_FIELDS)
    assert binding["deviceName"] == "laptop"
    assert binding["ipAddress"] == "127.0.0.1"
    assert isinstance(binding["address"], str) and binding["address"]
    assert before - 1 <= parse_time(binding["createdAt"]) <= time.time() + 1
    assert binding["confirmedAt"] is None and binding["rejectedAt"] is None
    assert get_binding(mock, token, binding["id"]) == binding
    # listed as pending, for the person (the test) to answer
    [pending] = mock.state()["binding_requests"]
    assert pending["id"] == binding["id"] and pending["status"] == "PENDING"
    assert pending["username"] == DEMO_USER
    # a field selection of one is fine too
    status, _, body = graphql(mock, token, f'{{ getDeviceBindingRequest(id: "{binding["id"]}") '
                                           '{ deviceName } }')
    assert body == {"data": {"getDeviceBindingRequest": {"deviceName": "laptop"}}}


@pytest.mark.parametrize("answer, field", [("CONFIRMED", "confirmedAt"),
                                           ("REJECTED", "rejectedAt")])
def test_the_persons_answer_shows_in_the_request(mock, token, answer, field):
    binding = create_binding(mock, token)
    answered = mock.answer_binding(binding["id"], answer)
    assert answered["status"] == answer
    now = get_binding(mock, token, binding["id"])
    other = "rejectedAt" if field == "confirmedAt" else "confirmedAt"
    assert now[field] is not None and now[other] is None
    assert abs(parse_time(now[field]) - time.time()) < 5
    assert mock.state()["binding_requests"] == []


def test_control_endpoint_errors(mock, token):
    binding = create_binding(mock, token)
    path = f"/__control/binding-requests/{binding['id']}"
    assert mock.api("POST", "/__control/binding-requests/nope",
                    json={"status": "CONFIRMED"})[0] == 404
    for bad in ({"status": "VERIFIED"}, {"status": None}, {}):
        assert mock.api("POST", path, json=bad)[0] == 400
    assert mock.api("POST", path, json={"status": "REJECTED"})[0] == 200
    status, _, body = mock.api("POST", path, json={"status": "CONFIRMED"})
    assert (status, body["error"]) == (409, "already_answered")


def test_requests_of_another_user_are_invisible(mock_factory):
    mock = mock_factory(users=OTHER)
    demo = mock.password_grant("users", DEMO_USER, "pw-demo", ("c", "s"))["access_token"]
    other = mock.password_grant("users", "other@example.com", "pw-other",
                                ("c", "s"))["access_token"]
    binding = create_binding(mock, demo)
    assert get_binding(mock, other, binding["id"]) is None
    assert get_binding(mock, demo, "no-such-request") is None
    mock.answer_binding(binding["id"])
    # the demo user's confirmation does not let the other user create a device
    status, body, _ = create_device(mock, other)
    assert (status, body["error"]) == (403, "binding_request_required")
    assert create_device(mock, demo)[0] == 201


def test_create_binding_request_checks_its_arguments(mock, token):
    for variables in ({"name": ""}, {"name": "x" * 256}):
        status, _, body = graphql(mock, token, CREATE, variables)
        assert status == 200 and body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    status, _, body = graphql(mock, token, CREATE, {})
    assert status == 400 and "no value" in body["errors"][0]["message"]
    status, _, body = graphql(mock, token, "mutation { createDeviceBindingRequest { id } }")
    assert status == 400 and "is required" in body["errors"][0]["message"]
    # literal arguments work as well as variables
    status, _, body = graphql(mock, token, 'mutation { createDeviceBindingRequest('
                                           'deviceName: "literal", deviceId: null) { id } }')
    assert status == 200 and body["data"]["createDeviceBindingRequest"]["id"]
    assert mock.api("POST", "/api/graphql", json={"query": CREATE,
                                                  "variables": {"name": "x"}})[0] == 401


# -- the gate on device creation -------------------------------------------------------------

def test_device_creation_needs_a_confirmed_binding_request(mock, token):
    status, body, _ = create_device(mock, token)
    assert (status, body["error"]) == (403, "binding_request_required")
    binding = create_binding(mock, token)
    status, body, _ = create_device(mock, token)            # still pending
    assert (status, body["error"]) == (403, "binding_request_required")
    mock.answer_binding(binding["id"], "REJECTED")
    status, body, _ = create_device(mock, token)
    assert (status, body["error"]) == (403, "binding_request_required")
    assert mock.sms() == [] and mock.state()["devices"] == []

    mock.answer_binding(create_binding(mock, token)["id"])
    status, body, key = create_device(mock, token)
    assert status == 201, body
    # one device per confirmation
    status, body, _ = create_device(mock, token)
    assert (status, body["error"]) == (403, "binding_request_required")
    assert len(mock.state()["devices"]) == 1


def test_windows_are_180_seconds_by_default(mock, token):
    settings = mock.state()["settings"]
    assert settings == {"challenge_lifetime": 180, "binding_window": 180,
                        "binding_requests": "required"}
    status, _, challenge = mock.api("POST", "/api/user/mfa/challenges", token=token)
    assert status == 201
    assert 178 <= parse_time(challenge["expiresAt"]) - time.time() <= 181


def test_device_created_after_the_window_is_refused(mock_factory):
    mock = mock_factory("--binding-window", "0.5")
    token = mock.password_grant()["access_token"]
    mock.request_binding(token)
    time.sleep(0.6)
    status, body, _ = create_device(mock, token)
    assert (status, body["error"]) == (403, "binding_request_expired")
    assert "0.5 s" in body["message"]
    assert mock.state()["devices"] == []


def test_device_verified_after_the_window_is_refused(mock_factory):
    window = 3  # long enough to create the device within it on a loaded machine
    mock = mock_factory("--binding-window", str(window))
    token = mock.password_grant()["access_token"]
    mock.request_binding(token)
    status, created, key = create_device(mock, token)
    assert status == 201
    time.sleep(window + 0.1)  # counted from after the confirmation
    status, _, body = mock.api("POST", f"/api/user/devices/{created['deviceId']}/verify",
                               token=token, json={"challengeId": created["challengeId"],
                                                  "signature": sign_hex(key, mock.last_otp())})
    assert (status, body["error"]) == (403, "binding_request_expired")
    assert mock.state()["devices"][0]["verified"] is False


def test_otp_lifetime_is_shortened_by_the_option(mock_factory):
    mock = mock_factory("--challenge-lifetime", "0.5")
    token = mock.password_grant()["access_token"]
    mock.request_binding(token)
    status, created, key = create_device(mock, token)
    time.sleep(0.6)
    status, _, body = mock.api("POST", f"/api/user/devices/{created['deviceId']}/verify",
                               token=token, json={"challengeId": created["challengeId"],
                                                  "signature": sign_hex(key, mock.last_otp())})
    assert (status, body["error"]) == (400, "challenge_expired")


def test_auto_mode_confirms_at_once(mock_factory):
    mock = mock_factory("--binding-requests", "auto")
    token = mock.password_grant()["access_token"]
    assert create_device(mock, token)[0] == 403            # still no request, no device
    binding = create_binding(mock, token)
    assert binding["confirmedAt"] == binding["createdAt"]
    assert mock.state()["binding_requests"] == []
    assert create_device(mock, token)[0] == 201


def test_off_mode_creates_devices_without_a_request(mock_factory):
    mock = mock_factory("--binding-requests", "off")
    token = mock.password_grant()["access_token"]
    status, created, key = create_device(mock, token)
    assert status == 201
    status, _, _ = mock.api("POST", f"/api/user/devices/{created['deviceId']}/verify",
                            token=token, json={"challengeId": created["challengeId"],
                                               "signature": sign_hex(key, mock.last_otp())})
    assert status == 204
    # the requests themselves still exist, and wait for an answer
    binding = create_binding(mock, token)
    assert binding["confirmedAt"] is None
    assert mock.state()["settings"]["binding_requests"] == "off"


def test_a_bound_device_answers_through_graphql(mock, token):
    device_id, key = mock.enroll_device(token=token)
    confirmed = mock.confirm(token, device_id, key)["token"]
    assert jwt_claims(confirmed)["cnf"] == {"kid": device_id}
    binding = create_binding(mock, token, "second machine")
    update = ("mutation Answer($id: String!, $yes: Boolean!) "
              "{ updateDeviceBindingRequest(id: $id, isConfirmation: $yes) }")
    # an unconfirmed token is no bound device
    status, _, body = graphql(mock, token, update, {"id": binding["id"], "yes": True})
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    status, _, body = graphql(mock, confirmed, update, {"id": binding["id"], "yes": True})
    assert body == {"data": {"updateDeviceBindingRequest": True}}
    assert get_binding(mock, token, binding["id"])["confirmedAt"] is not None
    status, _, body = graphql(mock, confirmed, update, {"id": binding["id"], "yes": False})
    assert body["data"] is None and body["errors"]


# -- the GraphQL schema ----------------------------------------------------------------------

def test_bound_device_has_only_id_and_name(mock, token):
    device_id, _ = mock.enroll_device(name="box", token=token)
    status, _, body = graphql(mock, token, "{ listBoundDevices { id name } }")
    assert body == {"data": {"listBoundDevices": [{"id": device_id, "name": "box"}]}}
    status, _, body = graphql(mock, token, "{ listBoundDevices { id name createdAt } }")
    assert status == 400
    assert body["errors"][0]["message"] == 'Cannot query field "createdAt" on type "BoundDevice".'


@pytest.mark.parametrize("query, variables, message", [
    ("{ getDeviceBindingRequest(id: $id) { id } }", {}, 'Variable "$id" is not defined.'),
    ("query Q($id: Int) { getDeviceBindingRequest(id: $id) { id } }", {},
     "used in position expecting"),
    ("query Q($id: String) { getDeviceBindingRequest(id: $id) { id } }", {"id": 5},
     "invalid or no value"),
    ("{ getDeviceBindingRequest(id: 5) { id } }", None, "invalid value"),
    ("{ getDeviceBindingRequest(ident: \"x\") { id } }", None, 'Unknown argument "ident"'),
    ("{ getDeviceBindingRequest(id: \"x\") }", None, "must have a selection"),
    ("{ listBoundDevices { id { deeper } } }", None, "no subfields"),
    ("mutation { listBoundDevices { id } }", None, 'on type "Mutation"'),
    ("{ createDeviceBindingRequest(deviceName: \"x\") { id } }", None, 'on type "Query"'),
    ("{ listBoundDevices { ...F } }", None, "fragments are not supported"),
    ("{ listBoundDevices { id }", None, "Syntax Error"),
    ("query A { listBoundDevices { id } } query B { listBoundDevices { id } }", None,
     "only one operation"),
])
def test_graphql_validation_errors(mock, token, query, variables, message):
    status, _, body = graphql(mock, token, query, variables)
    assert status == 400, body
    assert 1 <= len(body["errors"]) <= 3
    assert any(message in e["message"] for e in body["errors"]), body


def test_graphql_answers_at_most_three_errors(mock, token):
    query = "{ a { id } b { id } c { id } d { id } e { id } }"
    status, _, body = graphql(mock, token, query)
    assert status == 400 and len(body["errors"]) == 3


def test_graphql_limits_answer_429(mock, token):
    padding = "# " + "x" * 10000 + "\n"
    status, _, body = graphql(mock, token, padding + "{ listBoundDevices { id } }")
    assert status == 429 and body["errors"]
    fields = " ".join(["id"] * 501)
    status, _, body = graphql(mock, token, f"{{ listBoundDevices {{ {fields} }} }}")
    assert status == 429 and body["errors"]


def test_graphql_operation_is_logged(mock, token):
    create_binding(mock, token)
    graphql(mock, token, "{ listBoundDevices { id } }")
    mock.api("POST", "/api/graphql", token=token, body="not json",
             headers={"Content-Type": "application/json"})
    assert [r["operation"] for r in mock.requests("graphql")] == \
        ["createDeviceBindingRequest", "listBoundDevices", None]


def test_binding_mode_switches_while_the_mock_runs(mock, token):
    assert mock.state()["settings"]["binding_requests"] == "required"
    assert mock.binding_mode("auto") == "required"
    assert mock.state()["settings"]["binding_requests"] == "auto"
    assert create_binding(mock, token)["confirmedAt"] is not None
    assert mock.binding_mode("required") == "auto"
    assert create_binding(mock, token)["confirmedAt"] is None
    status, _, body = mock.api("POST", "/__control/binding-mode", json={"mode": "sometimes"})
    assert status == 400, body
    assert mock.state()["settings"]["binding_requests"] == "required"
