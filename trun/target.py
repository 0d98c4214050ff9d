"""Targets: what a step produces, and the file systems those products live on.

A :class:`Target` is anything whose existence can be checked; a step is complete
when every target of its ``output()`` exists. :class:`FileSystemTarget` is the base
for targets that are paths on some :class:`FileSystem` (local disk, an in-memory
mock, object stores in ``trun.contrib``): it delegates ``exists()``/``remove()`` to
the file system and offers :meth:`FileSystemTarget.temporary_path` for writing
all-or-nothing outputs with any tool.

Hazards:

* Atomicity comes from a final rename. On file systems where a rename is not
  atomic (:meth:`FileSystem.rename_dont_move` warns about it), a reader may still
  observe a half-moved output.
* :class:`AtomicLocalFile` publishes on ``close()`` only. Leaving a ``with`` block
  with an exception, calling :meth:`AtomicLocalFile.abort`, or dropping the object
  unclosed discards the temporary file, so a failed write never leaves a partial
  output behind.
* ``exists()`` on a path containing glob characters (``*?[{``) checks that the
  pattern matches *something*, which may be an incomplete data set; a warning is
  logged.
"""
from __future__ import annotations

import abc
import io
import logging
import os
import random
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("trun-interface")

__all__ = [
    "AtomicLocalFile",
    "FileAlreadyExists",
    "FileSystem",
    "FileSystemException",
    "FileSystemTarget",
    "MissingParentDirectory",
    "NotADirectory",
    "Target",
]

_GLOB_CHARACTERS = "*?[{"


def _random_suffix() -> str:
    """Ten random digits, enough to keep concurrent writers of one path apart."""
    return "%010d" % random.randrange(0, 10_000_000_000)


class Target(abc.ABC):
    """A resource produced by a step: a file, a database row, a marker, ...

    Subclasses must implement :meth:`exists`. A step whose outputs all exist is
    considered complete and is not run again.
    """

    @abc.abstractmethod
    def exists(self) -> bool:
        """Return ``True`` if the resource has been created, ``False`` otherwise."""


class FileSystemException(Exception):
    """Base class of the errors raised by :class:`FileSystem` operations."""


class FileAlreadyExists(FileSystemException):
    """An operation needed a path to be free, but something already exists there."""


class MissingParentDirectory(FileSystemException):
    """An operation needed the parent directory of a path, and it does not exist."""


class NotADirectory(FileSystemException):
    """An operation needed a directory, and the path is something else."""


class FileSystem(abc.ABC):
    """Operations on the paths of one kind of storage, used by :class:`FileSystemTarget`.

    Only :meth:`exists` and :meth:`remove` are required. The other operations are
    optional: the defaults raise :class:`NotImplementedError` naming the file
    system class, except :meth:`rename_dont_move` which falls back to a
    non-atomic check-then-:meth:`move`.
    """

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """Return ``True`` if a file or directory exists at ``path``."""

    @abc.abstractmethod
    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Remove the file or directory at ``path``.

        :param recursive: for a directory, also remove everything below it.
        :param skip_trash: delete for good on file systems that have a trash.
        """

    def _unsupported(self, operation: str) -> NotImplementedError:
        return NotImplementedError(f"{operation}() is not implemented on {type(self).__name__}")

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Create a directory at ``path`` (optional operation).

        :param parents: also create missing parent directories; when ``False`` a
            missing parent raises :class:`MissingParentDirectory`.
        :param raise_if_exists: raise :class:`FileAlreadyExists` if ``path`` exists.
        """
        raise self._unsupported("mkdir")

    def isdir(self, path: str) -> bool:
        """Return ``True`` if ``path`` is a directory (optional operation)."""
        raise self._unsupported("isdir")

    def listdir(self, path: str) -> Iterable[str]:
        """Return the paths of all files below ``path``, recursively (optional operation)."""
        raise self._unsupported("listdir")

    def move(self, path: str, dest: str) -> None:
        """Move the file or directory ``path`` to ``dest`` (optional operation)."""
        raise self._unsupported("move")

    def rename_dont_move(self, path: str, dest: str) -> None:
        """Rename ``path`` to ``dest``, failing rather than moving *into* an existing ``dest``.

        Used by :meth:`FileSystemTarget.temporary_path` to publish a finished
        output. File systems with an atomic rename should override this; the
        default warns that the rename is not atomic, raises
        :class:`FileAlreadyExists` if ``dest`` exists, and otherwise calls
        :meth:`move`.
        """
        warnings.warn(f"File system {type(self).__name__} client doesn't support atomic mv.", stacklevel=2)
        if self.exists(dest):
            raise FileAlreadyExists(f"cannot rename {path} to {dest}: destination already exists")
        self.move(path, dest)

    def rename(self, *args: Any, **kwargs: Any) -> None:
        """Alias of :meth:`move`."""
        self.move(*args, **kwargs)

    def copy(self, path: str, dest: str) -> None:
        """Copy the file or directory ``path`` to ``dest`` (optional operation)."""
        raise self._unsupported("copy")


