"""tasks.render: golden texts, and the inventory values they are rendered from."""

from __future__ import annotations

from pathlib import Path

from tasks import inventory, render

INVENTORIES = Path(__file__).parent / "cases" / "inventories"


def cluster(name: str) -> inventory.Cluster:
    return inventory.load(INVENTORIES / name)


HEAD = """\
# Managed by mesos-fab (fab write-zoo-cfg); local edits are overwritten.
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/var/lib/zookeeper
clientPort=2181
4lw.commands.whitelist=ruok,srvr,stat,mntr
admin.enableServer=false
"""


def test_zoo_cfg_tutorial_three_masters():
    c = cluster("tutorial.ini")
    assert render.zoo_cfg(c.zoo_server_lines, client_port=c.settings.zk_port) == HEAD + """\
server.1=192.0.2.1:2888:3888
server.2=192.0.2.2:2888:3888
server.3=192.0.2.3:2888:3888
"""


def test_zoo_cfg_one_master():
    c = cluster("one-master.ini")
    assert render.zoo_cfg(c.zoo_server_lines) == HEAD + "server.1=192.0.2.1:2888:3888\n"


def test_zoo_cfg_five_masters_in_myid_order():
    c = cluster("five-masters.ini")
    assert render.zoo_cfg(c.zoo_server_lines) == HEAD + """\
server.1=10.0.0.1:2888:3888
server.2=10.0.0.2:2888:3888
server.3=10.0.0.3:2888:3888
server.4=10.0.0.4:2888:3888
server.5=10.0.0.5:2888:3888
"""


def test_zoo_cfg_other_ports():
    c = inventory.parse("[masters]\nm1 ip=192.0.2.1 myid=7\n[all:vars]\nzk_port = 2281\n"
                        "zk_peer_port = 2889\nzk_election_port = 3889\n")
    assert render.zoo_cfg(c.zoo_server_lines, client_port=c.settings.zk_port) == HEAD.replace(
        "clientPort=2181", "clientPort=2281") + "server.7=192.0.2.1:2889:3889\n"


def test_cluster_urls_and_quorum():
    c = cluster("tutorial.ini")
    assert c.mesos_zk_url == "zk://192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181/mesos"
    assert c.marathon_zk_url == "zk://192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181/marathon"
    assert c.quorum == 2
    one = cluster("one-master.ini")
    assert (one.mesos_zk_url, one.marathon_zk_url, one.quorum) == (
        "zk://192.0.2.1:2181/mesos", "zk://192.0.2.1:2181/marathon", 1)
    five = cluster("five-masters.ini")
    assert five.mesos_zk_url == ("zk://10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2181,"
                                 "10.0.0.4:2181,10.0.0.5:2181/mesos")
    assert five.quorum == 3


def test_line():
    assert render.line(2) == "2\n"
    assert render.line("192.0.2.1") == "192.0.2.1\n"


MASTER = "zk://192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181/mesos"
ZK = "zk://192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181/marathon"


def test_marathon_conf_dir_default_port():
    assert render.marathon_conf_dir(hostname="192.0.2.2", master=MASTER, zk=ZK, http_port=8080) == {
        "/etc/marathon/conf/hostname": "192.0.2.2\n",
        "/etc/marathon/conf/master": MASTER + "\n",
        "/etc/marathon/conf/zk": ZK + "\n",
    }


def test_marathon_conf_dir_other_port():
    files = render.marathon_conf_dir(hostname="192.0.2.2", master=MASTER, zk=ZK, http_port=8081)
    assert list(files) == ["/etc/marathon/conf/hostname", "/etc/marathon/conf/master",
                           "/etc/marathon/conf/zk", "/etc/marathon/conf/http_port"]
    assert files["/etc/marathon/conf/http_port"] == "8081\n"


def test_marathon_env_default_port():
    assert render.marathon_env(hostname="192.0.2.3", master=MASTER, zk=ZK, http_port=8080) == f"""\
# Managed by mesos-fab (fab configure-marathon); local edits are overwritten.
MARATHON_MASTER={MASTER}
MARATHON_ZK={ZK}
MARATHON_HOSTNAME=192.0.2.3
"""


def test_marathon_env_other_port():
    assert render.marathon_env(hostname="192.0.2.3", master=MASTER, zk=ZK, http_port=8081) == f"""\
# Managed by mesos-fab (fab configure-marathon); local edits are overwritten.
MARATHON_MASTER={MASTER}
MARATHON_ZK={ZK}
MARATHON_HOSTNAME=192.0.2.3
MARATHON_HTTP_PORT=8081
"""


def test_apt_source():
    assert render.apt_source("http://repos.mesosphere.io/ubuntu", "trusty", "main", None) == \
        "deb http://repos.mesosphere.io/ubuntu trusty main\n"
    assert render.apt_source("http://repos.mesosphere.io/debian", "bookworm", "main",
                             "/etc/apt/keyrings/mesosphere.gpg") == \
        "deb [signed-by=/etc/apt/keyrings/mesosphere.gpg] http://repos.mesosphere.io/debian bookworm main\n"


def test_repo_url_placeholders():
    s = cluster("tutorial.ini").settings
    assert s.repo_url_for("Ubuntu", "trusty") == "http://repos.mesosphere.io/ubuntu"
    m = cluster("mirror.ini").settings
    assert m.repo_url_for("Debian", "bookworm") == "https://mirror.example.org/mesosphere/debian"
    assert m.repo_key_url_for("Debian", "bookworm") == "https://mirror.example.org/mesosphere/key.asc"
