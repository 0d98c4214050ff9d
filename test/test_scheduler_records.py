"""Durable step records (trun.scheduler_records): the full and the compact form describe the same step."""
from __future__ import annotations

from trun.scheduler import Scheduler
from trun.scheduler_records import compact_step_record, step_from_record, step_record
from trun.step_status import DONE, FAILED, RUNNING


def _busy_scheduler() -> Scheduler:
    clock = iter(range(1000)).__next__
    sch = Scheduler(clock=lambda: float(clock()), retry_delay=5, resources={"db": 2})
    sch.add_step(worker="w1", step_id="Plain")
    sch.add_step(worker="w1", step_id="Rich", deps=["Plain", "Missing"], priority=3, resources={"db": 1},
                 family="Rich", module="mod", params={"a": "1", "b": "x"}, param_visibilities={"a": 0, "b": 1},
                 accepts_messages=True, batchable=True, tracking_url="http://t/", retry_policy_dict={"retry_count": 2})
    sch.add_step(worker="w2", step_id="Plain", status=DONE)
    sch.add_step(worker="w1", step_id="Failing")
    sch.get_work(worker="w1")
    sch.add_step(worker="w1", step_id="Failing", status=FAILED, expl='"boom"')
    sch.add_step(worker="w1", step_id="Rich", status=RUNNING)
    return sch


def test_compact_record_leaves_out_fields_at_their_default():
    sch = _busy_scheduler()
    rec = compact_step_record(sch._state.steps["Missing"])
    assert set(rec) <= {"id", "status", "time", "seq", "stakeholders", "priority"}


def _filtered_full_record(s):
    """The compact record by its definition: the full record minus the fields at a new step's values."""
    from trun.scheduler_state import StepRecord
    from trun.step_status import PENDING

    default = step_record(StepRecord("default", PENDING, 0.0, 0))
    full = step_record(s)
    if full["updated"] == full["time"]:
        del full["updated"]
    return {k: v for k, v in full.items() if k in ("id", "status", "time", "updated") or v != default.get(k)}


def test_compact_record_is_the_full_record_minus_its_default_fields():
    sch = _busy_scheduler()
    for s in sch._state.steps.values():
        assert compact_step_record(s) == _filtered_full_record(s), s.id
    # Every field away from its default at once.
    s = sch._state.steps["Rich"]
    s.retry, s.remove, s.time_running, s.lease, s.revoked = 1.0, 2.0, 3.0, 4, ("w9",)
    s.resources_running, s.retry_policy, s.failures, s.first_failure_time = {"db": 1}, {"retry_count": 1}, [5.0], 5.0
    s.status_message, s.progress_percentage, s.scheduler_message_responses = "msg", 50, {"m": "r"}
    s.scheduler_disable_time, s.batch_id, s.updated = 6.0, "b1", 7.0
    rec = compact_step_record(s)
    assert rec == _filtered_full_record(s)
    assert {"retry", "remove", "lease", "revoked", "resources_running", "retry_policy", "failures",
            "scheduler_message_responses", "batch_id", "updated"} <= rec.keys()


def test_compact_and_full_records_parse_to_the_same_step():
    sch = _busy_scheduler()
    for s in sch._state.steps.values():
        full = step_record(s)
        assert step_record(step_from_record(compact_step_record(s))) == full, s.id
        assert len(compact_step_record(s)) <= len(full)


def _drained_run_of_a_step_with_dependencies() -> tuple[Scheduler, list[dict]]:
    clock = iter(range(1000)).__next__
    sch = Scheduler(clock=lambda: float(clock()))
    batches = []
    sch.add_step(worker="w", step_id="A", deps=["B", "C"])
    sch.add_step(worker="w", step_id="B")
    sch.add_step(worker="w", step_id="C")
    batches.append(sch.drain_changes())
    for _ in range(3):
        step_id = sch.get_work(worker="w", host="h")["step_id"]
        batches.append(sch.drain_changes())
        sch.add_step(worker="w", step_id=step_id, status=DONE)
        batches.append(sch.drain_changes())
    return sch, batches


