"""The Kontist endpoints and the bank's in-memory state.

Every handler takes a Request and returns a Response or raises ApiError.
The server runs each handler under Api.lock, so handlers may read and change
state freely; anything slow (fault delays, dripping) happens outside it.
"""

import base64
import datetime
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from . import graphql, jwt
from .users import ALL_SCOPES

OAUTH_FORM = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 64


@dataclass
class Request:
    method: str
    path: str
    params: dict
    headers: object           # email.message.Message, case-insensitive get()
    body: bytes
    expire_tokens: bool = False
    client_ip: str = ""


@dataclass
class Response:
    status: int
    body: object = None       # JSON-able object, or None for no body
    headers: list = field(default_factory=list)


class ApiError(Exception):
    """An error answer.  oauth=True uses RFC 6749 field names."""

    def __init__(self, status, error, message=None, headers=(), oauth=False):
        super().__init__(message or error)
        self.status, self.error, self.message = status, error, message
        self.headers, self.oauth = list(headers), oauth

    def response(self):
        body = {"error": self.error}
        if self.message:
            body["error_description" if self.oauth else "message"] = self.message
        return Response(self.status, body, self.headers)


def oauth_error(status, error, message=None, headers=()):
    return ApiError(status, error, message, headers, oauth=True)


def iso_time(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc) \
        .isoformat(timespec="milliseconds").replace("+00:00", "Z")


def media_type(value):
    return (value or "").split(";", 1)[0].strip().lower()


@dataclass
class Challenge:
    """A thing to sign: the OTP of a device verification or a stringToSign."""
    id: str
    secret: str
    expires: float
    used: bool = False


@dataclass
class Device:
    id: str
    username: str
    name: str
    key_hex: str
    public_key: object
    created: float
    verified: bool = False
    verification: Challenge = None
    challenges: dict = field(default_factory=dict)
    binding: object = None    # the BindingRequest it was created under, or None


@dataclass
class BindingRequest:
    """A device binding request: the person confirms it in the app or an email."""
    id: str
    username: str
    device_name: str
    device_id: str            # as given to createDeviceBindingRequest, or None
    ip_address: str
    address: str
    created: float
    confirmed: float = None
    rejected: float = None
    used_by: str = None       # id of the device created under it

    @property
    def status(self):
        if self.rejected is not None:
            return "REJECTED"
        return "CONFIRMED" if self.confirmed is not None else "PENDING"


@dataclass
class RefreshToken:
    username: str
    client_id: str
    scope: list
    kid: str                  # cnf kid of the MFA that confirmed it, or None
    expires: float


@dataclass
class MfaChallenge:
    id: str
    username: str
    status: str
    expires: float
    token_issued: bool = False


BINDING_MODES = ("required", "auto", "off")


@dataclass
class Settings:
    token_lifetime: float = 3599
    refresh_lifetime: float = 30 * 86400
    challenge_lifetime: float = 180
    rotate_refresh: bool = False
    binding_requests: str = "required"   # one of BINDING_MODES
    binding_window: float = 180          # create and verify within this after confirmation


