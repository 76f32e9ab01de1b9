"""tasks.inventory: valid inventories and their derived values, then one case per error.

Cases are data: an inventory text and what must come out of it. Invalid cases
assert the ``path:line:`` prefix, because pointing at the right line is the
point of the error.
"""

from pathlib import Path

import pytest

from tasks import inventory
from tasks.inventory import InventoryError, load, parse
from tasks.model import Cluster, Host, Settings

P = "inv/hosts.ini"

MASTERS = """\
[masters]
master1 ip=192.0.2.1 myid=1
master2 ip=192.0.2.2 myid=2
master3 ip=192.0.2.3 myid=3
"""
SLAVES = """\
[slaves]
slave1 ip=192.0.2.51
slave2 ip=192.0.2.52
slave3 ip=192.0.2.53
"""
TUTORIAL = MASTERS + "\n" + SLAVES
ZK3 = "192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181"


def get(obj, dotted):
    """'masters.0.settings.zk_port' -> obj.masters[0].settings.zk_port"""
    for part in dotted.split("."):
        obj = obj[int(part)] if part.lstrip("-").isdigit() else getattr(obj, part)
    return obj


VALID = {
    "tutorial": (TUTORIAL, {
        "zk_hosts": ZK3,
        "mesos_zk_url": f"zk://{ZK3}/mesos",
        "marathon_zk_url": f"zk://{ZK3}/marathon",
        "quorum": 2,
        "zoo_servers": ((1, "192.0.2.1"), (2, "192.0.2.2"), (3, "192.0.2.3")),
        "zoo_server_lines": ("server.1=192.0.2.1:2888:3888", "server.2=192.0.2.2:2888:3888",
                             "server.3=192.0.2.3:2888:3888"),
        "masters.0.name": "master1", "masters.0.role": "master", "masters.0.line": 2,
        "slaves.2.name": "slave3", "slaves.2.myid": None, "slaves.2.line": 9,
        "slaves.0.ssh_host": "192.0.2.51", "slaves.0.ssh_port": 22, "slaves.0.ssh_user": None,
        "slaves.0.role": "slave",
        "masters.0.settings": Settings(),
        "settings.repo_key_id": "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF",
        "settings.master_packages": ("mesosphere",),
        "settings.quorum": None,
    }),
    # [agents] merges into [slaves]; comments with '#' and ';'; CRLF; masters
    # listed out of myid order: derived values follow myid, not lines.
    "agents alias, reordered": ((
        "; written on Windows\r\n# and commented\r\n"
        "[masters]\r\nb ip=192.0.2.2 myid=2\r\na ip=192.0.2.1 myid=1\r\nc ip=192.0.2.3 myid=3\r\n"
        "[agents]\r\nslave1 ip=192.0.2.51\r\n[slaves]\r\nslave2 ip=192.0.2.52\r\n"
        "[agents:vars]\r\nmesos_slave_port=5055\r\n"), {
        "zk_hosts": ZK3,
        "zoo_servers": ((1, "192.0.2.1"), (2, "192.0.2.2"), (3, "192.0.2.3")),
        "masters.0.name": "b", "masters.0.line": 4,
        "slaves.0.name": "slave1", "slaves.1.name": "slave2", "slaves.1.role": "slave",
        "slaves.1.settings.mesos_slave_port": 5055,
        "masters.0.settings.mesos_slave_port": 5055,   # every host sees the slaves' value
    }),
    "vars scoped per role": (TUTORIAL + """
[all:vars]
zk_port = 2182
repo_suite=trusty
repo_url = https://mirror.example.org/{distro}-{codename}
repo_key_id = 0x81026d0004c44cf7ef55adf8df7d54cbe56151bf
slave_packages = mesos=1.1.0-2.0.107.ubuntu1404 docker.io
[masters:vars]
repo_component = masters
zk_mesos_path = /prod/mesos
marathon_config_style = env
[slaves:vars]
repo_suite = xenial
repo_keyserver = hkp://keyserver.ubuntu.com:80
""", {
        "zk_hosts": "192.0.2.1:2182,192.0.2.2:2182,192.0.2.3:2182",
        "mesos_zk_url": "zk://192.0.2.1:2182,192.0.2.2:2182,192.0.2.3:2182/prod/mesos",
        "marathon_zk_url": "zk://192.0.2.1:2182,192.0.2.2:2182,192.0.2.3:2182/marathon",
        "masters.0.settings.repo_suite": "trusty",
        "slaves.0.settings.repo_suite": "xenial",
        "masters.0.settings.repo_component": "masters",
        "slaves.0.settings.repo_component": "main",
        "masters.0.settings.repo_keyserver": "keyserver.ubuntu.com",
        "slaves.0.settings.repo_keyserver": "hkp://keyserver.ubuntu.com:80",
        "slaves.0.settings.zk_port": 2182,
        "slaves.0.settings.zk_mesos_path": "/prod/mesos",   # describes masters: same everywhere
        "slaves.0.settings.marathon_config_style": "env",
        "settings.repo_key_id": "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF",
        "slaves.1.settings.slave_packages": ("mesos=1.1.0-2.0.107.ubuntu1404", "docker.io"),
        "settings.repo_url": "https://mirror.example.org/{distro}-{codename}",
    }),
    "ssh fields": ("""\
[masters]
m1 ip=10.0.0.1 myid=7 ssh_host=127.0.0.1 ssh_port=2201 ssh_user=ubuntu
[slaves]
s1.example.org ip=10.0.0.2 ssh_host=127.0.0.1 ssh_port=2202
s2 ip=10.0.0.3 ssh_host=bastion-2.example.org
""", {
        "masters.0.ssh_host": "127.0.0.1", "masters.0.ssh_port": 2201,
        "masters.0.ssh_user": "ubuntu", "masters.0.myid": 7,
        "slaves.0.ssh_port": 2202, "slaves.0.ssh_user": None, "slaves.0.name": "s1.example.org",
        "slaves.1.ssh_host": "bastion-2.example.org", "slaves.1.ssh_port": 22,
        "quorum": 1, "zoo_servers": ((7, "10.0.0.1"),),
        "mesos_zk_url": "zk://10.0.0.1:2181/mesos",
    }),
    "explicit quorum": (TUTORIAL + "[masters:vars]\nquorum = 3\n", {
        "quorum": 3, "settings.quorum": 3,
    }),
    "explicit empty quorum": (TUTORIAL + "[all:vars]\nquorum =\n", {"quorum": 2}),
    "five masters": ("""\
[masters]
m5 ip=192.0.2.5 myid=5
m1 ip=192.0.2.1 myid=1
m3 ip=192.0.2.3 myid=3
m2 ip=192.0.2.2 myid=2
m4 ip=192.0.2.4 myid=4
[all:vars]
zk_peer_port = 2889
zk_election_port = 3889
""", {
        "quorum": 3,
        "zk_hosts": ",".join(f"192.0.2.{i}:2181" for i in range(1, 6)),
        "zoo_servers": tuple((i, f"192.0.2.{i}") for i in range(1, 6)),
        "zoo_server_lines.4": "server.5=192.0.2.5:2889:3889",
        "slaves": (),
    }),
    "four masters allowed": ("""\
[masters]
m1 ip=192.0.2.1 myid=1
m2 ip=192.0.2.2 myid=2
m3 ip=192.0.2.3 myid=3
m4 ip=192.0.2.4 myid=4
[masters:vars]
allow_even_masters = Yes
""", {"quorum": 3, "settings.allow_even_masters": True}),
    "package pins and key url": (TUTORIAL + """
[all:vars]
repo_key_url = https://mirror.example.org/{distro}/key.asc
repo_key_id = 81026D0004C44CF7EF55ADF8DF7D54CBE56151BF
[masters:vars]
master_packages = zookeeperd mesos=1.1.0-2.0.107.ubuntu1404 marathon=1:1.4.3-1.0.649.ubuntu1404
""", {
        "settings.repo_key_url": "https://mirror.example.org/{distro}/key.asc",
        "settings.repo_key_id": "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF",
        "settings.master_packages": ("zookeeperd", "mesos=1.1.0-2.0.107.ubuntu1404",
                                     "marathon=1:1.4.3-1.0.649.ubuntu1404"),
        "slaves.0.settings.master_packages": ("zookeeperd", "mesos=1.1.0-2.0.107.ubuntu1404",
                                              "marathon=1:1.4.3-1.0.649.ubuntu1404"),
        "slaves.0.settings.slave_packages": ("mesos",),
    }),
}


