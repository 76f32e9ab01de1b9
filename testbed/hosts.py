"""Bring the testbed's hosts up and down, and the helpers integration tests use on them.

A host is a network namespace `tb-NAME` (see net.py; `tbINST-NAME` in instance INST), an overlay root (see rootfs.py) and a
real systemd booted by `systemd-nspawn` in cgroups of its own, reachable over SSH as root with
the testbed key. Everything here acts on the instance $MESOS_TESTBED names (config.INSTANCE)
and never on another's. The machine-readable state is `config.STATE_FILE` (JSON):

    {"subnet", "bridge", "slaves", "marathon_version", "repo": {...}|null, "http_pid",
     "hosts": [{"name", "ip", "role", "myid", "netns", "root", "nspawn_pid", "leader_pid",
                "cgroups": [...]}], "created"}

Public helpers for integration tests (all need root, and the testbed up):
    load_state() -> dict | None         the state above, or None when the testbed is down
    host_ip(name) -> str                 a host's address
    ssh(name, command, timeout=30) -> subprocess.CompletedProcess
                                         run a shell command on a host (text, captured output)
    kill_host(name)                      crash: SIGKILL the container's init; no clean shutdown
    stop_host(name)                      clean poweroff (SIGTERM to nspawn), waits for it
    start_host(name)                     boot a stopped/killed host again on its existing
                                         overlay (files kept) and wait until it is up
    add_host(name, role, ip=None, myid=None) -> config.Host
                                         a new, fresh host on the running testbed (as `up`
                                         makes them), booted; the others' /etc/hosts name it
    remove_host(name)                    the host is gone for good: powered off (if it still
                                         runs), its overlay, link, namespace and cgroups deleted
    up(...) / down() / status()          what the `fab testbed.*` tasks call

The inventory (config.INVENTORY) is written by `up` when it builds a testbed, and deleted by
`down`; add_host and remove_host never touch it. The inventory is the operator's file: after
adding a host the operator adds its line (config.inventory_line, which `fab testbed.add-host`
prints), after removing one deletes it, as the integration tests of adding agents and replacing
a master do. A tool that rewrote it behind them would hide whether the project copes with an
operator's edit.

`up` is a no-op when a testbed with the same settings is up and healthy; otherwise it tears
down whatever exists (also leftovers of a crashed run) and builds a fresh one.

ZooKeeper's Java heap is left at the package's default (a quarter of RAM as a *limit*): only
the three masters run it and each JVM idles at ~45-65 MiB RSS. Setting -Xmx would mean editing
the package's /etc/zookeeper/conf/environment, which the tool under test owns, or a global
JAVA_TOOL_OPTIONS, which every JVM echoes on stderr; both would change what is being tested.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from testbed import config, net, rootfs

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


# --- state ----------------------------------------------------------------------------------
def load_state() -> dict | None:
    """The testbed's state (see the module docstring), or None when it is not up."""
    try:
        return json.loads(config.STATE_FILE.read_text())
    except FileNotFoundError:
        return None


def _save_state(state: dict) -> None:
    config.STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = config.STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.rename(config.STATE_FILE)


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive flock on `path` (created if need be) for the `with` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _host(state: dict, name: str) -> dict:
    for h in state["hosts"]:
        if h["name"] == name:
            return h
    raise KeyError(f"no testbed host {name!r}")


def _require_state() -> dict:
    state = load_state()
    if state is None:
        raise RuntimeError("the testbed is not up (run `fab testbed.up`)")
    return state


def host_ip(name: str) -> str:
    """The address of testbed host `name` (e.g. "master1")."""
    return _host(_require_state(), name)["ip"]


# --- SSH ------------------------------------------------------------------------------------
def ssh_argv(ip: str) -> list[str]:
    return ["ssh", "-i", str(config.KEY_FILE), *SSH_OPTS, f"root@{ip}"]


