"""Facts: what a host looks like, parsed from the output of the probes in `shell.gather`.

pyinfra's model: a fact is a command and a parser of its output. The commands live in `shell`;
the parsers live here and are pure, so the steps' unit tests feed them recorded host states.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from tasks import shell


@dataclass(frozen=True)
class Probe:
    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class FileFact:
    exists: bool
    content: str = ""
    mode: str = ""
    owner: str = ""
    group: str = ""


def parse_gather(output: str, names: list[str]) -> dict[str, Probe]:
    """Split the output of `shell.gather` back into one `Probe` per name.

    Lines that are not probe lines (a login banner, say) are ignored; a probe that did not
    report is an error, because a step must never plan from a fact it did not read.
    """
    found: dict[str, Probe] = {}
    for line in output.splitlines():
        parts = line.split(" ")
        if len(parts) != 4 or parts[0] != shell.PROBE_PREFIX:
            continue
        _, name, rc, payload = parts
        text = base64.b64decode(payload).decode("utf-8", errors="replace")
        found[name] = Probe(int(rc) if rc.lstrip("-").isdigit() else 255, text)
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"host did not report facts: {', '.join(missing)}")
    return found


def file_fact(probe: Probe) -> FileFact:
    """Parse `shell.read_file`: exit 3 = absent, else a `mode owner group` line then content."""
    if probe.rc == 3:
        return FileFact(exists=False)
    if probe.rc != 0:
        raise ValueError(f"could not read file (exit {probe.rc})")
    head, _, content = probe.out.partition("\n")
    mode, owner, group = (head.split() + ["", "", ""])[:3]
    return FileFact(True, content, mode, owner, group)


@dataclass(frozen=True)
class Package:
    name: str
    installed: bool
    version: str


def packages(probe: Probe) -> dict[str, Package]:
    """Parse `shell.package_status`; packages dpkg never heard of are simply absent."""
    result = {}
    for line in probe.out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        name, status = fields[0], fields[1:4]
        version = fields[4] if len(fields) > 4 else ""
        installed = status == ["install", "ok", "installed"]
        result[name] = Package(name, installed, version if installed else "")
    return result


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric part of a Debian version: `1:1.4.8-1.0.660.debian90` → (1, 4, 8)."""
    upstream = version.split(":", 1)[-1].split("-", 1)[0]
    numbers = []
    for piece in upstream.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def fingerprints(probe: Probe) -> set[str]:
    return {line.strip().upper() for line in probe.out.splitlines() if line.strip()}


def key_present(fprs: set[str], key_id: str) -> bool:
    """A short or long key id matches the end of a fingerprint, as gpg itself matches them."""
    kid = key_id.upper()
    return any(f.endswith(kid) for f in fprs)
