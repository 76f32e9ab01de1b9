"""tasks.http and tasks.zk against real local servers that misbehave on purpose.

Each server listens on loopback and answers one way: trickling, endless, huge, redirecting,
malformed. The client must end each case with one clear error within its deadline.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasks import http, zk
from tests.unit.fake_zookeeper import FakeZooKeeper


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self):
        kind = self.path.strip("/").split("?")[0]
        if kind == "ok":
            body = json.dumps({"leader": "10.0.0.1:8080", "echo": self.headers.get("Authorization")})
            self._send(200, body.encode())
        elif kind == "nan":
            self._send(200, b'{"instances": NaN}')
        elif kind == "notjson":
            self._send(200, b"<html>proxy error</html>")
        elif kind == "deep":
            self._send(200, b"[" * 200 + b"]" * 200)
        elif kind == "list":
            self._send(200, b"[1, 2]")
        elif kind == "redirect":
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "huge":
            self.send_response(200)
            self.end_headers()   # no length: streams until the client gives up
            try:
                while True:
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
        elif kind == "biglength":
            self.send_response(200)
            self.send_header("Content-Length", str(10 ** 12))
            self.end_headers()
        elif kind == "trickle":
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif kind == "trickleheaders":
            try:
                for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                    self.wfile.write(bytes([ch]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_json_answer_and_basic_auth(server):
    with http.Client(auth=("ops", "s3cret")) as client:
        r = client.request("GET", server + "/ok")
    assert r.status == 200
    body = r.json_object()
    assert body["leader"] == "10.0.0.1:8080"
    assert body["echo"].startswith("Basic ")


@pytest.mark.parametrize("path, words", [
    ("/nan", "NaN is not valid JSON"),
    ("/notjson", "not valid JSON"),
    ("/deep", "nested deeper than 64"),
])
def test_malformed_json_is_one_clear_error(server, path, words):
    r = http.Client().request("GET", server + path)
    with pytest.raises(http.HttpError, match=words) as exc:
        r.json()
    assert path in str(exc.value) and "\n" not in str(exc.value)


def test_wrong_json_type_is_named(server):
    r = http.Client().request("GET", server + "/list")
    with pytest.raises(http.HttpError, match="expected a JSON object, got list"):
        r.json_object()


def test_redirect_is_not_followed_even_on_a_write(server):
    r = http.Client().request("POST", server + "/redirect", json_body={"id": "x"})
    assert r.status == 307
    assert r.headers["Location"] == "http://127.0.0.1:9/elsewhere"


@pytest.mark.parametrize("path", ["/huge", "/biglength"])
def test_answer_over_the_size_cap_is_refused(server, path):
    client = http.Client(max_bytes=1024 * 1024)
    with pytest.raises(http.HttpError, match="limit"):
        client.request("GET", server + path, timeout=10)


@pytest.mark.parametrize("path", ["/trickle", "/trickleheaders"])
def test_trickling_answer_ends_at_the_deadline(server, path):
    started = time.monotonic()
    with pytest.raises(http.HttpError, match="within 1 s"):
        http.Client().request("GET", server + path, timeout=1)
    assert time.monotonic() - started < 3


def test_refused_connection_is_one_line():
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(http.HttpError, match="cannot connect") as exc:
        http.Client().request("GET", f"http://127.0.0.1:{port}/v2/leader", timeout=2)
    assert "\n" not in str(exc.value)


def test_zookeeper_srvr_mode_and_mntr():
    srv = FakeZooKeeper({"srvr": "Zookeeper version: 3.8.0\nMode: follower\nNode count: 5\n",
                         "mntr": "zk_version\t3.8.0\nzk_server_state\tleader\nzk_synced_followers\t2\n"})
    port = srv.port
    try:
        assert zk.mode(zk.srvr("127.0.0.1", port)) == "follower"
        assert zk.mntr("127.0.0.1", port)["zk_synced_followers"] == "2"
    finally:
        srv.close()


def test_zookeeper_not_serving_and_not_whitelisted():
    assert zk.mode("This ZooKeeper instance is not currently serving requests\n") == zk.NOT_SERVING
    srv = FakeZooKeeper({"mntr": "mntr is not executed because it is not in the whitelist.\n"})
    try:
        with pytest.raises(zk.ZkError, match="not in 4lw.commands.whitelist"):
            zk.mntr("127.0.0.1", srv.port)
    finally:
        srv.close()


def test_zookeeper_endless_answer_is_capped():
    def endless(conn, word):
        while True:
            conn.sendall(b"x" * 65536)

    srv = FakeZooKeeper(behaviour=endless)
    try:
        with pytest.raises(zk.ZkError, match="larger than"):
            zk.srvr("127.0.0.1", srv.port, timeout=5)
    finally:
        srv.close()


def test_zookeeper_trickle_ends_at_the_deadline():
    def trickle(conn, word):
        for _ in range(100):
            conn.sendall(b"M")
            time.sleep(0.1)

    srv = FakeZooKeeper(behaviour=trickle)
    started = time.monotonic()
    try:
        with pytest.raises(zk.ZkError, match="within 1 s"):
            zk.srvr("127.0.0.1", srv.port, timeout=1)
    finally:
        srv.close()
    assert time.monotonic() - started < 2.5
