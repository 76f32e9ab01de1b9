"""The tutorial, end to end, on the testbed's real hosts (real SSH, apt, systemd, ZooKeeper;
Mesos and Marathon are the testbed's stand-ins).

The tests run in file order and build on each other: a fresh cluster, an idempotent re-run,
the hello app, a master crash, a repaired ZooKeeper member, a host down during a run; the
runbook's one-host-at-a-time path runs last, on a second fresh testbed.
"""

from __future__ import annotations

import re
import time
from testbed import hosts as tb
from tests.integration.conftest import (MASTERS, ROOT, SLAVES, active_agents, cat, fab, ip,
                                        mesos_leader, service_start, try_json, wait_for, zk_mode,
                                        http_get)

MASTER_SERVICES = ("zookeeper", "mesos-master", "marathon")


def zk_url(path: str) -> str:
    return "zk://" + ",".join(f"{ip(m)}:2181" for m in MASTERS) + path


def assert_tutorial_files() -> None:
    """Every file the tutorial edits, on every host, with the content derived from the inventory."""
    for host in MASTERS + SLAVES:
        assert cat(host, "/etc/mesos/zk") == zk_url("/mesos") + "\n"
    servers = [f"server.{i}={ip(m)}:2888:3888" for i, m in enumerate(MASTERS, 1)]
    for i, m in enumerate(MASTERS, 1):
        assert cat(m, "/etc/zookeeper/conf/myid") == f"{i}\n"
        zoo = cat(m, "/etc/zookeeper/conf/zoo.cfg").splitlines()
        assert [l for l in zoo if l.startswith("server.")] == servers
        assert "dataDir=/var/lib/zookeeper" in zoo and "admin.enableServer=false" in zoo
        assert "4lw.commands.whitelist=srvr,mntr" in zoo
        assert f"clientPortAddress={ip(m)}" in zoo
        assert "autopurge.snapRetainCount=3" in zoo and "autopurge.purgeInterval=24" in zoo
        assert cat(m, "/etc/mesos-master/quorum") == "2\n"
        assert cat(m, "/etc/mesos-master/ip") == ip(m) + "\n"
        assert cat(m, "/etc/mesos-master/hostname") == ip(m) + "\n"
        # The testbed's Marathon is 1.4: the tutorial's conf dir.
        assert cat(m, "/etc/marathon/conf/hostname") == ip(m) + "\n"
        assert cat(m, "/etc/marathon/conf/master") == zk_url("/mesos") + "\n"
        assert cat(m, "/etc/marathon/conf/zk") == zk_url("/marathon") + "\n"
    for s in SLAVES:
        assert cat(s, "/etc/mesos-slave/ip") == ip(s) + "\n"
        assert cat(s, "/etc/mesos-slave/hostname") == ip(s) + "\n"


def assert_services_placed() -> None:
    for m in MASTERS:
        assert tb.ssh(m, "systemctl is-active mesos-slave").stdout.strip() != "active"
        assert tb.ssh(m, "systemctl is-enabled mesos-slave").stdout.strip() == "disabled"
    for s in SLAVES:
        for svc in ("zookeeper", "mesos-master"):
            assert tb.ssh(s, f"systemctl is-active {svc}").stdout.strip() != "active", (s, svc)


def zk_modes(masters=MASTERS) -> list[str]:
    return sorted(zk_mode(m) for m in masters)


def assert_cluster_healthy(masters=MASTERS, agents=3, timeout=90) -> str:
    """ZooKeeper one leader + followers, one Mesos leader that the others redirect to, every
    agent active, Marathon answering on every master with one leader. Returns the Mesos leader."""
    followers = ["follower"] * (len(masters) - 1)
    wait_for("ZooKeeper ensemble", lambda: zk_modes(masters) == sorted(["leader"] + followers)
             or None, timeout)
    leader = wait_for("one Mesos leader", lambda: mesos_leader(masters), timeout)
    for m in masters:
        if m != leader:
            r = http_get(m, 5050, "/master/redirect")
            assert r.status_code == 307 and ip(leader) in r.headers["Location"], (m, r.headers)
    wait_for(f"{agents} active agents", lambda: len(active_agents(leader)) == agents or None, timeout)
    for m in masters:
        wait_for(f"Marathon /ping on {m}", lambda: http_get(m, 8080, "/ping").text.strip() == "pong"
                 if try_json(m, 8080, "/v2/info") is not None else None, timeout)
    def marathon_leader():
        # Every master names the same leader (None: a master that did not answer).
        named = {(try_json(m, 8080, "/v2/leader") or {}).get("leader") for m in masters}
        return named.pop() if len(named) == 1 and None not in named else None
    wait_for("one Marathon leader", marathon_leader, timeout)
    return leader


