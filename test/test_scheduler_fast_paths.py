"""The scheduler's dedicated paths for the status changes every step goes through give the general answers.

``trun.scheduler`` updates only the indexes that a common change moves instead
of re-indexing the step from scratch (``begin``/``end``): a placeholder made
for a new dependency (``SchedulerState.new_placeholder``), the first report of
such a placeholder (``SchedulerState.scheduled``), a ready step handed
out by ``get_work`` (``SchedulerState.started``) and the DONE report of the
worker running a step (``Scheduler._finish``, ``SchedulerState.finished``).
With ``Scheduler._fast_paths = False`` everything goes the general way.

Each test makes the same calls on two schedulers, one each way, and checks
after every call that the replies and the whole durable state agree and that
both pass ``validate_state()``; it also checks that the dedicated paths ran.
The cases include the ones where the dedicated paths must step aside (a step
in a batch, a removal mark, a report that adds dependencies or a worker ...).
"""
from __future__ import annotations

import collections
import json
from typing import Any

import pytest
import test_scheduler_invariants as invariants
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule

from trun.scheduler import Scheduler, StepReport
from trun.scheduler_state import SchedulerState
from trun.step_status import DONE, FAILED, PENDING, RUNNING

W1, W2 = "w1", "w2"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def local_reports(sch: Any, worker: str, entries: list[dict[str, Any]]) -> None:
    """Apply these ``add_step`` keyword dicts as the worker in the scheduler's process sends them."""
    sch._add_local_reports(worker, [StepReport(**entry) for entry in entries])


