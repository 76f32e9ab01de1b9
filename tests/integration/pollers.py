"""Watch a live cluster from threads while the tool changes it: what an operator's monitoring
would have seen, independent of the tool (raw sockets and `requests`, not tasks.*).

    with Watch(masters) as watch:
        fab("cluster")
    watch.zookeeper.longest_without_leader, watch.marathon.answered_share, ...

- ZooKeeper, every 50 ms: `srvr` on every master at once. A poll has a quorum when one member
  leads and a majority serve (leader or follower); it has a majority *up* when a majority of
  the servers answer at all (serving, or electing a leader: "not currently serving").
- Marathon, every 100 ms: GET /v2/apps on every master at once (each within 1 s); the poll
  counts as answered when one master answers 200. The share answered is by time: each poll
  stands for the time until the next one starts, so a poll held up (a standby holds requests
  while no leader is known) weighs what it lasted, and a slow machine's slow answer is no
  outage.
- Mesos, every 200 ms: /metrics/snapshot on every master; the elected one, and each change.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests


def srvr_mode(ip: str, timeout: float = 1.0) -> str:
    """`leader`, `follower`, `standalone`, `electing` (answers but does not serve) or `down`."""
    try:
        with socket.create_connection((ip, 2181), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"srvr")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return "down"
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    return "electing"


class Poller(threading.Thread):
    def __init__(self, interval: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.interval, self.stop = interval, stop
        self.samples: list[tuple[float, object]] = []
        self.pool = ThreadPoolExecutor(max_workers=8)

    def sample(self):
        raise NotImplementedError

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            self.samples.append((started, self.sample()))
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        self.pool.shutdown()

    def _windows(self, bad) -> list[float]:
        """Lengths of the runs of consecutive bad polls, in seconds (first to last bad + 1 poll)."""
        windows, start = [], None
        for t, value in self.samples:
            if bad(value):
                start = t if start is None else start
            elif start is not None:
                windows.append(t - start)
                start = None
        if start is not None:
            windows.append(self.samples[-1][0] - start + self.interval)
        return windows


class ZooKeeperPoller(Poller):
    def __init__(self, ips: list[str], stop: threading.Event):
        super().__init__(0.05, stop)
        self.ips = ips

    def sample(self) -> tuple[str, ...]:
        return tuple(self.pool.map(srvr_mode, self.ips))

    @property
    def majority(self) -> int:
        return len(self.ips) // 2 + 1

    def without_quorum(self) -> list[float]:
        def bad(modes):
            serving = sum(m in ("leader", "follower") for m in modes)
            return modes.count("leader") != 1 or serving < self.majority
        return self._windows(bad)

    def majority_down(self) -> list[float]:
        """Polls where fewer than a majority of the servers ran at all."""
        return self._windows(lambda modes: sum(m != "down" for m in modes) < self.majority)

    def leaders(self) -> list[str]:
        return _changes(self.ips[modes.index("leader")] if modes.count("leader") == 1 else None
                        for _, modes in self.samples)


class MarathonPoller(Poller):
    def __init__(self, ips: list[str], stop: threading.Event):
        super().__init__(0.1, stop)
        self.ips = ips

    @staticmethod
    def _apps(ip: str) -> bool:
        try:
            return requests.get(f"http://{ip}:8080/v2/apps", timeout=1.0).status_code == 200
        except requests.RequestException:
            return False

    def sample(self) -> bool:
        return any(self.pool.map(self._apps, self.ips))

    def outages(self) -> list[float]:
        """The lengths of the windows in which no master answered, in seconds."""
        return self._windows(lambda ok: not ok)

    @property
    def answered_share(self) -> float:
        """The share of the watched time during which /v2/apps answered."""
        spans = [(b[0] - a[0], a[1]) for a, b in zip(self.samples, self.samples[1:])]
        total = sum(d for d, _ in spans)
        return sum(d for d, ok in spans if ok) / total if total else 0.0


class MesosPoller(Poller):
    def __init__(self, ips: list[str], stop: threading.Event):
        super().__init__(0.2, stop)
        self.ips = ips

    @staticmethod
    def _elected(ip: str) -> bool:
        try:
            r = requests.get(f"http://{ip}:5050/metrics/snapshot", timeout=0.5)
            return r.json().get("master/elected") == 1
        except (requests.RequestException, ValueError):
            return False

    def sample(self) -> str | None:
        elected = [ip for ip, yes in zip(self.ips, self.pool.map(self._elected, self.ips)) if yes]
        return elected[0] if len(elected) == 1 else None

    def leaders(self) -> list[str]:
        return _changes(leader for _, leader in self.samples)


def _changes(values) -> list[str]:
    """The successive distinct non-empty values (a gap between two equal ones is no change)."""
    seen: list[str] = []
    for v in values:
        if v is not None and (not seen or seen[-1] != v):
            seen.append(v)
    return seen


@dataclass
class Watch:
    masters: list[str]                      # the masters' addresses
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "Watch":
        self.zookeeper = ZooKeeperPoller(self.masters, self.stop)
        self.marathon = MarathonPoller(self.masters, self.stop)
        self.mesos = MesosPoller(self.masters, self.stop)
        for p in (self.zookeeper, self.marathon, self.mesos):
            p.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for p in (self.zookeeper, self.marathon, self.mesos):
            p.join()

    def summary(self) -> str:
        gaps = self.zookeeper.without_quorum()
        return (f"ZooKeeper: {len(self.zookeeper.samples)} polls, {len(gaps)} without a quorum "
                f"(longest {max(gaps, default=0) * 1000:.0f} ms), majority down in "
                f"{len(self.zookeeper.majority_down())} windows, leaders "
                f"{' -> '.join(self.zookeeper.leaders())}; Marathon /v2/apps answered in "
                f"{self.marathon.answered_share:.1%} of the time ({len(self.marathon.samples)} "
                f"polls; outages of {', '.join(f'{w:.1f}' for w in self.marathon.outages()) or 'none'}"
                f" s); "
                f"Mesos leaders {' -> '.join(self.mesos.leaders())}")
