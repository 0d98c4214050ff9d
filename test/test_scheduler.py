"""Behaviour of ``trun.scheduler.Scheduler``, driven in process with a fake clock.

Every scheduler made by the fixtures checks all of its indexes
(``validate_state()``) after every call, so each test also checks that the
incremental bookkeeping stays consistent.
"""
from __future__ import annotations

import inspect
import itertools
import json
import math

import pytest

import trun
from trun.scheduler import RPC_METHODS, Scheduler, SchedulerConfig, StepReport
from trun.step_status import (
    BATCH_RUNNING,
    DISABLED,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    UNKNOWN,
    UPSTREAM_DISABLED,
    UPSTREAM_FAILED,
    UPSTREAM_MISSING_INPUT,
    UPSTREAM_RUNNING,
)

W = "myworker"


class FakeClock:
    """A settable clock for ``Scheduler(clock=...)``."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def set(self, t: float) -> None:
        self.t = t


class Checked:
    """Proxy that runs ``validate_state()`` after every method call of the scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def __getattr__(self, name):
        attr = getattr(self.scheduler, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            finally:
                self.scheduler.validate_state()

        return call


TEST_CONFIG = dict(retry_delay=100, remove_delay=1000, worker_disconnect_delay=10, disable_persist=10,
                   disable_window=10, retry_count=3, disable_hard_timeout=3600, stable_done_cooldown_secs=0)


@pytest.fixture
def clock():
    return FakeClock(0.0)


@pytest.fixture
def make_scheduler(clock):
    def make(**overrides):
        conf = dict(TEST_CONFIG)
        conf.update(overrides)
        return Checked(Scheduler(clock=clock, **conf))

    return make


@pytest.fixture
def sch(make_scheduler):
    return make_scheduler()


def work(sch, worker=W, **kwargs):
    return sch.get_work(worker=worker, **kwargs)["step_id"]


def order_of(sch, worker=W):
    """Run everything ``worker`` can get, marking each DONE; the order it got them."""
    got = []
    while True:
        step_id = work(sch, worker)
        if step_id is None:
            return got
        got.append(step_id)
        sch.add_step(worker=worker, step_id=step_id, status=DONE)


def ids(listing):
    return set(listing)


# ---------------------------------------------------------------- RPC surface
def test_rpc_methods_cover_every_luigi_endpoint_renamed_plus_trun_additions():
    expected = {
        "add_step", "add_step_batcher", "add_worker", "get_work", "count_pending", "ping",
        "announce_scheduling_failure", "prune", "graph", "dep_graph", "inverse_dep_graph", "step_list",
        "step_search", "worker_list", "resource_list", "fetch_error", "re_enable_step", "forgive_failures",
        "mark_as_done", "disable_worker", "set_worker_processes", "send_scheduler_message",
        "add_scheduler_message_response", "get_scheduler_message_response", "set_step_status_message",
        "get_step_status_message", "set_step_progress_percentage", "get_step_progress_percentage",
        "decrease_running_step_resources", "get_running_step_resources", "update_resources", "update_resource",
        "pause", "unpause", "is_paused", "is_pause_enabled", "has_step_history", "report_step_statistics",
        "update_metrics_step_started", "add_steps", "step_list_page",
    }
    assert set(RPC_METHODS) == expected


def test_rpc_signatures_exclude_self_and_match_the_methods():
    for name, signature in RPC_METHODS.items():
        assert "self" not in signature.parameters
        method_sig = inspect.signature(getattr(Scheduler(), name))
        assert list(method_sig.parameters) == list(signature.parameters), name


def test_rpc_signature_of_add_step_names_worker_and_step_id_first():
    assert list(RPC_METHODS["add_step"].parameters)[:3] == ["worker", "step_id", "status"]


def test_trun_scheduler_module_is_reachable_from_package():
    assert trun.scheduler.Scheduler is Scheduler


# ---------------------------------------------------------------- configuration
def test_kwargs_override_scheduler_defaults():
    assert Scheduler(retry_delay=5).config.retry_delay == 5
    assert Scheduler().config.remove_delay == 600.0


def test_unknown_option_names_the_option_and_suggests_the_fix():
    with pytest.raises(TypeError, match=r"'retry_dealy'.*Did you mean 'retry_delay'"):
        Scheduler(retry_dealy=5)


def test_option_of_the_wrong_type_is_rejected():
    with pytest.raises(ValueError, match=r"\[scheduler\] retry_count must be an integer"):
        Scheduler(retry_count="many")


def test_config_file_scheduler_section_is_read(tmp_path):
    from trun.configuration import add_config_path

    cfg = tmp_path / "sched.cfg"
    cfg.write_text("[scheduler]\nretry_delay = 42\nprune_on_get_work = true\n[resources]\ndb = 3\n")
    add_config_path(str(cfg))
    sch = Scheduler()
    assert sch.config.retry_delay == 42.0
    assert sch.config.prune_on_get_work is True
    assert sch.resources() == {"db": {"total": 3, "used": 0}}


def test_resources_argument_replaces_config_resources():
    assert Scheduler(resources={"x": 2}).resources() == {"x": {"total": 2, "used": 0}}


def test_config_object_is_used_instead_of_files():
    sch = Scheduler(config=SchedulerConfig(retry_delay=7), remove_delay=3)
    assert (sch.config.retry_delay, sch.config.remove_delay) == (7, 3)


# ---------------------------------------------------------------- dependencies and order
def test_dependency_runs_first(sch):
    sch.add_step(worker=W, step_id="B", deps=["A"])
    sch.add_step(worker=W, step_id="A")
    assert work(sch) == "A"
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert work(sch) == "B"
    sch.add_step(worker=W, step_id="B", status=DONE)
    assert work(sch) is None


def test_failed_dependency_blocks_until_done(sch):
    sch.add_step(worker=W, step_id="B", deps=["A"])
    sch.add_step(worker=W, step_id="A")
    assert work(sch) == "A"
    sch.add_step(worker=W, step_id="A", status=FAILED)
    assert work(sch) is None
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert work(sch) == "B"


def test_unrunnable_dependency_blocks_until_done(sch):
    sch.add_step(worker=W, step_id="B", deps=["A"])
    sch.add_step(worker=W, step_id="A", runnable=False)
    assert work(sch) is None
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert work(sch) == "B"


def test_two_workers_share_a_dependency(sch):
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="A")
    sch.add_step(worker="X", step_id="B", deps=["A"])
    sch.add_step(worker="Y", step_id="C", deps=["A"])
    assert work(sch, "X") == "A"
    assert work(sch, "Y") is None
    sch.add_step(worker="X", step_id="A", status=DONE)
    assert work(sch, "Y") == "C"
    assert work(sch, "X") == "B"


def test_new_deps_replace_old_ones(sch):
    sch.add_step(worker="X", step_id="A", runnable=False)
    sch.add_step(worker="X", step_id="B", deps=["A"])
    assert work(sch, "X") is None
    sch.add_step(worker="Y", step_id="B", deps=["C"])
    sch.add_step(worker="Y", step_id="C", status=DONE)
    assert work(sch, "Y") == "B"


def test_new_deps_from_running_worker_extend_deps_and_reschedule(sch):
    sch.add_step(worker=W, step_id="A")
    assert work(sch) == "A"
    sch.add_step(worker=W, step_id="A", status=PENDING, new_deps=["D"])
    sch.add_step(worker=W, step_id="D")
    assert work(sch) == "D"
    sch.add_step(worker=W, step_id="D", status=DONE)
    assert work(sch) == "A"


def test_unknown_dependency_gets_a_placeholder(sch):
    sch.add_step(worker=W, step_id="B", deps=["A"])
    listing = sch.step_list("", "")
    assert listing["A"]["status"] == UNKNOWN
    assert work(sch) is None


def test_steps_run_oldest_first_at_equal_priority(sch, clock):
    for i, name in enumerate("CAB"):
        clock.set(i)
        sch.add_step(worker=W, step_id=name)
    assert order_of(sch) == ["C", "A", "B"]


def test_higher_priority_runs_first(sch):
    sch.add_step(worker=W, step_id="A", priority=1)
    sch.add_step(worker=W, step_id="B", priority=5)
    sch.add_step(worker=W, step_id="C", priority=3)
    assert order_of(sch) == ["B", "C", "A"]


def test_priority_propagates_to_dependencies(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="B", priority=5)
    sch.add_step(worker=W, step_id="C", deps=["A"], priority=10)
    assert order_of(sch) == ["A", "C", "B"]


def test_priority_is_never_lowered(sch):
    sch.add_step(worker=W, step_id="A", priority=10)
    sch.add_step(worker=W, step_id="A", priority=1)
    assert sch.step_list("", "")["A"]["priority"] == 10


def test_priority_propagates_through_placeholders_added_later(sch):
    sch.add_step(worker=W, step_id="C", deps=["B"], priority=100)
    sch.add_step(worker=W, step_id="B", deps=["A"])
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="D", priority=10)
    assert order_of(sch) == ["A", "B", "C", "D"]


def test_a_dependency_of_negative_priority_is_raised_to_its_dependents_priority(sch):
    sch.add_step(worker=W, step_id="A", priority=-5)
    sch.add_step(worker=W, step_id="B", priority=-1)
    sch.add_step(worker=W, step_id="C", deps=["A"])
    assert sch.step_list("", "")["A"]["priority"] == 0
    assert order_of(sch) == ["A", "C", "B"]


def test_a_placeholder_of_negative_priority_is_raised_by_a_later_dependent(sch):
    sch.add_step(worker=W, step_id="C", deps=["A"], priority=-5)  # A: a placeholder at -5
    sch.add_step(worker=W, step_id="D", deps=["A"], priority=2)
    assert sch.step_list("", "")["A"]["priority"] == 2


def test_priorities_loaded_from_a_dump_are_still_raised(sch, make_scheduler):
    sch.add_step(worker=W, step_id="A", priority=-3)
    other = make_scheduler()
    other.load_state(json.loads(json.dumps(sch.dump_state())))
    other.add_step(worker=W, step_id="C", deps=["A"], priority=1)
    assert other.step_list("", "")["A"]["priority"] == 1


def test_priority_propagation_tolerates_dependency_cycles(sch):
    sch.add_step(worker=W, step_id="A", deps=["B"])
    sch.add_step(worker=W, step_id="B", deps=["A"], priority=3)
    assert sch.step_list("", "")["A"]["priority"] == 3
    assert work(sch) is None


