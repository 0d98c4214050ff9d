"""One suite of workflows run twice: on the in-process scheduler and through a real ``trund``.

A pipeline tested with ``local_scheduler=True`` must behave the same in
production against ``trund``. Each scenario below is run both ways with the
same configuration file (read by the test process and by ``trund``), and must
give the same outcome both ways: the ``TrunStatusCode`` of
``trun.build(..., detailed_summary=True)``, whether the build succeeded, and
which steps fell into which execution-summary category (``completed``,
``failed``, ``still_pending_ext``, ``upstream_failure``, ...).

The categories are read with ``trun.execution_summary._summary_dict``, the
partition the printed summary is made from (Luigi's own tests read it the
same way); only its non-empty categories are compared.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_steps import (
    ChainLink,
    DynamicParent,
    Failing,
    FailsOnce,
    FanIn,
    Leaf,
    MissingData,
    NeedsFailing,
    NeedsMissingData,
    overlapping_runs,
    read_runs,
    runs_by_step,
)

import trun
from trun.configuration import add_config_path
from trun.execution_summary import TrunStatusCode, _summary_dict

# Small delays so that a retry happens within the test; wait_interval also
# paces the keep-alive worker's polling. The in-process scheduler always prunes
# on get_work (as in Luigi); trund prunes every 60 s unless told to do the same,
# and a FAILED step becomes PENDING again only when pruned.
COMMON_CFG = """\
[scheduler]
retry_delay = 0.2
prune_on_get_work = true

[worker]
wait_interval = 0.05
wait_jitter = 0
"""


@dataclass(frozen=True)
class Outcome:
    """What a run of a workflow gives, in terms that do not depend on the scheduler."""

    status: TrunStatusCode
    succeeded: bool
    categories: dict[str, set[str]]  #: summary category -> step ids (non-empty categories only)


@dataclass(frozen=True)
class Scenario:
    """A workflow, how to run it, and the outcome it must have on either scheduler."""

    roots: Callable[[str], list[trun.Step]]
    expected: Callable[[str], Outcome]
    workers: int = 1
    keep_alive: bool = False  #: ``[worker] keep_alive``: wait for failed steps to be retried
    check_runs: Callable[[str], None] = field(default=lambda out_dir: None)


def ids(*steps: trun.Step) -> set[str]:
    return {s.step_id for s in steps}


def chain_outcome(d: str) -> Outcome:
    links = ids(*(ChainLink(out_dir=d, n=n) for n in range(3)))
    return Outcome(TrunStatusCode.SUCCESS, True, {"completed": links})


def failure_outcome(d: str) -> Outcome:
    return Outcome(TrunStatusCode.FAILED, False, {
        "completed": ids(Leaf(out_dir=d, n=0)),
        "ever_failed": ids(Failing(out_dir=d)),
        "failed": ids(Failing(out_dir=d)),
        "still_pending_not_ext": ids(NeedsFailing(out_dir=d)),
        "upstream_failure": ids(NeedsFailing(out_dir=d)),
    })


def missing_external_outcome(d: str) -> Outcome:
    return Outcome(TrunStatusCode.MISSING_EXT, True, {
        "still_pending_ext": ids(MissingData(out_dir=d)),
        "still_pending_not_ext": ids(NeedsMissingData(out_dir=d)),
        "upstream_missing_dependency": ids(NeedsMissingData(out_dir=d)),
    })


def dynamic_outcome(d: str) -> Outcome:
    return Outcome(TrunStatusCode.SUCCESS, True, {
        "completed": ids(DynamicParent(out_dir=d), Leaf(out_dir=d, n=100), Leaf(out_dir=d, n=101))})


def retry_outcome(d: str) -> Outcome:
    # As in Luigi, a run with a failed attempt does not count as succeeded, even once retried.
    return Outcome(TrunStatusCode.SUCCESS_WITH_RETRY, False, {
        "completed": ids(FailsOnce(out_dir=d)), "ever_failed": ids(FailsOnce(out_dir=d))})


def parallel_outcome(d: str) -> Outcome:
    steps = [FanIn(out_dir=d, width=4, sleep=0.3), *(Leaf(out_dir=d, n=i, sleep=0.3) for i in range(4))]
    return Outcome(TrunStatusCode.SUCCESS, True, {"completed": ids(*steps)})


def assert_two_leaves_ran_at_once(out_dir: str) -> None:
    # Merging the leaves' runs under one key: with --workers 2 they must overlap.
    leaf_runs = [r for step_id, rs in runs_by_step(read_runs(out_dir)).items()
                 if step_id.startswith("Leaf") for r in rs]
    assert overlapping_runs({"leaves": leaf_runs}), "--workers 2 never ran two leaves at the same time"


SCENARIOS = {
    "success_chain": Scenario(lambda d: [ChainLink(out_dir=d, n=2)], chain_outcome),
    "failure_with_dependents": Scenario(lambda d: [NeedsFailing(out_dir=d), Leaf(out_dir=d, n=0)],
                                        failure_outcome),
    "missing_external_data": Scenario(lambda d: [NeedsMissingData(out_dir=d)], missing_external_outcome),
    "dynamic_dependencies": Scenario(lambda d: [DynamicParent(out_dir=d)], dynamic_outcome),
    "retry_with_keep_alive": Scenario(lambda d: [FailsOnce(out_dir=d)], retry_outcome,
                                      keep_alive=True),
    "two_worker_processes": Scenario(lambda d: [FanIn(out_dir=d, width=4, sleep=0.3)], parallel_outcome,
                                     workers=2, check_runs=assert_two_leaves_ran_at_once),
}


def outcome_of(result: Any) -> Outcome:
    categories = {name: {s.step_id for s in steps} for name, steps in _summary_dict(result.worker).items() if steps}
    return Outcome(result.status, result.scheduling_succeeded, categories)


@pytest.fixture(params=["local_scheduler", "trund"])
def scheduler_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_workflow_has_the_same_outcome_in_process_and_through_trund(name, scheduler_kind, trund_factory,
                                                                    tmp_path):
    scenario = SCENARIOS[name]
    # The same file configures trund and this process (the worker, and the local scheduler).
    cfg = tmp_path / "trun.cfg"
    cfg.write_text(COMMON_CFG + f"keep_alive = {str(scenario.keep_alive).lower()}\n")
    add_config_path(str(cfg))
    if scheduler_kind == "trund":
        where: dict[str, Any] = {"scheduler_url": trund_factory(env={"TRUN_CONFIG_PATH": str(cfg)}).url}
    else:
        where = {"local_scheduler": True}
    out_dir = str(tmp_path / "data")
    Path(out_dir).mkdir()

    result = trun.build(scenario.roots(out_dir), detailed_summary=True, workers=scenario.workers,
                        no_progress=True, **where)

    assert outcome_of(result) == scenario.expected(out_dir)
    scenario.check_runs(out_dir)

