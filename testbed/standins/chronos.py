"""Stand-in for Chronos 2.5 (test equipment, not Chronos).

The tutorial installs Chronos with the `mesosphere` meta package but never uses it, so this
stand-in only has to behave as a healthy service: it accepts Chronos' `--name value` flags
(whatever they are), serves `/ping` and an empty job list on --http_port (4400), and exits cleanly
on SIGTERM, so that systemd does not see it crash-loop.
"""
import sys

from . import common
from .common import Response

PROG = "chronos"


def parse(argv):
    """Chronos' launcher passes `--name value` pairs and bare `--flag`s; keep what we use."""
    opts, i = {}, 0
    while i < len(argv):
        name = argv[i].lstrip("-").partition("=")
        if name[1]:
            opts[name[0]] = name[2]
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[name[0]] = argv[i + 1]
            i += 1
        else:
            opts[name[0]] = True
        i += 1
    return opts


def handle(req):
    if req.path in ("/ping", "/scheduler/ping"):
        return Response(200, "pong\n", content_type="text/plain")
    if req.path in ("/scheduler/jobs", "/v1/scheduler/jobs"):
        return Response(200, [])
    if req.path == "/":
        return Response(200, "<html><body>Chronos (test stand-in)</body></html>",
                        content_type="text/html")
    return Response(404, "", content_type=None)


def main(argv=None):
    opts = parse(sys.argv[1:] if argv is None else argv)
    common.setup_logging(PROG)
    server = common.serve(opts.get("http_address", "0.0.0.0"), int(opts.get("http_port", 4400)),
                          handle, "chronos")
    common.wait_for_sigterm()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
