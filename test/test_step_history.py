"""Step history: the hook interface, DbStepHistory on SQLite and on the real PostgreSQL, the scheduler's calls."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from types import SimpleNamespace

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy", reason="the history extra (SQLAlchemy 2) is not installed")

import trun  # noqa: E402
from trun.db_step_history import DbStepHistory  # noqa: E402
from trun.scheduler import Scheduler  # noqa: E402
from trun.step_history import NopHistory, StepHistory, StoredStep  # noqa: E402

POSTGRES_URL = os.environ.get("TRUN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def scheduler_step(step: trun.Step) -> SimpleNamespace:
    """What the scheduler hands to the history hooks for ``step``."""
    return SimpleNamespace(id=step.step_id, family=step.step_family, params=step.to_str_params())


def run_step(history: StepHistory, record: SimpleNamespace, host: str = "hostname") -> None:
    history.step_scheduled(record)
    history.step_started(record, host)
    history.step_finished(record, successful=True)


@pytest.fixture
def history():
    h = DbStepHistory("sqlite://")
    yield h
    h.close()


@pytest.fixture
def postgres_history():
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'psycopg[binary]')")
    schema = f"trun_history_{uuid.uuid4().hex[:12]}"
    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(admin_url, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    # A schema of its own per test: parallel tests and other suites never see these tables.
    h = DbStepHistory(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
    yield h
    h.close()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class DummyStep(trun.Step):
    foo = trun.Parameter(default="foo")


class ParamStep(trun.Step):
    param1 = trun.Parameter()
    param2 = trun.IntParameter()


# ---------------------------------------------------------------- the interface
def test_step_history_is_abstract_with_three_hooks():
    with pytest.raises(TypeError):
        StepHistory()  # type: ignore[abstract]
    assert {"step_scheduled", "step_started", "step_finished"} <= StepHistory.__abstractmethods__


def test_nop_history_accepts_every_hook_and_records_nothing():
    record = scheduler_step(DummyStep())
    run_step(NopHistory(), record)  # no error, nothing to check but that it is a StepHistory
    assert isinstance(NopHistory(), StepHistory)


def test_stored_step_reads_family_and_parameters_from_the_scheduler_record():
    stored = StoredStep(scheduler_step(ParamStep(param1="a", param2=2)), "PENDING", host="h")
    assert (stored.step_family, stored.parameters, stored.host, stored.record_id) == (
        "ParamStep", {"param1": "a", "param2": "2"}, "h", None)


# ---------------------------------------------------------------- DbStepHistory on SQLite
def test_runs_are_listed_by_name_with_their_host(history):
    run_step(history, scheduler_step(DummyStep()))
    run_step(history, scheduler_step(DummyStep(foo="bar")))
    runs = history.find_all_by_name("DummyStep")
    assert [(r.name, r.host) for r in runs] == [("DummyStep", "hostname"), ("DummyStep", "hostname")]


def test_events_of_a_run_are_newest_first(history):
    run_step(history, scheduler_step(DummyStep()))
    [run] = history.find_all_by_name("DummyStep")
    assert [e.event_name for e in run.events] == ["DONE", "RUNNING", "PENDING"]


def test_failed_run_records_a_failed_event(history):
    record = scheduler_step(DummyStep())
    history.step_scheduled(record)
    history.step_finished(record, successful=False)
    assert [e.event_name for e in history.find_step_by_step_id(record.id).events] == ["FAILED", "PENDING"]


def test_runs_are_found_by_parameter_values(history):
    one, two = ParamStep(param1="foo", param2=1), ParamStep(param1="bar", param2=2)
    run_step(history, scheduler_step(one))
    run_step(history, scheduler_step(two))
    [found] = history.find_all_by_parameters("ParamStep", param1="bar", param2=2)
    assert found.step_id == two.step_id
    assert {name: p.value for name, p in found.parameters.items()} == {"param1": "bar", "param2": "2"}


def test_blank_parameter_value_is_kept(history):
    run_step(history, scheduler_step(DummyStep(foo="")))
    [run] = history.find_all_by_name("DummyStep")
    assert run.parameters["foo"].value == ""


def test_non_string_parameter_values_are_stored_as_json(history):
    history.step_scheduled(SimpleNamespace(id="X_1", family="X", params={"items": [1, 2]}))
    [run] = history.find_all_by_parameters("X", items=[1, 2])
    assert run.parameters["items"].value == "[1, 2]"


def test_run_is_found_by_record_id_and_latest_by_step_id(history):
    record = scheduler_step(DummyStep())
    run_step(history, record)
    latest = history.find_step_by_step_id(record.id)
    assert history.find_step_by_id(latest.id).step_id == record.id
    assert history.find_step_by_step_id("NoSuchStep_123") is None
    assert history.find_step_by_id(10**9) is None


def test_latest_runs_lists_recent_activity_most_recent_first(history):
    first, second = scheduler_step(DummyStep(foo="a")), scheduler_step(DummyStep(foo="b"))
    history.step_scheduled(first)
    history.step_scheduled(second)
    history.flush()
    history.step_started(first, "h")
    assert [r.step_id for r in history.find_latest_runs()] == [first.id, second.id]


def test_all_runs_all_events_and_step_names(history):
    run_step(history, scheduler_step(DummyStep()))
    run_step(history, scheduler_step(ParamStep(param1="x", param2=1)))
    assert len(history.find_all_runs()) == 2
    assert [e.event_name for e in history.find_all_events()] == ["PENDING", "RUNNING", "DONE"] * 2
    assert history.find_step_names() == ["DummyStep", "ParamStep"]


def test_a_step_keeps_one_row_across_its_events(history):
    record = scheduler_step(DummyStep())
    run_step(history, record)
    run_step(history, record)  # scheduled again later, same scheduler
    [run] = history.find_all_by_name("DummyStep")
    assert len(run.events) == 6


def test_tables_are_named_after_steps(history):
    names = set(sqlalchemy.inspect(history.engine).get_table_names())
    assert {"steps", "step_events", "step_parameters"} <= names


@contextlib.contextmanager
def database_locked(path):
    """Hold SQLite's exclusive lock on ``path`` from another connection: the history's writes must wait."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        blocker.execute("COMMIT")
        blocker.close()


