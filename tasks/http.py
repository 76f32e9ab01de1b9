"""Bounded HTTP for every call to Marathon and Mesos: a deadline, a size cap, no redirects.

A daemon that trickles its answer, streams without end, redirects a write elsewhere or answers
something that is not JSON must cost the operator one clear line, never a hang, a traceback or
unbounded memory. So every request here has an overall deadline (connect and every read inside
it; at the deadline the connection is cut off), reads at most `max_bytes`, follows no redirect
(the caller sees the 3xx and decides), and parses JSON strictly (UTF-8; no NaN, Infinity,
1e999 or integers past 64 bits)::

    client = Client(auth=("ops", "secret"), ca_bundle="/etc/ssl/cluster-ca.pem")
    r = client.request("GET", "http://192.0.2.1:8080/v2/leader", timeout=5)
    r.status, r.json()      # 200, {'leader': '192.0.2.1:8080'}

Errors are `HttpError` with a one-line message naming the method, the URL and the plain reason
(`reason`); `client.redact(text)` takes the credentials out of any text built from an answer.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import math
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests
    from requests.structures import CaseInsensitiveDict

# requests and urllib3 are imported by the first Client, not with this module: every `fab`
# imports it, and most runs (a re-run that changes nothing, `fab --list`) make no HTTP call;
# the two cost a sixth of fab's start.

CONNECT_TIMEOUT = 3.05
DEFAULT_TIMEOUT = 10.0
# Marathon's /v2/apps with embedded tasks is the largest answer the tool reads: ~1 KiB a task.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# Marathon rejects app definitions nested deeper than this (its JSON reader's limit is far
# above any real definition); deeper answers are refused before parsing them recursively.
MAX_JSON_DEPTH = 64
# Mesos and Marathon write 64-bit integers at most (20 digits); a longer one is not theirs, and
# Python would either refuse it (over 4300 digits) or carry it into arithmetic that overflows.
MAX_INT_DIGITS = 20
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
    headers: CaseInsensitiveDict = field(repr=False)   # header names are case-insensitive
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


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):     # 1e999 reads as inf: the sender's number is out of range
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (more than "
                         f"{MAX_INT_DIGITS})")
    return int(text)


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
    """Strict JSON: HttpError naming `what` for malformed text or UTF-8, NaN/Infinity, numbers
    out of range (1e999, integers past 64 bits), or nesting deeper than MAX_JSON_DEPTH (Python's
    parser would recurse until it crashes)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(f"{what}: not valid JSON (not UTF-8 at byte {exc.start})") from None
    else:
        text = data
    # A cheap bound before parsing: nesting needs at least one bracket a level.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _bracket_depth(text) > MAX_JSON_DEPTH:
        raise HttpError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constants, parse_float=_finite_float,
                          parse_int=_bounded_int)
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


# The connections an exchange used, so that the caller can cut them off at its deadline:
# a socket timeout bounds each read, not the whole answer, and a server that trickles its
# headers or a chunked body would otherwise keep the exchange's thread reading long after.
_opened = threading.local()


@functools.cache
def _pool_classes() -> dict[str, type]:
    """urllib3's connection pools, with connections that record themselves in `_opened`."""
    import urllib3

    class Recorded:
        def request(self, *args, **kwargs):
            connections = getattr(_opened, "connections", None)
            if connections is not None:
                connections.append(self)
            return super().request(*args, **kwargs)

    class Connection(Recorded, urllib3.connection.HTTPConnection):
        pass

    class TlsConnection(Recorded, urllib3.connection.HTTPSConnection):
        pass

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class TlsPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = TlsConnection

    return {"http": Pool, "https": TlsPool}


def _cut(connections: list) -> None:
    """Shut the sockets down: the exchange's blocked read returns at once and its thread ends."""
    for connection in list(connections):
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):     # not connected yet, or already closed
            pass


def _secrets(auth: tuple[str, str] | None) -> list[str]:
    """What `Client.redact` hides: user:password, its base64 (the Authorization header), and
    the password itself, longest first. A password of under 4 characters is not looked for:
    hiding every "1" would garble the errors."""
    if not auth:
        return []
    user, password = auth
    pair = f"{user}:{password}"
    found = {pair, base64.b64encode(pair.encode()).decode()}
    if len(password) >= 4:
        found.add(password)
    return sorted(found, key=len, reverse=True)


