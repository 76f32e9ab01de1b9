"""systemd: `systemctl`, and for SysV scripts run through its compatibility layer (Debian's
zookeeper) the script's own `status` too."""

from __future__ import annotations

from tasks.shell import q


# Where packages and administrators put unit files; generated units come from /etc/init.d.
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system",
             "/usr/lib/systemd/system")


def installed(service: str) -> str:
    # File tests, not `systemctl list-unit-files`, which reads every unit file on the host.
    tests = [f"test -e {d}/{q(service)}.service" for d in UNIT_DIRS]
    return " || ".join(tests + [f"test -x /etc/init.d/{q(service)}"])


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


def stop(service: str) -> str:
    return f"systemctl stop {q(service)}"


def enable(service: str) -> str:
    return f"systemctl enable --quiet {q(service)}"


def disable_now(service: str) -> str:
    # Not `disable --now`: for SysV scripts (Debian's zookeeper) systemctl hands the disabling
    # to systemd-sysv-install and then skips the stop.
    s = q(service)
    return f"systemctl disable --quiet {s} && systemctl stop {s}"


def logs(service: str) -> str:
    return f"journalctl -u {q(service)} -n 8 --no-pager -o cat"
