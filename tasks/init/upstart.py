"""upstart (Ubuntu 14.04, the tutorial's release): jobs in /etc/init, disabled by an
`X.override` file holding `manual`, as the tutorial does by hand."""

from __future__ import annotations

from tasks.shell import q, write_file


def installed(service: str) -> str:
    s = q(service)
    return f"test -e /etc/init/{s}.conf || test -x /etc/init.d/{s}"


def enabled(service: str) -> str:
    s = q(service)
    return f"test -e /etc/init/{s}.conf && ! grep -qsx manual /etc/init/{s}.override"


def running(service: str) -> str:
    return f"status {q(service)} 2>/dev/null | grep -q start/running"


def state(service: str) -> str:
    """For the service fact: a line `enabled` and a line `running`, for what is true."""
    return f"if {enabled(service)} ; then echo enabled; fi; if {running(service)} ; then echo running; fi"


def restart(service: str) -> str:
    # `restart` on a stopped job fails with "Unknown instance": start it instead.
    s = q(service)
    return f"{{ restart {s} 2>/dev/null || start {s}; }}"


def stop(service: str) -> str:
    # `stop` on a stopped job fails with "Unknown instance": it is stopped all the same.
    s = q(service)
    return f"{{ stop {s} 2>/dev/null || ! status {s} 2>/dev/null | grep -q start/; }}"


def enable(service: str) -> str:
    return f"rm -f /etc/init/{q(service)}.override"


def disable_now(service: str) -> str:
    override = write_file(f"/etc/init/{service}.override", "manual\n")
    # "Unknown instance" from `stop` means it was not running: success.
    return f"{override} && {{ stop {q(service)} 2>&1 | grep -v 'Unknown instance' >&2; true; }}"


def logs(service: str) -> str:
    return f"tail -n 8 /var/log/upstart/{q(service)}.log"
