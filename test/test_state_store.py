"""The durable state of trund: snapshot + journal, crash tolerance, refusal of untrusted state.

These tests drive ``trun.state_store.StateStore`` with a minimal dict-backed
object that has the four methods the store uses; the end-to-end crash tests
with the real scheduler are in ``test_server.py``.
"""
from __future__ import annotations

import json
import os

import pytest

from trun import state_store
from trun.scheduler import Scheduler
from trun.state_store import STATE_FORMAT_VERSION, BadStateError, StateLockedError, StateStore


class DictScheduler:
    """The durable-state protocol on a plain dict of step records."""

    def __init__(self) -> None:
        self.steps: dict[str, dict] = {}
        self._changes: dict[str, dict | None] = {}

    def set(self, step_id: str, **record) -> None:
        self.steps[step_id] = record
        self._changes[step_id] = record

    def remove(self, step_id: str) -> None:
        del self.steps[step_id]
        self._changes[step_id] = None

    def dump_state(self) -> dict:
        return {"steps": dict(self.steps)}

    def load_state(self, state: dict) -> None:
        self.steps = dict(state["steps"])

    def drain_changes(self) -> dict:
        changes, self._changes = self._changes, {}
        return changes

    def apply_changes(self, changes: dict) -> None:
        for step_id, record in changes.items():
            if record is None:
                self.steps.pop(step_id, None)
            else:
                self.steps[step_id] = record


def start(path, **kwargs) -> tuple[StateStore, DictScheduler]:
    store = StateStore(path, **kwargs)
    scheduler = DictScheduler()
    store.lock()
    store.restore(scheduler)
    store.open_journal(scheduler)
    return store, scheduler


def crash(store: StateStore) -> None:
    """Drop the store the way kill -9 would: no final snapshot, descriptors just closed."""
    for fd in store.open_file_descriptors():
        os.close(fd)
    store._journal_fd = None
    store._lock_fd = None


