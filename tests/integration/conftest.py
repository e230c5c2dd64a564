"""Shared fixtures of the kontist-auth integration tests.

Fixtures
--------
``build_dir`` (session)
    Path of the build tree holding the binaries: ``$KONTIST_BUILDDIR`` or
    ``<repo>/build``.  Nothing here checks that it exists.
``mock_tls_dir`` (session)
    Directory with the mock's CA and certificates, made once per session and
    handed to every mock (``--tls-dir``) so each one starts in a fraction of a
    second.
``mock_factory``
    ``start(*extra_args, users=None, faults=(), rotate_refresh=False,
    token_lifetime=None, challenge_lifetime=None, cert_fault=None,
    refresh_lifetime=None) -> Mock`` starts a fresh kontist-mock with its own
    state directory under ``tmp_path`` (through ``tests/mock/mock_launcher.py``,
    the one launcher the tests and scripts share).  Every mock is stopped at
    teardown.
``mock``
    A mock with default settings (demo users, no faults).
``no_mock_tracebacks``
    Fails the test if a mock it started printed a traceback (a bug in the
    mock); use with ``pytestmark = pytest.mark.usefixtures(...)``.
``demo``
    The demo account: ``.user .password .client_id .client_secret
    .public_client_id .scopes .scope``.
``world``
    A ``pam_support.PamWorld`` (pam_wrapper services, nss_wrapper users, the
    module's configuration) under ``tmp_path / "w"``, pointing at ``mock``.
``alice``
    The nss_wrapper user "alice" of ``world``, enrolled (device at the mock,
    key and device record in her home, pinned to the demo account): a
    ``pam_support.EnrolledUser`` ``(home, device_id, key, key_path,
    record_path)``.

``Mock`` (what ``start`` returns; a ``mock_launcher.RunningMock``)
    ``url ca_file state_dir control_url host port``; ``api(method, path,
    json=None, form=None, token=None, basic=None, headers=None, body=None,
    timeout=10, conn=None) -> (status, headers, body)``; ``connect()``,
    ``ssl_context()``; control: ``set_fault(**spec)``, ``clear_faults()``,
    ``mfa(id, status)``, ``answer_binding(id, status)``, ``binding_mode(mode)``, ``state()``; logs:
    ``sms()``, ``last_otp()``, ``requests(endpoint=None)``, ``stderr()``; flows:
    ``password_grant()``, ``request_binding()``, ``enroll_device()``,
    ``confirm()``; ``stop()``.

Constants for test modules (``from conftest import ...``): DEMO_USER,
DEMO_PASSWORD, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, PUBLIC_CLIENT_ID,
ALL_SCOPES (read from tests/mock/demo-users.json, the default mock's users),
DEFAULT_SCOPE, REPO_DIR, MOCK_BIN, PYTHON.

Crypto helpers (``make_key``, ``public_key_hex``, ``sign_hex``, ``jwt_claims``,
``write_key_pem`` ...) live in ``kt_crypto`` and are re-exported here; test
modules can ``from kt_crypto import ...`` directly.

Environment: ``KONTIST_BUILDDIR`` (see above), ``KONTIST_PYTHON`` (interpreter
for the mock, default /usr/bin/python3), ``KONTIST_MOCK`` (path of the mock).
"""

import base64
import http.client
import itertools
import json as jsonlib
import os
import ssl
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import pytest

from kt_crypto import *  # noqa: F401,F403  (re-export for the other test modules)
from kt_crypto import make_key, public_key_hex, sign_hex

import mock_launcher  # tests/mock (pytest.ini's pythonpath): starts and stops every mock
from mock_launcher import MOCK_PROGRAM as MOCK_BIN, PYTHON  # noqa: F401  (re-exported)
# The demo account of tests/mock/demo-users.json, what the default mock knows.
from pam_support import (DEMO, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER,
                         EnrolledUser, PamWorld)

REPO_DIR = Path(__file__).resolve().parents[2]
PUBLIC_CLIENT_ID = DEMO.public_client_id
ALL_SCOPES = DEMO.scopes
DEFAULT_SCOPE = "accounts offline users"


class MockError(AssertionError):
    """A control or helper call to the mock did not get the answer it needs."""