@pytest.mark.parametrize("text, expected", VALID.values(), ids=VALID.keys())
def test_valid(text, expected):
    cluster = parse(text, P)
    assert cluster.path == P
    for dotted, value in expected.items():
        assert get(cluster, dotted) == value, dotted


def test_model_is_frozen_and_hosts_in_order():
    cluster = parse(TUTORIAL, P)
    assert isinstance(cluster, Cluster) and all(isinstance(h, Host) for h in cluster.hosts)
    assert [h.name for h in cluster.hosts] == [
        "master1", "master2", "master3", "slave1", "slave2", "slave3"]
    assert cluster.masters[0].is_master and not cluster.slaves[0].is_master
    with pytest.raises(AttributeError):
        cluster.masters[0].ip = "192.0.2.9"
    with pytest.raises(AttributeError):
        cluster.settings.zk_port = 1
    hash(cluster)  # frozen all the way down: usable as a cache key


def test_reordering_lines_changes_no_derived_value():
    a = parse(TUTORIAL, P)
    b = parse("[masters]\nmaster3 ip=192.0.2.3 myid=3\nmaster1 ip=192.0.2.1 myid=1\n"
              "master2 ip=192.0.2.2 myid=2\n", P)
    for attr in ("zk_hosts", "mesos_zk_url", "marathon_zk_url", "quorum", "zoo_servers",
                 "zoo_server_lines"):
        assert getattr(a, attr) == getattr(b, attr), attr


