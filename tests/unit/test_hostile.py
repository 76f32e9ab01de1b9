"""Hostile and broken servers against the real commands: `fab app-*`, `deploy-app`,
`deployments`, `deployment-cancel` and `cluster-status`, each master a real server on loopback.

Every case is one row: the command, the endpoint that misbehaves, its answer (wrong JSON types
at any level, NaN and numbers out of range, bytes that are not UTF-8 or not HTTP, redirects,
refusals, floods, trickles, silence), and what the operator must get: the exit code and words of
one clear line, within the deadline, never a traceback, never a control character from the
server on the terminal. The other endpoints answer as a healthy Marathon does.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time

import pytest

from tasks import cli, http, status
from tasks.marathon import Marathon, MarathonError
from tests.unit.fake_marathon import fake, fakes  # noqa: F401 (fixtures)
from tests.unit.test_apps import fab  # noqa: F401 (fixture)
from tests.unit.test_status import (APPS_PATH, FAST, Fakes, agent,  # noqa: F401
                                    no_proxy_for_loopback)

V = "2024-05-01T10:00:00.000Z"
ESC = "\x1b"


def app(*tasks, **extra):
    return {"id": "/hello2", "cmd": "sleep 100", "instances": len(tasks),
            "tasksRunning": len(tasks), "tasksStaged": 0, "deployments": [], "version": V,
            "tasks": [{"id": t, "host": "slave1", "state": "TASK_RUNNING", "startedAt": V}
                      for t in tasks], **extra}


DEPLOYED = (200, {"deploymentId": "d1", "version": V})
HEALTHY = {
    ("GET", APPS_PATH): [(200, {"apps": [app("t1")]})],
    ("GET", "/v2/apps/hello2"): [(200, {"app": app("t1")})],
    ("GET", "/v2/queue"): [(200, {"queue": []})],
    ("GET", "/v2/deployments"): [(200, [])],
    ("PUT", "/v2/apps/hello2"): [DEPLOYED],
    ("PUT", "/v2/apps/hello2?partialUpdate=false"): [DEPLOYED],
    ("POST", "/v2/apps/hello2/restart"): [DEPLOYED],
    ("DELETE", "/v2/apps/hello2"): [DEPLOYED],
    ("POST", "/v2/apps"): [(201, {**app(), "deployments": [{"id": "d1"}]})],
    ("DELETE", "/v2/deployments/d1"): [(200, {"deploymentId": "d2", "version": V})],
}


# --- answers that misbehave below JSON: the bytes on the wire --------------------------------

def raw(data: bytes):
    """These bytes as the whole answer, status line and headers included."""
    return lambda handler: handler.wfile.write(data)


def cut_off_quietly(answer):
    """The client hangs up on these answers: that is the point, not a failure of the server."""
    def quietly(handler):
        try:
            answer(handler)
        except OSError:
            pass
    return quietly


def silent(handler):
    time.sleep(3)


def stream(head: bytes, piece: bytes, times: int, pause: float = 0.0):
    """`head`, then `piece` again and again: a flood without a pause, a trickle with one."""
    @cut_off_quietly
    def answer(handler):
        handler.wfile.write(head)
        for _ in range(times):
            handler.wfile.write(piece)
            time.sleep(pause)
    return answer


CONTROL = "".join(map(chr, range(32))) + "\x7f\x9b\u202e"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
# Floods of 64 MiB at most, far past the cap; trickles of 3 s, past the deadline.
ENDLESS = stream(b"HTTP/1.1 200 OK\r\n\r\n", b"x" * 65536, 1000)
CHUNKED_FLOOD = stream(CHUNKED, b"10000\r\n" + b"[" * 65536 + b"\r\n", 1000)
TRICKLE = stream(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b" ", 60, 0.05)
CHUNKED_TRICKLE = stream(CHUNKED, b"1\r\n \r\n", 60, 0.05)
TOO_LONG = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n[")
HEADERS = raw(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200))
              + b"Content-Length: 2\r\n\r\n[]")
CUT = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{\"id\":")

# (id, fab arguments, endpoint, answers in turn, exit code, words of the one-line error)
APP_CASES = [
    # wrong JSON types, at every level of every answer the app tasks read
    ("apps-not-a-list", ["app-list"], ("GET", APPS_PATH), [(200, {"apps": "x"})], 1,
     'apps: expected a JSON list, got "x"'),
    ("app-not-an-object", ["app-list"], ("GET", APPS_PATH), [(200, {"apps": [1]})], 1,
     "apps[0]: expected a JSON object, got 1"),
    ("app-without-id", ["app-list"], ("GET", APPS_PATH), [(200, {"apps": [{}]})], 1,
     "apps[0].id: missing"),
    ("instances-a-string", ["app-list"], ("GET", APPS_PATH),
     [(200, {"apps": [app(instances="3")]})], 1,
     'apps[0].instances: expected a whole number from 0 to 2^31-1, got "3"'),
    ("running-below-zero", ["app-list"], ("GET", APPS_PATH),
     [(200, {"apps": [app(tasksRunning=-5)]})], 1, "apps[0].tasksRunning: expected a whole"),
    ("id-with-an-escape", ["app-list"], ("GET", APPS_PATH),
     [(200, {"apps": [app(id="/x\x1b[2J")]})], 1, "apps[0].id: expected a name"),
    ("deployments-a-number", ["app-list"], ("GET", APPS_PATH),
     [(200, {"apps": [app(deployments=5)]})], 1, "apps[0].deployments: expected a JSON list"),
    ("tasks-a-number", ["app-show", "--id", "/hello2"], ("GET", "/v2/apps/hello2"),
     [(200, {"app": app(tasks=5)})], 1, "app.tasks: expected a JSON list, got 5"),
    ("task-id-a-number", ["app-show", "--id", "/hello2"], ("GET", "/v2/apps/hello2"),
     [(200, {"app": app(tasks=[{"id": 5}])})], 1, "app.tasks[0].id: expected a name"),
    ("args-a-number", ["app-show", "--id", "/hello2"], ("GET", "/v2/apps/hello2"),
     [(200, {"app": app(cmd=None, args=5)})], 1, "app.args: expected a JSON list, got 5"),
    ("constraints-flat", ["app-show", "--id", "/hello2"], ("GET", "/v2/apps/hello2"),
     [(200, {"app": app(constraints=["hostname", "UNIQUE"])})], 1,
     'app.constraints[0]: expected a JSON list, got "hostname"'),
    ("failure-a-string", ["app-show", "--id", "/hello2"], ("GET", "/v2/apps/hello2"),
     [(200, {"app": app(lastTaskFailure="x")})], 1, "app.lastTaskFailure: expected a JSON object"),
    ("app-null", ["app-show", "--id", "/hello2"], ("GET", "/v2/apps/hello2"),
     [(200, {"app": None})], 1, "app: missing"),
    ("queue-delay-null", ["app-show", "--id", "/hello2"], ("GET", "/v2/queue"),
     [(200, {"queue": [{"app": {"id": "/hello2"}, "count": 1, "delay": None}]})], 0, ""),
    ("queue-delay-a-string", ["app-show", "--id", "/hello2"], ("GET", "/v2/queue"),
     [(200, {"queue": [{"app": {"id": "/hello2"}, "delay": {"timeLeftSeconds": "5"}}]})], 1,
     "queue[0].delay.timeLeftSeconds: expected a number of seconds"),
    ("queue-delay-1e308", ["app-show", "--id", "/hello2"], ("GET", "/v2/queue"),
     [(200, {"queue": [{"app": {"id": "/hello2"}, "delay": {"timeLeftSeconds": 1e308}}]})], 1,
     "queue[0].delay.timeLeftSeconds: expected a number of seconds from 0 to 2^31, got 1e+308"),
    ("queue-app-a-string", ["app-show", "--id", "/hello2"], ("GET", "/v2/queue"),
     [(200, {"queue": [{"app": "x"}]})], 1, 'queue[0].app: expected a JSON object, got "x"'),
    ("deployment-id-a-number", ["deployments"], ("GET", "/v2/deployments"),
     [(200, [{"id": 5}])], 1, "[0].id: expected a name"),
    ("affected-apps-a-number", ["deployments"], ("GET", "/v2/deployments"),
     [(200, [{"id": "d1", "affectedApps": 5}])], 1, "[0].affectedApps: expected a JSON list"),
    ("actions-not-objects", ["deployments"], ("GET", "/v2/deployments"),
     [(200, [{"id": "d1", "currentActions": [5]}])], 1, "[0].currentActions[0]: expected a JSON"),
    ("deployments-an-object", ["deployments"], ("GET", "/v2/deployments"), [(200, {})], 1,
     "expected a JSON list, got {}"),
    # not JSON, or JSON no Marathon writes
    ("nan", ["deployments"], ("GET", "/v2/deployments"), [(200, b'[{"id": NaN}]')], 1,
     "NaN is not valid JSON"),
    ("minus-infinity", ["deployments"], ("GET", "/v2/deployments"),
     [(200, b'[{"id": "d", "totalSteps": -Infinity}]')], 1, "-Infinity is not valid JSON"),
    ("1e999", ["app-show", "--id", "/hello2"], ("GET", "/v2/queue"),
     [(200, b'{"queue": [{"app": {"id": "/hello2"}, "delay": {"timeLeftSeconds": 1e999}}]}')],
     1, "the number 1e999 is out of range"),
    ("huge-integer", ["deployments"], ("GET", "/v2/deployments"),
     [(200, b'[{"id": "d", "totalSteps": 1' + b"0" * 5000 + b"}]")], 1,
     "an integer of 5001 digits (more than 20)"),
    ("not-utf-8", ["deployments"], ("GET", "/v2/deployments"), [(200, b'[{"id": "\xff"}]')], 1,
     "not valid JSON (not UTF-8 at byte 9)"),
    ("empty-body", ["deployments"], ("GET", "/v2/deployments"), [(200, b"")], 1,
     "not valid JSON"),
    ("html", ["deployments"], ("GET", "/v2/deployments"), [(200, b"<html>Proxy</html>")], 1,
     "not valid JSON"),
    ("deep", ["deployments"], ("GET", "/v2/deployments"), [(200, b"[" * 5000 + b"]" * 5000)], 1,
     "nested deeper than 64 levels"),
    # HTTP answers that are not the data
    ("redirect", ["deployments"], ("GET", "/v2/deployments"),
     [(302, b"", {"Location": "http://192.0.2.9/v2/deployments"})], 1,
     "HTTP 302 redirect to http://192.0.2.9/v2/deployments (not followed)"),
    ("unauthorized", ["deployments"], ("GET", "/v2/deployments"), [(401, b"\x00\xff")], 1,
     "HTTP 401: Marathon asks for credentials"),
    ("forbidden", ["deployments"], ("GET", "/v2/deployments"), [(403, {"message": 5})], 1,
     'HTTP 403: not allowed for these credentials: {"message": 5}'),
    ("error-with-controls", ["deployments"], ("GET", "/v2/deployments"),
     [(500, CONTROL.encode())], 1, "HTTP 500 \\x00\\x01"),
    ("odd-status", ["deployments"], ("GET", "/v2/deployments"),
     [raw(b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\n{}")], 1, "HTTP 999 {}"),
    # the wire itself
    ("declared-too-long", ["deployments"], ("GET", "/v2/deployments"), [TOO_LONG], 1,
     "answer of 1000000000000 bytes is larger than the 1048576-byte limit"),
    ("endless", ["deployments"], ("GET", "/v2/deployments"), [ENDLESS], 1,
     "answer larger than the 1048576-byte limit"),
    ("chunked-flood", ["deployments"], ("GET", "/v2/deployments"), [CHUNKED_FLOOD], 1,
     "answer larger than the 1048576-byte limit"),
    ("chunked-forever", ["deployments"], ("GET", "/v2/deployments"), [CHUNKED_TRICKLE], 1,
     "answer not complete within 1 s"),
    ("trickle", ["deployments"], ("GET", "/v2/deployments"), [TRICKLE], 1,
     "answer not complete within 1 s"),
    ("silent", ["deployments"], ("GET", "/v2/deployments"), [silent], 1, "within 1 s"),
    ("closed-at-once", ["deployments"], ("GET", "/v2/deployments"), [raw(b"")], 1,
     "the server closed the connection without answering"),
    ("closed-mid-body", ["deployments"], ("GET", "/v2/deployments"), [CUT], 1,
     "the server closed the connection after 7 bytes of the answer, 993 more expected"),
    ("not-http", ["deployments"], ("GET", "/v2/deployments"),
     [raw(bytes(range(256)))], 1, "not an HTTP answer: '\\x00\\x01"),
    ("headers-without-end", ["deployments"], ("GET", "/v2/deployments"), [HEADERS], 1,
     "not a usable HTTP answer: got more than 100 headers"),
    # writes: an answer that is not Marathon's is an error that says the change may be made
    ("write-answer-a-number", ["app-scale", "--id", "/hello2", "--instances", "1"],
     ("PUT", "/v2/apps/hello2"), [(200, 5)], 1,
     "expected a JSON object, got 5 (HTTP 200: Marathon may have made the change; see fab "
     "deployments)"),
    ("write-answer-empty", ["app-restart", "--id", "/hello2"],
     ("POST", "/v2/apps/hello2/restart"), [(200, b"")], 1, "Marathon may have made the change"),
    ("deployment-id-a-list", ["app-destroy", "--id", "/hello2"], ("DELETE", "/v2/apps/hello2"),
     [(200, {"deploymentId": [], "version": V})], 1,
     "deploymentId: expected a name (1-512 printable characters, no spaces), got []"),
    ("created-app-deployments-wrong", ["deploy-app", "--file", "{hello}"], ("POST", "/v2/apps"),
     [(201, {"id": "/hello2", "deployments": [{"id": 7}]})], 1,
     "deployments[0].id: expected a name (1-512 printable characters, no spaces), got 7"),
    ("write-silent", ["app-scale", "--id", "/hello2", "--instances", "1"],
     ("PUT", "/v2/apps/hello2"), [silent], 1,
     "within 1 s (not sent to another master: this one may have acted on it"),
    ("write-redirected", ["app-restart", "--id", "/hello2"], ("POST", "/v2/apps/hello2/restart"),
     [(307, b"", {"Location": "http://192.0.2.9/v2/apps/hello2/restart"})], 1,
     "HTTP 307 redirect to http://192.0.2.9/v2/apps/hello2/restart (not followed)"),
    ("locked-body-wrong", ["app-scale", "--id", "/hello2", "--instances", "1"],
     ("PUT", "/v2/apps/hello2"), [(409, {"message": "locked", "deployments": "d0"})], 1,
     "HTTP 409 locked"),
    ("invalid-details-wrong", ["deploy-app", "--file", "{hello}"], ("POST", "/v2/apps"),
     [(422, {"message": "Object is not valid", "details": [{"path": 5, "errors": "x"}]})], 1,
     "Marathon refused app /hello2 (HTTP 422 Object is not valid):"),
    ("cancel-answer-wrong", ["deployment-cancel", "--id", "d1"],
     ("DELETE", "/v2/deployments/d1"), [(200, {"deploymentId": 5})], 1,
     "deploymentId: expected a name (1-512 printable characters, no spaces), got 5"),
    # during a wait: the app read back is malformed
    ("restart-then-tasks-a-number", ["app-restart", "--id", "/hello2"],
     ("GET", "/v2/apps/hello2"), [(200, {"app": app("t1")}), (200, {"app": app(tasks=5)})], 1,
     "app.tasks: expected a JSON list, got 5"),
    ("scale-then-counts-strings", ["app-scale", "--id", "/hello2", "--instances", "1"],
     ("GET", "/v2/apps/hello2"), [(200, {"app": app("t1")}),
                                  (200, {"app": app("t1", tasksHealthy="1")})], 1,
     'app.tasksHealthy: expected a whole number from 0 to 2^31-1, got "1"'),
]


WAITING = ("deploy-app", "app-scale", "app-restart", "app-destroy", "deployment-cancel")


@pytest.fixture
def quick(monkeypatch):
    """Each request may take 1 s and read 1 MiB (a flood meets the cap long before the
    deadline, even on a busy machine); waits poll every 20 ms."""
    monkeypatch.setitem(Marathon.__init__.__kwdefaults__, "timeout", 1.0)
    monkeypatch.setitem(http.Client.__init__.__kwdefaults__, "max_bytes", 1024 * 1024)
    monkeypatch.setitem(Marathon.wait_for.__kwdefaults__, "poll", 0.02)


@pytest.mark.parametrize("args, endpoint, answers, code, words",
                         [c[1:] for c in APP_CASES], ids=[c[0] for c in APP_CASES])
def test_app_commands_against_a_hostile_marathon(fake, fab, quick, tmp_path, args, endpoint,
                                                 answers, code, words):
    hello = tmp_path / "hello.json"
    hello.write_text('{"id": "/hello2", "cmd": "sleep 100", "cpus": 0.1, "mem": 16}')
    for (method, path), scripted in HEALTHY.items():
        fake.on(method, path, *scripted)
    if ("GET", "/v2/deployments") != endpoint and args[0] == "deployment-cancel":
        fake.on("GET", "/v2/deployments", (200, [{"id": "d1", "affectedApps": ["/hello2"]}]),
                (200, []))
    fake.on(*endpoint, *answers)
    if args[0] in WAITING:
        args = [*args, "--timeout", "5"]
    started = time.monotonic()
    got, out, err = fab(fake, *[a.replace("{hello}", str(hello)) for a in args])
    assert time.monotonic() - started < 8
    assert got == code, err
    assert words in err
    assert len(err.splitlines()) == (0 if code == 0 else 1) + ("HTTP 422" in err)
    assert ESC not in err + out and "\u202e" not in err + out


def test_a_write_is_never_sent_where_a_redirect_points(fakes, fab, quick):
    first, elsewhere = fakes(), fakes()
    first.on("GET", "/v2/apps/hello2", (200, {"app": app("t1")}))
    first.on("PUT", "/v2/apps/hello2",
             (307, b"", {"Location": elsewhere.url + "/v2/apps/hello2"}))
    code, _, err = fab(first, "app-scale", "--id", "/hello2", "--instances", "3")
    assert code == 1 and "HTTP 307 redirect to" in err
    assert first.paths() == [("GET", "/v2/apps/hello2"), ("PUT", "/v2/apps/hello2")]
    assert elsewhere.requests == []


# --- credentials never in an error, even when the server echoes them --------------------------

USER, PASSWORD = "ops", "pa55-w0rd"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def echo(status_code):
    """An answer that repeats the request's Authorization header and the password back."""
    def answer(handler):
        body = (f"denied: {handler.headers.get('Authorization')} ({USER}:{PASSWORD}) "
                f"{PASSWORD}").encode()
        handler.send_response(status_code)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return answer


