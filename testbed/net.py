"""The testbed's network in the root namespace: bridge, one netns + veth per host, NAT with a
narrow egress allow-list (nftables table of our own), and the sysctls that needs.

Every command is an argv list (no shell). Teardown functions discover by name (the instance's
prefix, bridge and table names; see config.Instance) rather than trusting a state file, so they
also clean up after an `up` that died half-way, and never touch another instance.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from testbed import config


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command, failing loudly with its output (our errors should say what broke)."""
    kw.setdefault("text", True)
    if "stdout" not in kw:
        kw["capture_output"] = True
    cp = subprocess.run(argv, **kw)
    if cp.returncode != 0:
        err = (cp.stderr or "").strip() if isinstance(cp.stderr, str) else ""
        raise RuntimeError(f"{' '.join(argv)} exited {cp.returncode}: {err}")
    return cp


def _quiet(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True)


# --- sysctls: old values saved once, restored by the last instance's `down` ------------------
SYSCTLS = {
    "net.ipv4.ip_forward": "1",                 # the NAT to the mirror
    "fs.inotify.max_user_instances": "8192",    # 128 runs out at ~18 booted containers
}


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def set_sysctls() -> None:
    # Save only if nothing is saved yet: a second `up` (or instance) must not save our own
    # values as "old".
    if not config.SYSCTL_FILE.exists():
        old = {k: _sysctl_path(k).read_text().strip() for k in SYSCTLS}
        config.SYSCTL_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.SYSCTL_FILE.write_text(json.dumps(old, indent=1) + "\n")
    for key, value in SYSCTLS.items():
        current = _sysctl_path(key).read_text().strip()
        if key == "fs.inotify.max_user_instances" and int(current) >= int(value):
            continue
        _sysctl_path(key).write_text(value + "\n")


def restore_sysctls() -> dict:
    if not config.SYSCTL_FILE.exists():
        return {}
    old = json.loads(config.SYSCTL_FILE.read_text())
    for key, value in old.items():
        _sysctl_path(key).write_text(value + "\n")
    config.SYSCTL_FILE.unlink()
    return old


# --- bridge and per-host links --------------------------------------------------------------
def link_names() -> list[str]:
    out = _quiet(["ip", "-br", "link"]).stdout
    return [ln.split()[0].split("@")[0] for ln in out.splitlines() if ln.strip()]


def netns_names() -> list[str]:
    out = _quiet(["ip", "netns", "list"]).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.strip()]


def ensure_bridge(subnet: str) -> str:
    br_ip = config.bridge_ip(subnet)
    if config.BRIDGE not in link_names():
        run(["ip", "link", "add", config.BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{br_ip}/24", "dev", config.BRIDGE])
    run(["ip", "link", "set", config.BRIDGE, "up"])
    return br_ip


def add_host_link(host: config.Host, subnet: str) -> None:
    """netns tb-NAME with eth0 = one end of a veth whose other end (tb-NAME) is on the bridge."""
    ns = host.netns
    if ns not in netns_names():
        run(["ip", "netns", "add", ns])
    if host.veth in link_names():
        run(["ip", "link", "del", host.veth])
    run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", host.veth, "master", config.BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{host.ip}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "add", "default", "via", config.bridge_ip(subnet)])


def remove_host_link(host: config.Host) -> None:
    """Undo add_host_link (deleting the netns also deletes the veth's peer)."""
    _quiet(["ip", "netns", "del", host.netns])
    if host.veth in link_names():
        _quiet(["ip", "link", "del", host.veth])


def remove_links() -> list[str]:
    """Delete every netns and link with our prefix and our bridge; returns what was removed."""
    gone = []
    for ns in netns_names():
        if ns.startswith(config.PREFIX):
            _quiet(["ip", "netns", "del", ns])
            gone.append("netns " + ns)
    for link in link_names():
        if link.startswith(config.PREFIX) or link == config.BRIDGE:
            _quiet(["ip", "link", "del", link])
            gone.append("link " + link)
    # `ip netns add` bind-mounts /run/netns onto itself; drop that once no namespace is left.
    if not netns_names() and is_mountpoint("/run/netns"):
        _quiet(["umount", "/run/netns"])
        gone.append("mount /run/netns")
    return gone


def is_mountpoint(path: str) -> bool:
    """From mountinfo: os.path.ismount misses a bind mount of a directory onto itself."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


# --- nftables: masquerade + egress allow-list -----------------------------------------------
def nft_ruleset(subnet: str, mirror_addrs: list[str], resolvers: list[str]) -> str:
    """Hosts may talk to each other, to the bridge address (repo, SSH replies), to the mirror
    on 80/443 and to the resolvers on 53; everything else they send is rejected."""
    br = config.bridge_ip(subnet)
    t = config.NFT_TABLE
    mirrors = ", ".join(mirror_addrs) or "127.0.0.255"   # an empty set literal is a syntax error
    dns = ", ".join(resolvers) or "127.0.0.255"
    return f"""table ip {t} {{
  set mirrors {{ type ipv4_addr; elements = {{ {mirrors} }} }}
  set resolvers {{ type ipv4_addr; elements = {{ {dns} }} }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip saddr {subnet} ip daddr {subnet} accept
    ip daddr {subnet} ct state established,related accept
    ip saddr {subnet} ip daddr @mirrors tcp dport {{ 80, 443 }} accept
    ip saddr {subnet} ip daddr @resolvers meta l4proto {{ tcp, udp }} th dport 53 accept
    ip saddr {subnet} reject
    ip daddr {subnet} reject
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "{config.BRIDGE}" ip daddr != {br} reject
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip saddr {subnet} ip daddr != {subnet} masquerade
  }}
}}
"""


def apply_nft(ruleset: str) -> None:
    remove_nft()
    run(["nft", "-f", "-"], input=ruleset)


def remove_nft() -> bool:
    return _quiet(["nft", "delete", "table", "ip", config.NFT_TABLE]).returncode == 0
