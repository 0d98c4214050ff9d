"""Step history in a SQL database (SQLAlchemy 2): every run of every step, with its events and parameters.

Turned on by ``[scheduler] record_step_history = true``; the database is
``[step_history] db_connection``, any SQLAlchemy URL (``postgresql+psycopg://...``,
``mysql+...``), by default the SQLite file ``trun-step-history.db`` in
``trund``'s working directory. Three tables, as in Luigi (renamed):

* ``steps`` -- one row per run of a step: ``id``, ``step_id``, ``name`` (family), ``host``;
* ``step_events`` -- ``step_id`` (-> ``steps.id``), ``event_name`` (PENDING,
  RUNNING, DONE, FAILED) and ``ts``, a naive **UTC** timestamp;
* ``step_parameters`` -- ``step_id`` (-> ``steps.id``), ``name``, ``value`` (text).

A step keeps appending events to the same ``steps`` row for as long as this
history remembers it (see ``max_cached_steps``); Luigi's query helpers
(``find_all_by_name`` ...) read the tables back for the history pages.

Off the hot path: the scheduler's hooks only copy a few fields into a bounded
queue; one background thread writes the queue to the database in batches, one
transaction per batch. So ``get_work`` and ``add_step`` never wait for the
database, and memory stays bounded: the queue holds at most ``max_queue_size``
events (further events are dropped with a warning rather than slowing the
scheduler) and the map step id -> database row keeps the ``max_cached_steps``
most recently seen steps (a step seen again after falling out of it starts a new
row). The query helpers first wait for the queue to be written, so what was
reported before a query is in its answer.

Differences from Luigi: writes are batched in a background thread; the step map
is bounded (Luigi's grows forever); timestamps are UTC; query helpers return
lists (with events and parameters loaded, usable after the session closes) and
``find_step_by_step_id`` returns None instead of raising when there is no run.

Hazards: a database error is logged and the batch it hit is dropped -- history
is best effort and never stops the scheduler. The writer is a daemon thread;
:meth:`DbStepHistory.close` (also run at interpreter exit) writes what is left.
"""
from __future__ import annotations

import atexit
import collections
import datetime
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

try:
    import sqlalchemy
    from sqlalchemy import TIMESTAMP, ForeignKey, String, Text, select
    from sqlalchemy.orm import (
        DeclarativeBase,
        Mapped,
        Session,
        aliased,
        mapped_column,
        relationship,
        selectinload,
        sessionmaker,
    )
    from sqlalchemy.orm.collections import attribute_keyed_dict
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("trun.db_step_history needs SQLAlchemy 2: pip install 'trun[history]' "
                      "(or turn [scheduler] record_step_history off)") from _exc

from trun.step_history import StepHistory
from trun.step_status import DONE, FAILED, PENDING, RUNNING

__all__ = [
    "DEFAULT_DB_CONNECTION",
    "Base",
    "DbStepHistory",
    "StepEvent",
    "StepParameter",
    "StepRecord",
]

logger = logging.getLogger("trun.step_history")

DEFAULT_DB_CONNECTION = "sqlite:///trun-step-history.db"
DEFAULT_MAX_QUEUE_SIZE = 100_000
DEFAULT_MAX_CACHED_STEPS = 100_000
DEFAULT_BATCH_SIZE = 500
#: How long the query helpers wait for queued events to be written.
FLUSH_TIMEOUT_SECONDS = 30.0

_STEP_ID_LENGTH = 200
_NAME_LENGTH = 128


# ---------------------------------------------------------------- tables
class Base(DeclarativeBase):
    """Declarative base of the history tables (``Base.metadata.create_all(engine)`` creates them)."""


class StepParameter(Base):
    """One parameter of one recorded run (table ``step_parameters``)."""

    __tablename__ = "step_parameters"
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text())

    def __repr__(self) -> str:
        return f"StepParameter(step_id={self.step_id}, name={self.name!r}, value={self.value!r})"