@pytest.mark.parametrize("path, method, answer", [
    ("/v2/leader", "leader", echo(500)),
    ("/v2/leader", "leader", echo(403)),
    ("/v2/leader", "leader", echo(200)),
    ("/v2/deployments", "deployments", (200, {"apps": TOKEN})),
    ("/v2/deployments", "deployments", (200, [{"id": PASSWORD + " x"}])),
    ("/v2/apps/hello2", "scale", echo(422)),
    ("/v2/apps/hello2", "scale", echo(409)),
    ("/v2/apps/hello2", "scale", (200, {"deploymentId": f"{USER}:{PASSWORD} x"})),
])
def test_errors_never_carry_the_credentials(fake, path, method, answer):
    fake.on("GET" if method != "scale" else "PUT", path, answer)
    logs = []
    m = Marathon([fake.url], auth=(USER, PASSWORD), log=logs.append)
    with pytest.raises(MarathonError) as e:
        m.scale("/hello2", 2) if method == "scale" else getattr(m, method)()
    told = str(e.value) + "\n".join(logs)
    assert "***" in told
    assert PASSWORD not in told and TOKEN not in told


# --- cluster-status --------------------------------------------------------------------------

# (id, master1's service, endpoint or four-letter word, answer, exit code, words of a finding)
STATUS_CASES = [
    ("srvr-garbage", "zk", "srvr", b"garbage\n", 2, "master1: srvr: no Mode line in the answer"),
    ("srvr-binary", "zk", "srvr", bytes(range(256)), 2, "master1: srvr: no Mode line"),
    ("srvr-empty", "zk", "srvr", b"", 2, "srvr: the connection closed without an answer"),
    ("srvr-odd-mode", "zk", "srvr", b"Mode: " + b"x" * 60000 + b"\n", 2,
     "srvr: unknown Mode 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', expected one of leader"),
    ("srvr-100k", "zk", "srvr", b"Mode: " + b"x" * 100000, 2, "answer larger than 65536 bytes"),
    ("mntr-superscript", "zk", "mntr", "zk_synced_followers\t\u00b2\n".encode(), 1,
     "master1: mntr has no zk_synced_followers (got '\u00b2')"),
    ("mntr-5000-digits", "zk", "mntr", b"zk_synced_followers\t" + b"1" * 5000 + b"\n", 1,
     "mntr has no zk_synced_followers (got '11111111111111111111')"),
    ("elected-a-string", "mesos", ("GET", "/metrics/snapshot"),
     (200, {"master/elected": "1", "registrar/log/recovered": 1.0}), 2,
     "master1: 127.0.0.1:{port}/metrics/snapshot: 'master/elected' is not 0 or 1 (got \"1\")"),
    ("elected-huge", "mesos", ("GET", "/metrics/snapshot"),
     (200, {"master/elected": 10 ** 19, "registrar/log/recovered": 1.0}), 2,
     "'master/elected' is not 0 or 1 (got 10000000000000000000)"),
    ("elected-1e999", "mesos", ("GET", "/metrics/snapshot"),
     (200, b'{"master/elected": 1e999, "registrar/log/recovered": 1}'), 2,
     "the number 1e999 is out of range"),
    ("metrics-not-utf-8", "mesos", ("GET", "/metrics/snapshot"), (200, b'{"\xff": 1}'), 2,
     "not UTF-8 at byte 2"),
    ("slaves-a-string", "mesos", ("GET", "/master/state"), (200, {"slaves": "x"}), 1,
     "cannot read the agents: 127.0.0.1:{port}/master/state: no list of slaves or of frameworks"),
    ("slave-missing-fields", "mesos", ("GET", "/master/state"),
     (200, {"slaves": [{"hostname": "a"}]}), 1, "slaves[0] lacks id, hostname, pid or active"),
    ("slave-name-with-escape", "mesos", ("GET", "/master/state"),
     (200, {"slaves": [agent("192.0.2.51"), agent("192.0.2.52"), agent("192.0.2.53"),
                       agent("192.0.2.77", hostname="evil\x1b]0;x\x07")]}), 1,
     "evil\\x1b]0;x\\x07: active agent at 192.0.2.77 that the inventory does not know"),
    ("leader-a-number", "marathon", ("GET", "/v2/leader"), (200, {"leader": 7}), 1,
     "master1: GET /v2/leader on http://127.0.0.1:{port}: leader: expected a name"),
    ("app-counts-strings", "marathon", ("GET", APPS_PATH),
     (200, {"apps": [app("t1", tasksRunning="1")]}), 1,
     'cannot read apps, deployments or the launch queue: GET /v2/apps on http://127.0.0.1:{port}:'
     ' apps[0].tasksRunning: expected a whole number from 0 to 2^31-1, got "1"'),
    ("affected-apps-a-number", "marathon", ("GET", "/v2/deployments"),
     (200, [{"id": "d1", "version": V, "affectedApps": 5}]), 1,
     "[0].affectedApps: expected a JSON list, got 5"),
    ("queue-delay-null", "marathon", ("GET", "/v2/queue"),
     (200, {"queue": [{"app": {"id": "/hello2"}, "count": 1, "delay": None}]}), 0, ""),
    ("queue-delay-huge", "marathon", ("GET", "/v2/queue"),
     (200, b'{"queue": [{"app": {"id": "/hello2"}, "delay": {"timeLeftSeconds": 1'
           + b"0" * 300 + b"}}]}"), 1, "an integer of 301 digits (more than 20)"),
]