class Mock(mock_launcher.RunningMock):
    """A running kontist-mock (started by ``mock_launcher.start``) and a client for it.

    Attributes: ``url`` (https://127.0.0.1:PORT), ``ca_file``, ``state_dir``
    (Path), ``control_url``, ``host``, ``port``, ``proc`` (the Popen),
    ``stderr_path``.
    """

    # -- HTTP ---------------------------------------------------------------

    def ssl_context(self, ca_file=None):
        """A client context that trusts the mock's CA and checks the host name."""
        return ssl.create_default_context(cafile=ca_file or self.ca_file)

    def connect(self, timeout=10, context=None):
        """A new (lazy) HTTPSConnection to the mock; reuse it for keep-alive."""
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                           context=context or self.ssl_context())

    def api(self, method, path, json=None, form=None, token=None, basic=None,
            headers=None, body=None, timeout=10, conn=None):
        """One request; returns ``(status, headers, body)``.

        json: object sent as application/json.  form: dict or list of pairs
        sent as application/x-www-form-urlencoded.  body: raw str/bytes (set
        Content-Type through ``headers``).  token: Bearer token.  basic:
        ``(client_id, secret)`` or a raw "id:secret" string for a Basic header.
        headers: extra headers; a value of None drops a default one (Accept).
        conn: an HTTPSConnection from ``connect()`` to reuse (not closed).

        The returned headers are an http.client.HTTPMessage (case-insensitive
        ``get``).  The body is the decoded JSON when it parses as JSON, else
        text, and None when empty.
        """
        hdrs = {"Accept": "application/json"}
        if json is not None:
            body = jsonlib.dumps(json)
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form, quote_via=quote)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        if isinstance(body, str):
            body = body.encode("utf-8")
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if basic is not None:
            raw = basic if isinstance(basic, str) else f"{basic[0]}:{basic[1]}"
            hdrs["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        for name, value in (headers or {}).items():
            for existing in [h for h in hdrs if h.lower() == name.lower()]:
                del hdrs[existing]
            if value is not None:
                hdrs[name] = value
        c = conn or self.connect(timeout)
        try:
            c.request(method, path, body=body, headers=hdrs)
            response = c.getresponse()
            data = response.read()
        finally:
            if conn is None:
                c.close()
        return response.status, response.headers, _decode(data)

    # -- control endpoint ---------------------------------------------------

    def control(self, method, path, json=None):
        """Call ``/__control/<path>``; returns the decoded body or raises MockError."""
        status, _, body = self.api(method, "/__control/" + path.lstrip("/"), json=json)
        if not 200 <= status < 300:
            raise MockError(f"control {method} {path}: {status} {body}")
        return body

    def set_fault(self, **spec):
        """Add a fault, e.g. ``set_fault(endpoint="token", kind="status", status=503)``."""
        return self.control("POST", "faults", spec)["faults"]

    def clear_faults(self):
        self.control("DELETE", "faults")

    def mfa(self, challenge_id, status):
        """Approve ("VERIFIED") or deny ("DENIED") a push MFA challenge."""
        return self.control("POST", f"mfa/{quote(challenge_id, safe='')}", {"status": status})

    def binding_mode(self, mode):
        """Switch the mock's --binding-requests mode ("required", "auto", "off"); returns the
        mode it had."""
        return self.control("POST", "binding-mode", {"mode": mode})["before"]

    def state(self):
        """Devices, refresh tokens, MFA challenges, per-endpoint counts, faults."""
        return self.control("GET", "state")

    # -- files the mock writes ------------------------------------------------

    def _jsonl(self, name):
        path = self.state_dir / name
        if not path.exists():
            return []
        with open(path, encoding="utf-8") as f:
            # A line without its newline is one the mock is writing right now: not there yet.
            return [jsonlib.loads(line) for line in f if line.endswith("\n") and line.strip()]

    def sms(self):
        """The "SMS" sent so far: dicts with time, username, device_id, challenge_id, otp."""
        return self._jsonl("sms.jsonl")

    def last_otp(self, device_id=None):
        """OTP of the newest SMS (for *device_id* if given); MockError if none."""
        messages = [m for m in self.sms() if device_id is None or m["device_id"] == device_id]
        if not messages:
            raise MockError(f"no SMS sent{' for ' + device_id if device_id else ''}")
        return messages[-1]["otp"]

    def requests(self, endpoint=None):
        """The request log (requests.jsonl), optionally only one endpoint's lines."""
        return [r for r in self._jsonl("requests.jsonl")
                if endpoint is None or r["endpoint"] == endpoint]

    # -- flows, for tests that need a user in a given state ----------------------

    def password_grant(self, scope=DEFAULT_SCOPE, username=DEMO_USER, password=DEMO_PASSWORD,
                       client=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)):
        """Log in; returns the token response dict (MockError unless 200)."""
        status, _, body = self.api("POST", "/api/oauth/token", basic=client, form={
            "grant_type": "password", "username": username, "password": password,
            "scope": scope})
        if status != 200:
            raise MockError(f"password grant: {status} {body}")
        return body

    def answer_binding(self, binding_id, status="CONFIRMED"):
        """The person confirms ("CONFIRMED") or rejects ("REJECTED") a device binding request."""
        return self.control("POST", f"binding-requests/{quote(binding_id, safe='')}",
                            {"status": status})

    def request_binding(self, token, name="test device", confirm=True):
        """createDeviceBindingRequest for *token*'s user, confirmed through the control
        endpoint unless *confirm* is false (or the mock confirmed it itself); returns the
        request as GraphQL shows it."""
        status, _, body = self.api("POST", "/api/graphql", token=token, json={
            "query": "mutation Bind($name: String!) { createDeviceBindingRequest("
                     "deviceName: $name) { id deviceName confirmedAt rejectedAt } }",
            "variables": {"name": name}})
        if status != 200 or not isinstance(body, dict) or body.get("errors"):
            raise MockError(f"createDeviceBindingRequest: {status} {body}")
        binding = body["data"]["createDeviceBindingRequest"]
        if confirm and binding["confirmedAt"] is None:
            self.answer_binding(binding["id"], "CONFIRMED")
        return binding

    def enroll_device(self, key=None, name="test device", token=None):
        """Create and verify a device for the demo user (or *token*'s user), the way the
        bank documents it: a device binding request, confirmed by the person (here through
        the control endpoint), then the device.

        Returns ``(device_id, key)``; a key is made when none is given.  Write
        it with ``kt_crypto.write_key_pem`` for a binary under test to use.
        """
        key = key or make_key()
        token = token or self.password_grant()["access_token"]
        self.request_binding(token, name)
        status, _, body = self.api("POST", "/api/user/devices", token=token,
                                   json={"name": name, "key": public_key_hex(key)})
        if status not in (200, 201):
            raise MockError(f"create device: {status} {body}")
        device_id = body["deviceId"]
        status, _, answer = self.api(
            "POST", f"/api/user/devices/{device_id}/verify", token=token,
            json={"challengeId": body["challengeId"],
                  "signature": sign_hex(key, self.last_otp(device_id))})
        if status != 204:
            raise MockError(f"verify device: {status} {answer}")
        return device_id, key

    def confirm(self, token, device_id, key):
        """Pass device MFA; returns ``{"token", "refresh_token"?}``."""
        status, _, challenge = self.api(
            "POST", f"/api/user/devices/{device_id}/challenges", token=token)
        if status not in (200, 201):
            raise MockError(f"create challenge: {status} {challenge}")
        status, _, body = self.api(
            "POST", f"/api/user/devices/{device_id}/challenges/{challenge['id']}/verify",
            token=token, json={"signature": sign_hex(key, challenge["stringToSign"])})
        if status != 200:
            raise MockError(f"verify challenge: {status} {body}")
        return body


