"""The cluster model: hosts, their settings, and every value derived from the inventory.

`tasks.inventory` builds it from hosts.ini; everything else reads it. Derived values are
computed here once, so no address is typed twice (the tutorial's own mix-up of 192.0.2.x and
192.168.2.x cannot happen)::

    cluster.mesos_zk_url   # 'zk://192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181/mesos'
    cluster.quorum         # 2 (no explicit quorum: floor(3/2)+1)
    cluster.zoo_servers    # ((1, '192.0.2.1'), (2, '192.0.2.2'), (3, '192.0.2.3'))

Masters are ordered by myid in every derived value, so reordering lines in the file changes
no rendered file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Any

from tasks.settings import DIGITS, SETTINGS


class InventoryError(Exception):
    """One or more inventory problems; ``.errors`` holds ``(path, line, message)``.

    Line 0 means the whole file (missing file, no masters, unknown host).
    """

    def __init__(self, errors: list[tuple[str, int, str]]):
        # Sorted by line so the report reads top to bottom like the file.
        self.errors = sorted(errors, key=lambda e: (e[0], e[1]))
        super().__init__(self.errors)

    def __str__(self) -> str:
        lines = [f"{p}:{n}: {m}" if n else f"{p}: {m}" for p, n, m in self.errors]
        if len(lines) == 1:
            return lines[0]
        return f"{len(lines)} problems in the inventory:\n" + "\n".join(lines)


def _expand(template: str, distro: str, codename: str) -> str:
    return template.replace("{distro}", distro.lower()).replace("{codename}", codename)


class _SettingsMethods:
    def repo_url_for(self, distro: str, codename: str) -> str:
        """repo_url with ``{distro}`` (lower-cased, as the tutorial's ``tr``) and ``{codename}``."""
        return _expand(self.repo_url, distro, codename)

    def repo_key_url_for(self, distro: str, codename: str) -> str:
        return _expand(self.repo_key_url, distro, codename)

    @property
    def marathon_auth(self) -> tuple[str, str] | None:
        """(user, password) for Marathon's HTTP basic auth, or None when it is off."""
        secret = self.marathon_credentials_file
        return tuple(secret.value.split(":", 1)) if secret else None

    def marathon_url(self, ip: str) -> str:
        return f"{self.marathon_scheme}://{ip}:{self.marathon_port}"


# Effective settings of one host: one field per row of `tasks.settings.SETTINGS`, which is
# where each is documented.
Settings = make_dataclass(
    "Settings", [(s.name, Any, field(default=s.default)) for s in SETTINGS],
    bases=(_SettingsMethods,), frozen=True)
Settings.__module__ = __name__


@dataclass(frozen=True)
class Host:
    name: str
    role: str                   # "master" | "slave"
    ip: str
    myid: int | None
    ssh_host: str               # defaults to ip
    ssh_port: int
    ssh_user: str | None        # None: let Fabric's configuration decide
    settings: Settings = field(repr=False)
    line: int = 0

    @property
    def is_master(self) -> bool:
        return self.role == "master"


@dataclass(frozen=True)
class Cluster:
    path: str
    masters: tuple[Host, ...]
    slaves: tuple[Host, ...]

    @property
    def hosts(self) -> tuple[Host, ...]:
        return self.masters + self.slaves

    @property
    def settings(self) -> Settings:
        """The masters' settings: the source of every cluster-wide value."""
        return self.masters[0].settings

    @property
    def _by_myid(self) -> tuple[Host, ...]:
        # Sorted by myid, not by line: reordering lines must change nothing
        # in the rendered files, or every master would restart for nothing.
        return tuple(sorted(self.masters, key=lambda h: h.myid))

    @property
    def zk_hosts(self) -> str:
        """``ip1:2181,ip2:2181,ip3:2181``, masters in myid order."""
        port = self.settings.zk_port
        return ",".join(f"{h.ip}:{port}" for h in self._by_myid)

    @property
    def mesos_zk_url(self) -> str:
        return f"zk://{self.zk_hosts}{self.settings.zk_mesos_path}"

    @property
    def marathon_zk_url(self) -> str:
        return f"zk://{self.zk_hosts}{self.settings.zk_marathon_path}"

    @property
    def quorum(self) -> int:
        """The explicit (validated) quorum, else a majority: floor(n/2)+1."""
        q = self.settings.quorum
        return q if q is not None else len(self.masters) // 2 + 1

    @property
    def zoo_servers(self) -> tuple[tuple[int, str], ...]:
        """``((myid, ip), ...)`` sorted by myid, for the ``server.N=`` lines."""
        return tuple((h.myid, h.ip) for h in self._by_myid)

    @property
    def zoo_server_lines(self) -> tuple[str, ...]:
        """``server.N=ip:2888:3888`` lines, ports from the masters' settings."""
        s = self.settings
        return tuple(f"server.{i}={ip}:{s.zk_peer_port}:{s.zk_election_port}"
                     for i, ip in self.zoo_servers)

    def find(self, name_or_address: str, port: int | None = None) -> Host:
        """The host named so, or with that ip, or that ssh_host.

        Accepts Fabric host strings (``user@host:port``); ``port`` (or the
        ``:port`` suffix) tells apart hosts reached through one address, as in
        a testbed where every host is 127.0.0.1 on its own port.
        """
        target = name_or_address.strip()
        if "@" in target:
            target = target.rsplit("@", 1)[1]
        head, sep, tail = target.rpartition(":")
        if sep and DIGITS.match(tail) and ":" not in head:
            target, port = head, (int(tail) if port is None else port)
        key = target.casefold()
        by_name = [h for h in self.hosts if h.name.casefold() == key]
        by_ip = [h for h in self.hosts if h.ip == target]
        by_ssh = [h for h in self.hosts if h.ssh_host.casefold() == key
                  and (port is None or h.ssh_port == port)]
        for found in (by_name, by_ip, by_ssh):
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = ", ".join(f"{h.name} (port {h.ssh_port})" for h in found)
                raise InventoryError([(self.path, 0,
                    f"host {target!r} is ambiguous in the inventory {self.path}: "
                    f"{names}; give the ssh port too")])
        known = ", ".join(f"{h.name} ({h.ip})" for h in self.hosts)
        raise InventoryError([(self.path, 0,
            f"host {target!r} is not in the inventory {self.path}; known hosts: {known}")])


