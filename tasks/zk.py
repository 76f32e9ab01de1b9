"""ZooKeeper's four-letter words, asked over the network, bounded in time and size.

`srvr` says whether a server is in a quorum (`Mode: leader|follower|standalone`, or "not
currently serving requests"); `mntr` gives the leader's `zk_synced_followers`. `ruok` is not
used: it answers `imok` without a quorum. A server that streams without end or trickles its
answer costs one clear line (`ZkError`), never a hang or unbounded memory::

    mode(srvr("192.0.2.1", 2181))          # 'leader'
    mntr("192.0.2.1", 2181)["zk_synced_followers"]   # '2'
"""

from __future__ import annotations

import socket
import time

DEFAULT_TIMEOUT = 3.0
# `mntr` on a busy leader is under 2 KiB; `srvr` under 1 KiB.
MAX_BYTES = 64 * 1024
NOT_SERVING = "not serving"


class ZkError(Exception):
    """The four-letter word could not be asked or its answer could not be read."""


def ask(host: str, port: int, word: str, *, timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = MAX_BYTES) -> str:
    """Send `word`, read the answer until ZooKeeper closes the connection, within `timeout`."""
    what = f"ZooKeeper {host}:{port} {word}"
    end = time.monotonic() + timeout
    data = bytearray()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(word.encode("ascii"))
            while True:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise ZkError(f"{what}: answer not complete within {timeout:g} s")
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
                if len(data) > max_bytes:
                    raise ZkError(f"{what}: answer larger than {max_bytes} bytes")
    except socket.timeout:
        raise ZkError(f"{what}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ZkError(f"{what}: {exc.strerror or exc}") from None
    text = data.decode("utf-8", errors="replace")
    if f"{word} is not executed because it is not in the whitelist" in text:
        raise ZkError(f"{what}: refused, {word!r} is not in 4lw.commands.whitelist")
    return text


def srvr(host: str, port: int, **kwargs) -> str:
    return ask(host, port, "srvr", **kwargs)


# What ZooKeeper's `srvr` says a server is (QuorumPeer.getServerState, ReadOnlyZooKeeperServer).
MODES = ("leader", "follower", "observer", "standalone", "read-only")


def mode(srvr_text: str) -> str:
    """`leader`, `follower`, `standalone` (or `observer`, `read-only`), or NOT_SERVING (no
    quorum) from `srvr`'s answer; ZkError for an answer that is not ZooKeeper's."""
    for line in srvr_text.splitlines():
        if line.startswith("Mode: "):
            value = line[len("Mode: "):].strip()
            if value not in MODES:
                raise ZkError(f"srvr: unknown Mode {value[:40]!r}, expected one of "
                              f"{', '.join(MODES)}")
            return value
    if "not currently serving requests" in srvr_text:
        return NOT_SERVING
    raise ZkError("srvr: " + (f"no Mode line in the answer {srvr_text[:60]!r}" if srvr_text
                              else "the connection closed without an answer"))


def parse_mntr(text: str) -> dict[str, str]:
    """`mntr`'s `key<TAB>value` lines as a dict of strings; other lines are ignored."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep and key.startswith("zk_"):
            values[key] = value.strip()
    return values


def mntr(host: str, port: int, **kwargs) -> dict[str, str]:
    return parse_mntr(ask(host, port, "mntr", **kwargs))
