"""The scheduler's memory: step and worker records, and the indexes that keep ``get_work`` fast.

:class:`trun.scheduler.Scheduler` decides *what* happens (policies, RPC
semantics); :class:`SchedulerState` holds the records and keeps every derived
index consistent with them, so that no request has to scan all known steps:

* ``by_status``: status -> ids of the steps that have it.
* ``rdeps``: step id -> ids of the steps that list it as a dependency (the id
  may be unknown: a dependency nobody has added yet).
* per step, ``n_unfinished`` (dependencies that are missing or not DONE) and
  ``n_blocking`` (dependencies that are DISABLED, or PENDING behind a DISABLED
  one), updated incrementally when a dependency changes (in a dependency
  *cycle* of PENDING steps a blocking mark can outlive its cause; such steps
  never run anyway);
* the ready queue (:class:`ReadyQueue`): heaps (:class:`RankHeap`) of PENDING
  steps whose dependencies are all DONE, one per (worker, resource signature), plus
  one per resource signature holding every runnable ready step (assistants);
* per worker: the steps it may run, the steps it is a stakeholder of, the steps
  it is running, and the ``count_pending`` counters;
* ``used``: resources held by RUNNING steps; ``batches``: batch id -> members;
* ``deadlines``: a heap of due times (retries, re-enables, removals, worker
  timeouts) so that pruning only looks at what is due.

Mutation protocol (hazard: get it wrong and the indexes drift). A step's
fields that the indexes derive from (status, deps, workers, resources,
priority, worker_running, stakeholders, remove, ...) may only change between
``begin(step)`` and ``end(step)``: ``begin`` takes the step out of every index,
``end`` puts it back and tells its dependents when its DONE-ness or blocking
changed. Changes of dependents triggered from there leave a step that is
itself between ``begin`` and ``end`` detached; its own ``end`` finishes the
job. The status changes every step goes through (a placeholder made for a new
dependency, PENDING -> RUNNING of a ready step, RUNNING -> DONE outside a
batch) have dedicated methods (:meth:`~SchedulerState.new_placeholder`,
:meth:`~SchedulerState.started`, :meth:`~SchedulerState.finished`) that update
only the indexes such a change moves, in the cases their docstrings state.
:meth:`SchedulerState.validate` recomputes every index from the records
and raises :class:`SchedulerStateError` on any difference; tests run it after
every call.

Durable records (plain dicts for ``dump_state``/``drain_changes``) are made
and parsed in :mod:`trun.scheduler_records`.
"""
from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from trun.step_status import (
    BATCH_RUNNING,
    DISABLED,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    UNKNOWN,
    StepStatus,
)

__all__ = [
    "EMPTY_MAP",
    "NO_IDS",
    "RUNNING_STATUSES",
    "STATE_VERSION",
    "TRANSITIONS",
    "RankHeap",
    "ReadyQueue",
    "SchedulerState",
    "SchedulerStateError",
    "StateFormatError",
    "StepRecord",
    "WorkerRecord",
    "resource_signature",
]

#: Version of the dicts written by ``dump_state``; ``load_state`` refuses others.
STATE_VERSION = 1

#: Statuses in which a step is held by exactly one worker (``worker_running``).
RUNNING_STATUSES = frozenset({RUNNING, BATCH_RUNNING})

_ALL = frozenset({PENDING, RUNNING, BATCH_RUNNING, DONE, FAILED, DISABLED, UNKNOWN})

#: Every status change the scheduler may make (old -> allowed new). Staying in
#: the same status is not a change. Not listed, hence never done: anything ->
#: BATCH_RUNNING except from PENDING (only ``get_work`` builds batches);
#: RUNNING -> BATCH_RUNNING; anything -> SUSPENDED (stored as PENDING).
#: RUNNING/BATCH_RUNNING -> DISABLED happens only through the failure policy
#: (too many failures); a worker's DISABLED report for a running step is ignored.
TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    PENDING: _ALL - {PENDING},
    RUNNING: frozenset({PENDING, DONE, FAILED, DISABLED, UNKNOWN}),
    BATCH_RUNNING: frozenset({PENDING, RUNNING, DONE, FAILED, DISABLED, UNKNOWN}),
    DONE: _ALL - {DONE, BATCH_RUNNING},
    FAILED: _ALL - {FAILED, BATCH_RUNNING},
    DISABLED: _ALL - {DISABLED, BATCH_RUNNING},
    UNKNOWN: _ALL - {UNKNOWN, BATCH_RUNNING},
}

# Revoked leases remembered per step; older ones are forgotten first.
_MAX_REVOKED = 32
# Removed steps whose revoked leases are still remembered; the oldest are forgotten first.
_MAX_TOMBSTONES = 10_000
# A step id's dependents are kept in a tuple up to this many, in a set beyond:
# most steps have one or a few dependents, and a set costs 4-5 times a tuple
# (adding to a tuple copies it, which stays cheap at this size).
_RDEPS_TUPLE_MAX = 64

#: Shared empty values of record fields. Most steps never get resources, a
#: retry policy or scheduler messages, and a record holds ~10 such fields: an
#: empty dict or set each would cost ~1 KB per step at 100,000 steps. Record
#: fields are therefore never changed in place, only replaced.
NO_IDS: tuple[str, ...] = ()
EMPTY_MAP: Mapping[str, Any] = MappingProxyType({})


class _ChangesNotRecorded:
    """The stand-in for the set of changed step ids when no one reads it: adding keeps nothing."""

    __slots__ = ()

    # A builtin of one argument with no effect of note: about 35 ns a call (set.add: 18 ns),
    # against a table of every step id for a set no one drains.
    add = discard = staticmethod(id)

    def clear(self) -> None:
        pass


_NOT_RECORDED = _ChangesNotRecorded()


class SchedulerStateError(AssertionError):
    """An index disagrees with the step records: a scheduler bug (raised by ``validate``)."""


