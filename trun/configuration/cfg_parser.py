"""The ``trun.cfg`` parser: ini files with ``%(name)s`` and ``${ENVVAR}`` interpolation.

Files are read in this order, later ones overriding earlier ones key by key:
``/etc/trun/trun.cfg``, ``trun.cfg`` in the current directory, then the file
named by ``TRUN_CONFIG_PATH`` and any file given to ``add_config_path()``.

Values are strings. ``%(other_key)s`` refers to another key of the same section
(or of ``[DEFAULT]``), ``${HOME}`` to an environment variable; a literal ``%``
is written ``%%``. Option names are case-sensitive; ``some_key`` is the
canonical spelling, ``some-key`` is still found but warns (as in Luigi).

Hazards: interpolation happens when a value is *read*, so a reference to an
unset environment variable raises :class:`InterpolationMissingEnvvarError` at
the first ``get()`` of that option, not when the file is loaded. A malformed
file, by contrast, raises :class:`~trun.configuration.ConfigError` as soon as it
is loaded, and leaves the values loaded before untouched.
"""
from __future__ import annotations

import configparser
import json
import os
import re
from collections.abc import Callable, Iterable
from configparser import (
    BasicInterpolation,
    ConfigParser,
    Interpolation,
    InterpolationError,
    NoOptionError,
    NoSectionError,
    RawConfigParser,
)
from typing import Any

from trun.configuration.base_parser import (
    NO_DEFAULT,
    BaseParser,
    ConfigError,
    ConfigValueError,
    dash_alias,
    warn_dash_style,
)

__all__ = [
    "CombinedInterpolation",
    "EnvironmentInterpolation",
    "InterpolationMissingEnvvarError",
    "TrunConfigParser",
]


class InterpolationMissingEnvvarError(InterpolationError):
    """A value refers to an environment variable (``${NAME}``) that is not set."""

    def __init__(self, option: str, section: str, value: str, envvar: str, path: str | None = None) -> None:
        where = f"Config file {path}" if path else "Configuration"
        message = (
            f"{where}: [{section}] {option} = {value!r} refers to the environment variable "
            f"{envvar}, which is not set. Set {envvar}, or write the value without ${{{envvar}}}."
        )
        super().__init__(option, section, message)
        self.envvar = envvar
        self.value = value
        self.path = path


class EnvironmentInterpolation(Interpolation):
    """Replace ``${NAME}`` in values with the environment variable ``NAME`` when read."""

    _ENV_REFERENCE = re.compile(r"\$\{([^}]+)\}")

    def before_get(self, parser: Any, section: str, option: str, value: str, defaults: Any) -> str:
        if "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            try:
                return os.environ[name]
            except KeyError:
                source_of = getattr(parser, "source_of", None)
                path = source_of(section, option) if source_of else None
                raise InterpolationMissingEnvvarError(option, section, value, name, path) from None

        return self._ENV_REFERENCE.sub(substitute, value)


class CombinedInterpolation(Interpolation):
    """Apply several interpolations one after the other (``%(name)s`` first, then ``${ENV}``)."""

    def __init__(self, interpolations: Iterable[Interpolation]) -> None:
        self._interpolations = list(interpolations)

    def before_get(self, parser: Any, section: str, option: str, value: str, defaults: Any) -> str:
        for interpolation in self._interpolations:
            value = interpolation.before_get(parser, section, option, value, defaults)
        return value

    def before_read(self, parser: Any, section: str, option: str, value: str) -> str:
        for interpolation in self._interpolations:
            value = interpolation.before_read(parser, section, option, value)
        return value

    def before_set(self, parser: Any, section: str, option: str, value: str) -> str:
        for interpolation in self._interpolations:
            value = interpolation.before_set(parser, section, option, value)
        return value

    def before_write(self, parser: Any, section: str, option: str, value: str) -> str:
        for interpolation in self._interpolations:
            value = interpolation.before_write(parser, section, option, value)
        return value


_BOOLEAN_FORM = "a boolean (true/false, yes/no, on/off or 1/0)"


