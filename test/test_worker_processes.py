"""trun.worker_processes.GcPacer, and the hot-path shortcuts of the worker and scheduler it sits with.

Covers what the performance work changed in behaviour-visible ways: the garbage
collector is left as it was found after ``add()``/``run()``; a worker talking to
a ``trund`` reports finished steps along with its next ``get_work`` (one round
trip per step); ``get_work(reports=...)`` applies reports before choosing work;
RPC form bodies survive any text; event callbacks added late are still called.
"""
from __future__ import annotations

import gc
import json
import threading

import pytest

import trun
from trun.rpc import RemoteScheduler
from trun.scheduler import Scheduler
from trun.worker import Worker
from trun.worker_processes import GcPacer


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def make_chain(prefix: str, done: set[str]):
    class Link(trun.Step):
        i = trun.IntParameter()

        def requires(self):
            return [Link(self.i - 1)] if self.i > 0 else []

        def complete(self):
            return (prefix, self.i) in done

        def run(self):
            done.add((prefix, self.i))

    Link.__name__ = f"{prefix}Link"
    return Link


# -- GcPacer ---------------------------------------------------------------------


def test_gc_pacer_freezes_inside_and_unfreezes_on_the_way_out(unfrozen):
    with GcPacer():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_gc_pacer_freezes_again_every_n_ticks(unfrozen):
    with GcPacer(every=3) as pacer:
        gc.unfreeze()  # as if nothing had been frozen yet
        pacer.tick()
        pacer.tick()
        assert gc.get_freeze_count() == 0
        pacer.tick()
        assert gc.get_freeze_count() > 0


def test_gc_pacer_nested_use_unfreezes_only_at_the_outermost_exit(unfrozen):
    pacer = GcPacer()
    with pacer:
        with pacer:
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_gc_pacer_leaves_objects_frozen_by_someone_else_frozen(unfrozen):
    gc.freeze()
    frozen_before = gc.get_freeze_count()
    with GcPacer(every=1) as pacer:
        pacer.tick()
    assert gc.get_freeze_count() == frozen_before


def test_gc_pacer_does_nothing_while_the_collector_is_disabled(unfrozen):
    gc.disable()
    try:
        with GcPacer():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_gc_pacer_after_full_collections_freezes_what_survived_one(unfrozen):
    pacer = GcPacer(after_full_collections=True)
    with pacer:
        gc.unfreeze()  # as if nothing had been frozen yet
        survivors = [[i] for i in range(1000)]
        gc.collect(1)
        assert gc.get_freeze_count() == 0  # only full collections
        gc.collect()
        assert gc.get_freeze_count() >= len(survivors)
        assert pacer._freeze_after_full_collection in gc.callbacks
    assert pacer._freeze_after_full_collection not in gc.callbacks
    assert gc.get_freeze_count() == 0


def test_gc_pacer_leaves_full_collections_alone_by_default(unfrozen):
    with GcPacer():
        gc.unfreeze()
        gc.collect()
        assert gc.get_freeze_count() == 0


def test_gc_pacer_that_does_not_own_the_freeze_adds_no_callback(unfrozen):
    gc.freeze()
    callbacks = list(gc.callbacks)
    with GcPacer(after_full_collections=True):
        assert gc.callbacks == callbacks


def test_worker_freezes_after_full_collections_while_walking_the_graph_only(unfrozen):
    seen: dict[str, int] = {}
    before = len(gc.callbacks)

    class GcWalked(trun.Step):
        def complete(self):
            seen.setdefault("walk", len(gc.callbacks))
            return False

        def run(self):
            seen["run"] = len(gc.callbacks)

    with Worker(scheduler=Scheduler(), wait_interval=0.01, wait_jitter=0) as worker:
        assert worker.add(GcWalked())
        assert worker.run()
    assert seen == {"walk": before + 1, "run": before}
    assert len(gc.callbacks) == before


def test_worker_add_and_run_leave_the_collector_unfrozen(unfrozen):
    done: set = set()
    link = make_chain("Gc", done)
    with Worker(scheduler=Scheduler(), wait_interval=0.01, wait_jitter=0) as worker:
        assert worker.add(link(5))
        assert gc.get_freeze_count() == 0
        assert worker.run()
    assert gc.get_freeze_count() == 0
    assert len(done) == 6


# -- reports travel with get_work ----------------------------------------------------


def test_get_work_applies_reports_before_choosing_work():
    sch = Scheduler()
    sch.add_step(worker="w", step_id="A", status="PENDING", runnable=True)
    sch.add_step(worker="w", step_id="B", status="PENDING", deps=["A"], runnable=True)
    assert sch.get_work(worker="w")["step_id"] == "A"
    reply = sch.get_work(worker="w", reports=[{"step_id": "A", "status": "DONE"}])
    assert reply["step_id"] == "B"


def test_get_work_with_a_bad_report_changes_nothing_and_names_the_argument():
    sch = Scheduler()
    sch.add_step(worker="w", step_id="A", status="PENDING", runnable=True)
    with pytest.raises(TypeError, match="unexpected argument 'stauts'"):
        sch.get_work(worker="w", reports=[{"step_id": "A", "stauts": "DONE"}])
    assert sch.get_work(worker="w")["step_id"] == "A"


