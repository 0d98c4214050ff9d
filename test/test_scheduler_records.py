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


def test_compact_and_full_records_parse_to_the_same_step():
    sch = _busy_scheduler()
    for s in sch._state.steps.values():
        full = step_record(s)
        assert step_record(step_from_record(compact_step_record(s))) == full, s.id
        assert len(compact_step_record(s)) <= len(full)
