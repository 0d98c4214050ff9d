"""Tests of trun.format: the formats, their chaining, and the external-program pipe wrappers."""
from __future__ import annotations

import gzip
import os
import shutil
import sys

import pytest

import trun
import trun.format
from trun.format import ChainFormat, InputPipeProcessWrapper, NewlineWrapper, OutputPipeProcessWrapper, TextFormat
from trun.mock import MockTarget


class ExceptionForTest(Exception):
    pass


UPPERCASE_FILTER = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().upper())"]
LOWERCASE_FILTER = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().lower())"]
FAILING_FILTER = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(); sys.exit(3)"]


class ShoutFormat(trun.format.Format):
    """Stored upper-case, read back lower-case, both through external programs."""

    input = "bytes"
    output = "bytes"

    def __init__(self, writer_command=UPPERCASE_FILTER):
        self.writer_command = writer_command

    def pipe_reader(self, input_pipe):
        return InputPipeProcessWrapper(LOWERCASE_FILTER, input_pipe)

    def pipe_writer(self, output_pipe):
        return OutputPipeProcessWrapper(self.writer_command, output_pipe)


# --- defaults and the Format interface --------------------------------------------------------

def test_default_format_is_text():
    assert trun.format.get_default_format() is trun.format.Text


def test_text_formats_take_unicode_and_give_bytes():
    for text_format in (trun.format.Text, trun.format.UTF8):
        assert (text_format.input, text_format.output) == ("unicode", "bytes")


def test_compression_formats_take_and_give_bytes():
    for compression in (trun.format.Gzip, trun.format.Bzip2, trun.format.SysNewLine):
        assert (compression.input, compression.output) == ("bytes", "bytes")


def test_format_without_implementation_names_its_class():
    class Unfinished(trun.format.Format):
        pass

    with pytest.raises(NotImplementedError, match="Unfinished does not implement pipe_reader"):
        Unfinished().pipe_reader(None)
    with pytest.raises(NotImplementedError, match="Unfinished does not implement pipe_writer"):
        Unfinished().pipe_writer(None)


def test_nop_passes_streams_through_unchanged():
    stream = object()
    assert trun.format.Nop.pipe_reader(stream) is stream
    assert trun.format.Nop.pipe_writer(stream) is stream


def test_formats_have_readable_repr():
    assert repr(trun.format.UTF8 >> trun.format.Gzip) == "TextFormat(encoding='utf8') >> GzipFormat()"


# --- chaining -------------------------------------------------------------------------------

def test_rshift_builds_chain_with_outer_input_and_inner_output():
    chain = trun.format.UTF8 >> trun.format.Gzip
    assert isinstance(chain, ChainFormat)
    assert (chain.input, chain.output) == ("unicode", "bytes")


def test_chain_rejects_bytes_feeding_a_text_format_and_shows_the_right_order():
    with pytest.raises(TypeError, match=r"GzipFormat\(\) produces bytes but TextFormat\(\) expects unicode.*UTF8 >> "):
        trun.format.Gzip >> trun.format.Text


def test_chain_consistency_check_can_be_disabled():
    chain = ChainFormat(trun.format.Gzip, trun.format.Text, check_consistency=False)
    assert chain.input == "bytes"


def test_chain_rejects_objects_that_are_not_formats():
    with pytest.raises(TypeError, match="cannot chain 'gzip'.*needs pipe_reader"):
        trun.format.Text >> "gzip"


def test_chain_of_nothing_is_rejected():
    with pytest.raises(TypeError, match="at least one format"):
        ChainFormat()


def test_three_format_chain_round_trips(tmp_path):
    chain = trun.format.UTF8 >> trun.format.SysNewLine >> trun.format.Gzip
    target = trun.LocalTarget(tmp_path / "x.gz", format=chain)
    with target.open("w") as f:
        f.write("a\nb\n")
    with target.open("r") as f:
        assert f.read() == "a\nb\n"


# --- text ------------------------------------------------------------------------------------

def test_text_format_passes_arguments_to_text_layer(tmp_path):
    target = trun.LocalTarget(tmp_path / "latin1", format=TextFormat(encoding="latin-1"))
    with target.open("w") as f:
        f.write("é")
    assert (tmp_path / "latin1").read_bytes() == b"\xe9"


