"""Tests of trun.local_target: atomic local files and LocalFileSystem."""
from __future__ import annotations

import bz2
import errno
import gc
import gzip
import os
import pathlib
import re

import pytest

import trun
import trun.format
from trun.local_target import LocalFileSystem
from trun.target import FileAlreadyExists, MissingParentDirectory, NotADirectory


class ExceptionForTest(Exception):
    pass


def leftovers(directory):
    """Names in ``directory`` that look like temporary files of an atomic write."""
    return [name for name in os.listdir(directory) if "-trun-tmp-" in name]


# --- writing and reading -----------------------------------------------------------------

def test_write_then_read_back_text(tmp_path):
    target = trun.LocalTarget(tmp_path / "out.txt")
    with target.open("w") as f:
        f.write("lol\n")
    with target.open("r") as f:
        assert f.read() == "lol\n"


def test_file_appears_only_when_writer_is_closed(tmp_path):
    target = trun.LocalTarget(tmp_path / "out.txt")
    writer = target.open("w")
    writer.write("x")
    assert not target.exists()
    writer.close()
    assert target.exists()


def test_temporary_file_is_beside_the_target_with_trun_tmp_name(tmp_path):
    target = trun.LocalTarget(tmp_path / "out.txt")
    with target.open("w") as f:
        assert re.fullmatch(re.escape(str(tmp_path / "out.txt")) + r"-trun-tmp-\d{10}", f.tmp_path)
        assert os.path.exists(f.tmp_path)
    assert leftovers(tmp_path) == []


def test_exception_inside_with_leaves_no_file_and_no_temporary_file(tmp_path):
    target = trun.LocalTarget(tmp_path / "out.txt")
    with pytest.raises(ExceptionForTest):
        with target.open("w") as f:
            f.write("half of it\n" * 10000)
            raise ExceptionForTest()
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_exception_inside_with_keeps_previous_version_of_file(tmp_path):
    target = trun.LocalTarget(tmp_path / "out.txt")
    with target.open("w") as f:
        f.write("version 1")
    with pytest.raises(ExceptionForTest):
        with target.open("w") as f:
            f.write("version 2, half written")
            raise ExceptionForTest()
    assert target.open("r").read() == "version 1"
    assert leftovers(tmp_path) == []


def test_unclosed_writer_garbage_collected_publishes_nothing(tmp_path):
    target = trun.LocalTarget(tmp_path / "out.txt")

    def write_without_closing():
        f = target.open("w")
        f.write("stuff")
        return f.tmp_path

    tmp = write_without_closing()
    gc.collect()
    assert not os.path.exists(tmp)
    assert not target.exists()


def test_deleted_text_writer_publishes_nothing(tmp_path):
    target = trun.LocalTarget(tmp_path / "out.txt", format=trun.format.UTF8)
    writer = target.open("w")
    print("test", file=writer)
    tmp = writer.tmp_path
    del writer
    assert not os.path.exists(tmp)
    assert not target.exists()


def test_missing_parent_directories_are_created(tmp_path):
    target = trun.LocalTarget(tmp_path / "a" / "b" / "c.txt")
    with target.open("w") as f:
        f.write("deep")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "deep"


def test_relative_path_is_relative_to_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = trun.LocalTarget("relative.txt")
    with target.open("w") as f:
        f.write("here")
    assert (tmp_path / "relative.txt").read_text() == "here"


def test_pathlib_path_is_accepted(tmp_path):
    path = tmp_path / "p.txt"
    target = trun.LocalTarget(path)
    assert target.path == str(path)
    assert not target.exists()
    path.write_text("x")
    assert target.exists()


def test_writelines_and_line_iteration(tmp_path):
    target = trun.LocalTarget(tmp_path / "lines.txt")
    with target.open("w") as f:
        f.writelines(["a\n", "b\n", "c\n"])
    with target.open("r") as f:
        assert list(f) == ["a\n", "b\n", "c\n"]


def test_unicode_round_trip_with_utf8(tmp_path):
    target = trun.LocalTarget(tmp_path / "u.txt", format=trun.format.UTF8)
    with target.open("w") as f:
        f.write("我éçф")
    assert (tmp_path / "u.txt").read_bytes() == "我éçф".encode()
    with target.open("r") as f:
        assert f.read() == "我éçф"


