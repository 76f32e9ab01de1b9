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
autopurge.snapRetainCount=3
autopurge.purgeInterval=24
clientPort=2181
clientPortAddress=192.0.2.1
4lw.commands.whitelist=srvr,mntr
admin.enableServer=false
"""


def test_zoo_cfg_tutorial_three_masters():
    c = cluster("tutorial.ini")
    assert render.zoo_cfg(c.zoo_server_lines, client_address="192.0.2.1",
                          client_port=c.settings.zk_port) == HEAD + """\
server.1=192.0.2.1:2888:3888
server.2=192.0.2.2:2888:3888
server.3=192.0.2.3:2888:3888
"""


def test_zoo_cfg_one_master():
    c = cluster("one-master.ini")
    assert render.zoo_cfg(c.zoo_server_lines, client_address="192.0.2.1") == \
        HEAD + "server.1=192.0.2.1:2888:3888\n"


def test_zoo_cfg_five_masters_in_myid_order():
    c = cluster("five-masters.ini")
    assert render.zoo_cfg(c.zoo_server_lines, client_address="10.0.0.1") == HEAD.replace(
        "Address=192.0.2.1", "Address=10.0.0.1") + """\
server.1=10.0.0.1:2888:3888
server.2=10.0.0.2:2888:3888
server.3=10.0.0.3:2888:3888
server.4=10.0.0.4:2888:3888
server.5=10.0.0.5:2888:3888
"""


def test_zoo_cfg_other_ports():
    c = inventory.parse("[masters]\nm1 ip=192.0.2.1 myid=7\n[all:vars]\nzk_port = 2281\n"
                        "zk_peer_port = 2889\nzk_election_port = 3889\n")
    assert render.zoo_cfg(c.zoo_server_lines, client_address="192.0.2.1",
                          client_port=c.settings.zk_port,
                          four_letter_words=("srvr", "mntr", "ruok")) == HEAD.replace(
        "clientPort=2181", "clientPort=2281").replace("mntr\n", "mntr,ruok\n") + \
        "server.7=192.0.2.1:2889:3889\n"


def test_zoo_cfg_autopurge_from_the_settings():
    c = inventory.parse("[masters]\nm1 ip=192.0.2.1 myid=1\n[all:vars]\n"
                        "zk_snap_retain_count = 10\nzk_purge_interval = 0\n")
    text = render.zoo_cfg(c.zoo_server_lines, client_address="192.0.2.1",
                          snap_retain_count=c.settings.zk_snap_retain_count,
                          purge_interval=c.settings.zk_purge_interval)
    assert "autopurge.snapRetainCount=10\nautopurge.purgeInterval=0\n" in text


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


FLAGS = {"hostname": "192.0.2.2", "master": MASTER, "zk": ZK}


def test_marathon_conf_dir_one_file_per_flag():
    assert render.marathon_conf_dir(FLAGS) == {
        "/etc/marathon/conf/hostname": "192.0.2.2\n",
        "/etc/marathon/conf/master": MASTER + "\n",
        "/etc/marathon/conf/zk": ZK + "\n",
    }


def test_marathon_conf_dir_boolean_flag_is_a_question_mark_file():
    files = render.marathon_conf_dir({**FLAGS, "http_port": "8081", "mesos_authentication": ""})
    assert files["/etc/marathon/conf/http_port"] == "8081\n"
    assert files["/etc/marathon/conf/?mesos_authentication"] == ""


BLOCK = f"""\
{render.ENV_BEGIN}
MARATHON_HOSTNAME=192.0.2.2
MARATHON_MASTER={MASTER}
MARATHON_ZK={ZK}
{render.ENV_END}
"""


def test_marathon_env_of_a_new_file_is_the_block():
    assert render.marathon_env(None, FLAGS) == BLOCK
    assert render.marathon_env("", FLAGS) == BLOCK


def test_marathon_env_keeps_every_line_it_does_not_own_in_place():
    mine = "# ops: TLS\nMARATHON_HTTPS_PORT=8443\n\nexport JAVA_OPTS='-Xmx1g'\n"
    merged = render.marathon_env(mine, FLAGS)
    assert merged == mine + BLOCK
    assert render.marathon_env(merged, FLAGS) == merged, "a second run changes nothing"
    # The operator adds a line after the block: it stays after it.
    later = merged + "MARATHON_HTTP_CREDENTIALS=ops:pw\n"
    assert render.marathon_env(later, FLAGS) == later


def test_marathon_env_takes_over_the_variables_it_sets():
    """A variable the block sets, set outside it too, would give Marathon two values of one
    flag; the block's must be the one. The old block is replaced, not kept beside the new."""
    old = f"MARATHON_ZK=zk://elsewhere/marathon\nA=1\n{BLOCK}B=2\n"
    flags = {**FLAGS, "http_port": "8081"}
    assert render.marathon_env(old, flags) == "A=1\n" + BLOCK.replace(
        render.ENV_END, "MARATHON_HTTP_PORT=8081\n" + render.ENV_END) + "B=2\n"


def test_marathon_env_without_an_end_keeps_the_lines_after_a_lone_begin():
    broken = f"{render.ENV_BEGIN}\nMARATHON_ZK=old\nMY_OWN=1\n"
    assert render.marathon_env(broken, FLAGS) == f"{render.ENV_BEGIN}\nMY_OWN=1\n" + BLOCK


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
