"""Files on the local disk as targets: :class:`LocalTarget` and :class:`LocalFileSystem`.

Writes are atomic: ``LocalTarget.open('w')`` writes to
``<path>-trun-tmp-<10 digits>`` in the same directory and renames it to ``path``
when the stream is closed, so a step that dies half way never leaves a
half-written output that would make it look complete. Missing parent
directories are created.

Hazards:

* The rename is atomic only within one file system; :meth:`LocalFileSystem.move`
  across devices falls back to copy-then-rename, which is not.
* The ``'b'`` and ``'t'`` characters of an open mode are ignored: the target's
  ``format`` decides between text and bytes. Use ``format=trun.format.Nop`` to
  write bytes.
* An unclosed writer that is garbage collected discards its data: always
  ``close()`` it or use ``with``.
"""
from __future__ import annotations

import errno
import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from trun.format import Format, get_default_format
from trun.target import (
    AtomicLocalFile,
    FileAlreadyExists,
    FileSystem,
    FileSystemTarget,
    MissingParentDirectory,
    NotADirectory,
    _random_suffix,
)

__all__ = ["LocalFileSystem", "LocalTarget", "atomic_file"]


class atomic_file(AtomicLocalFile):  # noqa: N801 - Luigi's public name
    """An :class:`~trun.target.AtomicLocalFile` whose temporary file sits next to ``path``.

    Publishing is a single :func:`os.replace`, atomic on the same file system.
    """

    def generate_tmp_path(self, path: str) -> str:
        return f"{path}-trun-tmp-{_random_suffix()}"

    def move_to_final_destination(self) -> None:
        os.replace(self.tmp_path, self.path)


class _LocalFileReader(io.BufferedReader):
    """A buffered reader of a local file; formats may set attributes on it."""


class LocalFileSystem(FileSystem):
    """Operations on the local disk, with the semantics :class:`~trun.target.FileSystem` documents."""

    def exists(self, path: str) -> bool:
        """Return ``True`` if a file or directory exists at ``path``."""
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        """Return ``True`` if ``path`` is a directory."""
        return os.path.isdir(path)

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Create directory ``path``.

        Raises :class:`~trun.target.FileAlreadyExists` if ``path`` exists and
        ``raise_if_exists`` is set, :class:`~trun.target.NotADirectory` if it exists
        as something else, :class:`~trun.target.MissingParentDirectory` if
        ``parents`` is false and the parent is missing.
        """
        if self.exists(path):
            if raise_if_exists:
                raise FileAlreadyExists(f"cannot create directory {path}: it already exists")
            if not self.isdir(path):
                raise NotADirectory(f"cannot create directory {path}: a file is in the way")
            return
        if parents:
            # exist_ok: another process may create it between the check and here
            os.makedirs(path, exist_ok=True)
            return
        parent = os.path.dirname(os.path.normpath(path))
        if parent and not os.path.isdir(parent):
            raise MissingParentDirectory(
                f"cannot create directory {path}: parent directory {parent} does not exist "
                f"(pass parents=True to create it)"
            )
        os.mkdir(path)

    def listdir(self, path: str) -> Iterator[str]:
        """Yield the path of every file below directory ``path``, recursively."""
        for directory, _subdirectories, files in os.walk(path):
            for name in files:
                yield os.path.join(directory, name)

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Remove the file ``path``, or the directory ``path`` and its contents when ``recursive``."""
        if recursive and self.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)

    def _make_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent and not os.path.exists(parent):
            self.mkdir(parent)

    def move(self, old_path: str, new_path: str, raise_if_exists: bool = False) -> None:
        """Move a file or directory, creating the destination's parent directory.

        Atomic on one file system. Across devices the data is copied to a
        temporary name beside ``new_path``, renamed into place, and the source is
        removed.

        :param raise_if_exists: raise :class:`~trun.target.FileAlreadyExists`
            instead of replacing an existing ``new_path``.
        """
        if raise_if_exists and os.path.exists(new_path):
            raise FileAlreadyExists(f"cannot move {old_path} to {new_path}: destination already exists")
        self._make_parent(new_path)
        try:
            os.replace(old_path, new_path)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self._move_across_devices(old_path, new_path)

    def _move_across_devices(self, old_path: str, new_path: str) -> None:
        staging_path = f"{new_path}-trun-tmp-{_random_suffix()}"
        try:
            if os.path.isdir(old_path):
                shutil.copytree(old_path, staging_path)
            else:
                shutil.copy2(old_path, staging_path)
            os.replace(staging_path, new_path)
        except BaseException:
            if os.path.isdir(staging_path):
                shutil.rmtree(staging_path, ignore_errors=True)
            elif os.path.exists(staging_path):
                os.remove(staging_path)
            raise
        self.remove(old_path)

    def rename_dont_move(self, path: str, dest: str) -> None:
        """Rename ``path`` to ``dest``; raise :class:`~trun.target.FileAlreadyExists` if ``dest`` exists."""
        self.move(path, dest, raise_if_exists=True)

    def copy(self, old_path: str, new_path: str, raise_if_exists: bool = False) -> None:
        """Copy the file ``old_path`` to ``new_path``, creating the destination's parent directory.

        :param raise_if_exists: raise :class:`RuntimeError` (as Luigi does) instead of
            replacing an existing ``new_path``.
        """
        if raise_if_exists and os.path.exists(new_path):
            raise RuntimeError(f"Destination exists: {new_path}")
        self._make_parent(new_path)
        shutil.copy(old_path, new_path)


