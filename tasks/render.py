"""The text of every file the steps write, rendered from inventory values. Pure: no host, no I/O.

Each function is golden-tested in tests/unit/test_render.py. Values come from
`tasks.model.Cluster`, which derives them once (zk URLs, server lines, quorum), so no
address is ever typed twice.
"""

from __future__ import annotations

MANAGED = "# Managed by mesos-fab (fab write-zoo-cfg); local edits are overwritten.\n"


def line(value: object) -> str:
    """Flag files hold one value and a newline (mesos-init-wrapper strips the newline)."""
    return f"{value}\n"


def zoo_cfg(server_lines: tuple[str, ...], *, client_port: int = 2181) -> str:
    """zoo.cfg, whole. Debian's shipped file keeps data in /tmp and has no server lines."""
    text = [
        MANAGED,
        "tickTime=2000\n",
        "initLimit=10\n",
        "syncLimit=5\n",
        # The package links /var/lib/zookeeper/myid to /etc/zookeeper/conf/myid.
        "dataDir=/var/lib/zookeeper\n",
        f"clientPort={client_port}\n",
        # srvr/stat/mntr let operators (and our checks) see leader/follower; ruok is the probe.
        "4lw.commands.whitelist=ruok,srvr,stat,mntr\n",
        # The AdminServer would take port 8080, which is Marathon's on the same masters.
        "admin.enableServer=false\n",
    ]
    text += [server + "\n" for server in server_lines]
    return "".join(text)


def zoo_server(text: str, myid: int) -> str | None:
    """The `server.N=` line of zoo.cfg `text` for `myid` (its value), None when it has none."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == f"server.{myid}":
            return value.strip()
    return None


def with_zoo_server(text: str, myid: int, value: str) -> str:
    """zoo.cfg `text` with the `server.N=` line of `myid` set to `value`."""
    return "".join(f"server.{myid}={value}\n"
                   if line.partition("=")[0].strip() == f"server.{myid}" else line
                   for line in text.splitlines(keepends=True))


def marathon_conf_dir(*, hostname: str, master: str, zk: str, http_port: int) -> dict[str, str]:
    """Marathon <= 1.4: one file per flag in /etc/marathon/conf (the tutorial's way)."""
    files = {
        "/etc/marathon/conf/hostname": line(hostname),
        "/etc/marathon/conf/master": line(master),
        "/etc/marathon/conf/zk": line(zk),
    }
    if http_port != 8080:
        files["/etc/marathon/conf/http_port"] = line(http_port)
    return files


def marathon_env(*, hostname: str, master: str, zk: str, http_port: int) -> str:
    """Marathon >= 1.5 reads only MARATHON_* variables from /etc/default/marathon."""
    text = [
        "# Managed by mesos-fab (fab configure-marathon); local edits are overwritten.\n",
        f"MARATHON_MASTER={master}\n",
        f"MARATHON_ZK={zk}\n",
        f"MARATHON_HOSTNAME={hostname}\n",
    ]
    if http_port != 8080:
        text.append(f"MARATHON_HTTP_PORT={http_port}\n")
    return "".join(text)


def apt_source(url: str, suite: str, component: str, keyring: str | None) -> str:
    options = f"[signed-by={keyring}] " if keyring else ""
    return f"deb {options}{url} {suite} {component}\n"