def test_binary_round_trip_with_nop(tmp_path):
    target = trun.LocalTarget(tmp_path / "b.bin", format=trun.format.Nop)
    with target.open("w") as f:
        f.write(b"a\xf2\xf3\r\nfd")
    with target.open("r") as f:
        assert f.read() == b"a\xf2\xf3\r\nfd"


def test_b_in_mode_does_not_change_the_format(tmp_path):
    target = trun.LocalTarget(tmp_path / "t.txt")
    with target.open("wb") as f:
        f.write("still text")
    with target.open("rb") as f:
        assert f.read() == "still text"


def test_gzip_round_trip_and_readable_by_gzip_module(tmp_path):
    target = trun.LocalTarget(tmp_path / "data.gz", format=trun.format.Gzip)
    with target.open("w") as f:
        assert not target.exists()
        f.write(b"123testing")
    assert gzip.decompress((tmp_path / "data.gz").read_bytes()) == b"123testing"
    with target.open("r") as f:
        assert f.read() == b"123testing"
    assert leftovers(tmp_path) == []


def test_bzip2_round_trip_and_readable_by_bz2_module(tmp_path):
    target = trun.LocalTarget(tmp_path / "data.bz2", format=trun.format.Bzip2)
    with target.open("w") as f:
        f.write(b"test")
    assert bz2.decompress((tmp_path / "data.bz2").read_bytes()) == b"test"
    assert target.open("r").read() == b"test"


def test_failed_gzip_write_leaves_nothing(tmp_path):
    target = trun.LocalTarget(tmp_path / "data.gz", format=trun.format.UTF8 >> trun.format.Gzip)
    with pytest.raises(ExceptionForTest):
        with target.open("w") as f:
            f.write("partial")
            raise ExceptionForTest()
    assert os.listdir(tmp_path) == []


def test_text_over_gzip_chain_writes_compressed_utf8(tmp_path):
    windows_utf8 = trun.format.TextFormat(encoding="utf8", newline="\r\n")
    target = trun.LocalTarget(tmp_path / "t.gz", format=windows_utf8 >> trun.format.Gzip)
    with target.open("w") as f:
        f.write("我é\nçф")
    assert gzip.decompress((tmp_path / "t.gz").read_bytes()) == b"\xe6\x88\x91\xc3\xa9\r\n\xc3\xa7\xd1\x84"


def test_text_over_gzip_chain_reads_universal_newlines(tmp_path):
    (tmp_path / "t.gz").write_bytes(gzip.compress(b"\xe6\x88\x91\xc3\xa9\r\n\xc3\xa7\xd1\x84"))
    target = trun.LocalTarget(tmp_path / "t.gz", format=trun.format.UTF8 >> trun.format.Gzip)
    with target.open("r") as f:
        assert f.read() == "我é\nçф"


def test_custom_format_can_set_attributes_on_streams(tmp_path):
    class Tagging(trun.format.Format):
        def pipe_reader(self, input_pipe):
            input_pipe.foo = "custom read property"
            return input_pipe

        def pipe_writer(self, output_pipe):
            output_pipe.foo = "custom write property"
            return output_pipe

    target = trun.LocalTarget(tmp_path / "x", format=Tagging())
    with target.open("w") as f:
        assert f.foo == "custom write property"
    with target.open("r") as f:
        assert f.foo == "custom read property"


def test_touchz_creates_empty_file(tmp_path):
    target = trun.LocalTarget(tmp_path / "empty")
    target._touchz()
    assert (tmp_path / "empty").read_bytes() == b""


# --- error paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["w", "wb", "bw", "wt", "tw"])
def test_write_modes_are_accepted(tmp_path, mode):
    target = trun.LocalTarget(tmp_path / "m")
    target.open(mode).close()
    assert target.exists()


@pytest.mark.parametrize("mode", ["r", "rb", "br", "rt", "tr"])
def test_read_modes_are_accepted(tmp_path, mode):
    (tmp_path / "m").write_text("x")
    trun.LocalTarget(tmp_path / "m").open(mode).close()