def test_hooks_return_at_once_while_the_database_is_busy(tmp_path):
    path = tmp_path / "busy.db"
    h = DbStepHistory(f"sqlite:///{path}", batch_size=50)
    try:
        with database_locked(path):
            started = time.perf_counter()
            for i in range(2000):
                h.step_scheduled(SimpleNamespace(id=f"S_{i}", family="S", params={"i": str(i)}))
            elapsed = time.perf_counter() - started
        assert elapsed < 1.0, f"2000 hook calls took {elapsed:.2f}s while the database was busy"
        assert len(h.find_all_runs()) == 2000
    finally:
        h.close()


def test_queue_is_bounded_and_overflow_is_dropped_and_counted(tmp_path):
    path = tmp_path / "busy.db"
    h = DbStepHistory(f"sqlite:///{path}", max_queue_size=10, batch_size=1)
    try:
        with database_locked(path):
            for i in range(50):
                h.step_scheduled(SimpleNamespace(id=f"S_{i}", family="S", params={}))
        written = len(h.find_all_runs())
        assert h.dropped_events > 0
        assert written + h.dropped_events == 50
        assert written <= 12  # the queue plus what the writer held
    finally:
        h.close()


def test_step_map_is_bounded_and_a_forgotten_step_starts_a_new_row():
    h = DbStepHistory("sqlite://", max_cached_steps=2)
    try:
        a, b, c = (SimpleNamespace(id=f"{n}_1", family=n, params={}) for n in "ABC")
        for record in (a, b, c):
            h.step_scheduled(record)
            h.flush()
        h.step_started(a, "h")
        assert len(h.find_all_by_name("A")) == 2
    finally:
        h.close()


def test_close_writes_what_is_queued(tmp_path):
    url = f"sqlite:///{tmp_path / 'history.db'}"
    h = DbStepHistory(url)
    run_step(h, scheduler_step(DummyStep()))
    h.close()
    reopened = DbStepHistory(url)
    try:
        assert len(reopened.find_all_by_name("DummyStep")[0].events) == 3
    finally:
        reopened.close()


def test_hooks_after_close_are_ignored(history):
    history.close()
    history.step_scheduled(scheduler_step(DummyStep()))  # no error, no thread to write it
    assert history.dropped_events == 0


def test_invalid_sizes_are_rejected_naming_the_settings():
    with pytest.raises(ValueError, match="max_queue_size"):
        DbStepHistory("sqlite://", max_queue_size=0)


def test_malformed_connection_url_is_rejected():
    with pytest.raises(sqlalchemy.exc.ArgumentError):
        DbStepHistory("not a url")


