"""Plumbing shared by the stand-in daemons (test equipment): HTTP serving, JSON calls, logging,
SIGTERM.

Each daemon gives `serve()` one function `handle(req) -> Response`; the threaded stdlib server is
plenty for a testbed. Logging goes to stderr (journald under systemd) and, when the real daemon
honours --log_dir, also to `<log_dir>/<prog>.INFO` as glog's symlink name would.
"""
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = (
            method, path, query, headers, body)

    def json(self):
        return json.loads(self.body.decode() or "null")


class Response:
    def __init__(self, status=200, body=b"", headers=None, content_type="application/json"):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = dict(headers or {})
        if self.body and content_type:
            self.headers.setdefault("Content-Type", content_type)


def serve(ip, port, handle, name):
    """Serve `handle` on ip:port in a daemon thread; returns the server (call .shutdown())."""

    class Handler(BaseHTTPRequestHandler):
        server_version = name
        protocol_version = "HTTP/1.1"

        def _any(self):
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Request(self.command, url.path, urllib.parse.parse_qs(url.query),
                          self.headers, body)
            try:
                resp = handle(req)
            except Exception as e:  # a bug in a stand-in must show, not kill the server
                logging.exception("error handling %s %s", self.command, self.path)
                resp = Response(500, {"message": str(e)})
            self.send_response(resp.status)
            for key, value in resp.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

        def log_message(self, fmt, *args):
            logging.debug("http %s " + fmt, self.address_string(), *args)

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

        def handle_error(self, request, client_address):
            # A client that gave up (its timeout, while a standby held the request) is
            # normal; anything else is a bug worth its traceback.
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    server = Server((ip, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"{name}-http").start()
    return server


def call(method, url, payload=None, timeout=5.0, headers=None):
    """JSON HTTP call between stand-ins -> (status, decoded body or text, headers). No redirects."""
    headers = dict(headers or {})
    data = None
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    status, raw, rheaders = raw_call(method, url, data, headers, timeout)
    return status, _decode(raw), rheaders


def raw_call(method, url, data=None, headers=None, timeout=5.0):
    """HTTP call with a bytes body -> (status, bytes, headers), without following redirects."""
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _decode(raw):
    try:
        return json.loads(raw.decode())
    except ValueError:
        return raw.decode(errors="replace")


def setup_logging(prog, log_dir=None, verbose=False):
    fmt = logging.Formatter(f"%(asctime)s {prog}[%(process)d] %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_dir:
        try:
            os.makedirs(log_dir, exist_ok=True)
            handlers.append(logging.FileHandler(os.path.join(log_dir, f"{prog}.INFO")))
        except OSError as e:
            print(f"Could not open log file in {log_dir}: {e}", file=sys.stderr)
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    logging.getLogger("kazoo").setLevel(logging.WARNING)


def wait_for_sigterm(stop=None):
    """Block until SIGTERM or SIGINT (or until `stop`, an Event, is set: a daemon's own
    reason to end); returns so the caller can shut down cleanly."""
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        pass


def version(package, default):
    """The version build_repo wrote into `_versions.json` of the installed copy, else `default`."""
    try:
        with open(os.path.join(os.path.dirname(__file__), "_versions.json")) as f:
            return json.load(f).get(package, default)
    except (OSError, ValueError):
        return default


def resources_text(resources):
    """{'cpus': 2.0, 'mem': 1024.0, 'ports': '[31000-32000]'} -> 'cpus:2;mem:1024;ports:[...]'."""
    return ";".join(f"{k}:{v:g}" if isinstance(v, float) else f"{k}:{v}"
                    for k, v in resources.items())


def parse_resources(text):
    """Mesos' `--resources` text 'cpus:2;mem:1024;ports:[31000-32000]' -> dict (floats, ports str).

    Role suffixes such as `cpus(*):2` are accepted and dropped.
    """
    out = {}
    for item in filter(None, (text or "").split(";")):
        name, sep, value = item.partition(":")
        if not sep:
            raise ValueError(f"Bad value for resources, missing ':' within {item}")
        name = name.split("(")[0].strip()
        out[name] = value.strip() if value.strip().startswith("[") else float(value)
    return out


def parse_ranges(text):
    """'[31000-31005, 31010-31010]' -> [(31000, 31005), (31010, 31010)]."""
    ranges = []
    for part in filter(None, text.strip().strip("[]").split(",")):
        lo, _, hi = part.strip().partition("-")
        ranges.append((int(lo), int(hi or lo)))
    return ranges


def ranges_text(ports):
    """Set of ports -> Mesos' range text '[31000-31001, 31005-31005]'."""
    ranges, ports = [], sorted(ports)
    for p in ports:
        if ranges and ranges[-1][1] == p - 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    return "[" + ", ".join(f"{lo}-{hi}" for lo, hi in ranges) + "]"
