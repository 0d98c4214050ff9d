"""Durable scheduler state for ``trund``: a versioned JSON snapshot plus an append-only journal.

Luigi pickles its whole scheduler on clean shutdown, so ``kill -9`` loses
everything and a pickle from another version may not load. ``trund`` keeps its
state in a *directory* (``--state-path``, ``[scheduler] state_path``) holding:

``snapshot.json``
    ``{"format": "trund-state", "version": 1, "seq": S, "scheduler": {...}}``
    where ``scheduler`` is ``Scheduler.dump_state()`` and ``S`` the number of
    the last journal record it includes. Always replaced atomically (write to a
    temporary file, ``fsync``, ``os.replace``, ``fsync`` of the directory).
``journal.jsonl``
    One header line ``{"format": "trund-journal", "version": 1, "after_seq": S}``
    then one line per batch of changes, ``{"seq": n, "changes": {...},
    "workers": {...}}``. ``changes`` is what ``Scheduler.drain_changes()``
    returned (``{step_id: entry}``): an entry is the step's whole record (but
    for dependencies that did not change since its last record:
    ``"same_deps": true``), ``null`` for a step removed for good, or the
    tombstone of a removed step whose revoked leases must outlive it,
    ``{"id": step_id, "removed": true, "revoked": [worker ids]}`` (see
    ``Scheduler.drain_changes``). ``workers``, left out when empty, is what
    ``Scheduler.drain_worker_changes()`` returned: each changed worker's
    record with its batchers, or ``null`` for a worker that left. Each line
    reaches the operating system with one ``write()`` before the RPC that
    caused it is answered, which is enough to survive ``kill -9`` of
    ``trund`` (not a power cut: there is no ``fsync`` per request, on
    purpose, because it would cost a disk flush per RPC).
``lock``
    Held with ``flock`` while a ``trund`` uses the directory, so two daemons
    never write the same state.

Start-up (:meth:`StateStore.load`) reads the snapshot and replays the journal
records whose ``seq`` is above the snapshot's. A torn *last* line (a crash in
the middle of a write) is dropped with a warning. Anything else that cannot be
trusted — a snapshot that is not valid JSON, a journal line corrupt in the
middle, a ``version`` newer than this code reads, records out of order —
raises :class:`BadStateError` naming the file and the problem, so ``trund``
refuses to start rather than silently starting empty. ``ignore_bad_state=True``
(``trund --ignore-bad-state``) moves the untrusted files aside as
``<name>.bad-<time>`` and keeps whatever can still be read.

Compaction writes a new snapshot and starts a new journal. ``trund`` does it
in a forked child (:meth:`StateStore.start_background_compaction`), so that
dumping a large scheduler never pauses request handling; the final snapshot on
shutdown is written in process (:meth:`StateStore.compact`). Replay is
idempotent because journal records carry whole step records (dependencies kept
by ``same_deps`` are taken from the state replayed so far, which the snapshot
and the records before hold) and records already in the snapshot are skipped
by ``seq``, so a crash at any point of compaction leaves loadable state.
Snapshots due to the record count are spaced by a multiple of how long the
last one took (see :meth:`StateStore.compaction_due`), so the journal of a
large state grows longer between snapshots.

Hazards: not thread-safe — ``trund`` calls it only from its IOLoop thread.
Background snapshots ``fork()``: the child only serialises the scheduler and
writes a file, so other threads of the process must not hold anything the
scheduler's objects need; memory pages the parent changes meanwhile are copied
(up to twice the scheduler's memory in the worst case).
The store never interprets scheduler records; it only needs them to be JSON
(sets and frozensets are written as lists).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import logging
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

__all__ = [
    "STATE_FORMAT_VERSION",
    "BadStateError",
    "DurableScheduler",
    "LoadedState",
    "StateLockedError",
    "StateStore",
    "drain_all_changes",
]

logger = logging.getLogger("trun.server")

#: Version of the snapshot and journal formats this code writes and reads.
STATE_FORMAT_VERSION = 1

SNAPSHOT_FORMAT = "trund-state"
JOURNAL_FORMAT = "trund-journal"
SNAPSHOT_NAME = "snapshot.json"
JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = "lock"
#: A record-count snapshot is not started sooner than this many times the
#: duration of the previous one after that one started, once snapshots take
#: this many seconds or more (small states are never held back).
_SNAPSHOT_PACING_FACTOR = 10.0
_PACE_SNAPSHOTS_FROM_SECONDS = 0.1
# A journal line is written in pieces of about this size (see StateStore.record).
_JOURNAL_CHUNK_BYTES = 1 << 18
_JOURNAL_BATCH_RECORDS = 64
#: Pieces in which the journal's tail is copied to the new journal after a background snapshot.
_COPY_CHUNK_BYTES = 1 << 20


class BadStateError(Exception):
    """The state on disk cannot be trusted, so ``trund`` refuses to start.

    ``path`` is the offending file, ``problem`` says what is wrong with it.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class StateLockedError(BadStateError):
    """Another running ``trund`` already uses this state directory."""