# ---------------------------------------------------------------- status reports
def test_status_of_running_step_is_not_overridden_by_other_worker(sch):
    sch.add_step(worker="X", step_id="A")
    assert work(sch, "X") == "A"
    sch.add_step(worker="Y", step_id="A", status=UNKNOWN)
    assert ids(sch.step_list(RUNNING, "")) == {"A"}


@pytest.mark.parametrize("status", [DONE, FAILED, RUNNING, PENDING])
def test_report_from_other_worker_does_not_change_running_step(sch, status):
    sch.add_step(worker="X", step_id="A")
    assert work(sch, "X") == "A"
    sch.add_step(worker="Y", step_id="A", status=status)
    row = sch.step_list(RUNNING, "")["A"]
    assert row["worker_running"] == "X"


def test_running_worker_reports_done(sch):
    sch.add_step(worker="X", step_id="A")
    work(sch, "X")
    sch.add_step(worker="X", step_id="A", status=DONE)
    assert ids(sch.step_list(DONE, "")) == {"A"}


def test_done_reported_for_pending_step_is_applied(sch):
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="A", status=DONE)
    assert ids(sch.step_list(DONE, "")) == {"A"}


def test_disabled_report_for_running_step_is_ignored(sch):
    sch.add_step(worker=W, step_id="A")
    work(sch)
    sch.add_step(worker=W, step_id="A", status=DISABLED)
    assert ids(sch.step_list(RUNNING, "")) == {"A"}


def test_suspended_is_stored_as_pending(sch):
    sch.add_step(worker=W, step_id="A", status="SUSPENDED")
    assert ids(sch.step_list(PENDING, "")) == {"A"}


def test_unknown_status_is_rejected_with_the_allowed_values(sch):
    with pytest.raises(ValueError, match=r"unknown step status 'done'.*Did you mean 'DONE'"):
        sch.add_step(worker=W, step_id="A", status="done")


def test_deps_given_as_string_is_rejected_with_hint(sch):
    with pytest.raises(TypeError, match=r"deps must be a list of step ids.*did you mean \['A'\]"):
        sch.add_step(worker=W, step_id="B", deps="A")


@pytest.mark.parametrize("bad", [3, "", None, b"A"])
def test_a_dependency_that_is_not_a_step_id_is_named_and_nothing_changes(sch, bad):
    with pytest.raises(TypeError, match=rf"deps must contain step ids \(non-empty strings\), got {bad!r}"):
        sch.add_step(worker=W, step_id="B", deps=["A", bad, "C"])
    assert sch.step_list("", "") == {}


def test_new_deps_that_are_not_step_ids_are_named(sch):
    with pytest.raises(TypeError, match=r"new_deps must contain step ids .*got 7"):
        sch.add_step(worker=W, step_id="B", new_deps=[7])


def test_empty_step_id_is_rejected(sch):
    with pytest.raises(ValueError, match="step_id must be a non-empty string"):
        sch.add_step(worker=W, step_id="")


def test_negative_resource_amount_is_rejected(sch):
    with pytest.raises(ValueError, match="non-negative integer"):
        sch.add_step(worker=W, step_id="A", resources={"db": -1})


def test_unknown_retry_policy_key_is_rejected(sch):
    with pytest.raises(ValueError, match="Did you mean 'retry_count'"):
        sch.add_step(worker=W, step_id="A", retry_policy_dict={"retry_cont": 1})


def test_unknown_argument_is_a_type_error(sch):
    with pytest.raises(TypeError):
        sch.add_step(worker=W, step_id="A", step_family="A")


def test_stable_done_cooldown_ignores_pending_right_after_done(make_scheduler, clock):
    sch = make_scheduler(stable_done_cooldown_secs=10)
    sch.add_step(worker=W, step_id="A", status=DONE)
    clock.set(5)
    sch.add_step(worker="Y", step_id="A", status=PENDING)
    assert ids(sch.step_list(DONE, "")) == {"A"}
    clock.set(11)
    sch.add_step(worker="Y", step_id="A", status=PENDING)
    assert ids(sch.step_list(PENDING, "")) == {"A"}


def test_start_time_is_first_add(sch, clock):
    clock.set(100)
    sch.add_step(worker=W, step_id="A")
    clock.set(200)
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert sch.step_list(DONE, "")["A"]["start_time"] == 100


def test_last_updated_changes_only_with_status(sch, clock):
    for t, status in ((100, PENDING), (300, DONE), (500, DISABLED)):
        clock.set(t)
        sch.add_step(worker=W, step_id="A", status=status)
        clock.set(t + 50)
        sch.add_step(worker=W, step_id="A", status=status)
        assert sch.step_list(status, "")["A"]["last_updated"] == t


def test_last_updated_shows_running_start(sch, clock):
    clock.set(100)
    sch.add_step(worker=W, step_id="A")
    clock.set(200)
    assert work(sch) == "A"
    clock.set(300)
    sch.add_step(worker=W, step_id="A", status=PENDING)
    assert sch.step_list(RUNNING, "")["A"]["last_updated"] == 200


def test_disallowed_second_run_of_running_step(sch):
    sch.add_step(worker="X", step_id="A")
    assert work(sch, "X") == "A"
    sch.add_step(worker="Y", step_id="A")
    assert work(sch, "Y") is None


# ---------------------------------------------------------------- tracking urls
def test_tracking_url_survives_pending_report_while_running(sch):
    sch.add_step(worker="X", step_id="A", status=RUNNING, tracking_url="trackme")
    sch.add_step(worker="Y", step_id="A", status=PENDING)
    assert sch.step_list(RUNNING, "")["A"]["tracking_url"] == "trackme"


def test_tracking_url_updated_by_running_worker(sch):
    sch.add_step(worker="X", step_id="A", status=RUNNING, tracking_url="trackme")
    sch.add_step(worker="X", step_id="A", status=RUNNING, tracking_url="stage_2")
    assert sch.step_list(RUNNING, "")["A"]["tracking_url"] == "stage_2"


@pytest.mark.parametrize("status", [DONE, FAILED])
def test_tracking_url_kept_on_finish(sch, status):
    sch.add_step(worker="X", step_id="A", status=RUNNING, tracking_url="trackme")
    sch.add_step(worker="X", step_id="A", status=status)
    assert sch.step_list(status, "")["A"]["tracking_url"] == "trackme"


def test_tracking_url_dropped_when_rescheduled(sch):
    sch.add_step(worker="X", step_id="A", status=DONE, tracking_url="trackme")
    sch.add_step(worker="Y", step_id="A", status=PENDING)
    assert sch.step_list(PENDING, "")["A"]["tracking_url"] is None


# ---------------------------------------------------------------- retries and failures
def test_failed_step_is_retried_after_retry_delay(sch, clock):
    sch.add_step(worker=W, step_id="A")
    assert work(sch) == "A"
    sch.add_step(worker=W, step_id="A", status=FAILED)
    for t in range(100):
        clock.set(t)
        sch.ping(worker=W)
        if t % 10 == 0:
            sch.prune()
        assert work(sch) is None
    clock.set(101)
    sch.prune()
    assert work(sch) == "A"


def test_negative_retry_delay_never_retries(make_scheduler, clock):
    sch = make_scheduler(retry_delay=-1)
    sch.add_step(worker=W, step_id="A", status=FAILED)
    clock.set(5)
    sch.ping(worker=W)
    sch.prune()
    assert ids(sch.step_list(FAILED, "")) == {"A"}


def test_retry_waits_until_strictly_after_the_retry_time(sch, clock):
    sch.add_step(worker=W, step_id="A", status=FAILED)
    clock.set(100)
    sch.ping(worker=W)
    sch.prune()
    assert ids(sch.step_list(FAILED, "")) == {"A"}
    clock.set(100.5)
    sch.ping(worker=W)
    sch.prune()
    assert ids(sch.step_list(PENDING, "")) == {"A"}


def test_last_updated_after_failure_and_retry(sch, clock):
    clock.set(100)
    sch.add_step(worker=W, step_id="A")
    work(sch)
    clock.set(200)
    sch.add_step(worker=W, step_id="A", status=FAILED)
    assert sch.step_list(FAILED, "")["A"]["last_updated"] == 200
    clock.set(1000)
    sch.prune()
    assert sch.step_list(PENDING, "")["A"]["last_updated"] == 1000


def test_too_many_failures_disable_the_step(sch):
    for _ in range(3):
        sch.add_step(worker=W, step_id="A", status=FAILED)
    assert ids(sch.step_list(DISABLED, "")) == {"A"}
    assert sch.step_list(DISABLED, "")["A"]["re_enable_able"] is True


def test_failures_outside_the_window_do_not_disable(sch, clock):
    for t in (0, 11, 22):
        clock.set(t)
        sch.add_step(worker=W, step_id="A", status=FAILED)
    assert ids(sch.step_list(FAILED, "")) == {"A"}


def test_disable_hard_timeout_disables_on_late_failure(make_scheduler, clock):
    sch = make_scheduler(disable_hard_timeout=100, retry_count=99)
    sch.add_step(worker=W, step_id="A", status=FAILED)
    clock.set(101)
    sch.add_step(worker=W, step_id="A", status=FAILED)
    assert ids(sch.step_list(DISABLED, "")) == {"A"}


def test_per_step_retry_policy_overrides_scheduler_default(sch):
    policy = {"retry_count": 1}
    sch.add_step(worker=W, step_id="A", status=FAILED, retry_policy_dict=policy)
    assert ids(sch.step_list(DISABLED, "")) == {"A"}


def test_scheduler_disable_is_lifted_after_disable_persist(sch, clock):
    for _ in range(3):
        sch.add_step(worker=W, step_id="A", status=FAILED)
    clock.set(10)
    sch.ping(worker=W)
    sch.prune()
    assert ids(sch.step_list(DISABLED, "")) == {"A"}
    clock.set(10.5)
    sch.ping(worker=W)
    sch.prune()
    assert ids(sch.step_list(FAILED, "")) == {"A"}


def test_worker_cannot_override_scheduler_disable(sch):
    for _ in range(3):
        sch.add_step(worker=W, step_id="A", status=FAILED)
    sch.add_step(worker=W, step_id="A", status=PENDING)
    assert ids(sch.step_list(DISABLED, "")) == {"A"}


def test_done_clears_scheduler_disable(sch):
    for _ in range(3):
        sch.add_step(worker=W, step_id="A", status=FAILED)
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert ids(sch.step_list(DONE, "")) == {"A"}