@pytest.mark.parametrize("service, endpoint, answer, code, words",
                         [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES])
def test_cluster_status_against_a_hostile_leader(monkeypatch, capsys, service, endpoint, answer,
                                                 code, words):
    import fabfile
    from invoke import Context
    from invoke.exceptions import Exit

    cluster = Fakes()
    try:
        master1 = cluster["master1"]
        server = getattr(master1, service)
        if service == "zk":     # bytes as they are; the other word keeps its healthy answer
            replies = {w.encode(): text.encode() for w, text in server.answers.items()}
            replies[endpoint.encode()] = answer
            server.behaviour = lambda conn, word: conn.sendall(replies.get(word, b""))
        else:
            server.on(*endpoint, answer)
        monkeypatch.setattr(cli, "load_cluster", lambda c: cluster.cluster)
        got = 0
        try:
            fabfile.cluster_status(Context(), timeout=FAST)
        except Exit as exc:
            got = exc.code
        out = capsys.readouterr().out
    finally:
        cluster.close()
    assert got == code, out
    port = server.url.rsplit(":", 1)[1] if service != "zk" else server.port
    assert words.replace("{port}", str(port)) in out
    assert ESC not in out
    verdict = {0: status.HEALTHY, 1: status.DEGRADED, 2: status.DOWN}[code]
    assert out.splitlines()[0].startswith(verdict.upper())


