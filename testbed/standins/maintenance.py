"""Mesos maintenance primitives, the pure part (test equipment): parsing and validating what
operators POST to `/master/maintenance/schedule`, `/master/machine/down` and `/master/machine/up`,
with the real master's words (Mesos 1.4: master/maintenance.cpp, master/http.cpp, stout's
JSON -> protobuf parser).

A schedule is `{"windows": [{"machine_ids": [{"hostname", "ip"}], "unavailability":
{"start": {"nanoseconds"}, "duration": {"nanoseconds"}}}]}`. A machine is matched to the agents
running on it by the hostname the agent announces (case-insensitive) AND the IP of its pid.
Errors are MaintenanceError, whose text is the body of the real 400 response.
"""
import ipaddress
import json

# protobuf messages as (field, type, label), in field-number order (the order stout writes).
_MESSAGES = {
    "Schedule": [("windows", "Window", "repeated")],
    "Window": [("machine_ids", "MachineID", "repeated"),
               ("unavailability", "Unavailability", "required")],
    "Unavailability": [("start", "TimeInfo", "required"),
                       ("duration", "DurationInfo", "optional")],
    "TimeInfo": [("nanoseconds", "int64", "required")],
    "DurationInfo": [("nanoseconds", "int64", "required")],
    "MachineID": [("hostname", "string", "optional"), ("ip", "string", "optional")],
}


class MaintenanceError(ValueError):
    """A request the real master answers with 400 Bad Request and this text."""


def parse_schedule(body):
    """POST /maintenance/schedule body (bytes) -> schedule dict (only the fields set)."""
    doc = _parse_json(body)
    if not isinstance(doc, dict):
        raise MaintenanceError("Unexpected JSON type parsed")
    return _message("Schedule", doc)


def parse_machine_ids(body):
    """POST /machine/down|up body (bytes): a JSON array of MachineIDs -> list of dicts."""
    doc = _parse_json(body)
    if not isinstance(doc, list):
        raise MaintenanceError("Unexpected JSON type parsed")
    ids = []
    for item in doc:
        if not isinstance(item, dict):
            raise MaintenanceError("Expecting a JSON object")
        ids.append(_message("MachineID", item))
    return ids


def key(machine_id):
    """What makes two MachineIDs equal in Mesos: the hostname lower-cased, and the ip."""
    return (machine_id.get("hostname", "").lower(), machine_id.get("ip", ""))


def text(machine_id):
    """A MachineID as the master prints it in messages: compact JSON, fields in proto order."""
    return json.dumps({k: machine_id[k] for k in ("hostname", "ip") if k in machine_id},
                      separators=(",", ":"))


def validate_schedule(schedule, down):
    """maintenance::validation::schedule: `down` holds the keys of machines in DOWN mode."""
    seen = set()
    for window in schedule.get("windows", []):
        if not window.get("machine_ids"):
            raise MaintenanceError("List of machines in the maintenance window is empty")
        if window["unavailability"].get("duration", {}).get("nanoseconds", 0) < 0:
            raise MaintenanceError("Unavailability 'duration' is negative")
        for machine in window["machine_ids"]:
            validate_machine(machine)
            if key(machine) in seen:
                raise MaintenanceError(f"Machine '{text(machine)}' appears more than once in "
                                       "the schedule")
            seen.add(key(machine))
    for machine_key, machine in sorted(down.items()):
        if machine_key not in seen:
            raise MaintenanceError(f"Machine '{text(machine)}' is deactivated and cannot be "
                                   "removed from the schedule")


def validate_machines(ids):
    """maintenance::validation::machines, for /machine/down and /machine/up."""
    if not ids:
        raise MaintenanceError("List of machines is empty")
    seen = set()
    for machine in ids:
        validate_machine(machine)
        if key(machine) in seen:
            raise MaintenanceError(f"Machine '{text(machine)}' appears more than once in the "
                                   "schedule")
        seen.add(key(machine))


def validate_machine(machine):
    if not machine.get("hostname") and not machine.get("ip"):
        raise MaintenanceError("Both 'hostname' and 'ip' for a machine are empty")
    if machine.get("ip"):
        try:
            ipaddress.IPv4Address(machine["ip"])
        except ValueError:
            raise MaintenanceError(f"Failed to parse IPv4: {machine['ip']}") from None


def windows_of(schedule):
    """{machine key: (MachineID, unavailability)} for every machine a schedule names."""
    return {key(m): (m, w["unavailability"]) for w in schedule.get("windows", [])
            for m in w["machine_ids"]}


def without(schedule, keys):
    """The schedule minus the given machines; empty windows dropped (as /machine/up does)."""
    windows = []
    for w in schedule.get("windows", []):
        left = [m for m in w["machine_ids"] if key(m) not in keys]
        if left:
            windows.append(dict(w, machine_ids=left))
    return {"windows": windows} if windows else {}


# ---- JSON -> protobuf, as stout does it ---------------------------------------------------
def _parse_json(body):
    try:
        return json.loads(body.decode() if isinstance(body, bytes) else body)
    except json.JSONDecodeError as e:   # picojson's words: the rest of the line after the error
        near = e.doc[e.pos:].split("\n", 1)[0]
        raise MaintenanceError(f"syntax error at line {e.lineno} near: {near}") from None
    except UnicodeDecodeError:
        raise MaintenanceError("syntax error at line 1 near: ") from None


def _message(name, obj):
    out = _fields(name, obj)
    missing = _missing(name, out, "")
    if missing:
        raise MaintenanceError("Missing required fields: " + ", ".join(missing))
    return out


def _fields(name, obj):
    """Unknown fields are ignored and null leaves a field unset, as in stout."""
    out = {}
    for field, kind, label in _MESSAGES[name]:
        if field not in obj or obj[field] is None:
            continue
        values = obj[field]
        if isinstance(values, list):
            if label != "repeated":
                raise MaintenanceError(f"Not expecting a JSON array for field '{field}'")
        else:
            values = [values]   # stout adds a single value to a repeated field
        parsed = [_value(field, kind, v) for v in values if v is not None]
        if label == "repeated":
            out[field] = out.get(field, []) + parsed
        elif parsed:
            out[field] = parsed[-1]
    return out


def _value(field, kind, value):
    json_type = ("boolean" if isinstance(value, bool) else "object" if isinstance(value, dict)
                 else "array" if isinstance(value, list) else "string"
                 if isinstance(value, str) else "number")
    if kind in _MESSAGES:
        if json_type != "object":
            raise MaintenanceError(f"Not expecting a JSON {json_type} for field '{field}'")
        return _fields(kind, value)
    if kind == "string" and json_type == "string":
        return value
    if kind == "int64" and json_type == "number":
        return int(value)
    raise MaintenanceError(f"Not expecting a JSON {json_type} for field '{field}'")


def _missing(name, msg, prefix):
    """protobuf's InitializationErrorString: paths of unset required fields."""
    out = []
    for field, kind, label in _MESSAGES[name]:
        if label == "required" and field not in msg:
            out.append(prefix + field)
        elif kind in _MESSAGES and field in msg:
            if label == "repeated":
                for i, item in enumerate(msg[field]):
                    out += _missing(kind, item, f"{prefix}{field}[{i}].")
            else:
                out += _missing(kind, msg[field], f"{prefix}{field}.")
    return out