class StepEvent(Base):
    """A status change of one recorded run (table ``step_events``); ``ts`` is naive UTC."""

    __tablename__ = "step_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id"), index=True)
    event_name: Mapped[str] = mapped_column(String(20))
    ts: Mapped[datetime.datetime] = mapped_column(TIMESTAMP, index=True, nullable=False)

    def __repr__(self) -> str:
        return f"StepEvent(step_id={self.step_id}, event_name={self.event_name!r}, ts={self.ts})"


class StepRecord(Base):
    """One recorded run of a step (table ``steps``), with ``parameters`` (by name) and ``events`` (newest first)."""

    __tablename__ = "steps"
    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[str | None] = mapped_column(String(_STEP_ID_LENGTH), index=True)
    name: Mapped[str | None] = mapped_column(String(_NAME_LENGTH), index=True)
    host: Mapped[str | None] = mapped_column(String(_NAME_LENGTH))
    parameters: Mapped[dict[str, StepParameter]] = relationship(
        collection_class=attribute_keyed_dict("name"), cascade="all, delete-orphan")
    events: Mapped[list[StepEvent]] = relationship(
        order_by=(StepEvent.ts.desc(), StepEvent.id.desc()), backref="step")

    def __repr__(self) -> str:
        return f"StepRecord(name={self.name!r}, host={self.host!r})"


# ---------------------------------------------------------------- the writer
@dataclass(frozen=True)
class _QueuedEvent:
    """A copy of what one hook call needs; the scheduler's record keeps changing after the call."""

    step_id: str
    family: str
    params: dict[str, Any]
    event_name: str
    host: str | None
    ts: datetime.datetime


_STOP = object()


def _utc_now() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(time.time(), datetime.timezone.utc).replace(tzinfo=None)


def _clip(value: str | None, length: int) -> str | None:
    # A value longer than its column would make the whole batch fail on strict databases.
    return value if value is None or len(value) <= length else value[:length]


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _config_value(option: str, default: Any, kind: type) -> Any:
    try:
        from trun.configuration import get_config
    except ImportError:  # pragma: no cover - the configuration package ships with trun
        return default
    config = get_config()
    if not config.has_option("step_history", option):
        return default
    reader = {int: config.getint, str: config.get}[kind]
    return reader("step_history", option)