def ssh(name: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `command` (a shell string, quote its values with shlex.quote) as root on host
    `name` with the system ssh and the testbed key. Never raises on a non-zero exit;
    raises subprocess.TimeoutExpired after `timeout` seconds."""
    return subprocess.run(ssh_argv(host_ip(name)) + [command], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _ensure_key() -> str:
    if not config.KEY_FILE.exists():
        config.STATE_DIR.mkdir(parents=True, exist_ok=True)
        net.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mesos-testbed",
                 "-f", str(config.KEY_FILE)])
    return Path(str(config.KEY_FILE) + ".pub").read_text()


# --- processes and cgroups ------------------------------------------------------------------
def _cmdline(pid: int | None) -> list[str]:
    if not pid:
        return []
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _machine(name: str) -> str:
    # nspawn keeps per-machine files under the shared /run/systemd/nspawn: every instance
    # has a master1, so the machine name carries the instance's prefix (the hostname not).
    return config.PREFIX + name


def _is_nspawn(pid: int | None, name: str) -> bool:
    # Guard against PID reuse: only signal a process that is still that host's nspawn.
    argv = _cmdline(pid)
    return "systemd-nspawn" in " ".join(argv[:3]) and f"--machine={_machine(name)}" in argv


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _leader(nspawn_pid: int) -> int | None:
    """The container's init: the nspawn child that is PID 1 in its own PID namespace."""
    for child in _children(nspawn_pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                return child
    return None


def _own_cgroup(hierarchy: str) -> str:
    """This process's cgroup in a hierarchy (v1 by controller name, v2 as "unified")."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        names = ctrls.split(",")
        if (hierarchy == "unified" and ctrls == "") or hierarchy in names \
                or f"name={hierarchy}" in names:
            return path
    return "/"


def _cgroup_dirs(name: str) -> list[str]:
    """One cgroup per hierarchy for the host, beside ours: guests' systemds sharing a cgroup
    race each other ("status=219/CGROUP"), and it gives per-host memory figures."""
    out = []
    for h in config.CGROUP_HIERARCHIES:
        top = Path("/sys/fs/cgroup") / h
        if top.is_dir():
            out.append(str(top / _own_cgroup(h).lstrip("/") / (config.PREFIX + name)))
    return out


def _find_cgroups() -> list[Path]:
    """Every tb-* cgroup directory near the top of each hierarchy (leftovers included)."""
    found = []
    for h in config.CGROUP_HIERARCHIES:
        top = Path("/sys/fs/cgroup") / h
        for depth in ("", "*/", "*/*/"):
            found += [p for p in top.glob(depth + config.PREFIX + "*") if p.is_dir()]
    return found


def _cgroup_pids(d: Path) -> list[int]:
    pids = []
    for procs in d.rglob("cgroup.procs"):
        try:
            pids += [int(p) for p in procs.read_text().split()]
        except OSError:
            pass
    return pids


def _empty_cgroups(cgroups: list[Path]) -> None:
    """SIGKILL (by PID) whatever still runs in these cgroups of ours, then remove them."""
    for _ in range(20):
        left = sorted({p for d in cgroups for p in _cgroup_pids(d)})
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    for d in cgroups:
        _rmdir_tree(d)


def _rmdir_tree(d: Path) -> None:
    subs = sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                  reverse=True)
    for p in subs + [d]:
        try:
            os.rmdir(p)
        except OSError:
            pass


# --- booting one host -------------------------------------------------------------------------
def _spawn(h: dict) -> int:
    """Start systemd-nspawn for host `h` in its own session and cgroups; returns its PID."""
    for d in h["cgroups"]:
        Path(d).mkdir(parents=True, exist_ok=True)
        # Leftover sub-cgroups of a previous boot of this host would confuse the new systemd.
        for sub in sorted((p for p in Path(d).rglob("*") if p.is_dir()),
                          key=lambda p: len(p.parts), reverse=True):
            try:
                os.rmdir(sub)
            except OSError:
                pass
    argv = ["systemd-nspawn", "-q", "-D", h["root"], "--boot", f"--machine={_machine(h['name'])}",
            f"--hostname={h['name']}",
            f"--network-namespace-path=/run/netns/{h['netns']}",
            # No systemd is PID 1 on these machines: no bus to register with or to get a unit.
            "--register=no", "--keep-unit", "--console=passive",
            "--link-journal=no", "--resolv-conf=off"]
    # The wrapper joins the host's cgroups, then becomes nspawn (same PID).
    wrapper = 'for d in $1; do echo $$ > "$d/cgroup.procs" || exit 1; done; shift; exec "$@"'
    log = open(config.HOSTS_DIR / h["name"] / "console.log", "ab")
    with log:
        p = subprocess.Popen(["sh", "-c", wrapper, "sh", " ".join(h["cgroups"]), *argv],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
    return p.pid


def _wait_booted(h: dict, deadline: float) -> int:
    """Wait for the container's init, then sshd, then `is-system-running --wait`; returns
    init's PID. Logging in right after port 22 opens gets "System is booting up"."""
    leader = None
    while time.time() < deadline:
        if not _alive(h["nspawn_pid"]):
            raise RuntimeError(f"{h['name']}: systemd-nspawn exited; see "
                               f"{config.HOSTS_DIR / h['name'] / 'console.log'}")
        leader = leader or _leader(h["nspawn_pid"])
        if leader and _port_open(h["ip"], 22):
            break
        time.sleep(0.1)
    else:
        raise TimeoutError(f"{h['name']}: sshd did not answer")
    while time.time() < deadline:
        cp = subprocess.run(ssh_argv(h["ip"]) + ["systemctl is-system-running --wait"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=max(1, deadline - time.time()))
        st = cp.stdout.strip()
        if st in ("running", "degraded"):
            if st == "degraded":
                failed = subprocess.run(
                    ssh_argv(h["ip"]) + ["systemctl --failed --no-legend --plain"],
                    capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
                print(f"warning: {h['name']} is degraded: {failed.stdout.strip()}",
                      file=sys.stderr)
            return leader
        time.sleep(0.2)
    raise TimeoutError(f"{h['name']}: systemd did not finish booting")


def _port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_exit(pid: int, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if not _alive(pid):
            _reap(pid)
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _reap(pid: int) -> None:
    # When up/start_host ran in this process (e.g. pytest), nspawn is our child: collect it
    # so no zombie lingers; otherwise init does.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _update_host(name: str, **fields) -> None:
    # Tests may crash and restart hosts from several threads or processes at once.
    with _locked(config.STATE_DIR / "state.lock"):
        state = _require_state()
        _host(state, name).update(fields)
        _save_state(state)


def kill_host(name: str) -> None:
    """Simulate a crash of `name`: SIGKILL its init (nspawn's child), not nspawn itself; the
    host's processes die with it. Waits until nspawn has gone too."""
    h = _host(_require_state(), name)
    leader = h.get("leader_pid")
    if _is_nspawn(h["nspawn_pid"], name) and leader in _children(h["nspawn_pid"]):
        os.kill(leader, signal.SIGKILL)
        _wait_exit(h["nspawn_pid"], 10)
    _update_host(name, nspawn_pid=None, leader_pid=None)


def stop_host(name: str, timeout: float = 30) -> None:
    """Clean poweroff of `name` (SIGTERM to nspawn, ~2 s); the overlay keeps its files."""
    h = _host(_require_state(), name)
    if _is_nspawn(h["nspawn_pid"], name):
        os.kill(h["nspawn_pid"], signal.SIGTERM)
        if not _wait_exit(h["nspawn_pid"], timeout):
            raise TimeoutError(f"{name} did not power off within {timeout} s")
    _update_host(name, nspawn_pid=None, leader_pid=None)


def start_host(name: str, timeout: float = 90) -> None:
    """Boot `name` again on its existing overlay and wait until systemd is up (no-op when it
    is running)."""
    h = _host(_require_state(), name)
    if _is_nspawn(h["nspawn_pid"], name):
        return
    h["nspawn_pid"] = _spawn(h)
    _update_host(name, nspawn_pid=h["nspawn_pid"])
    leader = _wait_booted(h, time.time() + timeout)
    _update_host(name, leader_pid=leader)


# --- up / down / status -----------------------------------------------------------------------
def _healthy(state: dict) -> bool:
    return all(_is_nspawn(h["nspawn_pid"], h["name"]) and _alive(h.get("leader_pid"))
               for h in state["hosts"]) and config.BRIDGE in net.link_names()


def _resolve_v4(names: list[str]) -> dict[str, list[str]]:
    out = {}
    for n in names:
        try:
            infos = socket.getaddrinfo(n, None, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror:
            continue
        out[n] = sorted({i[4][0] for i in infos})
    return out


def _resolvers() -> list[str]:
    out = []
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        w = line.split()
        if len(w) >= 2 and w[0] == "nameserver" and ":" not in w[1]:
            out.append(w[1])
    return out


def _take_shared() -> None:
    """The machine-wide settings every instance needs (idempotent; under MACHINE_LOCK)."""
    net.set_sysctls()
    # /run is no tmpfs here, and nspawn refuses to clean its propagate dirs elsewhere.
    if os.path.ismount(config.NSPAWN_RUN):
        return
    config.NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
    net.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tb-nspawn", str(config.NSPAWN_RUN)])
    (config.NSPAWN_RUN / config.NSPAWN_MARK).write_text("mounted by mesos-testbed\n")


def _give_back_shared() -> list[str]:
    """Undo _take_shared (under MACHINE_LOCK, once no other instance is up)."""
    gone = []
    if (config.NSPAWN_RUN / config.NSPAWN_MARK).exists():
        subprocess.run(["umount", str(config.NSPAWN_RUN)], check=False)
        gone.append(f"tmpfs {config.NSPAWN_RUN}")
    old = net.restore_sysctls()
    if old:
        gone.append("sysctls " + ", ".join(f"{k}={v}" for k, v in old.items()))
    return gone


def _leave_shared() -> list[str]:
    """This instance is down: delete its state file and, if it was the last instance up,
    give back what all share. One locked step, so two `down`s at once cannot each leave
    that to the other. Returns what was given back."""
    with _locked(config.MACHINE_LOCK):
        others = [f for f in _state_files() if f != config.STATE_FILE]
        config.STATE_FILE.unlink(missing_ok=True)
        return [] if others else _give_back_shared()


def _state_files() -> list[Path]:
    """The state file of each instance that is up, half up or half down: the users of the
    shared settings. `up` writes its state before taking them, and `down` deletes it in the
    locked step that decides whether to give them back, so no instance is ever missed."""
    files = [config.Instance().state_dir / "state.json"]
    files += sorted((config.MACHINE_DIR / "instances").glob("*/state.json"))
    return [f for f in files if f.exists()]


def _start_http(bridge: str, directory: Path) -> int:
    log = open(config.STATE_DIR / "http.log", "wb")
    with log:
        p = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", bridge,
                              "--directory", str(directory), str(config.REPO_PORT)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
    end = time.time() + 10
    while not _port_open(bridge, config.REPO_PORT):
        if p.poll() is not None or time.time() > end:
            raise RuntimeError("the package repo's HTTP server did not start; see http.log")
        time.sleep(0.05)
    return p.pid


def _http_listeners() -> list[int]:
    """PIDs listening on the repo port of our bridge's address (found without the state)."""
    addr = subprocess.run(["ip", "-4", "-br", "addr", "show", "dev", config.BRIDGE],
                          capture_output=True, text=True).stdout.split()
    if len(addr) < 3:
        return []
    ip = addr[2].split("/")[0]
    out = subprocess.run(["ss", "-Hltnp", "src", f"{ip}:{config.REPO_PORT}"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in re.findall(r"pid=(\d+)", out)]


def up(slaves: int = config.DEFAULT_SLAVES, subnet: str | None = None,
       marathon_version: str = config.DEFAULT_MARATHON, repo: bool = True,
       log=print) -> dict:
    """Create the testbed; a no-op when one with the same settings is up and healthy,
    otherwise whatever exists is torn down first. On any failure everything is torn down."""
    if os.geteuid() != 0:
        raise PermissionError("the testbed needs root")
    config.plan_hosts(subnet or config.CANDIDATE_SUBNETS[0], slaves)   # validate early
    state = load_state()
    if state is not None:
        same = (state["slaves"] == slaves and state["marathon_version"] == marathon_version
                and (subnet is None or subnet == state["subnet"])
                and bool(state.get("repo")) == repo)
        if same and _healthy(state):
            log("testbed already up and healthy: nothing to do")
            return state
        log("testbed exists with other settings or unhealthy: re-creating it")
    down(log=lambda *_: None)
    try:
        return _up(slaves, subnet, marathon_version, repo, log)
    except BaseException:
        log("up failed: tearing down what was built")
        down(log=log)
        raise


def _up(slaves, subnet, marathon_version, repo, log) -> dict:
    t0 = time.time()
    pubkey = _ensure_key()
    repo_info = None
    with _locked(config.CACHE_LOCK):
        # Instances share the cache: one builds, the others wait and then find it warm.
        base_stamp = rootfs.ensure_base(log)
        rootfs.ensure_heavy(base_stamp, log)
        if repo:
            try:   # another engineer's module; imported only when a repo is wanted
                from testbed.repo import apt_preferences, build_repo, sources_digest
            except ImportError as e:
                raise RuntimeError(f"cannot build the package repo ({e}); use --no-repo") from e
            out_dir = config.CACHE_DIR / "repo" / f"{marathon_version}-{sources_digest()[:12]}"
            info = build_repo(out_dir, config.SUITE, marathon_version)
            repo_info = {"dir": str(out_dir), "fingerprint": info.key_fingerprint,
                         "key_file": str(info.key_file), "distro": info.distro_path,
                         "packages": info.packages, "newer": info.newer,
                         "apt_preferences": apt_preferences(info.newer)}
    sources = rootfs.machine_apt_sources()
    mirrors = _resolve_v4(sorted({config.uri_host(s.uri) for s in sources}))
    resolvers = _resolvers()
    mirror_addrs = sorted({a for addrs in mirrors.values() for a in addrs})
    with _locked(config.MACHINE_LOCK):
        # Choosing a free /24 and taking it (the bridge's route) is one step, so two `up`s
        # at once never pick the same one.
        routes = net.run(["ip", "-4", "route", "show", "table", "all"]).stdout
        if subnet is None:
            subnet = config.choose_subnet(routes, avoid=mirror_addrs + resolvers)
        elif why := config.subnet_conflict(subnet, routes, avoid=mirror_addrs + resolvers):
            raise ValueError(f"--subnet {subnet} {why}")
        plan = config.plan_hosts(subnet, slaves)
        bridge = config.bridge_ip(subnet)
        state = {"subnet": subnet, "bridge": bridge, "slaves": slaves,
                 "marathon_version": marathon_version, "repo": repo_info, "http_pid": None,
                 "mirrors": mirrors, "resolvers": resolvers,
                 "created": datetime.datetime.now().isoformat(timespec="seconds"),
                 "hosts": [_host_entry(h) for h in plan]}
        _save_state(state)        # from here on `down` knows what to remove
        _take_shared()
        net.ensure_bridge(subnet)
    net.apply_nft(net.nft_ruleset(subnet, mirror_addrs, resolvers))
    etc_hosts = config.render_etc_hosts(plan, pins=mirrors)

    def prepare(h: config.Host) -> None:
        net.add_host_link(h, subnet)
        root = rootfs.mount_host_root(h.name)
        rootfs.prepare_host(root, h.name, etc_hosts, pubkey,
                            (repo_info or {}).get("apt_preferences", ""))

    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(prepare, plan))
    t_prep = time.time()
    if repo_info:
        state["http_pid"] = _start_http(bridge, Path(repo_info["dir"]))
    for h in state["hosts"]:
        h["nspawn_pid"] = _spawn(h)
    _save_state(state)
    deadline = time.time() + 120 + 2 * len(plan)
    with cf.ThreadPoolExecutor(max_workers=min(32, len(plan))) as pool:
        leaders = list(pool.map(lambda h: _wait_booted(h, deadline), state["hosts"]))
    for h, leader in zip(state["hosts"], leaders):
        h["leader_pid"] = leader
    _save_state(state)
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    _write_known_hosts(state)
    config.INVENTORY.write_text(config.render_inventory(
        plan, config.KEY_FILE, date, bridge if repo_info else None,
        repo_info and repo_info["fingerprint"], repo_info["distro"] if repo_info else "debian",
        config.KNOWN_HOSTS))
    log(f"testbed up: {len(plan)} hosts on {subnet} (bridge {bridge}); prepared in "
        f"{t_prep - t0:.1f} s, booted in {time.time() - t_prep:.1f} s; "
        f"inventory {config.INVENTORY}")
    return state


def _planned(state: dict) -> list[config.Host]:
    return [config.Host(h["name"], h["ip"], h["role"], h["myid"]) for h in state["hosts"]]


def _host_entry(h: config.Host) -> dict:
    return {"name": h.name, "ip": h.ip, "role": h.role, "myid": h.myid, "netns": h.netns,
            "root": str(rootfs.host_dirs(h.name)[2]), "cgroups": _cgroup_dirs(h.name),
            "nspawn_pid": None, "leader_pid": None}


def add_host(name: str, role: str, ip: str | None = None, myid: int | None = None,
             log=print) -> config.Host:
    """A new host on the running testbed, prepared and booted as `up` does it; the next free
    address of its role unless `ip` is given; a master gets the next free myid unless `myid`
    is given (only the inventory line uses it). On failure the host is removed again."""
    if os.geteuid() != 0:
        raise PermissionError("the testbed needs root")
    with _locked(config.STATE_DIR / "state.lock"):
        state = _require_state()
        config.check_new_host(name, role, [h["name"] for h in state["hosts"]])
        taken = [h["ip"] for h in state["hosts"]]
        ip = config.check_ip(state["subnet"], ip, taken) if ip else \
            config.next_ip(state["subnet"], role, taken)
        if role == "master":
            myids = [h["myid"] for h in state["hosts"] if h["role"] == "master"]
            myid = int(myid) if myid else max(myids + [0]) + 1
            if not 1 <= myid <= 255 or myid in myids:
                raise ValueError(f"myid {myid} is taken or outside 1-255")
        host = config.Host(name, ip, role, myid if role == "master" else None)
        entry = _host_entry(host)
        state["hosts"].append(entry)
        _save_state(state)        # from here remove_host knows what to undo
    started = time.time()
    try:
        net.add_host_link(host, state["subnet"])
        root = rootfs.mount_host_root(name)
        rootfs.prepare_host(root, name, config.render_etc_hosts(_planned(state),
                                                                pins=state["mirrors"]),
                            _ensure_key(), (state.get("repo") or {}).get("apt_preferences", ""))
        entry["nspawn_pid"] = _spawn(entry)
        _update_host(name, nspawn_pid=entry["nspawn_pid"])
        _update_host(name, leader_pid=_wait_booted(entry, time.time() + 120))
        _write_etc_hosts(_require_state())
        _write_known_hosts(_require_state())
    except BaseException:
        log(f"add-host {name} failed: removing what was built")
        remove_host(name, log=lambda *_: None)
        raise
    log(f"{name} up at {ip} in {time.time() - started:.1f} s")
    return host


def remove_host(name: str, log=print) -> None:
    """Host `name` is gone: powered off if it still runs (a clean poweroff; kill_host it first
    to make it a crash), its processes, cgroups, overlay, link and namespace removed, and its
    name dropped from the other hosts' /etc/hosts."""
    state = _require_state()
    h = _host(state, name)
    if _is_nspawn(h["nspawn_pid"], name):
        os.kill(h["nspawn_pid"], signal.SIGTERM)
        _wait_exit(h["nspawn_pid"], 30)
    _empty_cgroups([Path(d) for d in h["cgroups"]])
    rootfs.remove_hosts_dir(name)
    net.remove_host_link(config.Host(name, h["ip"], h["role"], h["myid"]))
    with _locked(config.STATE_DIR / "state.lock"):
        state = _require_state()
        state["hosts"] = [x for x in state["hosts"] if x["name"] != name]
        _save_state(state)
    _write_etc_hosts(state)
    _write_known_hosts(state)
    log(f"{name} ({h['ip']}) removed")


def _write_known_hosts(state: dict) -> None:
    """The hosts' SSH host keys, read from their own disks: what the tool checks them with."""
    keys = {h["ip"]: (Path(h["root"]) / "etc/ssh/ssh_host_ed25519_key.pub").read_text()
            for h in state["hosts"] if os.path.ismount(h["root"])}
    tmp = config.KNOWN_HOSTS.with_suffix(".tmp")
    tmp.write_text(config.render_known_hosts(keys))
    tmp.rename(config.KNOWN_HOSTS)


def _write_etc_hosts(state: dict) -> None:
    """Every host's /etc/hosts names every host: the testbed's DNS."""
    text = config.render_etc_hosts(_planned(state), pins=state["mirrors"])
    for h in state["hosts"]:
        if os.path.ismount(h["root"]):
            rootfs.write_etc_hosts(Path(h["root"]), text)


def down(log=print) -> list[str]:
    """Remove everything `up` made, from the state file and by discovery (the instance's name
    prefix, bridge and nft table, mounts under its hosts directory), so it also cleans a
    half-built testbed; what instances share only when no other one is up.
    Safe to run any number of times. Returns what it removed."""
    state = load_state() or {}
    gone = []
    # The repo server: by recorded PID, checked to still be our http.server.
    for pid in sorted({state.get("http_pid")} | set(_http_listeners())):
        if pid and "http.server" in _cmdline(pid):
            os.kill(pid, signal.SIGTERM)
            _wait_exit(pid, 5)
            gone.append(f"http server {pid}")
    # Containers: a clean poweroff first (SIGTERM to nspawn), in parallel.
    nspawns = [h["nspawn_pid"] for h in state.get("hosts", [])
               if _is_nspawn(h.get("nspawn_pid"), h["name"])]
    cgroups = _find_cgroups()
    for d in cgroups:
        # nspawn itself sits at the top of its host's cgroup (the guest is below it).
        try:
            top = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            top = []
        nspawns += [p for p in top if "systemd-nspawn" in " ".join(_cmdline(p)[:3])]
    nspawns = sorted(set(nspawns))
    for p in nspawns:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.time() + 15
    for p in nspawns:
        _wait_exit(p, max(0.1, end - time.time()))
    if nspawns:
        gone.append(f"{len(nspawns)} containers")
    # Whatever still runs in our cgroups is ours: kill it by PID.
    _empty_cgroups(cgroups)
    if cgroups:
        gone.append(f"{len(cgroups)} cgroup dirs")
    mounts = rootfs.host_mounts()
    rootfs.remove_hosts_dir()
    if mounts:
        gone.append(f"{len(mounts)} overlay mounts")
    gone += net.remove_links()
    if net.remove_nft():
        gone.append(f"nft table {config.NFT_TABLE}")
    gone += _leave_shared()
    config.INVENTORY.unlink(missing_ok=True)
    config.KNOWN_HOSTS.unlink(missing_ok=True)
    log("testbed down" + (": removed " + "; ".join(gone) if gone else ": nothing to remove"))
    return gone


def status() -> list[dict]:
    """Per host: name, ip, up (container running), ssh (sshd answers a login)."""
    state = load_state()
    if state is None:
        return []

    def probe(h: dict) -> dict:
        running = _is_nspawn(h.get("nspawn_pid"), h["name"]) and _alive(h.get("leader_pid"))
        ok = False
        if running:
            try:
                ok = subprocess.run(ssh_argv(h["ip"]) + ["true"], capture_output=True,
                                    stdin=subprocess.DEVNULL, timeout=10).returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
        return {"name": h["name"], "ip": h["ip"], "up": running, "ssh": ok}

    with cf.ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(probe, state["hosts"]))