def test_repo_url_placeholders():
    s = parse(TUTORIAL + "[all:vars]\nrepo_url = http://m.example/{distro}/{codename}\n"
              "repo_key_url = http://m.example/{distro}.key\n", P).settings
    assert s.repo_url_for("Ubuntu", "trusty") == "http://m.example/ubuntu/trusty"
    assert s.repo_key_url_for("Debian", "bookworm") == "http://m.example/debian.key"
    assert Settings().repo_url_for("Ubuntu", "trusty") == "http://repos.mesosphere.io/ubuntu"


def test_ssh_key_file_is_relative_to_the_inventory(tmp_path):
    inv = tmp_path / "site" / "hosts.ini"
    inv.parent.mkdir()
    inv.write_text(TUTORIAL + "[slaves:vars]\nssh_key_file = keys/id_ed25519\n"
                   "[masters:vars]\nssh_key_file = ../shared/id_rsa\n")
    cluster = load(inv)
    assert cluster.slaves[0].settings.ssh_key_file == str(tmp_path / "site/keys/id_ed25519")
    assert cluster.masters[0].settings.ssh_key_file == str(tmp_path / "shared/id_rsa")
    assert cluster.path == str(inv)


def test_default_path_is_the_repo_hosts_ini_and_it_is_the_tutorial():
    root = Path(inventory.__file__).resolve().parent.parent
    assert inventory.default_path() == str(root / "hosts.ini")
    cluster = load(inventory.default_path())
    assert [(h.name, h.ip, h.myid) for h in cluster.hosts] == [
        ("master1", "192.0.2.1", 1), ("master2", "192.0.2.2", 2), ("master3", "192.0.2.3", 3),
        ("slave1", "192.0.2.51", None), ("slave2", "192.0.2.52", None),
        ("slave3", "192.0.2.53", None)]
    assert cluster.mesos_zk_url == f"zk://{ZK3}/mesos"
    assert cluster.quorum == 2


# --------------------------------------------------------------------------
# Invalid inventories: (text, substrings that must appear in str(error)).

M1 = "[masters]\nm1 ip=192.0.2.1 myid=1\n"          # a valid one-master start (lines 1-2)


def vars_case(line):
    """One setting line in [all:vars] after a valid cluster: it is on line 4."""
    return M1 + "[all:vars]\n" + line + "\n", f"{P}:4: "


