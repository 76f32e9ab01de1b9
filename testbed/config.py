"""Settings and pure planning for the testbed: names, paths, address plan, subnet choice,
apt-source parsing and the inventory text.

Everything here is side-effect free so it can be unit-tested without root or network; the
modules that act on the machine (net, rootfs, hosts) take their decisions from here.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

MACHINE_DIR = Path("/var/lib/mesos-testbed")
CACHE_DIR = Path("/var/cache/mesos-testbed")
TESTBED_DIR = Path(__file__).resolve().parent
INSTANCE_ENV = "MESOS_TESTBED"


@dataclass(frozen=True)
class Instance:
    """One of the independent testbeds a machine can run at once, named by $MESOS_TESTBED.
    The default instance ("") keeps the names and paths from before there were instances;
    every other name derives from the instance's, so no two instances share one."""
    name: str = ""

    def __post_init__(self):
        if self.name and not re.fullmatch(r"[a-z0-9]{1,4}", self.name):
            raise ValueError(f"{INSTANCE_ENV}={self.name!r}: a testbed instance name is 1-4 "
                             "characters from a-z and 0-9 (unset or empty: the default one)")

    @property
    def prefix(self) -> str:
        # netns, veth, cgroup and machine names; `down` discovers leftovers by it. The dash
        # ends it, so no instance's prefix starts another's ("tb-", "tbt2-", "tbt21-").
        # Interface names have at most 15 characters: "tb" + 4 + "-" + "slave200".
        return f"tb{self.name}-"

    @property
    def bridge(self) -> str:
        return f"tb{self.name}br0"

    @property
    def nft_table(self) -> str:
        return "mesos_testbed" + (f"_{self.name}" if self.name else "")

    @property
    def state_dir(self) -> Path:
        # The bridge, namespaces and nft table are machine-wide, so the state lives beside
        # them rather than in one clone of the repo (CI uses a fresh clone).
        return MACHINE_DIR / "instances" / self.name if self.name else MACHINE_DIR

    @property
    def inventory(self) -> Path:
        """What the cluster tasks read (`FABRIC_INVENTORY=testbed/hosts.ini fab cluster`)."""
        return TESTBED_DIR / (f"hosts-{self.name}.ini" if self.name else "hosts.ini")


INSTANCE = Instance(os.environ.get(INSTANCE_ENV, ""))
STATE_DIR = INSTANCE.state_dir
STATE_FILE = STATE_DIR / "state.json"
HOSTS_DIR = STATE_DIR / "hosts"
KEY_FILE = STATE_DIR / "id_ed25519"
# The hosts' SSH host keys, as `up` found them on their disks: the inventory's ssh_known_hosts.
KNOWN_HOSTS = STATE_DIR / "known_hosts"


@dataclass(frozen=True)
class SudoUser:
    name: str
    password: str = ""      # empty: NOPASSWD


# Every host has these logins besides root, with the testbed key: the tool proven as a
# non-root operator (`ssh_user = ops`), and with a sudo password (opspw's).
SUDO_USERS = (SudoUser("ops"), SudoUser("opspw", "testbed-sudo-pw"))
INVENTORY = INSTANCE.inventory
PREFIX = INSTANCE.prefix
BRIDGE = INSTANCE.bridge
NFT_TABLE = INSTANCE.nft_table  # `table ip mesos_testbed`, ours alone
# Shared by all instances: taken by the first `up`, given back by the last `down`, both
# under MACHINE_LOCK, which also makes choosing a free /24 and taking it one step.
SYSCTL_FILE = MACHINE_DIR / "sysctl-saved.json"
MACHINE_LOCK = MACHINE_DIR / "machine.lock"
# Held while building or checking the cached layers and repos: one instance builds, the
# others then find the cache warm.
CACHE_LOCK = CACHE_DIR / "build.lock"

NSPAWN_RUN = Path("/run/systemd/nspawn")
NSPAWN_MARK = ".mesos-testbed"  # marks the tmpfs we mounted there, so `down` only unmounts ours
# cgroup v1 hierarchies (plus the v2 one) each container gets a group of its own in.
CGROUP_HIERARCHIES = ("systemd", "unified", "memory", "pids")

SUITE = "bookworm"
REPO_PORT = 8000
DEFAULT_SLAVES = 3
MASTERS = 3
MASTER_LAST = 50           # masters at .1-.50 (more can be added to a running testbed)
SLAVE_FIRST = 51           # the tutorial's numbering: slaves at .51, .52, ...
SLAVE_LAST = 250           # .251-.253 spare, .254 is the bridge
MAX_SLAVES = SLAVE_LAST - SLAVE_FIRST + 1
DEFAULT_MARATHON = "1.4.8"

