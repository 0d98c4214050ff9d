"""Helpers for testing your own trun pipelines.

* :class:`with_config` overlays configuration values for one test, as a
  decorator or a ``with`` block, and puts everything back afterwards.
* :func:`temporary_config` writes real configuration text to a temporary
  ``trun.cfg``/``trun.toml`` and reads it, for tests of file syntax
  (interpolation, ``${ENV}``, TOML tables).
* :class:`FakeClock` is a clock that moves only when told, for
  ``trun.scheduler.Scheduler(clock=...)``.

Hazards: configuration is process-global. These helpers are meant for tests
running one at a time in a process (pytest's default, or pytest-xdist's one
test per worker process); overlapping them from several threads mixes values.
Entering and leaving a configuration overlay also clears trun's step instance
cache, so that ``Config`` classes such as ``worker`` are built again from the
overlaid values instead of being served from the cache.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from trun.configuration import PARSERS, add_config_path, get_config
from trun.configuration.base_parser import BaseParser
from trun.configuration.core import CONFIG_PARSER_ENV, _capture_state, _restore_state

__all__ = ["FakeClock", "temporary_config", "with_config"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _clear_step_instance_cache() -> None:
    # Only if steps are in use at all: importing the registry here would make
    # every configuration test pay for importing the step machinery.
    register_module = sys.modules.get("trun.step_register")
    register = getattr(register_module, "Register", None)
    if register is not None:
        register.clear_instance_cache()


def _check_config_shape(config: Any) -> dict[str, dict[str, Any]]:
    example = "with_config({'core': {'workers': '2'}})"
    if not isinstance(config, Mapping):
        raise TypeError(
            f"with_config expects a mapping of section -> {{option: value}}, e.g. {example}; "
            f"got {type(config).__name__}."
        )
    checked: dict[str, dict[str, Any]] = {}
    for section, options in config.items():
        if not isinstance(section, str):
            raise TypeError(f"with_config: section names are strings; got {section!r}. For example {example}.")
        if not isinstance(options, Mapping):
            raise TypeError(
                f"with_config: section [{section}] must map option names to values, "
                f"got {type(options).__name__} {options!r}. For example {example}."
            )
        checked[section] = dict(options)
    return checked


class with_config:  # lower case like Luigi's test helper: it reads as a decorator
    """Overlay configuration values while a function or ``with`` block runs.

    ``config`` maps section names to ``{option: value}``. By default the options
    are merged into existing sections; with ``replace_sections=True`` each
    section named in ``config`` replaces the existing section of that name
    entirely. Other sections are untouched. Afterwards the configuration is
    exactly what it was before, including values given with ``set()`` and files
    added with ``add_config_path()`` inside the block.

    For the cfg parser, values are written as a config file would have them:
    strings as they are, booleans as ``true``/``false``, lists and dicts as JSON,
    anything else with ``str()``. The TOML parser keeps values as given.

    Usable as a decorator (also on ``async def`` functions)::

        @with_config({"worker": {"keep_alive": "true"}})
        def test_worker_stays_alive():
            ...

    or as a context manager, which returns the active parser::

        with with_config({"core": {"workers": 3}}) as config:
            assert config.getint("core", "workers") == 3
    """

    def __init__(
        self,
        config: Mapping[str, Mapping[str, Any]],
        replace_sections: bool = False,
        parser: str | None = None,
    ) -> None:
        self.config = _check_config_shape(config)
        self.replace_sections = replace_sections
        #: Which parser to overlay ("cfg" or "toml"); None means the active one.
        self.parser = parser
        self._saved: list[object] = []

    def __enter__(self) -> BaseParser:
        state = _capture_state()
        try:
            parser = get_config(self.parser)
            for section, options in self.config.items():
                parser._overlay(section, options, self.replace_sections)
        except BaseException:
            _restore_state(state)
            raise
        self._saved.append(state)
        _clear_step_instance_cache()
        return parser

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _restore_state(self._saved.pop())
        _clear_step_instance_cache()

    def __call__(self, func: _F) -> _F:
        if isinstance(func, type):
            raise TypeError(
                f"with_config decorates functions and methods, not the class {func.__name__}; "
                f"decorate its test methods, or enter it in setUp() and leave it in tearDown()."
            )
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


@contextmanager
def temporary_config(text: str, parser: str = "cfg") -> Iterator[Path]:
    """Read ``text`` as a configuration file for the duration of a ``with`` block.

    ``text`` is written to a temporary ``trun.cfg`` (``parser="cfg"``) or
    ``trun.toml`` (``parser="toml"``) and added with
    :func:`trun.configuration.add_config_path`, so it overrides every file read
    before. ``parser`` also becomes the active parser inside the block. Yields
    the file's path; afterwards the file is deleted and the configuration (and
    ``TRUN_CONFIG_PARSER``) are as before. A malformed ``text`` raises
    :class:`trun.configuration.ConfigError` on entry.
    """
    if parser not in PARSERS:
        raise ValueError(f"temporary_config: unknown parser {parser!r}; expected one of {', '.join(PARSERS)}.")
    suffix = ".toml" if parser == "toml" else f".{parser}"
    state = _capture_state()
    previous_parser_env = os.environ.get(CONFIG_PARSER_ENV)
    with tempfile.TemporaryDirectory(prefix="trun-config-") as directory:
        path = Path(directory) / f"trun{suffix}"
        path.write_text(text, encoding="utf-8")
        os.environ[CONFIG_PARSER_ENV] = parser
        try:
            add_config_path(str(path))
            _clear_step_instance_cache()
            yield path
        finally:
            if previous_parser_env is None:
                os.environ.pop(CONFIG_PARSER_ENV, None)
            else:
                os.environ[CONFIG_PARSER_ENV] = previous_parser_env
            _restore_state(state)
            _clear_step_instance_cache()


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it.

    Pass it where trun takes a clock, e.g. ``Scheduler(clock=FakeClock())``, to
    test retry delays, disable windows or worker timeouts without sleeping.
    Calling the clock returns the current time in seconds since the epoch.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        #: The current time, in seconds since the epoch.
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError(f"FakeClock.advance({seconds!r}): a clock only moves forward; give seconds >= 0.")
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"
