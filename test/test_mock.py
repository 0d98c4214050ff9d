"""Tests of trun.mock: the in-memory MockTarget and MockFileSystem, shared across processes."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest

import trun
import trun.format
from trun.mock import MockFileSystem, MockTarget
from trun.target import FileAlreadyExists


class ExceptionForTest(Exception):
    pass


@pytest.fixture(autouse=True)
def empty_store():
    MockFileSystem().clear()
    yield
    MockFileSystem().clear()


@pytest.fixture
def fs():
    fs = MockFileSystem()
    for path in ("/tmp/foo", "/tmp/bar"):
        MockTarget(path)._touchz()
    return fs


def test_import_of_trun_mock_starts_no_manager_process():
    code = ("import multiprocessing, trun, trun.mock; "
            "assert trun.mock.MockFileSystem._data is None; "
            "assert multiprocessing.active_children() == []")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, TRUN_MOCK_STORE=""))


def test_write_then_read_lines():
    target = MockTarget("test")
    with target.open("w") as f:
        print("test", file=f)
    with target.open("r") as f:
        assert list(f) == ["test\n"]


def test_default_mode_is_read():
    with MockTarget("foo").open("w") as f:
        f.write("bar")
    with MockTarget("foo").open() as f:
        assert f.read() == "bar"


def test_bytes_with_nop_format():
    target = MockTarget("foo", format=trun.format.Nop)
    with target.open("wb") as f:
        f.write(b"bar")
    with target.open("rb") as f:
        assert list(f) == [b"bar"]
    assert MockFileSystem().get_data("foo") == b"bar"


def test_data_is_stored_only_on_close():
    target = MockTarget("foo")
    f = target.open("w")
    f.write("x")
    assert not target.exists()
    f.close()
    assert target.exists()


def test_exception_inside_with_stores_nothing():
    target = MockTarget("foo")
    with pytest.raises(ExceptionForTest):
        with target.open("w") as f:
            f.write("half")
            raise ExceptionForTest()
    assert not target.exists()


def test_unclosed_writer_garbage_collected_stores_nothing():
    target = MockTarget("foo")
    f = target.open("w")
    f.write("half")
    del f
    assert not target.exists()


def test_gzip_format_works_in_memory():
    target = MockTarget("foo.gz", format=trun.format.UTF8 >> trun.format.Gzip)
    with target.open("w") as f:
        f.write("é")
    assert MockFileSystem().get_data("foo.gz")[:2] == b"\x1f\x8b"
    assert target.open("r").read() == "é"


def test_mirror_on_stderr_prefixes_each_line_with_path(capsys):
    with MockTarget("/m", mirror_on_stderr=True).open("w") as f:
        f.write("one\ntw")
        f.flush()
        f.write("o\n")
    assert capsys.readouterr().err == "/m: one\n/m: two\n"


def test_mode_none_raises_type_error():
    with pytest.raises(TypeError, match="mode must be a str"):
        MockTarget("foo").open(None)


def test_unsupported_mode_raises_error_naming_mode():
    with pytest.raises(ValueError, match="does not support mode 'a'"):
        MockTarget("foo").open("a")


def test_reading_missing_file_raises_file_not_found_naming_path():
    with pytest.raises(FileNotFoundError, match="/no/such"):
        MockTarget("/no/such").open("r")


def test_move_and_rename(fs):
    MockTarget("/tmp/foo").move("/tmp/moved")
    assert not fs.exists("/tmp/foo") and fs.exists("/tmp/moved")
    MockTarget("/tmp/moved").rename("/tmp/renamed")
    assert fs.exists("/tmp/renamed")


def test_move_onto_existing_with_raise_if_exists_fails(fs):
    with pytest.raises(RuntimeError, match="Destination exists: /tmp/bar"):
        fs.move("/tmp/foo", "/tmp/bar", raise_if_exists=True)
    assert fs.exists("/tmp/foo")


def test_move_of_missing_file_raises_file_not_found(fs):
    with pytest.raises(FileNotFoundError, match="/tmp/none"):
        fs.move("/tmp/none", "/tmp/x")


def test_rename_dont_move_refuses_existing_destination(fs):
    with pytest.raises(FileAlreadyExists):
        fs.rename_dont_move("/tmp/foo", "/tmp/bar")
    fs.rename_dont_move("/tmp/foo", "/tmp/new")
    assert fs.exists("/tmp/new")


def test_copy_keeps_source(fs):
    fs.copy("/tmp/foo", "/tmp/foobar")
    assert fs.exists("/tmp/foo") and fs.exists("/tmp/foobar")


def test_copy_onto_existing_with_raise_if_exists_fails(fs):
    with pytest.raises(RuntimeError, match="Destination exists"):
        fs.copy("/tmp/foo", "/tmp/bar", raise_if_exists=True)


def test_remove_single_file(fs):
    fs.remove("/tmp/foo", recursive=False)
    assert not fs.exists("/tmp/foo") and fs.exists("/tmp/bar")


def test_remove_missing_file_non_recursively_raises(fs):
    with pytest.raises(FileNotFoundError, match="/tmp/none"):
        fs.remove("/tmp/none", recursive=False)


def test_recursive_remove_removes_every_path_with_the_prefix(fs):
    fs.remove("/tmp")
    assert fs.listdir("/") == []


def test_listdir_and_isdir_match_prefixes(fs):
    assert sorted(fs.listdir("/tmp")) == ["/tmp/bar", "/tmp/foo"]
    assert fs.isdir("/tmp")
    assert not fs.isdir("/elsewhere")


def test_mkdir_is_a_no_op(fs):
    fs.mkdir("/some/dir", parents=False, raise_if_exists=True)
    assert not fs.exists("/some/dir")


def test_temporary_path_publishes_on_mock_filesystem():
    target = MockTarget("/out/result")
    with target.temporary_path() as tmp:
        MockTarget(tmp)._touchz()
    assert target.exists()
    assert MockFileSystem().listdir("/out") == ["/out/result"]


def test_all_targets_share_one_store():
    MockTarget("/shared")._touchz()
    assert MockTarget("/shared", format=trun.format.Nop).exists()
    assert "/shared" in MockFileSystem().get_all_data()


def _write_in_child(path, text):
    with MockTarget(path).open("w") as f:
        f.write(text)


def test_forked_worker_process_writes_are_visible_to_parent():
    MockTarget("/before-fork")._touchz()  # the store exists before the fork, as in a worker run
    child = multiprocessing.get_context("fork").Process(target=_write_in_child, args=("/from-child", "hi"))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert MockTarget("/from-child").open("r").read() == "hi"


def test_raw_forked_child_reads_parent_data_and_writes_back():
    with MockTarget("/parent").open("w") as f:
        f.write("from parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = MockTarget("/parent").open("r").read() == "from parent"
            _write_in_child("/raw-child", "yes" if ok else "no")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert MockTarget("/raw-child").open("r").read() == "yes"
    assert MockTarget("/parent").open("r").read() == "from parent"


def test_subprocess_finds_the_store_through_the_environment():
    MockTarget("/seen-by-subprocess")._touchz()
    code = "from trun.mock import MockTarget; print(MockTarget('/seen-by-subprocess').exists())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_subprocess_with_unreachable_store_starts_its_own():
    code = "from trun.mock import MockTarget; MockTarget('/x')._touchz(); print(MockTarget('/x').exists())"
    env = dict(os.environ, TRUN_MOCK_STORE="/nonexistent/socket|00ff")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "True"


def test_mock_target_is_a_trun_target():
    assert isinstance(MockTarget("/x"), trun.Target)


def test_steps_run_by_worker_processes_write_mock_targets_the_test_can_read():
    pytest.importorskip("trun.worker")
    pytest.importorskip("trun.scheduler")

    class WriteMockInWorker(trun.Step):
        number = trun.IntParameter()

        def output(self):
            return MockTarget(f"/workers/{self.number}")

        def run(self):
            with self.output().open("w") as f:
                f.write(f"{self.number} from pid {os.getpid()}")

    steps = [WriteMockInWorker(number=n) for n in range(4)]
    assert trun.build(steps, workers=2, local_scheduler=True)
    contents = [MockTarget(f"/workers/{n}").open("r").read() for n in range(4)]
    assert [text.split()[0] for text in contents] == ["0", "1", "2", "3"]
    assert all(text.split()[-1] != str(os.getpid()) for text in contents)  # written in worker processes
