"""systemd: `systemctl`, and for SysV scripts run through its compatibility layer (Debian's
zookeeper) the script's own `status` too."""

from __future__ import annotations

from tasks.shell import q


def installed(service: str) -> str:
    s = q(service)
    unit = q("^" + service + "\\.service")
    return f"systemctl list-unit-files {s}.service 2>/dev/null | grep -q {unit} || test -x /etc/init.d/{s}"


def enabled(service: str) -> str:
    return f"systemctl is-enabled --quiet {q(service)}"


def running(service: str) -> str:
    # `is-active` alone is not enough for a SysV script: its unit stays "active (exited)"
    # after the JVM died, so the script's own `status` is asked too.
    s = q(service)
    return (f"systemctl is-active --quiet {s} && "
            f"{{ [ ! -x /etc/init.d/{s} ] || /etc/init.d/{s} status >/dev/null; }}")


def restart(service: str) -> str:
    """Also starts a stopped service; a SysV script whose process died needs `restart` because
    its unit still counts as active."""
    return f"systemctl restart {q(service)}"


def enable(service: str) -> str:
    return f"systemctl enable --quiet {q(service)}"


def disable_now(service: str) -> str:
    # Not `disable --now`: for SysV scripts (Debian's zookeeper) systemctl hands the disabling
    # to systemd-sysv-install and then skips the stop.
    s = q(service)
    return f"systemctl disable --quiet {s} && systemctl stop {s}"


def logs(service: str) -> str:
    return f"journalctl -u {q(service)} -n 8 --no-pager -o cat"