INVALID = {
    "unknown section": (M1 + "[workers]\nw1 ip=192.0.2.9\n",
                        [f"{P}:3: unknown section [workers]"]),
    "malformed header": (M1 + "[slaves\n", [f"{P}:3: malformed section header"]),
    "outside any section": ("m0 ip=192.0.2.9\n" + M1,
                            [f"{P}:1: 'm0 ip=192.0.2.9' is outside any section"]),
    "no masters section": ("[slaves]\ns1 ip=192.0.2.51\n", [f"{P}: no [masters] section"]),
    "empty masters": ("[masters]\n# none yet\n[slaves]\ns1 ip=192.0.2.51\n",
                      [f"{P}:1: no masters in [masters]"]),
    "token without =": ("[masters]\nm1 ip=192.0.2.1 myid 1\n",
                        [f"{P}:2: malformed host line: 'myid', '1' are not key=value"]),
    "spaces around =": ("[masters]\nm1 ip = 192.0.2.1 myid=1\n",
                        [f"{P}:2: malformed host line: 'ip', '=', '192.0.2.1' are not key=value"]),
    "host line without name": ("[masters]\nip=192.0.2.1 myid=1\n",
                               [f"{P}:2: host line must start with the host name"]),
    "setting in host section": ("[masters]\nm1 ip=192.0.2.1 myid=1\nquorum = 1\n",
                                [f"{P}:3: 'quorum = 1' looks like a setting",
                                 "settings go in [all:vars] or [masters:vars]"]),
    "setting in host section, no spaces": (M1 + "[slaves]\nzk_port=2182\n",
                                           [f"{P}:4: 'zk_port=2182' looks like a setting"]),
    "unknown host key": ("[masters]\nm1 ip=192.0.2.1 myid=1 port=22\n",
                         [f"{P}:2: unknown host key 'port' on host 'm1'"]),
    "setting on host line": ("[masters]\nm1 ip=192.0.2.1 myid=1 zk_port=2182\n",
                             [f"{P}:2: unknown host key 'zk_port'", "[masters:vars]"]),
    "duplicate key on line": ("[masters]\nm1 ip=192.0.2.1 myid=1 ip=192.0.2.2\n",
                              [f"{P}:2: duplicate key 'ip' on host 'm1'"]),
    "missing ip": ("[masters]\nm1 myid=1\n", [f"{P}:2: host 'm1' has no ip"]),
    "malformed ip": ("[masters]\nm1 ip=192.0.2 myid=1\n",
                     [f"{P}:2: host 'm1': malformed ip '192.0.2'"]),
    "ip leading zeros": ("[masters]\nm1 ip=192.0.2.01 myid=1\n",
                         [f"{P}:2: host 'm1': malformed ip '192.0.2.01'"]),
    "ipv6 ip": ("[masters]\nm1 ip=2001:db8::1 myid=1\n", [f"{P}:2: host 'm1': malformed ip"]),
    "loopback ip": ("[masters]\nm1 ip=127.0.0.1 myid=1\n",
                    [f"{P}:2: host 'm1': ip 127.0.0.1 is a loopback address"]),
    "unspecified ip": ("[masters]\nm1 ip=0.0.0.0 myid=1\n",
                       [f"{P}:2: host 'm1': ip 0.0.0.0 is the unspecified address"]),
    "multicast ip": (M1 + "[slaves]\ns1 ip=224.0.0.1\n",
                     [f"{P}:4: host 's1': ip 224.0.0.1 is a multicast address"]),
    "broadcast ip": (M1 + "[slaves]\ns1 ip=255.255.255.255\n",
                     [f"{P}:4: host 's1': ip 255.255.255.255 is the broadcast address"]),
    "missing myid": ("[masters]\nm1 ip=192.0.2.1\n", [f"{P}:2: master 'm1' has no myid"]),
    "myid zero": ("[masters]\nm1 ip=192.0.2.1 myid=0\n",
                  [f"{P}:2: host 'm1': myid '0' is out of range (expected an integer 1-255)"]),
    "myid 256": ("[masters]\nm1 ip=192.0.2.1 myid=256\n", [f"{P}:2: host 'm1': myid '256'"]),
    "myid not a number": ("[masters]\nm1 ip=192.0.2.1 myid=one\n",
                          [f"{P}:2: host 'm1': myid 'one'"]),
    "myid on slave": (M1 + "[slaves]\ns1 ip=192.0.2.51 myid=4\n",
                      [f"{P}:4: host 's1': myid is for masters only"]),
    "duplicate myid": ("[masters]\nm1 ip=192.0.2.1 myid=1\nm2 ip=192.0.2.2 myid=1\n"
                       "m3 ip=192.0.2.3 myid=3\n",
                       [f"{P}:3: duplicate myid 1: master 'm2' and master 'm1' (line 2)"]),
    "duplicate host": (M1 + "m1 ip=192.0.2.2 myid=2\nm3 ip=192.0.2.3 myid=3\n",
                       [f"{P}:3: duplicate host 'm1' in [masters] (first on line 2)"]),
    "host in both groups": (M1 + "[slaves]\nM1 ip=192.0.2.51\n",
                            [f"{P}:4: host 'M1' in both [masters] (line 2) and [slaves]"]),
    "duplicate ip": (M1 + "[agents]\ns1 ip=192.0.2.1\n",
                     [f"{P}:4: duplicate ip 192.0.2.1: host 's1' and host 'm1' (line 2)"]),
    "bad host name": ("[masters]\nm_1 ip=192.0.2.1 myid=1\n",
                      [f"{P}:2: host name 'm_1' is not a valid hostname"]),
    "host name leading dash": ("[masters]\n-m1 ip=192.0.2.1 myid=1\n",
                               [f"{P}:2: host name '-m1'"]),
    "ssh_port unicode digit": ("[masters]\nm1 ip=192.0.2.1 myid=1 ssh_port=22\u00b2\n",
                               [f"{P}:2: host 'm1': malformed ssh_port"]),
    "url with bad port": vars_case("repo_url = http://mirror.example:99999/"),
    "ssh_port out of range": ("[masters]\nm1 ip=192.0.2.1 myid=1 ssh_port=70000\n",
                              [f"{P}:2: host 'm1': malformed ssh_port '70000' (expected 1-65535)"]),
    "ssh_host with $": ("[masters]\nm1 ip=192.0.2.1 myid=1 ssh_host=$(reboot)\n",
                        [f"{P}:2: host 'm1': ssh_host '$(reboot)' contains '$'"]),
    "ssh_user with ;": ("[masters]\nm1 ip=192.0.2.1 myid=1 ssh_user=root;id\n",
                        [f"{P}:2: host 'm1': ssh_user 'root;id' contains ';'"]),
    "even masters": ("[masters]\nm1 ip=192.0.2.1 myid=1\nm2 ip=192.0.2.2 myid=2\n",
                     [f"{P}:1: 2 masters: an even number",
                      "set allow_even_masters = true in [all:vars] or [masters:vars]"]),
    "even masters, allow false": ("[masters]\nm1 ip=192.0.2.1 myid=1\nm2 ip=192.0.2.2 myid=2\n"
                                  "[all:vars]\nallow_even_masters = no\n",
                                  [f"{P}:1: 2 masters"]),
    "quorum below majority": (TUTORIAL + "[masters:vars]\nquorum = 1\n",
                              [f"{P}:11: quorum 1 is not a majority of 3 masters (expected 2 to 3)"]),
    "quorum above n": (TUTORIAL + "[all:vars]\nquorum = 4\n",
                       [f"{P}:11: quorum 4 is not a majority of 3 masters"]),
    "quorum not a number": vars_case("quorum = two"),
    "unknown setting": vars_case("zk_prot = 2181"),
    "host key as setting": vars_case("myid = 1"),
    "malformed setting line": vars_case("zk_port 2181"),
    "setting port not a number": vars_case("zk_port = 2181x"),
    "setting port zero": vars_case("mesos_port = 0"),
    "port collision": vars_case("marathon_port = 2181"),
    "bad url scheme": vars_case("repo_url = ftp://repos.mesosphere.io/ubuntu"),
    "url unknown placeholder": vars_case("repo_url = http://repos.mesosphere.io/{arch}"),
    "url with quotes": vars_case('repo_url = "http://repos.mesosphere.io/ubuntu"'),
    "url with space": vars_case("repo_url = http://repos.mesosphere.io/ ubuntu"),
    "url with backtick": vars_case("repo_key_url = http://x.example/`id`"),
    "bad key id": vars_case("repo_key_id = E56151B"),
    "short key id": vars_case("repo_key_id = E56151BF"),
    "long key id": vars_case("repo_key_id = DF7D54CBE56151BF"),
    "bad keyserver": vars_case("repo_keyserver = key_server.example"),
    "bad package name": vars_case("master_packages = Mesos"),
    "bad package version": vars_case("slave_packages = mesos=latest"),
    "package list with &": vars_case("slave_packages = mesos && reboot"),
    "empty packages": vars_case("slave_packages ="),
    "bad style": vars_case("marathon_config_style = yaml"),
    "bad bool": vars_case("allow_even_masters = maybe"),
    "snapshots below 3": vars_case("zk_snap_retain_count = 2"),
    "purge interval in days": vars_case("zk_purge_interval = 1d"),
    "gate timeout zero": vars_case("gate_timeout = 0"),
    "znode no slash": vars_case("zk_mesos_path = mesos"),
    "znode trailing slash": vars_case("zk_mesos_path = /mesos/"),
    "znode dotdot": vars_case("zk_marathon_path = /a/../b"),
    "same znode": vars_case("zk_marathon_path = /mesos"),
    "suite with |": vars_case("repo_suite = trusty|id"),
    "key file with newline-ish $": vars_case("ssh_key_file = $HOME/.ssh/id"),
    "master setting in slaves vars": (M1 + "[slaves:vars]\nzk_port = 2182\n",
                                      [f"{P}:4: 'zk_port' cannot be set in [slaves:vars]",
                                       "[all:vars] or [masters:vars]"]),
    "slave setting in masters vars": (M1 + "[masters:vars]\nslave_packages = mesos\n",
                                      [f"{P}:4: 'slave_packages' cannot be set in [masters:vars]"]),
    "duplicate setting": (M1 + "[all:vars]\nzk_port = 2182\nzk_port=2183\n",
                          [f"{P}:5: duplicate setting 'zk_port' in [all:vars] "
                           "(first set on line 4 in [all:vars])"]),
    "duplicate setting across alias": (
        M1 + "[slaves:vars]\nmesos_slave_port = 5052\n[agents:vars]\nmesos_slave_port = 5053\n",
        [f"{P}:6: duplicate setting 'mesos_slave_port' in [agents:vars] "
         "(first set on line 4 in [slaves:vars])"]),
}

