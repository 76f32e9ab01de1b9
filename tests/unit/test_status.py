"""cluster-status against fake masters on loopback: every verdict and the reason it names.

Each of the three masters is a fake ZooKeeper (four-letter words over TCP), a fake Mesos master
and a fake Marathon (real HTTP servers answering scripted JSON), on 127.0.0.1 with ports of
their own. The healthy cluster is scripted first; each test breaks one thing the way the real
daemons show it, or stops a server, and checks the exit code and the finding's words.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from invoke import Context
from invoke.exceptions import Exit

import fabfile
from tasks import cli, inventory, status
from tests.unit.fake_marathon import FakeMarathon
from tests.unit.fake_zookeeper import FakeZooKeeper

INVENTORY = """\
[masters]
master1 ip=192.0.2.1 myid=1
master2 ip=192.0.2.2 myid=2
master3 ip=192.0.2.3 myid=3
[slaves]
slave1 ip=192.0.2.51
slave2 ip=192.0.2.52
slave3 ip=192.0.2.53
"""
NAMES = ("master1", "master2", "master3")
SLAVES = {"slave1": "192.0.2.51", "slave2": "192.0.2.52", "slave3": "192.0.2.53"}
APPS_PATH = "/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure"
FAST = 1.0          # seconds per call in these tests


def srvr(mode):
    return f"Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.1/4\nMode: {mode}\nNode count: 9\n"


def mntr(synced):
    return f"zk_version\t3.8.0\nzk_server_state\tleader\nzk_followers\t2\nzk_synced_followers\t{synced}\n"


def metrics(elected, recovered=1.0):
    return (200, {"master/elected": float(elected), "master/uptime_secs": 60.0,
                  "registrar/log/recovered": float(recovered), "master/slaves_active": 3.0})


def agent(ip, active=True, hostname=None):
    return {"id": f"S-{ip}", "hostname": hostname or ip, "pid": f"slave(1)@{ip}:5051",
            "port": 5051, "active": active, "resources": {"cpus": 1.0}}


def app(app_id="/hello2", instances=1, running=1, healthy=0, health_checks=False, deploying=False):
    return {"id": app_id, "instances": instances, "tasksRunning": running, "tasksStaged": 0,
            "tasksHealthy": healthy, "tasksUnhealthy": 0,
            "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/"}] if health_checks else [],
            "deployments": [{"id": "d-1"}] if deploying else [], "tasks": []}


def deployment(age_seconds, dep_id="d-1"):
    created = datetime.fromtimestamp(time.time() - age_seconds, timezone.utc)
    return {"id": dep_id, "version": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "affectedApps": ["/hello2"], "currentStep": 1, "totalSteps": 1,
            "currentActions": [{"action": "ScaleApplication", "app": "/hello2"}]}


class FakeMaster:
    """One master's three daemons, healthy by default (master1 leads all three)."""

    def __init__(self, name):
        self.name = name
        self.zk = FakeZooKeeper()
        self.mesos = FakeMarathon()       # a scripted HTTP server; here it plays mesos-master
        self.marathon = FakeMarathon()

    @property
    def marathon_address(self):
        return self.marathon.url.split("//", 1)[1]

    def host(self, original: inventory.Host) -> inventory.Host:
        port = lambda url: int(url.rsplit(":", 1)[1])  # noqa: E731
        return replace(original, ip="127.0.0.1", settings=replace(
            original.settings, zk_port=self.zk.port, mesos_port=port(self.mesos.url),
            marathon_port=port(self.marathon.url)))

    def close(self):
        for server in (self.zk, self.mesos, self.marathon):
            server.close()


class Fakes:
    def __init__(self):
        self.masters = {n: FakeMaster(n) for n in NAMES}
        base = inventory.parse(INVENTORY, "hosts.ini")
        self.cluster = replace(base, masters=tuple(self.masters[m.name].host(m) for m in base.masters))
        leader = self.masters["master1"]
        for name, m in self.masters.items():
            m.zk.answers = {"srvr": srvr("leader" if m is leader else "follower"), "mntr": mntr(2)}
            m.mesos.on("GET", "/metrics/snapshot", metrics(m is leader))
            m.marathon.on("GET", "/v2/leader", (200, {"leader": leader.marathon_address}))
        leader.mesos.on("GET", "/master/state",
                        (200, {"slaves": [agent(ip) for ip in SLAVES.values()]}))
        self.marathon(apps=[app()], deployments=[], queue=[])

    def __getitem__(self, name) -> FakeMaster:
        return self.masters[name]

    def marathon(self, *, apps=None, deployments=None, queue=None, on="master1"):
        fake = self.masters[on].marathon
        if apps is not None:
            fake.on("GET", APPS_PATH, (200, {"apps": apps}))
        if deployments is not None:
            fake.on("GET", "/v2/deployments", (200, deployments))
        if queue is not None:
            fake.on("GET", "/v2/queue", (200, {"queue": queue}))

    def check(self, **kwargs) -> status.Report:
        return status.check(self.cluster, timeout=FAST, **kwargs)

    def close(self):
        for m in self.masters.values():
            m.close()


