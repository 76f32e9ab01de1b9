"""Config phase: the files the tutorial edits by hand, rendered from the inventory.

These steps only write files (atomically, 0644 root:root, 0600 for those that can hold
secrets) and mark the services that read them for a restart; `start-services` does the
restarting. Every value comes from the inventory's derived properties, so the tutorial's mix
of 192.0.2.x and 192.168.2.x cannot happen. Authentication (off by default, as in the
tutorial) is written only where its settings are given; the tool never removes what an
operator set up by hand.
"""

from __future__ import annotations

import json

from tasks import facts, init, render, shell
from tasks.facts import Facts, Snapshot
from tasks.step import Change, HostContext, Step, StepError
from tasks.steps import files
from tasks.steps import service
from tasks.steps.service import AGENT_INFO_MARK

ZK_CONF = "/etc/zookeeper/conf"
ZK_MISSING = "ZooKeeper is not installed on {host} ({dir} is missing): run install-master first"
MESOS_MISSING = "Mesos is not installed on {host} ({dir} is missing): run install-{role} first"


def file_step(name: str, roles: tuple[str, ...], help: str, wanted, restart, require_dir,
              private: dict[str, str] = {}) -> Step:
    """A step that makes a few files hold rendered text.

    `wanted(ctx)` gives {path: content}, `restart(ctx)` the services reading them and
    `require_dir(ctx)` the package directory that must exist (else the package is missing and
    writing would create a directory the package later trips over); `private` the files that
    hold secrets (`files.plan`).
    """
    def needs(ctx: HostContext) -> list[str]:
        return [facts.directory(require_dir(ctx))] + files.needs(list(wanted(ctx)))

    def plan(ctx: HostContext, found: Facts) -> list[Change]:
        directory = require_dir(ctx)
        if not found[facts.directory(directory)]:
            template = ZK_MISSING if directory.startswith("/etc/zookeeper") else MESOS_MISSING
            raise StepError(template.format(host=ctx.host.name, dir=directory, role=ctx.host.role))
        return files.plan(found, wanted(ctx), restart=restart(ctx), private=private)

    return Step(name, roles, help, needs, plan)


def _mesos_services(ctx: HostContext) -> tuple[str, ...]:
    return ("mesos-master", "marathon") if ctx.host.role == "master" else ("mesos-slave",)


WRITE_ZK = file_step(
    "write-zk", ("master", "slave"),
    "Write /etc/mesos/zk: the masters' ZooKeeper URL, on every host.",
    lambda ctx: {"/etc/mesos/zk": render.line(ctx.cluster.mesos_zk_url)},
    _mesos_services, lambda ctx: "/etc/mesos")

WRITE_MYID = file_step(
    "write-myid", ("master",),
    "Write the master's pinned ZooKeeper id to /etc/zookeeper/conf/myid.",
    lambda ctx: {f"{ZK_CONF}/myid": render.line(ctx.host.myid)},
    lambda ctx: ("zookeeper",), lambda ctx: ZK_CONF)


def _zoo_cfg(ctx: HostContext) -> dict[str, str]:
    s = ctx.cluster.settings
    return {f"{ZK_CONF}/zoo.cfg": render.zoo_cfg(
        ctx.cluster.zoo_server_lines, client_address=ctx.host.ip, client_port=s.zk_port,
        four_letter_words=s.zk_four_letter_words, snap_retain_count=s.zk_snap_retain_count,
        purge_interval=s.zk_purge_interval)}


WRITE_ZOO_CFG = file_step(
    "write-zoo-cfg", ("master",),
    "Write the whole zoo.cfg: data dir, server lines, 4lw whitelist, no AdminServer.",
    _zoo_cfg, lambda ctx: ("zookeeper",), lambda ctx: ZK_CONF)


def _started_with(snapshot: Snapshot) -> str | None:
    """The zoo.cfg this host's ZooKeeper runs with: the file as read before the run if no
    restart was owed then; else the copy its last restart by this tool kept; else unknown."""
    cfg = snapshot.gathered.get(facts.file(service.ZOO_CFG))
    kept = snapshot.gathered.get(facts.file(service.STARTED_ZOO_CFG))
    if isinstance(cfg, facts.File) and "zookeeper" not in (
            snapshot.gathered.get(facts.RESTART_MARKS) or ()):
        return cfg.content
    return kept.content if isinstance(kept, facts.File) else None


