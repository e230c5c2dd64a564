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

from . import jwt
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


@dataclass
class Settings:
    token_lifetime: float = 3599
    refresh_lifetime: float = 30 * 86400
    challenge_lifetime: float = 300
    rotate_refresh: bool = False


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
        self.devices = {}
        self.refresh_tokens = {}
        self.mfa_challenges = {}
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
        value = secrets.token_urlsafe(32)
        if expires is None:
            expires = time.time() + self.settings.refresh_lifetime
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
        otp = f"{secrets.randbelow(10**6):06d}"
        device = Device(str(uuid.uuid4()), claims["sub"], name, key.lower(), public_key,
                        time.time(), verification=self._new_challenge(otp))
        self.devices[device.id] = device
        user = self.users[claims["sub"].lower()]
        self.sms_sink({"username": user.username, "phone": user.phone,
                       "device_id": device.id, "challenge_id": device.verification.id,
                       "otp": otp})
        return Response(201, {"deviceId": device.id, "challengeId": device.verification.id})

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

    _DELETE = re.compile(r'deleteBoundDevice\s*\(\s*deviceId\s*:\s*'
                         r'(?:"((?:[^"\\]|\\.)*)"|\$(\w+))\s*\)')
    _LIST = re.compile(r"listBoundDevices\s*\{([^{}]*)\}")
    _DEVICE_FIELDS = {"id": lambda d: d.id, "name": lambda d: d.name,
                      "createdAt": lambda d: iso_time(d.created)}

    @staticmethod
    def _graphql_error(message, status=400):
        return Response(status, {"errors": [{"message": message}]})

    def _graphql(self, req):
        claims = self._bearer(req)
        data = self._json(req)
        query, variables = data.get("query"), data.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return self._graphql_error("query must be a string, variables an object")
        if re.match(r"\s*mutation\b", query):
            match = self._DELETE.search(query)
            if not match:
                return self._graphql_error("unsupported mutation")
            if match.group(1) is not None:
                try:
                    device_id = json.loads(f'"{match.group(1)}"')
                except ValueError:
                    return self._graphql_error("bad string literal")
            else:
                device_id = variables.get(match.group(2))
            if not isinstance(device_id, str):
                return self._graphql_error("deviceId must be a string")
            device = self.devices.get(device_id)
            if device is None or device.username.lower() != claims["sub"].lower():
                return Response(200, {"data": None,
                                      "errors": [{"message": "Device not found",
                                                  "path": ["deleteBoundDevice"]}]})
            del self.devices[device_id]
            self._revoke_device(device_id)
            return Response(200, {"data": {"deleteBoundDevice": True}})
        match = self._LIST.search(query)
        if not match:
            return self._graphql_error("unsupported query")
        fields = match.group(1).split()
        unknown = [f for f in fields if f not in self._DEVICE_FIELDS]
        if not fields or unknown:
            return self._graphql_error(f"unknown fields: {' '.join(unknown) or '(none)'}")
        devices = [d for d in self.devices.values()
                   if d.verified and d.username.lower() == claims["sub"].lower()]
        devices.sort(key=lambda d: d.created)
        listed = [{f: self._DEVICE_FIELDS[f](d) for f in fields} for d in devices]
        return Response(200, {"data": {"listBoundDevices": listed}})

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
        }