@pytest.mark.parametrize("mode", ["x", "a", "r+", "w+", "ab", "rw", ""])
def test_unsupported_mode_raises_error_naming_mode(tmp_path, mode):
    target = trun.LocalTarget(tmp_path / "m")
    with pytest.raises(ValueError, match=f"does not support mode {re.escape(repr(mode))}.*use 'r' to read or 'w'"):
        target.open(mode)
    assert os.listdir(tmp_path) == []


def test_mode_none_raises_type_error(tmp_path):
    with pytest.raises(TypeError, match="mode must be a str"):
        trun.LocalTarget(tmp_path / "m").open(None)


def test_reading_missing_file_raises_file_not_found_naming_path(tmp_path):
    target = trun.LocalTarget(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        target.open("r")


def test_target_without_path_or_is_tmp_explains_both_options():
    with pytest.raises(ValueError, match=r"needs a path.*is_tmp=True"):
        trun.LocalTarget()


def test_fn_is_deprecated_alias_of_path(tmp_path):
    target = trun.LocalTarget(tmp_path / "f")
    with pytest.warns(DeprecationWarning, match="LocalTarget.path"):
        assert target.fn == target.path


# --- is_tmp --------------------------------------------------------------------------------

def test_tmp_target_is_removed_when_garbage_collected():
    target = trun.LocalTarget(is_tmp=True)
    assert not target.exists()
    with target.open("w") as f:
        print("test", file=f)
    assert target.open("r").readline() == "test\n"
    path = target.path
    del target
    gc.collect()
    assert not os.path.exists(path)


# --- move, copy, remove ----------------------------------------------------------------------

def write(path, text="data"):
    with trun.LocalTarget(path).open("w") as f:
        f.write(text)


def test_move_renames_file(tmp_path):
    target = trun.LocalTarget(tmp_path / "src")
    write(target.path)
    target.move(str(tmp_path / "sub" / "dest"))
    assert not target.exists()
    assert (tmp_path / "sub" / "dest").read_text() == "data"


def test_move_onto_existing_file_replaces_it_by_default(tmp_path):
    write(tmp_path / "src", "new")
    write(tmp_path / "dest", "old")
    trun.LocalTarget(tmp_path / "src").move(str(tmp_path / "dest"))
    assert (tmp_path / "dest").read_text() == "new"


def test_move_onto_existing_file_with_raise_if_exists_fails_and_keeps_both(tmp_path):
    write(tmp_path / "src", "new")
    write(tmp_path / "dest", "old")
    with pytest.raises(FileAlreadyExists, match="dest"):
        trun.LocalTarget(tmp_path / "src").move(str(tmp_path / "dest"), raise_if_exists=True)
    assert (tmp_path / "src").read_text() == "new"
    assert (tmp_path / "dest").read_text() == "old"


def test_move_across_devices_copies_then_removes_source(tmp_path, monkeypatch):
    write(tmp_path / "src", "payload")
    real_replace = os.replace

    def replace_failing_across_devices(src, dst):
        if "-trun-tmp-" not in str(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_failing_across_devices)
    LocalFileSystem().move(str(tmp_path / "src"), str(tmp_path / "dest"))
    monkeypatch.undo()
    assert not (tmp_path / "src").exists()
    assert (tmp_path / "dest").read_text() == "payload"
    assert leftovers(tmp_path) == []


def test_move_directory(tmp_path):
    write(tmp_path / "d" / "f")
    trun.LocalTarget(tmp_path / "d").move_dir(str(tmp_path / "e"))
    assert (tmp_path / "e" / "f").read_text() == "data"
    assert not (tmp_path / "d").exists()


def test_rename_dont_move_refuses_existing_destination(tmp_path):
    fs = LocalFileSystem()
    write(tmp_path / "a")
    fs.rename_dont_move(str(tmp_path / "a"), str(tmp_path / "b"))
    write(tmp_path / "a")
    with pytest.raises(FileAlreadyExists):
        fs.rename_dont_move(str(tmp_path / "a"), str(tmp_path / "b"))


def test_copy_creates_destination_directory_and_keeps_source(tmp_path):
    write(tmp_path / "src", "c")
    trun.LocalTarget(tmp_path / "src").copy(str(tmp_path / "new" / "copy"))
    assert (tmp_path / "src").read_text() == "c"
    assert (tmp_path / "new" / "copy").read_text() == "c"


def test_copy_with_raise_if_exists_refuses_existing_destination(tmp_path):
    write(tmp_path / "src")
    write(tmp_path / "dest", "old")
    with pytest.raises(RuntimeError, match="Destination exists"):
        trun.LocalTarget(tmp_path / "src").copy(str(tmp_path / "dest"), raise_if_exists=True)
    assert (tmp_path / "dest").read_text() == "old"


def test_remove_deletes_file_and_directory_tree(tmp_path):
    write(tmp_path / "f")
    write(tmp_path / "d" / "e" / "f")
    trun.LocalTarget(tmp_path / "f").remove()
    trun.LocalTarget(tmp_path / "d").remove()
    assert os.listdir(tmp_path) == []


def test_remove_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        trun.LocalTarget(tmp_path / "nothing").remove()


def test_listdir_lists_files_recursively(tmp_path):
    write(tmp_path / "d" / "a")
    write(tmp_path / "d" / "sub" / "b")
    listed = sorted(LocalFileSystem().listdir(str(tmp_path / "d")))
    assert listed == [str(tmp_path / "d" / "a"), str(tmp_path / "d" / "sub" / "b")]


def test_mkdir_creates_parents_and_isdir_sees_it(tmp_path):
    fs = LocalFileSystem()
    path = str(tmp_path / "foo" / "bar")
    fs.mkdir(path)
    assert fs.isdir(path)
    fs.mkdir(path)  # an existing directory is fine by default


def test_mkdir_without_parents_reports_missing_parent(tmp_path):
    with pytest.raises(MissingParentDirectory, match="parents=True"):
        LocalFileSystem().mkdir(str(tmp_path / "foo" / "bar"), parents=False)


def test_mkdir_with_raise_if_exists_reports_existing_directory(tmp_path):
    with pytest.raises(FileAlreadyExists):
        LocalFileSystem().mkdir(str(tmp_path), raise_if_exists=True)


def test_mkdir_over_a_file_reports_not_a_directory(tmp_path):
    write(tmp_path / "file")
    with pytest.raises(NotADirectory, match="file"):
        LocalFileSystem().mkdir(str(tmp_path / "file"))


def test_temporary_path_publishes_what_a_tool_wrote(tmp_path):
    target = trun.LocalTarget(tmp_path / "sub" / "result.txt")
    with target.temporary_path() as tmp:
        pathlib.Path(tmp).write_text("by a tool")
    assert target.open("r").read() == "by a tool"
    assert leftovers(tmp_path / "sub") == []


def test_temporary_path_refuses_to_overwrite_existing_target(tmp_path):
    write(tmp_path / "result.txt", "first")
    target = trun.LocalTarget(tmp_path / "result.txt")
    with pytest.raises(FileAlreadyExists):
        with target.temporary_path() as tmp:
            pathlib.Path(tmp).write_text("second")
    assert target.open("r").read() == "first"
    assert leftovers(tmp_path) == []


def test_temporary_path_removes_partial_output_when_block_raises(tmp_path):
    target = trun.LocalTarget(tmp_path / "result")
    with pytest.raises(ExceptionForTest):
        with target.temporary_path() as tmp:
            pathlib.Path(tmp).write_text("half")
            raise ExceptionForTest()
    assert os.listdir(tmp_path) == []


def test_temporary_path_of_directory_is_published_and_cleaned_on_failure(tmp_path):
    target = trun.LocalTarget(str(tmp_path / "outdir") + "/")
    with target.temporary_path() as tmp:
        os.makedirs(tmp)
        pathlib.Path(tmp, "part-0").write_text("p")
    assert (tmp_path / "outdir" / "part-0").read_text() == "p"
    failing = trun.LocalTarget(str(tmp_path / "faildir") + "/")
    with pytest.raises(ExceptionForTest):
        with failing.temporary_path() as tmp:
            os.makedirs(tmp)
            raise ExceptionForTest()
    assert sorted(os.listdir(tmp_path)) == ["outdir"]
