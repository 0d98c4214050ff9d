"""In-memory targets for testing pipelines without touching the disk.

:class:`MockTarget` stores its bytes in a dictionary shared by every
:class:`MockTarget` and :class:`MockFileSystem` — and by every process of the
run: the dictionary lives in a :mod:`multiprocessing` manager process, so steps
run by forked worker processes write data the parent (and the test) can read.

Hazards:

* The manager process is started on first use, not at import; every operation
  is a round trip to it (fine for tests, not a data store).
* The store is global and outlives a test: call ``MockFileSystem().clear()`` in
  a fixture, or use unique paths.
* A forked child reconnects to the manager by itself. Processes started another
  way (``spawn``, a ``trun`` subprocess) find the manager through the
  ``TRUN_MOCK_STORE`` environment variable set when the store is created; if it
  is unreachable they start a store of their own.
* "Directories" are path prefixes: :meth:`MockFileSystem.listdir` and a
  recursive :meth:`MockFileSystem.remove` match every key starting with the path.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import sys
import threading
from collections.abc import MutableMapping
from multiprocessing.managers import BaseManager, DictProxy
from typing import Any

from trun.format import Format, get_default_format
from trun.target import FileAlreadyExists, FileSystem, FileSystemTarget

__all__ = ["MockFileSystem", "MockTarget"]

#: Environment variable naming the running store, ``<address>|<hex authkey>``.
STORE_ENVIRONMENT_VARIABLE = "TRUN_MOCK_STORE"

# Lives in the manager's server process; every proxy refers to this one dict.
_SERVER_SIDE_STORE: dict[str, bytes] = {}


def _server_side_store() -> dict[str, bytes]:
    return _SERVER_SIDE_STORE


class _StoreManager(BaseManager):
    """Manager process holding the shared mock file store."""


_StoreManager.register("store", callable=_server_side_store, proxytype=DictProxy)

_store_lock = threading.Lock()
_store_pid: int | None = None  # the process in which _store_proxy was made
_store_proxy: Any = None
_store_address: Any = None
_store_authkey: bytes | None = None


def _manager_context() -> Any:
    # fork, where available, so the manager does not re-import the user's __main__ module
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _connect(address: Any, authkey: bytes) -> Any:
    """A proxy of the store served at ``address``, or ``None`` if it cannot be reached."""
    try:
        manager = _StoreManager(address=address, authkey=authkey)
        manager.connect()
        return manager.store()
    except (OSError, ValueError, EOFError, multiprocessing.AuthenticationError):
        return None


def _connect_from_environment() -> tuple[Any, Any, bytes] | None:
    description = os.environ.get(STORE_ENVIRONMENT_VARIABLE)
    if not description:
        return None
    address, _, hex_authkey = description.rpartition("|")
    try:
        authkey = bytes.fromhex(hex_authkey)
    except ValueError:
        return None
    proxy = _connect(address, authkey)
    return None if proxy is None else (proxy, address, authkey)


def _start_store() -> tuple[Any, Any, bytes]:
    manager = _StoreManager(ctx=_manager_context())
    manager.start()
    authkey = bytes(multiprocessing.current_process().authkey)
    os.environ[STORE_ENVIRONMENT_VARIABLE] = f"{manager.address}|{authkey.hex()}"
    # the proxy keeps a reference to the manager, which keeps the server alive
    return manager.store(), manager.address, authkey


def _shared_store() -> MutableMapping[str, bytes]:
    """The process-shared store, created (or reconnected after a fork) on demand."""
    global _store_pid, _store_proxy, _store_address, _store_authkey
    pid = os.getpid()
    data = MockFileSystem._data
    if data is not None and (data is not _store_proxy or _store_pid == pid):
        return data  # ours and usable in this process, or a mapping a test put in place
    with _store_lock:
        data = MockFileSystem._data
        if data is None or (data is _store_proxy and _store_pid != pid):
            connection = None
            if data is not None:
                # After a fork the inherited proxy shares its socket with the parent:
                # open a connection of our own to the same store instead.
                proxy = _connect(_store_address, _store_authkey or b"")
                connection = None if proxy is None else (proxy, _store_address, _store_authkey or b"")
            if connection is None:
                connection = _connect_from_environment() or _start_store()
            _store_proxy, _store_address, _store_authkey = connection
            _store_pid = pid
            MockFileSystem._data = _store_proxy
        return MockFileSystem._data


class MockFileSystem(FileSystem):
    """A file system whose files are entries of the shared in-memory store."""

    _data: Any = None

    def get_all_data(self) -> MutableMapping[str, bytes]:
        """The whole store: a mapping from path to the file's bytes."""
        return _shared_store()

    def get_data(self, fn: str) -> bytes:
        """The bytes of file ``fn``; :class:`KeyError` if it does not exist."""
        return self.get_all_data()[fn]

    def exists(self, path: str) -> bool:
        """Return ``True`` if a file is stored at exactly ``path``."""
        return path in self.get_all_data()

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Remove ``path``; with ``recursive``, every file whose path starts with ``path``."""
        store = self.get_all_data()
        if recursive:
            for key in [key for key in store.keys() if key.startswith(path)]:
                store.pop(key, None)
            return
        if store.pop(path, None) is None:
            raise FileNotFoundError(f"cannot remove {path}: no such mock file")

    def _contents(self, path: str) -> bytes:
        try:
            return self.get_all_data()[path]
        except KeyError:
            raise FileNotFoundError(f"no such mock file: {path}") from None

    def copy(self, path: str, dest: str, raise_if_exists: bool = False) -> None:
        """Copy file ``path`` to ``dest``; :class:`RuntimeError` if ``raise_if_exists`` and ``dest`` exists."""
        store = self.get_all_data()
        if raise_if_exists and dest in store:
            raise RuntimeError(f"Destination exists: {dest}")
        store[dest] = self._contents(path)

    def move(self, path: str, dest: str, raise_if_exists: bool = False) -> None:
        """Move file ``path`` to ``dest``; :class:`RuntimeError` if ``raise_if_exists`` and ``dest`` exists."""
        store = self.get_all_data()
        if raise_if_exists and dest in store:
            raise RuntimeError(f"Destination exists: {dest}")
        contents = self._contents(path)
        store[dest] = contents
        del store[path]

    def rename_dont_move(self, path: str, dest: str) -> None:
        """Rename ``path`` to ``dest``; :class:`~trun.target.FileAlreadyExists` if ``dest`` exists."""
        if self.exists(dest):
            raise FileAlreadyExists(f"cannot rename {path} to {dest}: destination already exists")
        self.move(path, dest)

    def listdir(self, path: str) -> list[str]:
        """Every stored path starting with ``path`` (a prefix match; globs are not supported)."""
        return [key for key in self.get_all_data().keys() if key.startswith(path)]

    def isdir(self, path: str) -> bool:
        """``True`` if any stored path starts with ``path``."""
        return bool(self.listdir(path))

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Does nothing: directories need not be created in the mock file system."""

    def clear(self) -> None:
        """Delete every mock file."""
        self.get_all_data().clear()