# Expected messages for the vars_case() entries, kept beside the table above.
VARS_MESSAGES = {
    "quorum not a number": "quorum: malformed quorum 'two'",
    "unknown setting": "unknown setting 'zk_prot'",
    "host key as setting": "unknown setting 'myid'; host keys go on the host's line",
    "malformed setting line": "malformed setting line 'zk_port 2181' (expected key = value)",
    "setting port not a number": "zk_port: malformed port '2181x' (expected 1-65535)",
    "setting port zero": "mesos_port: malformed port '0'",
    "port collision": "marathon_port 2181 is also zk_port",
    "bad url scheme": "repo_url: 'ftp://repos.mesosphere.io/ubuntu' is not an http:// or https:// URL",
    "url unknown placeholder": "repo_url: 'http://repos.mesosphere.io/{arch}' has an unknown placeholder",
    "url with quotes": "repo_url: '\"http://repos.mesosphere.io/ubuntu\"' contains a quote",
    "url with space": "repo_url: 'http://repos.mesosphere.io/ ubuntu' contains a space",
    "url with backtick": "repo_key_url: 'http://x.example/`id`' contains a backtick",
    "url with bad port": "repo_url: 'http://mirror.example:99999/' has a malformed port",
    "bad key id": "repo_key_id: 'E56151B' is not a full fingerprint: give all 40 hex digits",
    "short key id": "repo_key_id: 'E56151BF' is not a full fingerprint: give all 40 hex "
                    "digits, as `gpg --with-colons --fingerprint` prints them (an 8- or "
                    "16-digit key id can be matched by a key made to collide with it)",
    "long key id": "repo_key_id: 'DF7D54CBE56151BF' is not a full fingerprint",
    "bad keyserver": "repo_keyserver: 'key_server.example' is not a keyserver",
    "bad package name": "master_packages: 'Mesos' is not a Debian package name",
    "bad package version": "slave_packages: 'latest' is not a Debian version",
    "package list with &": "slave_packages: 'mesos && reboot' contains '&'",
    "empty packages": "slave_packages: at least one package is required",
    "bad style": "marathon_config_style: 'yaml' is not one of auto, conf-dir, env",
    "bad bool": "allow_even_masters: 'maybe' is not a boolean",
    "snapshots below 3": "zk_snap_retain_count: '2' is not a snapshot count ZooKeeper keeps "
                         "(an integer, 3 or more)",
    "purge interval in days": "zk_purge_interval: '1d' is not a number of hours",
    "gate timeout zero": "gate_timeout: '0' is not a number of seconds",
    "znode no slash": "zk_mesos_path: 'mesos' is not a ZooKeeper path",
    "znode trailing slash": "zk_mesos_path: '/mesos/' is not a ZooKeeper path",
    "znode dotdot": "zk_marathon_path: '/a/../b' is not a ZooKeeper path",
    "same znode": "zk_mesos_path and zk_marathon_path are both '/mesos'",
    "suite with |": "repo_suite: 'trusty|id' contains '|'",
    "key file with newline-ish $": "ssh_key_file: '$HOME/.ssh/id' contains '$'",
}
assert {k for k, v in INVALID.items() if isinstance(v[1], str)} == set(VARS_MESSAGES)
for _name, _message in VARS_MESSAGES.items():
    _text, _prefix = INVALID[_name]
    INVALID[_name] = (_text, [_prefix + _message])