def test_journaled_changes_survive_a_crash_without_snapshot(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    scheduler.set("B", status="FAILED", failures=2)
    store.record(scheduler)
    crash(store)

    _, restored = start(tmp_path / "state")
    assert restored.steps == {"A": {"status": "DONE"}, "B": {"status": "FAILED", "failures": 2}}


def test_removed_step_stays_removed_after_replay(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    scheduler.remove("A")
    store.record(scheduler)
    crash(store)

    _, restored = start(tmp_path / "state")
    assert restored.steps == {}


def test_clean_close_writes_a_versioned_json_snapshot_and_empties_the_journal(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    store.close(scheduler)

    snapshot = json.loads((tmp_path / "state" / "snapshot.json").read_text())
    assert snapshot["format"] == "trund-state"
    assert snapshot["version"] == STATE_FORMAT_VERSION
    assert snapshot["scheduler"] == {"steps": {"A": {"status": "DONE"}}}
    journal_lines = (tmp_path / "state" / "journal.jsonl").read_text().splitlines()
    assert len(journal_lines) == 1 and json.loads(journal_lines[0])["format"] == "trund-journal"


def test_snapshot_plus_later_journal_records_are_both_restored(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    store.compact(scheduler.dump_state())
    scheduler.set("B", status="PENDING")
    store.record(scheduler)
    crash(store)

    _, restored = start(tmp_path / "state")
    assert set(restored.steps) == {"A", "B"}


def test_records_already_in_snapshot_are_not_replayed_twice(tmp_path):
    # A crash between writing the snapshot and starting the new journal leaves
    # the old journal in place; its records are already in the snapshot.
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    old_journal = (tmp_path / "state" / "journal.jsonl").read_bytes()
    store.compact(scheduler.dump_state())
    crash(store)
    (tmp_path / "state" / "journal.jsonl").write_bytes(old_journal)

    loaded = StateStore(tmp_path / "state").load()
    assert loaded.snapshot == {"steps": {"A": {"status": "DONE"}}}
    assert loaded.journal == []


def test_torn_last_journal_line_is_dropped_with_a_warning(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    crash(store)
    with open(tmp_path / "state" / "journal.jsonl", "ab") as f:
        f.write(b'{"seq": 2, "changes": {"B": {"stat')

    store2 = StateStore(tmp_path / "state")
    scheduler2 = DictScheduler()
    loaded = store2.restore(scheduler2)
    assert scheduler2.steps == {"A": {"status": "DONE"}}
    assert any("torn" in w for w in loaded.warnings)


def test_appending_after_a_torn_line_starts_a_clean_journal(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    crash(store)
    with open(tmp_path / "state" / "journal.jsonl", "ab") as f:
        f.write(b'{"seq": 2, "chan')

    store2, scheduler2 = start(tmp_path / "state")
    scheduler2.set("B", status="DONE")
    store2.record(scheduler2)
    crash(store2)

    _, restored = start(tmp_path / "state")
    assert set(restored.steps) == {"A", "B"}


def test_corrupt_line_in_the_middle_of_the_journal_refuses_to_load(tmp_path):
    store, scheduler = start(tmp_path / "state")
    for name in "ABC":
        scheduler.set(name, status="DONE")
        store.record(scheduler)
    crash(store)
    path = tmp_path / "state" / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"{garbage"
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(BadStateError, match=r"journal\.jsonl: line 3 is corrupt"):
        StateStore(tmp_path / "state").load()


def test_corrupt_snapshot_refuses_to_load_and_names_the_file(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "snapshot.json").write_text('{"format": "trund-state", "vers')

    with pytest.raises(BadStateError) as info:
        StateStore(tmp_path / "state").load()
    assert info.value.path.endswith("snapshot.json")
    assert "not valid JSON" in info.value.problem


def test_snapshot_from_a_newer_version_refuses_to_load(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "snapshot.json").write_text(
        json.dumps({"format": "trund-state", "version": STATE_FORMAT_VERSION + 1, "seq": 0, "scheduler": {}}))

    with pytest.raises(BadStateError, match="newer trun"):
        StateStore(tmp_path / "state").load()


def test_journal_from_a_newer_version_refuses_to_load(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.jsonl").write_text(
        json.dumps({"format": "trund-journal", "version": 99, "after_seq": 0}) + "\n")

    with pytest.raises(BadStateError, match="journal.jsonl: written by a newer trun"):
        StateStore(tmp_path / "state").load()


def test_luigi_pickle_is_refused_with_a_hint(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "snapshot.json").write_bytes(b"\x80\x04\x95pickle")

    with pytest.raises(BadStateError, match="pickle"):
        StateStore(tmp_path / "state").load()


def test_state_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "state.pickle").write_bytes(b"\x80\x04")

    with pytest.raises(BadStateError, match="is a file"):
        StateStore(tmp_path / "state.pickle").load()


def test_journal_that_continues_a_missing_snapshot_is_refused(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    store.compact(scheduler.dump_state())
    scheduler.set("B", status="DONE")
    store.record(scheduler)
    crash(store)
    os.unlink(tmp_path / "state" / "snapshot.json")

    with pytest.raises(BadStateError, match="continues from record 1"):
        StateStore(tmp_path / "state").load()


def test_ignore_bad_state_sets_a_corrupt_snapshot_aside_and_starts_empty(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "snapshot.json").write_text("not json")

    store = StateStore(tmp_path / "state", ignore_bad_state=True)
    loaded = store.load()
    assert loaded.is_empty
    assert any("moved untrusted" in w for w in loaded.warnings)
    assert [p.name for p in (tmp_path / "state").iterdir() if p.name.startswith("snapshot.json.bad-")]


def test_ignore_bad_state_skips_a_corrupt_middle_line_and_keeps_the_rest(tmp_path):
    store, scheduler = start(tmp_path / "state")
    for name in "ABC":
        scheduler.set(name, status="DONE")
        store.record(scheduler)
    crash(store)
    path = tmp_path / "state" / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"{garbage"
    path.write_bytes(b"\n".join(lines))

    restored = DictScheduler()
    StateStore(tmp_path / "state", ignore_bad_state=True).restore(restored)
    assert set(restored.steps) == {"A", "C"}


def test_second_store_on_the_same_directory_is_refused_while_locked(tmp_path):
    store, _ = start(tmp_path / "state")
    with pytest.raises(StateLockedError, match="already in use"):
        StateStore(tmp_path / "state").lock()
    store.close()
    StateStore(tmp_path / "state").lock()


def test_compaction_is_due_after_the_configured_number_of_records(tmp_path):
    store, scheduler = start(tmp_path / "state", snapshot_every_records=3, clock=lambda: 1000.0)
    for name in "AB":
        scheduler.set(name, status="DONE")
        store.record(scheduler)
    assert not store.compaction_due()
    scheduler.set("C", status="DONE")
    store.record(scheduler)
    assert store.compaction_due()


def test_compaction_is_due_after_the_configured_time_with_changes(tmp_path):
    now = [1000.0]
    store, scheduler = start(tmp_path / "state", snapshot_every_seconds=60, clock=lambda: now[0])
    now[0] += 120
    assert not store.compaction_due()  # nothing changed: nothing to write
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    assert store.compaction_due()


def test_record_count_snapshots_of_a_slow_state_are_spaced_by_ten_times_their_duration(tmp_path):
    now = [1000.0]
    store, scheduler = start(tmp_path / "state", snapshot_every_records=1, clock=lambda: now[0])
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    store.start_background_compaction(scheduler)
    now[0] += 2.0  # the snapshot takes 2 s to write
    store.wait_background_compaction()
    scheduler.set("B", status="DONE")
    store.record(scheduler)
    now[0] += 15.0  # 17 s after that snapshot started: not yet 10 x 2 s
    assert not store.compaction_due()
    now[0] += 3.0
    assert store.compaction_due()


def test_without_journal_only_snapshots_are_written(tmp_path):
    store, scheduler = start(tmp_path / "state", journal=False)
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    assert not (tmp_path / "state" / "journal.jsonl").exists()
    store.close(scheduler)

    _, restored = start(tmp_path / "state", journal=False)
    assert restored.steps == {"A": {"status": "DONE"}}


def test_sets_in_records_are_stored_as_lists(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", deps={"C", "B"})
    store.record(scheduler)
    crash(store)

    _, restored = start(tmp_path / "state")
    assert restored.steps["A"]["deps"] == ["B", "C"]


def test_empty_change_batches_are_not_journaled(tmp_path):
    store, scheduler = start(tmp_path / "state")
    before = (tmp_path / "state" / "journal.jsonl").read_bytes()
    assert store.record(scheduler) == 0
    assert (tmp_path / "state" / "journal.jsonl").read_bytes() == before


def test_background_snapshot_keeps_records_written_while_it_runs(tmp_path):
    store, scheduler = start(tmp_path / "state")
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    store.start_background_compaction(scheduler)
    assert store.background_compaction_running
    scheduler.set("B", status="DONE")  # after the fork: not in the child's snapshot
    store.record(scheduler)
    store.wait_background_compaction()

    snapshot = json.loads((tmp_path / "state" / "snapshot.json").read_text())
    assert set(snapshot["scheduler"]["steps"]) == {"A"}
    journal = [json.loads(line) for line in (tmp_path / "state" / "journal.jsonl").read_text().splitlines()]
    assert journal[0]["after_seq"] == snapshot["seq"]
    assert [list(record["changes"]) for record in journal[1:]] == [["B"]]
    crash(store)

    _, restored = start(tmp_path / "state")
    assert set(restored.steps) == {"A", "B"}


def test_failed_background_snapshot_is_logged_and_retried(tmp_path, caplog):
    class BrokenDump(DictScheduler):
        def dump_state(self) -> dict:
            raise RuntimeError("cannot dump")

    store = StateStore(tmp_path / "state", snapshot_every_records=1, clock=lambda: 1000.0)
    scheduler = BrokenDump()
    store.lock()
    store.load()
    store.open_journal(DictScheduler())
    scheduler.set("A", status="DONE")
    store.record(scheduler)
    store.start_background_compaction(scheduler)
    with caplog.at_level("ERROR", logger="trun.server"):
        store.wait_background_compaction()
    assert "RuntimeError: cannot dump" in caplog.text
    assert store.compaction_due()  # nothing was lost: it will be tried again
    crash(store)

    _, restored = start(tmp_path / "state")
    assert restored.steps == {"A": {"status": "DONE"}}


def test_leftover_temporary_files_are_removed_at_start(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "snapshot.json.tmp-12345").write_text("half a snapshot")
    start(tmp_path / "state")
    assert not (tmp_path / "state" / "snapshot.json.tmp-12345").exists()


def start_scheduler(path) -> tuple[StateStore, Scheduler]:
    store = StateStore(path)
    scheduler = Scheduler()
    store.lock()
    store.restore(scheduler)
    store.open_journal(scheduler)
    return store, scheduler


def test_a_request_changing_thousands_of_records_is_one_journal_line_written_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(state_store, "_JOURNAL_CHUNK_BYTES", 4096)  # many pieces for one line
    store, scheduler = start_scheduler(str(tmp_path))
    leaves = [f"Leaf_{i}" for i in range(3000)]
    scheduler.add_step(worker="w", step_id="Root", deps=leaves)
    assert store.record(scheduler) == 3001 + 1  # the steps, and the worker "w" first seen
    crash(store)
    with open(store.journal_path, "rb") as journal:
        lines = journal.read().splitlines()
    assert len(lines) == 2  # the header, then the one request
    assert set(json.loads(lines[1])["changes"]) == {"Root", *leaves}

    _, restored = start_scheduler(str(tmp_path))
    assert restored.dump_state()["steps"] == scheduler.dump_state()["steps"]
    restored.validate_state()


def test_a_torn_streamed_journal_line_is_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(state_store, "_JOURNAL_CHUNK_BYTES", 4096)
    store, scheduler = start_scheduler(str(tmp_path))
    scheduler.add_step(worker="w", step_id="First")
    store.record(scheduler)
    scheduler.add_step(worker="w", step_id="Root", deps=[f"Leaf_{i}" for i in range(3000)])
    store.record(scheduler)
    crash(store)
    with open(store.journal_path, "rb+") as journal:  # kill -9 in the middle of writing the big line
        journal.truncate(os.path.getsize(store.journal_path) // 2)

    _, restored = start_scheduler(str(tmp_path))
    assert set(restored.dump_state()["steps"]) == {"First"}


# -- workers and batchers ---------------------------------------------------------


def test_a_worker_disabled_since_the_snapshot_is_still_disabled_after_kill_9(tmp_path):
    store, scheduler = start_scheduler(str(tmp_path))
    scheduler.add_worker(worker="w", info={"host": "h1", "workers": 3})
    store.record(scheduler)
    scheduler.disable_worker(worker="w")
    store.record(scheduler)
    crash(store)

    _, restored = start_scheduler(str(tmp_path))
    worker = restored.dump_state()["workers"]["w"]
    assert worker["disabled"] is True and worker["info"] == {"host": "h1", "workers": 3}
    assert restored.get_work(worker="w", host="h1")["worker_state"] == "disabled"


def test_batchers_registered_since_the_snapshot_survive_kill_9(tmp_path):
    store, scheduler = start_scheduler(str(tmp_path))
    scheduler.add_step_batcher(worker="w", step_family="Daily", batched_args=["date"], max_batch_size=10)
    scheduler.add_step_batcher(worker="w", step_family="Hourly", batched_args=["hour"], max_batch_size=None)
    store.record(scheduler)
    crash(store)

    _, restored = start_scheduler(str(tmp_path))
    assert restored.dump_state()["batchers"] == {"w": {"Daily": [["date"], 10], "Hourly": [["hour"], None]}}


def test_a_queued_worker_message_survives_kill_9_and_is_delivered_once(tmp_path):
    store, scheduler = start_scheduler(str(tmp_path))
    scheduler.set_worker_processes(worker="w", n=4)
    store.record(scheduler)
    crash(store)

    store, restored = start_scheduler(str(tmp_path))
    assert restored.ping(worker="w")["rpc_messages"] == [{"name": "set_worker_processes", "kwargs": {"n": 4}}]
    store.record(restored)
    crash(store)

    _, again = start_scheduler(str(tmp_path))
    assert again.ping(worker="w")["rpc_messages"] == []


def test_worker_records_replayed_over_its_steps_keep_the_indexes_right(tmp_path):
    store, scheduler = start_scheduler(str(tmp_path))
    scheduler.add_step(worker="w", step_id="A", deps=["B"])
    scheduler.add_step(worker="w", step_id="B")
    store.record(scheduler)
    assert scheduler.get_work(worker="w", host="h2")["step_id"] == "B"
    scheduler.add_worker(worker="w", info={"workers": 2})
    store.record(scheduler)
    crash(store)

    _, restored = start_scheduler(str(tmp_path))
    restored.validate_state()
    assert restored.dump_state()["workers"]["w"]["info"] == {"workers": 2}
    assert restored.dump_state()["workers"]["w"]["reference"] == {"host": "h2"}
    restored.add_step(worker="w", step_id="B", status="DONE")
    assert restored.get_work(worker="w", host="h2")["step_id"] == "A"
