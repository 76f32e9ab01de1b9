"""The text of every file the steps write, rendered from inventory values. Pure: no host, no I/O.

Each function is golden-tested in tests/unit/test_render.py. Values come from
`tasks.model.Cluster`, which derives them once (zk URLs, server lines, quorum), so no
address is ever typed twice.
"""

from __future__ import annotations

import re

MANAGED = "# Managed by mesos-fab (fab write-zoo-cfg); local edits are overwritten.\n"


def line(value: object) -> str:
    """Flag files hold one value and a newline (mesos-init-wrapper strips the newline)."""
    return f"{value}\n"


def zoo_cfg(server_lines: tuple[str, ...], *, client_address: str, client_port: int = 2181,
            four_letter_words: tuple[str, ...] = ("srvr", "mntr"),
            snap_retain_count: int = 3, purge_interval: int = 24) -> str:
    """zoo.cfg, whole. Debian's shipped file keeps data in /tmp and has no server lines."""
    text = [
        MANAGED,
        "tickTime=2000\n",
        "initLimit=10\n",
        "syncLimit=5\n",
        # The package links /var/lib/zookeeper/myid to /etc/zookeeper/conf/myid.
        "dataDir=/var/lib/zookeeper\n",
        # ZooKeeper keeps every snapshot and transaction log unless told to purge: off by
        # default, and the disk fills up.
        f"autopurge.snapRetainCount={snap_retain_count}\n",
        f"autopurge.purgeInterval={purge_interval}\n",
        f"clientPort={client_port}\n",
        # The host's own address only: every client (mesos, Marathon, the tool) dials the
        # masters' ips, and nothing should reach ZooKeeper through another interface.
        f"clientPortAddress={client_address}\n",
        # Only the words asked for: the tool's own (srvr and mntr, for health and the rolling
        # restarts' gates), and what the operator adds; `stat`, `envi`, `conf` and the rest
        # stay refused.
        f"4lw.commands.whitelist={','.join(four_letter_words)}\n",
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


def marathon_conf_dir(flags: dict[str, str]) -> dict[str, str]:
    """Marathon <= 1.4: one file per flag in /etc/marathon/conf (the tutorial's way); a
    boolean flag ('' as its value) is an empty file named `?flag`."""
    return {f"/etc/marathon/conf/{'?' + name if value == '' else name}":
            "" if value == "" else line(value) for name, value in flags.items()}


# The tool's lines in /etc/default/marathon sit between these two; the rest is the operator's.
ENV_BEGIN = ("# BEGIN mesos-fab: `fab configure-marathon` writes the lines up to END; "
             "lines outside them are kept as they are")
ENV_END = "# END mesos-fab"
# What the first releases of the tool wrote at the top of a file they wrote whole.
_ENV_LEGACY_HEADER = "# Managed by mesos-fab (fab configure-marathon); local edits are overwritten."
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


def marathon_env(current: str | None, flags: dict[str, str]) -> str:
    """Marathon >= 1.5 reads only MARATHON_* variables from /etc/default/marathon, a file
    operators also edit (credentials, HTTPS, JVM options). The tool owns only its block of
    MARATHON_<FLAG> lines (an empty value is a boolean flag), at the end of a new file and in
    its place after that: every other line of `current` stays as it is, in its place, except
    one that sets a variable the block sets (two values of one flag, and the tool's would
    not be the one Marathon sees)."""
    values = {f"MARATHON_{name.upper()}": value for name, value in flags.items()}
    lines = (current or "").splitlines()
    stripped = [text.strip() for text in lines]
    # A block whose END is gone (edited by hand) is no block: its lines are judged one by one.
    closed = ENV_BEGIN in stripped and ENV_END in stripped[stripped.index(ENV_BEGIN):]
    block = [ENV_BEGIN] + [f"{key}={value}" for key, value in values.items()] + [ENV_END]
    out, inside = [], False
    for text, bare in zip(lines, stripped):
        if closed and bare == ENV_BEGIN:
            inside = True
            out += block            # where it was: lines the operator added after it stay after
        elif inside:
            inside = bare != ENV_END
        elif bare != _ENV_LEGACY_HEADER:
            match = _ASSIGNMENT.match(text)
            if not (match and match.group(1) in values):
                out.append(text)
    return "\n".join(out + ([] if closed else block)) + "\n"


def apt_source(url: str, suite: str, component: str, keyring: str | None) -> str:
    options = f"[signed-by={keyring}] " if keyring else ""
    return f"deb {options}{url} {suite} {component}\n"