class TrunConfigParser(BaseParser, ConfigParser):
    """trun's ini-style configuration (``trun.cfg``); Luigi's ``LuigiConfigParser`` renamed.

    Get the process-wide instance with :func:`trun.configuration.get_config`.
    Every getter takes a ``default`` returned when the section or option is
    missing; without one, ``configparser.NoSectionError`` /
    ``configparser.NoOptionError`` is raised.
    """

    _default_config_paths = ("/etc/trun/trun.cfg", "trun.cfg")

    def __init__(self) -> None:
        ConfigParser.__init__(
            self, interpolation=CombinedInterpolation([BasicInterpolation(), EnvironmentInterpolation()])
        )
        # (section, option) -> file that gave the current value; for error messages.
        self._sources: dict[tuple[str, str], str] = {}
        self._loaded_files: list[str] = []

    def optionxform(self, optionstr: str) -> str:
        # Option names are case-sensitive: parameter names are Python identifiers.
        return optionstr

    # -- reading files -------------------------------------------------------

    def _load(self, paths: list[str]) -> list[str]:
        # Parse everything before touching the current values, so that a broken
        # file raises without leaving a half-loaded configuration behind.
        parsed = [(path, *found) for path in paths if (found := _parse_file(path)) is not None]
        for section in self.sections():
            self.remove_section(section)
        self.defaults().clear()
        self._sources.clear()
        self._loaded_files = []
        self._merge(parsed)
        return list(self._loaded_files)

    def _load_more(self, paths: list[str]) -> list[str]:
        parsed = [(path, *found) for path in paths if (found := _parse_file(path)) is not None]
        self._merge(parsed)
        return [path for path, _, _ in parsed]

    def _merge(self, parsed: list[tuple[str, str, RawConfigParser]]) -> None:
        for path, text, probe in parsed:
            self.read_string(text, source=path)
            for option in probe.defaults():
                self._sources[(self.default_section, option)] = path
            for section in probe.sections():
                # The probe's own section dict holds exactly this file's keys
                # (its public views would mix in [DEFAULT]).
                for option in probe._sections[section]:  # type: ignore[attr-defined]
                    self._sources[(section, option)] = path
            self._loaded_files.append(path)

    def source_of(self, section: str, option: str) -> str | None:
        """Return the file that gave ``[section] option`` its value (None if set in code or unknown)."""
        return self._sources.get((section, option)) or self._sources.get((self.default_section, option))

    def _where(self, section: str, option: str) -> str:
        path = self.source_of(section, option)
        return f"Config file {path}" if path else "Configuration"

    # -- lookups -------------------------------------------------------------

    def _stored_name(self, section: str, option: str, stacklevel: int) -> str:
        """The spelling under which ``option`` is stored: underscores first, then dashes (warns)."""
        canonical, dashed = dash_alias(option)
        if ConfigParser.has_option(self, section, canonical):
            return canonical
        if dashed != canonical and ConfigParser.has_option(self, section, dashed):
            warn_dash_style(section, dashed, canonical, stacklevel + 1)
            return dashed
        return canonical

    def _get_with_default(
        self,
        section: str,
        option: str,
        default: Any,
        convert: Callable[[str], Any] | None = None,
        expected: str = "",
        **kwargs: Any,
    ) -> Any:
        stored = self._stored_name(section, option, stacklevel=4)
        try:
            # A plain configparser lookup: calling our own get() here would look
            # up (and warn about) the dash-style alias a second time.
            value = ConfigParser.get(self, section, stored, **kwargs)
        except (NoSectionError, NoOptionError):
            if default is NO_DEFAULT:
                raise
            return default
        if convert is None:
            return value
        try:
            return convert(value)
        except ValueError:
            raise ConfigValueError(
                f"{self._where(section, stored)}: [{section}] {stored} = {value!r} is not {expected}."
            ) from None

    def get(self, section: str, option: str, default: Any = NO_DEFAULT, **kwargs: Any) -> Any:  # type: ignore[override]
        """Return the value of ``[section] option`` as a string, interpolated.

        ``raw=True`` and ``vars=`` are passed on to :meth:`configparser.ConfigParser.get`.
        A ``fallback=`` argument means a plain ``configparser`` lookup (no dash
        aliasing), which is how ``configparser``'s own interpolation calls it.
        """
        if "fallback" in kwargs:
            return ConfigParser.get(self, section, option, **kwargs)
        return self._get_with_default(section, option, default, **kwargs)

    def getboolean(self, section: str, option: str, default: Any = NO_DEFAULT) -> bool:  # type: ignore[override]
        """Return ``[section] option`` as a bool (true/false, yes/no, on/off, 1/0)."""
        return self._get_with_default(section, option, default, self._to_bool, _BOOLEAN_FORM)

    def getint(self, section: str, option: str, default: Any = NO_DEFAULT) -> int:  # type: ignore[override]
        """Return ``[section] option`` as an int."""
        return self._get_with_default(section, option, default, int, "an integer")

    def getfloat(self, section: str, option: str, default: Any = NO_DEFAULT) -> float:  # type: ignore[override]
        """Return ``[section] option`` as a float."""
        return self._get_with_default(section, option, default, float, "a number")

    def _to_bool(self, value: str) -> bool:
        try:
            return self.BOOLEAN_STATES[value.strip().lower()]
        except KeyError:
            raise ValueError(value) from None

    def getintdict(self, section: str) -> dict[str, int]:
        """Return every key of ``section`` (not those of ``[DEFAULT]``) as ints; ``{}`` if absent.

        Used for ``[resources]``, where each key names a resource and its limit.
        """
        try:
            items = self.items(section)
        except NoSectionError:
            return {}
        # [DEFAULT] keys show up in every section but rarely hold ints.
        default_keys = set(self.defaults())
        result: dict[str, int] = {}
        for key, value in items:
            if key in default_keys:
                continue
            try:
                result[key] = int(value)
            except ValueError:
                raise ConfigValueError(
                    f"{self._where(section, key)}: [{section}] {key} = {value!r} is not an integer; "
                    f"every key of [{section}] must be a whole number."
                ) from None
        return result

    def has_option(self, section: str, option: str) -> bool:
        """True if ``[section] option`` is set, in underscore or (deprecated) dash spelling."""
        canonical, dashed = dash_alias(option)
        if ConfigParser.has_option(self, section, canonical):
            return True
        if dashed != canonical and ConfigParser.has_option(self, section, dashed):
            warn_dash_style(section, dashed, canonical, 3)
            return True
        return False

    def set(self, section: str, option: str, value: str | None = None) -> None:
        """Set ``[section] option`` to the string ``value``, creating the section if needed."""
        if section != self.default_section and not ConfigParser.has_section(self, section):
            self.add_section(section)
        ConfigParser.set(self, section, option, value)
        self._sources.pop((section, option), None)

    # -- snapshots for trun.testing -------------------------------------------

    def _snapshot(self) -> Any:
        return (
            dict(self.defaults()),
            {section: dict(self._sections[section]) for section in self.sections()},  # type: ignore[attr-defined]
            dict(self._sources),
            list(self._loaded_files),
        )

    def _restore(self, snapshot: Any) -> None:
        defaults, sections, sources, loaded_files = snapshot
        for section in self.sections():
            self.remove_section(section)
        self.defaults().clear()
        self.defaults().update(defaults)
        for section, options in sections.items():
            # Copy raw values back without set(): set() would re-validate '%' syntax
            # that files are allowed to contain until the option is read.
            RawConfigParser.add_section(self, section)
            self._sections[section].update(options)  # type: ignore[attr-defined]
        self._sources = dict(sources)
        self._loaded_files = list(loaded_files)

    def _overlay(self, section: str, values: dict[str, Any], replace_section: bool) -> None:
        if replace_section:
            if section == self.default_section:
                self.defaults().clear()
            elif self.has_section(section):
                self.remove_section(section)
        for option, value in values.items():
            self.set(section, option, _as_cfg_string(section, option, value))


