"""The stand-in Marathon through day-2 operations, on loopback with a real ZooKeeper (test
equipment), as Marathon 1.4.8 behaves: it launches no copy of a task whose agent has not
re-registered after a master restart; a machine taken DOWN leaves its tasks unreachable, and
only apps whose unreachableStrategy allows it get them replaced at once; standbys answer with
the real proxy errors while the leader is gone, and a new leader takes over; the leader exits
when its ZooKeeper connection is suspended; Marathon 1.6's maintenance_mode keeps launches off
machines in a maintenance window. The tests build on each other, in file order.
Needs Debian's `zookeeper` package.
"""
import os
import signal
import time

import pytest
from kazoo.client import KazooClient

from testbed.standins import common
from testbed.standins.localrun import (standin, start_zookeeper, stop_cluster, wait_port,
                                       zookeeper_available)
from tests.unit.standins_local import free_port, get, get_ok, post, wait

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (apt-get install zookeeper)")
MASTER = "127.0.2.1"
AGENTS = ["127.0.2.51", "127.0.2.52"]
MARATHONS = ["127.0.2.1", "127.0.2.2"]
LOOP = "while true; do sleep 1; done"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """c.start(name) (re)starts "zk", "master", an agent ip or a Marathon ip; c.procs."""
    tmp = tmp_path_factory.mktemp("marathon-day2")
    ports = {"zk": free_port(), "master": free_port(MASTER),
             **{ip: free_port(ip) for ip in AGENTS},
             **{f"m{ip}": free_port(ip) for ip in MARATHONS}}
    zk = f"zk://127.0.0.1:{ports['zk']}"
    procs = {}

    class Cluster:
        def start(self, name, ready=True):
            log = str(tmp / f"{name}-{len(procs)}.log")
            if name == "zk":
                procs[name] = start_zookeeper(tmp / "zk", ports["zk"])
                return procs[name]
            if name == "master":
                args = ["mesos_master", [f"--zk={zk}/mesos", "--quorum=1", f"--ip={MASTER}",
                                         f"--port={ports['master']}", f"--work_dir={tmp}/m"]]
                ip, port = MASTER, ports["master"]
            elif name in AGENTS:
                args = ["mesos_slave", [f"--master={zk}/mesos", f"--ip={name}",
                                        f"--port={ports[name]}", f"--work_dir={tmp / name}",
                                        "--resources=cpus:1;mem:256"]]
                ip, port = name, ports[name]
            else:
                ip, port = name, ports[f"m{name}"]
                args = ["marathon", ["--master", f"{zk}/mesos", "--zk", f"{zk}/marathon",
                                     "--hostname", ip, "--http_address", ip,
                                     "--http_port", str(port)]]
            procs[name] = standin(*args, log)
            if ready:
                wait_port(ip, port)
            return procs[name]

        def marathon(self, ip):
            return f"http://{ip}:{ports['m' + ip]}"

        def api(self, path):
            """The first Marathon's answer that is a 200, or None."""
            for ip in MARATHONS:
                try:
                    status, body, _ = common.call("GET", self.marathon(ip) + path, timeout=5)
                except OSError:
                    continue
                if status == 200:
                    return body
            return None

        master = f"http://{MASTER}:{ports['master']}"

    c = Cluster()
    c.procs, c.tmp, c.zk = procs, tmp, zk
    try:
        for name in ["zk", "master"] + AGENTS + MARATHONS:
            c.start(name)
        wait(lambda: (c.api("/v2/leader") or {}).get("leader"), what="a Marathon leader")
        wait(lambda: get(f"{c.master}/master/state")["activated_slaves"] == 2)
        yield c
    finally:
        stop_cluster(procs, [tmp / ip for ip in AGENTS])


def deploy(c, app):
    leader = wait(lambda: (c.api("/v2/leader") or {}).get("leader"))
    status, body, _ = common.call("POST", f"http://{leader}/v2/apps", app)
    assert status == 201, body
    return wait(lambda: running(c, app["id"]), what=f"{app['id']} running")


def tasks(c, app_id):
    return ((c.api(f"/v2/apps/{app_id}") or {}).get("app") or {}).get("tasks")


def running(c, app_id):
    found = tasks(c, app_id) or []
    return [t for t in found if t["state"] == "TASK_RUNNING"]


def master_tasks(c):
    """{task id: state} of every framework, as the Mesos master lists them."""
    state = get(f"{c.master}/master/state")
    return {t["id"]: t["state"] for f in state["frameworks"]
            for key in ("tasks", "unreachable_tasks", "completed_tasks") for t in f[key]}