def test_worker_disabled_step_is_never_re_enabled_automatically(sch, clock):
    sch.add_step(worker=W, step_id="A", status=DISABLED)
    clock.set(500)
    sch.ping(worker=W)
    sch.prune()
    assert sch.step_list(DISABLED, "")["A"]["re_enable_able"] is False
    assert sch.re_enable_step("A") == {}


def test_worker_disabled_step_can_be_rescheduled(sch):
    sch.add_step(worker=W, step_id="A", status=DISABLED)
    sch.add_step(worker=W, step_id="A", status=PENDING)
    assert work(sch) == "A"


def test_re_enable_step_makes_it_failed_then_retried(sch, clock):
    sch.add_step(worker=W, step_id="A")
    for _ in range(3):
        sch.add_step(worker=W, step_id="A", status=FAILED)
    serialized = sch.re_enable_step("A")
    assert serialized["status"] == FAILED
    clock.set(101)
    sch.ping(worker=W)
    sch.prune()
    assert work(sch) == "A"


def test_re_enabled_step_has_its_failures_forgotten(sch):
    for _ in range(3):
        sch.add_step(worker=W, step_id="A", status=FAILED)
    sch.re_enable_step("A")
    sch.add_step(worker=W, step_id="A", status=FAILED)
    assert ids(sch.step_list(FAILED, "")) == {"A"}


def test_forgive_failures_makes_failed_step_pending(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="A", status=FAILED)
    assert sch.forgive_failures("A") == {"step_id": "A", "status": PENDING}
    assert work(sch) == "A"


def test_forgive_failures_leaves_other_statuses(sch):
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert sch.forgive_failures("A") == {"step_id": "A", "status": DONE}
    assert sch.forgive_failures("nope") == {"step_id": "nope", "status": None}


@pytest.mark.parametrize("status", [FAILED, DISABLED])
def test_mark_as_done_finishes_failed_or_disabled_step(sch, status):
    sch.add_step(worker=W, step_id="A", status=status)
    assert sch.mark_as_done("A") == {"step_id": "A", "status": DONE}


def test_mark_as_done_of_running_step_revokes_the_lease(sch):
    sch.add_step(worker="X", step_id="A")
    work(sch, "X")
    sch.mark_as_done("A")
    sch.add_step(worker="X", step_id="A", status=FAILED)
    assert ids(sch.step_list(DONE, "")) == {"A"}


def test_mark_as_done_leaves_pending_step(sch):
    sch.add_step(worker=W, step_id="A")
    assert sch.mark_as_done("A") == {"step_id": "A", "status": PENDING}
    assert sch.mark_as_done("nope") == {"step_id": "nope", "status": None}


# ---------------------------------------------------------------- re-offer and current_steps
def test_step_is_re_offered_until_worker_claims_it(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="B")
    for _ in range(3):
        assert work(sch, current_steps=[]) == "A"
    assert work(sch, current_steps=["A"]) == "B"


def test_highest_ranked_lost_step_is_re_offered_first(sch):
    for name in "ABC":
        sch.add_step(worker=W, step_id=name)
    assert work(sch) == "A"
    assert work(sch) == "B"
    assert work(sch, current_steps=[]) == "A"
    assert work(sch, current_steps=["B"]) == "A"
    assert work(sch, current_steps=["A"]) == "B"
    assert work(sch, current_steps=["A", "B"]) == "C"


# ---------------------------------------------------------------- workers
def test_running_step_of_silent_worker_goes_to_another_worker(sch, clock):
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="A")
    assert work(sch, "X") == "A"
    for t in range(0, 200, 10):
        clock.set(t)
        sch.ping(worker="Y")
        sch.prune()
    assert work(sch, "Y") == "A"


def test_silent_worker_running_step_is_failed(sch, clock):
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="B")
    work(sch, "X")
    clock.set(11)
    sch.ping(worker="Y")
    sch.prune()
    assert ids(sch.step_list(FAILED, "")) == {"A"}


def test_worker_is_kept_while_exactly_at_the_timeout(sch, clock):
    sch.add_step(worker="X", step_id="A")
    work(sch, "X")
    clock.set(10)
    sch.prune()
    assert ids(sch.step_list(RUNNING, "")) == {"A"}


def test_late_done_from_timed_out_worker_is_ignored(sch, clock):
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="A")
    work(sch, "X")
    clock.set(11)
    sch.ping(worker="Y")
    sch.prune()
    sch.add_step(worker="X", step_id="A", status=DONE)
    assert ids(sch.step_list(FAILED, "")) == {"A"}


def test_late_failure_from_timed_out_worker_does_not_touch_new_run(sch, clock):
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="A")
    work(sch, "X")
    clock.set(200)
    sch.ping(worker="Y")
    sch.prune()
    clock.set(301)
    sch.ping(worker="Y")
    sch.prune()
    assert work(sch, "Y") == "A"
    sch.add_step(worker="X", step_id="A", status=FAILED)
    assert sch.step_list(RUNNING, "")["A"]["worker_running"] == "Y"


def test_revoked_worker_may_claim_the_step_again(sch, clock):
    sch.add_step(worker="X", step_id="A")
    work(sch, "X")
    clock.set(11)
    sch.prune()
    sch.add_step(worker="X", step_id="A", status=PENDING)
    sch.add_step(worker="X", step_id="A", status=DONE)
    assert ids(sch.step_list(DONE, "")) == {"A"}


def time_out_and_remove(sch, clock, step_id="A", worker="X"):
    """``worker`` runs ``step_id`` and goes silent; the step fails, then is removed (no stakeholders)."""
    sch.add_step(worker=worker, step_id=step_id)
    assert work(sch, worker) == step_id
    clock.set(11)
    sch.prune()
    clock.set(1012)
    sch.prune()
    assert step_id not in sch.step_list("", "")


def test_late_report_from_timed_out_worker_is_ignored_after_step_was_removed_and_added_again(sch, clock):
    time_out_and_remove(sch, clock)
    sch.add_step(worker="Y", step_id="A")
    sch.add_step(worker="X", step_id="A", status=DONE)
    assert work(sch, "Y") == "A"


def test_removed_batch_member_added_again_ignores_late_report_of_timed_out_batch_worker(make_scheduler, clock):
    # Shrunk from the Hypothesis state machine: the member turned non-batchable
    # while its batch ran, so the batch failure removed it at once.
    sch = make_scheduler(retry_delay=20, remove_delay=50, worker_disconnect_delay=30)
    sch.add_step_batcher(worker="B", step_family="F", batched_args=["p"])
    for step_id in ("s1", "s5"):
        sch.add_step(worker="B", step_id=step_id, family="F", params={"p": step_id}, batchable=True)
    assert sch.get_work(worker="B")["batch_step_ids"] == ["s1", "s5"]
    sch.add_step(worker="A", step_id="s1", family="F", params={"p": "s1"}, batchable=False)
    clock.set(31)
    sch.ping(worker="A")
    sch.prune()
    clock.set(32)
    sch.prune()
    assert "s1" not in sch.step_list("", "")
    sch.add_step(worker="A", step_id="s1", family="F", params={"p": "s1"})
    sch.add_step(worker="B", step_id="s1", status=FAILED)
    assert work(sch, "A") == "s1"


def test_revoked_leases_of_removed_step_survive_dump_and_load(sch, make_scheduler, clock):
    time_out_and_remove(sch, clock)
    other = make_scheduler()
    other.load_state(json.loads(json.dumps(sch.dump_state())))
    other.add_step(worker="Y", step_id="A")
    other.add_step(worker="X", step_id="A", status=FAILED)
    assert ids(other.step_list(PENDING, "")) == {"A"}


def test_revoked_leases_of_removed_step_survive_journal_replay(sch, make_scheduler, clock):
    snapshot = sch.dump_state()
    time_out_and_remove(sch, clock)
    replica = make_scheduler()
    replica.load_state(snapshot)
    replica.apply_changes(json.loads(json.dumps(sch.drain_changes())))
    replica.add_step(worker="Y", step_id="A")
    replica.add_step(worker="X", step_id="A", status=FAILED)
    assert ids(replica.step_list(PENDING, "")) == {"A"}


def test_timeout_after_rescheduling_does_not_lose_the_step(sch, clock):
    sch.add_step(worker="X", step_id="A")
    work(sch, "X")
    clock.set(10000)
    sch.add_step(worker="Y", step_id="A")
    for i in range(0, 2000, 100):
        clock.set(10000 + i)
        sch.ping(worker="Y")
        sch.prune()
    sch.add_step(worker="Y", step_id="A", status=DONE)
    assert ids(sch.step_list(DONE, "")) == {"A"}


def test_two_worker_info_lists_other_workers_running_step(sch):
    sch.add_worker(worker="X", info={"host": "hx"})
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="A")
    assert work(sch, "X") == "A"
    reply = sch.get_work(worker="Y")
    assert reply["step_id"] is None
    assert reply["running_steps"] == [{"step_id": "A", "worker": "X", "host": "hx"}]


def test_add_worker_accepts_pairs(sch):
    sch.add_worker(worker="X", info=[("workers", 3), ("host", "h")])
    entry = sch.worker_list()[0]
    assert (entry["workers"], entry["host"]) == (3, "h")


def test_add_worker_rejects_non_mapping_info(sch):
    with pytest.raises(TypeError, match="info must be an object"):
        sch.add_worker(worker="X", info=5)


def test_disabled_worker_gets_no_work(sch):
    sch.add_step(worker=W, step_id="A")
    sch.disable_worker(worker=W)
    reply = sch.get_work(worker=W)
    assert reply["step_id"] is None
    assert reply["worker_state"] == "disabled"


def test_disabled_worker_cannot_add_steps(sch):
    sch.disable_worker(worker=W)
    sch.add_step(worker=W, step_id="A")
    assert sch.step_list("", "") == {}


def test_disabled_worker_can_finish_its_running_step(sch):
    sch.add_step(worker=W, step_id="A")
    work(sch)
    sch.disable_worker(worker=W)
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert ids(sch.step_list(DONE, "")) == {"A"}


def test_disabled_worker_steps_go_to_other_workers(sch):
    sch.add_step(worker="X", step_id="A")
    sch.add_step(worker="Y", step_id="A")
    sch.disable_worker(worker="X")
    assert work(sch, "X") is None
    assert work(sch, "Y") == "A"


