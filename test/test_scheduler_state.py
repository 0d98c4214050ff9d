"""Specification of the scheduler's ready queue pieces in :mod:`trun.scheduler_state`."""
from __future__ import annotations

import random

import pytest

from trun.scheduler import Scheduler
from trun.scheduler_state import RankHeap


def _entry(rank: float, seq: int) -> tuple[float, float, int, str, tuple]:
    return (0, rank, seq, f"step-{seq}", ())


def _drain(heap: RankHeap) -> list[tuple]:
    out = []
    while heap:
        out.append(heap.pop())
    return out


def test_rank_heap_pops_entries_pushed_in_order_in_that_order():
    heap = RankHeap()
    entries = [_entry(float(i), i) for i in range(100)]
    for e in entries:
        heap.push(e)
    assert _drain(heap) == entries


def test_rank_heap_pops_entries_pushed_in_any_order_smallest_first():
    rng = random.Random(7)
    entries = [_entry(rng.random(), i) for i in range(500)]
    heap = RankHeap()
    for e in entries:
        heap.push(e)
    assert _drain(heap) == sorted(entries)


def test_rank_heap_keeps_order_when_pushes_and_pops_interleave():
    rng = random.Random(11)
    heap = RankHeap()
    reference: list[tuple] = []
    for i in range(2000):
        if reference and rng.random() < 0.4:
            smallest = min(reference)
            reference.remove(smallest)
            assert heap.head() == smallest
            assert heap.pop() == smallest
        else:
            # Mostly increasing ranks, as steps usually become ready, with stragglers.
            e = _entry(i + (rng.random() * -50 if rng.random() < 0.2 else 0), i)
            heap.push(e)
            reference.append(e)
        assert len(heap) == len(reference)
    assert _drain(heap) == sorted(reference)


def test_rank_heap_built_from_entries_holds_them_all_in_order():
    entries = [_entry(float(r), i) for i, r in enumerate([5, 3, 9, 1, 7])]
    heap = RankHeap(entries)
    assert sorted(heap) == sorted(entries)
    assert _drain(heap) == sorted(entries)


def test_rank_heap_head_of_an_empty_heap_is_none_and_pop_raises():
    heap = RankHeap()
    assert heap.head() is None
    assert not heap
    with pytest.raises(IndexError):
        heap.pop()


def test_dead_ready_entries_are_dropped_by_a_rebuild_that_keeps_the_live_ones_in_rank_order():
    sch = Scheduler()
    for name in "ABCDEF":
        sch.add_step(worker="w", step_id=name, status="PENDING", priority=0)
    sch.add_step(worker="w", step_id="Z", status="PENDING", deps=["A"])  # pending, not ready
    # Each raised priority of a ready step gives it a new heap entry; the old one is dead.
    for round_ in range(1, 2001):
        for i, name in enumerate("ABCDEF"):
            sch.add_step(worker="w", step_id=name, status="PENDING", priority=round_ * 10 - i)
    state = sch._state
    assert state.ready.size < 8192  # rebuilt: 12,000 entries were pushed
    assert state.n_ready == 6
    sch.validate_state()
    assert [sch.get_work(worker="w")["step_id"] for _ in range(6)] == list("ABCDEF")
