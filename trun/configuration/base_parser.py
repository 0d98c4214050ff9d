"""The machinery both configuration parsers share: one instance per parser class, a search path.

A parser class (``TrunConfigParser`` for ``trun.cfg``, ``TrunTomlParser`` for
``trun.toml``) keeps a list of files to read, lowest priority first. The first
call to :meth:`BaseParser.instance` creates the process-wide instance and reads
every file of that list that exists; later files override earlier ones key by
key.

Hazards:

* The instance is **process-global and not thread-safe**: ``set()`` from one
  thread while another reads is not guarded. Configure before starting threads.
* Code that keeps a reference to the instance keeps seeing that object; after
  :func:`trun.configuration.reset_config` a *new* instance is made on the next
  ``get_config()``.
* A file that exists but cannot be read or parsed raises
  :class:`ConfigError`; a file that does not exist is skipped silently, since
  most places of the default search path are normally empty.
"""
from __future__ import annotations

import configparser
import logging
import warnings
from typing import Any, ClassVar, TypeVar

__all__ = ["NO_DEFAULT", "BaseParser", "ConfigError", "ConfigValueError"]

logger = logging.getLogger("trun-interface")

_ParserT = TypeVar("_ParserT", bound="BaseParser")


class _NoDefault:
    """Type of :data:`NO_DEFAULT`; a readable sentinel in ``help()`` output."""

    _singleton: ClassVar[_NoDefault | None] = None

    def __new__(cls) -> _NoDefault:
        if cls._singleton is None:
            cls._singleton = super().__new__(cls)
        return cls._singleton

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __reduce__(self) -> str:
        return "NO_DEFAULT"


#: Passed as ``default`` (the default of every getter): a missing option raises
#: ``NoOptionError``/``NoSectionError`` instead of returning a fallback.
NO_DEFAULT: Any = _NoDefault()


class ConfigError(configparser.Error):
    """A configuration file could not be read or parsed; the message names the file and line."""


class ConfigValueError(ConfigError, ValueError):
    """A configuration value does not have the type a typed getter asked for.

    Also a ``ValueError``, which is what ``configparser``'s own typed getters raise.
    """


def dash_alias(option: str) -> tuple[str, str]:
    """Return ``(underscore_style, dash_style)`` spellings of an option name."""
    canonical = option.replace("-", "_")
    return canonical, canonical.replace("_", "-")


def warn_dash_style(section: str, dashed: str, canonical: str, stacklevel: int) -> None:
    """Warn that a config file spells an option with dashes, as Luigi does.

    ``stacklevel`` counts from this function, so that the warning points at the
    user's call of ``get()``/``has_option()``.
    """
    warnings.warn(
        f"Configuration [{section}] {dashed} (with dashes) should be avoided. "
        f"Please use underscores: {canonical}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


class BaseParser:
    """Singleton access and the list of files to read, shared by both parsers.

    Subclasses set ``_default_config_paths`` and implement ``_load`` (read the
    given files, replacing whatever was loaded before), ``_snapshot`` and
    ``_restore`` (used by :mod:`trun.testing` to overlay values temporarily).
    """

    NO_DEFAULT: ClassVar[Any] = NO_DEFAULT
    #: False when the library this parser needs is not installed.
    enabled: ClassVar[bool] = True
    _instance: ClassVar[Any] = None
    _default_config_paths: ClassVar[tuple[str, ...]] = ()
    _config_paths: ClassVar[list[str]] = []
    #: Files the instance read, in order (set by ``_load``/``_load_more``).
    _loaded_files: list[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Each parser class owns its own instance and path list.
        cls._instance = None
        cls._config_paths = list(cls._default_config_paths)

    @classmethod
    def instance(cls: type[_ParserT]) -> _ParserT:
        """Return the process-wide parser of this class, reading its files on first use."""
        if cls._instance is None:
            # TRUN_CONFIG_PATH joins the search path on first use (also when this
            # is called directly, as Luigi users call LuigiConfigParser.instance()).
            from trun.configuration.core import apply_env_config_path

            apply_env_config_path()
            parser = cls()
            loaded = parser._load(list(cls._config_paths))
            # Only publish the instance once it loaded cleanly: a malformed file
            # must raise again on the next call, not leave an empty config behind.
            cls._instance = parser
            logger.info("Loaded %r", loaded)
        return cls._instance

    @classmethod
    def add_config_path(cls, path: str) -> None:
        """Append ``path`` to this parser's search path (highest priority) and read it.

        Prefer :func:`trun.configuration.add_config_path`, which picks the parser
        from the file extension and checks that the file exists.
        """
        previous_paths = list(cls._config_paths)
        if path in cls._config_paths:
            cls._config_paths.remove(path)
        cls._config_paths.append(path)
        try:
            if cls._instance is not None:
                cls._instance._load_more([path])
            else:
                cls.instance()
        except BaseException:
            # A file that failed to load must not stay on the search path, where
            # every later reload() would trip over it again.
            cls._config_paths = previous_paths
            raise

    @classmethod
    def reload(cls) -> list[str]:
        """Forget every value and read the files of the search path again.

        Values given with ``set()`` are dropped. Returns the files that were read.
        """
        if cls._instance is None:
            return list(cls.instance()._loaded_files)
        return cls._instance._load(list(cls._config_paths))

    @classmethod
    def _reset(cls) -> None:
        cls._instance = None
        cls._config_paths = list(cls._default_config_paths)

    # -- implemented by subclasses ------------------------------------------

    def _load(self, paths: list[str]) -> list[str]:
        """Drop all values, read ``paths`` in order; return the ones that existed."""
        raise NotImplementedError

    def _load_more(self, paths: list[str]) -> list[str]:
        """Read ``paths`` on top of the current values; return the ones that existed."""
        raise NotImplementedError

    def _snapshot(self) -> Any:
        raise NotImplementedError

    def _restore(self, snapshot: Any) -> None:
        raise NotImplementedError

    def _overlay(self, section: str, values: dict[str, Any], replace_section: bool) -> None:
        raise NotImplementedError
