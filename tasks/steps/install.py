"""Install phase: the package repository and the packages of each role.

The repository's URL, suite, component and signing key are settings (the tutorial's values by
default): the original repository has been decaying since 2017, so operators point these steps
at a mirror of the old packages. Keys go to a `signed-by` keyring where apt supports it (apt 1.1
and later); `apt-key`, gone from current releases, is used only where apt needs it.
"""

from __future__ import annotations

from tasks import facts, render, shell
from tasks.runner import Change, HostContext, Step, StepError
from tasks.steps import files

SOURCES_FILE = "/etc/apt/sources.list.d/mesosphere.list"
KEYRING = "/etc/apt/keyrings/mesosphere.gpg"


def _repo_probes(ctx: HostContext) -> dict[str, str]:
    return {
        "lsb": shell.lsb_release(),
        "signed_by": shell.apt_supports_signed_by(),
        **files.probes([SOURCES_FILE]),
        "keyring": shell.keyring_fingerprints(KEYRING),
        "apt_key": shell.apt_key_fingerprints(),
    }


def _repo_plan(ctx: HostContext, found: dict[str, facts.Probe]) -> list[Change]:
    s = ctx.host.settings
    lsb = found["lsb"].out.split() if found["lsb"].ok else []
    distro, codename = lsb if len(lsb) == 2 else ("", "")
    templates = s.repo_url + s.repo_key_url
    if not codename and (not s.repo_suite or "{distro}" in templates or "{codename}" in templates):
        raise StepError("lsb_release failed: install the lsb-release package, or set "
                        "repo_suite and a repo_url/repo_key_url without {distro} or {codename}")
    signed_by = found["signed_by"].ok
    changes = []
    key_source = dict(key_url=s.repo_key_url_for(distro, codename), keyserver=s.repo_keyserver)
    if signed_by:
        if not facts.key_present(facts.fingerprints(found["keyring"]), s.repo_key_id):
            changes.append(Change(f"install key {s.repo_key_id} into {KEYRING}",
                                  shell.fetch_key_to_keyring(s.repo_key_id, KEYRING, **key_source)))
    elif not facts.key_present(facts.fingerprints(found["apt_key"]), s.repo_key_id):
        changes.append(Change(f"add key {s.repo_key_id} with apt-key",
                              shell.apt_key_recv(s.repo_key_id, **key_source)))
    source = render.apt_source(s.repo_url_for(distro, codename), s.repo_suite or codename,
                               s.repo_component, KEYRING if signed_by else None)
    changes += files.plan(found, {SOURCES_FILE: source})
    if changes:
        # Only when the source or the key changed: an update is the slow part of a re-run.
        changes.append(Change("apt-get update", shell.apt_update()))
    return changes


ADD_REPO = Step("add-repo", ("master", "slave"), _repo_probes, _repo_plan)


def _packages(ctx: HostContext) -> tuple[str, ...]:
    s = ctx.host.settings
    return s.master_packages if ctx.host.role == "master" else s.slave_packages


def _install_probes(ctx: HostContext) -> dict[str, str]:
    pkgs = list(_packages(ctx))
    probes = {"status": shell.package_status(pkgs)}
    probes.update({f"candidate{i}": shell.package_candidate(p.split("=", 1)[0]) for i, p in enumerate(pkgs)})
    return probes


def _install_plan(ctx: HostContext, found: dict[str, facts.Probe]) -> list[Change]:
    installed = facts.packages(found["status"])
    missing = []
    for i, wanted in enumerate(_packages(ctx)):
        name, _, version = wanted.partition("=")
        have = installed.get(name)
        if have and have.installed and (not version or have.version == version):
            continue
        missing.append((i, wanted))
    if not missing:
        return []
    changes = []
    if any(found[f"candidate{i}"].out.strip() in ("", "(none)") for i, _ in missing):
        # The package lists predate the repository (or were cleaned): refresh them first.
        changes.append(Change("apt-get update", shell.apt_update()))
    names = [w for _, w in missing]
    changes.append(Change(f"install {' '.join(names)}", shell.apt_install(names)))
    return changes


INSTALL_MASTER = Step("install-master", ("master",), _install_probes, _install_plan)
INSTALL_SLAVE = Step("install-slave", ("slave",), _install_probes, _install_plan)