class StateFormatError(ValueError):
    """A state dict given to ``load_state``/``apply_changes`` is malformed or of another version."""


def resource_signature(resources: dict[str, int] | None) -> tuple[tuple[str, int], ...]:
    """Hashable form of a resource need; steps with equal needs share a ready-queue group."""
    if not resources:
        return ()
    return tuple(sorted(resources.items()))


class StepRecord:
    """Everything the scheduler knows about one step.

    The first block of attributes is durable (written by ``dump_state``); the
    second is derived and rebuilt by :class:`SchedulerState`.

    Most attributes are slots, set for every step. Those that only a failure,
    a disable, a deadline or a step's own messages ever set are class
    attributes holding their default instead: a step gets its own value (in a
    ``__dict__`` made on the first such write) only when one is set. That
    keeps 48 bytes and ten stores out of each of the 100,000 records of a big
    run, where nearly no step fails. They must be read and written as
    attributes (``getattr``/``setattr`` work), never through ``__slots__``.
    """

    __slots__ = (
        # durable
        "id", "status", "deps", "stakeholders", "workers", "time", "updated", "remove",
        "worker_running", "time_running", "lease", "revoked", "expl", "priority", "resources",
        "resources_running", "family", "module", "params", "param_visibilities", "accepts_messages",
        "retry_policy", "tracking_url", "runnable", "batchable", "batch_id", "seq",
        # derived
        "attached", "n_unfinished", "n_blocking", "p_done", "p_block", "ready", "counted",
        "run_indexed", "used_contrib", "heap_entry", "heap_owners",
        # the rarely set attributes below, once one is set
        "__dict__",
    )

    # -- rarely set (durable): see the class docstring
    retry: float | None = None  # FAILED -> PENDING at this time
    failures: tuple[float, ...] | list[float] = ()
    first_failure_time: float | None = None
    status_message: str | None = None
    progress_percentage: Any = None
    scheduler_message_responses: Mapping[str, Any] = EMPTY_MAP
    scheduler_disable_time: float | None = None
    # -- rarely set (derived): the due times last pushed as deadlines
    dl_retry: float | None = None
    dl_enable: float | None = None
    dl_remove: float | None = None

    def __init__(self, step_id: str, status: StepStatus, now: float, seq: int) -> None:
        self.id = step_id
        self.status = status
        #: Ids of the steps this one needs, each once (a tuple: a fifth of a set's size).
        self.deps: tuple[str, ...] = NO_IDS
        #: Workers that care about this step; it is removed once none is left.
        self.stakeholders: tuple[str, ...] = ()
        #: Workers able to run it, in the order they said so.
        self.workers: tuple[str, ...] = ()
        self.time = now  # first added
        self.updated = now  # last status change
        self.remove: float | None = None  # removed at this time (no stakeholders)
        #: The one worker holding the step; not None exactly when RUNNING/BATCH_RUNNING.
        self.worker_running: str | None = None
        self.time_running: float | None = None
        #: Incremented each time the step starts running (a fencing epoch).
        self.lease = 0
        #: Workers whose lease was taken away; their late DONE/FAILED is ignored.
        self.revoked: tuple[str, ...] = ()
        self.expl: Any = None
        self.priority: float = 0
        self.resources: Mapping[str, int] = EMPTY_MAP
        self.resources_running: Mapping[str, int] | None = None
        self.family = ""
        self.module: str | None = None
        self.params: Mapping[str, Any] = EMPTY_MAP
        self.param_visibilities: Mapping[str, int] = EMPTY_MAP
        self.accepts_messages = False
        #: Per-step overrides of retry_count / disable_hard_timeout / disable_window.
        self.retry_policy: dict[str, Any] | None = None
        self.tracking_url: str | None = None
        self.runnable = False
        self.batchable = False
        self.batch_id: str | None = None
        self.seq = seq  # tie-break of equal (priority, time): insertion order

        self.attached = False
        self.n_unfinished = 0
        self.n_blocking = 0
        # What the dependents currently believe about this step.
        self.p_done = False
        self.p_block = False
        self.ready = False
        self.counted = False
        self.run_indexed = False
        self.used_contrib: dict[str, int] | None = None
        #: The step's live ready-heap entry (None when not ready): any other entry naming it is dead.
        self.heap_entry: tuple[Any, ...] | None = None
        self.heap_owners: tuple[str | None, ...] = ()

    def __repr__(self) -> str:
        return f"StepRecord({self.id!r}, {self.status.value})"

    @property
    def blocking(self) -> bool:
        """True when a dependent's upstream status is UPSTREAM_DISABLED because of this step."""
        return self.status is DISABLED or (self.status is PENDING and self.n_blocking > 0)

    @property
    def rank_key(self) -> tuple[float, float, int]:
        """Sort key, smallest first: higher priority, then added earlier, then inserted earlier."""
        return (-self.priority, self.time, self.seq)

    @property
    def public_params(self) -> dict[str, Any]:
        """Parameters whose visibility is PUBLIC (shown in the UI and in ``display_name``)."""
        vis = self.param_visibilities
        return {k: v for k, v in self.params.items() if vis.get(k, 0) == 0}

    @property
    def hidden_params(self) -> dict[str, Any]:
        """Parameters whose visibility is HIDDEN."""
        vis = self.param_visibilities
        return {k: v for k, v in self.params.items() if vis.get(k, 0) == 1}

    @property
    def pretty_id(self) -> str:
        """``Family(a=1, b=2)`` over the public parameters, sorted by name."""
        param_str = ", ".join(f"{k}={v}" for k, v in sorted(self.public_params.items()))
        return f"{self.family}({param_str})"


