"""Bounded HTTP for every call to Marathon and Mesos: a deadline, a size cap, no redirects.

A daemon that trickles its answer, streams without end, redirects a write elsewhere or answers
something that is not JSON must cost the operator one clear line, never a hang, a traceback or
unbounded memory. So every request here has an overall deadline (connect and every read inside
it), reads at most `max_bytes`, follows no redirect (the caller sees the 3xx and decides), and
parses JSON strictly (NaN and Infinity are not JSON)::

    client = Client(auth=("ops", "secret"), ca_bundle="/etc/ssl/cluster-ca.pem")
    r = client.request("GET", "http://192.0.2.1:8080/v2/leader", timeout=5)
    r.status, r.json()      # 200, {'leader': '192.0.2.1:8080'}

Errors are `HttpError` with a one-line message naming the method and URL.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field

import requests
import urllib3

CONNECT_TIMEOUT = 3.05
DEFAULT_TIMEOUT = 10.0
# Marathon's /v2/apps with embedded tasks is the largest answer the tool reads: ~1 KiB a task.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# Marathon rejects app definitions nested deeper than this (its JSON reader's limit is far
# above any real definition); deeper answers are refused before parsing them recursively.
MAX_JSON_DEPTH = 64
CHUNK = 65536


class HttpError(Exception):
    """A request that failed, timed out, was too large, or answered malformed JSON."""


class ConnectError(HttpError):
    """No connection was made, so the request was never sent: safe to send it elsewhere."""


@dataclass(frozen=True)
class Response:
    method: str
    url: str
    status: int
    headers: dict = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body as JSON, strictly: HttpError for invalid JSON, NaN, Infinity or deep nesting."""
        return parse_json(self.body, f"{self.method} {self.url}")

    def json_object(self) -> dict:
        value = self.json()
        if not isinstance(value, dict):
            raise HttpError(f"{self.method} {self.url}: expected a JSON object, got "
                            f"{type(value).__name__}")
        return value

    def json_list(self) -> list:
        value = self.json()
        if not isinstance(value, list):
            raise HttpError(f"{self.method} {self.url}: expected a JSON list, got "
                            f"{type(value).__name__}")
        return value


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_depth(value, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value, counted without recursion (stops past `limit`)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(data: bytes | str, what: str):
    """Strict JSON: HttpError naming `what` for malformed text, NaN/Infinity, or nesting deeper
    than MAX_JSON_DEPTH (Python's parser would recurse until it crashes)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    # A cheap bound before parsing: nesting needs at least one bracket a level.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _bracket_depth(text) > MAX_JSON_DEPTH:
        raise HttpError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        snippet = " ".join(text[:80].split())
        raise HttpError(f"{what}: not valid JSON ({exc}): {snippet!r}") from None


def _bracket_depth(text: str) -> int:
    """Deepest bracket nesting outside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class Client:
    """One requests.Session with the cluster's credentials and CA bundle, bounded as above."""

    def __init__(self, *, auth: tuple[str, str] | None = None, ca_bundle: str = "",
                 max_bytes: int = DEFAULT_MAX_BYTES):
        self.session = requests.Session()
        self.session.auth = auth
        # requests' default (certifi) unless the cluster's own CA is given.
        self.session.verify = ca_bundle or True
        # Never let the environment's proxies or .netrc change where credentials go.
        self.session.trust_env = False
        self.max_bytes = max_bytes

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, url: str, *, json_body=None, params=None,
                timeout: float = DEFAULT_TIMEOUT, deadline: float | None = None) -> Response:
        """Send one request and read the whole answer within `timeout` seconds (or by the
        absolute time.monotonic() `deadline`, whichever is sooner)."""
        end = time.monotonic() + timeout
        if deadline is not None:
            end = min(end, deadline)
        what = f"{method} {url}"
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise HttpError(f"{what}: no time left before the deadline")
        # Socket timeouts bound each read, not the whole exchange: a server can trickle its
        # headers a byte at a time. The exchange runs in a daemon thread the caller stops
        # waiting for at the deadline; the thread ends at its own next timeout.
        answer: queue.Queue = queue.Queue(maxsize=1)

        def exchange() -> None:
            try:
                answer.put(self._exchange(method, url, json_body, params, end, what, timeout))
            except BaseException as exc:  # handed to the waiting caller, raised there
                answer.put(exc)

        threading.Thread(target=exchange, name=f"http {what}", daemon=True).start()
        try:
            result = answer.get(timeout=max(0.0, end - time.monotonic()) + 0.5)
        except queue.Empty:
            raise HttpError(f"{what}: no complete answer within {timeout:g} s") from None
        if isinstance(result, BaseException):
            raise result
        return result

    def _exchange(self, method, url, json_body, params, end, what, timeout) -> Response:
        remaining = max(0.05, end - time.monotonic())
        try:
            r = self.session.request(method, url, json=json_body, params=params, stream=True,
                                     allow_redirects=False,
                                     timeout=(min(CONNECT_TIMEOUT, remaining), remaining))
        except requests.exceptions.SSLError as exc:
            raise HttpError(f"{what}: TLS error: {_short(exc)}") from None
        except requests.exceptions.ConnectTimeout:
            raise ConnectError(f"{what}: connection timed out") from None
        except requests.exceptions.ConnectionError as exc:
            # Also raised when the connection broke after the request went out ("Connection
            # aborted"): only a failed connect proves the server never saw the request.
            unsent = isinstance(getattr(exc.args[0] if exc.args else None, "reason", None),
                                urllib3.exceptions.NewConnectionError)
            if unsent:
                raise ConnectError(f"{what}: cannot connect: {_short(exc)}") from None
            raise HttpError(f"{what}: connection broken: {_short(exc)}") from None
        except requests.exceptions.Timeout:
            raise HttpError(f"{what}: no answer within {timeout:g} s") from None
        except requests.RequestException as exc:
            raise HttpError(f"{what}: {_short(exc)}") from None
        with r:
            body = self._read(r, end, what, timeout)
            return Response(method, url, r.status_code, dict(r.headers), body)

    def _read(self, r: requests.Response, end: float, what: str, timeout: float) -> bytes:
        declared = r.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise HttpError(f"{what}: answer of {int(declared)} bytes is larger than the "
                            f"{self.max_bytes}-byte limit")
        chunks, size = [], 0
        try:
            while True:
                # read1 returns what has arrived, so a trickling server cannot hold one read
                # past the deadline for longer than the socket timeout.
                chunk = r.raw.read1(CHUNK) if hasattr(r.raw, "read1") else r.raw.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise HttpError(f"{what}: answer larger than the {self.max_bytes}-byte limit")
                chunks.append(chunk)
                if time.monotonic() > end:
                    raise HttpError(f"{what}: answer not complete within {timeout:g} s "
                                    f"({size} bytes so far)")
        except HttpError:
            raise
        except Exception as exc:  # urllib3 raises its own types (ReadTimeout, ProtocolError...)
            raise HttpError(f"{what}: reading the answer failed: {_short(exc)}") from None
        return b"".join(chunks)


def _short(exc: Exception) -> str:
    """The innermost reason of a requests/urllib3 error, on one line."""
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    # urllib3 nests reprs: "...: [Errno 111] Connection refused'))" loses its closing marks.
    return " ".join(text.split()).rstrip("'\")")[:300]
