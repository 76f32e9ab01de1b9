"""A scripted fake Marathon on 127.0.0.1 for the client's unit tests: a real HTTP server.

`on(method, path_with_query, *answers)` scripts the answers, consumed in order, the last one
repeating. An answer is (status, body[, headers]); a body that is bytes is sent as it is (for
malformed JSON), anything else as JSON; a callable answer gets the handler and writes what it
likes (trickle, stream, hang). Unscripted requests get 404. Every request is recorded as
(method, path with query, JSON body or None).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeMarathon:
    def __init__(self, ssl_context=None):
        self.script, self.requests = {}, []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.requests.append((self.command, self.path,
                                          json.loads(raw) if raw else None))
                    answers = fake.script.get((self.command, self.path)) or [
                        (404, {"message": f"unscripted {self.command} {self.path}"})]
                    answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if callable(answer):
                    answer(self)
                    self.close_connection = True
                    return
                status, body, *headers = answer
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)
        self.thread.start()

    def on(self, method, path, *answers):
        with self.lock:
            self.script[(method, path)] = list(answers)

    def paths(self):
        return [(m, p) for m, p, _ in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fakes():
    """Start as many fake Marathons as a test needs; all are stopped after it."""
    started = []

    def start(**kwargs):
        started.append(FakeMarathon(**kwargs))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


@pytest.fixture
def fake(fakes):
    return fakes()
