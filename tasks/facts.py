"""Named facts: what a host looks like, each fact's command beside the parser of its output.

A fact is a name, most with an argument after a colon:

| name | value |
|---|---|
| `init` | `systemd`, `upstart` or `sysv`: which `tasks.init` strategy runs services |
| `lsb-release` | `(distro, codename)`, e.g. `("Ubuntu", "trusty")`; None when lsb_release failed |
| `apt-signed-by` | True when apt understands `[signed-by=...]` (apt 1.1 and later) |
| `apt-key` | fingerprints in apt-key's legacy keyring; not asked (empty) where apt has signed-by |
| `keyring:PATH` | fingerprints in a keyring file (empty when there is none) |
| `file:PATH` | a `File` (content, mode, owner, group), None when absent |
| `dir:PATH` | True when the directory exists |
| `package:NAME` | the installed version, None when not installed |
| `candidate:NAME` | apt's candidate version for a package not installed; '' when none (or installed) |
| `service:NAME` | a `Service` (enabled, running), None when not installed |
| `restart-marks` | the services marked for a restart (`shell.MARKER_DIR`), a frozenset |
| `dpkg-interrupted` | True when a dpkg run was cut off, so apt refuses to install until `dpkg --configure -a` |

Steps name the facts they need (`Step.needs`) and read them from a `Snapshot`, which the
planner keeps up to date as it plans changes (`tasks.plan`). `gather_script` asks for any
number of facts in one round trip; `parse_gather` turns the answers into values. A fact that
could not be read becomes a `FactError`, raised only when a step reads it.
"""

from __future__ import annotations

import base64
import io
import tarfile
from dataclasses import dataclass
from typing import Callable, Iterable

from tasks import init
from tasks.shell import MARKER_DIR, q

INIT = "init"
LSB_RELEASE = "lsb-release"
APT_SIGNED_BY = "apt-signed-by"
APT_KEY = "apt-key"
RESTART_MARKS = "restart-marks"
DPKG_INTERRUPTED = "dpkg-interrupted"


def file(path: str) -> str:
    return f"file:{path}"


def directory(path: str) -> str:
    return f"dir:{path}"


def package(name: str) -> str:
    return f"package:{name}"


def candidate(name: str) -> str:
    return f"candidate:{name}"


def service(name: str) -> str:
    return f"service:{name}"


def keyring(path: str) -> str:
    return f"keyring:{path}"


@dataclass(frozen=True)
class File:
    content: str
    mode: str = "644"
    owner: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class Service:
    enabled: bool
    running: bool


class FactError(ValueError):
    """A fact that could not be read; raised when a step reads it."""


class UnknownFact(Exception):
    """A fact that a planned change makes unknowable until that change is applied."""

    def __init__(self, name: str, because: str):
        super().__init__(f"{name} is unknown until `{because}` is applied")
        self.name = name
        self.because = because


# --- each kind of fact: its command and its parser -------------------------------------------

def _fingerprints_command(keyring_path: str) -> str:
    # A throw-away GnuPG home, so root's is not touched.
    return (
        f"test -s {q(keyring_path)} && g=$(mktemp -d) && "
        f"gpg --homedir \"$g\" --batch --no-default-keyring --keyring {q(keyring_path)} "
        f"--with-colons --fingerprint | {_FPR_SED}; r=$?; rm -rf \"$g\"; exit $r"
    )


_FPR_SED = "sed -n 's/^fpr:*\\([0-9A-F]*\\):*$/\\1/p'"
# The fourth word of apt's `Status Version` is its version.
_SIGNED_BY = "set -- $(fact_dpkg apt); dpkg --compare-versions \"$4\" ge 1.1"


def _fingerprints(rc: int, out: str) -> frozenset[str]:
    return frozenset(line.strip().upper() for line in out.splitlines() if line.strip())


def _init(rc: int, out: str) -> str:
    name = (out.strip().splitlines() or [""])[-1]
    if rc != 0 or name not in init.STRATEGIES:
        raise FactError(f"cannot detect the init system (exit {rc}: {out.strip()!r})")
    return name


def _lsb(rc: int, out: str) -> tuple[str, str] | None:
    words = out.split()
    return (words[0], words[1]) if rc == 0 and len(words) == 2 else None


def _file_command(path: str) -> str:
    # First line `mode owner group`, then the content; exit 3 when there is no such file.
    p = q(path)
    return f"if [ -e {p} ]; then stat -c '%a %U %G' {p} && cat {p}; else exit 3; fi"


def _file(rc: int, out: str) -> File | None:
    if rc == 3:
        return None
    if rc != 0:
        raise FactError(f"could not read the file (exit {rc})")
    head, _, content = out.partition("\n")
    mode, owner, group = (head.split() + ["", "", ""])[:3]
    return File(content, mode, owner, group)


def _package(rc: int, out: str) -> str | None:
    # `install ok installed 1.4.1-2.0.1`; dpkg-query fails for a package it never heard of.
    fields = out.split()
    return fields[3] if rc == 0 and fields[:3] == ["install", "ok", "installed"] and len(fields) > 3 \
        else None


