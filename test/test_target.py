"""Tests of trun.target: the Target and FileSystem abstractions and temporary_path()."""
from __future__ import annotations

import gc
import os
import pathlib
import re
import tempfile

import pytest

import trun
from trun.target import (
    AtomicLocalFile,
    FileAlreadyExists,
    FileSystem,
    FileSystemException,
    FileSystemTarget,
    MissingParentDirectory,
    NotADirectory,
)


class RecordingFileSystem(FileSystem):
    """A file system that only records what it was asked to do."""

    def __init__(self, existing=()):
        self.existing = set(existing)
        self.calls = []

    def exists(self, path):
        self.calls.append(("exists", path))
        return path in self.existing

    def remove(self, path, recursive=True, skip_trash=True):
        self.calls.append(("remove", path))
        self.existing.discard(path)

    def mkdir(self, path, parents=True, raise_if_exists=False):
        self.calls.append(("mkdir", path, parents, raise_if_exists))

    def move(self, path, dest):
        self.calls.append(("move", path, dest))
        self.existing.discard(path)
        self.existing.add(dest)

    def rename_dont_move(self, path, dest):
        self.calls.append(("rename_dont_move", path, dest))


def make_target_class(recording_fs):
    class RecordingTarget(FileSystemTarget):
        fs = recording_fs

        def open(self, mode):
            raise NotImplementedError

    return RecordingTarget


class ExceptionForTest(Exception):
    pass


def test_target_cannot_be_instantiated():
    with pytest.raises(TypeError):
        trun.Target()


def test_target_subclass_without_exists_cannot_be_instantiated():
    class ExistsLessTarget(trun.Target):
        pass

    with pytest.raises(TypeError):
        ExistsLessTarget()


def test_target_subclass_with_exists_can_be_instantiated():
    class AlwaysThere(trun.Target):
        def exists(self):
            return True

    assert AlwaysThere().exists() is True


def test_filesystem_exceptions_share_a_base_class():
    for exception_class in (FileAlreadyExists, MissingParentDirectory, NotADirectory):
        assert issubclass(exception_class, FileSystemException)


def test_filesystem_optional_operations_name_the_class_when_unimplemented():
    class MinimalFileSystem(FileSystem):
        def exists(self, path):
            return False

        def remove(self, path, recursive=True, skip_trash=True):
            pass

    fs = MinimalFileSystem()
    for call in (lambda: fs.mkdir("x"), lambda: fs.isdir("x"), lambda: fs.listdir("x"),
                 lambda: fs.move("x", "y"), lambda: fs.copy("x", "y")):
        with pytest.raises(NotImplementedError, match="MinimalFileSystem"):
            call()


class PlainFileSystem(RecordingFileSystem):
    """Uses FileSystem's own rename_dont_move."""

    rename_dont_move = FileSystem.rename_dont_move


def test_default_rename_dont_move_warns_and_moves():
    fs = PlainFileSystem(existing={"src"})
    with pytest.warns(UserWarning, match="PlainFileSystem client doesn't support atomic mv"):
        fs.rename_dont_move("src", "dest")
    assert ("move", "src", "dest") in fs.calls


def test_default_rename_dont_move_refuses_existing_destination():
    fs = PlainFileSystem(existing={"src", "dest"})
    with pytest.warns(UserWarning), pytest.raises(FileAlreadyExists, match="dest"):
        fs.rename_dont_move("src", "dest")
    assert not any(call[0] == "move" for call in fs.calls)


def test_rename_is_an_alias_of_move():
    fs = RecordingFileSystem(existing={"a"})
    fs.rename("a", "b")
    assert fs.calls == [("move", "a", "b")]


def test_filesystem_target_delegates_exists_and_remove():
    fs = RecordingFileSystem(existing={"/data/x"})
    target = make_target_class(fs)("/data/x")
    assert target.exists()
    target.remove()
    assert not target.exists()
    assert ("remove", "/data/x") in fs.calls


def test_filesystem_target_accepts_pathlike_and_stores_str():
    target = make_target_class(RecordingFileSystem())(pathlib.Path("/data") / "x.txt")
    assert target.path == "/data/x.txt"
    assert isinstance(target.path, str)


def test_filesystem_target_rejects_non_path():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got 42"):
        make_target_class(RecordingFileSystem())(42)


def test_exists_warns_about_glob_characters(caplog):
    target = make_target_class(RecordingFileSystem())("/data/part-*")
    with caplog.at_level("WARNING", logger="trun-interface"):
        target.exists()
    assert "wildcards" in caplog.text and "/data/part-*" in caplog.text


def test_temporary_path_is_renamed_to_path_on_success():
    fs = RecordingFileSystem()
    target = make_target_class(fs)("/tmp/notreal.xls")
    with target.temporary_path() as tmp_path:
        assert re.fullmatch(r"/tmp/notreal\.xls-trun-tmp-\d{10}", tmp_path)
    assert fs.calls[-1] == ("rename_dont_move", tmp_path, "/tmp/notreal.xls")


def test_temporary_path_is_not_renamed_when_block_raises():
    fs = RecordingFileSystem()
    target = make_target_class(fs)("/tmp/blah.txt")
    error = ExceptionForTest()
    with pytest.raises(ExceptionForTest) as raised:
        with target.temporary_path():
            raise error
    assert raised.value is error
    assert not any(call[0] == "rename_dont_move" for call in fs.calls)


