"""Read ``hosts.ini`` into a validated cluster model; every derived value lives here.

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
    quorum =

Host keys: ``ip`` (required, the IPv4 address the services bind to and
advertise), ``myid`` (masters only, required, 1-255, unique), ``ssh_host``
(default: ip), ``ssh_port`` (default: the ``ssh_port`` setting, 22), ``ssh_user``
(default: the ``ssh_user`` setting, else Fabric's own configuration). Settings (``key = value``, defaults in :class:`Settings`) are
layered defaults < ``[all:vars]`` < ``[ROLE:vars]``. A setting that describes
one role only (the master ports, quorum, ZooKeeper paths, Marathon's config
style, master packages / the agent port and packages) can only be set in
``[all:vars]`` or that role's section, and every host sees that role's value,
so a slave never holds a ZooKeeper port that differs from the masters'.

Settings (default; rule):

- ``zk_port`` 2181, ``zk_peer_port`` 2888, ``zk_election_port`` 3888,
  ``mesos_port`` 5050, ``marathon_port`` 8080 (masters; 1-65535, all distinct),
  ``mesos_slave_port`` 5051 (slaves). The ZooKeeper and Marathon ports are configured
  on the hosts; the two Mesos ports are only where the tool looks for the daemons (the
  packages' own defaults), the steps do not change the ports Mesos listens on;
- ``repo_url`` ``http://repos.mesosphere.io/{distro}`` (http/https; only the
  ``{distro}`` and ``{codename}`` placeholders), ``repo_suite`` '' (empty: the
  host's ``lsb_release -cs``), ``repo_component`` main, ``repo_key_id``
  the tutorial's E56151BF as a full fingerprint (8, 16 or 40 hex digits), ``repo_keyserver`` keyserver.ubuntu.com
  (hostname or ``hkp://host:port``), ``repo_key_url`` '' (set: fetch the key
  there instead of the keyserver);
- ``master_packages`` mesosphere, ``slave_packages`` mesos (space-separated
  Debian names, optional ``=version``);
- ``marathon_config_style`` auto (auto | conf-dir | env), ``quorum`` '' (empty:
  floor(n/2)+1; else a majority, n//2+1 <= q <= n), ``allow_even_masters``
  false (true/false, yes/no, 1/0);
- ``ssh_key_file`` '' (relative to the inventory's directory, made absolute),
  ``zk_mesos_path`` /mesos, ``zk_marathon_path`` /marathon (absolute znodes,
  distinct).

No value may hold spaces (except package lists), quotes, ``$``, backticks,
``;``, ``|``, ``&``, ``#`` and the like: they all end up in shell commands.

Everything is checked at load time and all problems are reported together as
``path:line: message`` in one :class:`InventoryError`: a half-valid inventory
must never reach a host. Derived values for the example above::

    cluster = load(default_path())
    cluster.mesos_zk_url   # 'zk://192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181/mesos'
    cluster.quorum         # 2 (empty quorum: floor(3/2)+1)
    cluster.zoo_servers    # ((1, '192.0.2.1'), (2, '192.0.2.2'), (3, '192.0.2.3'))
    cluster.find("192.0.2.51").settings.slave_packages   # ('mesos',)

Masters are ordered by myid in every derived value, so reordering lines in
the file changes no rendered file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

__all__ = [
    "InventoryError", "Host", "Settings", "Cluster",
    "load", "parse", "default_path",
]


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


@dataclass(frozen=True)
class Settings:
    """Effective settings of one host (defaults are the tutorial's values)."""

    zk_port: int = 2181
    zk_peer_port: int = 2888
    zk_election_port: int = 3888
    mesos_port: int = 5050
    mesos_slave_port: int = 5051
    marathon_port: int = 8080
    repo_url: str = "http://repos.mesosphere.io/{distro}"
    repo_suite: str = ""            # '' = `lsb_release -cs` on the host
    repo_component: str = "main"
    # The tutorial's key E56151BF, in full: a 32-bit id is easy to collide with a forged key.
    repo_key_id: str = "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF"
    repo_keyserver: str = "keyserver.ubuntu.com"
    repo_key_url: str = ""          # set: fetch the key here, not from the keyserver
    master_packages: tuple[str, ...] = ("mesosphere",)
    slave_packages: tuple[str, ...] = ("mesos",)
    marathon_config_style: str = "auto"   # auto | conf-dir | env
    quorum: int | None = None       # None = computed majority (Cluster.quorum)
    allow_even_masters: bool = False
    ssh_key_file: str = ""          # absolute path, '' = none
    ssh_user: str = ""              # default for hosts without ssh_user= ('' = Fabric's config)
    ssh_port: int = 22              # default for hosts without ssh_port=
    zk_mesos_path: str = "/mesos"
    zk_marathon_path: str = "/marathon"

    def repo_url_for(self, distro: str, codename: str) -> str:
        """repo_url with ``{distro}`` (lower-cased, as the tutorial's ``tr``) and ``{codename}``."""
        return _expand(self.repo_url, distro, codename)

    def repo_key_url_for(self, distro: str, codename: str) -> str:
        return _expand(self.repo_key_url, distro, codename)


def _expand(template: str, distro: str, codename: str) -> str:
    return template.replace("{distro}", distro.lower()).replace("{codename}", codename)


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
        if sep and _DIGITS.match(tail) and ":" not in head:
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


# --------------------------------------------------------------------------
# Value checks. Each takes the raw text and returns the typed value or raises
# _Bad with a message. Values end up in shell commands, file contents and
# apt lines, so anything with shell meaning is refused outright even though
# other modules quote: a value that needs quoting is a typo, not a wish.

class _Bad(ValueError):
    pass


_SHELLY = {" ": "a space", "\t": "a tab", '"': "a quote", "'": "a quote",
           "`": "a backtick", "$": "'$'", ";": "';'", "|": "'|'", "&": "'&'",
           "<": "'<'", ">": "'>'", "\\": "a backslash", "*": "'*'", "?": "'?'",
           "#": "'#'", "!": "'!'", "(": "'('", ")": "')'"}
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")          # Debian policy 5.6.1
_DEB_VERSION = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")  # policy 5.6.12
_SUITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_ZNODE = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_DIGITS = re.compile(r"^[0-9]{1,9}$")   # str.isdigit() also accepts '²'
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


def _plain(raw: str, allow_space: bool = False) -> str:
    for ch in raw:
        if ch == " " and allow_space:
            continue
        if ch in _SHELLY:
            raise _Bad(f"{raw!r} contains {_SHELLY[ch]}")
        if not (" " < ch < "\x7f"):
            raise _Bad(f"{raw!r} contains the character {ch!r}")
    return raw


def _is_hostname(value: str) -> bool:
    return len(value) <= 253 and all(_HOSTNAME_LABEL.match(p) for p in value.split("."))


def _port(raw: str, what: str = "port") -> int:
    if not _DIGITS.match(raw) or not 1 <= int(raw) <= 65535:
        raise _Bad(f"malformed {what} {raw!r} (expected 1-65535)")
    return int(raw)


def _ip(raw: str) -> str:
    try:
        addr = ipaddress.IPv4Address(raw)
    except ValueError:
        raise _Bad(f"malformed ip {raw!r} (expected an IPv4 address such as 192.0.2.1)") from None
    # The ip is what ZooKeeper, Mesos and Marathon bind to and advertise to
    # the other hosts; these kinds cannot serve that purpose.
    why = ("the unspecified address" if addr.is_unspecified else
           "a loopback address: the services would bind there and no other host could reach them"
           if addr.is_loopback else
           "a multicast address" if addr.is_multicast else
           "the broadcast address" if addr == ipaddress.IPv4Address("255.255.255.255") else
           "a reserved address" if addr.is_reserved else None)
    if why:
        raise _Bad(f"ip {raw} is {why}")
    return str(addr)


def _myid(raw: str) -> int:
    # ZooKeeper reads myid as one integer 1-255.
    if not _DIGITS.match(raw) or not 1 <= int(raw) <= 255:
        raise _Bad(f"myid {raw!r} is out of range (expected an integer 1-255)")
    return int(raw)


def _hostname_or_ip(raw: str) -> str:
    _plain(raw)
    if not _is_hostname(raw):
        raise _Bad(f"{raw!r} is not a valid hostname or IP address")
    return raw


def _user(raw: str) -> str:
    _plain(raw)
    if not _USER.match(raw):
        raise _Bad(f"{raw!r} is not a valid user name")
    return raw


def _url(raw: str, optional: bool = False) -> str:
    if not raw:
        if optional:
            return ""
        raise _Bad("a URL is required")
    _plain(raw)
    # Only {distro} and {codename} are filled in (Settings.repo_url_for).
    rest = re.sub(r"\{(distro|codename)\}", "", raw)
    if "{" in rest or "}" in rest:
        raise _Bad(f"{raw!r} has an unknown placeholder (only {{distro}} and {{codename}})")
    parts = urllib.parse.urlsplit(rest)
    try:
        parts.port
    except ValueError:
        raise _Bad(f"{raw!r} has a malformed port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Bad(f"{raw!r} is not an http:// or https:// URL")
    return raw


def _suite(raw: str) -> str:
    if raw:
        _plain(raw)
        if not _SUITE.match(raw):
            raise _Bad(f"{raw!r} is not a valid apt suite name")
    return raw


def _component(raw: str) -> str:
    _plain(raw)
    if not _SUITE.match(raw):
        raise _Bad(f"{raw!r} is not a valid apt component name")
    return raw


def _key_id(raw: str) -> str:
    _plain(raw)
    value = raw[2:] if raw.lower().startswith("0x") else raw
    if len(value) not in (8, 16, 40) or not re.fullmatch(r"[0-9A-Fa-f]+", value):
        raise _Bad(f"{raw!r} is not a key id (8, 16 or 40 hex digits)")
    return value.upper()


def _keyserver(raw: str) -> str:
    _plain(raw)
    # apt-key/gpg also take hkp://host:port, which firewalled hosts need (port 80).
    m = re.fullmatch(r"(hkps?://)?([^:/]+)(:\d+)?/?", raw)
    if not m or not _is_hostname(m.group(2)) or (m.group(3) and not m.group(1)):
        raise _Bad(f"{raw!r} is not a keyserver (hostname or hkp://host:port)")
    if m.group(3):
        _port(m.group(3)[1:])
    return raw


def _packages(raw: str) -> tuple[str, ...]:
    _plain(raw, allow_space=True)
    names = tuple(raw.split())
    if not names:
        raise _Bad("at least one package is required")
    for item in names:
        name, eq, version = item.partition("=")
        if not _DEB_NAME.match(name):
            raise _Bad(f"{name!r} is not a Debian package name "
                       "(lower case letters, digits, '+', '-', '.'; 2 characters or more)")
        if eq and not _DEB_VERSION.match(version):
            raise _Bad(f"{version!r} is not a Debian version (in {item!r})")
    return names


def _style(raw: str) -> str:
    # Marathon <= 1.4 reads /etc/marathon/conf, >= 1.5 only /etc/default/marathon.
    if raw not in ("auto", "conf-dir", "env"):
        raise _Bad(f"{raw!r} is not one of auto, conf-dir, env")
    return raw


def _quorum(raw: str) -> int | None:
    if raw == "":
        return None
    if not _DIGITS.match(raw) or int(raw) < 1:
        raise _Bad(f"malformed quorum {raw!r} (expected a positive integer, or empty to compute it)")
    return int(raw)


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise _Bad(f"{raw!r} is not a boolean (true/false, yes/no, 1/0)")


def _key_file(raw: str) -> str:
    # '..' is allowed here: it is a local path, resolved below and never shelled.
    return _plain(raw) if raw else ""


def _znode(raw: str) -> str:
    _plain(raw)
    if not _ZNODE.match(raw) or any(p in (".", "..") for p in raw.split("/")):
        raise _Bad(f"{raw!r} is not a ZooKeeper path (absolute, [A-Za-z0-9_.-] segments, "
                   "no '.' or '..', no trailing slash)")
    return raw


# name -> (check, the role the setting describes: None = any host)
_SETTINGS = {
    "zk_port": (_port, "master"),
    "zk_peer_port": (_port, "master"),
    "zk_election_port": (_port, "master"),
    "mesos_port": (_port, "master"),
    "mesos_slave_port": (_port, "slave"),
    "marathon_port": (_port, "master"),
    "repo_url": (_url, None),
    "repo_suite": (_suite, None),
    "repo_component": (_component, None),
    "repo_key_id": (_key_id, None),
    "repo_keyserver": (_keyserver, None),
    "repo_key_url": (lambda raw: _url(raw, optional=True), None),
    "master_packages": (_packages, "master"),
    "slave_packages": (_packages, "slave"),
    "marathon_config_style": (_style, "master"),
    "quorum": (_quorum, "master"),
    "allow_even_masters": (_bool, "master"),
    "ssh_key_file": (_key_file, None),
    "ssh_user": (_user, None),
    "ssh_port": (lambda raw: _port(raw, "ssh_port"), None),
    "zk_mesos_path": (_znode, "master"),
    "zk_marathon_path": (_znode, "master"),
}
assert set(_SETTINGS) == {f.name for f in fields(Settings)}

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
        if (tokens and tokens[0].startswith("=")) or name.split("=")[0] in _SETTINGS:
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
        if not _is_hostname(name):
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
                        if key in _SETTINGS else f" (known: {', '.join(_HOST_KEYS)})")
                self.error(n, f"unknown host key {key!r} on host {name!r}{hint}")
                ok = False
                continue
            try:
                if key == "ip":
                    host.ip = _ip(value)
                elif key == "myid":
                    if role != "master":
                        raise _Bad("myid is for masters only (slaves do not run ZooKeeper)")
                    host.myid = _myid(value)
                elif key == "ssh_host":
                    host.ssh_host = _hostname_or_ip(value)
                elif key == "ssh_port":
                    host.ssh_port = _port(value, "ssh_port")
                else:
                    host.ssh_user = _user(value)
            except _Bad as e:
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
        if key not in _SETTINGS:
            if not key or not re.fullmatch(r"\w+", key):
                self.error(n, f"malformed setting line {line!r} (expected key = value)")
            else:
                hint = "; host keys go on the host's line" if key in _HOST_KEYS else ""
                self.error(n, f"unknown setting {key!r}{hint}")
            return
        check, describes = _SETTINGS[key]
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
        except _Bad as e:
            self.error(n, f"{key}: {e}")
            self.broken.add(key)
            self.vars[scope][key] = (None, n, section)
            return
        if key == "ssh_key_file" and typed:
            # Relative to the inventory, not to wherever fab was started.
            base = os.path.dirname(os.path.abspath(self.path)) if self.path != "<string>" \
                else os.getcwd()
            typed = os.path.normpath(os.path.join(base, os.path.expanduser(typed)))
        self.vars[scope][key] = (typed, n, section)

    # -- whole-inventory checks -------------------------------------------

    def effective(self, role: str) -> dict[str, tuple[object, int]]:
        """name -> (value, line it came from; 0 = default) for one role."""
        out = {f.name: (f.default, 0) for f in fields(Settings)}
        for key, (_, describes) in _SETTINGS.items():
            # A setting describing one role takes that role's value everywhere.
            for scope in ("all", describes or role):
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