def _candidate_command(name: str) -> str:
    # apt-cache is slow, and an installed package needs no candidate: it is asked only for
    # packages that are not installed (`install ok installed VERSION` in the dpkg table).
    p = q(name)
    return (f"set -- $(fact_dpkg {p}); [ \"$3\" = installed ] || "
            f"apt-cache policy {p} | sed -n 's/^ *Candidate: *//p'")


def _candidate(rc: int, out: str) -> str:
    found = out.strip()
    return "" if found == "(none)" else found


def _service_command(name: str) -> str:
    """One probe per init system, picked on the host: the init system is a fact of the same
    gather, so no round trip waits for it. Exit 3: not installed; else a line `enabled`
    and a line `running` for what is true (`state` of the init strategy)."""
    arms = [f"{init_name}) {{ {s.installed(name)} ; }} || exit 3; {s.state(name)};;"
            for init_name, s in init.STRATEGIES.items()]
    return f"case \"$({init.DETECT})\" in " + " ".join(arms) + " esac"


def _service(rc: int, out: str) -> Service | None:
    if rc == 3:
        return None
    if rc != 0:
        raise FactError(f"could not ask the init system (exit {rc})")
    lines = out.split()
    return Service(enabled="enabled" in lines, running="running" in lines)


@dataclass(frozen=True)
class Table:
    """What many facts of a gather read from one process instead of one each (dpkg-query and
    systemctl cost more than the rest of a gather): run once, before those facts, into the
    file "$t/NAME", which `reader` (a shell function the facts' commands call) looks up."""
    name: str
    command: Callable[[list[str]], str]    # the arguments of the facts that read it -> shell
    reader: str


def _dpkg_table(packages: list[str]) -> str:
    # apt always, for apt-signed-by and apt-key (whose facts name no package). Only the
    # packages asked for: the shell reads the table a byte at a time.
    names = dict.fromkeys(["apt"] + [p for p in packages if p])
    return ("dpkg-query -W -f '${Package} ${Status} ${Version}\\n' -- "
            + " ".join(q(n) for n in names))


# fact_dpkg NAME: `Status Version` of the package (`install ok installed 1.4.1-2.0.1`); exit 1
# when dpkg does not know it, as `dpkg-query -W NAME` does.
DPKG = Table("dpkg", _dpkg_table, r"""fact_dpkg() {
  while read -r p rest; do [ "$p" = "$1" ] && { printf '%s\n' "$rest"; return 0; }; done < "$t/dpkg"
  return 1
}""")
UNITS = Table("units", init.systemd.unit_table, init.systemd.UNIT_READER)


@dataclass(frozen=True)
class Kind:
    command: Callable[[str], str]          # the argument (a path, a name) -> shell
    parse: Callable[[int, str], object]    # exit status and output -> the value
    table: Table | None = None             # what its command reads, if anything


KINDS: dict[str, Kind] = {
    INIT: Kind(lambda _: init.DETECT, _init),
    # /etc/os-release answers without a process; lsb_release (a Python script) only where
    # it has no codename (Ubuntu 14.04).
    LSB_RELEASE: Kind(lambda _: '. /etc/os-release && [ -n "$VERSION_CODENAME" ] && '
                                'echo "$ID" "$VERSION_CODENAME" || lsb_release -s -i -c', _lsb),
    APT_SIGNED_BY: Kind(lambda _: _SIGNED_BY, lambda rc, out: rc == 0, DPKG),
    # apt-key costs more than half a second of gpg per host, and is gone from new releases.
    APT_KEY: Kind(lambda _: f"{_SIGNED_BY} || apt-key adv --with-colons --fingerprint | {_FPR_SED}",
                  _fingerprints, DPKG),
    "keyring": Kind(_fingerprints_command, _fingerprints),
    "file": Kind(_file_command, _file),
    "dir": Kind(lambda path: f"test -d {q(path)}", lambda rc, out: rc == 0),
    "package": Kind(lambda name: f"fact_dpkg {q(name)}", _package, DPKG),
    "candidate": Kind(_candidate_command, _candidate, DPKG),
    "service": Kind(_service_command, _service, UNITS),
    RESTART_MARKS: Kind(lambda _: f"[ ! -d {q(MARKER_DIR)} ] || ls -A {q(MARKER_DIR)}",
                        lambda rc, out: frozenset(out.split())),
    # apt's own test ("dpkg was interrupted"): journal entries dpkg has not merged yet.
    DPKG_INTERRUPTED: Kind(lambda _: "ls /var/lib/dpkg/updates 2>/dev/null | grep -qx '[0-9][0-9]*'",
                           lambda rc, out: rc == 0),
}

# What installing packages can change: their files, directories, services and versions.
# A package install forgets these facts, which are gathered again before a later step reads them.
CHANGED_BY_PACKAGES = ("package", "candidate", "file", "dir", "service")


def kind_of(name: str) -> str:
    return name.split(":", 1)[0]