class WorkerRecord:
    """A worker as the scheduler sees it: identity, liveness, messages, and per-worker indexes."""

    __slots__ = (
        "id", "alone", "reference", "last_active", "last_get_work", "started", "info", "disabled", "rpc_messages",
        "steps", "stakes", "running", "running_member", "n_pending", "n_unique", "n_last", "dl",
    )

    def __init__(self, worker_id: str, now: float) -> None:
        self.id = worker_id
        #: ``(id,)``: the worker list of every step that only this worker can run
        #: (or cares about) shares it, instead of a 48-byte tuple each.
        self.alone = (worker_id,)
        self.reference: dict[str, Any] | None = None
        self.last_active = now
        self.last_get_work: float | None = None
        self.started = now
        self.info: dict[str, Any] = {}
        self.disabled = False
        self.rpc_messages: list[dict[str, Any]] = []
        # indexes
        self.steps: set[str] = set()  # this worker is in step.workers
        self.stakes: set[str] = set()  # this worker is in step.stakeholders
        self.running: set[str] = set()  # step.worker_running == this worker
        self.running_member: set[str] = set()  # RUNNING and this worker in step.workers
        self.n_pending = 0
        self.n_unique = 0
        self.n_last = 0
        self.dl: float | None = None  # pushed timeout deadline

    def __repr__(self) -> str:
        return f"WorkerRecord({self.id!r})"

    @property
    def assistant(self) -> bool:
        """True when the worker announced itself as an assistant (runs any runnable step)."""
        return bool(self.info.get("assistant", False))

    @property
    def enabled(self) -> bool:
        return not self.disabled

    @property
    def state(self) -> str:
        """``"active"`` or ``"disabled"`` (as in ``get_work``'s ``worker_state``)."""
        return "disabled" if self.disabled else "active"


class RankHeap:
    """A min-queue of ready-heap entries; pushing entries in order costs O(1) to push and to pop.

    Steps usually become ready in the order they rank (one priority, added
    one after another), so entries that are not smaller than the last one in
    order go to a sorted run (a deque) and only the others to a binary heap.
    Popping takes the smaller of the two heads: a 100,000-step fan-in then
    pops in constant time instead of sifting a heap of 100,000 tuples.
    """

    __slots__ = ("_run", "_heap")

    def __init__(self, entries: Iterable[tuple[Any, ...]] = ()) -> None:
        self._run: deque[tuple[Any, ...]] = deque(sorted(entries))
        self._heap: list[tuple[Any, ...]] = []

    def push(self, entry: tuple[Any, ...]) -> None:
        run = self._run
        if not run or entry >= run[-1]:
            run.append(entry)
        else:
            heapq.heappush(self._heap, entry)

    def pop(self) -> tuple[Any, ...]:
        """Remove and return the smallest entry (IndexError when empty)."""
        heap = self._heap
        if heap and (not self._run or heap[0] < self._run[0]):
            return heapq.heappop(heap)
        return self._run.popleft()

    def head(self) -> tuple[Any, ...] | None:
        """The smallest entry, left in place; None when empty."""
        heap = self._heap
        run = self._run
        if heap and (not run or heap[0] < run[0]):
            return heap[0]
        return run[0] if run else None

    def __len__(self) -> int:
        return len(self._run) + len(self._heap)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """Every entry, in no particular order."""
        return itertools.chain(self._run, self._heap)


class ReadyQueue:
    """Heaps of ready steps, grouped by owner (worker id, or None for all runnable) and resource need.

    Entries are ``(-priority, time, seq, step_id, resource signature)``; an
    entry is valid while the step is ready, it *is* the step's ``heap_entry``
    (compared by identity, so that an entry of a removed step cannot pass for
    one of a new step with the same id) and the owner may still run it.
    Invalid entries are dropped lazily when they reach the top, and the heaps
    are rebuilt when dead entries outnumber live ones.
    """

    def __init__(self) -> None:
        self.heaps: dict[str | None, dict[tuple[Any, ...], RankHeap]] = {}
        self.size = 0
        self._size_after_rebuild = 0

    def push(self, owner: str | None, sig: tuple[Any, ...], entry: tuple[Any, ...]) -> None:
        groups = self.heaps.get(owner)
        if groups is None:
            groups = self.heaps[owner] = {}
        heap = groups.get(sig)
        if heap is None:
            heap = groups[sig] = RankHeap()
        heap.push(entry)
        self.size += 1

    def groups(self, owner: str | None) -> dict[tuple[Any, ...], RankHeap]:
        return self.heaps.get(owner, {})

    def needs_rebuild(self, n_ready: int) -> bool:
        return self.size > 2 * self._size_after_rebuild + 4 * n_ready + 8192

    def clear(self) -> None:
        self.heaps.clear()
        self.size = 0

    def rebuilt(self) -> None:
        self._size_after_rebuild = self.size


