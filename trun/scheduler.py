"""The central scheduler: the one source of truth about steps, served by ``trund`` and run in process.

Workers *pull* work: they report steps with :meth:`Scheduler.add_step` (status,
dependencies, priority, resources ...), ask for something to run with
:meth:`Scheduler.get_work`, report the outcome with ``add_step`` again, and
prove they are alive with :meth:`Scheduler.ping`. Every public method decorated
with :func:`rpc_method` is listed in :data:`RPC_METHODS` (name ->
``inspect.Signature``); ``trund`` serves exactly those as ``/api/<method>`` and
:class:`trun.rpc.RemoteScheduler` mirrors them. Semantics are Luigi's under the
rename task -> step (``add_task`` -> ``add_step``, ``task_id`` -> ``step_id``...).

The class is *sans-I/O*: plain arguments in, JSON-able data out, no threads,
sockets or files, and time only from the injectable ``clock``. So the same
object runs inside ``trun --local-scheduler`` and behind ``trund``, and tests
drive it with a fake clock. (Exceptions: the optional step-history,
metrics and e-mail plug-ins do whatever they do.)

**At most one running attempt per step.** A step is RUNNING (or BATCH_RUNNING)
for exactly one worker, ``worker_running``, and every start increments the
step's ``lease`` counter. While a step is running for worker X, a DONE, FAILED
or RUNNING report from any other worker leaves its status alone (other fields,
such as dependencies, still merge as in Luigi). When the scheduler takes a step
away from its worker without that worker's own report -- the worker stopped
pinging for ``worker_disconnect_delay`` (the step is FAILED and retried after
``retry_delay``), ``mark_as_done``, an unclaimed batch being reset -- the
worker's lease is *revoked*: a later DONE/FAILED from it for that step is
ignored, until it claims the step afresh (reports it PENDING or RUNNING), even
after the step was removed and added again (removed steps keep their revoked
leases as durable *tombstones*, the most recent 10,000). A
worker that reports DONE for a step it is not running (found complete while
scheduling) is applied, as in Luigi.

**Scale.** ``get_work`` never scans or sorts all known steps. The state
(:mod:`trun.scheduler_state`) keeps per-status indexes, per-worker sets and
counters, a count of unfinished dependencies per step updated as dependencies
finish, and ready heaps ordered by (priority, time added) grouped by resource
need. A worker without resource needs gets the top of its heap; otherwise a
walk over the heads of those heaps (plus the running steps) reproduces Luigi's
greedy resource reservation while touching only as many steps as there are
worker process slots (:mod:`trun.scheduler_select`). ``prune`` handles only
what a deadline heap says is due, so ``prune_on_get_work`` costs little.

Layout: this module changes state (reports, work, pruning, workers,
durability); :mod:`trun.scheduler_queries` answers the read-only RPCs;
:mod:`trun.scheduler_config` holds the settings, the RPC registry and argument
checks; :mod:`trun.scheduler_records` the durable record format.

**Durability hooks** for ``trund``'s journal: :meth:`Scheduler.dump_state`,
:meth:`~Scheduler.load_state`, :meth:`~Scheduler.drain_changes` and
:meth:`~Scheduler.apply_changes` (versioned plain dicts, never pickles).

Differences from Luigi (on purpose): RPC methods reject unknown arguments
instead of swallowing them; an unknown status raises ``ValueError``; a revoked
lease's late report is ignored (above); ``worker_running`` is cleared when a
step stops running; a step is never removed while running; the retry policy
sent with a report applies to the failure it reports (Luigi applies it from
the next report on); ``step_list_page`` is a trun addition for the web UI.

Hazards: not thread-safe; callers serialise calls (``trund`` runs it on its
IOLoop thread, the worker under a lock).
"""
from __future__ import annotations

import hashlib
import heapq
import inspect
import json
import logging
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

from trun.scheduler_config import (
    RETRY_POLICY_FIELDS,
    RPC_METHODS,
    RPC_REQUEST_ARGS,
    NopMetrics,
    NopStepHistory,
    SchedulerConfig,
    check_id,
    check_ids,
    check_number,
    check_resources,
    check_retry_policy,
    did_you_mean,
    file_resources,
    make_config,
    make_metrics_collector,
    parse_status,
    rpc_method,
    send_disable_email,
)
from trun.scheduler_queries import SchedulerQueries
from trun.scheduler_records import (
    apply_records,
    apply_worker_records,
    compact_step_record,
    dump_state,
    load_into,
    removed_step_record,
    worker_change_record,
)
from trun.scheduler_select import select
from trun.scheduler_state import (
    EMPTY_MAP,
    RUNNING_STATUSES,
    TRANSITIONS,
    SchedulerState,
    SchedulerStateError,
    StateFormatError,
    StepRecord,
    WorkerRecord,
)
from trun.step_status import (
    BATCH_RUNNING,
    DISABLED,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    SUSPENDED,
    UNKNOWN,
    StepStatus,
)

__all__ = [
    "RPC_METHODS",
    "RPC_REQUEST_ARGS",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerStateError",
    "StateFormatError",
    "StepReport",
    "rpc_method",
]

logger = logging.getLogger("trun.scheduler")

# Hook targets whose methods do nothing: the default history and metrics.
_NOP_HOOK_TYPES = (NopStepHistory, NopMetrics)
# Distinct visibility tables shared between step records (one per family, usually).
_MAX_SHARED_VISIBILITIES = 10_000
_NO_RESOURCES: Mapping[str, int] = EMPTY_MAP
# The retry policy a worker reports for a step class that keeps Step's settings:
# every field None, i.e. no override. A mapping equal to it has these keys and
# only None values (nothing else equals None), so it needs no check.
_NO_RETRY_OVERRIDES = dict.fromkeys(RETRY_POLICY_FIELDS)


class StepReport(NamedTuple):
    """One :meth:`Scheduler.add_step` report, its arguments (but ``worker``) in order, with their defaults.

    What :class:`trun.worker.Worker` builds for each report: the in-process
    scheduler takes them as they are (:meth:`Scheduler._add_local_reports`),
    any other gets :meth:`kwargs` (a dict per report would cost the in-process
    path more than applying it).
    """

    step_id: str
    status: Any = PENDING
    runnable: bool | None = True
    deps: Sequence[str] | None = None
    new_deps: Sequence[str] | None = None
    expl: Any = None
    resources: Mapping[str, int] | None = None
    priority: float = 0
    family: str | None = ""
    module: str | None = None
    params: Mapping[str, Any] | None = None
    param_visibilities: Mapping[str, int] | None = None
    accepts_messages: bool | None = False
    assistant: bool = False
    tracking_url: str | None = None
    batchable: bool | None = None
    batch_id: str | None = None
    retry_policy_dict: Mapping[str, Any] | None = None
    owners: Sequence[str] | None = None

    def kwargs(self) -> dict[str, Any]:
        """The report as ``add_step`` keyword arguments, leaving out those at their default."""
        return {name: value for name, value, default in zip(self._fields, self, _STEP_REPORT_DEFAULTS)
                if value is not default}


