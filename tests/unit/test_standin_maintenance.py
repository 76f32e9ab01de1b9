"""Mesos maintenance requests, parsed and validated with the real master's words (test
equipment: testbed/standins/maintenance.py; the master's HTTP side is tested in
test_standin_master_day2.py)."""
import json

import pytest

from testbed.standins import maintenance as mt

M1 = {"hostname": "slave1", "ip": "192.0.2.51"}
M2 = {"hostname": "slave2", "ip": "192.0.2.52"}
WHEN = {"start": {"nanoseconds": 1_700_000_000_000_000_000},
        "duration": {"nanoseconds": 3_600_000_000_000}}


def schedule(*windows):
    return json.dumps({"windows": [{"machine_ids": w, "unavailability": WHEN}
                                   for w in windows]}).encode()


def error(fn, *args):
    with pytest.raises(mt.MaintenanceError) as e:
        fn(*args)
    return str(e.value)


def test_a_schedule_keeps_the_fields_set_and_drops_unknown_ones():
    body = json.dumps({"windows": [{"machine_ids": [M1, {"hostname": "x"}], "colour": "red",
                                    "unavailability": WHEN}], "extra": 1}).encode()
    assert mt.parse_schedule(body) == {"windows": [{
        "machine_ids": [M1, {"hostname": "x"}], "unavailability": WHEN}]}
    assert mt.parse_schedule(b"{}") == {}


@pytest.mark.parametrize("body, message", [
    (b"[]", "Unexpected JSON type parsed"),
    (b'{"windows": [{"machine_ids": [{"hostname": "a"}]}]}',
     "Missing required fields: windows[0].unavailability"),
    (b'{"windows": [{"machine_ids": [], "unavailability": {"start": {}}}]}',
     "Missing required fields: windows[0].unavailability.start.nanoseconds"),
    (b'{"windows": [{"unavailability": {"start": {"nanoseconds": "1"}}}]}',
     "Not expecting a JSON string for field 'nanoseconds'"),
    (b'{"windows": [{"machine_ids": [{"hostname": 7}], "unavailability": {}}]}',
     "Not expecting a JSON number for field 'hostname'"),
    (b'{"windows": {"unavailability": []}}',
     "Not expecting a JSON array for field 'unavailability'"),
    (b'{"windows": [', "syntax error at line 1 near: "),
])
def test_malformed_schedules_are_refused_with_stouts_words(body, message):
    assert error(mt.parse_schedule, body) == message


@pytest.mark.parametrize("windows, down, message", [
    ([[M1], [M2, M1]], {}, 'Machine \'{"hostname":"slave1","ip":"192.0.2.51"}\' appears more '
                           'than once in the schedule'),
    ([[M1], []], {}, "List of machines in the maintenance window is empty"),
    ([[{"hostname": "", "ip": ""}]], {}, "Both 'hostname' and 'ip' for a machine are empty"),
    ([[{"hostname": "h", "ip": "10.0.0"}]], {}, "Failed to parse IPv4: 10.0.0"),
    ([[M2]], {mt.key(M1): M1}, 'Machine \'{"hostname":"slave1","ip":"192.0.2.51"}\' is '
                               'deactivated and cannot be removed from the schedule'),
])
def test_invalid_schedules(windows, down, message):
    assert error(mt.validate_schedule, mt.parse_schedule(schedule(*windows)), down) == message


def test_hostnames_match_case_insensitively_ips_exactly():
    upper = dict(M1, hostname="SLAVE1")
    assert mt.key(upper) == mt.key(M1)
    assert mt.key(dict(M1, ip="192.0.2.99")) != mt.key(M1)
    assert error(mt.validate_schedule, mt.parse_schedule(schedule([M1, upper])), {}) \
        .endswith("appears more than once in the schedule")
    mt.validate_schedule(mt.parse_schedule(schedule([upper])), {mt.key(M1): M1})  # still there


def test_machine_lists_for_down_and_up():
    assert mt.parse_machine_ids(json.dumps([M1, M2]).encode()) == [M1, M2]
    assert error(mt.parse_machine_ids, b'{"hostname": "a"}') == "Unexpected JSON type parsed"
    assert error(mt.parse_machine_ids, b'["a"]') == "Expecting a JSON object"
    assert error(mt.validate_machines, []) == "List of machines is empty"
    assert error(mt.validate_machines, [M1, M1]).endswith("appears more than once in the "
                                                          "schedule")


def test_bringing_a_machine_up_removes_it_and_its_emptied_window():
    sched = mt.parse_schedule(schedule([M1], [M2]))
    assert mt.without(sched, {mt.key(M1)}) == {"windows": [{"machine_ids": [M2],
                                                           "unavailability": WHEN}]}
    assert mt.without(sched, {mt.key(M1), mt.key(M2)}) == {}
