"""HS256 JSON Web Tokens, just enough for the mock's access tokens."""

import base64
import hashlib
import hmac
import json
import re
import secrets
import time

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(Exception):
    """The token is malformed, forged or expired; str() says which."""


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_segment(obj):
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


class Signer:
    """Signs and checks tokens with a key that lives as long as the process."""

    header = {"alg": "HS256", "typ": "JWT"}

    def __init__(self, key=None):
        self._key = key or secrets.token_bytes(32)

    def _mac(self, signing_input):
        return hmac.new(self._key, signing_input, hashlib.sha256).digest()

    def encode(self, claims):
        signing_input = f"{_json_segment(self.header)}.{_json_segment(claims)}"
        mac = self._mac(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url_encode(mac)}"

    def decode(self, token, now=None):
        """Return the claims of a valid, unexpired token or raise TokenError."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            mac = b64url_decode(parts[2])
        except ValueError:
            raise TokenError("malformed token") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise TokenError("unsupported token algorithm")
        expected = self._mac(f"{parts[0]}.{parts[1]}".encode("ascii"))
        if not hmac.compare_digest(mac, expected):
            raise TokenError("bad token signature")
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
            raise TokenError("malformed token claims")
        if (time.time() if now is None else now) >= claims["exp"]:
            raise TokenError("token expired")
        return claims