def test_no_copy_is_launched_while_the_tasks_agent_is_away(cluster):
    c = cluster
    first = deploy(c, {"id": "long", "cmd": LOOP, "cpus": 0.1, "mem": 16})[0]
    away = first["host"]
    c.procs[away].stop()            # its task keeps running (KillMode=process)
    c.procs["master"].stop()        # a new master knows no task until the agents report
    c.start("master")
    other = next(ip for ip in AGENTS if ip != away)
    wait(lambda: [a["hostname"] for a in get(f"{c.master}/master/state")["slaves"]] == [other],
         what="only the other agent registered")
    wait(lambda: any(f["name"] == "marathon" and f["active"]
                     for f in get(f"{c.master}/master/state")["frameworks"]))
    # Marathon keeps its own record: the task is still its one instance, and nothing is
    # launched on the agent that has room (the old stand-in did, 6 s after the change).
    time.sleep(8)
    assert master_tasks(c) == {}
    assert [(t["id"], t["state"]) for t in tasks(c, "/long")] == [(first["id"], "TASK_RUNNING")]
    c.start(away)
    wait(lambda: master_tasks(c) == {first["id"]: "TASK_RUNNING"}, what="the task reported")
    assert [t["id"] for t in running(c, "/long")] == [first["id"]]


def test_machine_down_leaves_tasks_unreachable_replaced_as_their_strategy_says(cluster):
    c = cluster
    now = {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    drained = deploy(c, {"id": "drained", "cmd": LOOP, "cpus": 0.1, "mem": 16,
                         "unreachableStrategy": now})[0]
    kept = deploy(c, {"id": "kept", "cmd": LOOP, "cpus": 0.1, "mem": 16})[0]
    assert drained["host"] == kept["host"]   # Marathon fills agents in order
    machine = {"hostname": drained["host"], "ip": drained["host"]}
    window = {"start": {"nanoseconds": int(time.time() * 1e9)}}
    assert post(f"{c.master}/master/maintenance/schedule", {"windows": [
        {"machine_ids": [machine], "unavailability": window}]})[0] == 200
    assert post(f"{c.master}/master/machine/down", [machine])[0] == 200
    # inactiveAfterSeconds 0: replaced on the other agent at once.
    moved = wait(lambda: [t for t in running(c, "/drained") if t["id"] != drained["id"]],
                 what="the drained task relaunched")
    assert moved[0]["host"] != drained["host"]
    assert [t["id"] for t in tasks(c, "/drained")] == [moved[0]["id"]]
    # The default strategy (300 s): the task is unreachable, counted, not replaced.
    wait(lambda: [t["state"] for t in tasks(c, "/kept")] == ["TASK_UNREACHABLE"])
    time.sleep(3)
    app = c.api("/v2/apps/kept")["app"]
    assert [t["id"] for t in app["tasks"]] == [kept["id"]] and app["tasksRunning"] == 0
    assert master_tasks(c)[kept["id"]] == "TASK_LOST"
    # Up again: the agent (it shut down) starts as a new one and is active.
    wait(lambda: not c.procs[drained["host"]].alive(), what="the agent's shutdown")
    assert post(f"{c.master}/master/machine/up", [machine])[0] == 200
    c.start(drained["host"])
    wait(lambda: sum(a["active"] for a in get(f"{c.master}/master/state")["slaves"]) == 2)


def test_standbys_proxy_and_one_takes_over_after_the_leader_dies(cluster):
    c = cluster
    leader = wait(lambda: (c.api("/v2/leader") or {}).get("leader")).split(":")[0]
    standby = next(ip for ip in MARATHONS if ip != leader)
    status, _, headers = common.call("GET", c.marathon(standby) + "/v2/apps")
    assert status == 200 and headers["X-Marathon-Via"] == f"1.1 {standby}:" \
        f"{c.marathon(standby).rsplit(':', 1)[1]}"
    c.procs[leader].kill()          # its candidate node lives until its session expires
    status, body, _ = common.raw_call("GET", c.marathon(standby) + "/v2/apps")
    assert status == 503 and b"Connection to leader refused." in body   # Marathon 1.4
    started = time.time()
    wait(lambda: common.call("GET", c.marathon(standby) + "/v2/apps")[0] == 200,
         timeout=30, what="the standby elected")
    assert time.time() - started < 15   # the session timeout, 10 s, and a margin
    assert (c.api("/v2/leader") or {}).get("leader", "").startswith(standby)
    c.start(leader)                 # back as a standby


def test_the_leader_exits_when_its_zookeeper_connection_is_suspended(cluster):
    c = cluster
    leader = wait(lambda: (c.api("/v2/leader") or {}).get("leader")).split(":")[0]
    c.procs["zk"].stop()
    wait(lambda: not c.procs[leader].alive(), timeout=20, what="the leader's exit")
    assert c.procs[leader].popen.returncode == 1
    assert "Lost leadership (ZooKeeper connection suspended); exiting" in \
        c.procs[leader].output()
    c.start("zk")
    other = next(ip for ip in MARATHONS if ip != leader)
    # The leader could not close its session (no server answered): its candidate node goes
    # when the session expires, 10 s after ZooKeeper is back; then the other one leads.
    wait(lambda: common.call("GET", c.marathon(other) + "/v2/leader")[1].get("leader", "")
         .startswith(other), timeout=60, what="the other Marathon elected")
    c.start(leader)
    assert [t["state"] for t in tasks(c, "/drained")] == ["TASK_RUNNING"]   # kept its task


def test_a_leader_cut_off_by_a_zookeeper_restart_ends_its_session_and_a_standby_leads_at_once(
        cluster):
    """The server restarts (its sessions survive): the leader, suspended, exits, but only after
    ending its session once connected again, so a standby leads within a second or two of
    ZooKeeper serving again, not after the 10 s session timeout."""
    c = cluster
    leader = wait(lambda: (c.api("/v2/leader") or {}).get("leader")).split(":")[0]
    other = next(ip for ip in MARATHONS if ip != leader and c.procs[ip].alive())
    c.procs["zk"].stop()
    c.start("zk")
    back = time.time()
    wait(lambda: not c.procs[leader].alive(), timeout=20, what="the leader's exit")
    wait(lambda: common.call("GET", c.marathon(other) + "/v2/leader")[1].get("leader", "")
         .startswith(other), timeout=20, what="the other Marathon elected")
    assert time.time() - back < 5, "the old leader's node lived on until its session expired"
    c.start(leader)


def test_marathon_1_6_with_maintenance_mode_keeps_launches_off_a_draining_machine(cluster):
    c = cluster
    port = free_port("127.0.2.3")
    old = standin("marathon", ["--master", f"{c.zk}/mesos", "--zk", f"{c.zk}/m14",
                               "--enable_features", "maintenance_mode"],
                  str(c.tmp / "m14.log"))
    assert old.popen.wait(20) == 1 and "Unknown features specified: maintenance_mode" in \
        old.output()
    new = standin("marathon", ["--master", f"{c.zk}/mesos", "--zk", f"{c.zk}/m16",
                               "--hostname", "127.0.2.3", "--http_address", "127.0.2.3",
                               "--http_port", str(port), "--enable_features",
                               "maintenance_mode"], str(c.tmp / "m16.log"),
                  versions={"marathon": "1.6.322"})
    try:
        api = f"http://127.0.2.3:{port}"
        # Until it is elected it holds requests, then answers 503 (an HTML page).
        assert wait(lambda: get_ok(api + "/v2/info"))["version"] == "1.6.322"
        first = sorted(get(f"{c.master}/master/state")["slaves"], key=lambda a: a["id"])[0]
        machine = {"hostname": first["hostname"], "ip": first["hostname"]}
        window = {"start": {"nanoseconds": int(time.time() * 1e9)},
                  "duration": {"nanoseconds": 3600 * 10**9}}
        assert post(f"{c.master}/master/maintenance/schedule", {"windows": [
            {"machine_ids": [machine], "unavailability": window}]})[0] == 200
        assert common.call("POST", api + "/v2/apps", {"id": "avoid", "cmd": LOOP, "cpus": 0.1,
                                                      "mem": 16})[0] == 201
        task = wait(lambda: common.call("GET", api + "/v2/apps/avoid")[1]["app"]["tasks"])[0]
        assert task["host"] != first["hostname"]
    finally:
        new.stop()
        post(f"{c.master}/master/maintenance/schedule", {})


def test_a_standby_joins_the_election_again_after_its_session_and_the_znode_are_gone(cluster):
    """As when an ensemble re-forms from another member's data: the standby's session has
    expired and the election's znode is gone. It stands again, creating the znode anew as
    Curator does, and leads."""
    c = cluster
    leader = wait(lambda: (c.api("/v2/leader") or {}).get("leader")).split(":")[0]
    standby = next(ip for ip in MARATHONS if ip != leader)
    os.kill(c.procs[standby].pid, signal.SIGSTOP)   # silent past its 10 s session timeout
    try:
        c.procs[leader].stop()
        admin = KazooClient(hosts=c.zk[len("zk://"):])
        admin.start(timeout=15)
        wait(lambda: admin.get_children("/marathon/leader") == [], timeout=20,
             what="the standby's session expired")
        admin.delete("/marathon/leader")
        admin.stop()
    finally:
        os.kill(c.procs[standby].pid, signal.SIGCONT)
    wait(lambda: common.call("GET", c.marathon(standby) + "/v2/leader")[1].get("leader", "")
         .startswith(standby), timeout=40, what="the standby elected")
    assert "joining the election again" in c.procs[standby].output()
