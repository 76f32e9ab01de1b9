"""ZooKeeper helpers shared by the stand-in daemons (test equipment).

URL parsing follows Mesos' zookeeper::URL (`zk://[user:pass@]host:port[,host:port]/path`).
Clients retry the connection forever, like the real daemons, so a ZooKeeper outage makes them
wait instead of crash. Works with kazoo 2.9 (Debian bookworm) and 2.11.
"""
import json
import logging

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

log = logging.getLogger(__name__)

MASTER_PREFIX = "json.info_"  # Mesos' MasterInfo znodes: <path>/json.info_0000000001


class ZkUrlError(ValueError):
    pass


def parse_zk_url(url):
    """'zk://h1:2181,h2:2181/mesos' -> ('h1:2181,h2:2181', '/mesos'); errors use Mesos' words."""
    if not url.startswith("zk://"):
        raise ZkUrlError("Expecting 'zk://' at the beginning of the URL")
    rest = url[len("zk://"):]
    hosts, slash, path = rest.partition("/")
    if "@" in hosts:
        hosts = hosts.rsplit("@", 1)[1]  # credentials: accepted, not used by the stand-ins
    if not hosts:
        raise ZkUrlError("Expecting host(s) in the URL")
    path = "/" + path.rstrip("/") if slash else "/"
    return hosts, path


def client(hosts, session_timeout=10.0):
    """Started KazooClient that keeps retrying the connection forever."""
    zk = KazooClient(hosts=hosts, timeout=session_timeout,
                     connection_retry={"max_tries": -1, "delay": 0.5, "max_delay": 5})
    # zk.start() raises after its timeout while the ensemble is down; the real daemons wait.
    while True:
        try:
            zk.start(timeout=15)
            return zk
        except Exception as e:  # kazoo raises a plain timeout error here
            log.warning("ZooKeeper not reachable yet (%s); retrying", e)


def mesos_masters(zk, path):
    """[(znode name, MasterInfo dict)] sorted by sequence: the first one is the leader."""
    try:
        names = sorted(c for c in zk.get_children(path) if c.startswith(MASTER_PREFIX))
    except NoNodeError:
        return []
    masters = []
    for name in names:
        try:
            data, _ = zk.get(f"{path}/{name}")
            masters.append((name, json.loads(data.decode())))
        except (NoNodeError, ValueError):
            continue  # went away, or a legacy non-JSON entry: skip as Mesos does
    return masters


def leading_master(zk, path):
    """MasterInfo of the current leader, or None."""
    masters = mesos_masters(zk, path)
    return masters[0][1] if masters else None


class MasterDetector:
    """Finds the leading Mesos master from a `--master` value: `zk://...` or `host:port`."""

    def __init__(self, master):
        self.zk = self.path = self.fixed = None
        if master.startswith("zk://"):
            hosts, self.path = parse_zk_url(master)
            self.zk = client(hosts)
        else:
            host, _, port = master.partition(":")
            self.fixed = {"id": None, "pid": f"master@{host}:{port or 5050}",
                          "hostname": host, "port": int(port or 5050),
                          "address": {"ip": host, "port": int(port or 5050), "hostname": host}}

    def leader(self):
        """MasterInfo dict of the leader, or None (no leader, or ZooKeeper unreachable)."""
        if self.fixed:
            return self.fixed
        try:
            return leading_master(self.zk, self.path)
        except Exception as e:  # connection loss: no leader known for now, kazoo reconnects
            log.warning("Could not read the leading master from ZooKeeper: %s", e)
            return None

    @staticmethod
    def url(info):
        return f"http://{info['address']['ip']}:{info['port']}"

    def stop(self):
        if self.zk is not None:
            self.zk.stop()