def recap_changed(output: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+ok=\d+\s+changed=(\d+)\s+failed=\d+$", output, re.M)}


# --- 1. fab cluster on a fresh testbed -------------------------------------------------------

def test_fab_cluster_builds_the_tutorials_cluster(fresh_testbed):
    result = fab("cluster")
    assert result.returncode == 0
    assert "FAILED" not in result.stdout
    assert_tutorial_files()
    assert_services_placed()
    assert_cluster_healthy()


# --- 2. a second run changes nothing ---------------------------------------------------------

def test_second_run_changes_and_restarts_nothing():
    before = {(h, s): service_start(h, s) for h in MASTERS for s in MASTER_SERVICES}
    before.update({(h, "mesos-slave"): service_start(h, "mesos-slave") for h in SLAVES})
    result = fab("cluster")
    assert result.returncode == 0
    changed = recap_changed(result.stdout)
    assert set(changed) == set(MASTERS + SLAVES) and not any(changed.values()), changed
    assert not re.search(r"^\S+ \S+ changed", result.stdout, re.M)
    after = {key: service_start(*key) for key in before}
    assert after == before


# --- 2b. the dry run shows what the run then does -------------------------------------------

def planned_changes(output: str) -> list[tuple[str, str]]:
    """(step, change) of every `HOST STEP would CHANGE` line of a dry run."""
    return re.findall(r"^master2 (\S+) would (.+)$", output, re.M)


def applied_changes(output: str) -> list[tuple[str, str]]:
    """(step, change) of every change a real run reported (`HOST STEP changed (a; b)`)."""
    return [(step, change) for step, changes in
            re.findall(r"^master2 (\S+) changed \((.+)\)$", output, re.M)
            for change in changes.split("; ")]


def marathon_left_by_itself(host: str, since: float) -> bool:
    """Marathon 1.4's leader exits as soon as the ZooKeeper server it talks to goes away
    (Curator's LeaderLatch loses leadership, Marathon terminates) and systemd starts it again:
    a restart, but not one the tool made."""
    journal = tb.ssh(host, f"journalctl -u marathon --no-pager --since=@{int(since)}").stdout
    return "Lost leadership (ZooKeeper connection suspended)" in journal


def test_dry_run_of_a_drifted_zoo_cfg_shows_the_restart_the_run_then_does():
    started = time.time()
    before = {(m, s): service_start(m, s) for m in MASTERS for s in MASTER_SERVICES}
    tb.ssh("master2", "sed -i 's/^tickTime=2000$/tickTime=3000/' /etc/zookeeper/conf/zoo.cfg")
    dry = fab("-H", "master2", "master", "--dry-run")
    assert dry.returncode == 0
    assert "-tickTime=3000\n+tickTime=2000\n" in dry.stdout
    planned = planned_changes(dry.stdout)
    assert ("write-zoo-cfg", "write /etc/zookeeper/conf/zoo.cfg") in planned
    assert ("start-services", "restart zookeeper (marked for a restart)") in planned
    assert cat("master2", "/etc/zookeeper/conf/zoo.cfg").count("tickTime=3000") == 1, \
        "the dry run changed nothing"

    # ZooKeeper serves on master2: its restart is gated (from the control machine).
    assert [c for c in planned if c[0] == "wait-zookeeper"] == [(
        "wait-zookeeper", "wait until ZooKeeper on master2 leader or follower again, and the "
        "leader's zk_synced_followers = 2")]

    real = fab("-H", "master2", "master")
    assert real.returncode == 0
    assert applied_changes(real.stdout) == [c for c in planned if c[0] != "wait-zookeeper"]
    assert re.search(r"^master2 wait-zookeeper ok$", real.stdout, re.M)
    assert "tickTime=2000" in cat("master2", "/etc/zookeeper/conf/zoo.cfg").splitlines()
    after = {key: service_start(*key) for key in before}
    restarted = [(m, s) for (m, s) in before if after[(m, s)] != before[(m, s)]
                 and not (s == "marathon" and marathon_left_by_itself(m, started))]
    assert restarted == [("master2", "zookeeper")]
    assert_cluster_healthy()


# --- 3. the tutorial's app -------------------------------------------------------------------

def running_tasks():
    for m in MASTERS:
        app = (try_json(m, 8080, "/v2/apps/hello2") or {}).get("app")
        if app is not None:
            return [t for t in app.get("tasks", []) if t.get("state") == "TASK_RUNNING"]
    return None


def test_deploy_app_runs_hello_and_marathon_restarts_it():
    result = fab("deploy-app", "--file", str(ROOT / "examples" / "hello2.json"))
    assert result.returncode == 0, result.stderr
    tasks = wait_for("one running hello2 task", lambda: running_tasks() if len(running_tasks() or []) == 1 else None)
    first = tasks[0]
    agent = next(s for s in SLAVES if ip(s) == first["host"])
    stdout = tb.ssh(agent, "cat /var/lib/mesos/slaves/*/frameworks/*/executors/"
                           f"{first['id']}/runs/*/stdout")
    assert "hello" in stdout.stdout
    # `sleep 10` ends the task; Marathon starts a new one.
    wait_for("hello2 restarted", lambda: any(t["id"] != first["id"] for t in running_tasks() or []),
             timeout=60)


# --- 4. the leading master's host crashes ----------------------------------------------------

def test_master_crash_elects_new_leaders_and_the_host_rejoins():
    leader = mesos_leader()
    assert leader
    tb.kill_host(leader)
    try:
        survivors = tuple(m for m in MASTERS if m != leader)
        started = time.monotonic()
        new_leader = assert_cluster_healthy(survivors, timeout=60)
        assert new_leader != leader
        print(f"new leaders after {time.monotonic() - started:.1f} s")
        wait_for("hello2 still running", lambda: running_tasks() or None, timeout=60)
    finally:
        tb.start_host(leader)
    assert_cluster_healthy()
    assert zk_mode(leader) in ("leader", "follower")


# --- 6. a corrupt myid, repaired on that host alone ------------------------------------------

def test_corrupt_myid_repaired_with_write_myid_and_start_services():
    tb.ssh("master2", "echo 'not a number' > /etc/zookeeper/conf/myid && systemctl restart zookeeper")
    wait_for("master2's ZooKeeper down", lambda: zk_mode("master2") not in ("leader", "follower"))
    assert fab("-H", "master2", "write-myid").returncode == 0
    result = fab("-H", "master2", "start-services")
    assert result.returncode == 0
    assert re.search(r"^master2 start-services changed .*restart zookeeper", result.stdout, re.M)
    assert_cluster_healthy()
    assert fab("-H", "master2", "write-myid").stdout.count("master2 write-myid ok") == 1


def test_a_zookeeper_whose_jvm_died_is_seen_and_started_again():
    """Debian's zookeeper is a SysV script: its systemd unit stays "active (exited)" after the
    JVM died, and the script's own `status` says the same; fab must see the JVM gone."""
    pid = tb.ssh("master3", "cat /var/run/zookeeper/zookeeper.pid").stdout.strip()
    assert pid.isdigit(), pid
    assert tb.ssh("master3", f"kill -9 {pid}").returncode == 0
    wait_for("master3's ZooKeeper down", lambda: zk_mode("master3").startswith("down") or None)
    assert tb.ssh("master3", "systemctl is-active zookeeper").stdout.strip() == "active"
    result = fab("-H", "master3", "start-services")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^master3 start-services changed .*start zookeeper", result.stdout, re.M), \
        result.stdout
    assert_cluster_healthy()


# --- 7. a host down during fab cluster -------------------------------------------------------

def test_host_down_is_named_and_a_rerun_completes():
    tb.stop_host("slave3")
    try:
        result = fab("cluster")
        assert result.returncode != 0
        assert re.search(r"^FAILED slave3 add-repo: cannot reach", result.stdout, re.M)
        recap = re.findall(r"^(\S+)\s+ok=\d+\s+changed=\d+\s+failed=(\d+)$", result.stdout, re.M)
        assert dict(recap) == {**{h: "0" for h in MASTERS + SLAVES}, "slave3": "1"}
    finally:
        tb.start_host("slave3")
    result = fab("cluster")
    assert result.returncode == 0
    assert_cluster_healthy()


# --- 5. the runbook, one host at a time ------------------------------------------------------

def runbook_commands(section: str) -> list[list[str]]:
    text = (ROOT / "runbooks" / "bootstrap-cluster.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [line.split()[1:] for line in body.splitlines() if re.match(r"^\s+fab -H \S+ [a-z-]+$", line)]


def test_runbook_one_host_at_a_time_reaches_the_same_state():
    tb.down(log=lambda *a: None)
    tb.up()
    for section, hosts in (("Masters", MASTERS), ("Slaves", SLAVES)):
        for command in runbook_commands(section):
            _, example_host, step = command
            for host in hosts:
                result = fab("-H", host, step)
                assert result.returncode == 0, f"fab -H {host} {step}"
    assert_tutorial_files()
    assert_services_placed()
    assert_cluster_healthy()
    # The same state as `fab cluster`: it has nothing left to change.
    result = fab("cluster")
    assert result.returncode == 0 and not any(recap_changed(result.stdout).values())


# --- Marathon >= 1.5 reads only /etc/default/marathon ----------------------------------------

def test_marathon_1_6_is_configured_through_etc_default():
    tb.down(log=lambda *a: None)
    tb.up(marathon_version="1.6.322")
    result = fab("cluster")
    assert result.returncode == 0
    for m in MASTERS:
        block = cat(m, "/etc/default/marathon").splitlines()
        assert block[0].startswith("# BEGIN mesos-fab") and block[-1] == "# END mesos-fab"
        assert block[1:-1] == [
            f"MARATHON_HOSTNAME={ip(m)}", f"MARATHON_MASTER={zk_url('/mesos')}",
            f"MARATHON_ZK={zk_url('/marathon')}"]
        # The tutorial's conf dir is not written: Marathon 1.5+ would ignore it.
        assert tb.ssh(m, "test -e /etc/marathon/conf").returncode != 0
    assert_cluster_healthy()
    result = fab("cluster")
    assert result.returncode == 0 and not any(recap_changed(result.stdout).values())