def _verify_signature(public_key, signature_hex, message):
    if not isinstance(signature_hex, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", signature_hex):
        return False
    try:
        public_key.verify(bytes.fromhex(signature_hex), message.encode("utf-8"),
                          ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


class Api:
    # method, path pattern, fault endpoint name, handler name
    ROUTES = [
        ("POST", r"/api/oauth/token", "token"),
        ("POST", r"/api/user/devices", "devices_create"),
        ("POST", r"/api/user/devices/(?P<device_id>[^/]+)/verify", "device_verify"),
        ("POST", r"/api/user/devices/(?P<device_id>[^/]+)/challenges", "challenge_create"),
        ("POST", r"/api/user/devices/(?P<device_id>[^/]+)/challenges/(?P<challenge_id>[^/]+)/verify",
         "challenge_verify"),
        ("POST", r"/api/user/mfa/challenges", "mfa_create"),
        ("GET", r"/api/user/mfa/challenges/(?P<challenge_id>[^/]+)", "mfa_get"),
        ("POST", r"/api/user/mfa/challenges/(?P<challenge_id>[^/]+)/token", "mfa_token"),
        ("POST", r"/api/graphql", "graphql"),
        ("GET", r"/api/user", "user"),
        ("GET", r"/api/accounts", "accounts"),
    ]

    def __init__(self, users, clients, settings, sms_sink):
        self.lock = threading.RLock()
        self.users, self.clients = users, clients
        self.settings = settings
        self.sms_sink = sms_sink          # callable(dict): the user's phone
        self.signer = jwt.Signer()
        # Refresh tokens are JWTs too, signed with a key of their own: one can never pass
        # for an access token.
        self.refresh_signer = jwt.Signer()
        self.devices = {}
        self.refresh_tokens = {}
        self.mfa_challenges = {}
        self.binding_requests = {}
        self._routes = [(m, re.compile(p), name) for m, p, name in self.ROUTES]

    # -- routing ----------------------------------------------------------

    def route(self, method, path):
        """Return (endpoint name, handler, path params); handler None for 404/405."""
        for m, pattern, name in self._routes:
            match = pattern.fullmatch(path)
            if match:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                if m != method:
                    return name, self._not_allowed(m), params
                return name, getattr(self, "_" + name), params
        return None, None, {}

    @staticmethod
    def _not_allowed(allowed):
        def handler(req):
            raise ApiError(405, "method_not_allowed", f"use {allowed}",
                           [("Allow", allowed)])
        return handler

    # -- tokens -----------------------------------------------------------

    def _access_token(self, username, client_id, scope, kid, expire_now):
        now = time.time()
        if expire_now:
            iat, exp, expires_in = int(now) - 60, int(now) - 1, 0
        else:
            iat = int(now)
            exp = int(now + self.settings.token_lifetime)
            expires_in = int(self.settings.token_lifetime)
        claims = {"iss": "kontist-mock", "sub": username, "scope": " ".join(scope),
                  "client_id": client_id, "iat": iat, "exp": exp,
                  "jti": str(uuid.uuid4())}
        if kid is not None:
            claims["cnf"] = {"kid": kid}
        return self.signer.encode(claims), expires_in

    def _refresh_token(self, username, client_id, scope, kid, expires=None):
        """A JWT with the claims of the documentation's example; the mock still keeps a
        record of each, to revoke them and to retire rotated ones."""
        now = time.time()
        if expires is None:
            expires = now + self.settings.refresh_lifetime
        claims = {"sub": username, "scope": " ".join(scope), "client_id": client_id,
                  "iat": int(now), "exp": int(expires), "jti": str(uuid.uuid4())}
        if kid is not None:
            claims["cnf"] = {"kid": kid}
        value = self.refresh_signer.encode(claims)
        self.refresh_tokens[value] = RefreshToken(username, client_id, list(scope), kid, expires)
        return value

    def _confirmed_tokens(self, claims, kid, req):
        """The {"token", "refresh_token"?} answer of a passed MFA."""
        scope = claims["scope"].split()
        token, _ = self._access_token(claims["sub"], claims["client_id"], scope, kid,
                                      req.expire_tokens)
        body = {"token": token}
        if "offline" in scope:
            body["refresh_token"] = self._refresh_token(claims["sub"], claims["client_id"],
                                                        scope, kid)
        return body

    def _revoke_device(self, device_id):
        for value, record in list(self.refresh_tokens.items()):
            if record.kid == device_id:
                del self.refresh_tokens[value]

    # -- POST /api/oauth/token --------------------------------------------

    @staticmethod
    def _parse_form(body):
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                              max_num_fields=MAX_FORM_FIELDS)
        except ValueError:
            raise oauth_error(400, "invalid_request", "malformed form body") from None
        form = {}
        for key, value in pairs:
            if key in form:
                raise oauth_error(400, "invalid_request", f"parameter {key} repeated")
            form[key] = value
        return form

    def _find_client(self, client_id, secret):
        client = self.clients.get(client_id)
        if client is None:
            return None
        if hmac.compare_digest(client.client_secret.encode(), (secret or "").encode()):
            return client
        return None

    def _client_auth(self, req, form):
        basic_challenge = [("WWW-Authenticate", 'Basic realm="kontist"')]
        auth = req.headers.get("Authorization")
        body_id, body_secret = form.get("client_id"), form.get("client_secret")
        if auth is not None:
            scheme, _, credentials = auth.strip().partition(" ")
            if scheme.lower() != "basic":
                raise oauth_error(401, "invalid_client", "client authentication failed",
                                  basic_challenge)
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except ValueError:
                raise oauth_error(401, "invalid_client", "client authentication failed",
                                  basic_challenge) from None
            client_id, sep, secret = decoded.partition(":")
            if not sep:
                raise oauth_error(401, "invalid_client", "client authentication failed",
                                  basic_challenge)
            if body_secret is not None or (body_id is not None and body_id != client_id):
                raise oauth_error(400, "invalid_request",
                                  "more than one client authentication method")
            # RFC 6749 form-encodes id and secret before base64; most clients don't.
            client = (self._find_client(client_id, secret)
                      or self._find_client(unquote_plus(client_id), unquote_plus(secret)))
            if client is None:
                raise oauth_error(401, "invalid_client", "client authentication failed",
                                  basic_challenge)
            return client
        if body_id is not None:
            client = self._find_client(body_id, body_secret)
            if client is None:
                raise oauth_error(401, "invalid_client", "client authentication failed")
            return client
        raise oauth_error(401, "invalid_client", "client authentication required",
                          basic_challenge)

    @staticmethod
    def _parse_scope(text, client):
        if text is None or not text.strip():
            raise oauth_error(400, "invalid_scope", "scope is required")
        scope = []
        for s in text.split():
            if s not in ALL_SCOPES:
                raise oauth_error(400, "invalid_scope", f"unknown scope {s}")
            if s not in client.scopes:
                raise oauth_error(400, "invalid_scope", f"scope {s} not allowed for this client")
            if s not in scope:
                scope.append(s)
        return scope

    def _token(self, req):
        if media_type(req.headers.get("Content-Type")) != OAUTH_FORM:
            raise oauth_error(400, "invalid_request", f"Content-Type must be {OAUTH_FORM}")
        form = self._parse_form(req.body)
        client = self._client_auth(req, form)
        grant = form.get("grant_type")
        if not grant:
            raise oauth_error(400, "invalid_request", "grant_type is required")
        if grant not in ("password", "refresh_token"):
            raise oauth_error(400, "unsupported_grant_type", f"grant_type {grant} not supported")
        if grant not in client.grants:
            raise oauth_error(400, "unauthorized_client", f"client may not use {grant}")
        if grant == "password":
            return self._password_grant(req, client, form)
        return self._refresh_grant(req, client, form)

    def _token_answer(self, body):
        return Response(200, body, [("Pragma", "no-cache")])

    def _password_grant(self, req, client, form):
        username, password = form.get("username"), form.get("password")
        if not username or not password:
            raise oauth_error(400, "invalid_request", "username and password are required")
        scope = self._parse_scope(form.get("scope"), client)
        user = self.users.get(username.lower())
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            raise oauth_error(400, "invalid_grant", "invalid username or password")
        token, expires_in = self._access_token(user.username, client.client_id, scope, None,
                                               req.expire_tokens)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                "scope": " ".join(scope)}
        if "offline" in scope:
            body["refresh_token"] = self._refresh_token(user.username, client.client_id,
                                                        scope, None)
        return self._token_answer(body)

    def _refresh_grant(self, req, client, form):
        value = form.get("refresh_token")
        if not value:
            raise oauth_error(400, "invalid_request", "refresh_token is required")
        record = self.refresh_tokens.get(value)
        if record is not None and record.expires <= time.time():
            del self.refresh_tokens[value]
            record = None
        if record is None or record.client_id != client.client_id \
                or record.username.lower() not in self.users:
            raise oauth_error(400, "invalid_grant", "invalid refresh token")
        scope = record.scope
        if form.get("scope") is not None:
            scope = self._parse_scope(form["scope"], client)
            if not set(scope) <= set(record.scope):
                raise oauth_error(400, "invalid_scope", "scope exceeds the original grant")
        token, expires_in = self._access_token(record.username, client.client_id, scope,
                                               record.kid, req.expire_tokens)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                "scope": " ".join(scope)}
        if self.settings.rotate_refresh:
            del self.refresh_tokens[value]
            # the session ends when the first refresh token would have: MFA once per lifetime
            body["refresh_token"] = self._refresh_token(record.username, record.client_id,
                                                        record.scope, record.kid,
                                                        record.expires)
        return self._token_answer(body)

    # -- bearer endpoints ---------------------------------------------------

    def _bearer(self, req):
        auth = req.headers.get("Authorization")
        if not auth:
            raise ApiError(401, "invalid_token", "bearer token required",
                           [("WWW-Authenticate", 'Bearer realm="kontist"')])
        scheme, _, token = auth.strip().partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise jwt.TokenError("malformed authorization header")
            claims = self.signer.decode(token.strip())
            if claims.get("sub", "").lower() not in self.users:
                raise jwt.TokenError("unknown user")
        except jwt.TokenError as e:
            raise ApiError(401, "invalid_token", str(e),
                           [("WWW-Authenticate",
                             f'Bearer realm="kontist", error="invalid_token", '
                             f'error_description="{e}"')]) from None
        return claims

    @staticmethod
    def _json(req, required=True):
        if not req.body.strip():
            if required:
                raise ApiError(400, "invalid_request", "JSON body required")
            return {}
        if media_type(req.headers.get("Content-Type")) != "application/json":
            raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
        try:
            data = json.loads(req.body.decode("utf-8"))
        except ValueError:
            raise ApiError(400, "invalid_json", "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_request", "body must be a JSON object")
        return data

    def _own_device(self, claims, device_id):
        device = self.devices.get(device_id)
        if device is None or device.username.lower() != claims["sub"].lower():
            raise ApiError(404, "not_found", "device not found")
        return device

    def _new_challenge(self, secret):
        return Challenge(str(uuid.uuid4()), secret,
                         time.time() + self.settings.challenge_lifetime)

    @staticmethod
    def _use_challenge(challenge, public_key, signature):
        """Check and consume a challenge: any attempt uses it up, right or wrong."""
        if challenge.used:
            raise ApiError(400, "challenge_used", "challenge already used")
        challenge.used = True
        if time.time() >= challenge.expires:
            raise ApiError(400, "challenge_expired", "challenge expired")
        if not _verify_signature(public_key, signature, challenge.secret):
            raise ApiError(400, "invalid_signature", "signature does not verify")

    def _devices_create(self, req):
        claims = self._bearer(req)
        data = self._json(req)
        name, key = data.get("name"), data.get("key")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise ApiError(400, "invalid_name", "name must be a non-empty string")
        if not isinstance(key, str) or not re.fullmatch(r"04[0-9a-fA-F]{128}", key):
            raise ApiError(400, "invalid_key",
                           "key must be the 130 hex digits of an uncompressed P-256 point")
        try:
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                                      bytes.fromhex(key))
        except ValueError:
            raise ApiError(400, "invalid_key", "key is not a point on P-256") from None
        binding = self._binding_for_device(claims["sub"])
        otp = f"{secrets.randbelow(10**6):06d}"
        device = Device(str(uuid.uuid4()), claims["sub"], name, key.lower(), public_key,
                        time.time(), verification=self._new_challenge(otp), binding=binding)
        self.devices[device.id] = device
        if binding is not None:
            binding.used_by = device.id
        user = self.users[claims["sub"].lower()]
        self.sms_sink({"username": user.username, "phone": user.phone,
                       "device_id": device.id, "challenge_id": device.verification.id,
                       "otp": otp})
        return Response(201, {"deviceId": device.id, "challengeId": device.verification.id})

    # -- device binding requests --------------------------------------------

    def _within_window(self, binding):
        return time.time() - binding.confirmed < self.settings.binding_window

    def _binding_for_device(self, username):
        """The confirmed, unused binding request a new device is created under.

        None when binding requests are off.  Each confirmation admits one device."""
        if self.settings.binding_requests == "off":
            return None
        usable = [b for b in self.binding_requests.values()
                  if b.username.lower() == username.lower() and b.status == "CONFIRMED"
                  and b.used_by is None]
        if not usable:
            raise ApiError(403, "binding_request_required",
                           "a device can only be created after a device binding request "
                           "(createDeviceBindingRequest) was confirmed in the Kontist app "
                           "or by email")
        fresh = [b for b in usable if self._within_window(b)]
        if not fresh:
            raise ApiError(403, "binding_request_expired",
                           f"the device binding request was confirmed more than "
                           f"{self.settings.binding_window:g} s ago; start again with a new one")
        return max(fresh, key=lambda b: b.confirmed)

    @staticmethod
    def binding_view(b):
        """A DeviceBindingRequest as the GraphQL schema has it."""
        return {"id": b.id, "ipAddress": b.ip_address, "deviceName": b.device_name,
                "address": b.address, "createdAt": iso_time(b.created),
                "confirmedAt": iso_time(b.confirmed) if b.confirmed is not None else None,
                "rejectedAt": iso_time(b.rejected) if b.rejected is not None else None}

    def _new_binding(self, claims, device_name, device_id, client_ip):
        now = time.time()
        binding = BindingRequest(str(uuid.uuid4()), claims["sub"], device_name, device_id,
                                 client_ip or "unknown", "Unknown location", now)
        if self.settings.binding_requests == "auto":
            binding.confirmed = now
        self.binding_requests[binding.id] = binding
        return binding

    def set_binding_mode(self, mode):
        """Control endpoint: --binding-requests from now on; answers with the mode before."""
        if mode not in BINDING_MODES:
            raise ApiError(400, "invalid_request",
                           f"mode must be one of {', '.join(BINDING_MODES)}")
        before, self.settings.binding_requests = self.settings.binding_requests, mode
        return {"mode": mode, "before": before}

    def set_binding_status(self, binding_id, status):
        """Control endpoint: the person confirms or rejects in the app or the email."""
        binding = self.binding_requests.get(binding_id)
        if binding is None:
            raise ApiError(404, "not_found", "device binding request not found")
        if status not in ("CONFIRMED", "REJECTED"):
            raise ApiError(400, "invalid_request", "status must be CONFIRMED or REJECTED")
        if binding.status != "PENDING":
            raise ApiError(409, "already_answered",
                           f"device binding request is {binding.status} already")
        if status == "CONFIRMED":
            binding.confirmed = time.time()
        else:
            binding.rejected = time.time()
        return dict(self.binding_view(binding), username=binding.username,
                    status=binding.status)

    def _device_verify(self, req):
        claims = self._bearer(req)
        device = self._own_device(claims, req.params["device_id"])
        data = self._json(req)
        challenge_id, signature = data.get("challengeId"), data.get("signature")
        if not isinstance(challenge_id, str) or not isinstance(signature, str):
            raise ApiError(400, "invalid_request", "challengeId and signature are required")
        if device.verified:
            raise ApiError(400, "device_verified", "device already verified")
        if device.verification is None or device.verification.id != challenge_id:
            raise ApiError(400, "unknown_challenge", "no such challenge for this device")
        if device.binding is not None and not self._within_window(device.binding):
            raise ApiError(403, "binding_request_expired",
                           f"the device binding request was confirmed more than "
                           f"{self.settings.binding_window:g} s ago; start again with a new one")
        self._use_challenge(device.verification, device.public_key, signature)
        device.verified = True
        return Response(204)

    def _challenge_create(self, req):
        claims = self._bearer(req)
        device = self._own_device(claims, req.params["device_id"])
        if not device.verified:
            raise ApiError(400, "device_not_verified", "device is not verified")
        challenge = self._new_challenge(str(uuid.uuid4()))
        device.challenges[challenge.id] = challenge
        return Response(201, {"id": challenge.id, "stringToSign": challenge.secret})

    def _challenge_verify(self, req):
        claims = self._bearer(req)
        device = self._own_device(claims, req.params["device_id"])
        challenge = device.challenges.get(req.params["challenge_id"])
        if challenge is None:
            raise ApiError(404, "not_found", "challenge not found")
        signature = self._json(req).get("signature")
        if not isinstance(signature, str):
            raise ApiError(400, "invalid_request", "signature is required")
        self._use_challenge(challenge, device.public_key, signature)
        return Response(200, self._confirmed_tokens(claims, device.id, req))

    # -- push MFA -----------------------------------------------------------

    @staticmethod
    def _mfa_view(challenge):
        return {"id": challenge.id, "status": challenge.status,
                "expiresAt": iso_time(challenge.expires)}

    def _own_mfa(self, claims, challenge_id):
        challenge = self.mfa_challenges.get(challenge_id)
        if challenge is None or challenge.username.lower() != claims["sub"].lower():
            raise ApiError(404, "not_found", "challenge not found")
        return challenge

    def _mfa_create(self, req):
        claims = self._bearer(req)
        challenge = MfaChallenge(str(uuid.uuid4()), claims["sub"], "PENDING",
                                 time.time() + self.settings.challenge_lifetime)
        self.mfa_challenges[challenge.id] = challenge
        return Response(201, self._mfa_view(challenge))

    def _mfa_get(self, req):
        claims = self._bearer(req)
        return Response(200, self._mfa_view(self._own_mfa(claims, req.params["challenge_id"])))

    def _mfa_token(self, req):
        claims = self._bearer(req)
        challenge = self._own_mfa(claims, req.params["challenge_id"])
        if challenge.token_issued:
            raise ApiError(400, "challenge_used", "token already issued for this challenge")
        if time.time() >= challenge.expires:
            raise ApiError(400, "challenge_expired", "challenge expired")
        if challenge.status == "DENIED":
            raise ApiError(400, "challenge_denied", "challenge was denied")
        if challenge.status != "VERIFIED":
            raise ApiError(400, "challenge_pending", "challenge not verified yet")
        challenge.token_issued = True
        return Response(200, self._confirmed_tokens(claims, "mfa:" + challenge.id, req))

    def set_mfa_status(self, challenge_id, status):
        """Control endpoint: the user taps approve or deny on the phone."""
        challenge = self.mfa_challenges.get(challenge_id)
        if challenge is None:
            raise ApiError(404, "not_found", "challenge not found")
        if status not in ("VERIFIED", "DENIED", "PENDING"):
            raise ApiError(400, "invalid_request", "status must be VERIFIED or DENIED")
        challenge.status = status
        return self._mfa_view(challenge)

    # -- GraphQL ------------------------------------------------------------

    # The part of the schema the mock serves.  Field -> (arguments, result type); "!" is
    # non-null, "[T!]!" a list.  Object types list their fields, and nothing else exists.
    GQL_OBJECTS = {
        "BoundDevice": ("id", "name"),
        "DeviceBindingRequest": ("id", "ipAddress", "deviceName", "address", "confirmedAt",
                                 "rejectedAt", "createdAt"),
    }
    GQL_ROOTS = {
        "query": ("Query", {
            "listBoundDevices": ({}, "[BoundDevice!]!"),
            "getDeviceBindingRequest": ({"id": "String"}, "DeviceBindingRequest"),
        }),
        "mutation": ("Mutation", {
            "createDeviceBindingRequest": ({"deviceName": "String!", "deviceId": "String"},
                                           "DeviceBindingRequest!"),
            "updateDeviceBindingRequest": ({"id": "String!", "isConfirmation": "Boolean!"},
                                           "Boolean!"),
            "deleteBoundDevice": ({"deviceId": "String!"}, "Boolean!"),
        }),
    }
    # The documented limits: beyond them, expect 429.
    GQL_MAX_QUERY = 10000
    GQL_MAX_FIELDS = 500
    GQL_MAX_ERRORS = 3

    class FieldError(Exception):
        def __init__(self, message, code):
            super().__init__(message)
            self.code = code

    @classmethod
    def _graphql_error(cls, messages, status=400, code="GRAPHQL_VALIDATION_FAILED"):
        if isinstance(messages, str):
            messages = [messages]
        return Response(status, {"errors": [{"message": m, "extensions": {"code": code}}
                                            for m in messages[:cls.GQL_MAX_ERRORS]]})

    @staticmethod
    def _gql_base(type_text):
        return type_text.strip("[]!")

    @staticmethod
    def _gql_value_ok(type_text, value):
        """Whether a (variable or literal) value fits a scalar argument type."""
        if value is None:
            return not type_text.endswith("!")
        base = type_text.rstrip("!")
        if base == "String":
            return isinstance(value, str)
        if base == "Boolean":
            return isinstance(value, bool)
        return False

    def _gql_validate(self, op, variables):
        """Errors in the operation against the schema and the request's variables."""
        root, fields = self.GQL_ROOTS[op.kind]
        errors, used = [], set()
        for f in op.selections:
            if f.name not in fields:
                errors.append(f'Cannot query field "{f.name}" on type "{root}".')
                continue
            arg_types, result = fields[f.name]
            for name, value in f.arguments.items():
                if name not in arg_types:
                    errors.append(f'Unknown argument "{name}" on field "{root}.{f.name}".')
                elif isinstance(value, graphql.Variable):
                    used.add(value.name)
                    declared = op.variables.get(value.name)
                    if declared is None:
                        errors.append(f'Variable "${value.name}" is not defined.')
                    elif self._gql_base(declared[0]) != self._gql_base(arg_types[name]) or (
                            arg_types[name].endswith("!") and not declared[0].endswith("!")
                            and declared[1] is None):
                        errors.append(f'Variable "${value.name}" of type "{declared[0]}" used '
                                      f'in position expecting type "{arg_types[name]}".')
                elif not self._gql_value_ok(arg_types[name], value):
                    errors.append(f'Argument "{name}" of field "{f.name}" has an invalid value; '
                                  f'expected type "{arg_types[name]}".')
            for name, type_text in arg_types.items():
                if type_text.endswith("!") and name not in f.arguments:
                    errors.append(f'Field "{f.name}" argument "{name}" of type "{type_text}" '
                                  f'is required, but it was not provided.')
            obj = self._gql_base(result)
            if obj in self.GQL_OBJECTS:
                if not f.selections:
                    errors.append(f'Field "{f.name}" of type "{result}" must have a selection '
                                  f'of subfields.')
                    continue
                for sub in f.selections:
                    if sub.name not in self.GQL_OBJECTS[obj]:
                        errors.append(f'Cannot query field "{sub.name}" on type "{obj}".')
                    elif sub.arguments or sub.selections:
                        errors.append(f'Field "{sub.name}" on type "{obj}" takes no arguments '
                                      f'and no subfields.')
            elif f.selections:
                errors.append(f'Field "{f.name}" must not have a selection since type '
                              f'"{result}" has no subfields.')
        for name, (type_text, default) in op.variables.items():
            if name not in used:
                errors.append(f'Variable "${name}" is never used.')
            value = variables.get(name, default)
            if not self._gql_value_ok(type_text, value):
                errors.append(f'Variable "${name}" of type "{type_text}" got an invalid or no '
                              f'value.')
        return errors

    def _graphql(self, req):
        claims = self._bearer(req)
        data = self._json(req)
        query, variables = data.get("query"), data.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return self._graphql_error("query must be a string, variables an object",
                                       code="BAD_REQUEST")
        if len(query) >= self.GQL_MAX_QUERY:
            return self._graphql_error(f"query longer than {self.GQL_MAX_QUERY} characters",
                                       status=429, code="QUERY_TOO_COMPLEX")
        try:
            op = graphql.parse(query)
        except (graphql.GraphQLError, ValueError, RecursionError) as e:
            return self._graphql_error(str(e) or "Syntax Error", code="GRAPHQL_PARSE_FAILED")
        if op.count_fields() > self.GQL_MAX_FIELDS:
            return self._graphql_error(f"query selects more than {self.GQL_MAX_FIELDS} fields",
                                       status=429, code="QUERY_TOO_COMPLEX")
        errors = self._gql_validate(op, variables)
        if errors:
            return self._graphql_error(errors)

        _, fields = self.GQL_ROOTS[op.kind]
        result, errors = {}, []
        for f in op.selections:
            args = {name: (variables.get(v.name, op.variables[v.name][1])
                           if isinstance(v, graphql.Variable) else v)
                    for name, v in f.arguments.items()}
            try:
                value = getattr(self, "_gql_" + f.name)(claims, args, req)
            except self.FieldError as e:
                errors.append({"message": str(e), "path": [f.alias],
                               "extensions": {"code": e.code}})
                if fields[f.name][1].endswith("!"):
                    result = None           # a non-null field failed: no data at all
                    break
                result[f.alias] = None
                continue
            result[f.alias] = self._gql_project(value, f.selections)
        body = {"data": result}
        if errors:
            body["errors"] = errors[:self.GQL_MAX_ERRORS]
        return Response(200, body)

    @classmethod
    def _gql_project(cls, value, selections):
        if selections is None or value is None:
            return value
        if isinstance(value, list):
            return [cls._gql_project(v, selections) for v in value]
        return {s.alias: value[s.name] for s in selections}

    def _gql_binding(self, claims, binding_id):
        binding = self.binding_requests.get(binding_id) if binding_id else None
        if binding is None or binding.username.lower() != claims["sub"].lower():
            return None
        return binding

    def _gql_listBoundDevices(self, claims, args, req):
        devices = [d for d in self.devices.values()
                   if d.verified and d.username.lower() == claims["sub"].lower()]
        devices.sort(key=lambda d: d.created)
        return [{"id": d.id, "name": d.name} for d in devices]

    def _gql_getDeviceBindingRequest(self, claims, args, req):
        binding = self._gql_binding(claims, args.get("id"))
        return self.binding_view(binding) if binding is not None else None

    def _gql_createDeviceBindingRequest(self, claims, args, req):
        name = args["deviceName"]
        if not name.strip() or len(name) > 255:
            raise self.FieldError("deviceName must be a non-empty string of at most 255 "
                                  "characters", "BAD_USER_INPUT")
        binding = self._new_binding(claims, name, args.get("deviceId"), req.client_ip)
        return self.binding_view(binding)

    def _gql_updateDeviceBindingRequest(self, claims, args, req):
        # The confirming side is a device that is bound already (the Kontist app).
        if "cnf" not in claims:
            raise self.FieldError("only a bound device can answer a device binding request",
                                  "FORBIDDEN")
        binding = self._gql_binding(claims, args["id"])
        if binding is None:
            raise self.FieldError("Device binding request not found", "NOT_FOUND")
        try:
            self.set_binding_status(binding.id,
                                    "CONFIRMED" if args["isConfirmation"] else "REJECTED")
        except ApiError as e:
            raise self.FieldError(e.message, "BAD_USER_INPUT") from None
        return True

    def _gql_deleteBoundDevice(self, claims, args, req):
        device_id = args["deviceId"]
        device = self.devices.get(device_id)
        if device is None or device.username.lower() != claims["sub"].lower():
            raise self.FieldError("Device not found", "NOT_FOUND")
        del self.devices[device_id]
        self._revoke_device(device_id)
        return True

    # -- the rest -------------------------------------------------------------

    def _user(self, req):
        claims = self._bearer(req)
        return Response(200, {"email": self.users[claims["sub"].lower()].username})

    def _accounts(self, req):
        claims = self._bearer(req)
        if "cnf" not in claims:
            raise ApiError(403, "mfa_required",
                           "a confirmed token (device binding or push MFA) is required")
        return Response(200, {"accounts": [{
            "id": "4dc1d1b8-5d4f-4c5f-9f3c-2f5b1f0d9a11",
            "iban": "DE89370400440532013000",
            "bic": "COBADEFFXXX",
            "currency": "EUR",
            "balance": 123456,
            "owner": claims["sub"],
        }]})

    # -- control ----------------------------------------------------------------

    def snapshot(self):
        now = time.time()
        return {
            "devices": [{"id": d.id, "username": d.username, "name": d.name,
                         "key": d.key_hex, "verified": d.verified,
                         "created": iso_time(d.created),
                         "open_challenges": sum(1 for c in d.challenges.values()
                                                if not c.used and c.expires > now)}
                        for d in sorted(self.devices.values(), key=lambda d: d.created)],
            "refresh_tokens": [{"username": r.username, "client_id": r.client_id,
                                "scope": " ".join(r.scope), "kid": r.kid,
                                "expires": iso_time(r.expires)}
                               for r in self.refresh_tokens.values() if r.expires > now],
            "mfa_challenges": [dict(self._mfa_view(c), username=c.username,
                                    token_issued=c.token_issued)
                               for c in self.mfa_challenges.values()],
            "settings": {"challenge_lifetime": self.settings.challenge_lifetime,
                         "binding_window": self.settings.binding_window,
                         "binding_requests": self.settings.binding_requests},
            # pending ones only: what is waiting for the person's answer
            "binding_requests": [dict(self.binding_view(b), username=b.username,
                                      status=b.status)
                                 for b in sorted(self.binding_requests.values(),
                                                 key=lambda b: b.created)
                                 if b.status == "PENDING"],
        }