@pytest.fixture
def fakes():
    f = Fakes()
    yield f
    f.close()


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def lines(report, severity):
    """The findings of one severity as "component subject: message" lines."""
    return [f"{f.component} {f.subject}: {f.message}" for f in report.findings
            if f.severity == severity]


def assert_one_finding(report, severity, pattern):
    assert report.exit_code == status.EXIT_CODES[severity], status.render(report)
    matching = [line for line in lines(report, severity) if pattern in line]
    assert matching, f"no {severity} finding with {pattern!r}:\n{status.render(report)}"
    return matching


# --- healthy ---------------------------------------------------------------------------------

def test_healthy_cluster_exits_0_with_a_summary_per_component(fakes):
    report = fakes.check()
    text = status.render(report)
    assert report.exit_code == 0 and report.findings == [], text
    first, *rest = text.splitlines()
    assert first == "HEALTHY"
    assert rest[0] == "zookeeper  master1 leader, master2 follower, master3 follower; 2/2 followers synced"
    assert rest[1] == ("mesos      leader master1; log recovered on 3/3 masters; agents active 3/3 "
                       "(slave1, slave2, slave3)")
    assert rest[2] == (f"marathon   leader {fakes['master1'].marathon_address}; 1 app, "
                       f"0 deployments running")


def test_json_has_the_documented_keys_and_the_same_verdict(fakes):
    fakes["master3"].zk.close()
    report = fakes.check()
    data = json.loads(status.to_json(report))
    assert (data["verdict"], data["exit_code"]) == ("degraded", 1)
    assert set(data) == {"verdict", "exit_code", "findings", "zookeeper", "mesos", "marathon"}
    assert data["findings"][0].keys() == {"severity", "component", "subject", "message"}
    assert [(f["component"], f["subject"]) for f in data["findings"]] == [("zookeeper", "master3")]
    zk_ = data["zookeeper"]
    assert zk_.keys() == {"members", "leader", "synced_followers", "expected_followers", "error"}
    assert zk_["members"]["master3"]["mode"] is None
    assert "Connection refused" in zk_["members"]["master3"]["error"]
    assert zk_["members"]["master1"] == {"address": f"127.0.0.1:{fakes['master1'].zk.port}",
                                         "mode": "leader", "error": None}
    mesos = data["mesos"]
    assert mesos.keys() == {"masters", "leader", "agents"}
    assert mesos["masters"]["master2"].keys() == {"address", "elected", "recovered", "error"}
    assert mesos["agents"] == {"active": ["slave1", "slave2", "slave3"], "missing": [],
                               "unknown": [], "error": None}
    marathon = data["marathon"]
    assert marathon.keys() == {"masters", "leader", "error", "apps", "deployments"}
    assert marathon["masters"]["master2"].keys() == {"address", "leader", "error"}
    assert marathon["apps"] == [{"id": "/hello2", "instances": 1, "running": 1, "healthy": None,
                                 "staged": 0, "deploying": False, "backoff_seconds": None}]


# --- degraded --------------------------------------------------------------------------------

def test_zookeeper_member_down_is_named_with_the_reason(fakes):
    fakes["master2"].zk.close()
    fakes["master1"].zk.answers["mntr"] = mntr(1)
    report = fakes.check()
    assert_one_finding(report, "degraded", "zookeeper master2: ZooKeeper 127.0.0.1:")
    assert_one_finding(report, "degraded", "zookeeper master1: leader has 1/2 followers synced")
    assert "Connection refused" in " ".join(lines(report, "degraded"))


