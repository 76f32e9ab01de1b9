"""The testbed's pure planning: subnet choice, address plan, apt sources, inventory text."""
import ipaddress
import re
from pathlib import Path

import pytest

from tasks import inventory
from tasks.model import Settings
from testbed import config

# `ip -4 route show table all` as on this project's machines: eth0 holds 192.0.2.0/24.
ROUTES = """\
default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
local 192.0.2.2 dev eth0 table local proto kernel scope host src 192.0.2.2
broadcast 192.0.2.255 dev eth0 table local proto kernel scope link src 192.0.2.2
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
"""


def test_routed_networks_skips_default_and_reads_typed_routes():
    nets = config.routed_networks(ROUTES)
    assert ipaddress.ip_network("192.0.2.0/24") in nets
    assert ipaddress.ip_network("192.0.2.2/32") in nets
    assert ipaddress.ip_network("127.0.0.0/8") in nets
    assert ipaddress.ip_network("0.0.0.0/0") not in nets


def test_choose_subnet_takes_first_free_documentation_range():
    assert config.choose_subnet(ROUTES) == "198.51.100.0/24"


def test_choose_subnet_skips_routed_candidate():
    routes = ROUTES + "198.51.100.0/25 dev wg0 scope link\n"
    assert config.choose_subnet(routes) == "203.0.113.0/24"


def test_choose_subnet_skips_candidate_holding_the_mirror():
    # Here the mirror resolves into 203.0.113.0/24 through the default route: taking that
    # range for the hosts would cut them (and the machine) off from it.
    routes = ROUTES + "198.51.100.0/24 dev other scope link\n"
    assert config.choose_subnet(routes, avoid=["203.0.113.80"]) == "10.213.0.0/24"


def test_choose_subnet_skips_overlapping_wider_route():
    routes = ROUTES + "198.51.100.0/24 dev a\n203.0.113.0/24 dev b\n10.213.0.0/23 dev c\n"
    assert config.choose_subnet(routes) == "10.213.2.0/24"


def test_choose_subnet_fails_when_nothing_free():
    with pytest.raises(RuntimeError, match="--subnet"):
        config.choose_subnet("0.0.0.0/1 dev a\n128.0.0.0/1 dev b\n")


def test_plan_three_slaves_matches_tutorial_numbering():
    plan = config.plan_hosts("198.51.100.0/24", 3)
    assert [(h.name, h.ip, h.role, h.myid) for h in plan] == [
        ("master1", "198.51.100.1", "master", 1),
        ("master2", "198.51.100.2", "master", 2),
        ("master3", "198.51.100.3", "master", 3),
        ("slave1", "198.51.100.51", "slave", None),
        ("slave2", "198.51.100.52", "slave", None),
        ("slave3", "198.51.100.53", "slave", None),
    ]
    assert plan[0].netns == config.PREFIX + "master1"
    assert config.bridge_ip("198.51.100.0/24") == "198.51.100.254"


def test_default_instance_keeps_the_names_from_before_instances():
    inst = config.Instance()
    assert (inst.prefix, inst.bridge, inst.nft_table) == ("tb-", "tbbr0", "mesos_testbed")
    assert inst.state_dir == Path("/var/lib/mesos-testbed")
    assert inst.inventory == Path(config.__file__).parent / "hosts.ini"


def test_other_instance_names_derive_from_its_own():
    inst = config.Instance("t2")
    assert (inst.prefix, inst.bridge, inst.nft_table) == ("tbt2-", "tbt2br0", "mesos_testbed_t2")
    assert inst.state_dir == Path("/var/lib/mesos-testbed/instances/t2")
    assert inst.inventory == Path(config.__file__).parent / "hosts-t2.ini"


def test_no_instance_discovers_another_ones_names():
    # `down` removes links, namespaces and cgroups by prefix, and the bridge by name.
    insts = [config.Instance(n) for n in ("", "t", "t2", "t21", "br0", "tbr0")]
    for a in insts:
        for b in insts:
            if a != b:
                theirs = [b.prefix + "slave1", b.bridge]
                assert not any(n.startswith(a.prefix) or n == a.bridge for n in theirs), (a, b)
                assert (a.nft_table, a.state_dir, a.inventory) != (b.nft_table, b.state_dir,
                                                                   b.inventory)


def test_longest_interface_name_fits_the_kernel_limit():
    inst = config.Instance("abcd")
    assert len(inst.prefix + f"slave{config.MAX_SLAVES}") == 15
    assert len(inst.bridge) <= 15


