"""Formats: how a target's raw bytes become the stream a step reads or writes.

A target opens a raw byte stream and hands it to its format:
``format.pipe_reader(raw)`` returns what ``open('r')`` gives the step and
``format.pipe_writer(raw)`` what ``open('w')`` gives it. Formats combine with
``>>``, outermost (the side the step sees) first::

    LocalTarget("counts.tsv.gz", format=trun.format.UTF8 >> trun.format.Gzip)

Each format declares what it takes on its step side (``input``) and what it
passes on its storage side (``output``), ``"unicode"`` or ``"bytes"``;
:class:`ChainFormat` refuses chains where these do not meet.

Provided: :data:`Text` (the default; platform encoding), :data:`UTF8`,
:data:`Nop` (raw bytes: how to write binary or pickled data, since a ``'b'`` in
the open mode is ignored), :data:`Gzip`, :data:`Bzip2`, :data:`SysNewLine` and
:data:`MixedUnicodeBytes`. :class:`InputPipeProcessWrapper` and
:class:`OutputPipeProcessWrapper` help write formats that filter through an
external program.

The abort protocol (hazard for authors of formats): a writer must never
publish a half-written file. Leaving a writer's ``with`` block with an
exception, calling its ``abort()`` or garbage-collecting it unclosed discards
the data all the way down to the target's raw stream; only ``close()``
publishes. Wrappers pass this on with :func:`abort_stream`.

Unlike Luigi, :data:`Gzip` and :data:`Bzip2` compress in process with Python's
:mod:`gzip` and :mod:`bz2` modules instead of piping through the ``gzip`` and
``bzip2`` programs, so they work where those programs are missing and need no
extra process. The files are interchangeable with the programs' output.
"""
from __future__ import annotations

import bz2
import gzip
import io
import locale
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = [
    "BaseWrapper", "Bzip2", "Bzip2Format", "ChainFormat", "FileWrapper", "Format", "Gzip", "GzipFormat",
    "InputPipeProcessWrapper", "MixedUnicodeBytes", "MixedUnicodeBytesFormat", "MixedUnicodeBytesWrapper",
    "NewlineFormat", "NewlineWrapper", "Nop", "NopFormat", "OutputPipeProcessWrapper", "SysNewLine", "Text",
    "TextFormat", "TextWrapper", "UTF8", "WrappedFormat", "abort_stream", "get_default_format",
]

UNICODE = "unicode"
BYTES = "bytes"


class _AbandonedWrite(Exception):
    """Passed to ``__exit__`` of streams that know no ``abort()``, to make them discard."""


def abort_stream(stream: Any) -> None:
    """Discard what was written to ``stream`` without publishing it.

    Calls ``stream.abort()`` when it exists; otherwise leaves the stream's
    context as if an exception had been raised inside it (the convention of
    Luigi-era atomic writers).
    """
    abort = getattr(stream, "abort", None)
    if callable(abort):
        abort()
        return
    exit_ = getattr(stream, "__exit__", None)
    if exit_ is not None:
        error = _AbandonedWrite("write abandoned")
        exit_(type(error), error, None)


def _is_writer(stream: Any) -> bool:
    try:
        return bool(stream.writable())
    except (AttributeError, ValueError):
        return False


class FileWrapper:
    """Wrap a file object so that attributes can be added to it.

    Attribute access not defined here is forwarded to the wrapped object.
    """

    def __init__(self, file_object: Any) -> None:
        self._subpipe = file_object

    def __getattr__(self, name: str) -> Any:
        if name == "_subpipe":
            raise AttributeError(name)
        return getattr(self._subpipe, name)

    def __enter__(self) -> FileWrapper:
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self._subpipe.__exit__(*exc_info)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._subpipe)