# --- a deadline cuts the exchange off, not only the wait for it -------------------------------

def test_a_trickling_server_sees_its_connection_cut_at_the_deadline():
    cut = threading.Event()

    def serve(listener):
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                for _ in range(400):        # 20 s of one header byte every 50 ms
                    conn.sendall(b"X")
                    time.sleep(0.05)
            except OSError:
                cut.set()

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
        with pytest.raises(http.HttpError, match="no complete answer within 0.5 s"):
            http.Client().request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/",
                                  timeout=0.5)
        # Without the cut, the exchange's thread would read on for the whole 20 s.
        assert cut.wait(5)


# --- what the operator gives: refused before any request --------------------------------------

DEEP = "[" * 65 + "]" * 65
DEFINITIONS = [
    ("nan", '{"id": "/a", "cmd": "x", "cpus": NaN}', "cpus: must be a number > 0, got NaN"),
    ("infinity-deep-inside", '{"id": "/a", "cmd": "x", "labels": {"l": [1, Infinity]}}',
     "labels.l[1]: inf is not a number JSON can carry"),
    ("minus-infinity", '{"id": "/a", "cmd": "x", "disk": -Infinity}',
     "disk: -inf is not a number JSON can carry"),
    ("1e999", '{"id": "/a", "cmd": "x", "mem": 1e999}', "mem: inf is not a number JSON can carry"),
    ("huge-integer", '{"id": "/a", "cmd": "x", "instances": 1' + "0" * 5000 + "}",
     "malformed JSON: an integer of more than 4300 digits"),
    ("nested-65", '{"id": "/a", "cmd": "x", "x": ' + DEEP + "}",
     "(top level): nested deeper than 64 levels, which Marathon refuses"),
    ("nested-100000", '{"id": "/a", "cmd": "x", "x": ' + "[" * 100000 + "]" * 100000 + "}",
     "(top level): nested deeper than 64 levels"),
    ("nan-in-a-group", '{"id": "/g", "apps": [{"id": "a", "cmd": "x", "mem": NaN}]}',
     "apps[0].mem: must be a number > 0, got NaN"),
]