@pytest.mark.parametrize("text, expected", INVALID.values(), ids=INVALID.keys())
def test_invalid(text, expected):
    with pytest.raises(InventoryError) as info:
        parse(text, P)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message
    # Exactly one problem per case: no cascade of follow-up errors.
    assert len(info.value.errors) == 1, message
    path, line, _ = info.value.errors[0]
    assert path == P and isinstance(line, int)


def test_all_errors_are_reported_in_line_order():
    text = """\
[masters]
m1 ip=192.0.2.1 myid=1
m2 ip=300.0.2.2 myid=2
m3 ip=192.0.2.3
[slaves]
s1 ip=192.0.2.1 myid=9
[all:vars]
zk_port = x
colour = blue
"""
    with pytest.raises(InventoryError) as info:
        parse(text, P)
    err = info.value
    assert [line for _, line, _ in err.errors] == [3, 4, 6, 6, 8, 9]
    message = str(err)
    assert message.startswith("6 problems in the inventory:\n")
    for fragment in (f"{P}:3: host 'm2': malformed ip '300.0.2.2'",
                     f"{P}:4: master 'm3' has no myid",
                     f"{P}:6: host 's1': myid is for masters only",
                     f"{P}:6: duplicate ip 192.0.2.1: host 's1' and host 'm1' (line 2)",
                     f"{P}:8: zk_port: malformed port 'x'",
                     f"{P}:9: unknown setting 'colour'"):
        assert fragment in message
    assert len(message.splitlines()) == 7


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.ini"
    with pytest.raises(InventoryError) as info:
        load(missing)
    assert str(info.value) == f"{missing}: inventory not found (no such file)"
    assert info.value.errors == [(str(missing), 0, "inventory not found (no such file)")]