_STEP_REPORT_DEFAULTS = tuple(StepReport._field_defaults.get(name) for name in StepReport._fields)


def _interned(step_id: str, deps: Sequence[str] | None, new_deps: Sequence[str] | None,
              family: str | None, module: str | None) -> tuple[Any, ...]:
    """The ids and names of a report from the wire as interned strings.

    Each request decodes its own copy of every id: interned, a step's id, its
    entry in its dependents' lists and the index keys are one string instead
    of one per mention (at 100,000 steps, tens of megabytes).
    """
    intern = sys.intern
    if deps:
        deps = list(map(intern, deps))
    if new_deps:
        new_deps = list(map(intern, new_deps))
    return (intern(step_id), deps, new_deps, intern(family) if type(family) is str else family,
            intern(module) if type(module) is str else module)


class Scheduler(SchedulerQueries):
    """Holds the state of all steps and workers and answers the RPC methods.

    ``Scheduler(config=None, resources=None, step_history_impl=None, clock=time.time,
    record_changes=True, **kwargs)``:
    ``kwargs`` override ``[scheduler]`` keys (``retry_delay=100``...), ``config`` may
    be a :class:`SchedulerConfig`, a mapping or an object with those attributes
    (then the configuration files are not read), ``resources`` replaces the
    ``[resources]`` totals (a resource without a total has 1), and
    ``step_history_impl`` receives ``step_scheduled/started/finished`` calls.
    With ``record_changes=False`` the scheduler keeps no list of changed steps
    for :meth:`iter_changes` (which trund journals): the in-process scheduler
    of ``build()`` has no journal.
    """

    #: Whether the status changes every step goes through take their dedicated
    #: paths (``SchedulerState.new_placeholder``/``started``/``finished``) instead
    #: of begin/end; test_scheduler_fast_paths.py turns it off to compare.
    _fast_paths = True

    def __init__(self, config: Any = None, resources: Mapping[str, int] | None = None,
                 step_history_impl: Any = None, clock: Callable[[], float] = time.time,
                 record_changes: bool = True, **kwargs: Any) -> None:
        self._config = make_config(config, kwargs)
        self._clock = clock
        self._state = SchedulerState(self._config.disable_persist, self._config.worker_disconnect_delay,
                                     self._config.retry_delay, record_changes)
        self._resources: dict[str, int] = check_resources(resources) if resources else file_resources()
        if step_history_impl is not None:
            self._step_history = step_history_impl
        elif self._config.record_step_history:
            from trun.db_step_history import DbStepHistory  # needs SQLAlchemy: only when asked for

            self._step_history = DbStepHistory()
        else:
            self._step_history = NopStepHistory()
        self._metrics = make_metrics_collector(self._config)
        self._visibility_tables: dict[tuple[tuple[str, int], ...], Mapping[str, int]] = {}
        self._paused = False
        self._email_batcher: Any = None
        if self._config.batch_emails:
            try:
                from trun.batch_notifier import BatchNotifier
            except ImportError:
                logger.warning("[scheduler] batch_emails is set but trun.batch_notifier is unavailable")
            else:
                self._email_batcher = BatchNotifier()

    # ------------------------------------------------------------ properties
    @property
    def config(self) -> SchedulerConfig:
        """The effective ``[scheduler]`` settings."""
        return self._config

    @property
    def step_history(self) -> Any:
        """The step-history sink (used by ``trund``'s history pages)."""
        return self._step_history

    @property
    def metrics_collector(self) -> Any:
        """The metrics collector (``trund`` serves ``generate_latest()`` at ``/metrics``)."""
        return self._metrics

    # ------------------------------------------------------------ helpers
    def _touch(self, worker_id: str, now: float, get_work: bool = False) -> WorkerRecord:
        w = self._state.get_worker(check_id(worker_id, "worker"), now)
        w.last_active = now
        if get_work:
            w.last_get_work = now
        return w

    def _hook(self, target: Any, name: str, *args: Any) -> None:
        if type(target) in _NOP_HOOK_TYPES:
            return  # the default sinks: not worth a lookup and a call per status change
        fn = getattr(target, name, None)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            logger.warning("error in %s.%s", type(target).__name__, name, exc_info=True)

    def _history_status(self, s: StepRecord, status: StepStatus, host: str | None = None) -> None:
        if type(self._step_history) is NopStepHistory:
            return
        if status in (DONE, FAILED):
            self._hook(self._step_history, "step_finished", s, status is DONE)
        elif status in (PENDING, SUSPENDED):
            self._hook(self._step_history, "step_scheduled", s)
        elif status is RUNNING:
            self._hook(self._step_history, "step_started", s, host)

    def _policy(self, s: StepRecord) -> dict[str, Any]:
        policy = self._config.retry_policy()
        if s.retry_policy:
            policy.update(s.retry_policy)
        return policy

    def _add_failure(self, s: StepRecord, now: float) -> None:
        if s.first_failure_time is None:
            s.first_failure_time = now
        oldest = now - self._policy(s)["disable_window"]
        s.failures = [t for t in s.failures if t >= oldest]
        s.failures.append(now)

    def _excessive_failures(self, s: StepRecord, now: float) -> bool:
        policy = self._policy(s)
        if s.first_failure_time is not None and now >= s.first_failure_time + policy["disable_hard_timeout"]:
            return True
        oldest = now - policy["disable_window"]
        return sum(1 for t in s.failures if t >= oldest) >= policy["retry_count"]

    def _change_status(self, s: StepRecord, new: StepStatus, now: float, by_worker: str | None,
                       batch_id: str | None = None, resources_running: dict[str, int] | None = None) -> None:
        """The raw status change of a detached step: transition table, lease, ``worker_running``."""
        old = s.status
        if new not in TRANSITIONS[old]:
            raise SchedulerStateError(f"illegal status change {old.value} -> {new.value} for step {s.id!r}")
        was_running, runs = old in RUNNING_STATUSES, new in RUNNING_STATUSES
        if was_running and not runs:
            if s.worker_running is not None and by_worker != s.worker_running:
                self._state.revoke(s, s.worker_running)
            s.worker_running = None
            s.batch_id = None
        elif runs and not was_running:
            if by_worker is None:
                raise SchedulerStateError(f"step {s.id!r} cannot start running without a worker")
            s.worker_running = by_worker
            s.time_running = now
            s.lease += 1
            self._state.unrevoke(s, by_worker)
            s.resources_running = s.resources if resources_running is None else resources_running
            s.batch_id = batch_id
        elif runs and batch_id is not None:
            s.batch_id = batch_id
        s.status = new
        s.updated = now

    def _set_status(self, s: StepRecord, new: StepStatus, now: float, by_worker: str | None = None,
                    batch_id: str | None = None, resources_running: dict[str, int] | None = None) -> None:
        """Luigi's status policy (disables, batches, retries) for a detached step."""
        old = s.status
        if new is DISABLED and old in RUNNING_STATUSES:
            return
        remove_on_failure = s.batch_id is not None and not s.batchable
        if old is DISABLED:
            if new is DONE:
                s.scheduler_disable_time = None
                s.failures = ()
            elif s.scheduler_disable_time is not None and new is not DISABLED:
                return  # workers cannot override a scheduler disable
        if old is RUNNING and s.batch_id is not None and new is not RUNNING:
            for member in self._state.batch_members(s.batch_id):
                self._state.begin(member)
                self._set_status(member, new, now, by_worker=by_worker)
                self._state.end(member)
        if new is FAILED and old is not DISABLED:
            self._add_failure(s, now)
            if self._excessive_failures(s, now):
                s.scheduler_disable_time = now
                new = DISABLED
                self._notify_disabled(s)
        elif new is DISABLED:
            s.scheduler_disable_time = None
        if new is not old:
            self._change_status(s, new, now, by_worker, batch_id, resources_running)
            if new is DISABLED:
                self._hook(self._metrics, "handle_step_disabled", s, self._config)
            elif new is DONE:
                self._hook(self._metrics, "handle_step_done", s)
            elif new is FAILED:
                self._hook(self._metrics, "handle_step_failed", s)
        elif new is RUNNING and batch_id is not None:
            s.batch_id = batch_id
        if new is FAILED:
            s.retry = now + self._config.retry_delay
            if remove_on_failure:
                s.remove = now

    def _notify_disabled(self, s: StepRecord) -> None:
        if self._config.batch_emails:
            return
        policy = self._policy(s)
        send_disable_email(
            f"Trun Scheduler: DISABLED {s.id} due to excessive failures",
            f"{s.id} failed {policy['retry_count']} times in the last {policy['disable_window']} seconds, "
            f"so it is being disabled for {self._config.disable_persist} seconds")

    def _re_enable(self, s: StepRecord, now: float) -> None:
        s.scheduler_disable_time = None
        s.failures = ()
        self._set_status(s, FAILED, now)
        s.failures = ()

    def _raise_priority(self, s: StepRecord, priority: float) -> None:
        """Raise the priority of ``s`` and, transitively, of its dependencies (never lowers)."""
        if priority <= s.priority and (not s.deps or s.priority <= self._state.lowest_priority):
            # Nothing to raise: the usual report of a leaf, or of any step while all
            # steps share one priority (no dependency ranks below the lowest).
            return
        st = self._state
        stack = [(s, priority)]
        while stack:
            x, prio = stack.pop()
            prio = max(prio, x.priority)
            if prio != x.priority:
                owned = x.attached
                if owned:
                    st.begin(x)
                x.priority = prio
                if owned:
                    st.end(x)
            for dep_id in x.deps:
                dep = st.steps.get(dep_id)
                if dep is not None and prio > dep.priority:
                    stack.append((dep, prio))

    def _unbatched_params(self, worker: str, family: str, params: Mapping[str, Any]) -> dict[str, Any]:
        batched, _ = self._state.batchers.get(worker, {}).get(family, (None, 1))
        return {k: v for k, v in params.items() if not batched or k not in batched}

    # ------------------------------------------------------------ prune
    @rpc_method()
    def prune(self) -> None:
        """Forget silent workers (failing their running steps), retry, re-enable and remove steps that are due."""
        now = self._clock()
        st = self._state
        cfg = self._config
        if not st.unstaked and (not st.deadlines or st.deadlines[0][0] > now):
            # Nothing is due (the usual case with prune_on_get_work).
            if self._email_batcher is not None:
                self._hook(self._email_batcher, "update")
            return
        due = []
        while st.deadlines and st.deadlines[0][0] <= now:
            due.append(heapq.heappop(st.deadlines))
        later = []
        for entry in due:
            when, _, kind, key = entry
            if kind != "worker":
                continue
            w = st.workers.get(key)
            if w is None or w.dl != when:
                continue
            if w.last_active + cfg.worker_disconnect_delay < now:
                logger.info("worker %s timed out (no contact for >= %ss)", key, cfg.worker_disconnect_delay)
                self._forget_worker(w, now)
            elif w.last_active + cfg.worker_disconnect_delay == when:
                later.append(entry)  # due exactly now: times out only once strictly past
            else:
                st.push_worker_deadline(w)
        for step_id in list(st.unstaked):
            s = st.steps[step_id]
            if s.status is not RUNNING:
                st.begin(s)
                s.remove = now + cfg.remove_delay
                st.end(s)
        for entry in due:
            when, _, kind, key = entry
            s = st.steps.get(key) if kind != "worker" else None
            if s is None:
                continue
            if kind == "retry" and s.dl_retry == when:
                if s.status is FAILED and s.retry == when and cfg.retry_delay >= 0:
                    if s.retry < now:
                        s.dl_retry = None
                        st.begin(s)
                        self._set_status(s, PENDING, now)
                        st.end(s)
                    else:
                        later.append(entry)
                else:
                    s.dl_retry = None
            elif kind == "enable" and s.dl_enable is not None and s.dl_enable + cfg.disable_persist == when:
                if s.status is DISABLED and s.scheduler_disable_time == s.dl_enable:
                    if now - s.scheduler_disable_time > cfg.disable_persist:
                        s.dl_enable = None
                        st.begin(s)
                        self._re_enable(s, now)
                        st.end(s)
                    else:
                        later.append(entry)
                else:
                    s.dl_enable = None
            elif kind == "remove" and s.dl_remove == when:
                s.dl_remove = None
                if s.remove != when:
                    continue
                if s.status in RUNNING_STATUSES:
                    st.begin(s)
                    s.remove = None  # marked again once it stops running without stakeholders
                    st.end(s)
                else:
                    logger.info("removing step %r (no stakeholders)", s.id)
                    st.bury_step(s)
        for entry in later:
            heapq.heappush(st.deadlines, entry)
        if self._email_batcher is not None:
            self._hook(self._email_batcher, "update")

    def _forget_worker(self, w: WorkerRecord, now: float) -> None:
        st = self._state
        for step_id in sorted(w.running):
            s = st.steps.get(step_id)
            if s is None or s.worker_running != w.id or s.status not in RUNNING_STATUSES:
                continue  # already failed with its batch
            logger.info("step %r is running on disconnected worker %r -> FAILED, retry in %ss",
                        s.id, w.id, self._config.retry_delay)
            st.begin(s)
            self._set_status(s, FAILED, now)
            st.end(s)
        for step_id in list(w.steps):
            s = st.steps[step_id]
            st.begin(s)
            st.remove_worker_from_step(s, w.id)
            st.end(s)
        for step_id in list(w.stakes):
            s = st.steps[step_id]
            st.begin(s)
            st.remove_stakeholder(s, w.id)
            st.end(s)
        del st.workers[w.id]
        st.batchers.pop(w.id, None)
        st.workers_changed.add(w.id)

    # ------------------------------------------------------------ adding steps
    @rpc_method()
    def add_step_batcher(self, worker: str, step_family: str, batched_args: Sequence[str],
                         max_batch_size: float | None = math.inf) -> None:
        """Let ``worker`` run ready steps of ``step_family`` in batches over the ``batched_args`` parameters."""
        check_id(worker, "worker")
        check_id(step_family, "step_family")
        args = check_ids(batched_args, "batched_args") or []
        size = math.inf if max_batch_size is None else check_number(max_batch_size, "max_batch_size")
        # The worker's record too: its batchers are journaled with it, and leave with it.
        self._touch(worker, self._clock())
        self._state.batchers.setdefault(worker, {})[step_family] = (args, size)
        self._state.workers_changed.add(worker)

    @rpc_method()
    def forgive_failures(self, step_id: str) -> dict[str, Any]:
        """Turn a FAILED step back to PENDING now; returns ``{step_id, status}``."""
        s = self._state.steps.get(step_id)
        if s is None:
            return {"step_id": step_id, "status": None}
        if s.status is FAILED:
            self._history_status(s, PENDING)
            self._state.begin(s)
            self._set_status(s, PENDING, self._clock())
            self._state.end(s)
        return {"step_id": step_id, "status": s.status.value}

    @rpc_method()
    def mark_as_done(self, step_id: str) -> dict[str, Any]:
        """Force a RUNNING, FAILED or DISABLED step to DONE; returns ``{step_id, status}``."""
        s = self._state.steps.get(step_id)
        if s is None:
            return {"step_id": step_id, "status": None}
        if s.status in (RUNNING, FAILED, DISABLED):
            self._history_status(s, DONE)
            self._state.begin(s)
            self._set_status(s, DONE, self._clock())
            self._state.end(s)
        return {"step_id": step_id, "status": s.status.value}

    @rpc_method()
    def add_step(self, worker: str, step_id: str, status: str = PENDING, runnable: bool | None = True,
                 deps: Sequence[str] | None = None, new_deps: Sequence[str] | None = None, expl: Any = None,
                 resources: dict[str, int] | None = None, priority: float = 0, family: str | None = "",
                 module: str | None = None, params: dict[str, Any] | None = None,
                 param_visibilities: dict[str, int] | None = None, accepts_messages: bool | None = False,
                 assistant: bool = False, tracking_url: str | None = None, batchable: bool | None = None,
                 batch_id: str | None = None, retry_policy_dict: dict[str, Any] | None = None,
                 owners: Sequence[str] | None = None) -> None:
        """Report a step: create it if new, merge what ``worker`` knows, maybe change its status.

        * ``deps`` replaces the dependencies, ``new_deps`` adds to them; unknown
          dependencies get placeholder steps (status UNKNOWN);
        * the status changes only if the step is not running, or the report comes
          from the worker running it (DONE/FAILED/RUNNING, or with ``new_deps``);
          a PENDING report within ``stable_done_cooldown_secs`` of DONE is ignored;
        * the worker becomes a stakeholder (unless ``assistant``) and, if
          ``runnable`` and the status is not FAILED, one of the workers able to run it;
        * ``priority`` can only raise the step's priority, and raises its dependencies'.
        """
        now = self._clock()
        self._check_step_args(worker, step_id, deps, new_deps, priority)
        st_new = parse_status(status)
        resources = check_resources(resources)
        retry_overrides = check_retry_policy(retry_policy_dict)
        step_id, deps, new_deps, family, module = _interned(step_id, deps, new_deps, family, module)
        self._add_step(now, worker, step_id, st_new, runnable, deps, new_deps, expl, resources, priority,
                       family, module, params, param_visibilities, accepts_messages, assistant, tracking_url,
                       batchable, batch_id, retry_overrides, owners)

    def _shared_visibilities(self, visibilities: Mapping[str, int]) -> Mapping[str, int]:
        # Steps of one family nearly always have the same visibilities: one
        # read-only copy serves them all instead of a dict per step.
        key = tuple(visibilities.items())
        shared = self._visibility_tables.get(key)
        if shared is None:
            if len(self._visibility_tables) >= _MAX_SHARED_VISIBILITIES:
                return dict(visibilities)
            shared = self._visibility_tables[key] = MappingProxyType(dict(visibilities))
        return shared

    @staticmethod
    def _check_step_args(worker: Any, step_id: Any, deps: Any, new_deps: Any, priority: Any) -> None:
        check_id(worker, "worker")
        check_id(step_id, "step_id")
        check_ids(deps, "deps")
        check_ids(new_deps, "new_deps")
        check_number(priority, "priority")

    def _add_step(self, now: float, worker: str, step_id: str, status: StepStatus, runnable: bool | None,
                  deps: Sequence[str] | None, new_deps: Sequence[str] | None, expl: Any,
                  resources: dict[str, int], priority: float, family: str | None, module: str | None,
                  params: dict[str, Any] | None, param_visibilities: dict[str, int] | None,
                  accepts_messages: bool | None, assistant: bool, tracking_url: str | None,
                  batchable: bool | None, batch_id: str | None, retry_overrides: dict[str, Any] | None,
                  owners: Sequence[str] | None) -> None:
        st = self._state
        w = st.get_worker(worker, now)  # _touch without the id check: every caller checked it
        w.last_active = now
        s = st.steps.get(step_id)
        if s is None:
            if w.disabled:
                return
            # Created detached; the end() below indexes it once.
            s = st.new_step(step_id, PENDING, now, priority)
        elif s.status is not RUNNING and w.disabled:
            return
        elif status in (DONE, FAILED) and worker in s.revoked:
            logger.warning("ignoring %s from worker %s for step %r: its lease was revoked",
                           status.value, worker, step_id)
            return
        elif status is PENDING and s.status is DONE and now - s.updated < self._config.stable_done_cooldown_secs:
            return
        if (status is DONE and s.worker_running == worker and s.status is RUNNING and s.batch_id is None
                and deps is None and not new_deps and not runnable and s.remove is None and s.stakeholders
                and self._fast_paths):
            # The last report of every step that ran, with nothing to change but its status.
            self._merge_report(s, worker, status, family, module, params, param_visibilities, accepts_messages,
                               tracking_url, batchable, expl, retry_overrides)
            self._finish(s, w, now, resources, assistant, priority)
            return
        if (status is PENDING and s.status is UNKNOWN and runnable and not deps and deps is not None
                and not new_deps and not resources and not assistant and batch_id is None and not s.deps
                and not s.workers and s.remove is None and priority <= s.priority and worker in s.stakeholders
                and s.attached and self._fast_paths):
            # The first report of a dependency known so far as a placeholder (each leaf of a fan-in).
            self._merge_report(s, worker, status, family, module, params, param_visibilities, accepts_messages,
                               tracking_url, batchable, expl, retry_overrides)
            self._history_status(s, PENDING)
            self._change_status(s, PENDING, now, worker)
            s.resources = EMPTY_MAP
            st.scheduled(s, w)
            return
        st.begin(s)
        try:
            self._merge_report(s, worker, status, family, module, params, param_visibilities, accepts_messages,
                               tracking_url, batchable, expl, retry_overrides)
            s.remove = None
            running = s.status in RUNNING_STATUSES
            if not running or (s.worker_running == worker and (status in (DONE, FAILED, RUNNING) or new_deps)):
                if status is not s.status or status is PENDING:
                    self._history_status(s, status)
                new = PENDING if status is SUSPENDED else status
                resources_running = None
                if new is RUNNING and batch_id is not None and not running:
                    first = st.batch_members(batch_id)
                    if first and first[0].resources_running is not None:
                        resources_running = first[0].resources_running
                self._set_status(s, new, now, by_worker=worker,
                                 batch_id=batch_id if new is RUNNING else None,
                                 resources_running=resources_running)
            if status is FAILED and self._email_batcher is not None:
                self._batch_email_failure(worker, s, expl, owners)
            if deps is not None:
                st.set_deps(s, deps)
            if new_deps:
                st.add_deps(s, new_deps)
            s.resources = dict(resources) if resources else EMPTY_MAP
            self._stake(s, w, assistant, priority, now)
            self._raise_priority(s, priority)
            if runnable and status is not FAILED and not w.disabled:
                st.add_worker_to_step(s, worker)
                s.runnable = True
        finally:
            st.end(s)

    def _merge_report(self, s: StepRecord, worker: str, status: StepStatus, family: str | None,
                      module: str | None, params: dict[str, Any] | None,
                      param_visibilities: dict[str, int] | None, accepts_messages: bool | None,
                      tracking_url: str | None, batchable: bool | None, expl: Any,
                      retry_overrides: dict[str, Any] | None) -> None:
        """The fields of a report that no index depends on (before its status change)."""
        st = self._state
        if not s.family:
            s.family = family or ""
        if not s.module:
            s.module = module
        if not s.param_visibilities and param_visibilities:
            s.param_visibilities = self._shared_visibilities(param_visibilities)
        if not s.params and params:
            s.params = dict(params)
        if status in (PENDING, SUSPENDED, RUNNING) and worker in s.revoked:
            st.unrevoke(s, worker)
        if accepts_messages is not None:
            s.accepts_messages = bool(accepts_messages)
        members = st.batch_members(s.batch_id) if s.batch_id is not None else ()
        if tracking_url is not None or s.status is not RUNNING:
            s.tracking_url = tracking_url
            for m in members:
                m.tracking_url = tracking_url
                st.dirty.add(m.id)
        if batchable is not None:
            s.batchable = bool(batchable)
        if expl is not None:
            s.expl = expl
            for m in members:
                m.expl = expl
                st.dirty.add(m.id)
        # Luigi sets the policy after the status; the report's own policy
        # must already count for the failure it reports.
        s.retry_policy = retry_overrides or None

    def _stake(self, s: StepRecord, w: WorkerRecord, assistant: bool, priority: float, now: float) -> None:
        """Make the reporting worker a stakeholder of ``s`` and of its dependencies (not an assistant)."""
        if not w.disabled and not assistant:
            self._state.add_stakeholder(s, w.id)
            # w.stakes: the steps this worker is a stakeholder of already (a
            # step re-reported DONE need not look at each dependency again).
            stakes = w.stakes
            deps = s.deps
            # Usually all are staked already (since the step's first report); a new first one says no at once.
            if deps and not (deps[0] in stakes and stakes.issuperset(deps)):
                # In the order the worker listed them: new placeholders rank (and
                # so run) in that order, which is the order the worker reports them
                # in, so they join the ready queue in rank order (see RankHeap).
                for dep_id in deps:
                    if dep_id not in stakes:
                        self._stake_dependency(dep_id, w.id, priority, now)

    def _finish(self, s: StepRecord, w: WorkerRecord, now: float, resources: dict[str, int], assistant: bool,
                priority: float) -> None:
        """The rest of ``_add_step`` for a DONE report of a step outside a batch, from the worker running it.

        The general way (begin, _set_status, end) re-indexes the step from
        scratch; here only the indexes that RUNNING -> DONE moves are updated
        (:meth:`SchedulerState.finished`). ``_add_step`` comes here only when
        nothing else indexed changes: no dependency change, no removal mark to
        clear, no worker to add, and the step keeps a stakeholder.
        """
        self._history_status(s, DONE)
        self._change_status(s, DONE, now, w.id)
        self._hook(self._metrics, "handle_step_done", s)
        self._state.finished(s, w.id)
        s.resources = dict(resources) if resources else EMPTY_MAP  # not indexed once DONE
        self._stake(s, w, assistant, priority, now)
        self._raise_priority(s, priority)

    def _stake_dependency(self, dep_id: str, worker: str, priority: float, now: float) -> None:
        # Placeholders keep a dependency (and its priority) known before its own add_step arrives.
        st = self._state
        dep = st.steps.get(dep_id)
        if dep is None:
            if self._fast_paths:
                st.new_placeholder(dep_id, worker, priority, now)
                return
            dep = st.new_step(dep_id, UNKNOWN, now, priority)
            st.add_stakeholder(dep, worker)
            st.end(dep)
            return
        if worker in dep.stakeholders:
            return
        owned = dep.attached
        if owned:
            st.begin(dep)
        st.add_stakeholder(dep, worker)
        if owned:
            st.end(dep)

    def _batch_email_failure(self, worker: str, s: StepRecord, expl: Any, owners: Sequence[str] | None) -> None:
        unbatched = self._unbatched_params(worker, s.family, s.params)
        try:
            expl_raw = json.loads(expl)
        except (TypeError, ValueError):
            expl_raw = expl
        self._hook(self._email_batcher, "add_failure", s.pretty_id, s.family, unbatched, expl_raw, owners)
        if s.status is DISABLED:
            self._hook(self._email_batcher, "add_disable", s.pretty_id, s.family, unbatched, owners)

    @rpc_method()
    def add_steps(self, worker: str, steps: Sequence[dict[str, Any]]) -> None:
        """Bulk :meth:`add_step`: ``steps`` is a list of ``add_step`` keyword dicts (``worker`` optional).

        Every entry is checked before any is applied, so a bad entry changes nothing.
        """
        check_id(worker, "worker")
        if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Iterable):
            raise TypeError(f"add_steps: steps must be a list of add_step argument objects, got {steps!r:.80}")
        prepared = []
        for i, entry in enumerate(steps):
            if type(entry) is not dict and not isinstance(entry, Mapping):
                raise TypeError(f"add_steps: steps[{i}] must be an object of add_step arguments, got {entry!r:.80}")
            if entry.get("worker", worker) != worker:
                raise ValueError(f"add_steps: steps[{i}] names worker {entry['worker']!r}, "
                                 f"but the call is from {worker!r}")
            unknown = entry.keys() - _ADD_STEP_DEFAULTS.keys()
            if unknown:
                name = sorted(unknown)[0]
                raise TypeError(f"add_steps: steps[{i}]: add_step() got an unexpected argument {name!r}."
                                f"{did_you_mean(name, _ADD_STEP_DEFAULTS)}")
            if "step_id" not in entry:
                raise TypeError(f"add_steps: steps[{i}] has no 'step_id'")
            a = dict(_ADD_STEP_DEFAULTS)
            a.update(entry)
            a["worker"] = worker
            self._check_step_args(a["worker"], a["step_id"], a["deps"], a["new_deps"], a["priority"])
            a["status"] = parse_status(a["status"])
            a["resources"] = check_resources(a["resources"])
            a["retry_policy_dict"] = check_retry_policy(a["retry_policy_dict"])
            a["step_id"], a["deps"], a["new_deps"], a["family"], a["module"] = _interned(
                a["step_id"], a["deps"], a["new_deps"], a["family"], a["module"])
            prepared.append(a)
        now = self._clock()  # one request: its steps arrive together (and share one float, not one each)
        for a in prepared:
            self._add_step(now, a["worker"], a["step_id"], a["status"], a["runnable"], a["deps"],
                           a["new_deps"], a["expl"], a["resources"], a["priority"], a["family"], a["module"],
                           a["params"], a["param_visibilities"], a["accepts_messages"], a["assistant"],
                           a["tracking_url"], a["batchable"], a["batch_id"], a["retry_policy_dict"], a["owners"])

    def _add_local_reports(self, worker: str, reports: Sequence[StepReport]) -> None:
        """:meth:`add_steps` for a :class:`trun.worker.Worker` in this process (not an RPC).

        The reports are the worker's own, built with the right ids and
        statuses, so only what comes from the user's step classes (priority,
        resources, retry policy) is checked; a bad report still changes nothing.
        """
        check_id(worker, "worker")
        prepared = []
        for report in reports:
            (step_id, status, runnable, deps, new_deps, expl, resources, priority, family, module, params,
             param_visibilities, accepts_messages, assistant, tracking_url, batchable, batch_id, retry_policy,
             owners) = report
            if type(priority) is not int:
                check_number(priority, "priority")
            if retry_policy and retry_policy != _NO_RETRY_OVERRIDES:
                retry_policy = check_retry_policy(retry_policy)
            else:
                retry_policy = None  # what check_retry_policy makes of it
            if type(status) is not StepStatus:
                status = parse_status(status)
            prepared.append((
                step_id, status, runnable, deps, new_deps, expl,
                check_resources(resources) if resources else _NO_RESOURCES, priority, family, module, params,
                param_visibilities, accepts_messages, assistant, tracking_url, batchable, batch_id, retry_policy,
                owners))
        add = self._add_step
        now = self._clock()  # one batch: its steps arrive together (and share one float, not one each)
        for args in prepared:
            add(now, worker, *args)

    @rpc_method()
    def announce_scheduling_failure(self, worker: str, step_name: str, family: str, params: dict[str, Any],
                                    expl: Any, owners: Sequence[str] | None) -> None:
        """Record that ``worker`` could not schedule a step (only used with ``batch_emails``)."""
        if self._email_batcher is None:
            return
        unbatched = self._unbatched_params(worker, family, params or {})
        self._hook(self._email_batcher, "add_scheduling_fail", step_name, family, unbatched, expl, owners)

    # ------------------------------------------------------------ workers
    @rpc_method()
    def add_worker(self, worker: str, info: dict[str, Any] | list[Any]) -> None:
        """Merge ``info`` (host, pid, ``workers`` = process count, ``assistant`` ...) into the worker's record."""
        w = self._state.get_worker(check_id(worker, "worker"), self._clock())
        try:
            w.info.update(dict(info))
        except (TypeError, ValueError):
            raise TypeError(f"add_worker: info must be an object or a list of [key, value] pairs, "
                            f"got {info!r:.80}") from None
        self._state.workers_changed.add(w.id)

    @rpc_method()
    def disable_worker(self, worker: str) -> None:
        """Stop giving work to ``worker``; its running steps keep running, it leaves the others' worker lists."""
        st = self._state
        w = st.get_worker(check_id(worker, "worker"), self._clock())
        w.disabled = True
        st.workers_changed.add(w.id)
        for step_id in list(w.steps):
            s = st.steps[step_id]
            st.begin(s)
            st.remove_worker_from_step(s, w.id)
            st.end(s)

    @rpc_method()
    def set_worker_processes(self, worker: str, n: int) -> None:
        """Ask ``worker`` (on its next ping) to run ``n`` steps at a time."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"set_worker_processes: n must be a non-negative integer, got {n!r}")
        w = self._state.get_worker(check_id(worker, "worker"), self._clock())
        w.rpc_messages.append({"name": "set_worker_processes", "kwargs": {"n": n}})
        self._state.workers_changed.add(w.id)

    @rpc_method()
    def send_scheduler_message(self, worker: str, step: str, content: str) -> dict[str, Any]:
        """Queue a message for the running step ``step`` on ``worker``; returns ``{message_id}``."""
        if not self._config.send_messages:
            return {"message_id": None}
        message_id = str(uuid.uuid4())
        w = self._state.get_worker(check_id(worker, "worker"), self._clock())
        w.rpc_messages.append({"name": "dispatch_scheduler_message",
                               "kwargs": {"step_id": step, "message_id": message_id, "content": content}})
        self._state.workers_changed.add(w.id)
        return {"message_id": message_id}

    @rpc_method()
    def add_scheduler_message_response(self, step_id: str, message_id: str, response: Any) -> None:
        """Store a step's answer to a scheduler message."""
        s = self._state.steps.get(step_id)
        if s is not None:
            if type(s.scheduler_message_responses) is not dict:
                s.scheduler_message_responses = {}  # the shared empty map is read-only
            s.scheduler_message_responses[message_id] = response
            self._state.dirty.add(step_id)

    @rpc_method()
    def get_scheduler_message_response(self, step_id: str, message_id: str) -> dict[str, Any]:
        """Pop a step's answer to a scheduler message: ``{response}`` (None if none yet)."""
        response = None
        s = self._state.steps.get(step_id)
        if s is not None and message_id in s.scheduler_message_responses:
            response = s.scheduler_message_responses.pop(message_id)
            self._state.dirty.add(step_id)
        return {"response": response}

    @rpc_method()
    def pause(self) -> None:
        """Hand out no new work until :meth:`unpause` (if ``pause_enabled``)."""
        if self._config.pause_enabled:
            self._paused = True

    @rpc_method()
    def unpause(self) -> None:
        if self._config.pause_enabled:
            self._paused = False

    @rpc_method()
    def update_resources(self, **resources: int) -> None:
        """Set the totals of the named resources (others keep theirs)."""
        self._resources.update(check_resources(resources))

    @rpc_method()
    def update_resource(self, resource: str, amount: Any) -> bool:
        """Set one resource total; False (and no change) unless ``amount`` is a non-negative integer."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0 or not isinstance(resource, str):
            return False
        self._resources[resource] = amount
        return True

    def resources(self) -> dict[str, dict[str, int]]:
        """Configured totals and current use: ``{name: {"total": n, "used": m}}``."""
        used = self._state.used
        return {name: {"total": total, "used": used.get(name, 0)} for name, total in self._resources.items()}

    # ------------------------------------------------------------ getting work
    @rpc_method(allow_null=False)
    def get_work(self, worker: str, host: str | None = None, assistant: bool = False,
                 current_steps: Sequence[str] | None = None,
                 reports: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Hand ``worker`` its best runnable step (or a batch), with its pending counters.

        Reply: ``n_pending_steps, n_unique_pending, n_pending_last_scheduled,
        worker_state, running_steps, step_id, step_family, step_module,
        step_params``, plus ``batch_id, batch_step_ids`` (and ``step_id=None``)
        for a batch. ``current_steps`` (the steps the worker believes it runs)
        makes the scheduler re-offer a step it thinks the worker runs but the
        worker lost, and return unclaimed batch members to PENDING.

        ``reports`` (a trun addition; Luigi clients never send it) are
        :meth:`add_step` argument dicts applied first, exactly as
        :meth:`add_steps` would: a worker reports the step it just finished
        and asks for the next one in a single round trip.
        """
        if reports:
            self.add_steps(worker, reports)
        if self._config.prune_on_get_work:
            self.prune()
        now = self._clock()
        st = self._state
        w = self._touch(worker, now, get_work=True)
        if w.reference is None or w.reference.get("host") != host:
            w.reference = {"host": host}
            st.workers_changed.add(w.id)
        if w.disabled:
            return {"n_pending_steps": 0, "n_unique_pending": 0, "n_pending_last_scheduled": 0,
                    "running_steps": [], "step_id": None, "worker_state": w.state}
        if assistant:
            if w.info.get("assistant") != assistant:
                w.info["assistant"] = assistant
                st.workers_changed.add(w.id)
            st.keep_any_heaps()
        best: StepRecord | None = None
        batch: list[StepRecord] | None = None
        if current_steps is not None:
            claimed = check_ids(current_steps, "current_steps")
            if w.running:  # nothing can be lost or orphaned otherwise
                claimed = set(claimed or ())
                lost = [st.steps[i] for i in w.running if st.steps[i].status is RUNNING and i not in claimed]
                if lost:
                    best = min(lost, key=lambda x: x.rank_key)
                self._reset_orphaned_batches(w, now)
        if best is None and not self._paused:
            active_since = now - self._config.worker_disconnect_delay
            best, batch = select(st, w, bool(assistant), self._resources, active_since)
        reply = self.count_pending(worker)
        if batch is not None and len(batch) > 1:
            batch_id = hashlib.md5("|".join(s.id for s in batch).encode("utf-8"), usedforsecurity=False).hexdigest()
            batched_names, _ = st.batchers[w.id][best.family]
            combined = dict(best.params)
            combined.update({name: [s.params.get(name) for s in batch] for name in batched_names})
            for s in batch:
                st.begin(s)
                self._change_status(s, BATCH_RUNNING, now, worker, batch_id=batch_id)
                st.end(s)
            reply.update(step_id=None, step_family=best.family, step_module=best.module, step_params=combined,
                         batch_id=batch_id, batch_step_ids=[s.id for s in batch])
        elif best is not None:
            self._hook(self._metrics, "handle_step_started", best)
            if best.ready and not best.p_block and self._fast_paths:
                # A ready step: for PENDING -> RUNNING, _set_status is the raw change.
                self._change_status(best, RUNNING, now, worker)
                st.started(best)
            else:
                st.begin(best)
                if best.status is RUNNING:
                    best.time_running = now  # re-offered to the worker that holds it
                else:
                    self._set_status(best, RUNNING, now, by_worker=worker)
                st.end(best)
            self._history_status(best, RUNNING, host)
            reply["step_id"] = best.id
            reply["step_family"] = best.family
            reply["step_module"] = best.module
            reply["step_params"] = dict(best.params)
        else:
            reply["step_id"] = None
        return reply

    def _reset_orphaned_batches(self, w: WorkerRecord, now: float) -> None:
        st = self._state
        claimed = {st.steps[i].batch_id for i in w.running if st.steps[i].status is RUNNING}
        for step_id in sorted(w.running):
            s = st.steps[step_id]
            if s.status is BATCH_RUNNING and s.batch_id not in claimed:
                st.begin(s)
                self._set_status(s, PENDING, now, by_worker=w.id)
                st.end(s)

    @rpc_method(attempts=1)
    def ping(self, worker: str, current_steps: Sequence[str] | None = None) -> dict[str, Any]:
        """Keep ``worker`` alive; returns and clears its queued ``rpc_messages``."""
        w = self._touch(worker, self._clock())
        messages, w.rpc_messages = w.rpc_messages, []
        if messages:
            self._state.workers_changed.add(w.id)
        return {"rpc_messages": messages}

    # ------------------------------------------------------------ queries
    @rpc_method()
    def re_enable_step(self, step_id: str) -> dict[str, Any]:
        """Re-enable a step the scheduler disabled (it becomes FAILED, then retries); its description or ``{}``."""
        s = self._state.steps.get(step_id)
        if s is None or s.status is not DISABLED or s.scheduler_disable_time is None:
            return {}
        self._state.begin(s)
        self._re_enable(s, self._clock())
        self._state.end(s)
        return self._serialize_step(s)

    # ------------------------------------------------------------ running-step reports
    def _running_batch(self, s: StepRecord) -> list[StepRecord]:
        if s.status is RUNNING and s.batch_id is not None:
            return self._state.batch_members(s.batch_id)
        return []

    @rpc_method()
    def set_step_status_message(self, step_id: str, status_message: str | None) -> None:
        """Set the free-text status of a (running) step, and of its batch."""
        s = self._state.steps.get(step_id)
        if s is None:
            return
        for x in [s, *self._running_batch(s)]:
            x.status_message = status_message
            self._state.dirty.add(x.id)

    @rpc_method()
    def set_step_progress_percentage(self, step_id: str, progress_percentage: float | None) -> None:
        """Set the progress (0-100) of a (running) step, and of its batch."""
        s = self._state.steps.get(step_id)
        if s is None:
            return
        for x in [s, *self._running_batch(s)]:
            x.progress_percentage = progress_percentage
            self._state.dirty.add(x.id)

    @rpc_method()
    def decrease_running_step_resources(self, step_id: str, decrease_resources: dict[str, int]) -> None:
        """Give back part of a RUNNING step's resources (never below 0), for it and its batch."""
        st = self._state
        s = st.steps.get(step_id)
        if s is None or s.status is not RUNNING:
            return
        decrease = check_resources(decrease_resources, "decrease_resources")
        for x in [s, *self._running_batch(s)]:
            st.begin(x)
            # A fresh dict: batch members may share one resources mapping.
            held = dict(x.resources_running if x.resources_running is not None else x.resources)
            for name, amount in decrease.items():
                if amount > 0 and name in held:
                    held[name] = max(0, held[name] - amount)
            x.resources_running = held
            st.end(x)

    @rpc_method()
    def report_step_statistics(self, step_id: str, statistics: dict[str, Any]) -> None:
        """Pass a running step's statistics to the metrics collector."""
        s = self._state.steps.get(step_id)
        if s is not None:
            self._hook(self._metrics, "handle_step_statistics", s, statistics)

    @rpc_method()
    def update_metrics_step_started(self, step: Any) -> None:
        """Tell the metrics collector that ``step`` (a step id or record) started."""
        if isinstance(step, str):
            step = self._state.steps.get(step)
            if step is None:
                return
        self._hook(self._metrics, "handle_step_started", step)

    # ------------------------------------------------------------ durability
    def dump_state(self) -> dict[str, Any]:
        """Everything needed to restart, as plain JSON-able data: ``{"version": 1, "steps", "workers", "batchers"}``.

        As in Luigi, resource totals changed at run time (``update_resource``)
        and the pause flag are not part of it: a restart reads them afresh.
        """
        return dump_state(self._state)

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the whole state by a :meth:`dump_state` result, rebuilding every index.

        Workers count as just seen, so a step running on a worker that does not
        come back is failed by :meth:`prune` after ``worker_disconnect_delay``.
        Raises ``ValueError`` (:class:`StateFormatError`) on another version or
        malformed content, leaving the current state untouched.
        """
        new = SchedulerState(self._config.disable_persist, self._config.worker_disconnect_delay,
                             self._config.retry_delay)
        load_into(new, state, self._clock())
        self._state = new

    def drain_changes(self) -> dict[str, dict[str, Any] | None]:
        """Records of the steps changed since the last call (a removed step's tombstone, or ``None``)."""
        return dict(self.iter_changes())

    def iter_changes(self) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """:meth:`drain_changes` as ``(step id, record)`` pairs made one at a time.

        The set of changed steps is taken (and emptied) now; the records are
        made as the pairs are consumed, which must happen before the scheduler
        changes again. A request that adds a step with 100,000 new dependencies
        changes 100,000 records: as a dict of dicts that is ~200 MB at once,
        one at a time it is one record.
        """
        st = self._state
        if not isinstance(st.dirty, set):
            raise RuntimeError("this scheduler does not record its changes: create it with record_changes=True")
        dirty, st.dirty = st.dirty, set()
        deps_changed, st.deps_changed = st.deps_changed, set()
        steps = st.steps
        return ((i, compact_step_record(steps[i], i in deps_changed) if i in steps else removed_step_record(st, i))
                for i in dirty)

    def apply_changes(self, changes: Mapping[str, dict[str, Any] | None]) -> None:
        """Apply :meth:`drain_changes` output (journal replay); all records are checked first."""
        apply_records(self._state, changes, self._clock())

    def drain_worker_changes(self) -> dict[str, dict[str, Any] | None]:
        """Workers changed since the last call: ``{worker id: record with its batchers, or None if it left}``.

        Only what a restart needs: a worker's registration (info, host),
        whether it is disabled, its queued messages and its batchers; not the
        times of its last calls (every worker counts as just seen after a restart).
        """
        st = self._state
        if not isinstance(st.workers_changed, set):
            raise RuntimeError("this scheduler does not record its changes: create it with record_changes=True")
        changed, st.workers_changed = st.workers_changed, set()
        return {wid: worker_change_record(st, wid) for wid in changed}

    def apply_worker_changes(self, changes: Mapping[str, dict[str, Any] | None]) -> None:
        """Apply :meth:`drain_worker_changes` output (journal replay); all records are checked first."""
        apply_worker_records(self._state, changes, self._clock())

    def validate_state(self) -> None:
        """Check every index against the records; raises :class:`SchedulerStateError` (tests call it)."""
        self._state.validate()


#: add_step's parameters and defaults, for the bulk add_steps.
_ADD_STEP_DEFAULTS: dict[str, Any] = {
    name: (None if p.default is inspect.Parameter.empty else p.default)
    for name, p in RPC_METHODS["add_step"].parameters.items()
}