class LocalTarget(FileSystemTarget):
    """A file (or directory) on the local disk.

    :param path: where the file lives; relative paths are relative to the
        working directory at each use.
    :param format: a :mod:`trun.format` format; defaults to
        :data:`trun.format.Text`.
    :param is_tmp: with no ``path``, use a fresh path in the system temporary
        directory; the file is deleted when the target is garbage collected.
    """

    fs = LocalFileSystem()

    def __init__(self, path: str | os.PathLike[str] | None = None, format: Format | None = None,
                 is_tmp: bool = False) -> None:
        if format is None:
            format = get_default_format()
        if not path:
            if not is_tmp:
                raise ValueError(
                    "LocalTarget needs a path: LocalTarget('data/out.txt'), "
                    "or LocalTarget(is_tmp=True) for a temporary file"
                )
            path = os.path.join(tempfile.gettempdir(), f"trun-tmp-{_random_suffix()}")
        super().__init__(path)
        self.format = format
        self.is_tmp = is_tmp

    def makedirs(self) -> None:
        """Create the parent directories of :attr:`path` if they are missing."""
        parent = os.path.dirname(os.path.normpath(self.path))
        if parent:
            os.makedirs(parent, exist_ok=True)

    def open(self, mode: str = "r") -> Any:
        """Open for reading (``'r'``) or atomic writing (``'w'``) through :attr:`format`.

        ``'b'`` and ``'t'`` in ``mode`` are ignored; the format decides what the
        stream takes. A writer publishes the file only when closed; leaving a
        ``with`` block with an exception leaves nothing behind.
        """
        if not isinstance(mode, str):
            raise TypeError(f"LocalTarget.open() mode must be a str such as 'r' or 'w', got {mode!r}")
        read_or_write = mode.replace("b", "").replace("t", "")
        if read_or_write == "w":
            self.makedirs()
            return self.format.pipe_writer(atomic_file(self.path))
        if read_or_write == "r":
            return self.format.pipe_reader(_LocalFileReader(io.FileIO(self.path, "r")))
        raise ValueError(
            f"LocalTarget.open() does not support mode {mode!r} (for {self.path}): use 'r' to read or 'w' to "
            f"write; appending and updating in place are not supported because writes are atomic. "
            f"For bytes, use format=trun.format.Nop"
        )

    def move(self, new_path: str, raise_if_exists: bool = False) -> None:
        """Move the file to ``new_path`` (see :meth:`LocalFileSystem.move`)."""
        self.fs.move(self.path, new_path, raise_if_exists=raise_if_exists)

    def move_dir(self, new_path: str) -> None:
        """Move the directory at :attr:`path` to ``new_path``."""
        self.move(new_path)

    def remove(self) -> None:
        """Delete the file, or the directory and everything in it."""
        self.fs.remove(self.path)

    def copy(self, new_path: str, raise_if_exists: bool = False) -> None:
        """Copy the file to ``new_path`` (see :meth:`LocalFileSystem.copy`)."""
        self.fs.copy(self.path, new_path, raise_if_exists)

    @property
    def fn(self) -> str:
        """Deprecated alias of :attr:`path`."""
        warnings.warn("Use LocalTarget.path to reference filename", DeprecationWarning, stacklevel=2)
        return self.path

    def __del__(self) -> None:
        if getattr(self, "is_tmp", False):
            try:
                if self.exists():
                    self.remove()
            except Exception:
                pass  # at interpreter exit the os module may already be gone
