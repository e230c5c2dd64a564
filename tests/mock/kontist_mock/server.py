"""HTTPS transport of the mock: connections, request log, faults, control.

One thread per TCP connection (daemon threads, so a hanging or dripping
connection never holds up shutdown).  The TLS handshake runs in that thread
too, so a client that connects and never speaks cannot stall the others.
"""

import collections
import ipaddress
import itertools
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import parse_qsl, unquote

from . import graphql
from .api import ApiError, OAUTH_FORM, Request, Response, iso_time, media_type
from .faults import STATUS_KINDS, FaultError

HANDSHAKE_TIMEOUT = 10
IDLE_TIMEOUT = 120
MAX_REQUEST_BODY = 1 << 20
DRAIN_LIMIT = 16 << 20
HUGE_BODY_SIZE = 10 * 1024 * 1024
_AUTH_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,19}")


class App:
    """What all connection threads share: the API, faults, logs, counters."""

    def __init__(self, api, faults, state_dir, rate_limit=0, verbose=False):
        self.api, self.faults = api, faults
        self.state_dir = state_dir
        self.rate_limit = rate_limit
        self.verbose = verbose
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._conn_ids = itertools.count(1)
        self._recent = collections.deque()
        self.counts = collections.Counter()
        self.date_skew = 0.0  # seconds added to the Date header (--date-skew)
        self.connections = 0
        self._requests_log = open(os.path.join(state_dir, "requests.jsonl"), "a",
                                  encoding="utf-8")
        self._sms_log = open(os.path.join(state_dir, "sms.jsonl"), "a", encoding="utf-8")

    def debug(self, message):
        if self.verbose:
            sys.stderr.write(f"kontist-mock: {message}\n")
            sys.stderr.flush()

    def next_conn(self):
        with self._lock:
            self.connections += 1
            return next(self._conn_ids)

    def _append(self, f, entry):
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            f.write(line)
            f.flush()

    def log_request(self, entry):
        self._append(self._requests_log, entry)

    def send_sms(self, message):
        self._append(self._sms_log, dict({"time": iso_time(time.time())}, **message))

    def count(self, endpoint):
        with self._lock:
            self.counts[endpoint or "unknown"] += 1

    def rate_limited(self):
        """Seconds to wait when over --rate-limit requests a minute, else 0."""
        if not self.rate_limit:
            return 0
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0] <= now - 60:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return max(1, int(self._recent[0] + 60 - now + 0.999))
            self._recent.append(now)
            return 0

    def state(self):
        with self.api.lock:
            state = self.api.snapshot()
        with self._lock:
            state["counts"] = dict(self.counts)
            state["connections"] = self.connections
        state["faults"] = self.faults.snapshot()
        return state

    def close(self):
        self._requests_log.close()
        self._sms_log.close()


def masked_headers(message):
    """Request headers for the log: lower-case names, credentials replaced."""
    out = {}
    for name, value in message.items():
        name = name.lower()
        if name in ("authorization", "proxy-authorization"):
            scheme, sep, _ = value.strip().partition(" ")
            value = f"{scheme} ***" if sep and _AUTH_SCHEME.fullmatch(scheme) else "***"
        elif name in ("cookie", "x-api-key"):
            value = "***"
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _form_pairs(body):
    try:
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                         max_num_fields=256)
    except ValueError:
        return []


def body_keys(message, body):
    """Names (never values) of the fields in a form or JSON object body."""
    kind = media_type(message.get("Content-Type"))
    if kind == OAUTH_FORM:
        return [k for k, _ in _form_pairs(body)]
    if kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(body.decode("utf-8"))
        except ValueError:
            return []
        return list(data) if isinstance(data, dict) else []
    return []


def graphql_operation(message, body):
    """The first top-level field of a GraphQL request's query, or None."""
    if media_type(message.get("Content-Type")) != "application/json":
        return None
    try:
        data = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    query = data.get("query") if isinstance(data, dict) else None
    return graphql.first_field(query) if isinstance(query, str) else None