def _decode(data):
    if not data:
        return None
    text = data.decode("utf-8", "replace")
    try:
        return jsonlib.loads(text)
    except ValueError:
        return text


@pytest.fixture(scope="session")
def build_dir():
    """The build tree: $KONTIST_BUILDDIR, or <repo>/build when unset."""
    return Path(os.environ.get("KONTIST_BUILDDIR") or REPO_DIR / "build").absolute()


@pytest.fixture(scope="session")
def mock_tls_dir(tmp_path_factory):
    """TLS files shared by all mocks of the session (the first mock creates them)."""
    return tmp_path_factory.mktemp("kontist-mock-tls")


@pytest.fixture
def mock_factory(tmp_path, mock_tls_dir):
    """Start kontist-mocks; see the module docstring for the signature.

    ``users`` is a path to a users file or a dict in that format.  ``faults``
    is a list of fault spec dicts (``--fault``).  ``extra_args`` go to the
    command line as they are.
    """
    started = []
    numbers = itertools.count(1)

    def start(*extra_args, users=None, **options):
        n = next(numbers)
        state_dir = tmp_path / ("mock" if n == 1 else f"mock{n}")
        mock = mock_launcher.start(state_dir, *extra_args, tls_dir=mock_tls_dir, users=users,
                                   users_path=tmp_path / f"users{n}.json", cls=Mock, **options)
        started.append(mock)
        return mock

    start.started = started
    yield start
    for mock in started:
        mock.stop()


@pytest.fixture
def no_mock_tracebacks(mock_factory):
    """Fail the test when a mock it started wrote a traceback (a bug in the mock)."""
    yield
    for mock in mock_factory.started:
        assert "Traceback" not in mock.stderr(), mock.stderr()


@pytest.fixture
def mock(mock_factory):
    """A default kontist-mock: demo users and clients, no faults, no rotation."""
    return mock_factory()


@pytest.fixture(scope="session")
def demo():
    """The demo user and clients that the default mock knows."""
    return SimpleNamespace(user=DEMO_USER, password=DEMO_PASSWORD, client_id=DEMO_CLIENT_ID,
                           client_secret=DEMO_CLIENT_SECRET, public_client_id=PUBLIC_CLIENT_ID,
                           scopes=ALL_SCOPES, scope=DEFAULT_SCOPE)


@pytest.fixture
def world(tmp_path, build_dir, mock):
    """A private PAM world (pam_wrapper, nss_wrapper) whose configuration points at mock."""
    return PamWorld(tmp_path / "w", build_dir, mock)


@pytest.fixture
def alice(world):
    """The enrolled user "alice" of world: EnrolledUser(home, device_id, key, key_path,
    record_path)."""
    home = world.add_user("alice")
    return EnrolledUser(home, *world.enroll(home))