class BaseWrapper:
    """Base of the stream wrappers used by formats.

    Forwards attributes it does not define to the wrapped stream (so e.g.
    ``tmp_path`` of an atomic file stays reachable), commits on a clean exit of a
    ``with`` block and aborts on an exception.
    """

    def __init__(self, stream: Any, *args: Any, **kwargs: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        if name == "_stream":
            raise AttributeError(name)
        return getattr(self._stream, name)

    def close(self) -> None:
        """Close the wrapped stream (publishing it, for a writer)."""
        self._stream.close()

    def abort(self) -> None:
        """Discard what was written, down to the raw stream."""
        abort_stream(self._stream)

    def __enter__(self) -> BaseWrapper:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._stream
        finally:
            self.close()


class NewlineWrapper(BaseWrapper):
    """Translate line endings of a byte stream.

    :param newline: ``None`` (default) reads any of ``\\n``, ``\\r\\n``, ``\\r`` as
        ``\\n`` and writes ``\\n`` as :data:`os.linesep`; ``''`` translates nothing;
        ``'\\n'``, ``'\\r\\n'`` or ``'\\r'`` translates both ways to that ending.
    """

    _ANY_NEWLINE = re.compile(b"\r\n|\r|\n")

    def __init__(self, stream: Any, newline: str | None = None) -> None:
        if newline not in (None, "", "\n", "\r\n", "\r"):
            raise ValueError(
                f"NewlineWrapper newline must be None, '', '\\n', '\\r\\n' or '\\r', got {newline!r}"
            )
        super().__init__(stream)
        self.newline = None if newline is None else newline.encode("ascii")
        self._read_carry = b""
        self._write_pending_cr = False

    def _read_ending(self) -> bytes | None:
        if self.newline == b"":
            return None
        return b"\n" if self.newline is None else self.newline

    def _write_ending(self) -> bytes | None:
        if self.newline == b"":
            return None
        # looked up at call time so a patched os.linesep is honoured
        return os.linesep.encode("ascii") if self.newline is None else self.newline

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative), newlines translated."""
        data = self._read_carry + self._stream.read(size)
        self._read_carry = b""
        ending = self._read_ending()
        if ending is None:
            return data
        if data.endswith(b"\r") and size is not None and size >= 0:
            # a \r\n split across two reads must still count as one line ending
            following = self._stream.read(1)
            if following == b"\n":
                data += following
            else:
                self._read_carry = following
        return self._ANY_NEWLINE.sub(ending, data)

    read1 = read

    def readline(self, size: int = -1) -> bytes:
        """Read one line, its ending translated."""
        line = self._stream.readline(size)
        ending = self._read_ending()
        return line if ending is None else self._ANY_NEWLINE.sub(ending, line)

    def __iter__(self) -> Iterator[bytes]:
        try:
            ending = self._read_ending()
            for line in self._stream:
                yield line if ending is None else self._ANY_NEWLINE.sub(ending, line)
        finally:
            self.close()

    def write(self, data: bytes) -> int:
        """Write ``data`` with its line endings translated."""
        written = len(data)
        ending = self._write_ending()
        if ending is None:
            self._stream.write(data)
            return written
        if self._write_pending_cr:
            data = b"\r" + data
            self._write_pending_cr = False
        if data.endswith(b"\r"):
            # hold a trailing \r back: the next write may start with its \n
            data = data[:-1]
            self._write_pending_cr = True
        self._stream.write(self._ANY_NEWLINE.sub(ending, data))
        return written

    def writelines(self, lines: Iterable[bytes]) -> None:
        """Write each of ``lines``, translated."""
        for line in lines:
            self.write(line)

    def _flush_pending_cr(self) -> None:
        if self._write_pending_cr:
            self._write_pending_cr = False
            self._stream.write(self._write_ending() or b"\r")

    def flush(self) -> None:
        """Flush the wrapped stream (a held-back ``\\r`` stays held until more data or close)."""
        self._stream.flush()

    def close(self) -> None:
        """Write any held-back line ending, then close the wrapped stream."""
        try:
            self._flush_pending_cr()
        except BaseException:
            self.abort()
            raise
        self._stream.close()


class MixedUnicodeBytesWrapper(BaseWrapper):
    """A byte-stream writer that also accepts ``str``, encoding it.

    :param encoding: used for ``str`` data; defaults to the locale's preferred encoding.
    """

    def __init__(self, stream: Any, encoding: str | None = None) -> None:
        super().__init__(stream)
        self.encoding = encoding or locale.getpreferredencoding(False)

    def _convert(self, data: str | bytes) -> bytes:
        return data.encode(self.encoding) if isinstance(data, str) else data

    def write(self, data: str | bytes) -> int:
        """Write ``data``, encoding it first if it is a ``str``."""
        return self._stream.write(self._convert(data))

    def writelines(self, lines: Iterable[str | bytes]) -> None:
        """Write each of ``lines``, encoding ``str`` ones."""
        self._stream.writelines(self._convert(line) for line in lines)


class TextWrapper(io.TextIOWrapper):
    """A text layer over a byte stream that leaves publishing to the stream below.

    Closing commits (``close()`` of the byte stream); leaving a ``with`` block
    with an exception or garbage-collecting an unclosed writer aborts instead,
    so an interrupted text write publishes nothing. Attributes it lacks (such as
    ``tmp_path``) are looked up on the wrapped stream.
    """

    def __init__(self, stream: Any, *args: Any, **kwargs: Any) -> None:
        self._stream = stream
        self._aborted = False
        super().__init__(stream, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("_stream", "_aborted"):
            raise AttributeError(name)
        return getattr(self._stream, name)

    @property
    def closed(self) -> bool:  # type: ignore[override]
        return self._aborted or super().closed

    def close(self) -> None:
        """Flush the text layer and close (publish) the byte stream below."""
        if not self._aborted:
            super().close()

    def abort(self) -> None:
        """Discard pending text and abort the byte stream below; idempotent."""
        if self.closed:
            return
        self._aborted = True
        abort_stream(self._stream)

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        try:
            if self.closed:
                return
            if _is_writer(self):
                self.abort()
            else:
                self.close()
        except Exception:
            pass


class _CodecStream(io.BufferedIOBase):
    """A compressed file object (``gzip``/``bz2``) over a target's raw stream.

    The codec file does not own the raw stream; closing this closes the codec
    (writing its trailer) and then the raw stream, which publishes it.
    """

    def __init__(self, stream: Any, codec_file: Any, writing: bool) -> None:
        self._stream = stream
        self._codec = codec_file
        self._writing = writing
        self._done = False

    def __getattr__(self, name: str) -> Any:
        if name in ("_stream", "_codec", "_writing", "_done"):
            raise AttributeError(name)
        return getattr(self._stream, name)

    @property
    def closed(self) -> bool:  # type: ignore[override]
        return self._done

    def readable(self) -> bool:
        return not self._writing

    def writable(self) -> bool:
        return self._writing

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        return self._codec.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self._codec.read1(size)

    def readinto(self, buffer: Any) -> int:
        return self._codec.readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        return self._codec.readline(-1 if size is None else size)

    def write(self, data: Any) -> int:
        return self._codec.write(data)

    def flush(self) -> None:
        if not self._done:
            self._codec.flush()

    def close(self) -> None:
        """Finish the compressed data and close the raw stream (publishing a write)."""
        if self._done:
            return
        self._done = True
        if not self._writing:
            try:
                self._codec.close()
            finally:
                self._stream.close()
            return
        try:
            self._codec.close()
        except BaseException:
            abort_stream(self._stream)
            raise
        self._stream.close()

    def abort(self) -> None:
        """Discard the compressed data; publishes nothing. Idempotent."""
        if self._done:
            return
        if not self._writing:
            self.close()
            return
        self._done = True
        try:
            self._codec.close()
        except Exception:
            pass  # the output is thrown away anyway
        abort_stream(self._stream)

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        try:
            self.abort()
        except Exception:
            pass


def _restore_sigpipe() -> None:
    # Python ignores SIGPIPE; a filter program should die quietly when its reader goes away.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _usable_fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


_SIGPIPE_EXITS = (141, -13)  # killed by SIGPIPE: directly, or as reported by a shell


class InputPipeProcessWrapper:
    """Read the output of an external filter program fed with a target's raw stream.

    For formats decoding with a program, e.g.
    ``InputPipeProcessWrapper(["xz", "-dc"], input_pipe)``. A stream without a
    file descriptor is first spooled to a temporary file. Closing before the end
    is fine (the program's SIGPIPE exit is tolerated); any other non-zero exit
    raises :class:`RuntimeError` naming the command.
    """

    def __init__(self, command: Sequence[str], input_pipe: Any = None) -> None:
        self._command = list(command)
        self._input_pipe = input_pipe
        self._spool: Any = None
        stdin: Any = None
        if input_pipe is not None:
            fileno = _usable_fileno(input_pipe)
            if fileno is None:
                self._spool = tempfile.TemporaryFile()
                shutil.copyfileobj(input_pipe, self._spool)
                self._spool.seek(0)
                stdin = self._spool
            else:
                stdin = fileno
        preexec = _restore_sigpipe if sys.platform != "win32" else None
        self._process = subprocess.Popen(self._command, stdin=stdin, stdout=subprocess.PIPE, preexec_fn=preexec)
        self._finished = False

    def __getattr__(self, name: str) -> Any:
        if name in ("_process", "_finished"):
            raise AttributeError(name)
        return getattr(self._process.stdout, name)

    @property
    def closed(self) -> bool:
        return self._finished

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        for stream in (self._input_pipe, self._spool):
            if stream is not None:
                stream.close()
        self._process.stdout.close()
        returncode = self._process.wait()
        if returncode != 0 and returncode not in _SIGPIPE_EXITS:
            raise RuntimeError(
                f"Error reading from pipe: command {' '.join(self._command)!r} exited with status {returncode}"
            )

    def close(self) -> None:
        """Stop reading, wait for the program and check its exit status."""
        self._finish()

    def __enter__(self) -> InputPipeProcessWrapper:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._finish()

    def __iter__(self) -> Iterator[bytes]:
        yield from self._process.stdout
        self._finish()

    def __del__(self) -> None:
        try:
            self._finish()
        except Exception:
            pass


class OutputPipeProcessWrapper:
    """Write through an external filter program into a target's raw stream.

    For formats encoding with a program, e.g.
    ``OutputPipeProcessWrapper(["xz", "-c"], output_pipe)``. ``close()`` waits for
    the program and, if it succeeded, closes (publishes) the raw stream; a
    non-zero exit aborts the raw stream and raises :class:`RuntimeError`.
    """

    def __init__(self, command: Sequence[str], output_pipe: Any = None) -> None:
        self._command = list(command)
        self._output_pipe = output_pipe
        self._spool: Any = None
        stdout: Any = None
        if output_pipe is not None:
            if hasattr(output_pipe, "flush"):
                output_pipe.flush()
            fileno = _usable_fileno(output_pipe)
            if fileno is None:
                # e.g. an in-memory buffer: collect the program's output, copy it over on close
                self._spool = tempfile.TemporaryFile()
                stdout = self._spool
            else:
                stdout = fileno
        self._process = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=stdout)
        self._finished = False

    def __getattr__(self, name: str) -> Any:
        if name in ("_process", "_finished"):
            raise AttributeError(name)
        return getattr(self._process.stdin, name)

    @property
    def closed(self) -> bool:
        return self._finished

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:
        return self._process.stdin.write(data)

    def _wait(self) -> int:
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        return self._process.wait()

    def close(self) -> None:
        """Wait for the program; publish its output if it exited with status 0."""
        if self._finished:
            return
        self._finished = True
        returncode = self._wait()
        if returncode != 0:
            self._discard_output()
            raise RuntimeError(f"Error when executing command {' '.join(self._command)!r}: exit status {returncode}")
        if self._output_pipe is None:
            return
        if self._spool is not None:
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, self._output_pipe)
            self._spool.close()
        self._output_pipe.close()

    def _discard_output(self) -> None:
        if self._spool is not None:
            self._spool.close()
        if self._output_pipe is not None:
            abort_stream(self._output_pipe)

    def abort(self) -> None:
        """Stop the program and discard its output; publishes nothing."""
        if self._finished:
            return
        self._finished = True
        self._wait()
        self._discard_output()

    def __enter__(self) -> OutputPipeProcessWrapper:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        try:
            self.abort()
        except Exception:
            pass


class Format:
    """How a target's raw byte stream is turned into what a step reads or writes.

    Subclasses implement :meth:`pipe_reader` and :meth:`pipe_writer` and set
    :attr:`input` (what the step side handles) and :attr:`output` (what goes to
    storage) to ``"unicode"`` or ``"bytes"``; ``None`` means "whatever it is
    given" and is not checked when chaining. ``a >> b`` builds a
    :class:`ChainFormat` with ``a`` on the step side.
    """

    input: str | None = None
    output: str | None = None

    @classmethod
    def pipe_reader(cls, input_pipe: Any) -> Any:
        """Return the stream a step reads, given the target's raw input stream."""
        raise NotImplementedError(f"{cls.__name__} does not implement pipe_reader()")

    @classmethod
    def pipe_writer(cls, output_pipe: Any) -> Any:
        """Return the stream a step writes, given the target's raw output stream."""
        raise NotImplementedError(f"{cls.__name__} does not implement pipe_writer()")

    def __rshift__(self, other: Any) -> ChainFormat:
        return ChainFormat(self, other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_is_format(candidate: Any) -> None:
    if not (hasattr(candidate, "pipe_reader") and hasattr(candidate, "pipe_writer")):
        raise TypeError(
            f"cannot chain {candidate!r}: a format needs pipe_reader() and pipe_writer() "
            f"(use one of trun.format.Text, UTF8, Nop, Gzip, Bzip2, ... or a Format subclass)"
        )


class ChainFormat(Format):
    """Several formats applied in turn; the first one is on the step side.

    Usually built with ``>>``. Raises :class:`TypeError` when the ``output`` of
    one format is not the ``input`` of the next (e.g. ``Gzip >> Text``), unless
    ``check_consistency=False``.
    """

    def __init__(self, *formats: Any, check_consistency: bool = True) -> None:
        if not formats:
            raise TypeError("ChainFormat needs at least one format")
        for candidate in formats:
            _check_is_format(candidate)
        self.args = formats
        self.input = getattr(formats[0], "input", None)
        self.output = getattr(formats[-1], "output", None)
        if not check_consistency:
            return
        for outer, inner in zip(formats, formats[1:]):
            produced = getattr(outer, "output", None)
            expected = getattr(inner, "input", None)
            if produced is not None and expected is not None and produced != expected:
                raise TypeError(
                    f"The format chaining is not valid: {outer!r} produces {produced} "
                    f"but {inner!r} expects {expected}. Formats chain from the step side to the storage "
                    f"side, e.g. trun.format.UTF8 >> trun.format.Gzip"
                )

    def pipe_reader(self, input_pipe: Any) -> Any:
        for fmt in reversed(self.args):
            input_pipe = fmt.pipe_reader(input_pipe)
        return input_pipe

    def pipe_writer(self, output_pipe: Any) -> Any:
        for fmt in reversed(self.args):
            output_pipe = fmt.pipe_writer(output_pipe)
        return output_pipe

    def __repr__(self) -> str:
        return " >> ".join(repr(fmt) for fmt in self.args)


class WrappedFormat(Format):
    """A format that wraps the raw stream in :attr:`wrapper_cls` for both reading and writing.

    Extra constructor arguments are passed on to the wrapper.
    """

    wrapper_cls: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def pipe_reader(self, input_pipe: Any) -> Any:
        return self.wrapper_cls(input_pipe, *self.args, **self.kwargs)

    def pipe_writer(self, output_pipe: Any) -> Any:
        return self.wrapper_cls(output_pipe, *self.args, **self.kwargs)

    def __repr__(self) -> str:
        arguments = [repr(arg) for arg in self.args] + [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"{type(self).__name__}({', '.join(arguments)})"


class TextFormat(WrappedFormat):
    """Text over bytes, with :class:`io.TextIOWrapper`'s arguments (``encoding``, ``newline``, ...)."""

    input = UNICODE
    output = BYTES
    wrapper_cls = TextWrapper


class MixedUnicodeBytesFormat(WrappedFormat):
    """A byte writer that also accepts ``str`` (encoded with ``encoding``); reads pass bytes through."""

    output = BYTES
    wrapper_cls = MixedUnicodeBytesWrapper

    def pipe_reader(self, input_pipe: Any) -> Any:
        return input_pipe


class NewlineFormat(WrappedFormat):
    """Line-ending translation of bytes; see :class:`NewlineWrapper` for ``newline``."""

    input = BYTES
    output = BYTES
    wrapper_cls = NewlineWrapper


class NopFormat(Format):
    """Pass the raw stream through unchanged: bytes in, bytes out."""

    def pipe_reader(self, input_pipe: Any) -> Any:
        return input_pipe

    def pipe_writer(self, output_pipe: Any) -> Any:
        return output_pipe


class GzipFormat(Format):
    """gzip compression of bytes, done in process with :mod:`gzip`.

    :param compression_level: 1 (fastest) to 9 (smallest); ``None`` uses 6, the
        default of the ``gzip`` program.
    """

    input = BYTES
    output = BYTES

    def __init__(self, compression_level: int | None = None) -> None:
        if compression_level is not None and (
            not isinstance(compression_level, int) or not 0 <= compression_level <= 9
        ):
            raise ValueError(f"GzipFormat compression_level must be an int from 0 to 9, got {compression_level!r}")
        self.compression_level = compression_level

    def pipe_reader(self, input_pipe: Any) -> _CodecStream:
        return _CodecStream(input_pipe, gzip.GzipFile(fileobj=input_pipe, mode="rb"), writing=False)

    def pipe_writer(self, output_pipe: Any) -> _CodecStream:
        level = 6 if self.compression_level is None else self.compression_level
        # filename="" keeps the temporary file's name out of the gzip header, as piping through gzip does
        codec = gzip.GzipFile(filename="", fileobj=output_pipe, mode="wb", compresslevel=level)
        return _CodecStream(output_pipe, codec, writing=True)

    def __repr__(self) -> str:
        level = "" if self.compression_level is None else f"compression_level={self.compression_level}"
        return f"GzipFormat({level})"


class Bzip2Format(Format):
    """bzip2 compression of bytes, done in process with :mod:`bz2`."""

    input = BYTES
    output = BYTES

    def pipe_reader(self, input_pipe: Any) -> _CodecStream:
        return _CodecStream(input_pipe, bz2.BZ2File(input_pipe, mode="rb"), writing=False)

    def pipe_writer(self, output_pipe: Any) -> _CodecStream:
        return _CodecStream(output_pipe, bz2.BZ2File(output_pipe, mode="wb"), writing=True)


#: Text in the platform's default encoding; the default format of targets.
Text = TextFormat()
#: Text in UTF-8.
UTF8 = TextFormat(encoding="utf8")
#: Raw bytes, unchanged.
Nop = NopFormat()
#: Bytes with line endings read as ``\n`` and written as :data:`os.linesep`.
SysNewLine = NewlineFormat()
#: gzip-compressed bytes.
Gzip = GzipFormat()
#: bzip2-compressed bytes.
Bzip2 = Bzip2Format()
#: Bytes that may also be written as ``str``.
MixedUnicodeBytes = MixedUnicodeBytesFormat()


def get_default_format() -> Format:
    """The format targets use when none is given: :data:`Text`."""
    return Text
