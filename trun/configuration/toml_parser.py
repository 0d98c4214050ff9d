"""The ``trun.toml`` parser, selected with ``TRUN_CONFIG_PARSER=toml``.

Files are read in this order, later ones overriding earlier ones key by key
within each section: ``/etc/trun/trun.toml``, ``trun.toml`` in the current
directory, then ``TRUN_CONFIG_PATH`` and any ``.toml`` file given to
``add_config_path()``.

Every top-level table is a section (``[core]``, ``[worker]``, ``[MyStep]``).
Values keep their TOML types: ``get()`` of ``workers = 4`` returns the int 4.
The typed getters also accept strings (``workers = "4"``) and convert them.
Table values are frozen (read-only mappings), as Luigi does, so that they can
serve as ``DictParameter`` defaults; a ``[logging]`` table is what
``logging.config.dictConfig`` receives.

Hazards: reading TOML needs ``tomllib`` (Python 3.11+) or ``tomli`` on Python
3.10 (``pip install 'trun[toml]'``); the library is imported only when a TOML
file is actually read, so ``import trun.configuration`` stays cheap.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from configparser import NoOptionError, NoSectionError
from typing import Any

from trun.configuration.base_parser import (
    NO_DEFAULT,
    BaseParser,
    ConfigError,
    ConfigValueError,
    dash_alias,
    warn_dash_style,
)

__all__ = ["TrunTomlParser"]

_INSTALL_HINT = "Reading TOML configuration on Python < 3.11 needs tomli: pip install 'trun[toml]'"


def _toml_library_available() -> bool:
    if sys.version_info >= (3, 11):
        return True
    import importlib.util

    return importlib.util.find_spec("tomli") is not None


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    return tomli


class MissingSectionError(NoSectionError, KeyError):
    """No such section in the TOML configuration.

    Also a ``KeyError``, which Luigi's TOML parser raised, so old ``except KeyError`` still works.
    """


class MissingOptionError(NoOptionError, KeyError):
    """No such option in a section of the TOML configuration (also a ``KeyError``)."""


_BOOLEAN_STATES = {"1": True, "yes": True, "true": True, "on": True,
                   "0": False, "no": False, "false": False, "off": False}


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_STATES:
        return _BOOLEAN_STATES[value.strip().lower()]
    raise ValueError(value)


def _as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(value)


def _as_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise ValueError(value)


class TrunTomlParser(BaseParser):
    """trun's TOML configuration (``trun.toml``); Luigi's ``LuigiTomlParser`` renamed.

    It offers the same getters as :class:`~trun.configuration.TrunConfigParser`.
    A missing section or option without ``default`` raises
    ``configparser.NoSectionError`` / ``NoOptionError`` (which are also ``KeyError`` here).
    """

    _default_config_paths = ("/etc/trun/trun.toml", "trun.toml")
    enabled = _toml_library_available()

    def __init__(self) -> None:
        #: section name -> {option: value}, as merged from all files read.
        self.data: dict[str, dict[str, Any]] = {}
        self._sources: dict[tuple[str, str], str] = {}
        self._loaded_files: list[str] = []

    # -- reading files -------------------------------------------------------

    def _load(self, paths: list[str]) -> list[str]:
        parsed = [(path, data) for path in paths if (data := _parse_file(path)) is not None]
        self.data = {}
        self._sources = {}
        self._loaded_files = []
        self._merge(parsed)
        return list(self._loaded_files)

    def _load_more(self, paths: list[str]) -> list[str]:
        parsed = [(path, data) for path in paths if (data := _parse_file(path)) is not None]
        self._merge(parsed)
        return [path for path, _ in parsed]

    def _merge(self, parsed: list[tuple[str, dict[str, dict[str, Any]]]]) -> None:
        for path, file_data in parsed:
            for section, options in file_data.items():
                self.data.setdefault(section, {}).update(options)
                for option in options:
                    self._sources[(section, option)] = path
            self._loaded_files.append(path)

    def source_of(self, section: str, option: str) -> str | None:
        """Return the file that gave ``[section] option`` its value (None if set in code or unknown)."""
        return self._sources.get((section, option))

    def _where(self, section: str, option: str) -> str:
        path = self.source_of(section, option)
        return f"Config file {path}" if path else "Configuration"

    # -- lookups -------------------------------------------------------------

    def _lookup(self, section: str, option: str, stacklevel: int) -> tuple[str, Any]:
        try:
            options = self.data[section]
        except KeyError:
            raise MissingSectionError(section) from None
        canonical, dashed = dash_alias(option)
        if canonical in options:
            return canonical, options[canonical]
        if dashed != canonical and dashed in options:
            warn_dash_style(section, dashed, canonical, stacklevel + 1)
            return dashed, options[dashed]
        raise MissingOptionError(option, section)

    def _get_with_default(
        self, section: str, option: str, default: Any, convert: Callable[[Any], Any] | None, expected: str
    ) -> Any:
        try:
            stored, value = self._lookup(section, option, stacklevel=4)
        except (NoSectionError, NoOptionError):
            if default is NO_DEFAULT:
                raise
            return default
        if convert is None:
            return value
        try:
            return convert(value)
        except (ValueError, TypeError):
            raise ConfigValueError(
                f"{self._where(section, stored)}: [{section}] {stored} = {value!r} is not {expected}."
            ) from None

    def get(self, section: str, option: str, default: Any = NO_DEFAULT, **kwargs: Any) -> Any:
        """Return the value of ``[section] option`` with its TOML type.

        Extra keyword arguments (``raw=``, ``vars=`` of the cfg parser) are accepted and ignored.
        """
        return self._get_with_default(section, option, default, None, "")

    def getboolean(self, section: str, option: str, default: Any = NO_DEFAULT) -> bool:
        """Return ``[section] option`` as a bool (a TOML boolean, or a string such as ``"yes"``)."""
        return self._get_with_default(section, option, default, _as_bool, "a boolean (true or false)")

    def getint(self, section: str, option: str, default: Any = NO_DEFAULT) -> int:
        """Return ``[section] option`` as an int (a TOML integer, or a string of digits)."""
        return self._get_with_default(section, option, default, _as_int, "an integer")

    def getfloat(self, section: str, option: str, default: Any = NO_DEFAULT) -> float:
        """Return ``[section] option`` as a float (a TOML number, or a numeric string)."""
        return self._get_with_default(section, option, default, _as_float, "a number")

    def getintdict(self, section: str) -> dict[str, int]:
        """Return every key of ``section`` as ints; ``{}`` if the section is absent (``[resources]``)."""
        result: dict[str, int] = {}
        for key, value in self.data.get(section, {}).items():
            try:
                result[key] = _as_int(value)
            except (ValueError, TypeError):
                raise ConfigValueError(
                    f"{self._where(section, key)}: [{section}] {key} = {value!r} is not an integer; "
                    f"every key of [{section}] must be a whole number."
                ) from None
        return result

    def has_option(self, section: str, option: str) -> bool:
        """True if ``[section] option`` is set, in underscore or (deprecated) dash spelling."""
        try:
            self._lookup(section, option, stacklevel=3)
        except (NoSectionError, NoOptionError):
            return False
        return True

    def has_section(self, section: str) -> bool:
        """True if the configuration has a table named ``section``."""
        return section in self.data

    def sections(self) -> list[str]:
        """Names of all sections, in the order they were first seen."""
        return list(self.data)

    def items(self, section: str) -> list[tuple[str, Any]]:
        """``(option, value)`` pairs of ``section``; raises ``NoSectionError`` if it is absent."""
        try:
            return list(self.data[section].items())
        except KeyError:
            raise MissingSectionError(section) from None

    def set(self, section: str, option: str, value: Any = None) -> None:
        """Set ``[section] option`` to ``value`` (any TOML-compatible value), creating the section."""
        self.data.setdefault(section, {})[option] = value
        self._sources.pop((section, option), None)

    def __getitem__(self, section: str) -> dict[str, Any]:
        """The options of ``section`` as a dict; ``KeyError`` if absent (``config["logging"]``)."""
        return self.data[section]

    def __contains__(self, section: object) -> bool:
        return section in self.data

    # -- snapshots for trun.testing -------------------------------------------

    def _snapshot(self) -> Any:
        return (
            {section: dict(options) for section, options in self.data.items()},
            dict(self._sources),
            list(self._loaded_files),
        )

    def _restore(self, snapshot: Any) -> None:
        data, sources, loaded_files = snapshot
        self.data = {section: dict(options) for section, options in data.items()}
        self._sources = dict(sources)
        self._loaded_files = list(loaded_files)

    def _overlay(self, section: str, values: dict[str, Any], replace_section: bool) -> None:
        if replace_section:
            self.data.pop(section, None)
        for option, value in values.items():
            self.set(section, option, value)


def _parse_file(path: str) -> dict[str, dict[str, Any]] | None:
    """Read one TOML file; None if it does not exist. Raises ConfigError naming file and position."""
    if not os.path.exists(path):
        return None
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path} is not a regular file; point the config path at a .toml file.")
    toml = _toml_module()
    try:
        with open(path, "rb") as handle:
            data = toml.load(handle)
    except toml.TOMLDecodeError as exc:
        # The decoder's message ends with "(at line N, column M)".
        raise ConfigError(f"Malformed TOML config file {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Config file {path} cannot be read: {exc.strerror or exc}.") from None

    from trun.freezing import recursively_freeze

    for section, options in data.items():
        if not isinstance(options, dict):
            raise ConfigError(
                f"TOML config file {path}: top-level key {section!r} is not inside a [section] table; "
                f"put it under a section such as [core]."
            )
        for option, value in options.items():
            if isinstance(value, dict):
                options[option] = recursively_freeze(value)
    return data