class FileSystemTarget(Target):
    """A target that is a path on a :class:`FileSystem`.

    Subclasses provide the :attr:`fs` property (usually a class attribute) and
    :meth:`open`. ``exists()`` and ``remove()`` are delegated to :attr:`fs`.

    :param path: the location of the target; an :class:`os.PathLike` is converted
        to ``str`` and stored as :attr:`path`.
    """

    path: str

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(
                f"{type(self).__name__} path must be a str or os.PathLike, "
                f"got {path!r} of type {type(path).__name__}"
            )
        self.path = path

    @property
    @abc.abstractmethod
    def fs(self) -> FileSystem:
        """The :class:`FileSystem` this target lives on."""

    @abc.abstractmethod
    def open(self, mode: str) -> Any:
        """Open the target and return a file-like object.

        :param mode: ``'r'`` to read, ``'w'`` to write; subclasses may accept more.
        """

    def exists(self) -> bool:
        """Return ``True`` if :attr:`path` exists on :attr:`fs`."""
        path = self.path
        if any(char in path for char in _GLOB_CHARACTERS):
            logger.warning(
                "Using wildcards in path %s might lead to processing of an incomplete dataset; "
                "override exists() to suppress the warning.", path,
            )
        return self.fs.exists(path)

    def remove(self) -> None:
        """Remove the resource at :attr:`path` (recursively for a directory)."""
        self.fs.remove(self.path)

    def _trailing_slash(self) -> str:
        # a path naming a directory keeps its separator on the temporary name too
        return self.path[-1] if self.path and self.path[-1] in "/\\" else ""

    @contextmanager
    def temporary_path(self) -> Iterator[str]:
        """Yield a temporary path next to :attr:`path`; publish it there on a clean exit.

        For tools that write a file (or a directory) themselves::

            with self.output().temporary_path() as tmp:
                subprocess.run(["sort", "-o", tmp, "input.txt"], check=True)

        The temporary path is ``<path>-trun-tmp-<10 digits>`` (keeping a trailing
        slash). Parent directories are created first. When the block exits
        normally the temporary path is renamed to :attr:`path` with
        :meth:`FileSystem.rename_dont_move`. When the block raises, or the rename
        fails (e.g. :class:`FileAlreadyExists`), nothing is published and whatever
        was written at the temporary path is removed.
        """
        slashless_path = self.path.rstrip("/").rstrip("\\")
        tmp_path = f"{slashless_path}-trun-tmp-{_random_suffix()}{self._trailing_slash()}"
        parent_dir = os.path.dirname(slashless_path)
        if parent_dir:
            self.fs.mkdir(parent_dir, parents=True, raise_if_exists=False)
        try:
            yield tmp_path
            self.fs.rename_dont_move(tmp_path, self.path)
        except BaseException:
            self._remove_leftover(tmp_path)
            raise

    def _remove_leftover(self, tmp_path: str) -> None:
        try:
            if self.fs.exists(tmp_path):
                self.fs.remove(tmp_path)
        except Exception as error:  # never hide the error that made the write fail
            logger.warning("Could not remove temporary output %s: %s", tmp_path, error)

    def _touchz(self) -> None:
        """Create the target empty."""
        with self.open("w"):
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


class AtomicLocalFile(io.BufferedWriter):
    """A writable file that appears at its final destination only when closed cleanly.

    Bytes go to a local temporary file (:attr:`tmp_path`). :meth:`close` calls
    :meth:`move_to_final_destination`, which subclasses implement (rename, upload,
    ...). Leaving a ``with`` block with an exception, :meth:`abort`, or garbage
    collection of an unclosed file discards the temporary file and publishes
    nothing.

    Subclasses may override :meth:`generate_tmp_path`; the default puts the
    temporary file in the system temporary directory.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._tmp_path = self.generate_tmp_path(path)
        super().__init__(io.FileIO(self._tmp_path, "w"))
        # Set last: __del__ of a half-constructed object must not try to clean up.
        self._finished = False

    @property
    def tmp_path(self) -> str:
        """Where the bytes are written until the file is published."""
        return self._tmp_path

    def generate_tmp_path(self, path: str) -> str:
        """Return the temporary file to write to before publishing ``path``."""
        return os.path.join(tempfile.gettempdir(), f"trun-tmp-{_random_suffix()}")

    def move_to_final_destination(self) -> None:
        """Publish :attr:`tmp_path` at :attr:`path`; called by :meth:`close`."""
        raise NotImplementedError(f"{type(self).__name__} must implement move_to_final_destination()")

    def close(self) -> None:
        """Finish writing and publish the file at :attr:`path`.

        If flushing or publishing fails the temporary file is removed and the
        error propagates: nothing half-written is left behind.
        """
        if getattr(self, "_finished", True):
            return
        self._finished = True
        try:
            super().close()
            self.move_to_final_destination()
        except BaseException:
            self._remove_tmp_file()
            raise

    def abort(self) -> None:
        """Discard what was written; nothing is published. Idempotent."""
        if getattr(self, "_finished", True):
            return
        self._finished = True
        try:
            super().close()
        except (OSError, ValueError):
            pass  # the data is being thrown away; a failed flush does not matter
        finally:
            self._remove_tmp_file()

    def _remove_tmp_file(self) -> None:
        try:
            os.remove(self._tmp_path)
        except FileNotFoundError:
            pass

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # An unclosed file is a failed write: never publish it from the garbage collector.
        try:
            self.abort()
        except Exception:
            pass