@pytest.mark.parametrize("text, words", [d[1:] for d in DEFINITIONS],
                         ids=[d[0] for d in DEFINITIONS])
def test_deploy_app_refuses_a_definition_before_any_request(fake, fab, tmp_path, text, words):
    path = tmp_path / "app.json"
    path.write_text(text)
    code, _, err = fab(fake, "deploy-app", "--file", str(path))
    assert code == 1
    assert err.startswith(f"deploy-app failed, nothing was sent: {path}: invalid definition:")
    assert words in err
    assert fake.requests == []


@pytest.mark.parametrize("args", [
    ["app-scale", "--id", "/a", "--instances", "1", "--timeout", "abc"],
    ["app-restart", "--id", "/a", "--timeout", "nan"],
    ["app-destroy", "--id", "/a", "--timeout", "-1"],
    ["deployment-cancel", "--id", "d", "--timeout", "inf"],
    ["cluster-status", "--timeout", "nan"],
    ["cluster-status", "--timeout", "0"],
    ["cluster-status", "--deployment-age", "ten"],
])
def test_a_wrong_number_of_seconds_is_one_line(fake, fab, args):
    code, _, err = fab(fake, *args)
    option = next(a for a in args if a.startswith("--") and a not in ("--id", "--instances"))
    assert code == (2 if args[0] == "cluster-status" else 1)
    assert err.startswith(f"{option} must be a number of seconds above 0, got ")
    assert len(err.splitlines()) == 1
    assert fake.requests == []


