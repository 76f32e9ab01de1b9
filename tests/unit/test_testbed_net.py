"""The testbed's firewall ruleset (checked by nft itself) and sysctl bookkeeping (temp files)."""
import json
import os
import shutil
import subprocess

import pytest

from testbed import config, net

needs_nft = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
                               reason="nft -c needs root (it asks the kernel) and nft")


def test_ruleset_allows_only_hosts_bridge_mirror_and_dns():
    rules = net.nft_ruleset("198.51.100.0/24", ["203.0.113.80"], ["10.255.255.53"])
    assert rules.startswith(f"table ip {config.NFT_TABLE} {{")
    assert "elements = { 203.0.113.80 }" in rules
    assert "elements = { 10.255.255.53 }" in rules
    assert "ip saddr 198.51.100.0/24 ip daddr @mirrors tcp dport { 80, 443 } accept" in rules
    assert "th dport 53 accept" in rules
    assert "ip saddr 198.51.100.0/24 reject" in rules
    assert f'iifname "{config.BRIDGE}" ip daddr != 198.51.100.254 reject' in rules
    assert "ip saddr 198.51.100.0/24 ip daddr != 198.51.100.0/24 masquerade" in rules
    # Host-to-host traffic crosses the bridge (and, with br_netfilter, this forward hook):
    # it must be accepted before the reject.
    assert rules.index("ip daddr 198.51.100.0/24 accept") < rules.index("reject")


@needs_nft
@pytest.mark.parametrize("mirrors, resolvers", [
    (["203.0.113.80", "203.0.113.81"], ["10.255.255.53"]),
    ([], []),
], ids=["mirrors", "no-mirror"])
def test_ruleset_is_accepted_by_nft(tmp_path, mirrors, resolvers):
    """`nft -c` checks the ruleset against the kernel without applying it; in a network
    namespace of its own, so no table of a running testbed is in the way."""
    path = tmp_path / "rules.nft"
    path.write_text(net.nft_ruleset("198.51.100.0/24", mirrors, resolvers))
    result = subprocess.run(["unshare", "--net", "nft", "-c", "-f", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_sysctls_saved_once_and_restored(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    (proc / "net/ipv4").mkdir(parents=True)
    (proc / "fs/inotify").mkdir(parents=True)
    (proc / "net/ipv4/ip_forward").write_text("0\n")
    (proc / "fs/inotify/max_user_instances").write_text("128\n")
    monkeypatch.setattr(net, "_sysctl_path",
                        lambda k: proc / k.replace(".", "/"))
    monkeypatch.setattr(config, "SYSCTL_FILE", tmp_path / "saved.json")
    net.set_sysctls()
    net.set_sysctls()      # a second `up` must not record our own values as the old ones
    assert json.loads((tmp_path / "saved.json").read_text()) == {
        "net.ipv4.ip_forward": "0", "fs.inotify.max_user_instances": "128"}
    assert (proc / "net/ipv4/ip_forward").read_text().strip() == "1"
    assert (proc / "fs/inotify/max_user_instances").read_text().strip() == "8192"
    net.restore_sysctls()
    assert (proc / "net/ipv4/ip_forward").read_text().strip() == "0"
    assert (proc / "fs/inotify/max_user_instances").read_text().strip() == "128"
    assert not (tmp_path / "saved.json").exists()
    assert net.restore_sysctls() == {}     # `down` twice


def test_inotify_limit_never_lowered(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    (proc / "net/ipv4").mkdir(parents=True)
    (proc / "fs/inotify").mkdir(parents=True)
    (proc / "net/ipv4/ip_forward").write_text("1\n")
    (proc / "fs/inotify/max_user_instances").write_text("65536\n")
    monkeypatch.setattr(net, "_sysctl_path", lambda k: proc / k.replace(".", "/"))
    monkeypatch.setattr(config, "SYSCTL_FILE", tmp_path / "saved.json")
    net.set_sysctls()
    assert (proc / "fs/inotify/max_user_instances").read_text().strip() == "65536"