def _same(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


class Twins:
    """Forwards each call to a scheduler with the dedicated paths and one without, and compares.

    ``add_step`` calls alternate between ``add_step`` and the worker's
    ``_add_local_reports`` (both schedulers get the same one).
    """

    def __init__(self, fast: Scheduler, slow: Scheduler) -> None:
        slow._fast_paths = False
        self.fast, self.slow = fast, slow
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        if not callable(getattr(self.fast, name)):
            return getattr(self.fast, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            local = name == "add_step" and not args and self.calls % 2 == 0
            results, errors = [], []
            for sch in (self.fast, self.slow):
                try:
                    if local:
                        entry = dict(kwargs)
                        results.append(local_reports(sch, entry.pop("worker"), [entry]))
                    else:
                        results.append(getattr(sch, name)(*args, **kwargs))
                    errors.append(None)
                except Exception as e:  # both must fail the same way
                    results.append(None)
                    errors.append(e)
            assert [type(e) for e in errors] == [type(errors[0])] * 2, (name, args, kwargs, errors)
            if name == "drain_changes":  # records of the same steps (both drained at once)
                assert set(results[0]) == set(results[1])
            else:
                assert _same(results[0], results[1]), (name, args, kwargs, results)
            assert _same(self.fast.dump_state(), self.slow.dump_state()), (name, args, kwargs)
            self.fast.validate_state()
            self.slow.validate_state()
            if errors[0] is not None:
                raise errors[0]
            return results[0]

        return call


@pytest.fixture
def uses():
    """Counts the calls of the dedicated paths of SchedulerState."""
    counts: collections.Counter[str] = collections.Counter()
    originals = {name: getattr(SchedulerState, name) for name in ("new_placeholder", "scheduled", "started", "finished")}

    def counting(name: str, fn: Any) -> Any:
        def wrapper(self: SchedulerState, *args: Any) -> Any:
            counts[name] += 1
            return fn(self, *args)
        return wrapper

    for name, fn in originals.items():
        setattr(SchedulerState, name, counting(name, fn))
    yield counts
    for name, fn in originals.items():
        setattr(SchedulerState, name, fn)


def twins(**kwargs: Any) -> Twins:
    clock = FakeClock()
    conf = dict(retry_delay=100, remove_delay=1000, worker_disconnect_delay=60, stable_done_cooldown_secs=0,
                clock=clock, resources={"db": 2}, **kwargs)
    pair = Twins(Scheduler(**conf), Scheduler(**conf))
    pair.clock = clock  # type: ignore[attr-defined]
    return pair


def report(step_id: str, status: str = PENDING, deps: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A worker's report, shaped like trun.worker's."""
    base: dict[str, Any] = {"step_id": step_id, "status": status, "family": step_id.rstrip("0123456789"),
                            "module": "mod", "params": {"name": step_id}, "param_visibilities": {"name": 0},
                            "retry_policy_dict": {"retry_count": None, "disable_hard_timeout": None,
                                                  "disable_window": None}, "owners": []}
    if status == PENDING:
        base.update(deps=deps or [], runnable=True, priority=0, resources={}, batchable=False,
                    accepts_messages=False)
    else:
        base.update(expl="null", resources={}, runnable=None, new_deps=[], assistant=False)
        if deps is not None:
            base["deps"] = deps
    base.update(extra)
    return base


def run_all(sch: Twins, worker: str = W1) -> list[str]:
    """get_work and a DONE report until nothing is left, as a one-process worker does."""
    order = []
    while True:
        reply = sch.get_work(worker=worker, host="h", current_steps=[])
        if reply["step_id"] is None:
            return order
        order.append(reply["step_id"])
        local_reports(sch, worker, [report(reply["step_id"], DONE)])
        sch.clock.t += 1


def test_fan_in_takes_the_dedicated_paths_and_agrees(uses):
    sch = twins()
    leaves = [f"Leaf{i}" for i in range(30)]
    local_reports(sch, W1, [report("Root", deps=leaves)] + [report(leaf) for leaf in leaves])
    assert run_all(sch) == leaves + ["Root"]
    assert uses["new_placeholder"] == 30 and uses["scheduled"] == 30
    assert uses["started"] == 31 and uses["finished"] == 31


@pytest.mark.parametrize("variant", ["plain", "deps", "resources", "higher_priority", "other_worker", "assistant",
                                     "not_runnable", "second_report", "disabled_worker", "staked_by_both"])
def test_edge_cases_of_the_placeholder_path(variant, uses):
    sch = twins()
    local_reports(sch, W1, [report("Root", deps=["Leaf"])])  # Leaf: a placeholder staked by W1
    leaf: dict[str, Any] = {}
    worker = W1
    if variant == "deps":
        leaf["deps"] = ["Deeper"]
    elif variant == "resources":
        leaf["resources"] = {"db": 1}
    elif variant == "higher_priority":
        leaf["priority"] = 3
    elif variant == "other_worker":
        worker = W2
    elif variant == "assistant":
        leaf["assistant"] = True
    elif variant == "not_runnable":
        leaf["runnable"] = False
    elif variant == "disabled_worker":
        sch.disable_worker(worker=W1)
    elif variant == "staked_by_both":
        local_reports(sch, W2, [report("Other", deps=["Leaf"])])  # W2 then runs it only if it reports it
    local_reports(sch, worker, [report("Leaf", **leaf)])
    if variant == "second_report":
        local_reports(sch, W1, [report("Leaf")])  # PENDING already: the general way
    # Only the plain first report, from the worker that staked it, takes the dedicated path.
    assert uses["scheduled"] == (1 if variant in ("plain", "second_report", "staked_by_both") else 0)
    run_all(sch, worker)
    run_all(sch)
    run_all(sch, W2)


def test_chain_and_layers_with_priorities_and_resources(uses):
    sch = twins()
    chain = [report(f"Link{i}", deps=[f"Link{i - 1}"] if i else [], priority=i % 3) for i in range(12)]
    layer1 = [report(f"Node{i}", deps=[c["step_id"] for c in chain[-3:]], resources={"db": 1}) for i in range(4)]
    top = report("Top", deps=[n["step_id"] for n in layer1], priority=5)
    local_reports(sch, W1, [top, *layer1[::-1], *chain[::-1]])
    sch.add_worker(worker=W1, info={"workers": 2})
    assert len(run_all(sch)) == 17
    assert uses["started"] == 17 and uses["finished"] == 17


def test_two_workers_sharing_steps_and_reporting_each_others_steps(uses):
    sch = twins()
    local_reports(sch, W1, [report("A", deps=["B", "C"]), report("B"), report("C")])
    local_reports(sch, W2, [report("A", deps=["B", "C"]), report("C"), report("D", deps=["C"])])
    first = sch.get_work(worker=W2, host="h", current_steps=[])["step_id"]
    second = sch.get_work(worker=W1, host="h", current_steps=[])["step_id"]
    local_reports(sch, W1, [report(first, DONE)])  # not the holder: the general way (and ignored)
    local_reports(sch, W2, [report(first, DONE)])
    local_reports(sch, W1, [report(second, DONE)])
    run_all(sch, W2)
    run_all(sch, W1)
    assert uses["finished"] >= 3


def test_a_step_run_by_an_assistant_gets_it_as_a_stakeholder(uses):
    sch = twins()
    local_reports(sch, W1, [report("A", deps=["B"]), report("B", DONE, runnable=False)])
    assert sch.get_work(worker=W2, host="h", assistant=True, current_steps=[])["step_id"] == "A"
    local_reports(sch, W2, [report("A", DONE)])  # the dedicated path still stakes W2 on A and B
    assert uses["finished"] == 1
    assert sch.count_pending(worker=W2)["n_pending_steps"] == 0


@pytest.mark.parametrize("variant", ["runnable", "new_deps", "deps", "failed", "assistant_step", "removal_mark",
                                     "disabled_worker", "lost_and_reoffered", "revoked", "batch"])
def test_edge_cases_of_the_dedicated_paths(variant, uses):
    sch = twins()
    status = DONE
    done_extra: dict[str, Any] = {}
    if variant == "batch":
        sch.add_step_batcher(worker=W1, step_family="Batch", batched_args=["name"], max_batch_size=3)
        local_reports(sch, W1, [report(f"Batch{i}", batchable=True) for i in range(3)])
        reply = sch.get_work(worker=W1, host="h", current_steps=[])
        sch.add_step(worker=W1, step_id="BatchRunner", family="Batch", params={"name": "x"}, status=RUNNING,
                     batch_id=reply["batch_id"])
        local_reports(sch, W1, [report("BatchRunner", DONE)])
        assert uses["finished"] == 0
        return
    if variant in ("assistant_step", "removal_mark"):  # an assistant's step has no stakeholder
        local_reports(sch, W1, [report("A", assistant=True)])
        if variant == "removal_mark":
            sch.prune()  # marks it for removal; running does not clear the mark
    else:
        local_reports(sch, W1, [report("A")])
    assert sch.get_work(worker=W1, host="h", current_steps=[])["step_id"] == "A"
    if variant == "runnable":
        done_extra["runnable"] = True
    elif variant == "new_deps":
        done_extra["new_deps"] = ["B"]
    elif variant == "deps":
        done_extra["deps"] = ["C"]
    elif variant == "failed":
        status = FAILED
    elif variant == "disabled_worker":
        sch.disable_worker(worker=W1)
    elif variant == "lost_and_reoffered":
        assert sch.get_work(worker=W1, host="h", current_steps=[])["step_id"] == "A"
    elif variant == "revoked":
        sch.clock.t += 61  # W1 times out: A fails, and W1's late DONE is ignored
        sch.prune()
    local_reports(sch, W1, [report("A", status, **done_extra)])
    # Only a plain DONE from the worker holding the step takes the dedicated path.
    assert uses["finished"] == (1 if variant in ("disabled_worker", "lost_and_reoffered") else 0)
    run_all(sch)


class FastSlowMachine(invariants.SchedulerMachine):
    """The invariants machine on twins, plus a rule that runs steps as a one-process worker does."""

    @initialize(prune_on_get_work=st.booleans())
    def start(self, prune_on_get_work: bool) -> None:
        invariants.SchedulerMachine.start.__wrapped__(self, prune_on_get_work)  # type: ignore[attr-defined]
        slow = Scheduler(clock=self.clock, resources={"r": 2}, **self.config)
        slow.add_step_batcher(worker="w2", step_family="F", batched_args=["p"], max_batch_size=3)
        self.sch = Twins(self.sch, slow)

    @rule(worker=st.sampled_from(invariants.WORKERS), status=st.sampled_from([DONE, DONE, DONE, FAILED]))
    def run_next(self, worker: str, status: str) -> None:
        held = set(self.holds(worker))
        self.get_work(worker, False, True)
        handed = [s for s in self.holds(worker) if s not in held and s not in self.batch_runners]
        if len(handed) == 1 and not any(handed[0] in members for _, members, _ in self.batch_runners.values()):
            self.sch.add_step(worker=worker, step_id=handed[0], status=status, runnable=None, expl="e")
            self.believed[handed[0]].discard(worker)


FastSlowMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_fast_and_general_paths_agree_on_random_calls = FastSlowMachine.TestCase
