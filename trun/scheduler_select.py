"""How ``get_work`` picks the step (or batch) for a worker, touching only the heads of the ready heaps.

Luigi sorts every PENDING and RUNNING step on each ``get_work`` and walks the
list. Here the ready steps already sit in heaps ordered by rank (higher
priority, then added earlier), one heap per (worker, resource need), see
:mod:`trun.scheduler_state`:

* a worker none of whose ready steps needs resources (and not an assistant)
  simply gets the top of its heap;
* otherwise :func:`select` walks, in rank order, the *heads* of the heaps of
  the asking worker and of every other active worker, merged with the running
  steps, and applies Luigi's greedy rule: a running step of an active worker
  takes one of that worker's process slots and its resources; a ready step
  that fits the resources reserved so far is the answer if the asking worker
  may run it and it fits the resources in use, else it is reserved for the
  first of its workers with a free slot. A heap whose head does not fit is left
  alone (reservations only grow, so nothing behind it would fit either), and a
  heap of a worker without free slots stops counting. The walk is therefore
  bounded by the number of heaps plus process slots, not by the number of steps,
  and steps blocked by resources keep their place.

Nothing here changes a step; only heap housekeeping (dropping dead entries,
putting back the live ones it looked at) happens.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from typing import Any

from trun.scheduler_state import RankHeap, SchedulerState, StepRecord, WorkerRecord, resource_signature
from trun.step_status import RUNNING

__all__ = ["collect_batch", "select"]


def _processes(info: Mapping[str, Any]) -> int:
    n = info.get("workers", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) else 1


class _Stream:
    """One ready heap walked in rank order (popped entries are put back afterwards)."""

    __slots__ = ("heap_owner", "sig", "heap", "popped", "owner", "mine", "alive", "head")

    def __init__(self, heap_owner: str | None, sig: tuple[Any, ...], heap: RankHeap, mine: bool) -> None:
        self.heap_owner = heap_owner  # whose heap (None: all runnable steps)
        self.sig = sig
        self.heap = heap
        self.popped: list[Any] = []
        self.owner = heap_owner  # whose process slots this stream may reserve for
        self.mine = mine  # may still give the asking worker its step
        self.alive = True
        self.head: Any = None

    def peek(self, state: SchedulerState) -> Any:
        heap = self.heap
        while heap:
            entry = heap.head()
            if state.entry_valid(self.heap_owner, entry) is not None:
                self.head = entry
                return entry
            heap.pop()
            state.ready.size -= 1
        self.head = None
        return None

    def advance(self, state: SchedulerState, keep: bool = True) -> Any:
        entry = self.heap.pop()
        state.ready.size -= 1
        if keep:
            self.popped.append(entry)
        return self.peek(state)

    def restore(self, state: SchedulerState) -> None:
        for entry in self.popped:
            if state.entry_valid(self.heap_owner, entry) is not None:
                self.heap.push(entry)
                state.ready.size += 1
        self.popped.clear()


def select(state: SchedulerState, w: WorkerRecord, assistant: bool, totals: Mapping[str, int],
           active_since: float) -> tuple[StepRecord | None, list[StepRecord] | None]:
    """The step to hand to ``w`` and, if it batches, the whole batch (``None``s when nothing fits).

    ``totals`` are the resource totals (a resource without one has 1);
    workers whose last ``get_work`` is after ``active_since`` count as active.
    """
    owner = None if assistant else w.id
    groups = state.ready.groups(owner)
    if not assistant and len(groups) == 1 and () in groups:
        # The usual case, a worker none of whose steps needs resources: the
        # first live entry of its one heap is the answer (Luigi's "trivial worker").
        heap = groups[()]
        entry_valid = state.entry_valid
        pop = heap.pop
        while heap:
            entry = pop()
            state.ready.size -= 1
            best = entry_valid(owner, entry)
            if best is not None:
                return best, collect_batch(state, w, best, owner, heap)
        del groups[()]
        return None, None
    live = []
    for sig in list(groups):
        if _Stream(owner, sig, groups[sig], mine=True).peek(state) is None:
            del groups[sig]
        else:
            live.append(sig)
    if not live:
        return None, None
    if not assistant and live == [()]:
        # No resource needs: the head of the heap is the answer (Luigi's "trivial worker").
        heap = groups[()]
        entry = heap.pop()
        state.ready.size -= 1
        best = state.steps[entry[3]]
        return best, collect_batch(state, w, best, owner, heap)
    return _select_greedy(state, w, assistant, totals, active_since)


def _select_greedy(state: SchedulerState, w: WorkerRecord, assistant: bool, totals: Mapping[str, int],
                   active_since: float) -> tuple[StepRecord | None, list[StepRecord] | None]:
    steps = state.steps
    used = state.used
    slots: dict[str, int | None] = {}

    def slots_of(worker_id: str | None) -> int | None:
        # Free process slots of an active worker; None for a worker that is not active.
        if worker_id is None:
            return None
        if worker_id not in slots:
            rec = state.workers.get(worker_id)
            active = rec is not None and rec.last_get_work is not None and rec.last_get_work > active_since
            slots[worker_id] = _processes(rec.info) if active else None
        return slots[worker_id]

    def fits(need: Mapping[str, int], held: Mapping[str, int]) -> bool:
        return all(amount + held.get(r, 0) <= totals.get(r, 1) for r, amount in need.items())

    mine_owner = None if assistant else w.id
    streams = [_Stream(mine_owner, sig, heap, mine=True) for sig, heap in state.ready.groups(mine_owner).items()]
    for other, groups in state.ready.heaps.items():
        if other is None or other == w.id or not slots_of(other):
            continue
        streams.extend(_Stream(other, sig, heap, mine=False) for sig, heap in groups.items())
    running = sorted((steps[i] for i in state.by_status[RUNNING]), key=lambda x: x.rank_key)
    run_idx = len(streams)
    merge: list[tuple[Any, int]] = []
    for i, stream in enumerate(streams):
        head = stream.peek(state)
        if head is None:
            stream.alive = False
        else:
            merge.append((head[:3], i))
    if running:
        merge.append((running[0].rank_key, run_idx))
    heapq.heapify(merge)
    mine_alive = sum(1 for s in streams if s.mine and s.alive)
    greedy: dict[str, int] = {}
    seen: set[str] = set()
    run_pos = 0
    best: StepRecord | None = None
    while merge and mine_alive > 0:
        _, i = heapq.heappop(merge)
        if i == run_idx:
            r = running[run_pos]
            run_pos += 1
            n = slots_of(r.worker_running)
            if n is not None:
                slots[r.worker_running] = n - 1  # type: ignore[index]
                held = r.resources_running if r.resources_running is not None else r.resources
                for res, amount in held.items():
                    greedy[res] = greedy.get(res, 0) + amount
            if run_pos < len(running):
                heapq.heappush(merge, (running[run_pos].rank_key, run_idx))
            continue
        stream = streams[i]
        if not stream.alive:
            continue
        if not stream.mine and not slots_of(stream.owner):
            stream.alive = False  # this worker has no slot left to reserve with
            continue
        s = steps[stream.head[3]]
        if s.id in seen:
            head = stream.advance(state)
        elif not fits(s.resources, greedy):
            # Reservations only grow: nothing further in this group can fit.
            stream.alive = False
            mine_alive -= stream.mine
            continue
        else:
            seen.add(s.id)
            can_run = s.runnable if assistant else w.id in s.workers
            if can_run and fits(s.resources, used):
                best = s
                stream.advance(state, keep=False)
                break
            for candidate in itertools.chain(s.workers, [w.id] if assistant else []):
                n = slots_of(candidate)
                if n is not None and n > 0:
                    slots[candidate] = n - 1
                    for res, amount in s.resources.items():
                        greedy[res] = greedy.get(res, 0) + amount
                    break
            if stream.mine:
                # The rest of the group needs the same resources: the asking
                # worker cannot get it now, it only reserves with its own slots.
                stream.mine = False
                stream.owner = w.id
                mine_alive -= 1
            head = stream.advance(state)
        if head is None:
            stream.alive = False
            mine_alive -= stream.mine
        else:
            heapq.heappush(merge, (head[:3], i))
    for stream in streams:
        stream.restore(state)
    batch = None
    if best is not None:
        heap = state.ready.groups(mine_owner).get(resource_signature(best.resources))
        if heap is not None:
            batch = collect_batch(state, w, best, mine_owner, heap)
    for owner in {s.heap_owner for s in streams}:
        groups = state.ready.heaps.get(owner)
        if groups is not None:
            for sig in [sig for sig, heap in groups.items() if not heap]:
                del groups[sig]
    return best, batch


def collect_batch(state: SchedulerState, w: WorkerRecord, best: StepRecord, owner: str | None,
                  heap: RankHeap) -> list[StepRecord] | None:
    """Ready steps of ``heap`` that can run in one batch with ``best``, in rank order, ``best`` first.

    None unless ``w`` registered a batcher for ``best``'s family and ``best`` is
    batchable; members share family, resources and every unbatched parameter.
    """
    batched_names, max_size = state.batchers.get(w.id, {}).get(best.family, (None, 1))
    if not batched_names or not best.batchable or any(n not in best.params for n in batched_names):
        return None
    unbatched = {k: v for k, v in best.params.items() if k not in batched_names}
    members = [best]
    member_ids = {best.id}
    aside = []
    while heap and len(members) < max_size:
        entry = heap.pop()
        state.ready.size -= 1
        s = state.entry_valid(owner, entry)
        if s is None or s.id in member_ids:
            continue
        if (s.family == best.family and s.batchable and s.resources == best.resources
                and all(s.params.get(k) == v for k, v in unbatched.items())):
            members.append(s)
            member_ids.add(s.id)
        else:
            aside.append(entry)
    for entry in aside:
        heap.push(entry)
        state.ready.size += 1
    return members
