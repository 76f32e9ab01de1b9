"""Marathon's own task records (test equipment: testbed/standins/marathon_tasks.py): what a
status update or a reconciliation answer does to them, as Marathon 1.4.8's TaskCondition,
Instance and UnreachableStrategy have it."""
import pytest

from testbed.standins.marathon_tasks import TaskRecords, shown_state

AGENT = {"id": "S1", "hostname": "192.0.2.51"}
APP = {"id": "/long", "unreachableStrategy": {"inactiveAfterSeconds": 300,
                                             "expungeAfterSeconds": 600}}


class Store:
    def __init__(self):
        self.data = {}

    def put(self, task_id, record):
        self.data[task_id] = dict(record)

    def delete(self, task_id):
        del self.data[task_id]


@pytest.fixture
def records():
    r = TaskRecords(Store())
    r.launched("long.1", "/long", "v1", "c1", AGENT, {"cpus": 0.1}, now=100.0)
    return r


@pytest.mark.parametrize("state, reason, message, shown", [
    ("TASK_RUNNING", None, "", "TASK_RUNNING"),
    ("TASK_LOST", "REASON_SLAVE_REMOVED", "Agent a removed: Operator initiated 'Machine DOWN'",
     "TASK_UNREACHABLE"),
    ("TASK_LOST", "REASON_SLAVE_DISCONNECTED", "", "TASK_UNREACHABLE"),
    ("TASK_LOST", "REASON_RECONCILIATION", "Reconciliation: Task is unknown to the agent",
     "TASK_UNKNOWN"),
    ("TASK_LOST", "REASON_EXECUTOR_TERMINATED", "", "TASK_GONE"),
    ("TASK_UNREACHABLE", "REASON_SLAVE_REMOVED", "", "TASK_UNREACHABLE"),
    ("TASK_DROPPED", "REASON_RECONCILIATION", "", "TASK_DROPPED"),
])
def test_what_marathon_makes_of_a_mesos_status(state, reason, message, shown):
    assert shown_state(state, reason, message) == shown


def test_a_launch_is_recorded_before_anything_is_heard(records):
    assert records.store.data["long.1"]["state"] == "TASK_STAGING"
    assert [r["id"] for r in records.of_app("/long")] == ["long.1"]


def test_running_then_ended(records):
    record, kind = records.apply("long.1", "TASK_RUNNING", 101.0)
    assert (kind, record["state"]) == ("changed", "TASK_RUNNING")
    assert records.apply("long.1", "TASK_RUNNING", 102.0) is None   # nothing new
    assert records.apply("long.1", "TASK_FAILED", 103.0)[1] == "ended"
    assert records.of_app("/long") == [] and records.store.data == {}
    assert records.apply("other.1", "TASK_RUNNING", 104.0) is None  # not ours


def test_unreachable_counts_until_inactive_after_then_is_expunged(records):
    records.apply("long.1", "TASK_RUNNING", 101.0)
    record, kind = records.apply("long.1", "TASK_LOST", 110.0, "REASON_SLAVE_REMOVED")
    assert (kind, record["state"], record["unreachable_since"]) == (
        "unreachable", "TASK_UNREACHABLE", 110.0)
    assert not records.inactive(record, APP, now=409.0)
    assert records.inactive(record, APP, now=410.0)
    assert records.expunge({"/long": APP}, now=709.0) == []
    assert [r["id"] for r in records.expunge({"/long": APP}, now=710.0)] == ["long.1"]
    assert records.of_app("/long") == []


def test_an_unreachable_task_that_comes_back_runs_again(records):
    records.apply("long.1", "TASK_UNREACHABLE", 110.0, "REASON_SLAVE_REMOVED")
    record, kind = records.reconcile({"long.1": "TASK_RUNNING"}, set(), {"S1"}, 120.0)[0]
    assert (kind, record["state"], record["unreachable_since"]) == (
        "changed", "TASK_RUNNING", None)


def test_reconciliation_answers_only_for_registered_agents(records):
    records.apply("long.1", "TASK_RUNNING", 101.0)
    # The master does not list the task and its agent has not re-registered: no answer.
    assert records.reconcile({}, set(), set(), 120.0) == []
    assert records.of_app("/long")[0]["state"] == "TASK_RUNNING"
    # Listed as completed: its status update is on its way, wait for it.
    assert records.reconcile({}, {"long.1"}, {"S1"}, 121.0) == []
    # Its agent is registered and does not have it: unknown, so ended.
    assert records.reconcile({}, set(), {"S1"}, 122.0)[0][1] == "ended"
    assert records.of_app("/long") == []


def test_a_launch_newer_than_the_masters_state_is_not_judged_by_it(records):
    assert records.reconcile({}, set(), {"S1"}, fetched_at=99.0) == []
    assert records.of_app("/long")[0]["state"] == "TASK_STAGING"


def test_records_load_back(records):
    again = TaskRecords(Store(), records.store.data.values())
    assert again.of_app("/long") == records.of_app("/long")
