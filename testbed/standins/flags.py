"""Command-line flags the way the real daemons read them (test equipment).

Mesos (stout's flags.hpp): `--name=value`, `--name` / `--no-name` for booleans, and `MESOS_NAME`
environment variables, which the command line overrides. Unknown and repeated flags are fatal:
that is what makes a stray file such as /etc/mesos-master/work_dir.bak crash a real master, and
the stand-ins must crash the same way, with the same words.

Marathon (scallop): `--name value` or `--name=value`, booleans without value.
"""
import os
import re
import sys


class FlagError(Exception):
    """A flag problem; the message is the real daemon's text."""


_DURATION_UNITS = [  # stout/duration.hpp, largest first: stringify picks the largest that fits
    ("weeks", 7 * 86400.0), ("days", 86400.0), ("hrs", 3600.0), ("mins", 60.0),
    ("secs", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9),
]


def parse_duration(text):
    """'30secs', '1mins', '1.5hrs' -> seconds (float), as stout's Duration::parse."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]+)\s*", text)
    units = dict(_DURATION_UNITS)
    if not m or m.group(2) not in units:
        raise FlagError(f"Invalid duration '{text}'")
    return float(m.group(1)) * units[m.group(2)]


def format_duration(seconds):
    """Seconds -> stout's text: 60 -> '1mins', 90 -> '1.5mins'."""
    for unit, size in _DURATION_UNITS:
        if seconds >= size or unit == "ns":
            return f"{seconds / size:g}{unit}"


def _to_bool(name, value):
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise FlagError(f"Failed to load flag '{name}': Failed to load value '{value}': "
                    f"Expecting a boolean (e.g., true or false)")


def _convert(name, kind, value):
    try:
        if kind is bool:
            return _to_bool(name, value)
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        if kind == "duration":
            return parse_duration(value)
    except ValueError:
        raise FlagError(f"Failed to load flag '{name}': Failed to load value '{value}': "
                        f"Failed to convert '{value}' to number") from None
    except FlagError as e:
        raise FlagError(f"Failed to load flag '{name}': {e}") from None
    return value


def parse_mesos(argv, spec, environ=None, prefix="MESOS_"):
    """Parse Mesos-style flags. spec: {name: (kind, default)}; kind is str/int/float/bool/'duration'.

    Returns {name: value} with defaults filled in (None when there is no default).
    """
    environ = os.environ if environ is None else environ
    raw = {}
    for key, value in environ.items():
        # Unknown MESOS_* variables are ignored by stout unless --strict is asked for.
        if key.startswith(prefix) and key[len(prefix):].lower() in spec:
            raw[key[len(prefix):].lower()] = value
    seen = set()
    for arg in argv:
        if not arg.startswith("--"):
            raise FlagError(f"Failed to load unknown flag '{arg}'")
        name, eq, value = arg[2:].partition("=")
        name = name.replace("-", "_")  # stout accepts dashes for underscores
        negated = False
        if name not in spec and name.startswith("no_") and not eq:
            name, negated = name[3:], True
        if name not in spec:
            raise FlagError(f"Failed to load unknown flag '{name}'")
        if name in seen:
            raise FlagError(f"Flag '{name}' is already loaded via name '{name}'")
        seen.add(name)
        kind = spec[name][0]
        if not eq:
            if kind is not bool:
                raise FlagError(f"Failed to load non-boolean flag '{name}': Missing value")
            value = "false" if negated else "true"
        raw[name] = value
    flags = {name: default for name, (_kind, default) in spec.items()}
    for name, value in raw.items():
        flags[name] = _convert(name, spec[name][0], value)
    return flags


def parse_scallop(argv, spec, required=()):
    """Parse Marathon-style flags (scallop): `--name value`, `--name=value`, `--flag`."""
    flags = {name: default for name, (_kind, default) in spec.items()}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise FlagError(f"[scallop] Error: Excess arguments provided: '{arg}'")
        name, eq, value = arg[2:].partition("=")
        if name not in spec:
            raise FlagError(f"[scallop] Error: Unknown option '{name}'")
        kind = spec[name][0]
        if kind is bool and not eq:
            flags[name] = True
        else:
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise FlagError(f"[scallop] Error: Bad arguments for option '{name}': ''")
                i += 1
                value = argv[i]
            try:
                flags[name] = _convert(name, kind, value)
            except FlagError:
                raise FlagError(f"[scallop] Error: Bad arguments for option '{name}': "
                                f"'{value}'") from None
        i += 1
    for name in required:
        if flags.get(name) is None:
            raise FlagError(f"[scallop] Error: Required option '{name}' not found")
    return flags


def to_json(values, spec):
    """Flags as the /state and /flags endpoints show them: every value a string."""
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        if spec[name][0] == "duration":
            value = format_duration(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        out[name] = str(value)
    return out


def fail(prog, message, usage=True):
    """Print the error as the real daemon does, and exit 1."""
    print(message, file=sys.stderr)
    if usage:
        print(f"\nUsage: {prog} [options]", file=sys.stderr)
    sys.exit(1)