class _MockWriteBuffer(io.BytesIO):
    """Collects a write; stores it in the shared store on close, discards it on abort."""

    def __init__(self, target: MockTarget) -> None:
        super().__init__()
        self._target = target
        self._at_line_start = True
        self._finished = False

    def write(self, data: Any) -> int:
        if self._target._mirror_on_stderr:
            self._mirror(bytes(data))
        return super().write(data)

    def _mirror(self, data: bytes) -> None:
        text = data.decode("utf8", errors="replace")
        for line in text.splitlines(keepends=True):
            if self._at_line_start:
                sys.stderr.write(self._target.path + ": ")
            sys.stderr.write(line)
            self._at_line_start = line.endswith("\n")

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self._finished:
            self._finished = True
            self._target.fs.get_all_data()[self._target.path] = self.getvalue()
        super().close()

    def abort(self) -> None:
        """Discard the write; nothing is stored."""
        self._finished = True
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # an unclosed write is a failed write
        if not getattr(self, "_finished", True):
            self.abort()


class _MockReadBuffer(io.BytesIO):
    """The bytes of a mock file, for reading; formats may set attributes on it."""

    def writable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class MockTarget(FileSystemTarget):
    """A target kept in memory, shared across the processes of a run; for tests.

    :param fn: the path the data is stored under.
    :param is_tmp: accepted for signature compatibility; has no effect.
    :param mirror_on_stderr: also echo everything written to stderr, each line
        prefixed with the path.
    :param format: a :mod:`trun.format` format; defaults to :data:`trun.format.Text`.
    """

    fs = MockFileSystem()

    def __init__(self, fn: str | os.PathLike[str], is_tmp: bool | None = None, mirror_on_stderr: bool = False,
                 format: Format | None = None) -> None:
        super().__init__(fn)
        self._mirror_on_stderr = mirror_on_stderr
        self.format = format or get_default_format()

    def exists(self) -> bool:
        """Return ``True`` if data is stored at :attr:`path`."""
        return self.fs.exists(self.path)

    def move(self, path: str, raise_if_exists: bool = False) -> None:
        """Move the data to ``path``."""
        self.fs.move(self.path, path, raise_if_exists)

    def rename(self, *args: Any, **kwargs: Any) -> None:
        """Alias of :meth:`move`."""
        self.move(*args, **kwargs)

    def open(self, mode: str = "r") -> Any:
        """Open for reading (``'r'``) or writing (``'w'``); ``'b'`` and ``'t'`` are ignored.

        Written data is stored when the stream is closed; leaving a ``with``
        block with an exception stores nothing.
        """
        if not isinstance(mode, str):
            raise TypeError(f"MockTarget.open() mode must be a str such as 'r' or 'w', got {mode!r}")
        read_or_write = mode.replace("b", "").replace("t", "")
        if read_or_write == "w":
            return self.format.pipe_writer(_MockWriteBuffer(self))
        if read_or_write == "r":
            try:
                data = self.fs.get_data(self.path)
            except KeyError:
                raise FileNotFoundError(f"no such mock file: {self.path}") from None
            return self.format.pipe_reader(_MockReadBuffer(data))
        raise ValueError(
            f"MockTarget.open() does not support mode {mode!r} (for {self.path}): use 'r' to read or 'w' to write. "
            f"For bytes, use format=trun.format.Nop"
        )