def test_set_worker_processes_reaches_worker_on_ping(sch):
    sch.add_worker(worker=W, info={})
    sch.set_worker_processes(worker=W, n=4)
    assert sch.ping(worker=W) == {"rpc_messages": [{"name": "set_worker_processes", "kwargs": {"n": 4}}]}
    assert sch.ping(worker=W) == {"rpc_messages": []}


def test_set_worker_processes_rejects_negative(sch):
    with pytest.raises(ValueError, match="non-negative integer"):
        sch.set_worker_processes(worker=W, n=-1)


def test_worker_list_describes_workers(sch, clock):
    clock.set(5)
    sch.add_worker(worker="X", info={"first_step": "A", "host": "h"})
    sch.add_step(worker="X", step_id="A", family="Fam", params={"p": "1"})
    sch.add_step(worker="X", step_id="B")
    assert work(sch, "X") == "A"
    (entry,) = sch.worker_list()
    assert entry["name"] == "X"
    assert entry["first_step_display_name"] == "Fam(p=1)"
    assert (entry["num_running"], entry["num_pending"], entry["num_uniques"]) == (1, 1, 1)
    assert set(entry["running"]) == {"A"}
    assert entry["state"] == "active"


def test_worker_list_is_newest_first(sch, clock):
    for t, name in enumerate("XYZ"):
        clock.set(t)
        sch.add_worker(worker=name, info={})
    assert [w["name"] for w in sch.worker_list(include_running=False)] == ["Z", "Y", "X"]


# ---------------------------------------------------------------- assistants
def test_assistant_runs_any_runnable_step(sch):
    sch.add_step(worker="X", step_id="A")
    sch.add_worker(worker="Y", info=[])
    assert work(sch, "Y", assistant=True) == "A"
    assert sch.step_list(RUNNING, "")["A"]["worker_running"] == "Y"


def test_assistant_takes_steps_by_priority_whether_added_before_or_after_it_first_asked(sch):
    sch.add_step(worker="X", step_id="Early", priority=1)
    sch.add_step(worker="X", step_id="Waiting", priority=4)
    assert work(sch, "Y", assistant=True) == "Waiting"
    sch.add_step(worker="X", step_id="Later", priority=5)
    sch.add_step(worker="X", step_id="After", priority=3)
    assert [work(sch, "Y", assistant=True) for _ in range(3)] == ["Later", "After", "Early"]


def test_assistant_skips_external_steps(sch):
    sch.add_step(worker="X", step_id="A", runnable=False)
    assert work(sch, "Y", assistant=True) is None


def test_step_fails_when_its_assistant_dies(sch, clock):
    sch.add_step(worker="X", step_id="A")
    assert work(sch, "Y", assistant=True) == "A"
    clock.set(50)
    sch.ping(worker="X")
    assert ids(sch.step_list(FAILED, "")) == {"A"}


def test_assistant_gets_steps_of_departed_workers(sch, clock):
    sch.add_step(worker="X", step_id="A")
    clock.set(600)
    sch.prune()
    assert work(sch, "Y", assistant=True) == "A"


def test_assistant_is_not_a_stakeholder(sch, clock):
    sch.add_step(worker="X", step_id="A")
    work(sch, "Y", assistant=True)
    sch.add_step(worker="Y", step_id="A", status=DONE, assistant=True)
    clock.set(600)
    sch.ping(worker="Y")
    sch.prune()
    clock.set(2000)
    sch.prune()
    assert sch.step_list("", "") == {}


def test_failed_step_of_assistant_is_retried_while_assistant_lives(sch, clock):
    sch.add_worker(worker="X", info={"assistant": True})
    sch.add_step(worker="X", step_id="A", status=FAILED, assistant=True)
    clock.set(101)
    sch.ping(worker="X")
    assert sch.step_list("", "")["A"]["status"] == PENDING


# ---------------------------------------------------------------- removal
def test_steps_without_stakeholders_are_removed_after_remove_delay(sch, clock):
    sch.add_step(worker=W, step_id="A", status=DONE)
    sch.add_step(worker=W, step_id="B", deps=["A"], status=DONE)
    sch.add_step(worker=W, step_id="C", deps=["B"])
    clock.set(600)
    sch.ping(worker="other")
    sch.prune()
    assert ids(sch.step_list("", "")) == {"A", "B", "C"}
    clock.set(1599)
    sch.ping(worker="other")
    sch.prune()
    assert ids(sch.step_list("", "")) == {"A", "B", "C"}
    clock.set(1600)
    sch.ping(worker="other")
    sch.prune()
    assert sch.step_list("", "") == {}


def test_re_added_step_is_not_removed(sch, clock):
    sch.add_step(worker="X", step_id="A")
    clock.set(600)
    sch.prune()
    sch.add_step(worker="Y", step_id="A")
    clock.set(1605)
    sch.ping(worker="Y")
    sch.prune()
    assert ids(sch.step_list("", "")) == {"A"}


def test_running_step_of_assistant_is_not_removed(sch, clock):
    sch.add_step(worker="X", step_id="A")
    clock.set(20)
    sch.prune()  # X gone: A has no stakeholder any more
    assert work(sch, "Y", assistant=True) == "A"
    for t in range(30, 1200, 5):
        clock.set(t)
        sch.ping(worker="Y")
        sch.prune()
    assert ids(sch.step_list(RUNNING, "")) == {"A"}


def test_removed_done_dependency_blocks_dependents_again(sch, clock):
    sch.add_step(worker="X", step_id="A", status=DONE)
    clock.set(20)
    sch.prune()
    clock.set(1100)
    sch.prune()
    sch.add_step(worker=W, step_id="B", deps=["A"])
    assert work(sch) is None
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert work(sch) == "B"


# ---------------------------------------------------------------- counting pending steps
def test_count_pending(sch):
    for n in range(1, 5):
        sch.add_step(worker=W, step_id=str(n))
        assert sch.count_pending(worker=W) == {
            "n_pending_steps": n, "n_unique_pending": n, "n_pending_last_scheduled": n,
            "running_steps": [], "worker_state": "active"}


def test_count_pending_includes_failures(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="A", status=FAILED)
    assert sch.count_pending(worker=W)["n_pending_steps"] == 1


def test_count_pending_excludes_done_and_disabled(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="B")
    sch.add_step(worker=W, step_id="A", status=DONE)
    sch.add_step(worker=W, step_id="B", status=DISABLED)
    assert sch.count_pending(worker=W)["n_pending_steps"] == 0


def test_count_pending_excludes_steps_behind_a_disabled_one(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="B", status=DISABLED)
    sch.add_step(worker=W, step_id="C", deps=["A", "B"])
    sch.add_step(worker=W, step_id="D", deps=["C"])
    assert sch.count_pending(worker=W)["n_pending_steps"] == 1
    sch.add_step(worker=W, step_id="B", status=DONE)
    assert sch.count_pending(worker=W)["n_pending_steps"] == 3


def test_count_pending_counts_steps_behind_a_failed_one(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="A", status=FAILED)
    sch.add_step(worker=W, step_id="B", deps=["A"])
    assert sch.count_pending(worker=W)["n_pending_steps"] == 2


def test_count_pending_of_unknown_worker_is_zero(sch):
    sch.add_step(worker=W, step_id="A")
    assert sch.count_pending(worker="other")["n_pending_steps"] == 0


def test_count_pending_uniques_and_last_scheduled(sch):
    for name in "ABC":
        sch.add_step(worker=W, step_id=name)
    sch.add_step(worker="other", step_id="A")
    mine = sch.count_pending(worker=W)
    assert (mine["n_pending_steps"], mine["n_unique_pending"], mine["n_pending_last_scheduled"]) == (3, 2, 2)
    other = sch.count_pending(worker="other")
    assert (other["n_pending_steps"], other["n_unique_pending"], other["n_pending_last_scheduled"]) == (1, 0, 1)


def test_count_pending_of_disabled_worker(sch):
    sch.add_step(worker=W, step_id="A")
    sch.disable_worker(worker=W)
    reply = sch.count_pending(worker=W)
    assert (reply["n_pending_steps"], reply["worker_state"]) == (0, "disabled")


def test_count_pending_lists_running_steps(sch):
    sch.add_step(worker=W, step_id="A")
    assert work(sch) == "A"
    assert sch.count_pending(worker=W) == {
        "n_pending_steps": 0, "n_unique_pending": 0, "n_pending_last_scheduled": 0,
        "running_steps": [{"step_id": "A", "worker": W}], "worker_state": "active"}


def test_get_work_counts_include_the_step_handed_out(sch):
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="B")
    reply = sch.get_work(worker=W)
    assert (reply["step_id"], reply["n_pending_steps"]) == ("A", 2)


# ---------------------------------------------------------------- resources
def test_resource_without_total_allows_one(sch):
    sch.add_step(worker="X", step_id="A", resources={"R1": 1})
    assert work(sch, "X") == "A"


def test_resource_without_total_refuses_two(sch):
    sch.add_step(worker="X", step_id="A", resources={"R1": 2})
    assert work(sch, "X") is None


def test_insufficient_resource_total(sch):
    sch.add_step(worker="X", step_id="A", resources={"R1": 3})
    sch.update_resources(R1=2)
    assert work(sch, "X") is None
    sch.update_resources(R1=3)
    assert work(sch, "X") == "A"


def test_resource_in_use_blocks_other_worker(sch):
    sch.add_step(worker="X", step_id="A", resources={"R1": 1})
    assert work(sch, "X") == "A"
    sch.add_step(worker="Y", step_id="B", resources={"R1": 1})
    sch.update_resources(R1=1)
    assert work(sch, "Y") is None


def test_other_resource_is_independent(sch):
    sch.add_step(worker="X", step_id="A", resources={"R1": 2})
    sch.update_resources(R1=2)
    assert work(sch, "X") == "A"
    sch.add_step(worker="Y", step_id="B", resources={"R2": 2})
    sch.update_resources(R1=1, R2=2)
    assert work(sch, "Y") == "B"


def test_blocked_step_keeps_its_place_while_smaller_one_runs(sch):
    sch.add_step(worker=W, step_id="A", resources={"r1": 1, "r2": 1})
    sch.add_step(worker=W, step_id="B", resources={"r1": 1, "r2": 1})
    sch.add_step(worker=W, step_id="C", resources={"r1": 1})
    sch.update_resources(r1=2, r2=1)
    assert work(sch) == "A"
    assert order_of(sch) == ["C"]


