"""systemd: `systemctl`, for native units and for SysV scripts run through its compatibility
layer (Debian's zookeeper) alike."""

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
    # The unit's SubState, not `is-active`: a SysV script's unit stays "active (exited)" after
    # its JVM died, and on Debian 12 the script's own `status` asks systemd and says the same.
    # SubState is `running` only while a process of the unit lives. `-p` and not `--value`,
    # which systemd 229 (Ubuntu 16.04) lacks.
    return f'[ "$(systemctl show -p SubState {q(service)})" = SubState=running ]'


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
