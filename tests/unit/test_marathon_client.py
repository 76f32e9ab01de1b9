"""tasks.marathon.Marathon, the one Marathon client, against real HTTP servers on loopback.

Each case is a scripted fake Marathon (tests/unit/fake_marathon.py) answering as the real one
does, or misbehaving on purpose (no leader, redirects, trickles, floods, malformed JSON); the
client must give the value or one clear line, within its deadline.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import time

import pytest

from tasks import inventory
from tasks.marathon import Marathon, MarathonError, NoMasterAnswered
from tests.unit.fake_marathon import fake, fakes  # noqa: F401 (fixtures)

APPS_PATH = "/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure"
WEB = {"id": "/web", "instances": 2, "tasksRunning": 2, "tasksStaged": 0, "tasksHealthy": 0,
       "deployments": [], "tasks": [{"id": "web.1", "host": "192.0.2.51"}]}


@pytest.fixture
def closed_url():
    # Bind then close: nothing listens there, so connecting is refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def client(*urls, **kwargs):
    kwargs.setdefault("log", lambda line: None)
    return Marathon(list(urls), **kwargs)


# --- the read API --------------------------------------------------------------------------

def test_leader_is_host_port_or_none_when_none_is_elected(fake):
    fake.on("GET", "/v2/leader", (200, {"leader": "192.0.2.1:8080"}),
            (404, {"message": "There is no leader"}))
    m = client(fake.url)
    assert m.leader() == "192.0.2.1:8080"
    assert m.leader() is None


def test_apps_asks_for_tasks_and_last_failures(fake):
    fake.on("GET", APPS_PATH, (200, {"apps": [WEB]}))
    assert client(fake.url).apps() == [WEB]
    assert fake.paths() == [("GET", APPS_PATH)]


def test_app_and_an_unknown_app(fake):
    fake.on("GET", "/v2/apps/web", (200, {"app": WEB}))
    fake.on("GET", "/v2/apps/group/nope", (404, {"message": "App '/group/nope' does not exist"}))
    m = client(fake.url)
    assert m.app("/web") == WEB
    with pytest.raises(MarathonError) as e:
        m.app("group/nope")
    assert str(e.value) == "app /group/nope does not exist (App '/group/nope' does not exist)"


def test_deployments_and_queue(fake):
    deployment = {"id": "d1", "affectedApps": ["/web"], "currentStep": 1, "totalSteps": 2}
    entry = {"app": {"id": "/web"}, "count": 1, "delay": {"timeLeftSeconds": 12, "overdue": False}}
    fake.on("GET", "/v2/deployments", (200, [deployment]))
    fake.on("GET", "/v2/queue", (200, {"queue": [entry]}))
    m = client(fake.url)
    assert m.deployments() == [deployment]
    assert m.queue() == [entry]


@pytest.mark.parametrize("path, method, body, words", [
    ("/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure", "apps", {"apps": {"id": "/x"}},
     "GET /v2/apps on {url}: apps: expected a JSON list, got {\"id\": \"/x\"}"),
    ("/v2/deployments", "deployments", [{"id": "d"}, 7],
     "GET /v2/deployments on {url}: [1]: expected a JSON object, got 7"),
    ("/v2/leader", "leader", {"leader": 8080}, "GET /v2/leader on {url}: leader: expected a name"),
    ("/v2/queue", "queue", [], "GET /v2/queue on {url}: expected a JSON object, got []"),
])
def test_wrong_types_are_one_clear_line(fake, path, method, body, words):
    fake.on("GET", path, (200, body))
    with pytest.raises(MarathonError) as e:
        getattr(client(fake.url), method)()
    assert words.replace("{url}", fake.url) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("raw, words", [
    (b'{"apps": [{"instances": NaN}]}', "NaN is not valid JSON"),
    (b'{"apps": [{"instances": Infinity}]}', "Infinity is not valid JSON"),
    (b"<html>Bad gateway</html>", "not valid JSON"),
    (b'{"apps": ' + b"[" * 100 + b"]" * 100 + b"}", "nested deeper than"),
])
def test_malformed_answers_are_one_clear_line(fake, raw, words):
    fake.on("GET", APPS_PATH, (200, raw))
    with pytest.raises(MarathonError) as e:
        client(fake.url).apps()
    assert words in str(e.value) and f"GET {fake.url}/v2/apps" in str(e.value)
    assert "\n" not in str(e.value)


# --- masters, leaders, and what is skipped --------------------------------------------------

def test_an_unreachable_master_is_skipped_and_the_answering_one_asked_first(fake, closed_url):
    fake.on("GET", "/v2/leader", (200, {"leader": "192.0.2.2:8080"}))
    logs = []
    m = client(closed_url, fake.url, log=logs.append)
    assert m.leader() == "192.0.2.2:8080"
    assert m.leader() == "192.0.2.2:8080"
    assert logs == [f"marathon: GET /v2/leader: skipping {closed_url}: cannot connect: "
                    "Connection refused"]
    assert m.endpoints == [fake.url, closed_url]


@pytest.mark.parametrize("status, body", [
    (502, b"Could not determine the current leader"),   # a standby while none is elected
    (503, b""),                                          # leader not ready yet
    (500, b'{"message": "boom"}'),
])
def test_a_master_without_a_leader_is_skipped(fakes, status, body):
    no_leader, good = fakes(), fakes()
    no_leader.on("GET", "/v2/deployments", (status, body))
    good.on("GET", "/v2/deployments", (200, []))
    assert client(no_leader.url, good.url).deployments() == []
    assert no_leader.paths() == [("GET", "/v2/deployments")]


def test_no_master_answering_is_one_line_naming_each(fakes, closed_url):
    no_leader = fakes()
    no_leader.on("GET", "/v2/leader", (502, b"Could not determine the current leader"))
    with pytest.raises(NoMasterAnswered) as e:
        client(closed_url, no_leader.url).leader()
    assert str(e.value) == (
        f"no Marathon master answered GET /v2/leader: {closed_url}: cannot connect: "
        f"Connection refused; {no_leader.url}: HTTP 502 Could not determine "
        "the current leader")


def test_a_redirect_is_not_followed(fakes):
    redirecting, target = fakes(), fakes()
    redirecting.on("GET", "/v2/leader", (307, b"", {"Location": f"{target.url}/v2/leader"}))
    with pytest.raises(NoMasterAnswered, match=r"HTTP 307 redirect to .*/v2/leader \(not followed\)"):
        client(redirecting.url).leader()
    assert target.requests == []


def trickle(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    try:
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def flood(handler):
    handler.send_response(200)
    handler.end_headers()
    try:
        while True:
            handler.wfile.write(b"[" + b"0," * 32767 + b"0]")
    except OSError:
        pass


def test_a_trickling_master_costs_its_deadline_then_the_next_is_asked(fakes):
    slow, good = fakes(), fakes()
    slow.on("GET", "/v2/leader", trickle)
    good.on("GET", "/v2/leader", (200, {"leader": "192.0.2.3:8080"}))
    logs = []
    started = time.monotonic()
    assert client(slow.url, good.url, timeout=0.5, log=logs.append).leader() == "192.0.2.3:8080"
    assert time.monotonic() - started < 3
    assert "not complete within 0.5 s" in logs[0] or "no complete answer within 0.5 s" in logs[0]


def test_an_endless_answer_is_capped(fake):
    fake.on("GET", "/v2/deployments", flood)
    with pytest.raises(NoMasterAnswered, match=r"larger than the \d+-byte limit"):
        client(fake.url, timeout=20).deployments()


def test_no_endpoint_is_an_error():
    with pytest.raises(MarathonError, match="no Marathon endpoint given"):
        Marathon([])


def test_for_cluster_has_one_endpoint_per_master():
    cluster = inventory.parse("[masters]\nm1 ip=192.0.2.1 myid=1\nm2 ip=192.0.2.2 myid=2\n"
                              "m3 ip=192.0.2.3 myid=3\n[slaves]\ns1 ip=192.0.2.51\n"
                              "[masters:vars]\nmarathon_port = 8081\n")
    assert Marathon.for_cluster(cluster).endpoints == [
        "http://192.0.2.1:8081", "http://192.0.2.2:8081", "http://192.0.2.3:8081"]


def test_every_client_of_the_inventory_carries_its_scheme_credentials_and_ca(tmp_path):
    """Marathon.for_masters is how deploy-app, the app tasks, cluster-status and the gates all
    reach Marathon: the inventory's https, credentials file and CA bundle are on each."""
    (tmp_path / "cred").write_text("ops:s3cret\n")
    (tmp_path / "cred").chmod(0o600)
    (tmp_path / "hosts.ini").write_text(
        "[masters]\nm1 ip=192.0.2.1 myid=1\n[all:vars]\nmarathon_scheme = https\n"
        "marathon_port = 8443\nmarathon_credentials_file = cred\nca_bundle = ca.pem\n")
    cluster = inventory.load(tmp_path / "hosts.ini")
    with Marathon.for_cluster(cluster) as m:
        assert m.endpoints == ["https://192.0.2.1:8443"]
        assert m.http.session.auth == ("ops", "s3cret")
        assert m.http.session.verify == str(tmp_path / "ca.pem")