def test_zookeeper_member_not_serving_or_standalone(fakes):
    fakes["master2"].zk.answers["srvr"] = "This ZooKeeper instance is not currently serving requests\n"
    fakes["master3"].zk.answers["srvr"] = srvr("standalone")
    report = fakes.check()
    assert_one_finding(report, "degraded", "master2: not serving requests")
    assert_one_finding(report, "degraded", "master3: standalone, not part of the 3-member ensemble")


def test_unreadable_mntr_is_named(fakes):
    fakes["master1"].zk.answers["mntr"] = "mntr is not executed because it is not in the whitelist.\n"
    assert_one_finding(fakes.check(), "degraded",
                       "zookeeper master1: cannot read synced followers: ZooKeeper 127.0.0.1:")


def test_mesos_standby_unreachable_or_not_recovered(fakes):
    fakes["master2"].mesos.close()
    fakes["master3"].mesos.on("GET", "/metrics/snapshot", metrics(0, recovered=0))
    report = fakes.check()
    assert_one_finding(report, "degraded", "mesos master2: GET http://127.0.0.1:")
    assert_one_finding(report, "degraded", "mesos master3: its replicated log is not recovered")


def test_agents_missing_and_unknown_are_named(fakes):
    fakes["master1"].mesos.on("GET", "/master/state", (200, {"slaves": [
        agent("192.0.2.51"), agent("192.0.2.52", active=False), agent("192.0.2.77")]}))
    report = fakes.check()
    assert_one_finding(report, "degraded", "mesos slave2: agent not active: registered but inactive")
    assert_one_finding(report, "degraded",
                       "mesos slave3: agent not active: not registered with the leading master master1")
    assert_one_finding(report, "degraded",
                       "mesos 192.0.2.77: active agent at 192.0.2.77 that the inventory does not know")
    assert report.facts["mesos"]["agents"] == {"active": ["slave1"], "missing": ["slave2", "slave3"],
                                               "unknown": ["192.0.2.77"], "error": None}


def test_agent_known_by_its_hostname(fakes):
    fakes["master1"].mesos.on("GET", "/master/state", (200, {"slaves": [
        agent(ip, hostname=name) for name, ip in SLAVES.items()]}))
    assert fakes.check().exit_code == 0


def test_marathon_down_on_one_master(fakes):
    fakes["master3"].marathon.close()
    report = fakes.check()
    assert_one_finding(report, "degraded", "marathon master3: no Marathon master answered GET /v2/leader: http://127.0.0.1:")


def test_deployment_older_than_the_threshold(fakes):
    fakes.marathon(apps=[app(running=0, deploying=True)], deployments=[deployment(900)])
    report = fakes.check()
    [line] = assert_one_finding(report, "degraded", "marathon d-1: deployment of /hello2 running for")
    assert "(over 600 s), step 1/1: ScaleApplication /hello2" in line
    # The app short of its instances is judged by its deployment, not twice.
    assert len(report.findings) == 1
    assert fakes.check(deployment_age=1200).exit_code == 0


def test_app_short_of_running_or_healthy_tasks(fakes):
    fakes.marathon(apps=[app("/web", instances=3, running=2),
                         app("/api", instances=2, running=2, healthy=1, health_checks=True),
                         app("/batch", instances=2, running=2, healthy=0)])   # no health checks
    report = fakes.check()
    assert_one_finding(report, "degraded", "marathon /web: 2/3 tasks running")
    assert_one_finding(report, "degraded", "marathon /api: 1/2 tasks healthy")
    assert not [f for f in report.findings if f.subject == "/batch"]


def test_app_in_launch_back_off(fakes):
    failure = {"state": "TASK_FAILED", "host": "192.0.2.51", "message": "Command exited with status 1"}
    fakes.marathon(apps=[{**app(running=0), "lastTaskFailure": failure}],
                   queue=[{"app": {"id": "/hello2"}, "count": 1,
                           "delay": {"timeLeftSeconds": 42, "overdue": False}}])
    report = fakes.check()
    assert_one_finding(report, "degraded",
                       "marathon /hello2: in launch back-off, next launch in 42 s; last failure "
                       "TASK_FAILED on 192.0.2.51: Command exited with status 1")
    assert report.facts["marathon"]["apps"][0]["backoff_seconds"] == 42


def test_an_overdue_queue_entry_is_not_a_back_off(fakes):
    fakes.marathon(queue=[{"app": {"id": "/hello2"}, "count": 1,
                           "delay": {"timeLeftSeconds": 0, "overdue": True}}])
    assert fakes.check().exit_code == 0