def test_temporary_path_removes_leftover_when_block_raises():
    fs = RecordingFileSystem()
    target = make_target_class(fs)("/tmp/blah.txt")
    with pytest.raises(ExceptionForTest):
        with target.temporary_path() as tmp_path:
            fs.existing.add(tmp_path)  # the tool wrote part of its output
            raise ExceptionForTest()
    assert ("remove", tmp_path) in fs.calls
    assert tmp_path not in fs.existing


def test_temporary_path_cleanup_failure_does_not_hide_original_error(caplog):
    class UnremovableFileSystem(RecordingFileSystem):
        def remove(self, path, recursive=True, skip_trash=True):
            raise OSError("read-only")

    fs = UnremovableFileSystem()
    target = make_target_class(fs)("/tmp/blah.txt")
    with pytest.raises(ExceptionForTest):
        with target.temporary_path() as tmp_path:
            fs.existing.add(tmp_path)
            raise ExceptionForTest()
    assert "Could not remove temporary output" in caplog.text


def test_temporary_paths_differ_between_uses():
    target = make_target_class(RecordingFileSystem())("/tmp/blah.txt")
    with target.temporary_path() as first, target.temporary_path() as second:
        assert first != second


def test_temporary_path_keeps_trailing_slash_of_directory():
    target = make_target_class(RecordingFileSystem())("/tmp/dir/")
    with target.temporary_path() as tmp_path:
        assert re.fullmatch(r"/tmp/dir-trun-tmp-\d{10}/", tmp_path)


def test_temporary_path_keeps_windows_separator():
    target = make_target_class(RecordingFileSystem())("C:\\my\\folder\\")
    with target.temporary_path() as tmp_path:
        assert re.fullmatch(r"C:\\my\\folder-trun-tmp-\d{10}\\", tmp_path)


def test_temporary_path_works_with_url_paths():
    target = make_target_class(RecordingFileSystem())("hdfs:///user/me/file.uids")
    with target.temporary_path() as tmp_path:
        assert re.fullmatch(r"hdfs:///user/me/file\.uids-trun-tmp-\d{10}", tmp_path)


def test_temporary_path_creates_parent_directory_of_file():
    fs = RecordingFileSystem()
    with make_target_class(fs)("/my/file/is/awesome.txt").temporary_path():
        assert ("mkdir", "/my/file/is", True, False) in fs.calls


def test_temporary_path_creates_parent_directory_of_directory():
    fs = RecordingFileSystem()
    with make_target_class(fs)("/my/dir/is/awesome/").temporary_path():
        assert ("mkdir", "/my/dir/is", True, False) in fs.calls


def test_temporary_path_in_current_directory_creates_no_directory():
    fs = RecordingFileSystem()
    with make_target_class(fs)("foo.txt").temporary_path():
        pass
    assert not any(call[0] == "mkdir" for call in fs.calls)


class CopyOnCloseFile(AtomicLocalFile):
    """An atomic file publishing by rename, with its temporary file beside the destination."""

    def generate_tmp_path(self, path):
        return path + ".partial"

    def move_to_final_destination(self):
        os.replace(self.tmp_path, self.path)


def test_atomic_local_file_publishes_on_close(tmp_path):
    final = tmp_path / "out.bin"
    atomic = CopyOnCloseFile(str(final))
    atomic.write(b"data")
    assert not final.exists()
    atomic.close()
    assert final.read_bytes() == b"data"
    assert not os.path.exists(atomic.tmp_path)


def test_atomic_local_file_default_tmp_path_is_in_system_tmp_dir(tmp_path):
    class DefaultTmp(AtomicLocalFile):
        def move_to_final_destination(self):
            os.replace(self.tmp_path, self.path)

    atomic = DefaultTmp(str(tmp_path / "out"))
    try:
        assert os.path.dirname(atomic.tmp_path) == tempfile.gettempdir()
    finally:
        atomic.abort()


def test_atomic_local_file_discards_on_exception_in_with(tmp_path):
    final = tmp_path / "out.bin"
    with pytest.raises(ExceptionForTest):
        with CopyOnCloseFile(str(final)) as atomic:
            atomic.write(b"half")
            raise ExceptionForTest()
    assert not final.exists()
    assert not os.path.exists(atomic.tmp_path)


def test_atomic_local_file_discards_when_garbage_collected_unclosed(tmp_path):
    final = tmp_path / "out.bin"
    atomic = CopyOnCloseFile(str(final))
    atomic.write(b"half")
    tmp = atomic.tmp_path
    del atomic
    gc.collect()
    assert not final.exists()
    assert not os.path.exists(tmp)


def test_atomic_local_file_abort_is_idempotent_and_close_after_abort_publishes_nothing(tmp_path):
    final = tmp_path / "out.bin"
    atomic = CopyOnCloseFile(str(final))
    atomic.abort()
    atomic.abort()
    atomic.close()
    assert not final.exists()


def test_atomic_local_file_failing_publish_removes_tmp_file(tmp_path):
    class FailingPublish(CopyOnCloseFile):
        def move_to_final_destination(self):
            raise OSError("upload failed")

    atomic = FailingPublish(str(tmp_path / "out.bin"))
    atomic.write(b"x")
    with pytest.raises(OSError, match="upload failed"):
        atomic.close()
    assert not os.path.exists(atomic.tmp_path)


def test_atomic_local_file_without_publish_method_says_what_to_implement(tmp_path):
    class NoPublish(AtomicLocalFile):
        def generate_tmp_path(self, path):
            return path + ".partial"

    atomic = NoPublish(str(tmp_path / "out"))
    with pytest.raises(NotImplementedError, match="NoPublish must implement move_to_final_destination"):
        atomic.close()
    assert not os.path.exists(atomic.tmp_path)