def test_a_status_change_record_does_not_repeat_unchanged_dependencies():
    _, batches = _drained_run_of_a_step_with_dependencies()
    assert batches[0]["A"]["deps"] == ["B", "C"]
    later = [batch["A"] for batch in batches[1:] if "A" in batch]
    assert [rec["status"] for rec in later] == [RUNNING, DONE]
    assert all("deps" not in rec and rec["same_deps"] is True for rec in later)


def test_records_that_keep_their_dependencies_replay_to_the_same_state():
    sch, batches = _drained_run_of_a_step_with_dependencies()
    replayed = Scheduler()
    for batch in batches:
        replayed.apply_changes(batch)
    assert replayed.dump_state()["steps"] == sch.dump_state()["steps"]
    replayed.validate_state()


def test_a_record_keeping_the_dependencies_of_an_unknown_step_is_refused():
    import pytest

    from trun.scheduler_state import StateFormatError

    replayed = Scheduler()
    with pytest.raises(StateFormatError, match="step 'A' keeps its dependencies"):
        replayed.apply_changes({"A": {"id": "A", "status": "PENDING", "time": 1.0, "same_deps": True}})
    assert replayed.dump_state()["steps"] == {}


def test_a_worker_change_with_malformed_batchers_is_refused_naming_the_worker():
    import pytest

    from trun.scheduler_state import StateFormatError

    replayed = Scheduler()
    replayed.add_worker(worker="w", info={"host": "h"})
    before = replayed.dump_state()
    with pytest.raises(StateFormatError, match="batcher 'w'/'Daily' must be"):
        replayed.apply_worker_changes({"w": {"id": "w", "info": {"host": "h2"}, "batchers": {"Daily": "date"}}})
    assert replayed.dump_state() == before  # nothing applied


def test_a_worker_that_left_is_replayed_as_gone_with_its_batchers():
    sch = Scheduler(record_changes=True)
    sch.add_step_batcher(worker="w", step_family="Daily", batched_args=["date"], max_batch_size=3)
    replayed = Scheduler()
    replayed.apply_worker_changes(sch.drain_worker_changes())
    assert replayed.dump_state()["batchers"] == {"w": {"Daily": [["date"], 3]}}
    replayed.apply_worker_changes({"w": None})
    assert replayed.dump_state()["workers"] == {} and replayed.dump_state()["batchers"] == {}


def test_rarely_set_step_fields_read_as_their_default_and_keep_a_value_once_set():
    from trun.scheduler_state import StepRecord
    from trun.step_status import PENDING

    s = StepRecord("s", PENDING, 0.0, 0)
    t = StepRecord("t", PENDING, 0.0, 1)
    assert (s.retry, s.failures, s.first_failure_time, s.scheduler_disable_time) == (None, (), None, None)
    assert not s.scheduler_message_responses and s.dl_retry is None
    s.retry, s.failures, s.status_message = 5.0, [1.0], "half way"
    assert (s.retry, s.failures, s.status_message) == (5.0, [1.0], "half way")
    assert (t.retry, t.failures, t.status_message) == (None, (), None)  # the defaults are not shared state
    assert step_from_record(step_record(s)).status_message == "half way"


def test_a_loaded_step_holds_only_the_rarely_set_fields_it_has():
    sch = _busy_scheduler()
    sch._state.steps["Rich"].status_message = "half way"
    loaded = Scheduler()
    loaded.load_state(sch.dump_state())
    plain, rich = loaded._state.steps["Missing"], loaded._state.steps["Rich"]
    assert vars(plain) == {}  # the defaults stay class attributes: no dict of its own per loaded step
    assert vars(rich) == {"status_message": "half way"}
    assert compact_step_record(plain) == compact_step_record(sch._state.steps["Missing"])
