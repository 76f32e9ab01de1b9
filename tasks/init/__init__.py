"""Service commands, one small strategy per init system, chosen once per host.

Each of `systemd`, `upstart` and `sysv` answers the same questions with its own commands:
`installed`, `enabled`, `running` (probes: exit 0 means yes), `state` (both, for the
service fact: systemd's from the gather's unit table, `systemd.unit_table`) and `restart`,
`stop`, `enable`, `disable_now`, `logs` (changes). A host's init system is the `init` fact
(`tasks.facts`), gathered with its other facts; `strategy()` turns it into the module that
builds that host's service commands.
"""

from __future__ import annotations

from types import ModuleType

from tasks.init import systemd, sysv, upstart
from tasks.shell import q

STRATEGIES: dict[str, ModuleType] = {"systemd": systemd, "upstart": upstart, "sysv": sysv}

# Prints systemd, upstart or sysv: which of the strategies manages this host's services.
DETECT = (
    "if [ -d /run/systemd/system ]; then echo systemd; "
    "elif [ -x /sbin/initctl ] && /sbin/initctl version 2>/dev/null | grep -q upstart; "
    "then echo upstart; else echo sysv; fi"
)


def strategy(name: str) -> ModuleType:
    return STRATEGIES[name]


def verify_running(init: ModuleType, services: tuple[str, ...], settle: int = 3) -> str:
    """After (re)starts: fail, with the service's last log lines, if one is not running.

    A daemon that rejects its flags or its checkpoint exits within a second of starting, while
    systemd's `restart` has already returned success; `settle` seconds catch that. The
    message comes last, where the failure report (the last lines of stderr) shows it.
    """
    checks = [f"{{ {init.running(svc)} ; }} || "
              f"{{ {init.logs(svc)} >&2; echo {q(svc + ' is not running after its start (log above)')} >&2; exit 1; }}"
              for svc in services]
    return f"sleep {int(settle)}; " + "; ".join(checks)
