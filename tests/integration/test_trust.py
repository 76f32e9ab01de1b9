"""Safe to point at production hosts, shown on the testbed (Marathon 1.6, one bring-up): host
keys, a non-root login through sudo, Ctrl-C, the dpkg lock, an interrupted dpkg, concurrent
runs, the operator's own lines, authentication. Every run is the real `fab` as the `ops` user
(sudo without a password) unless a test says otherwise; each result is checked through what
the tool does not own: sshd's journal, files and processes read over ssh as root, HTTP.

The tests run in file order and build on each other: the first `fab cluster` is interrupted,
the second one finishes the cluster.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from testbed import config as tb_config
from testbed import hosts as tb
from tests.integration import conftest
from tests.integration.conftest import MASTERS, ROOT, SLAVES, cat, ip, wait_for

MARATHON_VERSION = "1.6.322"
OPERATOR_LINES = ["# ops: task launches may take long here (OPS-1234)",
                  "MARATHON_TASK_LAUNCH_TIMEOUT=600000"]


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    """A fresh Marathon 1.6 testbed; its inventory as `ops`, as `opspw`, and as `ops` with
    authentication on (secret files 0600 beside it)."""
    tb.down(log=lambda *a: None)
    tb.up(marathon_version=MARATHON_VERSION)
    tmp = tmp_path_factory.mktemp("trust")
    text = tb_config.INVENTORY.read_text()
    paths = {}
    for name, user in (("ops", "ops"), ("opspw", "opspw")):
        paths[name] = tmp / f"{name}.ini"
        paths[name].write_text(text.replace("ssh_user = root", f"ssh_user = {user}"))
    for secret, value in (("marathon.cred", "ops:it-http-pw"), ("framework.secret", "it-fw-secret")):
        (tmp / secret).write_text(value + "\n")
        (tmp / secret).chmod(0o600)
    paths["auth"] = tmp / "auth.ini"
    paths["auth"].write_text(paths["ops"].read_text() + "\n[masters:vars]\n"
                             "marathon_credentials_file = marathon.cred\n"
                             "mesos_framework_secret_file = framework.secret\n")
    return paths


def fab(inventory: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return conftest.fab(*args, timeout=600, inventory=inventory, env=env)


class Running:
    """`fab ...` started in the background; its output lines collected as they come."""

    def __init__(self, inventory: Path, *args: str):
        self.args = args
        self.proc = subprocess.Popen([conftest.FAB, *args], cwd=ROOT,
                                     env=conftest.fab_env(inventory), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, pattern: str) -> str | None:
        return next((line for line in list(self.lines) if re.search(pattern, line)), None)

    def wait(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(10)
        print(f"$ fab {' '.join(self.args)}  (exit {code})", *self.lines[-80:], sep="\n")
        return code


def root(host: str, command: str) -> str:
    result = tb.ssh(host, command)
    assert result.returncode == 0, f"{host}: {command}: {result.stderr}"
    return result.stdout


def hold_dpkg_lock(host: str) -> str:
    """Another process holds the dpkg frontend lock on `host` (as unattended-upgrades does on
    a fresh cloud machine): apt's own fcntl lock, for up to 5 minutes. Returns its pid."""
    hold = ("import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
            "fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(300)")
    pid = root(host, f"nohup python3 -c \"{hold}\" > /tmp/lock-holder.out 2>&1 & echo $!").strip()
    wait_for(f"the dpkg lock held on {host}",
             lambda: "held" in tb.ssh(host, "cat /tmp/lock-holder.out").stdout, timeout=10)
    return pid


