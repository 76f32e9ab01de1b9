"""Config phase: the files the tutorial edits by hand, rendered from the inventory.

These steps only write files (atomically, 0644 root:root) and mark the services that read them
for a restart; `start-services` does the restarting. Every value comes from the inventory's
derived properties, so the tutorial's mix of 192.0.2.x and 192.168.2.x cannot happen.
"""

from __future__ import annotations

from tasks import facts, render, shell
from tasks.runner import Change, HostContext, Step, StepError
from tasks.steps import files
from tasks.steps.service import AGENT_INFO_MARK

ZK_CONF = "/etc/zookeeper/conf"
ZK_MISSING = "ZooKeeper is not installed on {host} ({dir} is missing): run install-master first"
MESOS_MISSING = "Mesos is not installed on {host} ({dir} is missing): run install-{role} first"


def file_step(name: str, roles: tuple[str, ...], wanted, restart, require_dir) -> Step:
    """A step that makes a few files hold rendered text.

    `wanted(ctx)` gives {path: content}, `restart(ctx)` the services reading them and
    `require_dir(ctx)` the package directory that must exist (else the package is missing and
    writing would create a directory the package later trips over).
    """
    def probes(ctx: HostContext) -> dict[str, str]:
        return {"dir": shell.exists(require_dir(ctx)), **files.probes(list(wanted(ctx)))}

    def plan(ctx: HostContext, found: dict[str, facts.Probe]) -> list[Change]:
        directory = require_dir(ctx)
        if not found["dir"].ok:
            template = ZK_MISSING if directory.startswith("/etc/zookeeper") else MESOS_MISSING
            raise StepError(template.format(host=ctx.host.name, dir=directory, role=ctx.host.role))
        return files.plan(found, wanted(ctx), restart=restart(ctx))

    return Step(name, roles, probes, plan)


def _mesos_services(ctx: HostContext) -> tuple[str, ...]:
    return ("mesos-master", "marathon") if ctx.host.role == "master" else ("mesos-slave",)


WRITE_ZK = file_step(
    "write-zk", ("master", "slave"),
    lambda ctx: {"/etc/mesos/zk": render.line(ctx.cluster.mesos_zk_url)},
    _mesos_services, lambda ctx: "/etc/mesos")

WRITE_MYID = file_step(
    "write-myid", ("master",),
    lambda ctx: {f"{ZK_CONF}/myid": render.line(ctx.host.myid)},
    lambda ctx: ("zookeeper",), lambda ctx: ZK_CONF)


def _zoo_cfg(ctx: HostContext) -> dict[str, str]:
    return {f"{ZK_CONF}/zoo.cfg": render.zoo_cfg(ctx.cluster.zoo_server_lines,
                                                 client_port=ctx.cluster.settings.zk_port)}


WRITE_ZOO_CFG = file_step("write-zoo-cfg", ("master",), _zoo_cfg,
                          lambda ctx: ("zookeeper",), lambda ctx: ZK_CONF)

SET_QUORUM = file_step(
    "set-quorum", ("master",),
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
    "set-ip-hostname", ("master", "slave"), _ip_hostname,
    # An agent's ip and hostname are part of its identity: see service.AGENT_INFO_MARK.
    lambda ctx: ("mesos-master",) if ctx.host.role == "master" else ("mesos-slave", AGENT_INFO_MARK),
    _flag_dir)


# Marathon 1.5 stopped reading /etc/marathon/conf; it reads only MARATHON_* in this file.
MARATHON_DEFAULTS = "/etc/default/marathon"


def marathon_style(setting: str, version: str) -> str:
    """conf-dir for Marathon <= 1.4, env for >= 1.5, unless the inventory says which."""
    if setting != "auto":
        return setting
    if not version:
        raise StepError("marathon is not installed, so its version cannot choose the config "
                        "style: run install-master first, or set marathon_config_style")
    return "env" if facts.version_tuple(version)[:2] >= (1, 5) else "conf-dir"


def _marathon_wanted(ctx: HostContext, style: str) -> dict[str, str]:
    values = dict(hostname=ctx.host.ip, master=ctx.cluster.mesos_zk_url,
                  zk=ctx.cluster.marathon_zk_url, http_port=ctx.host.settings.marathon_port)
    if style == "env":
        return {MARATHON_DEFAULTS: render.marathon_env(**values)}
    return render.marathon_conf_dir(**values)


def _marathon_probes(ctx: HostContext) -> dict[str, str]:
    probes = {"marathon": shell.package_status(["marathon"])}
    for style in ("env", "conf-dir"):
        probes.update(files.probes(list(_marathon_wanted(ctx, style)), prefix=style.replace("-", "")))
    return probes


def _marathon_plan(ctx: HostContext, found: dict[str, facts.Probe]) -> list[Change]:
    pkg = facts.packages(found["marathon"]).get("marathon")
    style = marathon_style(ctx.host.settings.marathon_config_style, pkg.version if pkg else "")
    return files.plan(found, _marathon_wanted(ctx, style), restart=("marathon",),
                      prefix=style.replace("-", ""))


CONFIGURE_MARATHON = Step("configure-marathon", ("master",), _marathon_probes, _marathon_plan)
