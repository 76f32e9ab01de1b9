"""Marathon's own record of its tasks, the way Marathon 1.4/1.6 keeps it (test equipment).

Marathon does not take the Mesos master's word for which tasks exist: it records each task
when it launches it (in ZooKeeper, so a new leader has them), and changes the record only on a
status update or a reconciliation answer. So a master failover, an agent that has not
re-registered yet, or a new ZooKeeper URL never make it launch a copy of a task it has; and a
task whose agent is gone is not replaced at once either (TaskCondition, Instance and
UnreachableStrategy in mesosphere/marathon 1.4.8):

- TASK_UNREACHABLE, and TASK_LOST for the reasons after which a task may come back
  (REASON_SLAVE_REMOVED, as /machine/down gives, REASON_SLAVE_DISCONNECTED,
  REASON_RECONCILIATION), make the task Unreachable: shown as TASK_UNREACHABLE, still counted
  as an instance until the app's unreachableStrategy.inactiveAfterSeconds (default 300 s) have
  passed, then replaced, and forgotten after expungeAfterSeconds (600 s). If it comes back,
  the app has one task too many and the scaling kills one.
- Any other end (FINISHED, FAILED, KILLED, ERROR, DROPPED, GONE, UNKNOWN, LOST for another
  reason or "Reconciliation: Task is unknown to the ...") ends the task: it is forgotten and
  replaced as the app needs.
- Reconciliation against the master's state (what explicit reconciliation answers): a task the
  master runs takes the master's state; a task the master does not know while its agent is
  registered is unknown (terminal); while its agent is not registered there is no answer.
Pure bookkeeping: the daemon (marathon.py) fetches the updates and the state, persists through
`store` and acts on what `apply` and `reconcile` return.
"""

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_DROPPED",
            "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
MIGHT_COME_BACK = {"REASON_RECONCILIATION", "REASON_SLAVE_DISCONNECTED", "REASON_SLAVE_REMOVED"}
UNKNOWN_MESSAGE = "Reconciliation: Task is unknown to the"
FAILURES = {"TASK_FAILED", "TASK_ERROR", "TASK_DROPPED"}   # those that delay the next launch


def shown_state(state, reason=None, message=""):
    """The state Marathon shows for a Mesos status (its Condition as a Mesos state)."""
    if state == "TASK_LOST":
        if message.startswith(UNKNOWN_MESSAGE) or reason == "REASON_TASK_UNKNOWN":
            return "TASK_UNKNOWN"
        return "TASK_UNREACHABLE" if reason in MIGHT_COME_BACK else "TASK_GONE"
    return state


class TaskRecords:
    """task id -> record {"id", "app", "version", "config", "agent_id", "host", "resources",
    "state", "statuses", "unreachable_since"}; `store` persists them (put(id, record),
    delete(id))."""

    def __init__(self, store, records=()):
        self.store = store
        self.records = {r["id"]: r for r in records}

    def launched(self, task_id, app_id, version, config, agent, resources, now):
        record = {"id": task_id, "app": app_id, "version": version, "config": config,
                  "agent_id": agent["id"], "host": agent["hostname"], "resources": resources,
                  "state": "TASK_STAGING", "statuses": [], "launched_at": now,
                  "unreachable_since": None}
        self.records[task_id] = record
        self.store.put(task_id, record)
        return record

    def forget(self, task_id):
        if self.records.pop(task_id, None) is not None:
            self.store.delete(task_id)

    def apply(self, task_id, state, timestamp, reason=None, message=""):
        """A status update -> (record, "ended" | "unreachable" | "changed"), or None when the
        task is not ours or nothing changed."""
        record = self.records.get(task_id)
        if record is None:
            return None
        shown = shown_state(state, reason, message)
        if shown in TERMINAL:
            self.forget(task_id)
            return record, "ended"
        if shown == record["state"]:
            return None
        record["state"] = shown
        record["statuses"].append({"state": shown, "timestamp": timestamp})
        record["unreachable_since"] = timestamp if shown == "TASK_UNREACHABLE" else None
        self.store.put(task_id, record)
        return record, ("unreachable" if shown == "TASK_UNREACHABLE" else "changed")

    def reconcile(self, live, ended, agents, fetched_at):
        """Compare with the master's state (fetched at `fetched_at`): `live` = {task id: state}
        of the framework's tasks there, `ended` = the ids it lists as completed or unreachable
        (their status updates are on their way), `agents` = ids of its registered agents.
        Returns the outcomes of the answers, as `apply` does."""
        outcomes = []
        for task_id, record in list(self.records.items()):
            if task_id in live:
                outcome = self.apply(task_id, live[task_id], fetched_at)
            elif task_id not in ended and record["agent_id"] in agents \
                    and record["launched_at"] < fetched_at:
                outcome = self.apply(task_id, "TASK_LOST", fetched_at, "REASON_RECONCILIATION",
                                     f"{UNKNOWN_MESSAGE} agent")
            else:
                continue
            if outcome:
                outcomes.append(outcome)
        return outcomes

    def of_app(self, app_id):
        return [r for r in self.records.values() if r["app"] == app_id]

    def inactive(self, record, app, now):
        """Unreachable for longer than the app's unreachableStrategy allows: replaced."""
        since = record["unreachable_since"]
        return since is not None and now - since >= app["unreachableStrategy"][
            "inactiveAfterSeconds"]

    def expunge(self, apps, now):
        """Forget unreachable tasks past expungeAfterSeconds; returns their records."""
        gone = []
        for record in list(self.records.values()):
            app = apps.get(record["app"])
            since = record["unreachable_since"]
            if since is not None and (app is None or now - since >= app["unreachableStrategy"][
                    "expungeAfterSeconds"]):
                self.forget(record["id"])
                gone.append(record)
        return gone