class SchedulerState:
    """Records plus derived indexes; see the module docstring for the mutation protocol."""

    def __init__(self, disable_persist: float = 86400.0, worker_disconnect_delay: float = 60.0,
                 retry_delay: float = 900.0, record_changes: bool = True) -> None:
        self.disable_persist = disable_persist
        self.worker_disconnect_delay = worker_disconnect_delay
        self.retries = retry_delay >= 0  # a negative retry_delay never retries: no deadlines
        self.steps: dict[str, StepRecord] = {}
        self.workers: dict[str, WorkerRecord] = {}
        #: worker id -> family -> (batched param names, max batch size)
        self.batchers: dict[str, dict[str, tuple[list[str], float]]] = {}
        self.by_status: dict[StepStatus, set[str]] = {s: set() for s in StepStatus}
        #: dependency id -> its dependents: a tuple while few, a set beyond _RDEPS_TUPLE_MAX.
        self.rdeps: dict[str, tuple[str, ...] | set[str]] = {}
        self.ready = ReadyQueue()
        #: Whether the ready queue keeps the heaps of *all* runnable steps (owner
        #: None), which only assistants use: off until the first assistant asks
        #: for work (see :meth:`keep_any_heaps`), so a plain run pushes each
        #: ready step once instead of twice.
        self.any_heaps = False
        #: How many steps are ready (PENDING, every dependency DONE); their ``ready`` flag says which.
        self.n_ready = 0
        self.used: dict[str, int] = {}
        self.batches: dict[str, set[str]] = {}
        self.deadlines: list[tuple[float, int, str, str]] = []
        self.unstaked: set[str] = set()
        #: Ids of the steps changed since the last drain (see Scheduler.iter_changes); nothing
        #: is kept when no one drains them (a scheduler in the worker's own process).
        self.dirty: set[str] | _ChangesNotRecorded = set() if record_changes else _NOT_RECORDED
        #: Of those, the steps that are new or whose dependencies changed: a change record of
        #: any other step need not repeat its dependencies (see compact_step_record).
        self.deps_changed: set[str] | _ChangesNotRecorded = set() if record_changes else _NOT_RECORDED
        #: Ids of the workers whose durable record or batchers changed (or that left) since the last
        #: drain (see Scheduler.drain_worker_changes).
        self.workers_changed: set[str] | _ChangesNotRecorded = set() if record_changes else _NOT_RECORDED
        #: Removed step id -> its revoked leases (oldest removal first). A timed-out
        #: worker may still be running the step and report it late, after the step
        #: was removed and added again: the new record must still ignore it.
        self.tombstones: dict[str, tuple[str, ...]] = {}
        #: No step's priority is below this (a new record has 0; see :meth:`note_priority`).
        #: While every step has it, raising a step's priority has no dependency to raise.
        self.lowest_priority: float = 0
        self._seq = itertools.count()
        self._dl_seq = itertools.count()

    # ------------------------------------------------------------ workers
    def get_worker(self, worker_id: str, now: float) -> WorkerRecord:
        """The worker's record, created (as just seen) if unknown."""
        w = self.workers.get(worker_id)
        if w is None:
            w = self.workers[worker_id] = WorkerRecord(worker_id, now)
            self.push_worker_deadline(w)
            self.workers_changed.add(worker_id)
        return w

    def push_worker_deadline(self, w: WorkerRecord) -> None:
        """Schedule a look at ``w`` when it would time out if it stays silent."""
        w.dl = w.last_active + self.worker_disconnect_delay
        self.push_deadline(w.dl, "worker", w.id)

    # ------------------------------------------------------------ deadlines
    def push_deadline(self, when: float, kind: str, key: str) -> None:
        """``kind`` is ``retry``/``enable``/``remove`` (key: step id) or ``worker`` (key: worker id)."""
        heapq.heappush(self.deadlines, (when, next(self._dl_seq), kind, key))

    # ------------------------------------------------------------ steps
    def note_priority(self, priority: float) -> None:
        """Keep :attr:`lowest_priority` true: call after giving a step a priority other than by raising it."""
        if priority < self.lowest_priority:
            self.lowest_priority = priority

    def new_step(self, step_id: str, status: StepStatus, now: float, priority: float = 0) -> StepRecord:
        """Create a step, *detached*: set its fields, then call :meth:`end` to index it.

        Until then its dependents count it as missing (unfinished, not blocking),
        which is what its ``p_done``/``p_block`` say.
        """
        s = StepRecord(step_id, status, now, next(self._seq))
        s.priority = priority
        self.note_priority(priority)
        s.revoked = self.tombstones.pop(step_id, ())
        self.steps[step_id] = s
        self.dirty.add(step_id)
        self.deps_changed.add(step_id)
        return s

    def remove_step(self, s: StepRecord) -> None:
        """Forget a step; its dependents count it as missing from now on."""
        self.detach(s)
        for w_id in s.workers:
            self.workers[w_id].steps.discard(s.id)
        for w_id in s.stakeholders:
            self.workers[w_id].stakes.discard(s.id)
        for dep in s.deps:
            self._unlink(dep, s.id)
        del self.steps[s.id]
        self.unstaked.discard(s.id)
        flipped = self._tell_dependents(s.id, -int(s.p_done), -int(s.p_block))
        s.p_done = s.p_block = False
        for r in flipped:
            self.sync(r)
        self.dirty.add(s.id)

    def bury_step(self, s: StepRecord) -> None:
        """Remove a step for good, remembering its revoked leases for a step added later under its id."""
        self.remove_step(s)
        self.set_tombstone(s.id, s.revoked)

    def set_tombstone(self, step_id: str, revoked: Iterable[str]) -> None:
        """Remember (or, with no ``revoked``, forget) the revoked leases of the removed step ``step_id``."""
        self.tombstones.pop(step_id, None)
        revoked = tuple(revoked)
        if revoked:
            self.tombstones[step_id] = revoked
            while len(self.tombstones) > _MAX_TOMBSTONES:
                del self.tombstones[next(iter(self.tombstones))]

    def begin(self, s: StepRecord) -> None:
        """Take ``s`` out of the indexes before changing indexed fields."""
        self.detach(s)

    def end(self, s: StepRecord) -> None:
        """Put ``s`` back into the indexes and tell its dependents what changed."""
        self.attach(s)
        status = s.status
        if (status is DONE) != s.p_done or (status is DISABLED or (status is PENDING and s.n_blocking > 0)) != s.p_block:
            self.sync(s)  # else the dependents' counters are right already (most changes)
        self.dirty.add(s.id)

    # The status changes every step goes through, indexed directly: begin()
    # and end() rebuild every index of a step whatever changed; these update
    # only the indexes that a change from a known status moves. Each is valid
    # in the case its docstring states, which the caller checks (it uses
    # begin/end otherwise); test/test_scheduler_fast_paths.py runs the same
    # calls both ways and compares.
    def new_placeholder(self, step_id: str, worker_id: str, priority: float, now: float) -> StepRecord:
        """A new UNKNOWN step staked by ``worker_id``, indexed: new_step, add_stakeholder and end in one.

        Such a step's only entries are in its status set and its stakeholder's
        ``stakes`` (it is not counted, ready, running, unstaked or due), and
        it is neither DONE nor blocking, which is what its dependents assume.
        """
        s = self.new_step(step_id, UNKNOWN, now, priority)
        w = self.workers[worker_id]
        s.stakeholders = w.alone
        w.stakes.add(step_id)
        self.by_status[UNKNOWN].add(step_id)
        s.attached = True
        return s

    def scheduled(self, s: StepRecord, w: WorkerRecord) -> None:
        """Re-index a placeholder whose status just went from UNKNOWN to PENDING, now runnable by ``w`` alone.

        Valid for a step without dependencies, workers or resources, staked
        by ``w``: it becomes counted and ready, and since it is not blocking
        (as an UNKNOWN step was not), its dependents need not hear of it.
        """
        step_id = s.id
        self._leave_status(UNKNOWN, step_id)
        self.by_status[PENDING].add(step_id)
        s.workers = w.alone
        w.steps.add(step_id)
        s.runnable = True
        self._count(s, 1)
        s.counted = True
        s.ready = True
        self.n_ready += 1
        self._push_ready(s)
        self.dirty.add(step_id)

    def started(self, s: StepRecord) -> None:
        """Re-index a *ready* step whose status just went from PENDING to RUNNING, nothing else indexed changing.

        Its ``worker_running`` and ``resources_running`` are the new ones; a
        ready step is not blocking (no DISABLED dependency), so no dependent
        needs to hear about it.
        """
        step_id = s.id
        self.by_status[PENDING].discard(step_id)
        self.by_status[RUNNING].add(step_id)
        if s.counted:
            self._count(s, -1)
            s.counted = False
        s.ready = False
        self.n_ready -= 1
        s.heap_entry = None
        s.heap_owners = ()
        self._index_running(s)
        self.workers[s.worker_running].running.add(step_id)  # type: ignore[index]
        self.dirty.add(step_id)

    def finished(self, s: StepRecord, holder: str) -> None:
        """Re-index a step outside a batch whose status just went from RUNNING (by ``holder``) to DONE.

        Nothing else indexed may have changed; its dependents hear that it is DONE.
        """
        step_id = s.id
        self.by_status[RUNNING].discard(step_id)
        self.by_status[DONE].add(step_id)
        self._unindex_running(s)
        w = self.workers.get(holder)
        if w is not None:
            w.running.discard(step_id)
        # Neither RUNNING nor DONE is blocking: only DONE-ness is news, and it
        # flips no dependent's blocking (see _tell_dependents), so sync() has
        # nothing to propagate further.
        s.p_done = True
        self._tell_dependents(step_id, 1, 0)
        self.dirty.add(step_id)

    def set_deps(self, s: StepRecord, deps: Iterable[str]) -> None:
        """Replace the dependencies of a detached step."""
        new = tuple(dict.fromkeys(deps)) if deps else NO_IDS  # most steps are leaves
        old = s.deps
        if old == new:
            return  # the usual re-add: counters and links are right already
        if old:
            old_ids, new_ids = set(old), set(new)
            for d in old_ids - new_ids:
                self._unlink(d, s.id)
            self._link(new_ids - old_ids, s.id)
        else:  # the first dependencies (a fan-in's root has many): no sets to compare
            self._link(new, s.id)
        s.deps = new
        self.deps_changed.add(s.id)
        self._recount(s)

    def add_deps(self, s: StepRecord, deps: Iterable[str]) -> None:
        """Add dependencies to a detached step."""
        self.set_deps(s, itertools.chain(s.deps, deps))

    def _recount(self, s: StepRecord) -> None:
        steps = self.steps
        unfinished = blocking = 0
        for d in s.deps:
            dep = steps.get(d)
            if dep is None or not dep.p_done:
                unfinished += 1
            if dep is not None and dep.p_block:
                blocking += 1
        s.n_unfinished = unfinished
        s.n_blocking = blocking

    def _link(self, deps: Iterable[str], step_id: str) -> None:
        """Enter ``step_id`` among the dependents of each of ``deps``.

        Callers link only dependencies the step did not have: ``step_id`` is
        not among their dependents yet (looking would cost a comparison per
        dependent, for each of them: quadratic when a layer of steps all need
        the same few dozen).
        """
        rdeps = self.rdeps
        alone = (step_id,)  # what each dependency without other dependents gets: one tuple, shared
        for dep in deps:
            users = rdeps.get(dep)
            if users is None:
                rdeps[dep] = alone
            elif type(users) is tuple:
                rdeps[dep] = users + alone if len(users) < _RDEPS_TUPLE_MAX else {*users, step_id}
            else:
                users.add(step_id)

    def _unlink(self, dep: str, step_id: str) -> None:
        users = self.rdeps.get(dep)
        if users is None:
            return
        if type(users) is tuple:
            users = tuple(u for u in users if u != step_id)
            if users:
                self.rdeps[dep] = users
            else:
                del self.rdeps[dep]
        else:
            users.discard(step_id)
            if not users:
                del self.rdeps[dep]

    # Worker lists of a step are tuples: a step has one or a few, and a tuple
    # of one costs a fifth of a set or dict of one.
    def add_worker_to_step(self, s: StepRecord, worker_id: str) -> None:
        """Record that ``worker_id`` can run the detached step ``s``."""
        if worker_id not in s.workers:
            w = self.workers[worker_id]
            s.workers = s.workers + (worker_id,) if s.workers else w.alone
            w.steps.add(s.id)

    def remove_worker_from_step(self, s: StepRecord, worker_id: str) -> None:
        if worker_id in s.workers:
            s.workers = tuple(w for w in s.workers if w != worker_id)
            self.workers[worker_id].steps.discard(s.id)

    def add_stakeholder(self, s: StepRecord, worker_id: str) -> None:
        if worker_id not in s.stakeholders:
            w = self.workers[worker_id]
            s.stakeholders = s.stakeholders + (worker_id,) if s.stakeholders else w.alone
            w.stakes.add(s.id)

    def remove_stakeholder(self, s: StepRecord, worker_id: str) -> None:
        if worker_id in s.stakeholders:
            s.stakeholders = tuple(w for w in s.stakeholders if w != worker_id)
            self.workers[worker_id].stakes.discard(s.id)

    def revoke(self, s: StepRecord, worker_id: str) -> None:
        """Remember that ``worker_id`` no longer holds ``s`` (its late reports are ignored)."""
        if worker_id not in s.revoked:
            s.revoked = (s.revoked + (worker_id,))[-_MAX_REVOKED:]

    @staticmethod
    def unrevoke(s: StepRecord, worker_id: str) -> None:
        """``worker_id`` holds ``s`` again (a new lease): its reports count again."""
        if worker_id in s.revoked:
            s.revoked = tuple(w for w in s.revoked if w != worker_id)

    def batch_members(self, batch_id: str) -> list[StepRecord]:
        """BATCH_RUNNING steps of a batch, in a stable order."""
        return [self.steps[i] for i in sorted(self.batches.get(batch_id, ()))]

    # ------------------------------------------------------------ indexing
    def detach(self, s: StepRecord) -> None:
        """Remove ``s``'s contributions from every index (no-op when already detached)."""
        if not s.attached:
            return
        s.attached = False
        self._leave_status(s.status, s.id)
        if s.counted:
            self._count(s, -1)
            s.counted = False
        if s.ready:
            s.ready = False
            self.n_ready -= 1
        if s.run_indexed:
            self._unindex_running(s)
        if s.worker_running is not None:
            w = self.workers.get(s.worker_running)
            if w is not None:
                w.running.discard(s.id)
        if s.batch_id is not None and s.status is BATCH_RUNNING:
            members = self.batches.get(s.batch_id)
            if members is not None:
                members.discard(s.id)
                if not members:
                    del self.batches[s.batch_id]

    def _leave_status(self, status: StepStatus, step_id: str) -> None:
        same_status = self.by_status[status]
        same_status.discard(step_id)
        if not same_status:
            # A set keeps the table of its largest size, emptied or not: the
            # placeholders of a 100,000-step fan-in all leave UNKNOWN early on.
            same_status.clear()

    def attach(self, s: StepRecord) -> None:
        """Add ``s``'s contributions to every index from its current fields."""
        if s.attached:
            self.detach(s)
        s.attached = True
        status = s.status
        self.by_status[status].add(s.id)
        if status is FAILED or (status is PENDING and s.n_blocking == 0):
            self._count(s, 1)
            s.counted = True
        if status is PENDING and s.n_unfinished == 0:
            s.ready = True
            self.n_ready += 1
            self._push_ready(s)
        else:
            s.heap_entry = None
            s.heap_owners = ()
        if status is RUNNING:
            self._index_running(s)
        if s.worker_running is not None:
            self.workers[s.worker_running].running.add(s.id)
        if s.batch_id is not None and status is BATCH_RUNNING:
            self.batches.setdefault(s.batch_id, set()).add(s.id)
        if not s.stakeholders and s.remove is None:
            self.unstaked.add(s.id)
        else:
            self.unstaked.discard(s.id)
        # deadlines: push when the due time changed since the last push
        if status is FAILED and self.retries and s.retry is not None and s.dl_retry != s.retry:
            s.dl_retry = s.retry
            self.push_deadline(s.retry, "retry", s.id)
        if status is DISABLED and s.scheduler_disable_time is not None and s.dl_enable != s.scheduler_disable_time:
            s.dl_enable = s.scheduler_disable_time
            self.push_deadline(s.scheduler_disable_time + self.disable_persist, "enable", s.id)
        if s.remove is not None and s.dl_remove != s.remove:
            s.dl_remove = s.remove
            self.push_deadline(s.remove, "remove", s.id)

    def _index_running(self, s: StepRecord) -> None:
        # The RUNNING step's resources in use, and its place in running_member.
        held = s.resources_running if s.resources_running is not None else s.resources
        if held:
            contrib = dict(held)
            used = self.used
            for r, a in contrib.items():
                if a:
                    used[r] = used.get(r, 0) + a
            s.used_contrib = contrib
        workers = self.workers
        for w_id in s.workers:
            workers[w_id].running_member.add(s.id)
        s.run_indexed = True

    def _unindex_running(self, s: StepRecord) -> None:
        contrib = s.used_contrib
        if contrib:
            used = self.used
            for r, a in contrib.items():
                left = used.get(r, 0) - a
                if left:
                    used[r] = left
                else:
                    used.pop(r, None)
        s.used_contrib = None
        workers = self.workers
        for w_id in s.workers:
            workers[w_id].running_member.discard(s.id)
        s.run_indexed = False

    def _count(self, s: StepRecord, sign: int) -> None:
        ws = s.workers
        if not ws:
            return
        workers = self.workers
        if len(ws) == 1:  # the usual case: the step is unique to its worker, and last scheduled by it
            w = workers[ws[0]]
            w.n_pending += sign
            w.n_unique += sign
            w.n_last += sign
            return
        for w_id in ws:
            workers[w_id].n_pending += sign
        workers[next(reversed(ws))].n_last += sign

    def _set_ready(self, s: StepRecord, ready: bool) -> None:
        # What detach + attach do to an attached PENDING step whose readiness alone changes.
        s.ready = ready
        if ready:
            self.n_ready += 1
            self._push_ready(s)
        else:
            self.n_ready -= 1
            s.heap_entry = None
            s.heap_owners = ()

    def _push_ready(self, s: StepRecord) -> None:
        resources = s.resources
        sig = resource_signature(resources) if resources else ()
        owners: tuple[str | None, ...] = s.workers + (None,) if s.runnable and self.any_heaps else s.workers
        entry = s.heap_entry
        rank = -s.priority
        if entry is None or entry[0] != rank or entry[1] != s.time or entry[2] != s.seq or entry[4] != sig:
            entry = s.heap_entry = (rank, s.time, s.seq, s.id, sig)  # the old entries are dead
            new = owners
        else:
            old = s.heap_owners
            new = tuple(o for o in owners if o not in old)
        s.heap_owners = owners
        for owner in new:
            self.ready.push(owner, sig, entry)
        if self.ready.needs_rebuild(self.n_ready):
            self.rebuild_ready()

    def entry_valid(self, owner: str | None, entry: tuple[Any, ...]) -> StepRecord | None:
        """The step of a heap entry if the entry is still live for ``owner``, else None."""
        s = self.steps.get(entry[3])
        if s is None or not s.ready or s.heap_entry is not entry:
            return None
        if owner is None:
            return s if s.runnable else None
        return s if owner in s.workers else None

    def keep_any_heaps(self) -> None:
        """Start keeping the heaps of all runnable steps (an assistant is asking for work)."""
        if not self.any_heaps:
            self.any_heaps = True
            self.rebuild_ready()

    def rebuild_ready(self) -> None:
        """Drop dead heap entries by rebuilding every heap from the ready steps."""
        self.ready.clear()
        entries: dict[str | None, dict[tuple[Any, ...], list[tuple[Any, ...]]]] = {}
        steps = self.steps
        # Ready steps are PENDING; without a set of their own, a rebuild (after
        # thousands of dead entries) walks the PENDING ones.
        for step_id in self.by_status[PENDING]:
            s = steps[step_id]
            if not s.ready:
                continue
            sig = resource_signature(s.resources)
            owners: tuple[str | None, ...] = s.workers + (None,) if s.runnable and self.any_heaps else s.workers
            entry = s.heap_entry = (-s.priority, s.time, s.seq, step_id, sig)
            s.heap_owners = owners
            for owner in owners:
                entries.setdefault(owner, {}).setdefault(sig, []).append(entry)
                self.ready.size += 1
        for owner, groups in entries.items():
            self.ready.heaps[owner] = {sig: RankHeap(group) for sig, group in groups.items()}
        self.ready.rebuilt()

    def sync(self, s: StepRecord) -> None:
        """Tell dependents of ``s`` (transitively for blocking) what changed about it."""
        stack = [s]
        while stack:
            x = stack.pop()
            if not x.attached or x.id not in self.steps:
                continue
            done = x.status is DONE
            blocking = x.blocking
            d_done = int(done) - int(x.p_done)
            d_block = int(blocking) - int(x.p_block)
            if not d_done and not d_block:
                continue
            x.p_done = done
            x.p_block = blocking
            stack.extend(self._tell_dependents(x.id, d_done, d_block))

    def _tell_dependents(self, step_id: str, d_done: int, d_block: int) -> list[StepRecord]:
        """Adjust the dependents' counters; return those whose blocking changed."""
        flipped = []
        if not d_done and not d_block:
            return flipped
        steps = self.steps
        for rid in tuple(self.rdeps.get(step_id, ())):
            r = steps[rid]
            if not d_block and r.attached:
                # Of the indexes, only readiness depends on n_unfinished (a
                # fan-in root hears this from each of its leaves), and the
                # dependent's own blocking does not change.
                n = r.n_unfinished = r.n_unfinished - d_done
                if r.status is PENDING and (n == 0) != r.ready:
                    self._set_ready(r, n == 0)
                continue
            was_attached = r.attached
            if was_attached:
                self.detach(r)
            r.n_unfinished -= d_done
            r.n_blocking += d_block
            if was_attached:
                self.attach(r)
                if r.blocking != r.p_block:
                    flipped.append(r)
        return flipped

    def upsert_step(self, s: StepRecord, now: float) -> None:
        """Replace (or create) a step from a parsed record (:func:`step_from_record`), keeping indexes right."""
        old = self.steps.get(s.id)
        if old is not None:
            self.remove_step(old)
        self.tombstones.pop(s.id, None)
        self.note_priority(s.priority)
        for w_id in itertools.chain(s.workers, s.stakeholders, [s.worker_running] if s.worker_running else []):
            self.get_worker(w_id, now)
        deps, workers, stakeholders = s.deps, s.workers, s.stakeholders
        s.deps, s.workers, s.stakeholders = NO_IDS, (), ()
        self.steps[s.id] = s
        self._link(deps, s.id)
        s.deps = deps
        self._recount(s)
        for w_id in workers:
            self.add_worker_to_step(s, w_id)
        for w_id in stakeholders:
            self.add_stakeholder(s, w_id)
        self._seq = itertools.count(max(next(self._seq), s.seq + 1))
        self.attach(s)
        self.sync(s)
        self.dirty.discard(s.id)
        self.deps_changed.discard(s.id)

    def discard_record(self, step_id: str) -> None:
        s = self.steps.get(step_id)
        if s is not None:
            self.remove_step(s)
        self.dirty.discard(step_id)
        self.deps_changed.discard(step_id)

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Recompute every index from the records; raise :class:`SchedulerStateError` on a difference."""
        errors: list[str] = []
        steps, workers = self.steps, self.workers

        def check(ok: bool, message: str) -> None:
            if not ok:
                errors.append(message)

        for status, ids in self.by_status.items():
            expected = {sid for sid, s in steps.items() if s.status is status}
            check(ids == expected, f"status index {status.value}: has {sorted(ids ^ expected)[:5]} wrong")
        rdeps: dict[str, set[str]] = {}
        for sid, s in steps.items():
            for d in s.deps:
                rdeps.setdefault(d, set()).add(sid)
        check(rdeps == {d: set(users) for d, users in self.rdeps.items()},
              "reverse dependency index differs from the steps' deps")
        check(all(len(set(users)) == len(users) for users in self.rdeps.values() if type(users) is tuple),
              "a dependents tuple has duplicates")
        check(not self.tombstones.keys() & steps.keys(), "a known step still has a tombstone")
        low = [sid for sid, s in steps.items() if s.priority < self.lowest_priority]
        check(not low, f"steps {sorted(low)[:5]} rank below lowest_priority {self.lowest_priority}")
        used: dict[str, int] = {}
        batches: dict[str, set[str]] = {}
        counters = {wid: [0, 0, 0] for wid in workers}
        expected_sets: dict[str, tuple[set[str], set[str], set[str], set[str]]] = {
            wid: (set(), set(), set(), set()) for wid in workers}
        ready_ids = set()
        unstaked = set()
        live_entries: set[tuple[str | None, str]] = set()
        live_steps: set[str] = set()
        for owner, groups in self.ready.heaps.items():
            for sig, heap in groups.items():
                for entry in heap:
                    s = self.entry_valid(owner, entry)
                    if s is not None:
                        check(entry[4] == sig,
                              f"ready entry of {s.id} is in the wrong resource group")
                        live_entries.add((owner, s.id))
                        live_steps.add(s.id)
        for sid, s in steps.items():
            where = f"step {sid!r}"
            check(s.attached, f"{where} is detached")
            n_unfinished = sum(1 for d in s.deps if d not in steps or steps[d].status is not DONE)
            n_blocking = sum(1 for d in s.deps if d in steps and steps[d].blocking)
            check(s.n_unfinished == n_unfinished, f"{where}: n_unfinished {s.n_unfinished} != {n_unfinished}")
            check(s.n_blocking == n_blocking, f"{where}: n_blocking {s.n_blocking} != {n_blocking}")
            check(s.p_done == (s.status is DONE), f"{where}: dependents not told about DONE")
            check(s.p_block == s.blocking, f"{where}: dependents not told about blocking")
            running = s.status in RUNNING_STATUSES
            check((s.worker_running is not None) == running,
                  f"{where}: worker_running={s.worker_running!r} with status {s.status.value}")
            check(s.batch_id is None or running, f"{where}: batch_id set while {s.status.value}")
            is_ready = s.status is PENDING and n_unfinished == 0
            check(s.ready == is_ready, f"{where}: ready flag {s.ready} != {is_ready}")
            if is_ready:
                ready_ids.add(sid)
                for owner in itertools.chain(s.workers, [None] if s.runnable and self.any_heaps else []):
                    check((owner, sid) in live_entries, f"{where}: no live ready entry for owner {owner!r}")
            else:
                check(sid not in live_steps, f"{where}: live ready entry but not ready")
            for w_id in itertools.chain(s.workers, s.stakeholders):
                check(w_id in workers, f"{where}: refers to unknown worker {w_id!r}")
            if s.worker_running is not None:
                check(s.worker_running in workers, f"{where}: run by unknown worker {s.worker_running!r}")
                if s.worker_running in workers:
                    expected_sets[s.worker_running][2].add(sid)
            for w_id in s.workers:
                if w_id in expected_sets:
                    expected_sets[w_id][0].add(sid)
                    if s.status is RUNNING:
                        expected_sets[w_id][3].add(sid)
            for w_id in s.stakeholders:
                if w_id in expected_sets:
                    expected_sets[w_id][1].add(sid)
            counted = s.status is FAILED or (s.status is PENDING and n_blocking == 0)
            check(s.counted == counted, f"{where}: counted flag {s.counted} != {counted}")
            if counted and s.workers:
                for w_id in s.workers:
                    if w_id in counters:
                        counters[w_id][0] += 1
                        if len(s.workers) == 1:
                            counters[w_id][1] += 1
                last = next(reversed(s.workers))
                if last in counters:
                    counters[last][2] += 1
            if s.status is RUNNING:
                for r, a in (s.resources_running if s.resources_running is not None else s.resources).items():
                    used[r] = used.get(r, 0) + a
            if s.status is BATCH_RUNNING and s.batch_id is not None:
                batches.setdefault(s.batch_id, set()).add(sid)
            if not s.stakeholders and s.remove is None:
                unstaked.add(sid)
        check(len(ready_ids) == self.n_ready, f"{self.n_ready} steps counted as ready, {len(ready_ids)} are")
        check({r: a for r, a in used.items() if a} == self.used,
              f"used resources {self.used} != {used}")
        check(batches == self.batches, f"batch index {self.batches} != {batches}")
        check(unstaked == self.unstaked, "set of steps without stakeholders differs")
        deadline_keys = {(kind, key) for _, _, kind, key in self.deadlines}
        for sid, s in steps.items():
            if s.status is FAILED and self.retries and s.retry is not None:
                check(("retry", sid) in deadline_keys, f"step {sid!r}: no retry deadline")
            if s.status is DISABLED and s.scheduler_disable_time is not None:
                check(("enable", sid) in deadline_keys, f"step {sid!r}: no re-enable deadline")
            if s.remove is not None:
                check(("remove", sid) in deadline_keys, f"step {sid!r}: no removal deadline")
        for wid, w in workers.items():
            check(("worker", wid) in deadline_keys, f"worker {wid!r}: no timeout deadline")
            exp_steps, exp_stakes, exp_running, exp_member = expected_sets[wid]
            check(w.steps == exp_steps, f"worker {wid!r}: steps index differs")
            check(w.stakes == exp_stakes, f"worker {wid!r}: stakeholder index differs")
            check(w.running == exp_running, f"worker {wid!r}: running index differs")
            check(w.running_member == exp_member, f"worker {wid!r}: running-member index differs")
            check([w.n_pending, w.n_unique, w.n_last] == counters[wid],
                  f"worker {wid!r}: counters {[w.n_pending, w.n_unique, w.n_last]} != {counters[wid]}")
        if errors:
            raise SchedulerStateError("scheduler state is inconsistent:\n  " + "\n  ".join(errors[:20]))