def test_directory_and_binary_file(tmp_path):
    with pytest.raises(InventoryError, match="is a directory"):
        load(tmp_path)
    binary = tmp_path / "hosts.ini"
    binary.write_bytes(b"[masters]\n\xff\xfe\n")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load(binary)


def test_unreadable_file(tmp_path, monkeypatch):
    inv = tmp_path / "hosts.ini"
    inv.write_text(TUTORIAL)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)  # chmod 0 means nothing to root
    with pytest.raises(InventoryError) as info:
        load(inv)
    assert str(info.value) == f"{inv}: cannot read inventory: Permission denied"


# --------------------------------------------------------------------------
# find()

FIND = """\
[masters]
master1 ip=10.0.0.1 myid=1 ssh_host=127.0.0.1 ssh_port=2201
master2 ip=10.0.0.2 myid=2 ssh_host=127.0.0.1 ssh_port=2202
master3 ip=10.0.0.3 myid=3 ssh_host=m3.example.org
[slaves]
slave1 ip=10.0.0.51
"""


@pytest.mark.parametrize("query, port, name", [
    ("master1", None, "master1"),
    ("MASTER1", None, "master1"),           # host names are case-insensitive
    ("10.0.0.2", None, "master2"),          # by ip
    ("m3.example.org", None, "master3"),    # by ssh_host
    ("127.0.0.1", 2202, "master2"),         # ssh_host shared: the port decides
    ("127.0.0.1:2201", None, "master1"),    # Fabric host string
    ("ops@127.0.0.1:2202", None, "master2"),
    ("10.0.0.51", None, "slave1"),
])
def test_find(query, port, name):
    assert parse(FIND, P).find(query, port).name == name


def test_find_unknown_host():
    with pytest.raises(InventoryError) as info:
        parse(FIND, P).find("master9")
    assert str(info.value) == (
        f"{P}: host 'master9' is not in the inventory {P}; known hosts: master1 (10.0.0.1), "
        "master2 (10.0.0.2), master3 (10.0.0.3), slave1 (10.0.0.51)")
    assert info.value.errors[0][:2] == (P, 0)