def test_text_writer_exposes_tmp_path_of_the_file_below(tmp_path):
    with trun.LocalTarget(tmp_path / "t").open("w") as f:
        assert "-trun-tmp-" in f.tmp_path


def test_text_writer_is_closed_after_an_aborted_with_block(tmp_path):
    with pytest.raises(ExceptionForTest):
        with trun.LocalTarget(tmp_path / "t").open("w") as f:
            raise ExceptionForTest()
    assert f.closed
    f.close()  # closing again after an abort publishes nothing
    assert os.listdir(tmp_path) == []


def test_text_writer_abort_discards_and_refuses_more_writes(tmp_path):
    f = trun.LocalTarget(tmp_path / "t").open("w")
    f.write("x")
    f.abort()
    with pytest.raises(ValueError):
        f.write("y")
    assert os.listdir(tmp_path) == []


# --- gzip and bzip2 -----------------------------------------------------------------------------

def test_gzip_header_does_not_record_the_temporary_file_name(tmp_path):
    with trun.LocalTarget(tmp_path / "x.gz", format=trun.format.Gzip).open("w") as f:
        f.write(b"data")
    header_flags = (tmp_path / "x.gz").read_bytes()[3]
    assert header_flags & 0x08 == 0  # FNAME not set


def test_gzip_compression_level_is_used(tmp_path):
    payload = bytes(range(256)) * 400
    sizes = {}
    for level in (0, 9):
        target = trun.LocalTarget(tmp_path / f"l{level}.gz", format=trun.format.GzipFormat(compression_level=level))
        with target.open("w") as f:
            f.write(payload)
        sizes[level] = os.path.getsize(target.path)
        assert gzip.decompress((tmp_path / f"l{level}.gz").read_bytes()) == payload
    assert sizes[9] < sizes[0]


@pytest.mark.parametrize("level", [10, -1, "9"])
def test_gzip_rejects_bad_compression_level(level):
    with pytest.raises(ValueError, match="compression_level must be an int from 0 to 9"):
        trun.format.GzipFormat(compression_level=level)


def test_gzip_reads_multi_member_files(tmp_path):
    (tmp_path / "m.gz").write_bytes(gzip.compress(b"first ") + gzip.compress(b"second"))
    with trun.LocalTarget(tmp_path / "m.gz", format=trun.format.Gzip).open("r") as f:
        assert f.read() == b"first second"


def test_reading_corrupt_gzip_raises(tmp_path):
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(gzip.BadGzipFile):
        trun.LocalTarget(tmp_path / "bad.gz", format=trun.format.Gzip).open("r").read()


def test_unclosed_gzip_writer_publishes_nothing(tmp_path):
    writer = trun.LocalTarget(tmp_path / "x.gz", format=trun.format.Gzip).open("w")
    writer.write(b"data")
    del writer
    assert os.listdir(tmp_path) == []


def test_bzip2_line_iteration(tmp_path):
    target = trun.LocalTarget(tmp_path / "x.bz2", format=trun.format.UTF8 >> trun.format.Bzip2)
    with target.open("w") as f:
        f.write("one\ntwo\n")
    with target.open("r") as f:
        assert list(f) == ["one\n", "two\n"]


# --- newlines and mixed writers ----------------------------------------------------------------

def test_sys_newline_writes_os_linesep_and_reads_back_newlines(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "linesep", "\r\n")
    target = trun.LocalTarget(tmp_path / "nl", format=trun.format.SysNewLine)
    with target.open("w") as f:
        f.write(b"a\rb\nc\r\nd")
    assert (tmp_path / "nl").read_bytes() == b"a\r\nb\r\nc\r\nd"
    with target.open("r") as f:
        assert f.read() == b"a\nb\nc\nd"


def test_sys_newline_keeps_crlf_split_across_writes_as_one_line_ending(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "linesep", "\n")
    target = trun.LocalTarget(tmp_path / "nl", format=trun.format.SysNewLine)
    with target.open("w") as f:
        f.write(b"a\r")
        f.write(b"\nb\r")
    assert (tmp_path / "nl").read_bytes() == b"a\nb\n"


