"""Read ``hosts.ini`` into the cluster model (`tasks.model`), checking every line.

The inventory is ini-like, in Ansible's style, and is parsed by hand because
configparser knows neither host lines nor line numbers::

    # Comments start with '#' or ';' at the start of a line, never after a value.
    [masters]
    master1 ip=192.0.2.1 myid=1
    master2 ip=192.0.2.2 myid=2 ssh_host=m2.example.org ssh_port=2222 ssh_user=ops
    master3 ip=192.0.2.3 myid=3

    # [agents] is accepted as an alias of [slaves]; both merge.
    [slaves]
    slave1 ip=192.0.2.51

    # Also [masters:vars] and [slaves:vars] (alias [agents:vars]).
    [all:vars]
    repo_url = http://repos.mesosphere.io/{distro}

Host keys: ``ip`` (required, the IPv4 address the services bind to and
advertise), ``myid`` (masters only, required, 1-255, unique), ``ssh_host``
(default: ip), ``ssh_port`` and ``ssh_user`` (default: the settings of those
names). The settings, their defaults, checks and scopes are the table in
`tasks.settings`.

Everything is checked at load time and all problems are reported together as
``path:line: message`` in one :class:`InventoryError`: a half-valid inventory
must never reach a host.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from tasks import settings as checks
from tasks.model import Cluster, Host, InventoryError, Settings

_HOST_KEYS = ("ip", "myid", "ssh_host", "ssh_port", "ssh_user")
_MASTER_PORTS = ("zk_port", "zk_peer_port", "zk_election_port", "mesos_port", "marathon_port")

# section name -> (kind, scope)
_SECTIONS = {
    "masters": ("hosts", "master"), "slaves": ("hosts", "slave"), "agents": ("hosts", "slave"),
    "all:vars": ("vars", "all"), "masters:vars": ("vars", "master"),
    "slaves:vars": ("vars", "slave"), "agents:vars": ("vars", "slave"),
}


# --------------------------------------------------------------------------

def default_path() -> str:
    """``hosts.ini`` beside the fabfile (the repository root)."""
    return str(Path(__file__).resolve().parent.parent / "hosts.ini")


def load(path: str | os.PathLike) -> Cluster:
    path = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([(path, 0, "inventory not found (no such file)")]) from None
    except IsADirectoryError:
        raise InventoryError([(path, 0, "inventory is a directory, not a file")]) from None
    except UnicodeDecodeError as e:
        raise InventoryError([(path, 0, f"inventory is not UTF-8 text ({e.reason})")]) from None
    except OSError as e:
        raise InventoryError([(path, 0, f"cannot read inventory: {e.strerror or e}")]) from None
    return parse(text, path)


def parse(text: str, path: str = "<string>") -> Cluster:
    return _Parser(text, os.fspath(path)).run()


@dataclass
class _RawHost:
    name: str
    role: str
    line: int
    ip: str | None = None
    myid: int | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None     # None: the ssh_port setting
    ssh_user: str | None = None
    group: str = ""             # the section as written, for messages


class _Parser:
    def __init__(self, text: str, path: str):
        self.text = text.lstrip("\ufeff")
        self.path = path
        self.errors: list[tuple[str, int, str]] = []
        self.hosts: list[_RawHost] = []
        self.host_lines = {"master": 0, "slave": 0}  # host lines seen, valid or not
        self.group_line = {"master": 0, "slave": 0}  # first header line
        # scope -> name -> (typed value, line, section as written); broken: unparsable
        self.vars: dict[str, dict[str, tuple[object, int, str]]] = {
            "all": {}, "master": {}, "slave": {}}
        self.broken: set[str] = set()

    def error(self, line: int, message: str) -> None:
        self.errors.append((self.path, line, message))

    # -- lines ------------------------------------------------------------

    def run(self) -> Cluster:
        section = None          # (kind, scope, name as written); "skip" after an unknown one
        for n, raw in enumerate(self.text.splitlines(), start=1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = self.header(n, line)
            elif section is None:
                self.error(n, f"{line!r} is outside any section (start with [masters])")
            elif section == "skip":
                continue
            elif section[0] == "hosts":
                self.host_line(n, line, section[1], section[2])
            else:
                self.vars_line(n, line, section[1], section[2])
        return self.finish()

    def header(self, n: int, line: str):
        if not line.endswith("]"):
            self.error(n, f"malformed section header {line!r}")
            return "skip"
        name = line[1:-1].strip()
        if name not in _SECTIONS:
            self.error(n, f"unknown section [{name}] (known: "
                       + ", ".join(f"[{s}]" for s in _SECTIONS) + ")")
            return "skip"
        kind, scope = _SECTIONS[name]
        if kind == "hosts" and not self.group_line[scope]:
            self.group_line[scope] = n
        return kind, scope, f"[{name}]"

    def host_line(self, n: int, line: str, role: str, section: str) -> None:
        name, *tokens = line.split()
        if (tokens and tokens[0].startswith("=")) or name.split("=")[0] in checks.BY_NAME:
            self.error(n, f"{line!r} looks like a setting: settings go in [all:vars] "
                       f"or {section[:-1]}:vars]")
            return
        self.host_lines[role] += 1
        if "=" in name:
            self.error(n, f"host line must start with the host name, not {name!r}")
            return
        bad = [t for t in tokens if not t.split("=", 1)[0] or "=" not in t]
        if bad:
            # One message for the line: guessing what it meant would only
            # add follow-up errors (missing ip, ...) that are not the problem.
            self.error(n, "malformed host line: " + ", ".join(map(repr, bad))
                       + (" is" if len(bad) == 1 else " are")
                       + " not key=value (write key=value, without spaces around '=')")
            self.hosts.append(_RawHost(name, "!" + role, n, group=section))
            return
        ok = True
        if not checks.is_hostname(name):
            self.error(n, f"host name {name!r} is not a valid hostname "
                       "(letters, digits, '-', dots between labels)")
            ok = False
        host = _RawHost(name, role, n, group=section)
        seen: set[str] = set()
        for tok in tokens:
            key, value = tok.split("=", 1)
            if key in seen:
                self.error(n, f"duplicate key {key!r} on host {name!r}")
                ok = False
                continue
            seen.add(key)
            if key not in _HOST_KEYS:
                hint = (f"; settings go in [all:vars] or {section[:-1]}:vars]"
                        if key in checks.BY_NAME else f" (known: {', '.join(_HOST_KEYS)})")
                self.error(n, f"unknown host key {key!r} on host {name!r}{hint}")
                ok = False
                continue
            try:
                if key == "ip":
                    host.ip = checks.ip(value)
                elif key == "myid":
                    if role != "master":
                        raise checks.BadValue("myid is for masters only (slaves do not run ZooKeeper)")
                    host.myid = checks.myid(value)
                elif key == "ssh_host":
                    host.ssh_host = checks.hostname_or_ip(value)
                elif key == "ssh_port":
                    host.ssh_port = checks.port(value, "ssh_port")
                else:
                    host.ssh_user = checks.user(value)
            except checks.BadValue as e:
                msg = str(e) if key in str(e) else f"{key} {e}"
                self.error(n, f"host {name!r}: {msg}")
                ok = False
                if key == "ip":
                    host.ip = ""      # present but bad: do not also say "missing"
        if host.ip is None:
            self.error(n, f"host {name!r} has no ip (add ip=A.B.C.D)")
            ok = False
        if role == "master" and host.myid is None and "myid" not in seen:
            # Pinned, never derived from line order: ids from positions change
            # when lines are reordered and no longer match server.N on the
            # other masters (puppet-zookeeper #18, #27).
            self.error(n, f"master {name!r} has no myid (add myid=N, 1-255, unique and never reused)")
            ok = False
        if ok:
            self.hosts.append(host)
        else:
            # Still record the name/ip so duplicates elsewhere get reported.
            self.hosts.append(replace(host, role="!" + role))

    def vars_line(self, n: int, line: str, scope: str, section: str) -> None:
        if "=" not in line:
            self.error(n, f"malformed setting line {line!r} (expected key = value)")
            return
        key, value = (s.strip() for s in line.split("=", 1))
        if key not in checks.BY_NAME:
            if not key or not re.fullmatch(r"\w+", key):
                self.error(n, f"malformed setting line {line!r} (expected key = value)")
            else:
                hint = "; host keys go on the host's line" if key in _HOST_KEYS else ""
                self.error(n, f"unknown setting {key!r}{hint}")
            return
        setting = checks.BY_NAME[key]
        check, describes = setting.check, setting.describes
        if scope != "all" and describes and describes != scope:
            other = "masters" if describes == "master" else "slaves"
            self.error(n, f"{key!r} cannot be set in {section}: it describes the {other}; "
                       f"set it in [all:vars] or [{other}:vars]")
            return
        previous = self.vars[scope].get(key)
        if previous:
            self.error(n, f"duplicate setting {key!r} in {section} "
                       f"(first set on line {previous[1]} in {previous[2]})")
            return
        try:
            typed = check(value)
        except checks.BadValue as e:
            self.error(n, f"{key}: {e}")
            self.broken.add(key)
            self.vars[scope][key] = (None, n, section)
            return
        if check is checks.local_path and typed:
            # Relative to the inventory, not to wherever fab was started.
            base = os.path.dirname(os.path.abspath(self.path)) if self.path != "<string>" \
                else os.getcwd()
            typed = os.path.normpath(os.path.join(base, os.path.expanduser(typed)))
            if key in checks.SECRET_READERS:
                try:
                    typed = checks.SECRET_READERS[key](typed)
                except checks.BadValue as e:
                    self.error(n, f"{key}: {e}")
                    self.broken.add(key)
                    typed = None
        self.vars[scope][key] = (typed, n, section)

    # -- whole-inventory checks -------------------------------------------

    def effective(self, role: str) -> dict[str, tuple[object, int]]:
        """name -> (value, line it came from; 0 = default) for one role."""
        out = {s.name: (s.default, 0) for s in checks.SETTINGS}
        for s in checks.SETTINGS:
            key = s.name
            # A setting describing one role takes that role's value everywhere.
            for scope in ("all", s.describes or role):
                if key in self.vars[scope]:
                    value, line, _ = self.vars[scope][key]
                    out[key] = (value, line)
        return out

    def finish(self) -> Cluster:
        self.check_duplicates()
        eff = self.effective("master")
        count = self.host_lines["master"]
        if not self.group_line["master"]:
            self.error(0, "no [masters] section: list at least one master "
                       "(NAME ip=A.B.C.D myid=N)")
        elif count == 0:
            self.error(self.group_line["master"], "no masters in [masters]")
        elif count % 2 == 0 and "allow_even_masters" not in self.broken \
                and not eff["allow_even_masters"][0]:
            # An even ensemble tolerates no more failures than one master fewer.
            self.error(self.group_line["master"],
                       f"{count} masters: an even number tolerates no more failures than "
                       f"{count - 1}; use an odd number, or set allow_even_masters = true "
                       "in [all:vars] or [masters:vars]")
        q, qline = eff["quorum"]
        if q is not None and count and "quorum" not in self.broken:
            low = count // 2 + 1
            if not low <= q <= count:
                # Below a majority two halves can both decide (the replicated
                # log forks); above n the registrar can never recover.
                self.error(qline, f"quorum {q} is not a majority of {count} masters "
                           f"(expected {low}" + (f" to {count})" if count > low else ")"))
        seen_ports: dict[int, str] = {}
        for key in _MASTER_PORTS:
            if key in self.broken:
                continue
            port, line = eff[key]
            if port in seen_ports:
                self.error(line or eff[seen_ports[port]][1],
                           f"{key} {port} is also {seen_ports[port]}: each master "
                           "service needs its own port")
            else:
                seen_ports[port] = key
        if not self.broken & {"zk_mesos_path", "zk_marathon_path"} \
                and eff["zk_mesos_path"][0] == eff["zk_marathon_path"][0]:
            line = max(eff["zk_mesos_path"][1], eff["zk_marathon_path"][1])
            self.error(line, f"zk_mesos_path and zk_marathon_path are both "
                       f"{eff['zk_mesos_path'][0]!r}: Mesos and Marathon need their own znodes")
        if self.errors:
            raise InventoryError(self.errors)
        return self.build()

    def check_duplicates(self) -> None:
        names: dict[str, _RawHost] = {}
        ips: dict[str, _RawHost] = {}
        myids: dict[int, _RawHost] = {}
        for h in self.hosts:
            role = h.role.lstrip("!")
            other = names.get(h.name.casefold())
            if other:
                other_role = other.role.lstrip("!")
                if other_role == role:
                    self.error(h.line, f"duplicate host {h.name!r} in {h.group} "
                               f"(first on line {other.line})")
                else:
                    self.error(h.line, f"host {h.name!r} in both {other.group} "
                               f"(line {other.line}) and {h.group}")
            else:
                names[h.name.casefold()] = h
            if h.ip:
                other = ips.get(h.ip)
                if other:
                    self.error(h.line, f"duplicate ip {h.ip}: host {h.name!r} and host "
                               f"{other.name!r} (line {other.line})")
                else:
                    ips[h.ip] = h
            if h.myid is not None and role == "master":
                other = myids.get(h.myid)
                if other:
                    self.error(h.line, f"duplicate myid {h.myid}: master {h.name!r} and "
                               f"master {other.name!r} (line {other.line})")
                else:
                    myids[h.myid] = h

    def build(self) -> Cluster:
        settings = {role: Settings(**{k: v for k, (v, _) in self.effective(role).items()})
                    for role in ("master", "slave")}
        hosts = {"master": [], "slave": []}
        for h in self.hosts:
            hosts[h.role].append(Host(
                name=h.name, role=h.role, ip=h.ip, myid=h.myid,
                ssh_host=h.ssh_host or h.ip,
                ssh_port=settings[h.role].ssh_port if h.ssh_port is None else h.ssh_port,
                ssh_user=h.ssh_user or settings[h.role].ssh_user or None,
                settings=settings[h.role], line=h.line))
        return Cluster(path=self.path, masters=tuple(hosts["master"]),
                       slaves=tuple(hosts["slave"]))