def test_db_connection_is_read_from_the_step_history_section(tmp_path):
    from trun.configuration import get_config

    path = tmp_path / "configured.db"
    get_config().set("step_history", "db_connection", f"sqlite:///{path}")
    h = DbStepHistory()
    try:
        run_step(h, scheduler_step(DummyStep()))
        h.flush()
        assert path.exists()
    finally:
        h.close()


def test_long_values_are_clipped_to_their_columns(history):
    long_family = "F" * 300
    history.step_scheduled(SimpleNamespace(id="I" * 400, family=long_family, params={"p" * 200: "v"}))
    [run] = history.find_all_runs()
    assert (len(run.step_id), len(run.name)) == (200, 128)


# ---------------------------------------------------------------- the scheduler's hook calls
def test_scheduler_reports_pending_running_done_with_the_worker_host(history):
    s = Scheduler(step_history_impl=history)
    s.add_step(worker="w", step_id="A_1", family="A", params={"x": "1"})
    assert s.get_work(worker="w", host="box-7")["step_id"] == "A_1"
    s.add_step(worker="w", step_id="A_1", status="DONE")
    [run] = history.find_all_by_name("A")
    assert [e.event_name for e in run.events] == ["DONE", "RUNNING", "PENDING"]
    assert (run.host, run.parameters["x"].value) == ("box-7", "1")


def test_scheduler_reports_failure(history):
    s = Scheduler(step_history_impl=history)
    s.add_step(worker="w", step_id="A_1", family="A")
    s.get_work(worker="w", host="h")
    s.add_step(worker="w", step_id="A_1", status="FAILED", expl="boom")
    assert history.find_step_by_step_id("A_1").events[0].event_name == "FAILED"


def test_record_step_history_option_makes_the_scheduler_use_the_database(tmp_path):
    from trun.configuration import get_config

    get_config().set("step_history", "db_connection", f"sqlite:///{tmp_path / 'h.db'}")
    s = Scheduler(record_step_history=True)
    try:
        assert isinstance(s.step_history, DbStepHistory)
        assert s.has_step_history() is True
        s.add_step(worker="w", step_id="A_1", family="A")
        assert [r.step_id for r in s.step_history.find_all_runs()] == ["A_1"]
    finally:
        s.step_history.close()


def test_history_is_off_by_default():
    s = Scheduler()
    assert not isinstance(s.step_history, DbStepHistory)
    assert s.has_step_history() is False


# ---------------------------------------------------------------- PostgreSQL
@pytest.mark.postgres
def test_postgres_records_and_finds_runs_by_parameters(postgres_history):
    one, two = ParamStep(param1="foo", param2=1), ParamStep(param1="bar", param2=2)
    run_step(postgres_history, scheduler_step(one))
    run_step(postgres_history, scheduler_step(two))
    [found] = postgres_history.find_all_by_parameters("ParamStep", param1="foo", param2=1)
    assert found.step_id == one.step_id
    assert [e.event_name for e in found.events] == ["DONE", "RUNNING", "PENDING"]


@pytest.mark.postgres
def test_postgres_keeps_subsecond_event_order(postgres_history):
    record = scheduler_step(DummyStep())
    run_step(postgres_history, record)
    run = postgres_history.find_step_by_step_id(record.id)
    assert run.events[0].event_name == "DONE"
    assert run.events[0].ts >= run.events[-1].ts


@pytest.mark.postgres
def test_postgres_parameter_values_are_unbounded_text(postgres_history):
    big = "x" * 100_000
    postgres_history.step_scheduled(SimpleNamespace(id="Big_1", family="Big", params={"blob": big}))
    assert postgres_history.find_step_by_step_id("Big_1").parameters["blob"].value == big


@pytest.mark.postgres
def test_postgres_history_through_the_scheduler(postgres_history):
    s = Scheduler(step_history_impl=postgres_history)
    for i in range(50):
        s.add_step(worker="w", step_id=f"P_{i}", family="P", params={"i": str(i)})
    while (work := s.get_work(worker="w", host="pg-host"))["step_id"]:
        s.add_step(worker="w", step_id=work["step_id"], status="DONE")
    runs = postgres_history.find_all_by_name("P")
    assert len(runs) == 50
    assert {r.host for r in runs} == {"pg-host"}
    assert postgres_history.find_step_names() == ["P"]
