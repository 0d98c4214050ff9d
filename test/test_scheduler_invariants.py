"""Random call sequences against ``trun.scheduler.Scheduler`` (Hypothesis stateful testing).

The machine plays two workers (one of them batching, either may act as an
assistant) that schedule steps, ask for work, finish (or fail) what they were
given, report steps they do not hold, go silent and come back, while a fake
clock jumps over retry, timeout and removal delays.
After every call it checks:

* ``validate_state()``: every index agrees with the step records;
* at most one running attempt: a step is only handed to a worker when every
  other worker that was given it has reported back or had its lease revoked,
  and a report from a worker that does not hold a running step changes nothing;
* durability: the first snapshot plus every ``drain_changes()`` batch, replayed
  into a fresh scheduler, gives the same step records as the live one.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trun.scheduler import Scheduler
from trun.step_status import BATCH_RUNNING, DISABLED, DONE, FAILED, PENDING, RUNNING, UNKNOWN

WORKERS = ["w1", "w2"]
STEPS = [f"s{i}" for i in range(6)]
RUNNING_STATUSES = (RUNNING, BATCH_RUNNING)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class SchedulerMachine(RuleBasedStateMachine):
    """Drives one scheduler; a replica is rebuilt from the journal on demand."""

    @initialize(prune_on_get_work=st.booleans())
    def start(self, prune_on_get_work: bool) -> None:
        self.clock = Clock()
        self.config = dict(retry_delay=20, remove_delay=50, worker_disconnect_delay=30, disable_persist=30,
                           disable_window=100, retry_count=3, disable_hard_timeout=400,
                           stable_done_cooldown_secs=2, prune_on_get_work=prune_on_get_work)
        self.sch = Scheduler(clock=self.clock, resources={"r": 2}, **self.config)
        self.sch.add_step_batcher(worker="w2", step_family="F", batched_args=["p"], max_batch_size=3)
        self.snapshot = json.loads(json.dumps(self.sch.dump_state()))
        self.journal: list[dict] = []
        #: step id -> workers that were handed it and have not reported back
        self.believed: dict[str, set[str]] = {}
        self.batch_runners: dict[str, tuple[str, list[str], str]] = {}  # runner id -> (worker, members, batch id)
        self.batch_count = 0

    # ------------------------------------------------------------ helpers
    def record(self, step_id: str) -> dict | None:
        return self.sch.dump_state()["steps"].get(step_id)

    def holds(self, worker: str) -> list[str]:
        return sorted(s for s, ws in self.believed.items() if worker in ws)

    def handed(self, worker: str, step_id: str, before: dict | None) -> None:
        for other in self.believed.get(step_id, set()) - {worker}:
            rec = self.record(step_id)
            assert other in rec["revoked"], (
                f"{step_id} handed to {worker} while {other} still holds it: {rec}")
        if before is not None and before["status"] in RUNNING_STATUSES:
            assert before["worker_running"] == worker, f"{step_id} was running on {before['worker_running']}"
        self.believed.setdefault(step_id, set()).add(worker)

    # ------------------------------------------------------------ rules
    # Biased towards what workers really send: mostly runnable PENDING steps with few dependencies.
    @rule(worker=st.sampled_from(WORKERS), step=st.sampled_from(STEPS),
          deps=st.one_of(st.just([]), st.lists(st.sampled_from(STEPS), max_size=2, unique=True)),
          status=st.sampled_from([PENDING] * 5 + [DONE, DISABLED, UNKNOWN]),
          priority=st.integers(0, 3), resources=st.sampled_from([None, None, None, {"r": 1}, {"r": 2}, {"r": 3}]),
          runnable=st.sampled_from([True, True, True, False]), batchable=st.booleans(),
          assistant=st.sampled_from([False, False, False, True]))
    def schedule(self, worker, step, deps, status, priority, resources, runnable, batchable, assistant):
        if worker in self.believed.get(step, ()):
            return  # a worker does not re-schedule a step it is running
        before = self.record(step)
        self.sch.add_step(worker=worker, step_id=step, deps=deps, status=status, priority=priority,
                          resources=resources, runnable=runnable, family="F", params={"p": step},
                          batchable=batchable, assistant=assistant)
        if before is not None and before["status"] in RUNNING_STATUSES and before["worker_running"] != worker:
            after = self.record(step)
            assert after["status"] == before["status"] and after["worker_running"] == before["worker_running"]

    @rule(worker=st.sampled_from(WORKERS), step=st.sampled_from(STEPS), priority=st.integers(0, 3),
          resources=st.sampled_from([None, None, {"r": 1}, {"r": 2}]),
          batchable=st.sampled_from([True, True, False]))
    def schedule_ready(self, worker, step, priority, resources, batchable):
        self.schedule(worker, step, [], PENDING, priority, resources, True, batchable, False)

    @rule(steps=st.lists(st.sampled_from(STEPS), min_size=2, max_size=3, unique=True))
    def schedule_batchable(self, steps):
        for step in steps:  # w2 has a batcher for family F
            self.schedule("w2", step, [], PENDING, 1, None, True, True, False)

    @rule(worker=st.sampled_from(WORKERS), assistant=st.sampled_from([False, False, False, True]),
          send_current=st.booleans())
    def get_work(self, worker, assistant, send_current):
        state = self.sch.dump_state()["steps"]
        current = self.holds(worker) if send_current else None
        reply = self.sch.get_work(worker=worker, assistant=assistant, current_steps=current)
        if reply["step_id"] is not None:
            self.handed(worker, reply["step_id"], state.get(reply["step_id"]))
        elif "batch_id" in reply:
            for member in reply["batch_step_ids"]:
                self.handed(worker, member, state.get(member))
            self.batch_count += 1
            runner = f"batch{self.batch_count}"
            self.sch.add_step(worker=worker, step_id=runner, family="F", params={"p": runner},
                              batch_id=reply["batch_id"], status=RUNNING)
            self.batch_runners[runner] = (worker, list(reply["batch_step_ids"]), reply["batch_id"])
            self.believed.setdefault(runner, set()).add(worker)

    @rule(data=st.data(), status=st.sampled_from([DONE, DONE, FAILED]),
          with_new_deps=st.sampled_from([False, False, False, True]))
    def finish(self, data, status, with_new_deps):
        holders = sorted((s, w) for s, ws in self.believed.items() for w in ws)
        if not holders:
            return
        step, worker = data.draw(st.sampled_from(holders))
        _, members, batch_id = self.batch_runners.get(step, (None, [], None))
        # Members still running in this batch; one that left it (failed alone, say)
        # may since have been handed to the worker on its own, and stays held.
        in_batch = [m for m in members if (self.record(m) or {}).get("batch_id") == batch_id]
        if with_new_deps:
            new_deps = data.draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=2, unique=True))
            self.sch.add_step(worker=worker, step_id=step, status=PENDING, new_deps=new_deps, runnable=None)
        else:
            self.sch.add_step(worker=worker, step_id=step, status=status, runnable=None, expl="e")
        self.believed[step].discard(worker)
        self.batch_runners.pop(step, None)
        for member in in_batch:
            self.believed.get(member, set()).discard(worker)

    @rule(worker=st.sampled_from(WORKERS), step=st.sampled_from(STEPS), status=st.sampled_from([DONE, FAILED]))
    def report_without_holding(self, worker, step, status):
        if worker in self.believed.get(step, ()):
            return
        before = self.record(step)
        self.sch.add_step(worker=worker, step_id=step, status=status)
        after = self.record(step)
        if before is not None and before["status"] in RUNNING_STATUSES:
            assert (after["status"], after["worker_running"]) == (before["status"], before["worker_running"])

    @rule(worker=st.sampled_from(WORKERS))
    def ping(self, worker):
        self.sch.ping(worker=worker)

    @rule()
    def prune(self):
        self.sch.prune()

    @rule(seconds=st.sampled_from([0.5, 1, 1, 3, 3, 11, 25, 60, 100]))
    def advance(self, seconds):
        self.clock.t += seconds

    @rule(worker=st.sampled_from(WORKERS), processes=st.integers(1, 3))
    def announce(self, worker, processes):
        self.sch.add_worker(worker=worker, info={"workers": processes})

    @rule(worker=st.sampled_from(WORKERS), size=st.sampled_from([2, 3, None]))
    def batcher(self, worker, size):
        self.sch.add_step_batcher(worker=worker, step_family="F", batched_args=["p"], max_batch_size=size)

    @rule(step=st.sampled_from(STEPS), action=st.sampled_from(["mark_as_done", "forgive_failures",
                                                                  "re_enable_step"]))
    def operator(self, step, action):
        getattr(self.sch, action)(step)

    @precondition(lambda self: self.clock.t > 0)
    @rule(worker=st.sampled_from(WORKERS))
    def disable(self, worker):
        self.sch.disable_worker(worker=worker)

    @rule(step=st.sampled_from(STEPS))
    def decrease(self, step):
        self.sch.decrease_running_step_resources(step, {"r": 1})

    @rule(worker=st.sampled_from(WORKERS))
    def pause_briefly(self, worker):
        self.sch.pause()
        reply = self.sch.get_work(worker=worker)
        assert reply["step_id"] is None and "batch_id" not in reply
        self.sch.unpause()

    @rule()
    def drain(self):
        self.journal.append(json.loads(json.dumps(self.sch.drain_changes())))

    # ------------------------------------------------------------ invariants
    @invariant()
    def indexes_agree_with_records(self):
        self.sch.validate_state()

    @invariant()
    def journal_replays_to_the_live_state(self):
        self.journal.append(json.loads(json.dumps(self.sch.drain_changes())))
        replica = Scheduler(clock=self.clock, resources={"r": 2}, **self.config)
        replica.load_state(self.snapshot)
        for changes in self.journal:
            replica.apply_changes(changes)
        replica.validate_state()
        assert replica.dump_state()["steps"] == self.sch.dump_state()["steps"]


SchedulerMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_scheduler_state_machine = SchedulerMachine.TestCase


@pytest.mark.slow
# About 90 s on an idle 2-core machine, three times that on a loaded one:
# past tox.ini's 300 s, pytest-timeout's alarm interrupts Hypothesis mid-draw,
# and the run then reports Hypothesis's own confusion (an IndexError, a
# FlakyStrategyDefinition), not the timeout.
@pytest.mark.timeout(900)
class TestSchedulerStateMachineLong(SchedulerMachine.TestCase):
    """The same machine with many more and longer runs (``pytest -m slow``)."""

    settings = settings(max_examples=400, stateful_step_count=120, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
