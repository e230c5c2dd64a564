"""Command line of kontist-mock (see tests/mock/README.md)."""

import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading

from . import faults, tlsfiles, users
from .api import BINDING_MODES, Api, Settings
from .server import App, MockServer


def _fault_arg(text):
    try:
        return faults.parse(json.loads(text))
    except ValueError as e:         # also FaultError
        raise argparse.ArgumentTypeError(f"bad fault spec {text!r}: {e}") from None


def _seconds(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:0 or [::1]:0")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="kontist-mock",
        description="HTTPS mock of the Kontist API for the kontist-auth tests.")
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="address to listen on; port 0 picks a free one (default 127.0.0.1:0)")
    p.add_argument("--state-dir", required=True, metavar="DIR",
                   help="where sms.jsonl, requests.jsonl (and by default tls/) go")
    p.add_argument("--users", metavar="FILE",
                   help="users and clients JSON (default: demo-users.json)")
    p.add_argument("--token-lifetime", type=_seconds, default=3599, metavar="SECONDS")
    p.add_argument("--refresh-lifetime", type=_seconds, default=30 * 86400, metavar="SECONDS")
    p.add_argument("--challenge-lifetime", type=_seconds, default=180, metavar="SECONDS",
                   help="lifetime of OTPs, device challenges and push MFA challenges "
                        "(default 180)")
    p.add_argument("--binding-requests", choices=BINDING_MODES, default="required",
                   help="required: a device is only created after a device binding request "
                        "was confirmed (the default, as the bank does); auto: every new "
                        "binding request is confirmed at once (demos); off: no binding "
                        "request needed (the API before December 2023)")
    p.add_argument("--binding-window", type=_seconds, default=180, metavar="SECONDS",
                   help="time after a binding request's confirmation to create and verify "
                        "the device (default 180)")
    p.add_argument("--rotate-refresh", action="store_true",
                   help="answer every refresh with a new refresh token, retiring the old one")
    p.add_argument("--fault", type=_fault_arg, action="append", default=[], metavar="SPEC",
                   help="JSON fault spec, repeatable")
    p.add_argument("--cert-fault", choices=("wrong-host", "untrusted"))
    p.add_argument("--tls-dir", metavar="DIR",
                   help="reuse (or create) the TLS files here (default STATE_DIR/tls)")
    p.add_argument("--rate-limit", type=int, default=0, metavar="N",
                   help="answer 429 beyond N API requests a minute (default: no limit)")
    p.add_argument("--date-skew", type=float, default=0.0, metavar="SECONDS",
                   help="add SECONDS (negative: subtract) to the Date header of every answer, "
                        "as a server with a wrong clock would send it")
    p.add_argument("--watch-stdin", action="store_true",
                   help="also stop when standard input reaches end of file")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log connections and requests on stderr")
    return p.parse_args(argv)


def _ssl_context(cert):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert.cert_file, cert.key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _watch_stdin(stop):
    # the raw descriptor: a daemon thread blocked inside sys.stdin's buffer would
    # hold its lock and turn interpreter shutdown into a fatal error
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop.set()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    try:
        known_users, clients = users.load(args.users)
    except users.UsersFileError as e:
        sys.exit(f"kontist-mock: {e}")
    tls = tlsfiles.ensure(args.tls_dir or os.path.join(state_dir, "tls"))

    settings = Settings(args.token_lifetime, args.refresh_lifetime,
                        args.challenge_lifetime, args.rotate_refresh,
                        args.binding_requests, args.binding_window)
    app = App(None, faults.Faults(args.fault), state_dir, args.rate_limit, args.verbose)
    app.date_skew = args.date_skew
    app.api = Api(known_users, clients, settings, app.send_sms)

    host, port = args.listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        server = MockServer((host, port), family, app, _ssl_context(tls.for_fault(args.cert_fault)))
    except OSError as e:
        sys.exit(f"kontist-mock: cannot listen on {host}:{port}: {e}")

    stop = app.stopping
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.watch_stdin:
        threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                               daemon=True)
    serving.start()

    bound_host, bound_port = server.server_address[:2]
    if bound_host in ("0.0.0.0", "::"):      # listening everywhere: loopback reaches it
        bound_host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    authority = f"[{bound_host}]:{bound_port}" if family == socket.AF_INET6 \
        else f"{bound_host}:{bound_port}"
    url = f"https://{authority}"
    print(json.dumps({"url": url, "ca_file": tls.ca_file, "state_dir": state_dir,
                      "control_url": url + "/__control"}), flush=True)

    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    app.close()
    return 0
