"""The pure parts of drain-agent and agent-up: the maintenance schedule edited as Mesos wants it
(a POST replaces the whole schedule, so every other window is kept), and what a drain waits for."""

from tasks import maintenance

A = {"hostname": "192.0.2.52", "ip": "192.0.2.52"}
B = {"hostname": "192.0.2.53", "ip": "192.0.2.53"}


def window(*machines, start=1):
    return {"machine_ids": list(machines), "unavailability": {
        "start": {"nanoseconds": start}, "duration": {"nanoseconds": 3600 * 10**9}}}


def test_a_window_is_added_and_the_others_kept():
    current = {"windows": [window(B, start=5)]}
    assert maintenance.schedule_with(current, A, 7, 3600 * 10**9) == {
        "windows": [window(B, start=5), window(A, start=7)]}
    assert maintenance.schedule_with({}, A, 7, 3600 * 10**9) == {"windows": [window(A, start=7)]}


def test_a_machine_already_scheduled_is_not_scheduled_twice():
    # Mesos refuses a machine in two windows; the hostname matches without regard to case.
    current = {"windows": [window({"hostname": "192.0.2.52".upper(), "ip": "192.0.2.52"}, B)]}
    assert maintenance.schedule_with(current, A, 7, 1) is None


def test_the_machine_leaves_its_window_and_an_empty_window_goes():
    assert maintenance.schedule_without({"windows": [window(A, B)]}, A) == {
        "windows": [window(B)]}
    assert maintenance.schedule_without({"windows": [window(A), window(B)]}, A) == {
        "windows": [window(B)]}
    assert maintenance.schedule_without({"windows": [window(B)]}, A) is None
    assert maintenance.schedule_without({}, A) is None


def test_a_drain_waits_until_each_app_runs_its_instances_elsewhere():
    def app(*hosts, instances=2):
        return {"id": "/web", "instances": instances, "tasks": [
            {"id": f"web.{i}", "host": h, "state": "TASK_RUNNING"} for i, h in enumerate(hosts)]}
    moving = {"/web": {"web.0"}}
    assert maintenance._relaunch_pending({"/web": app("192.0.2.52", "192.0.2.53")}, moving,
                                         "192.0.2.52") == ["/web: 1/2 running elsewhere"]
    assert maintenance._relaunch_pending({"/web": app("192.0.2.54", "192.0.2.53")}, moving,
                                         "192.0.2.52") == []
    assert maintenance._relaunch_pending({}, moving, "192.0.2.52") == [], "destroyed meanwhile"