# --- down ------------------------------------------------------------------------------------

def test_no_zookeeper_quorum(fakes):
    for name in NAMES:
        fakes[name].zk.answers["srvr"] = "This ZooKeeper instance is not currently serving requests\n"
    assert_one_finding(fakes.check(), "down", "zookeeper : no quorum: no member leads")


def test_no_mesos_master_elected(fakes):
    fakes["master1"].mesos.on("GET", "/metrics/snapshot", metrics(0))
    assert_one_finding(fakes.check(), "down", "mesos : no leader: no master is elected")


def test_two_mesos_masters_claim_to_be_elected(fakes):
    fakes["master2"].mesos.on("GET", "/metrics/snapshot", metrics(1))
    assert_one_finding(fakes.check(), "down", "mesos : 2 masters claim to be elected: master1, master2")


def test_elected_master_without_recovered_log(fakes):
    fakes["master1"].mesos.on("GET", "/metrics/snapshot", metrics(1, recovered=0))
    assert_one_finding(fakes.check(), "down",
                       "mesos master1: elected but its replicated log is not recovered")


def test_no_marathon_leader(fakes):
    for name in NAMES:
        fakes[name].marathon.on("GET", "/v2/leader", (404, {"message": "There is no leader"}))
    assert_one_finding(fakes.check(), "down", "marathon : no leader: none is elected")


def test_every_master_unreachable_names_each_part(fakes):
    for name in NAMES:
        fakes[name].close()
    report = fakes.check()
    assert report.exit_code == 2
    assert set(lines(report, "down")) == {"zookeeper : no quorum: no member answered",
                                          "mesos : no leader: no master answered",
                                          "marathon : no leader: no master answered"}
    assert len(lines(report, "degraded")) == 9 and all(
        "Connection refused" in line for line in lines(report, "degraded"))
    assert status.render(report).splitlines()[0] == "DOWN: 12 problems"


def test_masters_that_accept_and_never_answer_are_named(fakes):
    hang = lambda conn, word: time.sleep(5)  # noqa: E731
    for name in NAMES:
        fakes[name].zk.behaviour = hang
        fakes[name].mesos.on("GET", "/metrics/snapshot", lambda handler: time.sleep(5))
        fakes[name].marathon.on("GET", "/v2/leader", lambda handler: time.sleep(5))
    report = fakes.check()
    assert report.exit_code == 2
    degraded = lines(report, "degraded")
    assert len(degraded) == 9
    assert all("within 1 s" in line for line in degraded), degraded


def test_malformed_answers_are_one_line_each(fakes):
    fakes["master2"].mesos.on("GET", "/metrics/snapshot", (200, b'{"master/elected": NaN}'))
    fakes["master3"].mesos.on("GET", "/metrics/snapshot", (200, {"master/elected": 0.0}))
    fakes["master1"].mesos.on("GET", "/master/state", (200, b"<html>proxy error</html>"))
    report = fakes.check()
    assert_one_finding(report, "degraded", "mesos master2: GET http://127.0.0.1:")
    assert_one_finding(report, "degraded", "mesos master3: 127.0.0.1:")
    assert_one_finding(report, "degraded", "/metrics/snapshot: no 'registrar/log/recovered' metric")
    assert_one_finding(report, "degraded", "mesos master1: cannot read the agents: ")
    assert all("\n" not in f.message for f in report.findings)


# --- the fab task ----------------------------------------------------------------------------

@pytest.mark.parametrize("as_json", [False, True])
def test_fab_task_prints_and_exits_with_the_verdict(fakes, monkeypatch, capsys, as_json):
    monkeypatch.setattr(cli, "load_cluster", lambda c: fakes.cluster)
    fakes["master1"].mesos.on("GET", "/metrics/snapshot", metrics(0))
    with pytest.raises(Exit) as exc:
        fabfile.cluster_status(Context(), json=as_json, timeout=FAST)
    assert exc.value.code == 2
    out = capsys.readouterr().out
    if as_json:
        assert json.loads(out)["verdict"] == "down"
    else:
        assert out.startswith("DOWN: 1 problem\n")


def test_fab_task_returns_normally_when_healthy(fakes, monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_cluster", lambda c: fakes.cluster)
    fabfile.cluster_status(Context(), timeout=FAST)
    assert capsys.readouterr().out.startswith("HEALTHY\n")