class DurableScheduler(Protocol):
    """What the store needs from the scheduler (``trun.scheduler.Scheduler`` provides it)."""

    def dump_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...

    def drain_changes(self) -> dict[str, Any]: ...

    def apply_changes(self, changes: dict[str, Any]) -> None: ...


@dataclass
class LoadedState:
    """What :meth:`StateStore.load` found on disk."""

    #: ``Scheduler.dump_state()`` from the snapshot, or None when there is none.
    snapshot: dict[str, Any] | None = None
    #: ``(line number, changes)`` to replay after the snapshot, oldest first.
    journal: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: The worker changes of those lines that have some, by line number.
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Human-readable notes (torn line dropped, files set aside, ...), to be logged.
    warnings: list[str] = field(default_factory=list)
    #: Sequence number of the last record loaded (snapshot or journal).
    last_seq: int = 0

    @property
    def is_empty(self) -> bool:
        """True when nothing was found: a brand-new state directory."""
        return self.snapshot is None and not self.journal


def _json_default(value: Any) -> Any:
    # Scheduler records hold sets (deps, workers); JSON has only lists.
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in trund state: {value!r}")


# One encoder for every call: json.dumps() with any option of its own builds a
# new encoder each time, which costs as much as encoding a small record.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)


def encode_json(value: Any) -> bytes:
    """Compact JSON for state files; sets become lists."""
    return _ENCODER.encode(value).encode("utf-8")


def drain_all_changes(scheduler: Any) -> None:
    """Forget the scheduler's pending changes, of steps and of workers (a snapshot holds them all)."""
    scheduler.drain_changes()
    drain_workers = getattr(scheduler, "drain_worker_changes", None)
    if drain_workers is not None:
        drain_workers()


def _fsync_directory(path: str) -> None:
    # Makes a rename durable; some filesystems do not support it, which is fine.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomically(path: str, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or chunks of it) to ``path`` via a temporary file, ``fsync`` and ``os.replace``."""
    directory = os.path.dirname(path) or "."
    tmp_path = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in ((data,) if isinstance(data, bytes) else data):
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    os.close(fd)
    os.replace(tmp_path, path)
    _fsync_directory(directory)


