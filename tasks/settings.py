"""Every inventory setting, once: its name, default, check, the role it describes, and what it does.

`SETTINGS` below is the only list of settings. The parser (`tasks.inventory`) checks values
with it, the model (`tasks.model.Settings`) takes its fields and defaults from it, and the
README points here. Settings go in `[all:vars]`, `[masters:vars]` or `[slaves:vars]`
(`key = value`) and are layered default < `[all:vars]` < `[ROLE:vars]`. A setting that
describes one role (`describes`) can only be set in `[all:vars]` or that role's section, and
every host sees that role's value, so a slave never holds another ZooKeeper port than the
masters.

Each check takes the raw text and returns the typed value, or raises `BadValue` with the
reason. Values end up in shell commands, file contents and apt lines, so anything with shell
meaning is refused outright even though the shell builders quote: a value that needs quoting
is a typo, not a wish.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

class BadValue(ValueError):
    """A setting or host key whose text is not a valid value; the message says why."""


_SHELLY = {" ": "a space", "\t": "a tab", '"': "a quote", "'": "a quote",
           "`": "a backtick", "$": "'$'", ";": "';'", "|": "'|'", "&": "'&'",
           "<": "'<'", ">": "'>'", "\\": "a backslash", "*": "'*'", "?": "'?'",
           "#": "'#'", "!": "'!'", "(": "'('", ")": "')'"}
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")          # Debian policy 5.6.1
_DEB_VERSION = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")  # policy 5.6.12
_SUITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_ZNODE = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
DIGITS = re.compile(r"^[0-9]{1,9}$")   # str.isdigit() also accepts '²'
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


def plain(raw: str, allow_space: bool = False) -> str:
    for ch in raw:
        if ch == " " and allow_space:
            continue
        if ch in _SHELLY:
            raise BadValue(f"{raw!r} contains {_SHELLY[ch]}")
        if not (" " < ch < "\x7f"):
            raise BadValue(f"{raw!r} contains the character {ch!r}")
    return raw


def is_hostname(value: str) -> bool:
    return len(value) <= 253 and all(_HOSTNAME_LABEL.match(p) for p in value.split("."))


def port(raw: str, what: str = "port") -> int:
    if not DIGITS.match(raw) or not 1 <= int(raw) <= 65535:
        raise BadValue(f"malformed {what} {raw!r} (expected 1-65535)")
    return int(raw)


def ip(raw: str) -> str:
    try:
        addr = ipaddress.IPv4Address(raw)
    except ValueError:
        raise BadValue(f"malformed ip {raw!r} (expected an IPv4 address such as 192.0.2.1)") from None
    # The ip is what ZooKeeper, Mesos and Marathon bind to and advertise to
    # the other hosts; these kinds cannot serve that purpose.
    why = ("the unspecified address" if addr.is_unspecified else
           "a loopback address: the services would bind there and no other host could reach them"
           if addr.is_loopback else
           "a multicast address" if addr.is_multicast else
           "the broadcast address" if addr == ipaddress.IPv4Address("255.255.255.255") else
           "a reserved address" if addr.is_reserved else None)
    if why:
        raise BadValue(f"ip {raw} is {why}")
    return str(addr)


def myid(raw: str) -> int:
    # ZooKeeper reads myid as one integer 1-255.
    if not DIGITS.match(raw) or not 1 <= int(raw) <= 255:
        raise BadValue(f"myid {raw!r} is out of range (expected an integer 1-255)")
    return int(raw)


def hostname_or_ip(raw: str) -> str:
    plain(raw)
    if not is_hostname(raw):
        raise BadValue(f"{raw!r} is not a valid hostname or IP address")
    return raw


def user(raw: str) -> str:
    plain(raw)
    if not _USER.match(raw):
        raise BadValue(f"{raw!r} is not a valid user name")
    return raw


def url(raw: str, optional: bool = False) -> str:
    if not raw:
        if optional:
            return ""
        raise BadValue("a URL is required")
    plain(raw)
    # Only {distro} and {codename} are filled in (Settings.repo_url_for).
    rest = re.sub(r"\{(distro|codename)\}", "", raw)
    if "{" in rest or "}" in rest:
        raise BadValue(f"{raw!r} has an unknown placeholder (only {{distro}} and {{codename}})")
    parts = urllib.parse.urlsplit(rest)
    try:
        parts.port
    except ValueError:
        raise BadValue(f"{raw!r} has a malformed port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadValue(f"{raw!r} is not an http:// or https:// URL")
    return raw


def suite(raw: str) -> str:
    if raw:
        plain(raw)
        if not _SUITE.match(raw):
            raise BadValue(f"{raw!r} is not a valid apt suite name")
    return raw


def component(raw: str) -> str:
    plain(raw)
    if not _SUITE.match(raw):
        raise BadValue(f"{raw!r} is not a valid apt component name")
    return raw


def fingerprint(raw: str) -> str:
    plain(raw)
    value = raw[2:] if raw.lower().startswith("0x") else raw
    if not re.fullmatch(r"[0-9A-Fa-f]+", value):
        raise BadValue(f"{raw!r} is not a key fingerprint (40 hex digits)")
    if len(value) != 40:
        raise BadValue(f"{raw!r} is not a full fingerprint: give all 40 hex digits, as "
                       "`gpg --with-colons --fingerprint` prints them (an 8- or 16-digit key "
                       "id can be matched by a key made to collide with it)")
    return value.upper()


def keyserver(raw: str) -> str:
    plain(raw)
    # apt-key/gpg also take hkp://host:port, which firewalled hosts need (port 80).
    m = re.fullmatch(r"(hkps?://)?([^:/]+)(:\d+)?/?", raw)
    if not m or not is_hostname(m.group(2)) or (m.group(3) and not m.group(1)):
        raise BadValue(f"{raw!r} is not a keyserver (hostname or hkp://host:port)")
    if m.group(3):
        port(m.group(3)[1:])
    return raw


def packages(raw: str) -> tuple[str, ...]:
    plain(raw, allow_space=True)
    names = tuple(raw.split())
    if not names:
        raise BadValue("at least one package is required")
    for item in names:
        name, eq, version = item.partition("=")
        if not _DEB_NAME.match(name):
            raise BadValue(f"{name!r} is not a Debian package name "
                       "(lower case letters, digits, '+', '-', '.'; 2 characters or more)")
        if eq and not _DEB_VERSION.match(version):
            raise BadValue(f"{version!r} is not a Debian version (in {item!r})")
    return names


def marathon_style(raw: str) -> str:
    # Marathon <= 1.4 reads /etc/marathon/conf, >= 1.5 only /etc/default/marathon.
    if raw not in ("auto", "conf-dir", "env"):
        raise BadValue(f"{raw!r} is not one of auto, conf-dir, env")
    return raw


def quorum(raw: str) -> int | None:
    if raw == "":
        return None
    if not DIGITS.match(raw) or int(raw) < 1:
        raise BadValue(f"malformed quorum {raw!r} (expected a positive integer, or empty to compute it)")
    return int(raw)


def boolean(raw: str) -> bool:
    value = raw.lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise BadValue(f"{raw!r} is not a boolean (true/false, yes/no, 1/0)")


def local_path(raw: str) -> str:
    """A file on the machine that runs fab; the inventory resolves it against its own
    directory. '..' is allowed here: it is never shelled."""
    return plain(raw) if raw else ""


@dataclass(frozen=True)
class Secret:
    """A secret read from a file on the machine that runs fab. Its value never shows in a
    repr, a report or an error; only its path does."""
    path: str
    value: str = field(repr=False)


# Characters a secret may hold: it ends up in env files a shell sources, in flag files and in
# JSON, so nothing a shell or a parser would read as anything but itself.
_SECRET_CHARS = re.compile(r"^[A-Za-z0-9._~+/=@%^,-]+$")
_SECRET_CHARS_TEXT = "letters, digits and . _ ~ + / = @ % ^ , -"


def read_secret(path: str, separator: str = "") -> str:
    """The one line of a secret file: it must be a regular file, readable by its owner only
    (as ssh wants a private key), and hold one line of _SECRET_CHARS (and `separator`)."""
    try:
        info = os.stat(path)
        with open(path, encoding="utf-8") as f:
            text = f.read(4097)
    except FileNotFoundError:
        raise BadValue(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadValue(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadValue(f"{path} is not a regular file")
    if info.st_mode & 0o077:
        raise BadValue(f"{path} can be read by other users (mode {info.st_mode & 0o777:04o}): "
                       f"`chmod 600 {path}`")
    lines = text.splitlines()
    if len(text) > 4096 or len(lines) != 1 or not lines[0]:
        raise BadValue(f"{path} must hold one line: the secret")
    if not _SECRET_CHARS.match(lines[0].replace(separator, "a") if separator else lines[0]):
        raise BadValue(f"{path}: the secret may hold only {_SECRET_CHARS_TEXT}"
                       + (f" (and {separator!r} between its parts)" if separator else ""))
    return lines[0]


def credentials_file(path: str) -> Secret:
    """Marathon's `--http_credentials`: user:password. Marathon splits at a colon, so neither
    may hold one."""
    value = read_secret(path, separator=":")
    user, sep, password = value.partition(":")
    if not sep or not user or not password or ":" in password:
        raise BadValue(f"{path} must hold user:password (one colon, neither part empty)")
    return Secret(path, value)


def secret_file(path: str) -> Secret:
    return Secret(path, read_secret(path))


# The settings whose file holds a secret: the inventory reads them (its path resolved) with
# these, so a bad one is refused with the inventory's file and line, before any host is asked.
SECRET_READERS: dict[str, Callable[[str], Secret]] = {
    "marathon_credentials_file": credentials_file,
    "mesos_framework_secret_file": secret_file,
}


def principal(raw: str) -> str:
    plain(raw)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", raw):
        raise BadValue(f"{raw!r} is not a principal (letters, digits, '.', '_', '-')")
    return raw


# The four-letter words ZooKeeper (3.4.x to 3.8) knows.
FOUR_LETTER_WORDS = ("conf", "cons", "crst", "dump", "envi", "ruok", "srst", "srvr", "stat",
                     "wchs", "wchc", "wchp", "mntr", "isro", "hash", "gtmk", "stmk", "dirs")
# What the tool itself asks: srvr and mntr (cluster-status, the rolling restarts' gates).
TOOL_FOUR_LETTER_WORDS = ("srvr", "mntr")


def four_letter_words(raw: str) -> tuple[str, ...]:
    words = tuple(w.strip() for w in raw.split(",") if w.strip())
    unknown = [w for w in words if w not in FOUR_LETTER_WORDS]
    if unknown:
        raise BadValue(f"unknown four-letter word {', '.join(unknown)} (ZooKeeper knows "
                       f"{', '.join(FOUR_LETTER_WORDS)})")
    missing = [w for w in TOOL_FOUR_LETTER_WORDS if w not in words]
    if missing:
        raise BadValue(f"the tool needs {', '.join(missing)} (cluster-status and the rolling "
                       "restarts ask them)")
    return tuple(dict.fromkeys(words))


def scheme(raw: str) -> str:
    if raw not in ("http", "https"):
        raise BadValue(f"{raw!r} is not one of http, https")
    return raw


def host_key_policy(raw: str) -> str:
    if raw not in ("strict", "accept-new"):
        raise BadValue(f"{raw!r} is not one of strict, accept-new")
    return raw


def seconds(raw: str) -> int:
    if not DIGITS.match(raw) or not 1 <= int(raw) <= 86400:
        raise BadValue(f"{raw!r} is not a number of seconds (a whole number, 1-86400)")
    return int(raw)


def znode(raw: str) -> str:
    plain(raw)
    if not _ZNODE.match(raw) or any(p in (".", "..") for p in raw.split("/")):
        raise BadValue(f"{raw!r} is not a ZooKeeper path (absolute, [A-Za-z0-9_.-] segments, "
                   "no '.' or '..', no trailing slash)")
    return raw




@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    check: Callable[[str], object]      # raw text -> typed value, or BadValue
    describes: str | None               # "master" | "slave": one role's; None: any host's own
    doc: str


def _snap_retain_count(raw: str) -> int:
    # ZooKeeper raises anything below 3 to 3, silently: refused here, so the file says what runs.
    if not DIGITS.match(raw) or int(raw) < 3:
        raise BadValue(f"{raw!r} is not a snapshot count ZooKeeper keeps (an integer, 3 or more)")
    return int(raw)


def _purge_interval(raw: str) -> int:
    if not DIGITS.match(raw):
        raise BadValue(f"{raw!r} is not a number of hours (an integer; 0 turns purging off)")
    return int(raw)


def _ssh_port(raw: str) -> int:
    return port(raw, "ssh_port")


def _key_url(raw: str) -> str:
    return url(raw, optional=True)


# The tutorial's values are the defaults.
SETTINGS = (
    Setting("zk_port", 2181, port, "master",
            "ZooKeeper's client port: written into zoo.cfg and every zk:// URL"),
    Setting("zk_peer_port", 2888, port, "master", "ZooKeeper's peer port, in the server.N lines"),
    Setting("zk_election_port", 3888, port, "master",
            "ZooKeeper's leader election port, in the server.N lines"),
    Setting("mesos_port", 5050, port, "master",
            "where the tool finds mesos-master (the package's port; the steps do not change it)"),
    Setting("mesos_slave_port", 5051, port, "slave",
            "where the tool finds mesos-slave (the package's port; the steps do not change it)"),
    Setting("marathon_port", 8080, port, "master",
            "Marathon's HTTP port: written into its configuration when not 8080"),
    Setting("repo_url", "http://repos.mesosphere.io/{distro}", url, None,
            "the apt repository (http/https); {distro} and {codename} are the host's lsb_release"),
    Setting("repo_suite", "", suite, None, "the apt suite; empty: the host's `lsb_release -cs`"),
    Setting("repo_component", "main", component, None, "the apt component"),
    # A 32-bit key id is easy to collide with a forged key: the tutorial's E56151BF, in full.
    Setting("repo_key_id", "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF", fingerprint, None,
            "the signing key's full fingerprint (40 hex digits); a fetched key is trusted only "
            "if its primary fingerprint is this one"),
    Setting("repo_keyserver", "keyserver.ubuntu.com", keyserver, None,
            "where the key is fetched from: a hostname or hkp://host:port"),
    Setting("repo_key_url", "", _key_url, None,
            "fetch the key from this URL instead of the keyserver ({distro}, {codename} too)"),
    Setting("master_packages", ("mesosphere",), packages, "master",
            "what install-master installs: space-separated Debian names, optional =version"),
    Setting("slave_packages", ("mesos",), packages, "slave",
            "what install-slave installs: space-separated Debian names, optional =version"),
    Setting("marathon_config_style", "auto", marathon_style, "master",
            "auto (from the installed version), conf-dir (Marathon <= 1.4) or env (>= 1.5)"),
    Setting("quorum", None, quorum, "master",
            "Mesos' quorum; empty: a majority, floor(n/2)+1; an explicit value must be a majority"),
    Setting("allow_even_masters", False, boolean, "master",
            "accept an even number of masters (true/false, yes/no, 1/0)"),
    Setting("ssh_key_file", "", local_path, None,
            "the SSH private key, relative to the inventory's directory; empty: Fabric's keys"),
    Setting("ssh_known_hosts", "", local_path, None,
            "a known_hosts file checked besides ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts "
            "(relative to the inventory's directory); new keys are recorded there"),
    Setting("ssh_host_key_policy", "strict", host_key_policy, None,
            "strict: an unknown host key is refused (record it with ssh-keyscan first); "
            "accept-new: recorded on first contact, as OpenSSH's; a changed key is always refused"),
    Setting("command_timeout", 120, seconds, None,
            "seconds a command may run on a host (file writes, reading the facts)"),
    Setting("service_timeout", 300, seconds, None,
            "seconds a service start, stop or wait (wait-zookeeper) may run on a host"),
    Setting("apt_timeout", 1800, seconds, None,
            "seconds one apt-get or dpkg command may run on a host, not counting the wait "
            "for the dpkg lock"),
    Setting("dpkg_lock_timeout", 300, seconds, None,
            "seconds apt waits for the dpkg lock that another process (unattended-upgrades) "
            "holds, before it fails"),
    Setting("ssh_user", "", user, None, "the SSH login of hosts without ssh_user=; empty: Fabric's"),
    Setting("ssh_port", 22, _ssh_port, None, "the SSH port of hosts without ssh_port="),
    Setting("zk_mesos_path", "/mesos", znode, "master", "Mesos' znode, at the end of /etc/mesos/zk"),
    Setting("zk_marathon_path", "/marathon", znode, "master",
            "Marathon's znode (must differ from Mesos')"),
    Setting("zk_four_letter_words", TOOL_FOUR_LETTER_WORDS, four_letter_words, "master",
            "ZooKeeper's 4lw.commands.whitelist: what the tool asks (srvr, mntr), "
            "and any other your monitoring needs; every other word is refused"),
    Setting("marathon_scheme", "http", scheme, "master",
            "how the tool talks to Marathon: http, or https (Marathon's HTTPS port as "
            "marathon_port, its certificate checked against ca_bundle)"),
    Setting("ca_bundle", "", local_path, "master",
            "a PEM file of the CA(s) that sign Marathon's certificate (https); empty: the "
            "system's CAs"),
    Setting("marathon_credentials_file", None, local_path, "master",
            "a file (0600) holding user:password: Marathon then asks every HTTP request for it "
            "(basic auth), and every call of the tool sends it; empty: no authentication, as "
            "in the tutorial"),
    Setting("mesos_framework_secret_file", None, local_path, "master",
            "a file (0600) holding a secret: the masters then accept only authenticated "
            "frameworks, and Marathon authenticates with it; empty: none, as in the tutorial"),
    Setting("mesos_framework_principal", "marathon", principal, "master",
            "the principal Marathon authenticates to Mesos as"),
    Setting("zk_snap_retain_count", 3, _snap_retain_count, "master",
            "ZooKeeper's autopurge.snapRetainCount: the snapshots (and their logs) kept, 3 or more"),
    Setting("zk_purge_interval", 24, _purge_interval, "master",
            "ZooKeeper's autopurge.purgeInterval: hours between purges; 0 turns purging off"),
    Setting("gate_timeout", 120, seconds, "master",
            "seconds a rolling restart waits for a service's health before and after each "
            "host's restart (tasks/gates.py); past it, the roll stops"),
)

BY_NAME = {s.name: s for s in SETTINGS}