def test_sys_newline_keeps_crlf_split_across_reads_as_one_line_ending(tmp_path):
    (tmp_path / "nl").write_bytes(b"a\r\nb")
    with trun.LocalTarget(tmp_path / "nl", format=trun.format.SysNewLine).open("r") as f:
        assert f.read(2) + f.read() == b"a\nb"


def test_newline_wrapper_rejects_unknown_newline():
    with pytest.raises(ValueError, match="newline must be None, '', "):
        NewlineWrapper(None, newline="\n\n")


def test_mixed_unicode_bytes_accepts_both(tmp_path):
    target = trun.LocalTarget(tmp_path / "mixed", format=trun.format.MixedUnicodeBytesFormat(encoding="utf8"))
    with target.open("w") as f:
        f.write("é")
        f.write(b"\x00")
        f.writelines(["a", b"b"])
    assert (tmp_path / "mixed").read_bytes() == b"\xc3\xa9\x00ab"
    assert target.open("r").read() == b"\xc3\xa9\x00ab"


def test_mixed_unicode_bytes_aborts_on_exception(tmp_path):
    with pytest.raises(ExceptionForTest):
        with trun.LocalTarget(tmp_path / "mixed", format=trun.format.MixedUnicodeBytes).open("w") as f:
            f.write("x")
            raise ExceptionForTest()
    assert os.listdir(tmp_path) == []


# --- formats built on external programs ----------------------------------------------------------

def test_pipe_wrappers_filter_through_programs_on_local_files(tmp_path):
    target = trun.LocalTarget(tmp_path / "shout", format=ShoutFormat())
    with target.open("w") as f:
        f.write(b"hello")
    assert (tmp_path / "shout").read_bytes() == b"HELLO"
    with target.open("r") as f:
        assert f.read() == b"hello"


def test_pipe_wrappers_work_on_streams_without_file_descriptor():
    MockTarget.fs.clear()
    target = MockTarget("/pipes/shout", format=ShoutFormat())
    with target.open("w") as f:
        f.write(b"in memory")
    assert MockTarget.fs.get_data("/pipes/shout") == b"IN MEMORY"
    with target.open("r") as f:
        assert list(f) == [b"in memory"]


def test_text_chained_over_pipe_wrappers(tmp_path):
    target = trun.LocalTarget(tmp_path / "shout", format=trun.format.UTF8 >> ShoutFormat())
    with target.open("w") as f:
        f.write("héllo")
    assert target.open("r").read() == "héllo"


def test_failing_writer_program_raises_naming_command_and_publishes_nothing(tmp_path):
    target = trun.LocalTarget(tmp_path / "out", format=ShoutFormat(writer_command=FAILING_FILTER))
    with pytest.raises(RuntimeError, match="sys.exit\\(3\\).*exit status 3"):
        with target.open("w") as f:
            f.write(b"data")
    assert os.listdir(tmp_path) == []


def test_exception_while_writing_through_program_publishes_nothing(tmp_path):
    target = trun.LocalTarget(tmp_path / "out", format=ShoutFormat())
    with pytest.raises(ExceptionForTest):
        with target.open("w") as f:
            f.write(b"data")
            raise ExceptionForTest()
    assert os.listdir(tmp_path) == []


def test_failing_reader_program_raises_on_close(tmp_path):
    (tmp_path / "in").write_bytes(b"x")
    failing = [sys.executable, "-c", "import sys; sys.exit(5)"]
    with open(tmp_path / "in", "rb") as raw:
        reader = InputPipeProcessWrapper(failing, raw)
        with pytest.raises(RuntimeError, match="exited with status 5"):
            reader.close()


@pytest.mark.skipif(shutil.which("yes") is None, reason="needs the yes program")
def test_reader_closed_early_tolerates_program_killed_by_sigpipe():
    reader = InputPipeProcessWrapper(["yes"])
    assert reader.read(4) == b"y\ny\n"
    reader.close()  # must not raise although the program died of SIGPIPE
    assert reader.closed