def zoo_cfg_bridge(host: tuple[HostContext, Snapshot],
                   leader: tuple[HostContext | None, Snapshot | None], leader_myid: int):
    """The changes that restart a follower's ZooKeeper so that it rejoins the current leader,
    or None when its new zoo.cfg already lets it.

    A follower finds the leader at the address and peer port that its own zoo.cfg gives the
    leader's `server.N` line; the leader listens where its own, older, zoo.cfg says. When a
    change moves them (zk_peer_port), the follower restarted with the new file cannot rejoin
    until the leader restarts too, and restarting a second one would lose the quorum. So the
    follower starts with the new file but the leader's line as the leader runs it, and keeps
    its restart mark: once the leader has restarted (and leadership moved to a member already
    on the new ports), a second pass restarts it with the file as written."""
    ctx, snapshot = host
    new = snapshot.values.get(facts.file(service.ZOO_CFG))
    if not isinstance(new, facts.File):
        return None
    # The leader's line as the leader runs it; else as this host last started with it.
    views = [_started_with(s) for s in (leader[1], snapshot) if s is not None]
    running = next((render.zoo_server(v, leader_myid) for v in views if v), None)
    wanted = render.zoo_server(new.content, leader_myid)
    if running is None or wanted is None or running == wanted:
        return None
    bridge = render.with_zoo_server(new.content, leader_myid, running)
    path = service.ZOO_CFG
    restart = service.restart_command(init.strategy(snapshot.read(facts.INIT)), "zookeeper")
    # The init script returns before the JVM reads zoo.cfg: the file goes back only once
    # ZooKeeper listens, which it does after reading it.
    # ZooKeeper listens on the host's address only (clientPortAddress), not on loopback.
    started = shell.wait_for_port(ctx.host.ip, ctx.cluster.settings.zk_port, 60)
    return (Change(f"write {path} with server.{leader_myid}={running}, as the leader runs",
                   shell.write_file(path, bridge)),
            Change("restart zookeeper on the leader's running ports", f"{restart} && {started}",
                   kind="service"),
            Change(f"write {path} back as wanted (restart still owed)",
                   shell.write_file(path, new.content)))

SET_QUORUM = file_step(
    "set-quorum", ("master",),
    "Write /etc/mesos-master/quorum: a majority of the masters.",
    lambda ctx: {"/etc/mesos-master/quorum": render.line(ctx.cluster.quorum)},
    lambda ctx: ("mesos-master",), lambda ctx: "/etc/mesos-master")


def _flag_dir(ctx: HostContext) -> str:
    return "/etc/mesos-master" if ctx.host.role == "master" else "/etc/mesos-slave"


def _ip_hostname(ctx: HostContext) -> dict[str, str]:
    # The tutorial uses the address as hostname too, so nothing depends on DNS and the master
    # never advertises 127.0.1.1 (playa-mesos#32).
    d = _flag_dir(ctx)
    return {f"{d}/ip": render.line(ctx.host.ip), f"{d}/hostname": render.line(ctx.host.ip)}


SET_IP_HOSTNAME = file_step(
    "set-ip-hostname", ("master", "slave"),
    "Write /etc/mesos-{master,slave}/{ip,hostname} from the inventory.",
    _ip_hostname,
    # An agent's ip and hostname are part of its identity: see service.AGENT_INFO_MARK.
    lambda ctx: ("mesos-master",) if ctx.host.role == "master" else ("mesos-slave", AGENT_INFO_MARK),
    _flag_dir)