def _is_memory_sqlite(url: sqlalchemy.engine.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class DbStepHistory(StepHistory):
    """Step history written to a SQL database through SQLAlchemy 2, off the scheduler's thread.

    ``DbStepHistory(db_connection=None, *, max_queue_size=None, max_cached_steps=None,
    batch_size=500)``: arguments left out are read from ``[step_history]``
    (``db_connection``, ``max_queue_size``, ``max_cached_steps``). The tables are
    created if missing. Raises ``sqlalchemy.exc.ArgumentError`` for a malformed URL
    and the driver's error when the database cannot be reached.
    """

    def __init__(self, db_connection: str | None = None, *, max_queue_size: int | None = None,
                 max_cached_steps: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        url_text = db_connection or _config_value("db_connection", None, str) or DEFAULT_DB_CONNECTION
        url = sqlalchemy.engine.make_url(url_text)
        engine_kwargs: dict[str, Any] = {}
        self._db_lock: threading.Lock | None = None
        if _is_memory_sqlite(url):
            # One shared connection, or each thread would see its own empty database.
            engine_kwargs.update(poolclass=sqlalchemy.pool.StaticPool,
                                 connect_args={"check_same_thread": False})
            self._db_lock = threading.Lock()
        self.engine = sqlalchemy.create_engine(url, **engine_kwargs)
        if url.get_backend_name() == "sqlite" and not _is_memory_sqlite(url):
            sqlalchemy.event.listen(self.engine, "connect", _sqlite_wal)
            logger.info("step history in %s", os.path.abspath(url.database or ""))
        Base.metadata.create_all(self.engine)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        size = max_queue_size if max_queue_size is not None else _config_value(
            "max_queue_size", DEFAULT_MAX_QUEUE_SIZE, int)
        self._max_cached = max_cached_steps if max_cached_steps is not None else _config_value(
            "max_cached_steps", DEFAULT_MAX_CACHED_STEPS, int)
        if size < 1 or self._max_cached < 1 or batch_size < 1:
            raise ValueError("[step_history] max_queue_size, max_cached_steps and batch_size must be "
                             f"positive integers, got {size}, {self._max_cached}, {batch_size}")
        self._batch_size = batch_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        #: step id -> ``steps.id`` of its current row; touched by the writer thread only.
        self._rows: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.dropped_events = 0
        self._closed = False
        self._thread = threading.Thread(target=self._write_loop, name="trun-step-history", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the hooks (scheduler thread: queue and return)
    def step_scheduled(self, step: Any) -> None:
        """Record a PENDING event for ``step``."""
        self._enqueue(step, PENDING.value, None)

    def step_finished(self, step: Any, successful: bool) -> None:
        """Record a DONE (``successful``) or FAILED event for ``step``."""
        self._enqueue(step, (DONE if successful else FAILED).value, None)

    def step_started(self, step: Any, worker_host: str | None) -> None:
        """Record a RUNNING event for ``step`` on ``worker_host``."""
        self._enqueue(step, RUNNING.value, worker_host)

    def _enqueue(self, step: Any, event_name: str, host: str | None) -> None:
        if self._closed:
            return
        event = _QueuedEvent(str(step.id), str(getattr(step, "family", "") or ""),
                             dict(getattr(step, "params", None) or {}), event_name, host, _utc_now())
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped_events += 1
            if self.dropped_events == 1 or self.dropped_events % 10_000 == 0:
                logger.warning("step history is behind the database: %d event(s) dropped so far "
                               "(raise [step_history] max_queue_size or use a faster database)",
                               self.dropped_events)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [e for e in batch if e is not _STOP]
            try:
                if events:
                    self._write(events)
            except Exception:
                logger.exception("could not write %d step history event(s); they are dropped", len(events))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(events) != len(batch):
                return

    def _write(self, events: Sequence[_QueuedEvent]) -> None:
        with self._locked(), self.session_factory() as session:
            known_ids = {self._rows[e.step_id] for e in events if e.step_id in self._rows}
            rows = {r.id: r for r in session.scalars(select(StepRecord).where(StepRecord.id.in_(known_ids)))} \
                if known_ids else {}
            current: dict[str, StepRecord] = {}
            for e in events:
                row = current.get(e.step_id)
                if row is None:
                    row_id = self._rows.get(e.step_id)
                    row = rows.get(row_id) if row_id is not None else None
                if row is None:  # new step, forgotten step, or its row was deleted meanwhile
                    row = StepRecord(step_id=_clip(e.step_id, _STEP_ID_LENGTH), name=_clip(e.family, _NAME_LENGTH),
                                     host=_clip(e.host, _NAME_LENGTH))
                    for name, value in e.params.items():
                        row.parameters[name] = StepParameter(name=_clip(name, _NAME_LENGTH), value=_param_text(value))
                    session.add(row)
                current[e.step_id] = row
                if e.host:
                    row.host = _clip(e.host, _NAME_LENGTH)
            session.flush()  # gives the new rows their ids
            session.add_all(StepEvent(step_id=current[e.step_id].id, event_name=e.event_name, ts=e.ts)
                            for e in events)
            session.commit()
            for step_id, row in current.items():
                self._rows[step_id] = row.id
                self._rows.move_to_end(step_id)
            while len(self._rows) > self._max_cached:
                self._rows.popitem(last=False)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._db_lock is None:
            yield
        else:
            with self._db_lock:
                yield

    # -- lifecycle
    def flush(self, timeout: float = FLUSH_TIMEOUT_SECONDS) -> bool:
        """Wait until every event reported so far is written (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        q = self._queue
        with q.all_tasks_done:
            while q.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                q.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the writer thread and release the database connections."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self.engine.dispose()

    # -- queries (Luigi's helpers; they see everything reported before the call)
    @contextmanager
    def _session(self, session: Session | None = None) -> Iterator[Session]:
        if session is not None:
            yield session
            return
        self.flush()
        with self._locked(), self.session_factory() as new_session:
            try:
                yield new_session
            except BaseException:
                new_session.rollback()
                raise
            else:
                new_session.commit()

    @staticmethod
    def _with_children(query: Any) -> Any:
        return query.options(selectinload(StepRecord.events), selectinload(StepRecord.parameters))

    def find_all_by_parameters(self, step_name: str, session: Session | None = None, *,
                               limit: int | None = None, **step_params: Any) -> list[StepRecord]:
        """Runs of family ``step_name`` whose parameters include ``step_params`` (values compared as text)."""
        with self._session(session) as s:
            query = select(StepRecord).where(StepRecord.name == step_name)
            for name, value in step_params.items():
                alias = aliased(StepParameter)
                query = query.join(alias, alias.step_id == StepRecord.id).where(
                    alias.name == name, alias.value == _param_text(value))
            query = self._with_children(query.order_by(StepRecord.id))
            if limit is not None:
                query = query.limit(limit)
            return list(s.scalars(query))

    def find_all_by_name(self, step_name: str, session: Session | None = None, *,
                         limit: int | None = None) -> list[StepRecord]:
        """All runs of family ``step_name``, oldest first."""
        return self.find_all_by_parameters(step_name, session, limit=limit)

    def find_latest_runs(self, session: Session | None = None, *, limit: int | None = None) -> list[StepRecord]:
        """Runs with an event in the past 24 hours, most recent activity first."""
        since = _utc_now() - datetime.timedelta(days=1)
        with self._session(session) as s:
            latest = sqlalchemy.func.max(StepEvent.ts).label("latest")
            recent = (select(StepEvent.step_id, latest).where(StepEvent.ts >= since)
                      .group_by(StepEvent.step_id).subquery())
            query = self._with_children(select(StepRecord).join(recent, recent.c.step_id == StepRecord.id)
                                        .order_by(recent.c.latest.desc(), StepRecord.id.desc()))
            if limit is not None:
                query = query.limit(limit)
            return list(s.scalars(query))

    def find_all_runs(self, session: Session | None = None, *, limit: int | None = None) -> list[StepRecord]:
        """Every recorded run, oldest first."""
        with self._session(session) as s:
            query = self._with_children(select(StepRecord).order_by(StepRecord.id))
            if limit is not None:
                query = query.limit(limit)
            return list(s.scalars(query))

    def find_all_events(self, session: Session | None = None) -> list[StepEvent]:
        """Every recorded event, oldest first."""
        with self._session(session) as s:
            return list(s.scalars(select(StepEvent).order_by(StepEvent.id)))

    def find_step_by_id(self, id: int, session: Session | None = None) -> StepRecord | None:
        """The run whose ``steps.id`` is ``id``, or None."""
        with self._session(session) as s:
            return s.scalars(self._with_children(select(StepRecord).where(StepRecord.id == id))).first()

    def find_step_by_step_id(self, step_id: str, session: Session | None = None) -> StepRecord | None:
        """The latest run of the step whose step id is ``step_id``, or None."""
        with self._session(session) as s:
            query = select(StepRecord).where(StepRecord.step_id == step_id).order_by(StepRecord.id.desc())
            return s.scalars(self._with_children(query)).first()

    def find_step_names(self, session: Session | None = None) -> list[str]:
        """The families that have recorded runs, sorted."""
        with self._session(session) as s:
            names = s.scalars(select(StepRecord.name).distinct())
            return sorted(n for n in names if n)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the history pages read while the writer thread writes.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()
