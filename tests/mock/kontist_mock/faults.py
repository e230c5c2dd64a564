"""Fault specifications: what can go wrong, where, and how often.

A spec is a JSON object::

    {"endpoint": "token", "kind": "status", "status": 503, "retry_after": 5, "count": 1}

``endpoint`` is one of ENDPOINTS or "*" (every API endpoint; never the
control endpoint).  ``operation`` (graphql only) narrows it to requests
whose first top-level field has that name, e.g. "getDeviceBindingRequest".
``count`` limits the fault to the next N matching requests; without it the
fault stays until cleared.  Kind-specific keys:

==================  =========================================================
delay               ``seconds`` (default 1): wait, then answer normally
hang                ``seconds`` (optional): never answer; close after seconds
close               send headers and part of the body, then close
status              ``status`` (default 503), ``retry_after``, ``body``
message_body        ``status`` (default 503), ``retry_after``, ``message``:
                    a JSON body {"message": ...} and nothing else
html_body           ``status`` (default 503), ``retry_after``: an HTML page
empty_body          ``status`` (default 503), ``retry_after``: no body at all
malformed_json      200 with a truncated JSON body
wrong_content_type  the real JSON body labelled text/html
huge_body           the real JSON padded to exactly 10 MiB
drip                the response one byte every ``interval`` s (default 0.1)
expire_tokens       access tokens issued with exp in the past, expires_in 0
retry_after         ``seconds``: the real answer, with ``Retry-After: seconds``
==================  =========================================================

Per request at most one fault of each class applies, the earliest added:
a delay, an expire_tokens (only on endpoints that issue access tokens), a
retry_after, and one of the other kinds, which decides how the response is
delivered.
"""

import threading

ENDPOINTS = ("token", "devices_create", "device_verify", "challenge_create",
             "challenge_verify", "mfa_create", "mfa_get", "mfa_token",
             "graphql", "user", "accounts")
TOKEN_ENDPOINTS = frozenset(("token", "challenge_verify", "mfa_token"))
KINDS = ("delay", "hang", "close", "status", "message_body", "html_body", "empty_body",
         "malformed_json", "wrong_content_type", "huge_body", "drip", "expire_tokens",
         "retry_after")
# Kinds that answer in place of the endpoint, which then does nothing.
STATUS_KINDS = ("status", "message_body", "html_body", "empty_body")

_EXTRA_KEYS = {
    "delay": ("seconds",),
    "hang": ("seconds",),
    "status": ("status", "retry_after", "body"),
    "message_body": ("status", "retry_after", "message"),
    "html_body": ("status", "retry_after"),
    "empty_body": ("status", "retry_after"),
    "drip": ("interval",),
    "retry_after": ("seconds",),
}


class FaultError(ValueError):
    pass


def _number(spec, key, default, minimum, maximum):
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultError(f"{key} must be a number")
    if not minimum <= value <= maximum:
        raise FaultError(f"{key} must be between {minimum} and {maximum}")
    return value


def parse(spec):
    """Validate a decoded spec and return a normalised copy (FaultError if bad)."""
    if not isinstance(spec, dict):
        raise FaultError("a fault spec must be a JSON object")
    endpoint, kind = spec.get("endpoint"), spec.get("kind")
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise FaultError(f"unknown endpoint {endpoint!r}; one of: *, {', '.join(ENDPOINTS)}")
    if kind not in KINDS:
        raise FaultError(f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")
    allowed = {"endpoint", "kind", "count", "operation"} | set(_EXTRA_KEYS.get(kind, ()))
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise FaultError(f"unknown keys for kind {kind}: {', '.join(unknown)}")
    fault = {"endpoint": endpoint, "kind": kind}
    if "operation" in spec:
        operation = spec["operation"]
        if endpoint != "graphql":
            raise FaultError("operation is only for the graphql endpoint")
        if not isinstance(operation, str) or not operation:
            raise FaultError("operation must be the name of a GraphQL field")
        fault["operation"] = operation
    count = spec.get("count")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FaultError("count must be a positive integer")
        fault["count"] = count
    if kind == "delay":
        fault["seconds"] = _number(spec, "seconds", 1, 0, 3600)
    elif kind == "hang":
        seconds = _number(spec, "seconds", None, 0, 86400)
        if seconds is not None:
            fault["seconds"] = seconds
    elif kind == "drip":
        fault["interval"] = _number(spec, "interval", 0.1, 0.001, 60)
    elif kind == "retry_after":
        seconds = spec.get("seconds", 1)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= 86400:
            raise FaultError("seconds must be an integer from 0 to 86400")
        fault["seconds"] = seconds
    elif kind in STATUS_KINDS:
        status = spec.get("status", 503)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultError("status must be an integer HTTP status code")
        fault["status"] = status
        if kind == "message_body":
            message = spec.get("message", "injected by kontist-mock")
            if not isinstance(message, str):
                raise FaultError("message must be a string")
            fault["message"] = message
        if "retry_after" in spec:
            retry = spec["retry_after"]
            if isinstance(retry, bool) or not isinstance(retry, (int, str)):
                raise FaultError("retry_after must be an integer or a string")
            if isinstance(retry, str) and any(c in retry for c in "\r\n"):
                raise FaultError("retry_after must not contain line breaks")
            fault["retry_after"] = retry
        if "body" in spec:
            fault["body"] = spec["body"]
    return fault


class Faults:
    """The active faults, shared by all connection threads."""

    def __init__(self, specs=()):
        self._lock = threading.Lock()
        self._faults = [parse(s) for s in specs]

    def add(self, spec):
        fault = parse(spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self):
        with self._lock:
            self._faults.clear()

    def snapshot(self):
        with self._lock:
            return [dict(f) for f in self._faults]

    def _consume(self, fault):
        if "count" in fault:
            fault["count"] -= 1
            if fault["count"] == 0:
                self._faults.remove(fault)

    def take(self, endpoint, operation=None):
        """Return (delay, expire_tokens, retry_after, main) for one request to *endpoint*
        (for graphql, *operation* is the first top-level field of its query, or None).

        delay: seconds or None; expire_tokens: bool; retry_after: seconds or None;
        main: spec dict or None.  Counts are decremented for the faults returned.
        """
        delay, expire, retry_after, main = None, False, None, None
        with self._lock:
            for fault in list(self._faults):
                if fault["endpoint"] not in ("*", endpoint):
                    continue
                if "operation" in fault and fault["operation"] != operation:
                    continue
                kind = fault["kind"]
                if kind == "delay":
                    if delay is not None:
                        continue
                    delay = fault["seconds"]
                elif kind == "retry_after":
                    if retry_after is not None:
                        continue
                    retry_after = fault["seconds"]
                elif kind == "expire_tokens":
                    if expire or endpoint not in TOKEN_ENDPOINTS:
                        continue
                    expire = True
                else:
                    if main is not None:
                        continue
                    main = dict(fault)
                self._consume(fault)
        return delay, expire, retry_after, main