# Documentation ranges first (they keep the tutorial's spirit), then a private fallback block.
CANDIDATE_SUBNETS = ["198.51.100.0/24", "203.0.113.0/24"] + [
    f"10.213.{i}.0/24" for i in range(256)]

BASE_PACKAGES = [
    "openssh-server", "sudo", "gnupg", "lsb-release", "ca-certificates", "curl", "python3",
    "procps", "iproute2", "netcat-openbsd", "systemd", "systemd-sysv", "dbus", "iputils-ping",
]
# Preinstalled in the second layer. zookeeper Depends on default-jre (not -headless), which
# with libzookeeper-java's Java libraries is ~120 packages: unpacking them took ~25 s per host.
# zookeeper/zookeeperd themselves are only downloaded, so installing them stays real (their
# postinst creates the user, the conf alternatives and starts the service on the host).
HEAVY_PACKAGES = ["default-jre-headless", "default-jre", "libzookeeper-java", "python3-kazoo"]
DOWNLOAD_ONLY_PACKAGES = ["zookeeper", "zookeeperd"]
# Bump when what the layers contain changes, so cached layers get rebuilt.
BASE_VERSION = "1"
HEAVY_VERSION = "2"


@dataclass(frozen=True)
class Host:
    name: str
    ip: str
    role: str            # "master" or "slave"
    myid: int | None = None

    @property
    def netns(self) -> str:
        return PREFIX + self.name

    @property
    def veth(self) -> str:
        return PREFIX + self.name


def check_new_host(name: str, role: str, taken_names: list[str]) -> None:
    """A name `add-host` accepts: a hostname label short enough for the host's link name."""
    if role not in ("master", "slave"):
        raise ValueError(f"role must be master or slave, not {role!r}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"{name!r} is not a host name (a-z, 0-9, '-'; a letter first)")
    if len(PREFIX + name) > 15:   # Linux interface names: 15 characters at most
        raise ValueError(f"{name!r} is too long: at most {15 - len(PREFIX)} characters here")
    if name in taken_names:
        raise ValueError(f"a testbed host {name!r} exists already")


def next_ip(subnet: str, role: str, taken: list[str]) -> str:
    """The first free address of the role's range: masters .1-.50, slaves .51-.250."""
    net = ipaddress.ip_network(subnet)
    first, last = (1, MASTER_LAST) if role == "master" else (SLAVE_FIRST, SLAVE_LAST)
    for i in range(first, last + 1):
        if str(net[i]) not in taken:
            return str(net[i])
    raise ValueError(f"no free {role} address left in {subnet} (.{first}-.{last})")


def check_ip(subnet: str, ip: str, taken: list[str]) -> str:
    """An address given to `add-host`: a host address of the subnet, not the bridge's, free."""
    net = ipaddress.ip_network(subnet)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"{ip!r} is not an IPv4 address") from None
    if addr not in net or addr in (net[0], net[254], net[255]):
        raise ValueError(f"{ip} is not a host address of {subnet} (.1-.253)")
    if ip in taken:
        raise ValueError(f"{ip} is taken by another testbed host")
    return ip


def bridge_ip(subnet: str) -> str:
    """The bridge takes .254: the hosts' default route and where the package repo is served."""
    return str(ipaddress.ip_network(subnet)[254])


def plan_hosts(subnet: str, slaves: int) -> list[Host]:
    """master1..3 at .1-.3, slave1..N at .51 onwards (at most .250)."""
    if slaves < 0 or slaves > MAX_SLAVES:
        raise ValueError(f"slaves must be between 0 and {MAX_SLAVES}, not {slaves}")
    net = ipaddress.ip_network(subnet)
    if net.prefixlen != 24:
        raise ValueError(f"subnet must be a /24, not {subnet}")
    hosts = [Host(f"master{i}", str(net[i]), "master", i) for i in range(1, MASTERS + 1)]
    hosts += [Host(f"slave{i}", str(net[SLAVE_FIRST + i - 1]), "slave")
              for i in range(1, slaves + 1)]
    return hosts


_ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "throw", "unreachable",
                "prohibit", "blackhole", "nat", "anycast"}


def routed_networks(ip_route_output: str) -> list[ipaddress.IPv4Network]:
    """Destinations in `ip -4 route show table all` output; the default route is skipped since
    it covers everything and says nothing about which /24 is in use locally."""
    nets = []
    for line in ip_route_output.splitlines():
        words = line.split()
        if words and words[0] in _ROUTE_TYPES:
            words = words[1:]
        if not words or words[0] == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(words[0], strict=False))
        except ValueError:
            continue
    return [n for n in nets if n.version == 4]


