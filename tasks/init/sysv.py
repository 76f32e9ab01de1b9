"""SysV init without systemd (older Debian, containers): `service` and `update-rc.d`."""

from __future__ import annotations

from tasks.shell import q


def installed(service: str) -> str:
    return f"test -x /etc/init.d/{q(service)}"


def enabled(service: str) -> str:
    return f"ls /etc/rc2.d/S*{q(service)} >/dev/null 2>&1"


def running(service: str) -> str:
    return f"service {q(service)} status >/dev/null"


def state(service: str) -> str:
    """For the service fact: a line `enabled` and a line `running`, for what is true."""
    return f"if {enabled(service)} ; then echo enabled; fi; if {running(service)} ; then echo running; fi"


def restart(service: str) -> str:
    return f"service {q(service)} restart"


def stop(service: str) -> str:
    return f"service {q(service)} stop"


def enable(service: str) -> str:
    return f"update-rc.d {q(service)} defaults"


def disable_now(service: str) -> str:
    s = q(service)
    return f"service {s} stop; update-rc.d {s} disable"


def logs(service: str) -> str:
    # SysV scripts have no common log: each daemon writes its own under /var/log.
    return f"echo {q('(no common log for ' + service + ' under SysV init: see /var/log)')}"
