"""Durable records of the scheduler: the plain dicts of ``dump_state``/``drain_changes``, and their parsing.

A step record holds every durable field of a
:class:`~trun.scheduler_state.StepRecord` (status, deps, stakeholders, workers,
times, lease and revoked leases, failures, retry and disable times, batch id,
params ...); a worker record its identity, info and queued messages; a
*tombstone* ``{"id", "removed": true, "revoked"}`` the revoked leases of a
removed step (``dump_state`` keeps them under ``tombstones``, ``drain_changes``
writes one instead of ``null`` for such a step). Sets are
written as sorted lists, an infinite batch size as ``null``: everything is
JSON. Parsing checks each field and raises
:class:`~trun.scheduler_state.StateFormatError` (a ``ValueError``) naming the
step, the field and the expected form, so ``trund`` can refuse a corrupt state
with a clear message instead of starting half-loaded.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from trun.scheduler_state import (
    EMPTY_MAP,
    RUNNING_STATUSES,
    STATE_VERSION,
    SchedulerState,
    StateFormatError,
    StepRecord,
    WorkerRecord,
)
from trun.step_status import PENDING, StepStatus

__all__ = ["apply_records", "apply_worker_records", "compact_step_record", "dump_state", "iter_batchers", "load_into", "removed_step_record", "step_from_record",
           "step_record", "worker_change_record", "worker_from_record", "worker_record"]


def step_record(s: StepRecord) -> dict[str, Any]:
    """The durable, JSON-able record of a step (``dump_state`` / ``drain_changes``)."""
    return {
        "id": s.id,
        "status": s.status.value,
        "deps": sorted(s.deps),
        "stakeholders": sorted(s.stakeholders),
        "workers": list(s.workers),
        "time": s.time,
        "updated": s.updated,
        "retry": s.retry,
        "remove": s.remove,
        "worker_running": s.worker_running,
        "time_running": s.time_running,
        "lease": s.lease,
        "revoked": list(s.revoked),
        "expl": s.expl,
        "priority": s.priority,
        "resources": dict(s.resources),
        "resources_running": None if s.resources_running is None else dict(s.resources_running),
        "family": s.family,
        "module": s.module,
        "params": dict(s.params),
        "param_visibilities": dict(s.param_visibilities),
        "accepts_messages": s.accepts_messages,
        "retry_policy": None if s.retry_policy is None else dict(s.retry_policy),
        "failures": list(s.failures),
        "first_failure_time": s.first_failure_time,
        "tracking_url": s.tracking_url,
        "status_message": s.status_message,
        "progress_percentage": s.progress_percentage,
        "scheduler_message_responses": dict(s.scheduler_message_responses),
        "scheduler_disable_time": s.scheduler_disable_time,
        "runnable": s.runnable,
        "batchable": s.batchable,
        "batch_id": s.batch_id,
        "seq": s.seq,
    }


def compact_step_record(s: StepRecord, with_deps: bool = True) -> dict[str, Any]:
    """:func:`step_record` without the fields that hold their default (what the journal writes).

    :func:`step_from_record` reads a missing field as its default, so both
    forms give the same step; most fields of most steps are at their default.
    ``id``, ``status`` and ``time`` are always there, ``updated`` unless it
    equals ``time``. Written field by field rather than as a filtered
    :func:`step_record`: the journal makes about three of these per step run
    through ``trund``, and the full record would be 34 fields each time.

    Without ``with_deps`` (the dependencies did not change since the step's
    last record) a step with dependencies has ``"same_deps": true`` instead
    of its ``deps``: :func:`apply_records` takes them from the step as it is.
    A step's status changes then cost a few fields, not its fifty dependencies.
    """
    rec: dict[str, Any] = {"id": s.id, "status": s.status.value, "time": s.time}
    if s.updated != s.time:
        rec["updated"] = s.updated
    if s.deps:
        if with_deps:
            rec["deps"] = sorted(s.deps)
        else:
            rec["same_deps"] = True
    for name, write in _COLLECTIONS:
        value = getattr(s, name)
        if value:
            rec[name] = write(value)
    for name in _NONE_BY_DEFAULT:
        value = getattr(s, name)
        if value is not None:
            rec[name] = value
    for name, default in _SCALARS:
        value = getattr(s, name)
        if value != default:
            rec[name] = value
    for name in _COPIED_WHEN_SET:
        value = getattr(s, name)
        if value is not None:
            rec[name] = dict(value)
    return rec


# How compact_step_record writes each field but id, status, times and deps: each
# only when away from a new step's value (see test_scheduler_records).
_COLLECTIONS = (("stakeholders", sorted), ("workers", list), ("revoked", list), ("resources", dict),
                ("params", dict), ("param_visibilities", dict), ("failures", list),
                ("scheduler_message_responses", dict))
_NONE_BY_DEFAULT = ("retry", "remove", "worker_running", "time_running", "expl", "module", "first_failure_time",
                    "tracking_url", "status_message", "progress_percentage", "scheduler_disable_time", "batch_id")
_SCALARS = (("lease", 0), ("priority", 0), ("family", ""), ("accepts_messages", False), ("runnable", False),
            ("batchable", False), ("seq", 0))
_COPIED_WHEN_SET = ("resources_running", "retry_policy")


def removed_step_record(state: SchedulerState, step_id: str) -> dict[str, Any] | None:
    """What ``drain_changes`` reports for a removed step: its tombstone, or None when it has none."""
    revoked = state.tombstones.get(step_id)
    return None if revoked is None else {"id": step_id, "removed": True, "revoked": list(revoked)}

def worker_record(w: WorkerRecord) -> dict[str, Any]:
    """The durable, JSON-able record of a worker."""
    return {
        "id": w.id,
        "reference": None if w.reference is None else dict(w.reference),
        "last_active": w.last_active,
        "last_get_work": w.last_get_work,
        "started": w.started,
        "info": dict(w.info),
        "disabled": w.disabled,
        "rpc_messages": list(w.rpc_messages),
    }

def dump_state(state: SchedulerState) -> dict[str, Any]:
    """Snapshot of all durable data of ``state`` (what ``Scheduler.dump_state`` returns)."""
    return {
        "version": STATE_VERSION,
        "steps": {sid: step_record(s) for sid, s in state.steps.items()},
        "workers": {wid: worker_record(w) for wid, w in state.workers.items()},
        "batchers": {wid: {fam: [list(args), _finite_or_none(size)] for fam, (args, size) in fams.items()}
                     for wid, fams in state.batchers.items()},
        "tombstones": {sid: list(revoked) for sid, revoked in state.tombstones.items()},
    }


def _finite_or_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isinf(x) else x


# ---------------------------------------------------------------- record parsing
def _fail(step_id: Any, field: str, expected: str, value: Any) -> StateFormatError:
    return StateFormatError(
        f"malformed scheduler state: step {step_id!r} field {field!r} must be {expected}, "
        f"got {type(value).__name__} {value!r:.60}")


def _opt_num(rec: dict[str, Any], sid: Any, field: str) -> float | None:
    v = rec.get(field)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise _fail(sid, field, "a number or null", v)
    return v


def _str_list(rec: dict[str, Any], sid: Any, field: str) -> list[str]:
    v = rec.get(field, [])
    if not isinstance(v, (list, tuple, set, frozenset)) or not all(isinstance(x, str) for x in v):
        raise _fail(sid, field, "a list of strings", v)
    return list(v)


def _dict(rec: dict[str, Any], sid: Any, field: str, optional: bool = False) -> dict[str, Any] | None:
    v = rec.get(field, None if optional else {})
    if v is None and optional:
        return None
    if not isinstance(v, dict):
        raise _fail(sid, field, "an object" + (" or null" if optional else ""), v)
    return dict(v)


def _set_unless_default(s: StepRecord, name: str, value: Any) -> None:
    # The rarely set fields are class defaults (see StepRecord): writing the
    # default would give each loaded record a __dict__ of its own.
    if value is not getattr(StepRecord, name):
        setattr(s, name, value)


def step_from_record(rec: Any) -> StepRecord:
    """Build a detached :class:`StepRecord` from a record; raises :class:`StateFormatError` when malformed."""
    if not isinstance(rec, dict):
        raise StateFormatError(f"malformed scheduler state: a step record must be an object, got {rec!r:.60}")
    sid = rec.get("id")
    if not isinstance(sid, str) or not sid:
        raise StateFormatError(f"malformed scheduler state: step record without a string 'id': {rec!r:.80}")
    try:
        status = StepStatus(rec.get("status"))
    except ValueError:
        raise _fail(sid, "status", "one of " + ", ".join(s.value for s in StepStatus), rec.get("status")) from None
    if status is StepStatus.SUSPENDED:
        status = PENDING
    t = rec.get("time")
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise _fail(sid, "time", "a number", t)
    seq = rec.get("seq", 0)
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise _fail(sid, "seq", "an integer", seq)
    s = StepRecord(sid, status, t, seq)
    s.deps = tuple(dict.fromkeys(_str_list(rec, sid, "deps")))
    s.stakeholders = tuple(dict.fromkeys(_str_list(rec, sid, "stakeholders")))
    s.workers = tuple(dict.fromkeys(_str_list(rec, sid, "workers")))
    updated = _opt_num(rec, sid, "updated")
    s.updated = t if updated is None else updated
    _set_unless_default(s, "retry", _opt_num(rec, sid, "retry"))
    s.remove = _opt_num(rec, sid, "remove")
    wr = rec.get("worker_running")
    if wr is not None and not isinstance(wr, str):
        raise _fail(sid, "worker_running", "a string or null", wr)
    if (wr is not None) != (status in RUNNING_STATUSES):
        raise _fail(sid, "worker_running", f"set exactly when the status is running (status {status.value})", wr)
    s.worker_running = wr
    s.time_running = _opt_num(rec, sid, "time_running")
    lease = rec.get("lease", 0)
    if isinstance(lease, bool) or not isinstance(lease, int):
        raise _fail(sid, "lease", "an integer", lease)
    s.lease = lease
    s.revoked = tuple(_str_list(rec, sid, "revoked"))
    s.expl = rec.get("expl")
    prio = rec.get("priority", 0)
    if isinstance(prio, bool) or not isinstance(prio, (int, float)):
        raise _fail(sid, "priority", "a number", prio)
    s.priority = prio
    resources = _dict(rec, sid, "resources") or {}
    for amount in resources.values():
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise _fail(sid, "resources", "an object of integers", resources)
    s.resources = resources or EMPTY_MAP
    s.resources_running = _dict(rec, sid, "resources_running", optional=True)
    fam = rec.get("family", "")
    if not isinstance(fam, str):
        raise _fail(sid, "family", "a string", fam)
    s.family = fam
    mod = rec.get("module")
    if mod is not None and not isinstance(mod, str):
        raise _fail(sid, "module", "a string or null", mod)
    s.module = mod
    s.params = _dict(rec, sid, "params") or EMPTY_MAP
    s.param_visibilities = _dict(rec, sid, "param_visibilities") or EMPTY_MAP
    s.accepts_messages = bool(rec.get("accepts_messages", False))
    s.retry_policy = _dict(rec, sid, "retry_policy", optional=True)
    failures = rec.get("failures", [])
    if not isinstance(failures, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in failures):
        raise _fail(sid, "failures", "a list of numbers", failures)
    _set_unless_default(s, "failures", list(failures) or ())
    _set_unless_default(s, "first_failure_time", _opt_num(rec, sid, "first_failure_time"))
    s.tracking_url = rec.get("tracking_url")
    _set_unless_default(s, "status_message", rec.get("status_message"))
    _set_unless_default(s, "progress_percentage", rec.get("progress_percentage"))
    _set_unless_default(s, "scheduler_message_responses",
                        _dict(rec, sid, "scheduler_message_responses") or EMPTY_MAP)
    _set_unless_default(s, "scheduler_disable_time", _opt_num(rec, sid, "scheduler_disable_time"))
    s.runnable = bool(rec.get("runnable", False))
    s.batchable = bool(rec.get("batchable", False))
    bid = rec.get("batch_id")
    if bid is not None and (not isinstance(bid, str) or status not in RUNNING_STATUSES):
        raise _fail(sid, "batch_id", "a string set only while the step is running, or null", bid)
    s.batch_id = bid
    return s


def worker_from_record(rec: Any, now: float) -> WorkerRecord:
    """Build a :class:`WorkerRecord`; it counts as just seen (``now``) so it gets a full timeout."""
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
        raise StateFormatError(f"malformed scheduler state: a worker record needs a string 'id': {rec!r:.80}")
    wid = rec["id"]
    w = WorkerRecord(wid, now)
    info = rec.get("info", {})
    if not isinstance(info, dict):
        raise StateFormatError(f"malformed scheduler state: worker {wid!r} field 'info' must be an object")
    w.info = dict(info)
    ref = rec.get("reference")
    w.reference = dict(ref) if isinstance(ref, dict) else None
    started = rec.get("started")
    w.started = started if isinstance(started, (int, float)) and not isinstance(started, bool) else now
    lgw = rec.get("last_get_work")
    # The scheduler was down, not the worker: give every worker a fresh timeout.
    w.last_active = now
    w.last_get_work = now if lgw is not None else None
    w.disabled = bool(rec.get("disabled", False))
    msgs = rec.get("rpc_messages", [])
    w.rpc_messages = list(msgs) if isinstance(msgs, list) else []
    return w


def iter_batchers(raw: Any) -> Iterator[tuple[str, str, list[str], float]]:
    """Yield ``(worker, family, batched_args, max_batch_size)`` from a dumped ``batchers`` object."""
    if not isinstance(raw, dict):
        raise StateFormatError("malformed scheduler state: 'batchers' must be an object")
    for wid, fams in raw.items():
        if not isinstance(fams, dict):
            raise StateFormatError(f"malformed scheduler state: batchers of worker {wid!r} must be an object")
        for fam, value in fams.items():
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], list)):
                raise StateFormatError(
                    f"malformed scheduler state: batcher {wid!r}/{fam!r} must be [batched_args, max_batch_size]")
            size = math.inf if value[1] is None else value[1]
            yield wid, fam, list(value[0]), size


def worker_change_record(state: SchedulerState, worker_id: str) -> dict[str, Any] | None:
    """What the journal keeps of a changed worker: its record and its batchers, or None once it left."""
    w = state.workers.get(worker_id)
    if w is None:
        return None
    rec = worker_record(w)
    rec["batchers"] = {fam: [list(args), _finite_or_none(size)]
                       for fam, (args, size) in state.batchers.get(worker_id, {}).items()}
    return rec


def apply_worker_records(state: SchedulerState, changes: Any, now: float) -> None:
    """Apply ``{worker_id: worker_change_record or None}`` (journal replay); all are checked first.

    A known worker keeps its indexes (the steps it may run, holds a stake in,
    runs): only its durable fields change. One that left is forgotten unless
    a step still names it.
    """
    if not isinstance(changes, Mapping):
        raise StateFormatError(f"worker changes must be an object, got {type(changes).__name__}")
    parsed: dict[str, tuple[WorkerRecord, list[tuple[str, list[str], float]]] | None] = {}
    for wid, rec in changes.items():
        if rec is None:
            parsed[wid] = None
            continue
        w = worker_from_record(rec, now)
        if w.id != wid:
            raise StateFormatError(f"malformed scheduler changes: worker record {wid!r} has id {w.id!r}")
        batchers = [(fam, args, size) for _, fam, args, size in iter_batchers({wid: rec.get("batchers", {})})]
        parsed[wid] = (w, batchers)
    for wid, change in parsed.items():
        known = state.workers.get(wid)
        if change is None:
            if known is not None and not (known.steps or known.stakes or known.running or known.running_member):
                del state.workers[wid]
            state.batchers.pop(wid, None)
            continue
        w, batchers = change
        if known is None:
            state.workers[wid] = w
            state.push_worker_deadline(w)
        else:
            known.info, known.reference, known.started = w.info, w.reference, w.started
            known.disabled, known.rpc_messages = w.disabled, w.rpc_messages
            if w.last_get_work is not None:
                known.last_get_work = w.last_get_work
        state.batchers[wid] = {fam: (args, size) for fam, args, size in batchers}
        if not state.batchers[wid]:
            del state.batchers[wid]
    state.workers_changed.clear()


def _parse_steps(records: Mapping[str, Any]) -> list[StepRecord]:
    parsed = []
    for step_id, rec in records.items():
        if rec is None or _is_tombstone(rec):
            continue
        s = step_from_record(rec)
        if s.id != step_id:
            raise StateFormatError(f"malformed scheduler state: record under {step_id!r} has id {s.id!r}")
        parsed.append(s)
    return parsed


def _is_tombstone(rec: Any) -> bool:
    return isinstance(rec, dict) and rec.get("removed") is True


def _parse_tombstones(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping):
        raise StateFormatError("malformed scheduler state: 'tombstones' must be an object")
    return {sid: _str_list({"revoked": revoked}, sid, "revoked") for sid, revoked in raw.items()}


def load_into(state: SchedulerState, dumped: Any, now: float) -> None:
    """Fill an empty ``state`` from a :func:`dump_state` result; everything is parsed before anything is added."""
    if not isinstance(dumped, Mapping):
        raise StateFormatError(f"scheduler state must be an object, got {type(dumped).__name__}")
    version = dumped.get("version")
    if version != STATE_VERSION:
        raise StateFormatError(f"cannot load scheduler state version {version!r}: this trun reads version "
                               f"{STATE_VERSION} (was the state written by another trun release?)")
    workers = dumped.get("workers", {})
    steps = dumped.get("steps", {})
    if not isinstance(workers, Mapping) or not isinstance(steps, Mapping):
        raise StateFormatError("malformed scheduler state: 'steps' and 'workers' must be objects")
    parsed_workers = []
    for wid, rec in workers.items():
        w = worker_from_record(rec, now)
        if w.id != wid:
            raise StateFormatError(f"malformed scheduler state: worker record {wid!r} has id {w.id!r}")
        parsed_workers.append(w)
    parsed_steps = _parse_steps(steps)
    batchers = list(iter_batchers(dumped.get("batchers", {})))
    tombstones = _parse_tombstones(dumped.get("tombstones", {}))
    for sid, revoked in tombstones.items():
        state.set_tombstone(sid, revoked)
    for w in parsed_workers:
        state.workers[w.id] = w
        state.push_worker_deadline(w)
    for s in parsed_steps:
        state.upsert_step(s, now)
    for wid, fam, args, size in batchers:
        state.batchers.setdefault(wid, {})[fam] = (args, size)
    state.dirty.clear()
    state.deps_changed.clear()
    state.workers_changed.clear()


def apply_records(state: SchedulerState, changes: Any, now: float) -> None:
    """Apply ``{step_id: record, tombstone or None}`` (journal replay); raises before changing anything if one is bad."""
    if not isinstance(changes, Mapping):
        raise StateFormatError(f"scheduler changes must be an object, got {type(changes).__name__}")
    parsed = {s.id: s for s in _parse_steps(changes)}
    buried = _parse_tombstones({sid: rec.get("revoked", []) for sid, rec in changes.items() if _is_tombstone(rec)})
    for step_id, s in parsed.items():
        if changes[step_id].get("same_deps") is True:
            known = state.steps.get(step_id)
            if known is None:
                raise StateFormatError(f"malformed scheduler changes: the record of step {step_id!r} keeps its "
                                       "dependencies (same_deps), but the state has no such step to keep them from")
            s.deps = known.deps
    for step_id, rec in changes.items():
        if rec is None:
            state.discard_record(step_id)
        elif step_id in buried:
            state.discard_record(step_id)
            state.set_tombstone(step_id, buried[step_id])
        else:
            state.upsert_step(parsed[step_id], now)