class Client:
    """One requests.Session with the cluster's credentials and CA bundle, bounded as above."""

    def __init__(self, *, auth: tuple[str, str] | None = None, ca_bundle: str = "",
                 max_bytes: int = DEFAULT_MAX_BYTES):
        import requests

        self.session = requests.Session()
        self.session.auth = auth
        # requests' default (certifi) unless the cluster's own CA is given.
        self.session.verify = ca_bundle or True
        # Never let the environment's proxies or .netrc change where credentials go.
        self.session.trust_env = False
        # requests offers gzip by default, and both daemons take the offer (libprocess for a
        # body of 1 KiB or more, Marathon's --http_compression); the answer is read raw, and
        # the cap is meant for what is parsed, not for what a small bomb inflates to.
        self.session.headers["Accept-Encoding"] = "identity"
        self.secrets = _secrets(auth)
        adapter = requests.adapters.HTTPAdapter(max_retries=0)
        adapter.poolmanager.pool_classes_by_scheme = _pool_classes()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.max_bytes = max_bytes

    def redact(self, text: str) -> str:
        """`text` without the credentials: a server may echo the Authorization header back in
        an error page, and errors end up on terminals and in logs."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

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
        if not remaining > 0:       # also NaN
            raise HttpError(f"{what}: no time left before the deadline")
        # Socket timeouts bound each read, not the whole exchange: a server can trickle its
        # headers a byte at a time. The exchange runs in a daemon thread the caller stops
        # waiting for at the deadline, cutting its connection off.
        answer: queue.Queue = queue.Queue(maxsize=1)
        connections: list = []

        def exchange() -> None:
            _opened.connections = connections
            try:
                answer.put(self._exchange(method, url, json_body, params, end, what, timeout))
            except BaseException as exc:  # handed to the waiting caller, raised there
                answer.put(exc)

        threading.Thread(target=exchange, name=f"http {what}", daemon=True).start()
        try:
            result = answer.get(timeout=max(0.0, end - time.monotonic()) + 0.5)
        except queue.Empty:
            _cut(connections)
            raise HttpError(f"{what}: no complete answer within {timeout:g} s") from None
        if isinstance(result, BaseException):
            raise result
        return result

    def _exchange(self, method, url, json_body, params, end, what, timeout) -> Response:
        import requests
        import urllib3
        from requests.structures import CaseInsensitiveDict

        remaining = max(0.05, end - time.monotonic())
        try:
            r = self.session.request(method, url, json=json_body, params=params, stream=True,
                                     allow_redirects=False,
                                     timeout=(min(CONNECT_TIMEOUT, remaining), remaining))
        except requests.exceptions.SSLError as exc:
            raise HttpError(f"{what}: TLS error: {reason(exc)}") from None
        except requests.exceptions.ConnectTimeout:
            raise ConnectError(f"{what}: connection timed out") from None
        except requests.exceptions.ConnectionError as exc:
            # Also raised when the connection broke after the request went out ("Connection
            # aborted"): only a failed connect proves the server never saw the request.
            unsent = isinstance(getattr(exc.args[0] if exc.args else None, "reason", None),
                                urllib3.exceptions.NewConnectionError)
            if unsent:
                raise ConnectError(f"{what}: cannot connect: {reason(exc)}") from None
            raise HttpError(f"{what}: connection broken: {reason(exc)}") from None
        except requests.exceptions.Timeout:
            raise HttpError(f"{what}: no answer within {timeout:g} s") from None
        except requests.RequestException as exc:
            raise HttpError(f"{what}: {reason(exc)}") from None
        except OSError as exc:      # requests' own: no CA bundle at the path given
            raise HttpError(f"{what}: {exc}") from None
        with r:
            body = self._read(r, end, what, timeout)
            return Response(method, url, r.status_code, CaseInsensitiveDict(r.headers), body)

    def _read(self, r: requests.Response, end: float, what: str, timeout: float) -> bytes:
        encoding = r.headers.get("Content-Encoding", "")
        if encoding.strip().lower() not in ("", "identity"):
            raise HttpError(f"{what}: answer encoded as {encoding[:40]!r}, though only "
                            f"'identity' was accepted")
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
            raise HttpError(f"{what}: reading the answer failed: {reason(exc)}") from None
        return b"".join(chunks)


def reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3/http.client error, said plainly on one line.

    requests wraps urllib3's errors, which wrap http.client's and the socket's; their texts
    nest reprs ("('Connection aborted.', RemoteDisconnected(...))"), which tell an operator
    little."""
    inner, seen = exc, set()
    while id(inner) not in seen:
        seen.add(id(inner))
        nested = [a for a in inner.args if isinstance(a, BaseException)]
        cause = getattr(inner, "reason", None)
        following = (cause if isinstance(cause, BaseException) else
                     nested[-1] if nested else inner.__cause__)
        if following is None:
            break
        inner = following
    if isinstance(inner, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(inner, http.client.IncompleteRead):
        got = inner.partial if isinstance(inner.partial, int) else len(inner.partial)
        return (f"the server closed the connection after {got} bytes of the answer"
                + (f", {inner.expected} more expected" if inner.expected else ""))
    if isinstance(inner, http.client.BadStatusLine):
        return f"not an HTTP answer: {str(inner.args[0] if inner.args else '')[:60]!r}"
    if isinstance(inner, http.client.HTTPException):    # LineTooLong, too many headers
        return f"not a usable HTTP answer: {' '.join(str(inner).split())[:200]}"
    if getattr(inner, "verify_message", None):          # ssl.SSLCertVerificationError
        return f"certificate verify failed: {inner.verify_message}"
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return " ".join(str(inner).split())[:300] or type(inner).__name__