# --- credentials and TLS --------------------------------------------------------------------

def test_basic_auth_is_sent_and_a_refusal_explained(fake):
    fake.on("GET", "/v2/leader", (401, {"message": "Invalid username or password."}))
    with pytest.raises(MarathonError) as e:
        client(fake.url, auth=("ops", "s3cret")).leader()
    assert str(e.value) == f"GET /v2/leader on {fake.url}: HTTP 401: the credentials were refused"
    with pytest.raises(MarathonError, match="Marathon asks for credentials .* none are set"):
        client(fake.url).leader()
    sent = [r for r in fake.requests]
    assert len(sent) == 2


def test_the_authorization_header_carries_the_credentials(fake):
    seen = []

    def echo(handler):
        seen.append(handler.headers.get("Authorization"))
        body = json.dumps({"leader": "192.0.2.1:8080"}).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    fake.on("GET", "/v2/leader", echo)
    client(fake.url, auth=("ops", "s3cret")).leader()
    assert seen == ["Basic " + base64.b64encode(b"ops:s3cret").decode()]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A throw-away CA and a certificate for 127.0.0.1 signed by it (openssl)."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "server.pem")
    return d


def test_https_with_the_clusters_ca_bundle(fakes, tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "server.pem", tls_files / "server.key")
    secure = fakes(ssl_context=context)
    secure.on("GET", "/v2/leader", (200, {"leader": "192.0.2.1:8443"}))
    assert secure.url.startswith("https://")
    assert client(secure.url, ca_bundle=str(tls_files / "ca.pem")).leader() == "192.0.2.1:8443"
    # Without the bundle the certificate is not trusted: one line, and no answer used.
    with pytest.raises(NoMasterAnswered, match=r"TLS error: .*certificate verify failed"):
        client(secure.url).leader()
