"""Install phase: the package repository and the packages of each role.

The repository's URL, suite, component and signing key are settings (the tutorial's values by
default): the original repository has been decaying since 2017, so operators point these steps
at a mirror of the old packages. Keys go to a `signed-by` keyring where apt supports it (apt 1.1
and later); `apt-key`, gone from current releases, is used only where apt needs it.
"""

from __future__ import annotations

from tasks import facts, render, shell
from tasks.facts import Facts
from tasks.step import Change, HostContext, Step, StepError
from tasks.steps import files, service

SOURCES_FILE = "/etc/apt/sources.list.d/mesosphere.list"
KEYRING = "/etc/apt/keyrings/mesosphere.gpg"


def _apt_update(ctx: HostContext) -> Change:
    # New package lists: apt's candidates are unknown until the update has run.
    return Change("apt-get update", shell.apt_update(ctx.host.settings.dpkg_lock_timeout),
                  forgets=("candidate",), kind="apt")


def _repo_needs(ctx: HostContext) -> list[str]:
    return [facts.LSB_RELEASE, facts.APT_SIGNED_BY, facts.keyring(KEYRING), facts.APT_KEY,
            *files.needs([SOURCES_FILE])]


def _repo_plan(ctx: HostContext, found: Facts) -> list[Change]:
    s = ctx.host.settings
    distro, codename = found[facts.LSB_RELEASE] or ("", "")
    templates = s.repo_url + s.repo_key_url
    if not codename and (not s.repo_suite or "{distro}" in templates or "{codename}" in templates):
        raise StepError("lsb_release failed: install the lsb-release package, or set "
                        "repo_suite and a repo_url/repo_key_url without {distro} or {codename}")
    signed_by = found[facts.APT_SIGNED_BY]
    changes = []
    key_source = dict(key_url=s.repo_key_url_for(distro, codename), keyserver=s.repo_keyserver)
    if signed_by:
        keys = found[facts.keyring(KEYRING)]
        if s.repo_key_id not in keys:
            changes.append(Change(f"install key {s.repo_key_id} into {KEYRING}",
                                  shell.fetch_key_to_keyring(s.repo_key_id, KEYRING, **key_source),
                                  sets={facts.keyring(KEYRING): keys | {s.repo_key_id}},
                                  kind="apt"))
    else:
        keys = found[facts.APT_KEY]
        if s.repo_key_id not in keys:
            changes.append(Change(f"add key {s.repo_key_id} with apt-key",
                                  shell.apt_key_add(s.repo_key_id, **key_source),
                                  sets={facts.APT_KEY: keys | {s.repo_key_id}}, kind="apt"))
    source = render.apt_source(s.repo_url_for(distro, codename), s.repo_suite or codename,
                               s.repo_component, KEYRING if signed_by else None)
    changes += files.plan(found, {SOURCES_FILE: source})
    if changes:
        # Only when the source or the key changed: an update is the slow part of a re-run.
        changes.append(_apt_update(ctx))
    return changes


ADD_REPO = Step("add-repo", ("master", "slave"),
                "Add the Mesosphere apt repository and its signing key (apt-get update only on change).",
                _repo_needs, _repo_plan)


def _packages(ctx: HostContext) -> tuple[str, ...]:
    s = ctx.host.settings
    return s.master_packages if ctx.host.role == "master" else s.slave_packages


def _names(ctx: HostContext) -> list[str]:
    return [p.split("=", 1)[0] for p in _packages(ctx)]


def _install_needs(ctx: HostContext) -> list[str]:
    return ([facts.package(n) for n in _names(ctx)] + [facts.candidate(n) for n in _names(ctx)]
            + [facts.DPKG_INTERRUPTED])


def _install_plan(ctx: HostContext, found: Facts) -> list[Change]:
    missing = []
    # An installed package of a service, pinned to another version, is upgraded by
    # start-services, in the service's rolling restart (`service.PACKAGE_OF`).
    rolled = {w for pins in service.pinned(ctx).values() for w in pins}
    for wanted in _packages(ctx):
        name, _, version = wanted.partition("=")
        have = found[facts.package(name)]
        if have and (not version or have == version or wanted in rolled):
            continue
        missing.append(wanted)
    if not missing:
        return []
    lock_wait = ctx.host.settings.dpkg_lock_timeout
    changes = []
    if found[facts.DPKG_INTERRUPTED]:
        # An install cut off mid-way (its dpkg killed): apt refuses every install until the
        # half-done packages are configured.
        changes.append(Change("repair the interrupted dpkg (dpkg --configure -a)",
                              shell.dpkg_repair(lock_wait), kind="apt",
                              sets={facts.DPKG_INTERRUPTED: False}))
    if any(not found[facts.candidate(w.partition("=")[0])] for w in missing):
        # The package lists predate the repository (or were cleaned): refresh them first.
        changes.append(_apt_update(ctx))
    changes.append(Change(f"install {' '.join(missing)}", shell.apt_install(missing, lock_wait),
                          forgets=facts.CHANGED_BY_PACKAGES, kind="apt"))
    return changes


INSTALL_MASTER = Step("install-master", ("master",),
                      "Install the master packages (mesosphere meta package by default).",
                      _install_needs, _install_plan)
INSTALL_SLAVE = Step("install-slave", ("slave",),
                     "Install the slave packages (mesos by default).",
                     _install_needs, _install_plan)