def test_find_ambiguous_address():
    with pytest.raises(InventoryError, match="'127.0.0.1' is ambiguous .*give the ssh port"):
        parse(FIND, P).find("127.0.0.1")


def test_ssh_user_and_port_in_vars_are_defaults_that_host_lines_override():
    cluster = parse(
        "[all:vars]\nssh_user = root\nssh_port = 2200\n"
        "[masters]\nm1 ip=192.0.2.1 myid=1\nm2 ip=192.0.2.2 myid=2 ssh_port=22 ssh_user=ops\n"
        "m3 ip=192.0.2.3 myid=3\n")
    m1, m2, _ = cluster.masters
    assert (m1.ssh_user, m1.ssh_port) == ("root", 2200)
    assert (m2.ssh_user, m2.ssh_port) == ("ops", 22)


# --- secrets: files on the machine that runs fab, checked before anything is done ----------------

def secret_inventory(tmp_path, content: str, mode: int = 0o600, setting="marathon_credentials_file"):
    secret = tmp_path / "marathon.cred"
    secret.write_text(content)
    secret.chmod(mode)
    path = tmp_path / "hosts.ini"
    path.write_text(TUTORIAL + f"[masters:vars]\n{setting} = marathon.cred\n")
    return path


def test_a_credentials_file_is_read_and_its_value_never_shown(tmp_path):
    cluster = inventory.load(secret_inventory(tmp_path, "ops:s3cret-pw\n"))
    secret = cluster.settings.marathon_credentials_file
    assert secret.path == str(tmp_path / "marathon.cred") and secret.value == "ops:s3cret-pw"
    assert cluster.settings.marathon_auth == ("ops", "s3cret-pw")
    assert cluster.slaves[0].settings.marathon_auth == ("ops", "s3cret-pw"), "every host sees it"
    assert "s3cret" not in repr(cluster) and "s3cret" not in repr(cluster.settings)


@pytest.mark.parametrize("content, mode, message", [
    ("ops:pw\n", 0o644, "can be read by other users (mode 0644): `chmod 600 "),
    ("ops:pw\n", 0o640, "can be read by other users (mode 0640)"),
    ("ops\n", 0o600, "must hold user:password (one colon, neither part empty)"),
    ("ops:pw:more\n", 0o600, "must hold user:password"),
    (":pw\n", 0o600, "must hold user:password"),
    ("ops:pw\nmore\n", 0o600, "must hold one line: the secret"),
    ("", 0o600, "must hold one line: the secret"),
    ("ops:p w\n", 0o600, "the secret may hold only letters, digits"),
    ("ops:p$w\n", 0o600, "the secret may hold only letters, digits"),
])
def test_a_bad_credentials_file_is_refused_naming_the_inventory_line(tmp_path, content, mode,
                                                                     message):
    path = secret_inventory(tmp_path, content, mode)
    with pytest.raises(InventoryError) as exc:
        inventory.load(path)
    text = str(exc.value)
    line = TUTORIAL.count("\n") + 2
    assert text.startswith(f"{path}:{line}: marathon_credentials_file: ")
    assert message in text
    assert "pw" not in text.split(": ", 2)[2].replace("password", ""), "no secret in the error"


def test_a_missing_secret_file_is_refused(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text(TUTORIAL + "[masters:vars]\nmesos_framework_secret_file = nowhere\n")
    with pytest.raises(InventoryError, match=rf"hosts.ini:{TUTORIAL.count(chr(10)) + 2}: "
                                             r"mesos_framework_secret_file: .*/nowhere: no such file"):
        inventory.load(path)


def test_the_four_letter_words_must_include_the_tools_own():
    for raw, message in [("srvr,cons", "the tool needs mntr"),
                         ("srvr,mntr,evil", "unknown four-letter"),
                         ("", "the tool needs srvr, mntr")]:
        with pytest.raises(InventoryError, match=message):
            inventory.parse(TUTORIAL + f"[all:vars]\nzk_four_letter_words = {raw}\n")
    cluster = inventory.parse(TUTORIAL + "[all:vars]\n"
                              "zk_four_letter_words = srvr, mntr, ruok\n")
    assert cluster.settings.zk_four_letter_words == ("srvr", "mntr", "ruok")