class CountingRemoteScheduler(RemoteScheduler):
    """A real RemoteScheduler that counts the RPCs it makes, by method name."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: dict[str, int] = {}

    def _request(self, url, data, attempts=3, allow_null=True):
        name = url.rsplit("/", 1)[-1]
        self.calls[name] = self.calls.get(name, 0) + 1
        return super()._request(url, data, attempts=attempts, allow_null=allow_null)


def test_worker_with_trund_reports_each_result_with_the_next_get_work(trund):
    done: set = set()
    link = make_chain("Remote", done)
    remote = CountingRemoteScheduler(trund.url)
    with Worker(scheduler=remote, wait_interval=0.01, wait_jitter=0) as worker:
        assert worker.add(link(9))
        assert worker.run()
    assert len(done) == 10
    assert remote.calls.get("add_step", 0) == 0  # every DONE went along with a get_work
    assert remote.calls["get_work"] == 11  # one per step, and the one that found nothing left
    assert all(row["status"] == "DONE" for row in remote.step_list(status="DONE", upstream_status="").values())
    assert len(remote.step_list(status="DONE", upstream_status="")) == 10


def make_fan_in(prefix: str, leaves: int, done: set, on_walk=None):
    class Leaf(trun.Step):
        i = trun.IntParameter()

        def requires(self):  # asked by the walk as it reaches the step, before its report
            if on_walk is not None:
                on_walk(self.i)
            return []

        def complete(self):
            return (prefix, self.i) in done

        def run(self):
            done.add((prefix, self.i))

    class Root(trun.Step):
        def requires(self):
            return [Leaf(i) for i in range(leaves)]

        def complete(self):
            return (prefix, "root") in done

        def run(self):
            done.add((prefix, "root"))

    return Root


def test_worker_walks_on_while_a_full_batch_of_reports_goes_to_trund(trund):
    walked_on = threading.Event()
    batches: list[int] = []

    class SlowToTakeReports(RemoteScheduler):
        def add_steps(self, worker, steps):
            batches.append(len(steps))
            if len(batches) == 1:
                # Sent synchronously, this batch would hold the walk back for ever.
                assert walked_on.wait(10), "the walk waited for the first batch of reports"
            return super().add_steps(worker=worker, steps=steps)

    done: set = set()
    root = make_fan_in("Walk", 1200, done, on_walk=lambda i: i >= 900 and walked_on.set())
    with Worker(scheduler=SlowToTakeReports(trund.url), wait_interval=0.01, wait_jitter=0) as worker:
        assert worker.add(root())
        assert not worker._report_sender.busy  # add() returns with every report applied
        assert worker.run()
    assert len(done) == 1201
    assert sum(batches) >= 500 and batches[0] == 500


def test_a_batch_of_reports_that_fails_in_the_background_fails_add(trund):
    from trun.rpc import RPCError

    class RefusingReports(RemoteScheduler):
        def add_steps(self, worker, steps):
            raise RPCError("refused for the test")

    done: set = set()
    root = make_fan_in("Refused", 700, done)
    with Worker(scheduler=RefusingReports(trund.url), wait_interval=0.01, wait_jitter=0) as worker:
        with pytest.raises(RPCError, match="refused for the test"):
            worker.add(root())
        assert not worker._report_sender.busy
    assert not done


def test_background_sender_sends_batches_in_order_and_raises_a_failure_at_wait():
    from trun.worker_processes import BackgroundSender

    sent: list[int] = []

    def send(batch):
        if batch == "bad":
            raise ValueError("bad batch")
        sent.append(batch)

    sender = BackgroundSender(send)
    for batch in range(5):
        sender.send(batch)
    sender.wait()
    assert sent == [0, 1, 2, 3, 4] and not sender.busy
    sender.send("bad")
    with pytest.raises(ValueError, match="bad batch"):
        sender.wait()
    sender.wait()  # the failure is raised once
    assert threading.active_count() == 1 or all(t.name != "trun-report-sender" for t in threading.enumerate())


def test_form_body_keeps_every_character_of_the_arguments(trund):
    remote = RemoteScheduler(trund.url)
    tricky = "a&b=c+d%20e f#g\u00e9\u4e2d\t\"'{}"
    remote.add_step(worker="w", step_id="S", status="FAILED", expl=json.dumps(tricky))
    assert json.loads(remote.fetch_error(step_id="S")["error"]) == tricky


# -- events --------------------------------------------------------------------------


def test_event_handler_added_after_a_trigger_is_called_on_the_next_one():
    class Evented(trun.Step):
        pass

    step = Evented()
    step.trigger_event(trun.Event.SUCCESS, step)  # caches "no callbacks"
    seen = []

    @Evented.event_handler(trun.Event.SUCCESS)
    def on_success(s):
        seen.append(s)

    step.trigger_event(trun.Event.SUCCESS, step)
    Evented.remove_event_handler(trun.Event.SUCCESS, on_success)
    step.trigger_event(trun.Event.SUCCESS, step)
    assert seen == [step]