def is_loopback(host):
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class _BodyError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kontist-mock"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def __init__(self, request, client_address, server, conn_id):
        self.conn_id = conn_id
        self.app = server.app
        super().__init__(request, client_address, server)

    def log_message(self, format, *args):
        self.app.debug(f"conn {self.conn_id} {self.client_address[0]}: {format % args}")

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def send_error(self, code, message=None, explain=None):
        """Protocol errors found by http.server (bad request line, ...) as JSON."""
        self.log_error("%d %s", code, message)
        self.close_connection = True
        self._write(self._encode(Response(code, {"error": "bad_request",
                                                 "message": message or "bad request"})))

    # -- reading ----------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding"):
            if self.headers["Transfer-Encoding"].strip().lower() != "chunked":
                raise _BodyError(501, "unsupported Transfer-Encoding")
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise _BodyError(400, "bad Content-Length")
        length = int(length)
        if length > MAX_REQUEST_BODY:
            # read it anyway (up to a point) so the client sees the 413, not a reset
            while 0 < length <= DRAIN_LIMIT:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)
            raise _BodyError(413, "request body too large")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BodyError(400, "request body ended early")
        return body

    def _read_chunked(self):
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, "bad chunk header") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > MAX_REQUEST_BODY:
                raise _BodyError(413, "request body too large")
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise _BodyError(400, "request body ended early")
            body += chunk
            self.rfile.readline(1024)

    # -- writing ----------------------------------------------------------

    def _encode(self, response, content_type="application/json"):
        """(status, header lines, body bytes) for a Response."""
        payload = b"" if response.body is None else \
            json.dumps(response.body, separators=(",", ":")).encode("utf-8")
        headers = [("Cache-Control", "no-store")]
        if response.status not in (204, 304) and response.status >= 200:
            if payload:
                headers.append(("Content-Type", content_type))
            headers.append(("Content-Length", str(len(payload))))
        else:
            payload = b""
        headers += response.headers
        return response.status, headers, payload

    def _head(self, status, headers, announce_close=None):
        """The status line and headers; announce_close overrides close_connection."""
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        lines = [f"HTTP/1.1 {status} {reason}",
                 f"Server: {self.server_version}",
                 f"Date: {self.date_time_string(time.time() + self.app.date_skew)}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if announce_close is None:
            announce_close = self.close_connection
        if announce_close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, encoded):
        status, headers, payload = encoded
        self.wfile.write(self._head(status, headers) + payload)

    # -- API requests -------------------------------------------------------

    def _dispatch(self):
        started = time.time()
        path = self.path.split("?", 1)[0]
        try:
            body = self._read_body()
        except _BodyError as e:
            self.close_connection = True
            body = None
            body_error = e
        else:
            body_error = None
        if path == "/__control" or path.startswith("/__control/"):
            if body_error:
                return self._write(self._encode(Response(body_error.status, {
                    "error": "bad_request", "message": str(body_error)})))
            return self._control(path, body)

        endpoint, handler, params = self.app.api.route(self.command, path)
        entry = {"time": iso_time(started), "conn": self.conn_id, "method": self.command,
                 "path": path, "status": None, "endpoint": endpoint, "faults": [],
                 "headers": masked_headers(self.headers),
                 "body_keys": body_keys(self.headers, body or b"")}
        operation = None
        if endpoint == "token":
            entry["grant_type"] = dict(_form_pairs(body or b"")).get("grant_type")
        elif endpoint == "graphql":
            operation = graphql_operation(self.headers, body or b"")
            entry["operation"] = operation
        self.app.count(endpoint)

        if body_error:
            return self._respond(entry, Response(body_error.status, {
                "error": "bad_request", "message": str(body_error)}))
        if handler is None:
            return self._respond(entry, Response(404, {"error": "not_found",
                                                       "message": f"no endpoint {path}"}))

        delay, expire_tokens, retry_after, fault = self.app.faults.take(endpoint, operation)
        if delay is not None:
            entry["faults"].append("delay")
            if self.app.stopping.wait(delay):
                self.close_connection = True
                return
        if expire_tokens:
            entry["faults"].append("expire_tokens")
        if retry_after is not None:
            entry["faults"].append("retry_after")
        kind = fault["kind"] if fault else None
        if kind:
            entry["faults"].append(kind)

        if kind == "hang":
            self.app.log_request(entry)
            self.app.stopping.wait(fault.get("seconds"))
            self.close_connection = True
            return
        if kind in STATUS_KINDS:
            return self._respond(entry, self._status_fault(fault), fault)
        retry = self.app.rate_limited()
        if retry:
            return self._respond(entry, Response(429, {
                "error": "rate_limited", "message": "too many requests"},
                [("Retry-After", str(retry))]))

        request = Request(self.command, path, params, self.headers, body, expire_tokens,
                          self.client_address[0])
        with self.app.api.lock:
            try:
                response = handler(request)
            except ApiError as e:
                response = e.response()
            except Exception:               # a bug in the mock: say so, loudly
                sys.stderr.write("kontist-mock: internal error\n")
                traceback.print_exc()
                response = Response(500, {"error": "internal_error",
                                          "message": "kontist-mock failed; see its stderr"})
        if retry_after is not None:
            response.headers = [(k, v) for k, v in response.headers if k != "Retry-After"]
            response.headers.append(("Retry-After", str(retry_after)))
        self._respond(entry, response, fault)

    HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>{status} {phrase}</title></head>"
                 "<body><h1>{status} {phrase}</h1><p>kontist-mock</p></body></html>\n")

    @staticmethod
    def _status_fault(fault):
        status = fault["status"]
        if fault["kind"] == "message_body":
            body = {"message": fault["message"]}
        elif fault["kind"] in ("html_body", "empty_body"):
            body = None
        elif "body" in fault:
            body = fault["body"]
        else:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = f"status {status}"
            body = {"error": re.sub(r"\W+", "_", phrase.lower()).strip("_"),
                    "message": "injected by kontist-mock"}
        headers = []
        if "retry_after" in fault:
            headers.append(("Retry-After", str(fault["retry_after"])))
        return Response(status, body, headers)

    def _respond(self, entry, response, fault=None):
        kind = fault["kind"] if fault else None
        content_type = "application/json"
        if kind == "huge_body":
            response = self._huge(response)
        elif kind == "wrong_content_type":
            content_type = "text/html; charset=utf-8"
        status, headers, payload = self._encode(response, content_type)
        if kind == "html_body" and status >= 200 and status not in (204, 304):
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Status"
            payload = self.HTML_PAGE.format(status=status, phrase=phrase).encode()
            headers = [(k, v) for k, v in headers if k not in ("Content-Type", "Content-Length")]
            headers += [("Content-Type", "text/html; charset=utf-8"),
                        ("Content-Length", str(len(payload)))]
        if kind == "malformed_json":
            status = 200
            payload = (payload or b'{"ok":true}')
            payload = payload[:len(payload) // 2] + b'",,'
            headers = [(k, v) for k, v in headers if k not in ("Content-Type", "Content-Length")]
            headers += [("Content-Type", "application/json"),
                        ("Content-Length", str(len(payload)))]
        elif kind == "close" and not payload:
            status = 200
            payload = b'{"error":"connection_closed","message":"this body is cut short"}'
            headers += [("Content-Type", "application/json"),
                        ("Content-Length", str(len(payload)))]
        entry["status"] = status
        self.app.log_request(entry)

        if kind == "close":
            self.close_connection = True
            head = self._head(status, headers, announce_close=False)
            self.wfile.write(head + payload[:len(payload) // 2])
        elif kind == "drip":
            self._drip(self._head(status, headers) + payload, fault["interval"])
        else:
            self._write((status, headers, payload))

    @staticmethod
    def _huge(response):
        """The real answer padded with a filler field to exactly HUGE_BODY_SIZE bytes."""
        base = dict(response.body) if isinstance(response.body, dict) else {}
        base["padding"] = ""
        size = len(json.dumps(base, separators=(",", ":")).encode())
        base["padding"] = "x" * (HUGE_BODY_SIZE - size)
        return Response(200 if response.status == 204 else response.status, base,
                        response.headers)

    def _drip(self, data, interval):
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            if i + 1 < len(data) and self.app.stopping.wait(interval):
                self.close_connection = True
                return

    # -- control endpoint -----------------------------------------------------

    def _control(self, path, body):
        self.app.debug(f"control {self.command} {path}")
        if not is_loopback(self.client_address[0]):
            return self._write(self._encode(Response(403, {
                "error": "forbidden", "message": "control endpoint is loopback only"})))
        try:
            response = self._control_route(path, body)
        except ApiError as e:
            response = e.response()
        except FaultError as e:
            response = Response(400, {"error": "invalid_fault", "message": str(e)})
        self._write(self._encode(response))

    @staticmethod
    def _control_json(body):
        try:
            return json.loads(body.decode("utf-8")) if body.strip() else None
        except ValueError:
            raise ApiError(400, "invalid_json", "body is not valid JSON") from None

    def _control_route(self, path, body):
        method = self.command
        if path == "/__control/state" and method == "GET":
            return Response(200, self.app.state())
        if path == "/__control/faults":
            if method == "GET":
                return Response(200, {"faults": self.app.faults.snapshot()})
            if method == "DELETE":
                self.app.faults.clear()
                return Response(200, {"faults": []})
            if method == "POST":
                spec = self._control_json(body)
                specs = spec if isinstance(spec, list) else [spec]
                for s in specs:
                    self.app.faults.add(s)
                return Response(201, {"faults": self.app.faults.snapshot()})
        match = re.fullmatch(r"/__control/mfa/([^/]+)", path)
        if match and method == "POST":
            data = self._control_json(body)
            status = data.get("status") if isinstance(data, dict) else None
            with self.app.api.lock:
                return Response(200, self.app.api.set_mfa_status(unquote(match.group(1)),
                                                                 status))
        if path == "/__control/binding-mode" and method == "POST":
            data = self._control_json(body)
            mode = data.get("mode") if isinstance(data, dict) else None
            with self.app.api.lock:
                return Response(200, self.app.api.set_binding_mode(mode))
        match = re.fullmatch(r"/__control/binding-requests/([^/]+)", path)
        if match and method == "POST":
            data = self._control_json(body)
            status = data.get("status") if isinstance(data, dict) else None
            with self.app.api.lock:
                return Response(200, self.app.api.set_binding_status(
                    unquote(match.group(1)), status))
        raise ApiError(404, "not_found", f"no control endpoint {method} {path}")


class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False      # never wait for hanging connections on close
    allow_reuse_address = True

    def __init__(self, address, family, app, ssl_context):
        self.address_family = family
        self.app = app
        self.ssl_context = ssl_context
        super().__init__(address, None)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name, which may stall without DNS
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, sock, client_address):
        conn_id = self.app.next_conn()
        try:
            # small writes (session tickets, then the answer; dripped bytes) must not
            # wait for delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(HANDSHAKE_TIMEOUT)
            tls = self.ssl_context.wrap_socket(sock, server_side=True)
        except OSError as e:
            self.app.debug(f"conn {conn_id}: TLS handshake failed: {e}")
            return
        try:
            Handler(tls, client_address, self, conn_id)
        except OSError as e:
            self.app.debug(f"conn {conn_id}: {e}")
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.app.stopping.is_set():
            return
        sys.stderr.write("kontist-mock: internal error\n")
        super().handle_error(request, client_address)