def command(name: str) -> str:
    kind, _, argument = name.partition(":")
    return KINDS[kind].command(argument)


def parse(name: str, rc: int, out: str) -> object:
    """The fact's value, or the FactError that says why it could not be read."""
    try:
        return KINDS[kind_of(name)].parse(rc, out)
    except FactError as exc:
        return FactError(f"{name}: {exc}")


# --- one round trip for any number of facts --------------------------------------------------

FACT_PREFIX = "@@facts"


def gather_script(names: Iterable[str]) -> str:
    """One script that runs every fact's command and prints all their answers on one line.

    First the tables the facts read (`Table`: one process for all the packages, one for all
    the services), each in a file of a second temporary directory, "$t". Then each command
    runs in a subshell (an `exit` in it ends only itself) with its output in a file of a
    temporary directory, `I` for the I-th fact and `I.rc` for its exit status; that directory
    then travels as one base64-encoded tar, which keeps every byte of every output (trailing
    newlines too) and costs two processes, not two per fact.
    """
    names = list(names)
    tables: dict[Table, list[str]] = {}
    for name in names:
        kind, _, argument = name.partition(":")
        if KINDS[kind].table is not None:
            tables.setdefault(KINDS[kind].table, []).append(argument)
    lines = ["d=$(mktemp -d) && t=$(mktemp -d) || exit 1"]
    for table, arguments in tables.items():
        lines.append(table.reader)
        lines.append(f"( {table.command(arguments)} ) > \"$t/{table.name}\" 2>/dev/null")
    for i, name in enumerate(names):
        lines.append(f"( {command(name)} ) > \"$d/{i}\" 2>/dev/null; echo $? > \"$d/{i}.rc\"")
    lines.append(f"printf '%s ' {FACT_PREFIX}; tar -C \"$d\" -c . | base64 | tr -d '\\n'; "
                 "echo; rm -rf \"$d\" \"$t\"")
    return "\n".join(lines)


def parse_gather(output: str, names: list[str]) -> dict[str, object]:
    """The values of `names` from the output of `gather_script(names)`.

    The facts' line is the last line of the script's output; anything before it (a login
    banner, say) is ignored. A fact that did not report is an error, because a step must
    never plan from a fact that was not read.
    """
    lines = [line for line in output.splitlines() if line.startswith(FACT_PREFIX + " ")]
    payload = lines[-1][len(FACT_PREFIX) + 1:] if lines else ""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(payload))) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    files[member.name.removeprefix("./")] = tar.extractfile(member).read()
    except (tarfile.TarError, ValueError, EOFError, OSError):
        files = {}
    found: dict[str, object] = {}
    for i, name in enumerate(names):
        if f"{i}.rc" in files and str(i) in files:
            rc = files[f"{i}.rc"].strip()
            text = files[str(i)].decode("utf-8", errors="replace")
            found[name] = parse(name, int(rc) if rc.isdigit() else 255, text)
    missing = [n for n in names if n not in found]
    if missing:
        raise FactError(f"the host did not report: {', '.join(missing)}")
    return found


# --- the snapshot a run plans on -------------------------------------------------------------

class Snapshot:
    """A host's facts as the planned changes will leave them.

    Gathered once; then each planned change is applied to it (`apply`), so a later step sees
    what an earlier one will write. A change that makes facts unknowable (a package install)
    forgets them: reading one raises `UnknownFact` until it is gathered again (`update`).
    """

    def __init__(self, values: dict[str, object] | None = None):
        self.values: dict[str, object] = dict(values or {})
        self.gathered: dict[str, object] = dict(values or {})   # as last read from the host
        self.unknown: dict[str, str] = {}       # name -> the change that made it unknowable

    def read(self, name: str) -> object:
        if name in self.unknown:
            raise UnknownFact(name, self.unknown[name])
        value = self.values[name]
        if isinstance(value, FactError):
            raise value
        return value

    def missing(self, names: Iterable[str]) -> list[str]:
        """Those of `names` that have to be gathered: never gathered, or forgotten."""
        return [n for n in dict.fromkeys(names) if n not in self.values or n in self.unknown]

    def update(self, gathered: dict[str, object]) -> None:
        """Facts read from the host (kept apart too, in `gathered`: the host as it was)."""
        self.gathered.update(gathered)
        self._set(gathered)

    def apply(self, sets: dict[str, object], forgets: tuple[str, ...], because: str) -> None:
        for name in self.values:
            if kind_of(name) in forgets:
                self.unknown[name] = because
        self._set(sets)

    def _set(self, values: dict[str, object]) -> None:
        self.values.update(values)
        for name in values:
            self.unknown.pop(name, None)


class Facts:
    """What one step may read: the facts it named, and no others (a planner that reads an
    undeclared fact would plan from something the gather never asked)."""

    def __init__(self, snapshot: Snapshot, names: Iterable[str]):
        self._snapshot = snapshot
        self._names = frozenset(names)

    def __getitem__(self, name: str) -> object:
        if name not in self._names:
            raise KeyError(f"{name} was read but not named in the step's needs")
        return self._snapshot.read(name)
