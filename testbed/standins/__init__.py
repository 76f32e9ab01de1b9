"""Stand-in daemons for Mesos, Marathon and Chronos: TEST EQUIPMENT ONLY.

The real packages cannot be installed on the testbed's hosts (no package source carries them),
so `testbed.repo.build_repo` packs these modules into .debs that install the same files, flags,
units and HTTP API as the real `mesos`, `marathon` and `chronos` packages
(apache/mesos, mesosphere/marathon: their packaging, flags and REST docs). They are small and readable on purpose: enough of the
real behaviour for the project's tasks and runbooks to be tested on real hosts, nothing more.

Stdlib + kazoo only; kazoo 2.9.0 (Debian bookworm's python3-kazoo) must keep working.
Endpoints under `/standin/...` exist only between stand-ins (they replace libprocess messages)
and are not part of any real API.

Run locally with e.g. `python3 -m testbed.standins.mesos_master --ip=127.0.0.2 --work_dir=...`.
"""