def _parse_file(path: str) -> tuple[str, RawConfigParser] | None:
    """Read and validate one file; None if it does not exist. Raises ConfigError naming file and line."""
    if not os.path.exists(path):
        return None
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path} is not a regular file; point the config path at a .cfg file.")
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Config file {path} cannot be read: {exc.strerror or exc}.") from None

    probe = RawConfigParser(strict=True, interpolation=None)
    probe.optionxform = str  # type: ignore[method-assign, assignment]
    try:
        probe.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError(_describe_parse_error(path, exc)) from exc
    return text, probe


def _describe_parse_error(path: str, exc: configparser.Error) -> str:
    prefix = f"Malformed config file {path}"
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return (f"{prefix}, line {exc.lineno}: {exc.line.strip()!r} comes before any [section] header; "
                f"start the file with a section such as [core].")
    if isinstance(exc, configparser.DuplicateSectionError):
        return (f"{prefix}, line {exc.lineno}: section [{exc.section}] appears twice in this file; "
                f"merge the two into one section.")
    if isinstance(exc, configparser.DuplicateOptionError):
        return (f"{prefix}, line {exc.lineno}: option {exc.option!r} appears twice in section "
                f"[{exc.section}]; keep only one of them.")
    if isinstance(exc, configparser.ParsingError):
        lines = "; ".join(f"line {lineno}: {_unrepr(line).strip()!r}" for lineno, line in exc.errors)
        return (f"{prefix}: cannot parse {lines}; expected '[section]', 'key = value' or 'key: value' "
                f"(indented lines continue the previous value).")
    return f"{prefix}: {exc}"


def _unrepr(line: str) -> str:
    # configparser stores the offending line as repr(line) in ParsingError.errors.
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "'\"":
        import ast

        try:
            return str(ast.literal_eval(line))
        except (ValueError, SyntaxError):
            pass
    return line


def _as_cfg_string(section: str, option: str, value: Any) -> str:
    """Spell a Python value the way a trun.cfg file would, for ``trun.testing.with_config``."""
    if isinstance(value, str):
        return value
    if value is None:
        raise TypeError(
            f"with_config: [{section}] {option} is None; a cfg value must be a string. "
            f"Leave the key out to keep it unset."
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        # List/Dict/TupleParameter read JSON from config files.
        return json.dumps(value)
    return str(value)
