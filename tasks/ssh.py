"""SSH connections to the inventory's hosts, with host keys checked the way OpenSSH checks them.

Fabric's default accepts any host key and never reads known_hosts, so a host whose key changed
would be logged into as root without a word. Here every connection is verified against
`~/.ssh/known_hosts`, `/etc/ssh/ssh_known_hosts` and the inventory's `ssh_known_hosts`, before
any command runs:

- a known key: connect;
- a changed key: always refused, naming the host and both fingerprints;
- an unknown key: refused (policy `strict`, the default) with how to accept it, or recorded
  and accepted (policy `accept-new`, as OpenSSH's `StrictHostKeyChecking=accept-new`).

Connections send keepalives, so a host that vanishes mid-run is noticed instead of hanging.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading

import paramiko
from fabric import Connection

DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
POLICIES = ("strict", "accept-new")
KEEPALIVE_SECONDS = 15
CONNECT_TIMEOUT = 15

_record_lock = threading.Lock()


class SshError(Exception):
    """A host cannot be reached or trusted; the message says which and what to do."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: `SHA256:` and the unpadded base64 of the key blob's SHA-256."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    """How known_hosts names a host: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


class _UnknownKeyPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, policy: str, files: list[str], record_to: str):
        self.policy, self.files, self.record_to = policy, files, record_to

    def missing_host_key(self, client, hostname, key):
        if self.policy == "accept-new":
            _record(self.record_to, hostname, key)
            client.get_host_keys().add(hostname, key.get_name(), key)
            return
        host, _, port = hostname.strip("[").partition("]:")
        scan = f"ssh-keyscan -t {key.get_name()}{' -p ' + port if port else ''} {host}"
        raise SshError(
            f"unknown host key for {hostname}: {key.get_name()} {fingerprint(key)} is in none of "
            f"{', '.join(self.files)}. Check the fingerprint out of band, then record it "
            f"(`{scan} >> {self.record_to}`), or set ssh_host_key_policy = accept-new in the "
            "inventory to record new keys on first contact")


def _record(path: str, hostname: str, key: paramiko.PKey) -> None:
    """Append one known_hosts line, as OpenSSH does; 0600 and a 0700 directory when created."""
    line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
    with _record_lock:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def known_hosts_files(extra: str = "") -> list[str]:
    files = [os.path.expanduser(f) for f in DEFAULT_KNOWN_HOSTS]
    return files + ([os.path.expanduser(extra)] if extra else [])


def connect(hostname: str, port: int, user: str | None, config, *, key_file: str = "",
            known_hosts: str = "", policy: str = "strict",
            connect_timeout: int = CONNECT_TIMEOUT) -> Connection:
    """A Connection whose host key will be verified when `open_verified` opens it."""
    if policy not in POLICIES:
        raise SshError(f"ssh_host_key_policy {policy!r} is not one of {', '.join(POLICIES)}")
    kwargs = {"key_filename": [key_file]} if key_file else {}
    conn = Connection(host=hostname, port=port, user=user or None, config=config,
                      connect_timeout=connect_timeout, connect_kwargs=kwargs)
    files = known_hosts_files(known_hosts)
    for path in files:
        if not os.path.exists(path):
            continue
        try:
            conn.client.load_system_host_keys(path)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise SshError(f"cannot read known hosts file {path}: {exc}") from None
    # OpenSSH records accepted keys in the first user file: the inventory's own file when it
    # names one, else ~/.ssh/known_hosts.
    record_to = os.path.expanduser(known_hosts) if known_hosts else files[0]
    conn.client.set_missing_host_key_policy(_UnknownKeyPolicy(policy, files, record_to))
    return conn


def open_verified(conn: Connection, keepalive: int = KEEPALIVE_SECONDS) -> None:
    """Open the connection (host key checked before any command), or raise a one-line SshError."""
    if conn.is_connected:
        return
    where = f"{conn.host}:{conn.port}"
    try:
        conn.open()
    except SshError:
        conn.close()
        raise
    except paramiko.BadHostKeyException as exc:
        conn.close()
        raise SshError(
            f"HOST KEY CHANGED for {known_hosts_name(conn.host, conn.port)}: known "
            f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)}, offered "
            f"{exc.key.get_name()} {fingerprint(exc.key)}. Refusing to connect: this may be "
            "an attack. If the host was reinstalled, check the new fingerprint out of band and "
            f"remove the old key (`ssh-keygen -R '{known_hosts_name(conn.host, conn.port)}'`)"
        ) from None
    except paramiko.AuthenticationException as exc:
        conn.close()
        raise SshError(f"cannot log in to {where} as {conn.user}: {exc}") from None
    except (socket.timeout, TimeoutError):
        conn.close()
        raise SshError(f"cannot reach {where}: connection timed out") from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        conn.close()
        raise SshError(f"cannot reach {where}: {getattr(exc, 'strerror', None) or exc}") from None
    conn.transport.set_keepalive(keepalive)