@pytest.mark.parametrize("name", ["abcde", "T2", "t-2", "t 2", "../x", "é"])
def test_bad_instance_names_are_refused_naming_the_variable(name):
    with pytest.raises(ValueError, match="MESOS_TESTBED=.*1-4 characters"):
        config.Instance(name)


def test_subnet_conflict_says_why():
    assert config.subnet_conflict("198.51.100.0/24", ROUTES) is None
    routes = ROUTES + "198.51.100.0/24 dev tbbr0 proto kernel scope link\n"
    assert config.subnet_conflict("198.51.100.0/24", routes) == \
        "overlaps the route to 198.51.100.0/24"
    assert "holds 198.51.100.7" in config.subnet_conflict("198.51.100.0/24", ROUTES,
                                                           avoid=["198.51.100.7"])


def test_plan_fifty_and_max_slaves_stay_below_bridge():
    plan = config.plan_hosts("10.213.7.0/24", 50)
    assert plan[-1].name == "slave50" and plan[-1].ip == "10.213.7.100"
    full = config.plan_hosts("10.213.7.0/24", config.MAX_SLAVES)
    ips = [h.ip for h in full]
    assert ips[-1] == "10.213.7.250"
    assert len(set(ips)) == len(ips) == 3 + 200
    assert "10.213.7.254" not in ips
    # Interface names are limited to 15 characters.
    assert max(len(h.veth) for h in full) <= 15


@pytest.mark.parametrize("n", [-1, config.MAX_SLAVES + 1])
def test_plan_refuses_out_of_range_slave_counts(n):
    with pytest.raises(ValueError, match="slaves"):
        config.plan_hosts("198.51.100.0/24", n)


def test_plan_refuses_non_24():
    with pytest.raises(ValueError, match="/24"):
        config.plan_hosts("198.51.100.0/25", 3)


DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
"""


def test_deb822_entries_and_mirror_choice():
    sources = config.parse_deb822(DEB822)
    assert [s.uri for s in sources] == ["http://mirror.example/debian",
                                        "http://mirror.example/debian-security"]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert config.debian_mirror(sources) == "http://mirror.example/debian"


def test_one_line_sources_with_options_and_comments():
    text = ("# comment\n"
            "deb-src http://src.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security "
            "bookworm-security main\n"
            "deb http://one.example/debian bookworm main contrib # trailing\n")
    sources = config.parse_one_line(text)
    assert [(s.types, s.uri, s.suites) for s in sources] == [
        (("deb-src",), "http://src.example/debian", ("bookworm",)),
        (("deb",), "http://sec.example/debian-security", ("bookworm-security",)),
        (("deb",), "http://one.example/debian", ("bookworm",)),
    ]
    # deb-src is no debootstrap mirror; -security is not the suite itself.
    assert config.debian_mirror(sources) == "http://one.example/debian"


def test_debian_mirror_missing_suite_is_an_error():
    with pytest.raises(RuntimeError, match="bookworm"):
        config.debian_mirror(config.parse_one_line("deb http://x.example/d trixie main\n"))


@pytest.mark.parametrize("uri,host", [
    ("http://mirror.example/debian", "mirror.example"),
    ("https://user:pw@mirror.example:8443/debian", "mirror.example"),
    ("http://[2001:db8::1]:80/debian", "2001:db8::1"),
])
def test_uri_host(uri, host):
    assert config.uri_host(uri) == host


def test_inventory_with_repo_reads_back_through_the_inventory_parser(tmp_path):
    """What `fab cluster` will make of the generated inventory: read by the real parser."""
    plan = config.plan_hosts("198.51.100.0/24", 2)
    path = tmp_path / "hosts.ini"
    path.write_text(config.render_inventory(plan, Path("/var/lib/mesos-testbed/id_ed25519"),
                                            "2025-01-02 03:04:05", "198.51.100.254", "AB" * 20,
                                            known_hosts=Path("/var/lib/mesos-testbed/known_hosts")))
    cluster = inventory.load(path)
    assert [(h.name, h.ip, h.myid) for h in cluster.masters] == [
        ("master1", "198.51.100.1", 1), ("master2", "198.51.100.2", 2), ("master3", "198.51.100.3", 3)]
    assert [(h.name, h.ip) for h in cluster.slaves] == [
        ("slave1", "198.51.100.51"), ("slave2", "198.51.100.52")]
    for host in cluster.hosts:
        assert (host.ssh_host, host.ssh_port, host.ssh_user) == (host.ip, 22, "root")
        assert host.settings.ssh_key_file == "/var/lib/mesos-testbed/id_ed25519"
        assert host.settings.ssh_known_hosts == "/var/lib/mesos-testbed/known_hosts"
        assert host.settings.ssh_host_key_policy == "strict"
        assert host.settings.repo_url_for("Debian", "bookworm") == "http://198.51.100.254:8000/debian"
        assert host.settings.repo_key_url == "http://198.51.100.254:8000/key.asc"
        assert host.settings.repo_key_id == "AB" * 20
    assert cluster.mesos_zk_url == \
        "zk://198.51.100.1:2181,198.51.100.2:2181,198.51.100.3:2181/mesos"


def test_inventory_without_repo_keeps_the_default_repository(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text(config.render_inventory(config.plan_hosts("198.51.100.0/24", 1), Path("/k"), "d"))
    cluster = inventory.load(path)
    assert [h.name for h in cluster.hosts] == ["master1", "master2", "master3", "slave1"]
    assert cluster.settings.repo_url == Settings().repo_url
    assert cluster.settings.repo_key_id == Settings().repo_key_id
    assert cluster.settings.ssh_key_file == "/k"


def test_known_hosts_names_each_host_by_its_address_with_its_key(tmp_path):
    """What tasks.ssh reads: paramiko parses the file and finds each host's key by its ip."""
    import paramiko
    keys = {"198.51.100.1": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICnk1LtPQAXdOOFlfmZ6RGQai4HBl6aDG/hM9Y/sTjCr root@master1\n"}
    path = tmp_path / "known_hosts"
    path.write_text(config.render_known_hosts(keys))
    found = paramiko.HostKeys(str(path)).lookup("198.51.100.1")
    assert found["ssh-ed25519"].get_base64() == keys["198.51.100.1"].split()[1]
    assert "root@master1" not in path.read_text()


def test_etc_hosts_has_localhost_every_host_and_pins():
    plan = config.plan_hosts("198.51.100.0/24", 1)
    text = config.render_etc_hosts(plan, pins={"mirror.example": ["203.0.113.80"]})
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "198.51.100.2\tmaster2" in lines and "198.51.100.51\tslave1" in lines
    assert "203.0.113.80\tmirror.example" in lines


# --- hosts added to a running testbed -----------------------------------------------------------

def test_added_hosts_take_the_next_free_address_of_their_role():
    taken = [h.ip for h in config.plan_hosts("198.51.100.0/24", 3)]
    assert config.next_ip("198.51.100.0/24", "slave", taken) == "198.51.100.54"
    assert config.next_ip("198.51.100.0/24", "master", taken) == "198.51.100.4"
    # A removed host's address is free again.
    assert config.next_ip("198.51.100.0/24", "master",
                          [ip for ip in taken if ip != "198.51.100.2"]) == "198.51.100.2"
    every_master = [f"198.51.100.{i}" for i in range(1, config.MASTER_LAST + 1)]
    with pytest.raises(ValueError, match=r"no free master address left in 198.51.100.0/24"):
        config.next_ip("198.51.100.0/24", "master", every_master)


@pytest.mark.parametrize("ip, message", [
    ("198.51.100.51", "198.51.100.51 is taken by another testbed host"),
    ("198.51.100.254", "198.51.100.254 is not a host address of 198.51.100.0/24"),
    ("203.0.113.5", "203.0.113.5 is not a host address of 198.51.100.0/24"),
    ("slave9", "'slave9' is not an IPv4 address"),
])
def test_a_given_address_must_be_a_free_host_address(ip, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config.check_ip("198.51.100.0/24", ip, ["198.51.100.51"])
    assert config.check_ip("198.51.100.0/24", "198.51.100.253", []) == "198.51.100.253"


@pytest.mark.parametrize("name, role, message", [
    ("slave1", "slave", "a testbed host 'slave1' exists already"),
    ("Slave4", "slave", "'Slave4' is not a host name"),
    ("4slave", "slave", "'4slave' is not a host name"),
    ("slave4", "agent", "role must be master or slave, not 'agent'"),
    ("a" * 20, "slave", "is too long"),
])
def test_new_host_names_are_checked(name, role, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config.check_new_host(name, role, ["slave1"])
    config.check_new_host("slave4", "slave", ["slave1"])


def test_inventory_line_per_role():
    assert config.inventory_line(config.Host("master4", "198.51.100.4", "master", 4)) == \
        "master4 ip=198.51.100.4 myid=4"
    assert config.inventory_line(config.Host("slave4", "198.51.100.54", "slave")) == \
        "slave4 ip=198.51.100.54"