# Marathon 1.5 stopped reading /etc/marathon/conf; it reads only MARATHON_* in this file.
MARATHON_DEFAULTS = "/etc/default/marathon"


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric part of a Debian version: `1:1.4.8-1.0.660.debian90` → (1, 4, 8)."""
    upstream = version.split(":", 1)[-1].split("-", 1)[0]
    numbers = []
    for piece in upstream.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def marathon_style(version: str | None) -> str:
    """conf-dir for Marathon <= 1.4, env for >= 1.5 (marathon_config_style = auto)."""
    if not version:
        raise StepError("marathon is not installed, so its version cannot choose the config "
                        "style: run install-master first, or set marathon_config_style")
    return "env" if version_tuple(version)[:2] >= (1, 5) else "conf-dir"


# Where Marathon reads the secret it authenticates to Mesos with; outside /etc/marathon/conf,
# whose every file is a flag.
MARATHON_SECRET = "/etc/marathon/mesos.secret"


def marathon_flags(ctx: HostContext) -> dict[str, str]:
    """The flags the tool gives Marathon ('' for a boolean flag)."""
    s = ctx.host.settings
    flags = {"hostname": ctx.host.ip, "master": ctx.cluster.mesos_zk_url,
             "zk": ctx.cluster.marathon_zk_url}
    if s.marathon_port != 8080:
        flags["http_port"] = str(s.marathon_port)
    if s.marathon_credentials_file:
        flags["http_credentials"] = s.marathon_credentials_file.value
    if s.mesos_framework_secret_file:
        flags.update(mesos_authentication="",
                     mesos_authentication_principal=s.mesos_framework_principal,
                     mesos_authentication_secret_file=MARATHON_SECRET)
    return flags


def _marathon_files(ctx: HostContext, style: str, env_now: str | None) -> dict[str, str]:
    """Every file configure-marathon writes in `style`; `env_now`: /etc/default/marathon as
    it is (the operator's lines are kept)."""
    flags = marathon_flags(ctx)
    if style == "env":
        wanted = {MARATHON_DEFAULTS: render.marathon_env(env_now, flags)}
    else:
        wanted = render.marathon_conf_dir(flags)
    secret = ctx.host.settings.mesos_framework_secret_file
    if secret:
        # Marathon reads the whole file as the secret: a newline would be part of it.
        wanted[MARATHON_SECRET] = secret.value
    return wanted


# The operator's own lines in /etc/default/marathon can hold credentials too.
MARATHON_PRIVATE = {MARATHON_DEFAULTS: files.SECRET_VALUES, MARATHON_SECRET: files.SECRET,
                    "/etc/marathon/conf/http_credentials": files.SECRET}


def _marathon_needs(ctx: HostContext) -> list[str]:
    # Only `auto` asks for the installed version: a version fixed in the inventory needs no
    # fact that an install makes unknowable.
    style = ctx.host.settings.marathon_config_style
    version = [facts.package("marathon")] if style == "auto" else []
    paths = [p for s in (("env", "conf-dir") if style == "auto" else (style,))
             for p in _marathon_files(ctx, s, None)]
    return version + files.needs(list(dict.fromkeys(paths)))


def _marathon_plan(ctx: HostContext, found: Facts) -> list[Change]:
    style = ctx.host.settings.marathon_config_style
    if style == "auto":
        style = marathon_style(found[facts.package("marathon")])
    env_now = found[facts.file(MARATHON_DEFAULTS)] if style == "env" else None
    wanted = _marathon_files(ctx, style, env_now and env_now.content)
    return files.plan(found, wanted, restart=("marathon",), private=MARATHON_PRIVATE)


CONFIGURE_MARATHON = Step(
    "configure-marathon", ("master",),
    "Configure Marathon (conf dir for <= 1.4, /etc/default/marathon for >= 1.5).",
    _marathon_needs, _marathon_plan)


# The masters' framework credentials: a file of their own (every file in /etc/mesos-master is
# a flag of mesos-master, so it cannot live there), named by the `credentials` flag.
MESOS_CREDENTIALS = "/etc/mesos/credentials"


def _framework_auth(ctx: HostContext) -> dict[str, str]:
    s = ctx.host.settings
    if not s.mesos_framework_secret_file:
        return {}
    credentials = {"credentials": [{"principal": s.mesos_framework_principal,
                                    "secret": s.mesos_framework_secret_file.value}]}
    return {"/etc/mesos-master/authenticate_frameworks": render.line("true"),
            "/etc/mesos-master/credentials": render.line(MESOS_CREDENTIALS),
            MESOS_CREDENTIALS: json.dumps(credentials, indent=2) + "\n"}


SET_FRAMEWORK_AUTH = file_step(
    "set-framework-auth", ("master",),
    "With mesos_framework_secret_file: mesos-master accepts only authenticated frameworks.",
    _framework_auth, lambda ctx: ("mesos-master",), lambda ctx: "/etc/mesos-master",
    private={MESOS_CREDENTIALS: files.SECRET})