def subnet_conflict(subnet: str, ip_route_output: str, avoid: list[str] = ()) -> str | None:
    """Why `subnet` cannot hold the hosts, or None: it overlaps a route (another instance's
    bridge among them) or holds one of `avoid` (addresses the hosts must reach through the
    machine, such as the mirror and the resolver)."""
    net = ipaddress.ip_network(subnet)
    for used in routed_networks(ip_route_output):
        if net.overlaps(used):
            return f"overlaps the route to {used}"
    for addr in avoid:
        if ipaddress.ip_address(addr) in net:
            return f"holds {addr}, which the hosts must reach through this machine"
    return None


def choose_subnet(ip_route_output: str, avoid: list[str] = (),
                  candidates: list[str] = CANDIDATE_SUBNETS) -> str:
    """First candidate /24 without a subnet_conflict."""
    for cand in candidates:
        if subnet_conflict(cand, ip_route_output, avoid) is None:
            return cand
    raise RuntimeError("no free /24 among the candidate subnets; pass --subnet")


@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_deb822(text: str) -> list[AptSource]:
    """Entries of a deb822 `.sources` file (one per URI); `Enabled: no` stanzas are skipped."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:      # continuation line
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields["uris"].split():
            out.append(AptSource(tuple(fields.get("types", "deb").split()), uri,
                                 tuple(fields.get("suites", "").split()),
                                 tuple(fields.get("components", "").split())))
    return out


def parse_one_line(text: str) -> list[AptSource]:
    """Entries of a one-line `sources.list` (`deb [opts] URI suite comp...`)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)   # drop [arch=... signed-by=...]
        words = line.split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        out.append(AptSource((words[0],), words[1], (words[2],), tuple(words[3:])))
    return out


def debian_mirror(sources: list[AptSource], suite: str = SUITE) -> str:
    """The URI serving `suite` itself (not -security/-updates): what debootstrap needs."""
    for s in sources:
        if "deb" in s.types and suite in s.suites:
            return s.uri
    raise RuntimeError(f"no apt source for suite {suite!r} in the machine's apt configuration")


def uri_host(uri: str) -> str:
    m = re.match(r"^[a-z+]+://(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)", uri)
    if not m:
        raise ValueError(f"not a URL: {uri!r}")
    return m.group(1).strip("[]")


def render_inventory(hosts: list[Host], key_file: Path, date: str, bridge: str | None = None,
                     key_fingerprint: str | None = None, distro: str = "debian",
                     known_hosts: Path | None = None) -> str:
    """The project's hosts.ini shape; repo lines only when a package repo is being served."""
    lines = [f"# Written by `fab testbed.up` on {date}; removed by `fab testbed.down`.",
             "[all:vars]", "ssh_user = root", f"ssh_key_file = {key_file}"]
    if known_hosts:
        lines.append(f"ssh_known_hosts = {known_hosts}")
    if bridge and key_fingerprint:
        base = f"http://{bridge}:{REPO_PORT}"
        lines += [f"repo_url = {base}/{distro}", f"repo_key_url = {base}/key.asc",
                  f"repo_key_id = {key_fingerprint}"]
    lines += ["", "[masters]"]
    lines += [inventory_line(h) for h in hosts if h.role == "master"]
    lines += ["", "[slaves]"]
    lines += [inventory_line(h) for h in hosts if h.role == "slave"]
    return "\n".join(lines) + "\n"


def inventory_line(host: Host) -> str:
    """The host's line in its inventory section: `master2 ip=... myid=2`, `slave1 ip=...`."""
    return f"{host.name} ip={host.ip}" + (f" myid={host.myid}" if host.role == "master" else "")


def render_known_hosts(keys: dict[str, str]) -> str:
    """known_hosts lines from {ip: the host's `ssh-ed25519 AAAA... comment` public key}."""
    return "".join(f"{ip} {' '.join(key.split()[:2])}\n" for ip, key in keys.items())


def render_etc_hosts(hosts: list[Host], pins: dict[str, list[str]] = {}) -> str:
    """localhost, every testbed host (its own name included); then the mirror pinned to the
    addresses the firewall lets through (a CDN may answer differently a minute later)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", ""]
    lines += [f"{h.ip}\t{h.name}" for h in hosts]
    if pins:
        lines += ["", "# Pinned by the testbed: its firewall lets hosts reach only these."]
        for host_name, addrs in sorted(pins.items()):
            lines += [f"{a}\t{host_name}" for a in addrs]
    return "\n".join(lines) + "\n"