class StateStore:
    """The snapshot + journal of one ``trund`` state directory.

    Typical life cycle, all on one thread::

        store = StateStore("/var/lib/trun-server/state")
        store.lock()
        store.restore(scheduler)           # or: loaded = store.load()
        store.open_journal(scheduler)
        ...                                # after each request:
        store.record(scheduler)            # journal drain_changes()
        if store.compaction_due():
            store.start_background_compaction(scheduler)
        store.poll_background_compaction()  # now and then: finish it
        ...
        store.close(scheduler)             # final snapshot

    ``journal=False`` keeps only snapshots (on the compaction schedule and on
    clean shutdown): cheaper per request, but ``kill -9`` loses what happened
    since the last snapshot.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        journal: bool = True,
        snapshot_every_records: int = 20000,
        snapshot_every_seconds: float = 300.0,
        ignore_bad_state: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.snapshot_path = os.path.join(self.path, SNAPSHOT_NAME)
        self.journal_path = os.path.join(self.path, JOURNAL_NAME)
        self.lock_path = os.path.join(self.path, LOCK_NAME)
        self.journal_enabled = journal
        self.snapshot_every_records = max(1, int(snapshot_every_records))
        self.snapshot_every_seconds = float(snapshot_every_seconds)
        self.ignore_bad_state = ignore_bad_state
        self._clock = clock
        self._seq = 0
        self._journal_fd: int | None = None
        self._lock_fd: int | None = None
        self._records_since_snapshot = 0
        self._changed_since_snapshot = False
        self._last_snapshot_at = clock()
        # Pacing of record-count snapshots (see compaction_due): clock time the
        # last one started and how long it took.
        self._last_snapshot_started = self._last_snapshot_at
        self._last_snapshot_seconds = 0.0
        # Set when a journal write failed: the next compaction must capture it.
        self._journal_broken = False
        self._background: _BackgroundSnapshot | None = None

    # ------------------------------------------------------------------ locking
    def _ensure_directory(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise BadStateError(
                self.path,
                "is a file, but trund keeps its state in a directory (snapshot.json + journal.jsonl); "
                "trund cannot read Luigi's state.pickle — move the file away or choose another --state-path")
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise BadStateError(self.path, f"cannot create the state directory: {exc.strerror or exc}") from exc

    def lock(self) -> None:
        """Create the state directory if needed and take its lock.

        Raises :class:`StateLockedError` when another process holds it.
        """
        import fcntl

        self._ensure_directory()
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = b""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 32, 0).strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder.decode(errors='replace')})" if holder else ""
                raise StateLockedError(
                    self.path, f"already in use by another trund{who}; stop it or choose another --state-path"
                ) from exc
            raise BadStateError(self.lock_path, f"cannot lock: {exc.strerror or exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def refresh_lock_owner(self) -> None:
        """Write the current pid into the lock file (after ``--background`` forked)."""
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            os.pwrite(self._lock_fd, str(os.getpid()).encode(), 0)

    def open_file_descriptors(self) -> list[int]:
        """Descriptors that must survive daemonization (the lock)."""
        return [fd for fd in (self._lock_fd, self._journal_fd) if fd is not None]

    # ------------------------------------------------------------------ loading
    def _set_aside(self, path: str, loaded: LoadedState) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = f"{path}.bad-{stamp}"
        os.replace(path, target)
        loaded.warnings.append(f"moved untrusted {path} to {target}")

    def _read_snapshot(self) -> tuple[dict[str, Any] | None, int]:
        try:
            with open(self.snapshot_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise BadStateError(self.snapshot_path, f"cannot read: {exc.strerror or exc}") from exc
        if raw.startswith(b"\x80"):
            raise BadStateError(self.snapshot_path, "is a Python pickle (Luigi's format?); trund reads only its own "
                                                    "JSON state — move it away")
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadStateError(self.snapshot_path, f"corrupt snapshot, not valid JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
            raise BadStateError(self.snapshot_path, f"not a trund state snapshot (expected \"format\": "
                                                    f"\"{SNAPSHOT_FORMAT}\")")
        self._check_version(self.snapshot_path, doc.get("version"))
        state = doc.get("scheduler")
        seq = doc.get("seq", 0)
        if not isinstance(state, dict) or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BadStateError(self.snapshot_path, "corrupt snapshot: \"scheduler\" must be an object and \"seq\" "
                                                    "a non-negative integer")
        return state, seq

    @staticmethod
    def _check_version(path: str, version: Any) -> None:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BadStateError(path, f"corrupt state: \"version\" must be a positive integer, got {version!r}")
        if version > STATE_FORMAT_VERSION:
            raise BadStateError(
                path, f"written by a newer trun (state format version {version}; this trund reads up to "
                      f"{STATE_FORMAT_VERSION}); upgrade trun, or move the state away to start empty")

    def _journal_lines(self) -> Iterator[tuple[int, bytes, bool]]:
        """Yield ``(line_number, line, is_last)`` for the non-blank lines of the journal."""
        with open(self.journal_path, "rb") as f:
            raw = f.read()
        # A write torn by a crash has no trailing newline; NUL padding can follow
        # a power cut on some filesystems. Both can only affect the end.
        lines = [(number, line) for number, line in enumerate(raw.split(b"\n"), 1) if line.strip(b"\x00 \r\t")]
        for index, (number, line) in enumerate(lines):
            yield number, line, index == len(lines) - 1

    def _read_journal(self, snapshot_seq: int, loaded: LoadedState) -> None:
        if not os.path.exists(self.journal_path):
            return
        try:
            lines = list(self._journal_lines())
        except OSError as exc:
            raise BadStateError(self.journal_path, f"cannot read: {exc.strerror or exc}") from exc
        last_seq = snapshot_seq
        header_seen = False
        for number, line, is_last in lines:
            where = f"{self.journal_path} line {number}"
            try:
                doc = json.loads(line)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
            except (UnicodeDecodeError, ValueError) as exc:
                if is_last:
                    loaded.warnings.append(f"{where}: dropped a torn last record (trund stopped while writing it)")
                    break
                if self.ignore_bad_state:
                    loaded.warnings.append(f"{where}: skipped a corrupt record ({exc})")
                    continue
                raise BadStateError(self.journal_path,
                                    f"line {number} is corrupt ({exc}) and is not the last line") from exc
            if not header_seen:
                if doc.get("format") != JOURNAL_FORMAT:
                    raise BadStateError(self.journal_path, f"not a trund journal: line {number} should be the "
                                                           f"header {{\"format\": \"{JOURNAL_FORMAT}\", ...}}")
                self._check_version(self.journal_path, doc.get("version"))
                after = doc.get("after_seq", 0)
                if isinstance(after, int) and after > snapshot_seq:
                    problem = (f"continues from record {after} but the snapshot ends at record {snapshot_seq} "
                               f"(was {SNAPSHOT_NAME} replaced by an older copy?)")
                    if not self.ignore_bad_state:
                        raise BadStateError(self.journal_path, problem)
                    loaded.warnings.append(f"{self.journal_path}: {problem}; replaying it anyway")
                header_seen = True
                continue
            seq = doc.get("seq")
            changes = doc.get("changes")
            workers = doc.get("workers", {})
            if (not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(changes, dict)
                    or not isinstance(workers, dict)):
                if is_last:
                    loaded.warnings.append(f"{where}: dropped a torn last record (trund stopped while writing it)")
                    break
                if self.ignore_bad_state:
                    loaded.warnings.append(f"{where}: skipped a record without \"seq\" and \"changes\"")
                    continue
                raise BadStateError(self.journal_path, f"line {number} is not a journal record "
                                                       "(expected {\"seq\": N, \"changes\": {...}})")
            if seq <= snapshot_seq:
                continue  # already part of the snapshot (crash during compaction)
            if seq <= last_seq:
                problem = f"line {number}: record {seq} is out of order (after record {last_seq})"
                if not self.ignore_bad_state:
                    raise BadStateError(self.journal_path, problem)
                loaded.warnings.append(f"{self.journal_path} {problem}; skipped")
                continue
            loaded.journal.append((number, changes))
            if workers:
                loaded.workers[number] = workers
            last_seq = seq
        loaded.last_seq = last_seq

    def load(self) -> LoadedState:
        """Read the snapshot and the journal records after it.

        Raises :class:`BadStateError` for untrusted state unless the store was
        made with ``ignore_bad_state=True``, in which case the untrusted files
        are moved aside and the warnings say so.
        """
        self._ensure_directory()
        self._remove_stale_temporary_files()
        loaded = LoadedState()
        try:
            snapshot, snapshot_seq = self._read_snapshot()
        except BadStateError as exc:
            if not self.ignore_bad_state:
                raise
            loaded.warnings.append(f"ignoring bad state: {exc}")
            self._set_aside(self.snapshot_path, loaded)
            if os.path.exists(self.journal_path):
                # Without its snapshot the journal is a partial history; keep it for a human.
                self._set_aside(self.journal_path, loaded)
            snapshot, snapshot_seq = None, 0
        loaded.snapshot = snapshot
        loaded.last_seq = snapshot_seq
        try:
            self._read_journal(snapshot_seq, loaded)
        except BadStateError as exc:
            if not self.ignore_bad_state:
                raise
            loaded.warnings.append(f"ignoring bad state: {exc}")
            loaded.journal.clear()
            loaded.last_seq = snapshot_seq
            self._set_aside(self.journal_path, loaded)
        self._seq = loaded.last_seq
        return loaded

    def _remove_stale_temporary_files(self) -> None:
        # Left by a crash in the middle of an atomic write; never part of the state.
        if self._lock_fd is None:
            return  # another trund may be writing them right now
        for name in os.listdir(self.path):
            if name.startswith((f"{SNAPSHOT_NAME}.tmp-", f"{JOURNAL_NAME}.tmp-")):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.path, name))

    def restore(self, scheduler: DurableScheduler) -> LoadedState:
        """:meth:`load`, then hand the result to ``scheduler`` (``load_state`` then ``apply_changes``).

        A snapshot or journal record the scheduler rejects (it raises
        ``ValueError``, e.g. an unknown scheduler state version) is untrusted
        state like any other: :class:`BadStateError`, or set aside with
        ``ignore_bad_state``.
        """
        loaded = self.load()
        if loaded.snapshot is not None:
            try:
                scheduler.load_state(loaded.snapshot)
            except (ValueError, TypeError, KeyError) as exc:
                problem = f"the scheduler cannot load this snapshot: {exc}"
                if not self.ignore_bad_state:
                    raise BadStateError(self.snapshot_path, problem) from exc
                loaded.warnings.append(f"ignoring bad state: {self.snapshot_path}: {problem}")
                self._set_aside(self.snapshot_path, loaded)
                if os.path.exists(self.journal_path):
                    self._set_aside(self.journal_path, loaded)
                loaded.snapshot = None
                loaded.journal.clear()
        apply_workers = getattr(scheduler, "apply_worker_changes", None)
        for line_number, changes in loaded.journal:
            try:
                scheduler.apply_changes(changes)
                worker_changes = loaded.workers.get(line_number)
                if worker_changes and apply_workers is not None:
                    apply_workers(worker_changes)
            except (ValueError, TypeError, KeyError) as exc:
                problem = f"line {line_number}: the scheduler cannot apply this record: {exc}"
                if not self.ignore_bad_state:
                    raise BadStateError(self.journal_path, problem) from exc
                loaded.warnings.append(f"ignoring bad state: {self.journal_path} {problem}; skipped")
        # What was replayed is already on disk; do not journal it a second time.
        drain_all_changes(scheduler)
        if loaded.journal:
            self._changed_since_snapshot = True
        return loaded

    # ------------------------------------------------------------------ writing
    def open_journal(self, scheduler: DurableScheduler) -> None:
        """Get ready to append, after :meth:`restore`.

        The journal on disk is reused only when it ends cleanly; otherwise (torn
        or skipped lines, none yet, journaling switched off) the current state
        of ``scheduler`` is written as a fresh snapshot first, so that nothing
        replayed at start-up depends on a file that is about to be replaced.
        """
        self._ensure_directory()
        if not self.journal_enabled:
            if os.path.exists(self.journal_path):
                self.compact(scheduler.dump_state())
                os.unlink(self.journal_path)
            return
        if os.path.exists(self.journal_path) and self._journal_ends_cleanly():
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
            return
        self.compact(scheduler.dump_state())

    def _journal_ends_cleanly(self) -> bool:
        # A torn or skipped line must not end up in the middle of the journal
        # once we append after it, so only a clean file is reused.
        try:
            lines = list(self._journal_lines())
            with open(self.journal_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return False
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    return False
            for _number, line, _is_last in lines:
                doc = json.loads(line)
                if not isinstance(doc, dict):
                    return False
            first = json.loads(lines[0][1]) if lines else {}
            return first.get("format") == JOURNAL_FORMAT and first.get("version") == STATE_FORMAT_VERSION
        except (OSError, ValueError):
            return False

    def _start_new_journal(self) -> None:
        header = {"format": JOURNAL_FORMAT, "version": STATE_FORMAT_VERSION, "after_seq": self._seq}
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        _write_atomically(self.journal_path, encode_json(header) + b"\n")
        self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
        self._journal_broken = False

    def append(self, changes: Mapping[str, Any]) -> None:
        """Journal one batch of changes (a no-op for an empty batch).

        Raises ``OSError`` when the write fails (disk full, ...); the next
        :meth:`compaction_due` is then True so a snapshot captures the batch.
        """
        if not changes:
            return
        self._changed_since_snapshot = True
        self._records_since_snapshot += 1
        if not self.journal_enabled:
            return
        if self._journal_fd is None:
            self._journal_broken = True
            raise OSError(errno.EBADF, "the journal is not open", self.journal_path)
        self._seq += 1
        line = encode_json({"seq": self._seq, "changes": changes}) + b"\n"
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._journal_fd, view)
                view = view[written:]
        except OSError:
            self._journal_broken = True
            raise

    def record(self, scheduler: DurableScheduler) -> int:
        """Journal the scheduler's changes of steps and of workers; returns how many records that is.

        With a scheduler that has ``iter_changes`` the line is encoded and
        written a piece at a time (a request may change 100,000 records, whose
        dicts and JSON would otherwise all be in memory at once). The line is
        the same; a crash in the middle of it leaves a torn last line, which
        :meth:`load` drops like any other torn write.
        """
        iter_changes = getattr(scheduler, "iter_changes", None)
        if iter_changes is None:
            changes = scheduler.drain_changes()
            if changes:
                self.append(changes)
            return len(changes) if changes else 0
        pairs = iter_changes()
        first = next(pairs, None)
        drain_workers = getattr(scheduler, "drain_worker_changes", None)
        workers = drain_workers() if drain_workers is not None else None
        if first is None and not workers:
            return 0
        self._changed_since_snapshot = True
        self._records_since_snapshot += 1
        n_workers = len(workers) if workers else 0
        if not self.journal_enabled:
            return n_workers + (0 if first is None else 1 + sum(1 for _ in pairs))
        if self._journal_fd is None:
            self._journal_broken = True
            raise OSError(errno.EBADF, "the journal is not open", self.journal_path)
        self._seq += 1
        count = 0
        chunk = [b'{"seq":%d,"changes":{' % self._seq]
        size = 0
        changes = itertools.chain((first,), pairs) if first is not None else iter(())
        try:
            while True:
                # A few records per encoder call (one call each would cost more than
                # the encoding), and a bounded number of them in memory at once.
                batch = dict(itertools.islice(changes, _JOURNAL_BATCH_RECORDS))
                if not batch:
                    break
                piece = encode_json(batch)[1:-1]  # the members, without the braces
                chunk.append(b"," + piece if count else piece)
                count += len(batch)
                size += len(piece)
                if size >= _JOURNAL_CHUNK_BYTES:
                    self._write_journal(b"".join(chunk))
                    chunk.clear()
                    size = 0
            chunk.append(b"}")
            if workers:
                chunk.append(b',"workers":' + encode_json(workers))
            chunk.append(b"}\n")
            self._write_journal(b"".join(chunk))
        except OSError:
            self._journal_broken = True
            raise
        return count + n_workers

    def _write_journal(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._journal_fd, view)  # type: ignore[arg-type]
            view = view[written:]

    def compaction_due(self) -> bool:
        """True when a snapshot should be written now (record count, age, or a failed journal write).

        Once a snapshot takes 0.1 s or more, the record count alone starts the
        next one only 10 times that long after the last one started, so that the
        cost of snapshots per request stays bounded as the state grows.

        Always False while a background snapshot is being written.
        """
        if self._background is not None:
            return False
        if self._journal_broken:
            return True
        if not self._changed_since_snapshot:
            return False
        if self._records_since_snapshot >= self.snapshot_every_records:
            # A big state takes long to write (in a child that competes with
            # trund for the CPUs); spacing snapshots by a multiple of that keeps
            # their cost per request bounded instead of growing with the state.
            paced = self._last_snapshot_seconds >= _PACE_SNAPSHOTS_FROM_SECONDS
            return not paced or (self._clock() - self._last_snapshot_started
                                 >= _SNAPSHOT_PACING_FACTOR * self._last_snapshot_seconds)
        return self._clock() - self._last_snapshot_at >= self.snapshot_every_seconds

    def _snapshot_bytes(self, state: Mapping[str, Any], seq: int) -> bytes:
        return encode_json({
            "format": SNAPSHOT_FORMAT,
            "version": STATE_FORMAT_VERSION,
            "seq": seq,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "scheduler": state,
        })

    def compact(self, state: Mapping[str, Any]) -> None:
        """Write ``state`` (``Scheduler.dump_state()``) as the new snapshot and start a new journal, now."""
        self._ensure_directory()
        self.wait_background_compaction()
        started = self._clock()
        data = self._snapshot_bytes(state, self._seq)
        _write_atomically(self.snapshot_path, data)
        if self.journal_enabled:
            self._start_new_journal()
        self._records_since_snapshot = 0
        self._changed_since_snapshot = False
        self._last_snapshot_at = finished = self._clock()
        self._last_snapshot_started = started
        self._last_snapshot_seconds = finished - started
        logger.info("wrote state snapshot %s (%d bytes, record %d) in %.3f s",
                    self.snapshot_path, len(data), self._seq, finished - started)

    # -------------------------------------------------------- background snapshots
    def start_background_compaction(self, scheduler: DurableScheduler) -> None:
        """Write a snapshot from a forked child, so serving never pauses for it.

        The child sees a copy-on-write image of the scheduler as of the fork and
        writes it as the snapshot of record ``seq`` *S*; the parent keeps
        appending records > *S* to the journal. :meth:`poll_background_compaction`
        then starts a new journal holding just those records. A crash at any
        point leaves loadable state: until the switch, the old journal still has
        everything, and records already in the snapshot are skipped by ``seq``.
        Falls back to :meth:`compact` where ``fork`` is unavailable or the
        journal is failing.
        """
        if self._background is not None:
            return
        if not hasattr(os, "fork") or self._journal_broken:
            drain_all_changes(scheduler)
            self.compact(scheduler.dump_state())
            return
        self._ensure_directory()
        offset = os.fstat(self._journal_fd).st_size if self._journal_fd is not None else 0
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            # Python >= 3.12 warns when other threads exist (e.g. the history pages'
            # thread pool). The child only serialises Python objects and writes a
            # file, taking no lock those threads could hold, then _exit()s.
            warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, measured through the parent
            os.close(read_end)
            self._child_write_snapshot(scheduler, write_end)
        os.close(write_end)
        self._background = _BackgroundSnapshot(pid=pid, seq=self._seq, journal_offset=offset,
                                               records_at_start=self._records_since_snapshot,
                                               started_at=self._clock(),
                                               error_pipe=read_end)

    def _child_write_snapshot(self, scheduler: DurableScheduler, error_pipe: int) -> NoReturn:
        """Body of the snapshot child: never returns, never runs the parent's cleanup."""
        status = 1
        try:
            # The child must not feed the parent's event loop its signals or run its handlers.
            with contextlib.suppress(ValueError, OSError):
                signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
            _write_atomically(self.snapshot_path, self._snapshot_bytes(scheduler.dump_state(), self._seq))
            status = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(error_pipe, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:4000])
        finally:
            os._exit(status)

    @property
    def background_compaction_running(self) -> bool:
        """True while a forked child is writing a snapshot."""
        return self._background is not None

    def poll_background_compaction(self, block: bool = False) -> bool:
        """Finish a background snapshot whose child has exited; True if one was finished (or failed)."""
        job = self._background
        if job is None:
            return False
        try:
            pid, wait_status = os.waitpid(job.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, wait_status = job.pid, 1 << 8  # reaped elsewhere: treat as failed, the next one retries
        if pid == 0:
            return False
        self._background = None
        with os.fdopen(job.error_pipe, "rb") as pipe:
            error = pipe.read().decode("utf-8", "replace")
        code = os.waitstatus_to_exitcode(wait_status)
        if code != 0:
            logger.error("background state snapshot failed (exit status %s): %s", code, error or "no details")
            return True
        if self.journal_enabled and self._journal_fd is not None:
            # Keep the records appended since the fork: they are not in the snapshot.
            # Copied a piece at a time: while a big state is being snapshotted,
            # the tail can grow to tens of megabytes.
            header = {"format": JOURNAL_FORMAT, "version": STATE_FORMAT_VERSION, "after_seq": job.seq}
            os.close(self._journal_fd)
            self._journal_fd = None
            with open(self.journal_path, "rb") as f:
                f.seek(job.journal_offset)
                tail = iter(functools.partial(f.read, _COPY_CHUNK_BYTES), b"")
                _write_atomically(self.journal_path, itertools.chain((encode_json(header) + b"\n",), tail))
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
        self._records_since_snapshot -= job.records_at_start
        self._changed_since_snapshot = self._records_since_snapshot > 0
        self._last_snapshot_at = self._last_snapshot_started = job.started_at
        self._last_snapshot_seconds = self._clock() - job.started_at
        logger.info("wrote state snapshot %s (record %d) in the background in %.3f s",
                    self.snapshot_path, job.seq, self._last_snapshot_seconds)
        return True

    def wait_background_compaction(self) -> None:
        """Block until a running background snapshot is finished."""
        if self._background is not None:
            self.poll_background_compaction(block=True)

    def close(self, scheduler: DurableScheduler | None = None) -> None:
        """Final snapshot (when ``scheduler`` is given), then release the journal and the lock."""
        try:
            self.wait_background_compaction()
            if scheduler is not None:
                drain_all_changes(scheduler)
                self.compact(scheduler.dump_state())
        finally:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


@dataclass
class _BackgroundSnapshot:
    """A snapshot being written by a forked child."""

    pid: int
    seq: int
    journal_offset: int
    records_at_start: int
    started_at: float
    error_pipe: int