def test_a_ca_bundle_that_is_not_there_is_one_line(tmp_path):
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(MarathonError) as e:
        Marathon(["https://127.0.0.1:9"], ca_bundle=str(missing), log=lambda line: None).leader()
    assert f"invalid path: {missing}" in str(e.value) and "\n" not in str(e.value)


# --- compression: asked for by requests' defaults, taken by both daemons ---------------------

def libprocess(status_code, body: dict):
    """As Mesos' libprocess answers: gzip when the request accepts it and the body has 1 KiB or
    more (encoder.hpp, GZIP_MINIMUM_BODY_LENGTH); Marathon's --http_compression does the same."""
    def answer(handler):
        data = json.dumps(body).encode()
        accepted = handler.headers.get("Accept-Encoding", "")
        handler.send_response(status_code)
        if len(data) >= 1024 and "gzip" in accepted:
            data = gzip.compress(data)
            handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return answer


def test_real_mesos_metrics_of_more_than_1_kib_are_read(monkeypatch, capsys):
    import fabfile
    from invoke import Context

    cluster = Fakes()
    try:
        for n, name in enumerate(("master1", "master2", "master3")):
            padding = {f"master/metric_{i}": 0.0 for i in range(60)}
            cluster[name].mesos.on("GET", "/metrics/snapshot", libprocess(200, {
                "master/elected": 1.0 if n == 0 else 0.0, "registrar/log/recovered": 1.0,
                **padding}))
        monkeypatch.setattr(cli, "load_cluster", lambda c: cluster.cluster)
        fabfile.cluster_status(Context(), timeout=FAST)
    finally:
        cluster.close()
    assert capsys.readouterr().out.startswith("HEALTHY\n")


def test_an_answer_compressed_unasked_is_one_line(fake):
    body = gzip.compress(b"[]")
    fake.on("GET", "/v2/deployments", (200, body, {"Content-Encoding": "gzip"}))
    with pytest.raises(MarathonError) as e:
        Marathon([fake.url], log=lambda line: None).deployments()
    assert "answer encoded as 'gzip', though only 'identity' was accepted" in str(e.value)
