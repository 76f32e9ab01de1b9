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


# `systemctl is-enabled` answers yes (exit 0) for these unit file states, and no for the next
# ones. For any other it is asked itself: `generated` (a SysV script, whose rc links
# systemd-sysv-install reads), `bad` (the same script under systemd 229, Ubuntu 16.04, whose
# lookup of unit files skips the generators' directories), `transient`.
_ENABLED = "enabled|enabled-runtime|static|alias|indirect"
_NOT_ENABLED = "disabled|masked|masked-runtime|linked|linked-runtime"


def unit_table(services: list[str]) -> str:
    """For the gather: every service's unit in one `systemctl show` (a process per service
    and question costs more than the rest of the gather): a block of `Key=value` lines per
    unit, blank-line separated, which `fact_unit` reads. Nothing where systemd does not run."""
    units = " ".join(q(f"{s}.service") for s in services)
    return (f"[ -d /run/systemd/system ] || exit 0; "
            f"systemctl show -p Names -p UnitFileState -p SubState -- {units}")


# fact_unit NAME: `UnitFileState SubState` of the unit named NAME.service in the table
# ("$t/units"), `-` for an empty value; nothing when the table has no such unit. Matched on
# Names, so an alias is found too, and whatever order systemctl prints the properties in.
UNIT_READER = r"""fact_unit() {
  n= f= s=
  while IFS= read -r l || [ -n "$l" ]; do
    case "$l" in
      Names=*) n=" ${l#Names=} ";;
      UnitFileState=*) f=${l#UnitFileState=};;
      SubState=*) s=${l#SubState=};;
      "") case "$n" in *" $1.service "*) break;; esac; n= f= s=;;
    esac
  done < "$t/units"
  case "$n" in *" $1.service "*) printf '%s %s\n' "${f:--}" "${s:--}";; *) return 1;; esac
}"""


def state(service: str) -> str:
    """For the service fact, from the unit table: a line `enabled` and a line `running`, for
    what is true (the same answers as `enabled` and `running`)."""
    s = q(service)
    return (f"set -- $(fact_unit {s}); "
            f"case \"$1\" in {_ENABLED}) echo enabled;; {_NOT_ENABLED}) ;; "
            f"*) if {enabled(service)} ; then echo enabled; fi;; esac; "
            f"if [ \"$2\" = running ]; then echo running; fi")


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