def interrupted_lines(output: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in output:
        words = line.split(" ", 3)
        if len(words) >= 3 and words[2] == "interrupted:":
            found.setdefault(words[0], []).append(line)
    return found


# --- host keys ---------------------------------------------------------------------------------

def fingerprint(host: str, path: str) -> str:
    return root(host, f"ssh-keygen -l -f {path}").split()[1]


def test_a_host_whose_key_changed_is_refused_before_any_command(inventories):
    key = "/etc/ssh/ssh_host_ed25519_key"
    old = fingerprint("master1", key + ".pub")
    root("master1", f"cp {key} /root/old_key && cp {key}.pub /root/old_key.pub && "
                    f"rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -f {key} && "
                    "systemctl restart ssh")
    new = fingerprint("master1", key + ".pub")
    try:
        since = root("master1", "date +%s").strip()
        result = fab(inventories["ops"], "-H", "master1", "write-myid")
        assert result.returncode == 1
        assert (f"master1 write-myid failed: HOST KEY CHANGED for {ip('master1')}: known "
                f"ssh-ed25519 {old}, offered ssh-ed25519 {new}") in result.stdout
        # sshd saw the connection and no login: nothing ran.
        journal = root("master1", f"journalctl -u ssh --since=@{since} --no-pager -o cat")
        assert "Accepted publickey for ops" not in journal
    finally:
        root("master1", f"mv /root/old_key {key} && mv /root/old_key.pub {key}.pub && "
                        "systemctl restart ssh")


# --- Ctrl-C during a first `fab cluster` ------------------------------------------------------

def test_sigint_during_a_first_fab_cluster_stops_every_host(inventories):
    run = Running(inventories["ops"], "cluster")
    wait_for("apt-get install running on master1",
             # [i]: the shell running pgrep has the pattern in its own command line
             lambda: tb.ssh("master1", "pgrep -f 'apt-get [i]nstall'").returncode == 0,
             timeout=120, interval=0.2)
    run.proc.send_signal(signal.SIGINT)
    assert run.wait(timeout=300) == 130
    stopped = interrupted_lines(run.lines)
    assert sorted(stopped) == sorted(MASTERS + SLAVES), "every host says where it stopped"
    assert all(len(lines) == 1 for lines in stopped.values())
    assert any("SIGINT: stopping: no further step starts on any host" in l for l in run.lines)
    # No step started anywhere after the signal: the slaves were not touched at all, and no
    # master has a file of the config steps or a restart owed.
    for s in SLAVES:
        assert tb.ssh(s, "test -e /etc/apt/sources.list.d/mesosphere.list").returncode != 0
    for m in MASTERS:
        assert tb.ssh(m, "test -e /var/lib/mesos-fab/restart").returncode != 0
        assert "clientPortAddress" not in tb.ssh(m, "cat /etc/zookeeper/conf/zoo.cfg").stdout
        # The install that was running finished: dpkg is not left half done.
        assert root(m, "ls /var/lib/dpkg/updates").strip() == ""


# --- the re-run: the dpkg lock held, the operator's lines, ZooKeeper bound ------------------------

def test_the_rerun_converges_waiting_for_the_dpkg_lock_and_keeping_the_operators_lines(inventories):
    root("master2", "printf '%s\\n' " + " ".join(f"'{line}'" for line in OPERATOR_LINES)
         + " > /etc/default/marathon && chmod 644 /etc/default/marathon")
    holder = hold_dpkg_lock("slave1")
    run = Running(inventories["ops"], "cluster")
    waiting = wait_for("slave1 waiting for the dpkg lock",
                       lambda: run.saw(r"^slave1 waiting for the dpkg lock: E: Could not get lock"),
                       timeout=300, interval=0.5)
    time.sleep(3)
    root("slave1", f"kill {holder}")
    assert run.wait() == 0
    assert f"It is held by process {holder} (python3)" in waiting
    assert run.saw(r"^slave1 install-slave changed \(install mesos\)")
    assert run.saw(r"^RECAP")
    # The operator's lines, in their place, then the tool's block; 0600; Marathon has the flag.
    lines = cat("master2", "/etc/default/marathon").splitlines()
    assert lines[:2] == OPERATOR_LINES
    assert lines[2].startswith("# BEGIN mesos-fab") and lines[-1] == "# END mesos-fab"
    assert root("master2", "stat -c '%a %U' /etc/default/marathon").split() == ["600", "root"]
    assert "--task_launch_timeout 600000" in root("master2", "ps -eo args")
    # ZooKeeper listens on the host's address only, and answers only the tool's words.
    for m in MASTERS:
        [listening] = root(m, "ss -Hltn 'sport = :2181'").splitlines()
        assert listening.split()[3] in (f"{ip(m)}:2181", f"[::ffff:{ip(m)}]:2181"), listening
    refused = zk_word("master1", "stat")
    assert "stat is not executed because it is not in the whitelist" in refused
    assert "Mode: " in zk_word("master1", "srvr")
    assert fab(inventories["ops"], "cluster-status").returncode == 0


def zk_word(host: str, word: str) -> str:
    with socket.create_connection((ip(host), 2181), timeout=5) as s:
        s.sendall(word.encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode()


# --- an install whose dpkg is killed -------------------------------------------------------------

def test_an_install_whose_dpkg_is_killed_is_repaired_by_the_next_run(inventories):
    # Killed while its journal holds an update it has not merged: what apt then calls "dpkg
    # was interrupted" (a kill at another moment leaves nothing to repair: tried again).
    kill = ("pgrep -x dpkg >/dev/null && [ -n \"$(ls /var/lib/dpkg/updates)\" ] && "
            "pkill -KILL -x dpkg && echo KILLED")
    for attempt in range(5):
        root("slave3", "DEBIAN_FRONTEND=noninteractive apt-get -y -q purge mesos >/dev/null 2>&1")
        run = Running(inventories["ops"], "-H", "slave3", "slave")
        killed = False
        end = time.monotonic() + 120
        while run.proc.poll() is None and time.monotonic() < end and not killed:
            killed = "KILLED" in tb.ssh("slave3", kill).stdout
        code = run.wait()
        if killed and root("slave3", "ls /var/lib/dpkg/updates").strip():
            break
    assert killed, "dpkg was never caught with its journal open"
    assert code == 1 and run.saw(r"^slave3 install-slave failed: ")
    assert root("slave3", "ls /var/lib/dpkg/updates").strip() != "", "dpkg was interrupted"
    result = fab(inventories["ops"], "cluster")
    assert result.returncode == 0
    assert ("slave3 install-slave changed (repair the interrupted dpkg (dpkg --configure -a); "
            "install mesos)") in result.stdout
    assert root("slave3", "dpkg --audit; ls /var/lib/dpkg/updates").strip() == ""
    assert root("slave3", "systemctl is-active mesos-slave").strip() == "active"


# --- two runs at once ----------------------------------------------------------------------------

def test_a_second_concurrent_run_fails_at_once_naming_the_holder(inventories):
    # Something to do on every master, so the first run holds its locks for a while.
    for m in MASTERS:
        root(m, "sed -i 's/^tickTime=2000$/tickTime=2001/' /etc/zookeeper/conf/zoo.cfg")
    first = Running(inventories["ops"], "cluster")
    wait_for("the first run's lock on every host", lambda: all(
        f"fab pid {first.proc.pid} on " in tb.ssh(h, "cat /run/mesos-fab.lock").stdout
        for h in MASTERS + SLAVES), timeout=60, interval=0.2)
    started = time.monotonic()
    second = fab(inventories["ops"], "cluster")
    took = time.monotonic() - started
    waiting = Running(inventories["ops"], "cluster", "--wait-lock")
    assert first.wait() == 0
    assert waiting.wait() == 0
    assert second.returncode == 1 and took < 15
    for h in MASTERS + SLAVES:
        assert re.search(rf"^{h} add-repo failed: another run holds the lock /run/mesos-fab.lock: "
                         rf"fab pid {first.proc.pid} on \S+ \(user root\), started "
                         r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(pid \d+ on the host\)",
                         second.stdout, re.M), h
    assert waiting.saw(rf"waiting for the run lock, held by fab pid {first.proc.pid} ")
    for m in MASTERS:
        assert "tickTime=2000" in cat(m, "/etc/zookeeper/conf/zoo.cfg")


# --- a sudo password -------------------------------------------------------------------------------

def test_a_login_whose_sudo_wants_a_password(inventories):
    ok = fab(inventories["opspw"], "-H", "master1,slave1", "write-zk",
             FABRIC_SUDO_PASSWORD="testbed-sudo-pw")
    assert ok.returncode == 0
    assert "master1 write-zk ok" in ok.stdout and "slave1 write-zk ok" in ok.stdout
    wrong = fab(inventories["opspw"], "-H", "master1", "write-zk", FABRIC_SUDO_PASSWORD="nope-pw")
    assert wrong.returncode == 1
    assert "master1 write-zk failed: sudo on master1 refused the password" in wrong.stdout
    assert "nope-pw" not in wrong.stdout + wrong.stderr


# --- authentication switched on ------------------------------------------------------------------

def marathon(host: str, path: str, auth=None) -> requests.Response:
    return requests.get(f"http://{ip(host)}:8080{path}", auth=auth, timeout=5)


def test_authentication_on_and_deploy_app_still_works(inventories):
    result = fab(inventories["auth"], "cluster")
    assert result.returncode == 0
    for m in MASTERS:
        assert f"{m} set-framework-auth changed" in result.stdout
        assert root(m, "stat -c '%a' /etc/mesos/credentials /etc/marathon/mesos.secret").split() \
            == ["600", "600"]
    # Marathon: 401 without the credentials, on every path; the tool's calls carry them.
    auth = ("ops", "it-http-pw")
    denied = marathon("master1", "/v2/apps")
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"] == 'basic realm="Mesosphere"'
    wait_for("Marathon answering with the credentials",
             lambda: marathon("master1", "/v2/leader", auth).status_code == 200, timeout=120)
    # Mesos: only authenticated frameworks; Marathon registered as its principal.
    leader = wait_for("a Mesos leader", lambda: next(
        (m for m in MASTERS if requests.get(f"http://{ip(m)}:5050/metrics/snapshot", timeout=5)
         .json().get("master/elected") == 1), None), timeout=60)
    state = requests.get(f"http://{ip(leader)}:5050/master/state", timeout=5).json()
    assert state["flags"]["authenticate_frameworks"] == "true"
    wait_for("Marathon registered as principal marathon", lambda: [
        f for f in requests.get(f"http://{ip(leader)}:5050/master/state", timeout=5)
        .json()["frameworks"] if f["name"] == "marathon" and f.get("principal") == "marathon"],
        timeout=120)
    # A framework that does not authenticate is refused (the stand-in's registration call).
    refused = requests.post(f"http://{ip(leader)}:5050/standin/register_framework",
                            json={"name": "rogue", "pid": "scheduler-rogue@192.0.2.99"}, timeout=5)
    assert refused.status_code == 403
    assert refused.json()["message"] == "Framework at scheduler-rogue@192.0.2.99 is not authenticated"
    deployed = fab(inventories["auth"], "deploy-app", "--file", "examples/hello2.json",
                   "--timeout", "180")
    assert deployed.returncode == 0
    app = marathon("master2", "/v2/apps/hello2", auth).json()["app"]
    assert app["tasksRunning"] >= 1
    assert fab(inventories["auth"], "cluster-status").returncode == 0
    # Without the credentials file the tool says why it cannot, in one line.
    unauthorized = fab(inventories["ops"], "app-list")
    assert unauthorized.returncode == 1
    assert "HTTP 401: Marathon asks for credentials (HTTP basic auth) and none are set" in \
        unauthorized.stderr