def test_higher_priority_step_of_other_worker_reserves_resource(sch):
    sch.add_step(worker="X", step_id="A")
    assert work(sch, "X") == "A"
    sch.add_step(worker="X", step_id="B", resources={"R": 1}, priority=10)
    sch.add_step(worker="Y", step_id="C", resources={"R": 1}, priority=1)
    sch.update_resources(R=1)
    assert work(sch, "Y") is None
    sch.add_step(worker="Y", step_id="D", priority=0)
    assert work(sch, "Y") == "D"


def test_resource_not_reserved_for_worker_that_never_asked_for_work(sch):
    sch.add_step(worker="X", step_id="A", priority=10)
    sch.add_step(worker="X", step_id="B", resources={"R": 1}, priority=5)
    sch.add_step(worker="Y", step_id="C", resources={"R": 1}, priority=1)
    sch.update_resources(R=1)
    sch.add_worker(worker="X", info=[("workers", 1)])
    assert work(sch, "Y") == "C"


def test_resource_reserved_when_worker_has_a_free_process(sch):
    work(sch, "X")
    sch.add_step(worker="X", step_id="A", priority=10)
    sch.add_step(worker="X", step_id="B", resources={"R": 1}, priority=5)
    sch.add_step(worker="Y", step_id="C", resources={"R": 1}, priority=1)
    sch.update_resources(R=1)
    sch.add_worker(worker="X", info=[("workers", 2)])
    assert work(sch, "Y") is None


def test_resource_not_reserved_while_worker_runs_higher_priority(sch):
    sch.add_step(worker="X", step_id="A", priority=10)
    sch.add_step(worker="X", step_id="B", resources={"R": 1}, priority=5)
    sch.add_step(worker="Y", step_id="C", resources={"R": 1}, priority=1)
    sch.update_resources(R=1)
    sch.add_worker(worker="X", info=[("workers", 1)])
    assert work(sch, "X") == "A"
    assert work(sch, "Y") == "C"


def test_resource_reserved_while_worker_runs_lower_priority(sch):
    sch.add_step(worker="X", step_id="A", priority=4)
    assert work(sch, "X") == "A"
    sch.add_step(worker="X", step_id="B", resources={"R": 1}, priority=5)
    sch.add_step(worker="Y", step_id="C", resources={"R": 1}, priority=1)
    sch.update_resources(R=1)
    sch.add_worker(worker="X", info=[("workers", 1)])
    assert work(sch, "Y") is None


def test_resource_reserved_for_second_worker(sch):
    work(sch, "Y")
    sch.add_step(worker="X", step_id="A", resources={"R": 1})
    sch.add_step(worker="X", step_id="B", resources={"R": 1})
    sch.add_step(worker="Y", step_id="C", resources={"R": 1}, priority=10)
    sch.add_worker(worker="X", info={"workers": 2})
    sch.add_worker(worker="Y", info={"workers": 1})
    sch.update_resources(R=2)
    assert work(sch, "X") == "A"
    assert work(sch, "X") is None


def test_worker_does_other_work_while_waiting_for_resources(sch):
    sch.add_step(worker="X", step_id="A", resources={"R": 1})
    assert work(sch, "X") == "A"
    sch.add_step(worker="Y", step_id="B", resources={"R": 1}, priority=10)
    sch.add_step(worker="Y", step_id="C")
    sch.update_resources(R=1)
    assert work(sch, "Y") == "C"


def test_step_waits_for_resources_of_higher_priority_step(sch):
    sch.add_step(worker="X", step_id="A", resources={"r": 1})
    assert work(sch, "X") == "A"
    sch.add_step(worker=W, step_id="B", resources={"r": 2}, priority=10)
    sch.add_step(worker=W, step_id="C", resources={"r": 1})
    sch.update_resources(r=2)
    assert order_of(sch) == []


def test_no_reservation_for_step_needing_more_than_the_total(sch):
    sch.add_step(worker=W, step_id="A", resources={"r": 2}, priority=10)
    sch.add_step(worker=W, step_id="B", resources={"r": 1})
    sch.update_resources(r=1)
    assert order_of(sch) == ["B"]


def test_multiple_resources_reserved_together(sch):
    work(sch, "X")
    sch.add_step(worker="X", step_id="A", resources={"r1": 1, "r2": 1}, priority=10)
    sch.add_step(worker=W, step_id="B", resources={"r2": 1})
    sch.add_step(worker=W, step_id="C", resources={"r1": 1})
    sch.update_resources(r1=1, r2=1)
    assert order_of(sch) == []


def test_step_not_blocked_by_unrelated_waiting_step(sch):
    sch.add_step(worker=W, step_id="A", resources={"r1": 1}, priority=10)
    sch.add_step(worker=W, step_id="B", resources={"r1": 1, "r2": 1}, priority=10)
    sch.add_step(worker=W, step_id="C", resources={"r2": 1})
    sch.update_resources(r1=1, r2=2)
    assert work(sch) == "A"
    assert order_of(sch) == ["C"]


def test_changed_resources_apply_to_next_scheduling(sch):
    sch.add_step(worker=W, step_id="A", deps=["B"])
    sch.add_step(worker=W, step_id="B", resources={"r": 2})
    sch.update_resources(r=1)
    assert order_of(sch) == []
    sch.add_step(worker=W, step_id="B", resources={"r": 1})
    assert order_of(sch) == ["B", "A"]


def test_running_step_keeps_the_resources_it_started_with(sch):
    sch.add_step(worker=W, step_id="A1", resources={"a": 1}, priority=10)
    sch.add_step(worker=W, step_id="A2", resources={"a": 1}, priority=1)
    assert work(sch) == "A1"
    assert work(sch) is None
    sch.add_step(worker="other", step_id="A1", resources={"b": 1}, priority=1)
    assert work(sch) is None


def test_interleaved_resource_changes_run_one_step_per_resource(sch):
    for i in range(20):
        sch.add_step(worker=W, step_id=f"A{i}", resources={"a": 1}, priority=100 - i)
    for i in range(20):
        work(sch)
        sch.add_step(worker="other", step_id=f"A{i}", resources={"b": 1}, priority=100 - i)
    assert len(sch.step_list(RUNNING, "")) == 2


def test_decrease_running_step_resources_frees_them(sch):
    sch.update_resources(r=2)
    sch.add_step(worker=W, step_id="A", resources={"r": 2})
    sch.add_step(worker=W, step_id="B", resources={"r": 1})
    assert work(sch) == "A"
    assert work(sch) is None
    sch.decrease_running_step_resources("A", {"r": 1})
    assert sch.get_running_step_resources("A") == {"stepId": "A", "resources": {"r": 1}}
    assert work(sch) == "B"


def test_decrease_never_goes_below_zero(sch):
    sch.update_resources(r=2)
    sch.add_step(worker=W, step_id="A", resources={"r": 2})
    work(sch)
    sch.decrease_running_step_resources("A", {"r": 5})
    assert sch.get_running_step_resources("A")["resources"] == {"r": 0}


def test_decrease_ignored_unless_running(sch):
    sch.add_step(worker=W, step_id="A", resources={"r": 1})
    sch.decrease_running_step_resources("A", {"r": 1})
    assert sch.get_running_step_resources("A")["resources"] is None
    assert sch.get_running_step_resources("nope") == {"stepId": "nope", "resources": None}


def test_update_resource_sets_one_total(sch):
    assert sch.update_resource("new", 1) is True
    assert sch.update_resource("new", 2) is True
    assert {r["name"]: r["num_total"] for r in sch.resource_list()} == {"new": 2}


@pytest.mark.parametrize("amount", [-1, 1.3, "1", None, True])
def test_update_resource_rejects_bad_amounts(sch, amount):
    sch.update_resource("new", 1)
    assert sch.update_resource("new", amount) is False
    assert {r["name"]: r["num_total"] for r in sch.resource_list()} == {"new": 1}


def test_update_resource_zero_disables_it(sch):
    sch.update_resource("r", 0)
    sch.add_step(worker=W, step_id="A", resources={"r": 1})
    assert work(sch) is None


def test_resource_list_shows_use_and_consumers(sch):
    sch.update_resources(r=3)
    sch.add_step(worker=W, step_id="A", resources={"r": 2})
    work(sch)
    (entry,) = sch.resource_list()
    assert (entry["name"], entry["num_total"], entry["num_used"], entry["num_consumer"]) == ("r", 3, 2, 1)
    assert set(entry["running"]) == {"A"}


# ---------------------------------------------------------------- batching
def batch_steps(sch, n=2, worker=W, **kwargs):
    sch.add_step_batcher(worker=worker, step_family="A", batched_args=["a"])
    for i in range(1, n + 1):
        sch.add_step(worker=worker, step_id=f"A_{i}", family="A", params={"a": str(i)}, batchable=True, **kwargs)


def test_single_ready_batch_item_runs_alone(sch):
    batch_steps(sch, n=1)
    reply = sch.get_work(worker=W)
    assert reply["step_id"] == "A_1"
    assert reply["step_params"] == {"a": "1"}


def test_ready_batch_items_run_together(sch):
    batch_steps(sch, n=3)
    reply = sch.get_work(worker=W)
    assert reply["step_id"] is None
    assert reply["step_params"] == {"a": ["1", "2", "3"]}
    assert reply["step_family"] == "A"
    assert set(reply["batch_step_ids"]) == {"A_1", "A_2", "A_3"}
    assert ids(sch.step_list(BATCH_RUNNING, "")) == {"A_1", "A_2", "A_3"}


def test_batch_members_get_time_running(sch, clock):
    clock.set(1234)
    batch_steps(sch, n=3)
    sch.get_work(worker=W)
    assert {row["time_running"] for row in sch.step_list("", "").values()} == {1234}


def test_batch_skips_items_that_are_not_ready(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a"])
    for i, deps in ((1, []), (2, ["NOT_DONE"]), (3, ["DONE"]), (4, ["DONE"]), (5, ["NOT_DONE"])):
        sch.add_step(worker=W, step_id=f"A_{i}", family="A", params={"a": str(i)}, deps=deps, batchable=True)
    sch.add_step(worker=W, step_id="NOT_DONE", runnable=False)
    sch.add_step(worker=W, step_id="DONE", status=DONE)
    assert sch.get_work(worker=W)["step_params"] == {"a": ["1", "3", "4"]}


def test_batch_size_is_limited(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a"], max_batch_size=2)
    for i, prio in ((1, 1), (2, 0), (3, 2)):
        sch.add_step(worker=W, step_id=f"A_{i}", family="A", params={"a": str(i)}, batchable=True, priority=prio)
    assert sch.get_work(worker=W)["step_params"] == {"a": ["3", "1"]}
    assert work(sch) == "A_2"


def test_non_batchable_item_runs_alone(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a"])
    sch.add_step(worker=W, step_id="A_1", family="A", params={"a": "1"}, batchable=True, priority=1)
    sch.add_step(worker=W, step_id="A_2", family="A", params={"a": "2"}, batchable=True)
    sch.add_step(worker=W, step_id="A_3", family="A", params={"a": "3"}, batchable=False, priority=2)
    assert work(sch) == "A_3"
    assert sch.get_work(worker=W)["step_params"] == {"a": ["1", "2"]}


def test_batches_group_on_unbatched_params(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["b"])
    for a, b, c in itertools.product((1, 2), repeat=3):
        sch.add_step(worker=W, step_id=f"A_{a}_{b}_{c}", family="A", params={"a": str(a), "b": str(b), "c": str(c)},
                     batchable=True, priority=9 * a + 3 * c + b)
    for a, c in (("2", "2"), ("2", "1"), ("1", "2"), ("1", "1")):
        reply = sch.get_work(worker=W)
        assert reply["step_params"] == {"a": a, "b": ["2", "1"], "c": c}


def test_batch_with_several_batched_params(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a", "b"])
    for prio, (a, b) in enumerate((("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")), start=1):
        sch.add_step(worker=W, step_id=f"A_{a}_{b}", family="A", params={"a": a, "b": b}, priority=prio,
                     batchable=True)
    assert sch.get_work(worker=W)["step_params"] == {"a": ["2", "2", "1", "1"], "b": ["2", "1", "2", "1"]}


def test_batch_members_need_equal_resources(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a"])
    for name, res, prio in (("A1", {"r1": 1}, 1), ("A2", {"r1": 2}, 0), ("A3", {"r2": 1}, 0), ("A4", {"r1": 1}, 0)):
        sch.add_step(worker=W, step_id=name, resources=res, family="A", params={"a": name}, batchable=True,
                     priority=prio)
    assert set(sch.get_work(worker=W)["batch_step_ids"]) == {"A1", "A4"}


def test_batch_of_steps_sharing_a_resource_runs_together(sch):
    batch_steps(sch, n=3, resources={"r1": 1})
    assert sch.get_work(worker=W)["step_params"] == {"a": ["1", "2", "3"]}


def test_worker_without_batcher_runs_batchable_steps_alone(sch):
    sch.add_step_batcher(worker="batcher", step_family="A", batched_args=["a"])
    for i in range(5):
        sch.add_step(worker=W, step_id=f"A_{i}", family="A", params={"a": str(i)}, priority=i, batchable=False)
        sch.add_step(worker="batcher", step_id=f"A_{i}", family="A", params={"a": str(i)}, priority=i,
                     batchable=True)
    assert work(sch) == "A_4"
    assert sch.get_work(worker="batcher")["step_params"] == {"a": ["3", "2", "1", "0"]}


def start_batch(sch, use_member=False, resources=None):
    batch_steps(sch, n=2, resources=resources)
    reply = sch.get_work(worker=W)
    step_id, params = ("A_2", {"a": "2"}) if use_member else ("A_1_2", {"a": "1,2"})
    sch.add_step(worker=W, step_id=step_id, family="A", params=params, batch_id=reply["batch_id"], status=RUNNING)
    return reply["batch_id"], step_id


def test_batch_runner_is_running_and_members_batch_running(sch):
    start_batch(sch)
    assert ids(sch.step_list(BATCH_RUNNING, "")) == {"A_1", "A_2"}
    assert ids(sch.step_list(RUNNING, "")) == {"A_1_2"}


def test_batch_member_can_be_the_runner(sch):
    start_batch(sch, use_member=True)
    assert ids(sch.step_list(BATCH_RUNNING, "")) == {"A_1"}
    assert ids(sch.step_list(RUNNING, "")) == {"A_2"}


def test_repeated_runner_claims_change_nothing(sch):
    batch_id, step_id = start_batch(sch)
    for _ in range(3):
        sch.add_step(worker=W, step_id=step_id, family="A", batch_id=batch_id, status=RUNNING)
    assert ids(sch.step_list(RUNNING, "")) == {step_id}
    assert ids(sch.step_list(BATCH_RUNNING, "")) == {"A_1", "A_2"}


@pytest.mark.parametrize("use_member", [False, True])
def test_finished_batch_finishes_its_members(sch, use_member):
    _, step_id = start_batch(sch, use_member=use_member)
    sch.add_step(worker=W, step_id=step_id, status=DONE)
    assert {"A_1", "A_2"} <= ids(sch.step_list(DONE, ""))


@pytest.mark.parametrize("use_member", [False, True])
def test_failed_batch_fails_members_with_the_error(sch, use_member):
    _, step_id = start_batch(sch, use_member=use_member)
    sch.add_step(worker=W, step_id=step_id, status=FAILED, expl="bad failure")
    assert {"A_1", "A_2"} <= ids(sch.step_list(FAILED, ""))
    for member in ("A_1", "A_2"):
        assert sch.fetch_error(member)["error"] == "bad failure"


def test_failed_batch_runner_that_is_no_real_step_is_removed(sch, clock):
    start_batch(sch)
    sch.add_step(worker=W, step_id="A_1_2", status=FAILED)
    clock.set(1)
    sch.ping(worker=W)
    sch.prune()
    assert "A_1_2" not in sch.step_list("", "")


@pytest.mark.parametrize("use_member", [False, True])
def test_batch_of_silent_worker_fails(sch, clock, use_member):
    clock.set(1)
    start_batch(sch, use_member=use_member)
    clock.set(601)
    sch.prune()
    assert {"A_1", "A_2"} <= ids(sch.step_list(FAILED, ""))


def test_unclaimed_batch_of_silent_worker_fails(sch, clock):
    clock.set(1)
    batch_steps(sch)
    sch.get_work(worker=W)
    clock.set(601)
    sch.prune()
    assert ids(sch.step_list(FAILED, "")) == {"A_1", "A_2"}


def test_batch_status_message_and_progress_reach_members(sch):
    start_batch(sch)
    sch.set_step_status_message("A_1_2", "test message")
    sch.set_step_progress_percentage("A_1_2", 30)
    for step_id in ("A_1", "A_2", "A_1_2"):
        assert sch.get_step_status_message(step_id)["statusMessage"] == "test message"
        assert sch.get_step_progress_percentage(step_id)["progressPercentage"] == 30


def test_batch_resources_decrease_for_members(sch):
    sch.update_resources(x=3)
    start_batch(sch, resources={"x": 3})
    sch.decrease_running_step_resources("A_1_2", {"x": 1})
    for step_id in ("A_1", "A_2", "A_1_2"):
        assert sch.get_running_step_resources(step_id)["resources"]["x"] == 2


def test_batch_holds_its_resources_once(sch):
    sch.update_resources(x=3)
    start_batch(sch, resources={"x": 3})
    assert sch.resources()["x"] == {"total": 3, "used": 3}


def test_batch_tracking_url_reaches_members(sch):
    start_batch(sch)
    sch.add_step(worker=W, step_id="A_1_2", tracking_url="http://test.tracking.url/")
    listing = sch.step_list("", "")
    for step_id in ("A_1", "A_2", "A_1_2"):
        assert listing[step_id]["tracking_url"] == "http://test.tracking.url/"


def test_rescheduled_member_of_finished_batch(sch):
    start_batch(sch, use_member=True)
    sch.add_step(worker=W, step_id="A_2", status=DONE)
    sch.add_step(worker=W, step_id="A_2", family="A", params={"a": "2"}, batchable=True)
    assert ids(sch.step_list(PENDING, "")) == {"A_2"}
    assert ids(sch.step_list(DONE, "")) == {"A_1"}


def test_unclaimed_batch_is_offered_again(sch):
    batch_steps(sch)
    first = sch.get_work(worker=W)
    second = sch.get_work(worker=W, current_steps=[])
    assert (first["batch_id"], first["step_params"]) == (second["batch_id"], second["step_params"])


@pytest.mark.parametrize("use_member", [False, True])
def test_lost_batch_runner_is_re_offered(sch, use_member):
    _, step_id = start_batch(sch, use_member=use_member)
    assert work(sch, current_steps=[]) == step_id


@pytest.mark.parametrize("use_member", [False, True])
def test_claimed_batch_runner_is_not_re_offered(sch, use_member):
    _, step_id = start_batch(sch, use_member=use_member)
    assert work(sch, current_steps=[step_id]) is None


@pytest.mark.parametrize("status", [PENDING, DISABLED])
def test_batch_members_stay_batch_running_when_re_added(sch, status):
    start_batch(sch)
    for i in (1, 2):
        sch.add_step(worker=W, step_id=f"A_{i}", family="A", params={"a": str(i)}, batchable=True, status=status)
    assert ids(sch.step_list(BATCH_RUNNING, "")) == {"A_1", "A_2"}


def test_downstream_of_batch_running_is_upstream_running(sch):
    batch_steps(sch)
    sch.get_work(worker=W)
    sch.add_step(worker=W, step_id="B", deps=["A_1"])
    assert ids(sch.step_list(PENDING, UPSTREAM_RUNNING)) == {"B"}


def test_assistant_batch_runner_keeps_batch_resources(sch):
    sch.add_step_batcher(worker="assistant", step_family="A", batched_args=["a"], max_batch_size=2)
    for i in (1, 2, 3):
        sch.add_step(worker=W, step_id=f"A{i}", resources={"a": 1}, family="A", params={"a": str(i)},
                     batchable=True, priority=i)
    reply = sch.get_work(worker="assistant", assistant=True)
    assert set(reply["batch_step_ids"]) == {"A3", "A2"}
    sch.add_step(worker="assistant", step_id="A3", status=RUNNING, batch_id=reply["batch_id"], resources={"b": 1})
    assert work(sch) is None


def test_batch_id_is_stable_for_the_same_members(sch):
    batch_steps(sch)
    reply = sch.get_work(worker=W)
    assert len(reply["batch_id"]) == 32


def test_infinite_max_batch_size_is_accepted_as_null(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a"], max_batch_size=None)
    for i in range(3):
        sch.add_step(worker=W, step_id=f"A_{i}", family="A", params={"a": str(i)}, batchable=True)
    assert len(sch.get_work(worker=W)["batch_step_ids"]) == 3


# ---------------------------------------------------------------- pause
def test_paused_scheduler_hands_out_nothing(sch):
    sch.add_step(worker=W, step_id="A")
    sch.pause()
    assert sch.is_paused() == {"paused": True}
    assert work(sch) is None
    sch.unpause()
    assert work(sch) == "A"


def test_pause_is_ignored_when_disabled(make_scheduler):
    sch = make_scheduler(pause_enabled=False)
    sch.pause()
    assert sch.is_pause_enabled() == {"enabled": False}
    assert sch.is_paused() == {"paused": False}


# ---------------------------------------------------------------- messages, status, progress
def test_scheduler_message_reaches_worker_and_response_is_one_shot(sch):
    sch.add_step(worker=W, step_id="A", accepts_messages=True)
    work(sch)
    message_id = sch.send_scheduler_message(worker=W, step="A", content="hello")["message_id"]
    (message,) = sch.ping(worker=W)["rpc_messages"]
    assert message == {"name": "dispatch_scheduler_message",
                       "kwargs": {"step_id": "A", "message_id": message_id, "content": "hello"}}
    sch.add_scheduler_message_response("A", message_id, "hi")
    assert sch.get_scheduler_message_response("A", message_id) == {"response": "hi"}
    assert sch.get_scheduler_message_response("A", message_id) == {"response": None}


def test_messages_disabled_by_config(make_scheduler):
    sch = make_scheduler(send_messages=False)
    assert sch.send_scheduler_message(worker=W, step="A", content="x") == {"message_id": None}


def test_accepts_messages_shown_for_running_steps(sch):
    sch.add_step(worker=W, step_id="A", accepts_messages=True)
    work(sch)
    assert sch.step_list(RUNNING, "")["A"]["accepts_messages"] is True


def test_status_message_round_trip(sch):
    sch.add_step(worker=W, step_id="A")
    sch.set_step_status_message("A", "halfway")
    assert sch.get_step_status_message("A") == {"stepId": "A", "statusMessage": "halfway"}
    assert sch.get_step_status_message("nope") == {"stepId": "nope", "statusMessage": ""}


def test_progress_round_trip(sch):
    sch.add_step(worker=W, step_id="A")
    sch.set_step_progress_percentage("A", 50)
    assert sch.get_step_progress_percentage("A") == {"stepId": "A", "progressPercentage": 50}
    assert sch.get_step_progress_percentage("nope") == {"stepId": "nope", "progressPercentage": None}


# ---------------------------------------------------------------- errors and listings
def test_fetch_error_returns_explanation_and_step_description(sch):
    sch.add_step(worker=W, step_id="A", status=FAILED, expl="boom", family="Fam", module="mod",
                 params={"x": "1"})
    assert sch.fetch_error("A") == {"stepId": "A", "error": "boom", "displayName": "Fam(x=1)",
                                    "stepParams": {"x": "1"}, "stepModule": "mod", "stepFamily": "Fam"}
    assert sch.fetch_error("nope") == {"stepId": "nope", "error": ""}


def test_step_list_filters_by_upstream_status(sch):
    sch.add_step(worker=W, step_id="A", status=FAILED)
    sch.add_step(worker=W, step_id="B", deps=["A"])
    sch.add_step(worker=W, step_id="C", status=DISABLED)
    sch.add_step(worker=W, step_id="D", deps=["C", "B"])
    sch.add_step(worker=W, step_id="E")
    sch.add_step(worker=W, step_id="F", deps=["E"])
    assert ids(sch.step_list(PENDING, UPSTREAM_FAILED)) == {"B"}
    assert ids(sch.step_list(PENDING, UPSTREAM_DISABLED)) == {"D"}
    # As in Luigi, a PENDING step without dependencies is its own missing input.
    assert ids(sch.step_list(PENDING, UPSTREAM_MISSING_INPUT)) == {"E", "F"}


def test_step_list_search_matches_every_term_case_insensitively(sch):
    sch.add_step(worker=W, step_id="a1", family="Load", params={"day": "2024-01-01"})
    sch.add_step(worker=W, step_id="a2", family="Load", params={"day": "2024-01-02"})
    sch.add_step(worker=W, step_id="b1", family="Other", params={"day": "2024-01-01"})
    assert ids(sch.step_list("", "", search="load 01-01")) == {"a1"}


def test_step_list_over_limit_returns_only_the_count(make_scheduler):
    sch = make_scheduler(max_shown_steps=3)
    for i in range(5):
        sch.add_step(worker=W, step_id=str(i))
    assert sch.step_list("", "") == {"num_steps": 5}
    assert sch.step_list(PENDING, UPSTREAM_FAILED) == {"num_steps": -1}
    assert len(sch.step_list("", "", limit=False)) == 5
    assert len(sch.step_list("", "", max_shown_steps=10)) == 5


def test_step_list_rejects_unknown_status(sch):
    with pytest.raises(ValueError, match="unknown step status"):
        sch.step_list("FINISHED", "")
    with pytest.raises(ValueError, match="unknown upstream status"):
        sch.step_list(PENDING, "UPSTREAM_BROKEN")


def test_step_list_hides_hidden_and_private_params(sch):
    sch.add_step(worker=W, step_id="A", family="F", params={"pub": "1", "hid": "2"},
                 param_visibilities={"pub": 0, "hid": 1})
    row = sch.step_list("", "")["A"]
    assert row["params"] == {"pub": "1"}
    assert row["display_name"] == "F(pub=1)"


def test_step_search_groups_by_status(sch):
    sch.add_step(worker=W, step_id="abc")
    sch.add_step(worker=W, step_id="abd", status=DONE)
    sch.add_step(worker=W, step_id="xyz")
    result = sch.step_search("ab")
    assert {status: set(rows) for status, rows in result.items()} == {PENDING: {"abc"}, DONE: {"abd"}}


def test_dep_graph_follows_dependencies(sch):
    sch.add_step(worker=W, step_id="A", family="A")
    sch.add_step(worker=W, step_id="B", family="B", deps=["A"])
    sch.add_step(worker=W, step_id="C", family="C", deps=["B"])
    graph = sch.dep_graph("C")
    assert set(graph) == {"A", "B", "C"}
    assert graph["C"]["deps"] == ["B"]
    assert "display_name" in graph["C"] and "display_name" not in graph["B"]


def test_dep_graph_hides_done_when_asked(sch):
    sch.add_step(worker=W, step_id="A", family="A", status=DONE)
    sch.add_step(worker=W, step_id="B", family="B", deps=["A"])
    assert set(sch.dep_graph("B", include_done=False)) == {"B"}


def test_dep_graph_of_unknown_step_is_empty(sch):
    assert sch.dep_graph("nope") == {}


def test_dep_graph_shows_unknown_dependency_as_placeholder(sch):
    sch.add_step(worker=W, step_id="B", family="B", deps=["Missing_x_1"])
    node = sch.dep_graph("B")["Missing_x_1"]
    assert (node["status"], node["name"], node["params"]) == (UNKNOWN, "Missing", {"step_id": "Missing_x_1"})


def test_dep_graph_is_capped_at_max_graph_nodes(make_scheduler):
    sch = make_scheduler(max_graph_nodes=3)
    for i in range(10):
        sch.add_step(worker=W, step_id=f"S{i}", family="S", deps=[f"S{i + 1}"] if i < 9 else [])
    assert len(sch.dep_graph("S0")) == 3


def test_inverse_dep_graph_follows_dependents(sch):
    sch.add_step(worker=W, step_id="A", family="A")
    sch.add_step(worker=W, step_id="B", family="B", deps=["A"])
    sch.add_step(worker=W, step_id="C", family="C", deps=["B"])
    sch.add_step(worker=W, step_id="D", family="D")
    assert set(sch.inverse_dep_graph("A")) == {"A", "B", "C"}


def test_graph_lists_every_step(sch):
    sch.add_step(worker=W, step_id="A", family="A")
    sch.add_step(worker=W, step_id="B", family="B", deps=["A"])
    assert set(sch.graph()) == {"A", "B"}


# ---------------------------------------------------------------- history and metrics
class RecordingHistory:
    def __init__(self):
        self.events = []

    def step_scheduled(self, step):
        self.events.append(("scheduled", step.id))

    def step_started(self, step, worker_host):
        self.events.append(("started", step.id, worker_host))

    def step_finished(self, step, successful):
        self.events.append(("finished", step.id, successful))


def test_step_history_hooks_are_called(clock):
    history = RecordingHistory()
    sch = Checked(Scheduler(clock=clock, step_history_impl=history, **TEST_CONFIG))
    sch.add_step(worker=W, step_id="A")
    sch.get_work(worker=W, host="h1")
    sch.add_step(worker=W, step_id="A", status=DONE)
    assert history.events == [("scheduled", "A"), ("started", "A", "h1"), ("finished", "A", True)]


def test_broken_history_does_not_break_scheduling(clock):
    class Broken:
        def step_scheduled(self, step):
            raise RuntimeError("db down")

    sch = Checked(Scheduler(clock=clock, step_history_impl=Broken(), **TEST_CONFIG))
    sch.add_step(worker=W, step_id="A")
    assert work(sch) == "A"


def test_has_step_history_reflects_config(make_scheduler):
    assert make_scheduler().has_step_history() is False


class RecordingMetrics:
    def __init__(self):
        self.events = []

    def handle_step_started(self, step):
        self.events.append(("started", step.id))

    def handle_step_failed(self, step):
        self.events.append(("failed", step.id))

    def handle_step_disabled(self, step, config):
        self.events.append(("disabled", step.id))

    def handle_step_done(self, step):
        self.events.append(("done", step.id))

    def handle_step_statistics(self, step, statistics):
        self.events.append(("statistics", step.id, statistics))


def test_metrics_hooks_follow_transitions(sch):
    metrics = RecordingMetrics()
    sch.scheduler._metrics = metrics
    policy = {"retry_count": 2}
    sch.add_step(worker=W, step_id="A", retry_policy_dict=policy)
    work(sch)
    sch.add_step(worker=W, step_id="A", status=FAILED, retry_policy_dict=policy)
    sch.add_step(worker=W, step_id="A", status=FAILED, retry_policy_dict=policy)
    sch.add_step(worker=W, step_id="B", status=DONE)
    sch.report_step_statistics("B", {"rows": 3})
    sch.update_metrics_step_started("B")
    assert metrics.events == [("started", "A"), ("failed", "A"), ("disabled", "A"), ("done", "B"),
                              ("statistics", "B", {"rows": 3}), ("started", "B")]


# ---------------------------------------------------------------- bulk add
def test_step_report_has_add_steps_arguments_in_order_with_their_defaults():
    parameters = [p for p in inspect.signature(Scheduler.add_step).parameters.values()
                  if p.name not in ("self", "worker")]
    assert list(StepReport._fields) == [p.name for p in parameters]
    assert StepReport._field_defaults == {p.name: p.default for p in parameters
                                          if p.default is not inspect.Parameter.empty}


def test_step_report_kwargs_leave_out_only_the_arguments_at_their_default():
    report = StepReport("A", status=DONE, runnable=None, priority=0, new_deps=[], expl="null")
    assert report.kwargs() == {"step_id": "A", "status": DONE, "runnable": None, "new_deps": [], "expl": "null"}


def test_local_reports_are_checked_like_add_step_arguments(sch):
    with pytest.raises(TypeError, match="priority"):
        sch._add_local_reports(W, [StepReport("A"), StepReport("B", priority="high")])
    assert sch.step_list(PENDING, "") == {}  # a bad report changes nothing


def test_add_steps_adds_each_entry(sch):
    sch.add_steps(worker=W, steps=[{"step_id": "A"}, {"step_id": "B", "deps": ["A"]}])
    assert order_of(sch) == ["A", "B"]


def test_steps_of_one_add_steps_request_are_handed_out_in_the_order_listed(sch):
    # They share one arrival time: the order they came in breaks the tie.
    sch.add_steps(worker=W, steps=[{"step_id": step_id} for step_id in ("C", "A", "D", "B")])
    assert order_of(sch) == ["C", "A", "D", "B"]


def test_a_higher_priority_step_of_a_request_goes_first_whatever_its_place(sch):
    sch.add_steps(worker=W, steps=[{"step_id": "A"}, {"step_id": "B"}, {"step_id": "C", "priority": 5}])
    assert order_of(sch) == ["C", "A", "B"]


def test_add_steps_checks_all_entries_before_applying_any(sch):
    with pytest.raises(ValueError, match="unknown step status"):
        sch.add_steps(worker=W, steps=[{"step_id": "A"}, {"step_id": "B", "status": "BOGUS"}])
    assert sch.step_list("", "") == {}


def test_add_steps_names_the_bad_entry_and_argument(sch):
    with pytest.raises(TypeError, match=r"steps\[1\].*Did you mean 'deps'"):
        sch.add_steps(worker=W, steps=[{"step_id": "A"}, {"step_id": "B", "depz": []}])


def test_add_steps_rejects_entry_of_another_worker(sch):
    with pytest.raises(ValueError, match="names worker 'X'"):
        sch.add_steps(worker=W, steps=[{"step_id": "A", "worker": "X"}])


# ---------------------------------------------------------------- prune_on_get_work
def test_prune_on_get_work_retries_without_explicit_prune(make_scheduler, clock):
    sch = make_scheduler(prune_on_get_work=True, worker_disconnect_delay=1000)
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="A", status=FAILED)
    clock.set(101)
    assert work(sch) == "A"


# ---------------------------------------------------------------- durability
def test_dump_state_is_versioned_json(sch):
    sch.add_step(worker=W, step_id="A", deps=["B"], resources={"r": 1}, params={"p": "1"})
    state = sch.dump_state()
    assert state["version"] == 1
    assert json.loads(json.dumps(state)) == state
    assert state["steps"]["A"]["deps"] == ["B"]


def test_load_state_restores_steps_and_indexes(sch, make_scheduler):
    sch.add_step(worker=W, step_id="B", deps=["A"], priority=3)
    sch.add_step(worker=W, step_id="A")
    sch.add_step(worker=W, step_id="C", status=FAILED)
    other = make_scheduler()
    other.load_state(json.loads(json.dumps(sch.dump_state())))
    assert other.dump_state()["steps"] == sch.dump_state()["steps"]
    assert order_of(other) == ["A", "B"]


def test_load_state_rejects_unknown_version(sch):
    with pytest.raises(ValueError, match="version 2"):
        sch.load_state({"version": 2, "steps": {}})


def test_load_state_rejects_malformed_record_and_keeps_state(sch):
    sch.add_step(worker=W, step_id="A")
    with pytest.raises(ValueError, match=r"step 'B' field 'priority' must be a number"):
        sch.load_state({"version": 1, "steps": {"B": {"id": "B", "status": "PENDING", "time": 0,
                                                       "priority": "high"}}})
    assert ids(sch.step_list("", "")) == {"A"}


def test_load_state_rejects_running_step_without_worker(sch):
    with pytest.raises(ValueError, match="worker_running"):
        sch.load_state({"version": 1, "steps": {"B": {"id": "B", "status": "RUNNING", "time": 0}}})


def test_running_step_of_vanished_worker_fails_after_disconnect_delay_on_load(sch, make_scheduler, clock):
    sch.add_step(worker="X", step_id="A")
    work(sch, "X")
    state = sch.dump_state()
    clock.set(500)
    other = make_scheduler()
    other.load_state(state)
    clock.set(505)
    other.prune()
    assert ids(other.step_list(RUNNING, "")) == {"A"}
    clock.set(511)
    other.prune()
    assert ids(other.step_list(FAILED, "")) == {"A"}


def test_drain_changes_returns_records_of_changed_steps_once(sch):
    sch.add_step(worker=W, step_id="A", deps=["B"])
    changes = sch.drain_changes()
    assert set(changes) == {"A", "B"}
    assert changes["A"]["deps"] == ["B"]
    assert sch.drain_changes() == {}


def test_scheduler_without_recorded_changes_refuses_to_drain_them(clock):
    sch = Checked(Scheduler(clock=clock, record_changes=False, **TEST_CONFIG))
    sch.add_step(worker=W, step_id="A", deps=["B"])
    sch.add_step(worker=W, step_id="B")
    assert work(sch) == "B"
    sch.add_step(worker=W, step_id="B", status=DONE)
    assert work(sch) == "A"
    with pytest.raises(RuntimeError, match="record_changes=True"):
        sch.drain_changes()


def test_in_process_scheduler_of_build_records_no_changes():
    from trun.interface import _WorkerSchedulerFactory

    sch = _WorkerSchedulerFactory().create_local_scheduler()
    with pytest.raises(RuntimeError, match="does not record its changes"):
        sch.drain_changes()


def test_drain_changes_reports_removed_steps_as_none(sch, clock):
    sch.add_step(worker=W, step_id="A")
    clock.set(20)
    sch.prune()
    clock.set(1100)
    sch.prune()
    changes = sch.drain_changes()
    assert changes["A"] is None


def test_snapshot_plus_replayed_changes_equal_live_state(sch, make_scheduler, clock):
    snapshot = sch.dump_state()
    journal = []
    sch.add_step(worker=W, step_id="B", deps=["A"])
    sch.add_step(worker=W, step_id="A")
    journal.append(sch.drain_changes())
    work(sch)
    sch.add_step(worker=W, step_id="A", status=FAILED, expl="x")
    journal.append(sch.drain_changes())
    clock.set(200)
    sch.prune()
    journal.append(sch.drain_changes())
    replica = make_scheduler()
    replica.load_state(snapshot)
    for changes in journal:
        replica.apply_changes(json.loads(json.dumps(changes)))
    assert replica.dump_state()["steps"] == sch.dump_state()["steps"]


def test_apply_changes_rejects_malformed_record_before_applying_any(sch):
    with pytest.raises(ValueError, match="step 'B' field 'status'"):
        sch.apply_changes({"A": {"id": "A", "status": "PENDING", "time": 0},
                           "B": {"id": "B", "status": "WAITING", "time": 0}})
    assert sch.step_list("", "") == {}


def test_batchers_survive_dump_and_load(sch, make_scheduler):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a"])
    other = make_scheduler()
    other.load_state(json.loads(json.dumps(sch.dump_state())))
    batch_steps(other)
    assert other.get_work(worker=W)["step_params"] == {"a": ["1", "2"]}


def test_infinite_batch_size_dumps_as_null(sch):
    sch.add_step_batcher(worker=W, step_family="A", batched_args=["a"], max_batch_size=math.inf)
    assert sch.dump_state()["batchers"] == {W: {"A": [["a"], None]}}


# ---------------------------------------------------------------- invariants
def test_validate_state_detects_a_corrupted_index(sch):
    sch.add_step(worker=W, step_id="A")
    sch.scheduler._state.by_status[DONE].add("A")
    with pytest.raises(AssertionError, match="status index DONE"):
        sch.scheduler.validate_state()


def test_transition_table_forbids_batch_running_except_from_pending():
    from trun.scheduler_state import TRANSITIONS

    for old, allowed in TRANSITIONS.items():
        assert (BATCH_RUNNING in allowed) == (old in (PENDING,)), old


# ---------------------------------------------------------------- scale: no full scans
class CountingDict(dict):
    """A dict that counts how often something walks over all of it."""

    scans = 0

    def __iter__(self):
        CountingDict.scans += 1
        return super().__iter__()

    def values(self):
        CountingDict.scans += 1
        return super().values()

    def items(self):
        CountingDict.scans += 1
        return super().items()


@pytest.mark.parametrize("resources", [None, {"r": 1}])
def test_get_work_and_prune_never_walk_all_steps(make_scheduler, clock, resources):
    sch = make_scheduler(prune_on_get_work=True, worker_disconnect_delay=10 ** 6).scheduler
    sch.update_resources(r=2)
    for i in range(2000):
        sch.add_step(worker=f"w{i % 4}", step_id=f"S{i}", deps=[f"S{i - 1}"] if i % 10 else [],
                     priority=i % 7, resources=resources)
    state = sch._state
    state.steps = CountingDict(state.steps)
    CountingDict.scans = 0
    handed = 0
    for k in range(200):
        clock.set(k)
        worker = f"w{k % 4}"
        step_id = sch.get_work(worker=worker)["step_id"]
        if step_id is not None:
            handed += 1
            sch.add_step(worker=worker, step_id=step_id, status=DONE)
    assert handed > 50
    assert CountingDict.scans == 0
    sch.validate_state()


def test_benchmark_script_runs_and_prints_its_table(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_scheduler.py"
    spec = importlib.util.spec_from_file_location("bench_scheduler", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--sizes", "200", "--iterations", "50"]) == 0
    out = capsys.readouterr().out
    assert "get_work mean µs" in out and out.count("\n") == 1 + len(bench.SCENARIOS)
