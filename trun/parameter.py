"""Parameters: the typed, named inputs of a step, and how their values are found.

A parameter is declared as a class attribute of a :class:`~trun.step.Step`::

    class Aggregate(trun.Step):
        date = trun.DateParameter()
        window = trun.IntParameter(default=7)

Each instance of the step then holds plain values (``Aggregate(date=d).window
== 7``): the step stores them in the instance ``__dict__``, which shadows the
class-level parameter object (a non-data descriptor). The parameter object
itself knows how to turn a string into a value (:meth:`Parameter.parse`), a
value back into a string (:meth:`Parameter.serialize`) and how to clean a value
(:meth:`Parameter.normalize`).

A value that is not passed to the constructor is looked up, first hit wins:

1. a class-level command-line flag ``--Family-param-name`` (only while a
   :class:`~trun.cmdline_parser.CmdlineParser` is active);
2. the configuration, ``[Family] param_name`` (``param-name`` also accepted);
3. the deprecated ``config_path={"section": ..., "name": ...}`` location;
4. the ``default``.

Strings from the command line and the configuration go through ``parse``;
every final value goes through ``normalize``. There is no direct lookup of
environment variables.

Hazards:

* Parameter objects count their creation (``_counter``) so that positional
  arguments follow declaration order; sharing one object between classes is
  only safe with ``positional=False``.
* A bad string raises :class:`ParameterParseError` (a ``ValueError``). Raised
  by ``parse`` alone it only knows the value; on the lookup path it also names
  the step, the parameter and where the value came from.
* ``import trun.parameter`` stays cheap: ``jsonschema``, ``ast`` and the step
  registry are imported only when first needed.
"""
from __future__ import annotations

import datetime
import difflib
import enum
import itertools
import json
import operator
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from configparser import NoOptionError, NoSectionError
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, overload

from trun.cmdline_parser import CmdlineParser
from trun.date_interval import DateInterval
from trun.freezing import FrozenOrderedDict, recursively_freeze, recursively_unfreeze

if TYPE_CHECKING:
    # PEP 696 defaults let ``foo = trun.Parameter()`` be typed ``str`` without annotation.
    from typing_extensions import TypeVar

    from trun.step import Step

    _T = TypeVar("_T", default=str)
    _V = TypeVar("_V", default=str)
    _E = TypeVar("_E", bound=enum.Enum, default=enum.Enum)
else:
    from typing import TypeVar

    _T = TypeVar("_T")
    _V = TypeVar("_V")
    _E = TypeVar("_E", bound=enum.Enum)

_P = TypeVar("_P", bound="Parameter[Any]")
_M = TypeVar("_M")

__all__ = [
    "ParameterVisibility",
    "ParameterException", "MissingParameterException", "UnknownParameterException",
    "DuplicateParameterException", "ParameterParseError",
    "OptionalParameterTypeWarning", "UnconsumedParameterWarning",
    "Parameter", "StrParameter", "OptionalParameter", "OptionalStrParameter", "OptionalParameterMixin",
    "IntParameter", "OptionalIntParameter", "FloatParameter", "OptionalFloatParameter",
    "BoolParameter", "OptionalBoolParameter",
    "DateParameter", "OptionalDateParameter", "MonthParameter", "YearParameter",
    "DateHourParameter", "DateMinuteParameter", "DateSecondParameter",
    "DateIntervalParameter", "TimeDeltaParameter", "StepParameter",
    "EnumParameter", "EnumListParameter",
    "ChoiceParameter", "OptionalChoiceParameter", "ChoiceListParameter",
    "NumericalParameter", "OptionalNumericalParameter",
    "DictParameter", "OptionalDictParameter", "ListParameter", "OptionalListParameter",
    "TupleParameter", "OptionalTupleParameter", "PathParameter", "OptionalPathParameter",
]


class _NoValue:
    """Type of :data:`_no_value`, the marker for "no value was found"."""

    def __repr__(self) -> str:
        return "<no value>"

    def __reduce__(self) -> str:
        return "_no_value"


#: Marks an absent default or an absent value during lookup (``None`` is a legitimate value).
_no_value: Any = _NoValue()

_creation_counter = itertools.count()


# --------------------------------------------------------------------------- errors


class ParameterException(Exception):
    """Base class of every error about a parameter or its value."""


class MissingParameterException(ParameterException):
    """A parameter has no value: none was passed, configured or defaulted."""


class UnknownParameterException(ParameterException):
    """A step was given a parameter it does not declare."""


class DuplicateParameterException(ParameterException):
    """A step was given the same parameter twice (positionally and by keyword)."""


class ParameterParseError(ParameterException, ValueError):
    """A value does not have the form a parameter expects.

    ``str()`` of the error reads like ``"Aggregate: --window expects an
    integer, got 'abc'"``. When raised by :meth:`Parameter.parse` alone only
    ``value`` and ``expected`` are known; the lookup path
    (:meth:`Parameter.step_value`, the command-line parser) fills in the step
    and parameter names and where the value came from via :meth:`attach`.
    """

    #: Exit status a command-line front end uses for this error: a usage error.
    exit_code = 2

    def __init__(self, param_name: str | None, step_name: str | None, value: Any, expected: str, *,
                 source: str | None = None, detail: str | None = None, hint: str | None = None) -> None:
        self.param_name = param_name
        self.step_name = step_name
        self.value = value
        self.expected = expected
        self.source = source
        self.detail = detail
        self.hint = hint
        super().__init__(self.format_message())

    def attach(self, step_name: str | None, param_name: str | None, source: str | None = None) -> ParameterParseError:
        """Add what is known higher up (step, parameter, origin of the value); returns ``self``."""
        self.step_name = self.step_name or step_name
        self.param_name = self.param_name or param_name
        self.source = self.source or source
        self.args = (self.format_message(),)
        return self

    def format_message(self) -> str:
        """The one-line, user-facing description of the problem."""
        where = self.source
        if where is None and self.param_name:
            where = "--" + self.param_name.replace("_", "-")
        if where and self.step_name:
            message = f"{self.step_name}: {where} expects {self.expected}, got {self.value!r}"
        elif where:
            message = f"{where} expects {self.expected}, got {self.value!r}"
        else:
            message = f"expected {self.expected}, got {self.value!r}"
        if self.detail:
            message += f" ({self.detail})"
        if self.hint:
            message += f". {self.hint}"
        return message

    def __str__(self) -> str:
        return self.format_message()

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args) by default, which does not fit this constructor.
        state = {"source": self.source, "detail": self.detail, "hint": self.hint}
        return (type(self), (self.param_name, self.step_name, self.value, self.expected), state)


class OptionalParameterTypeWarning(UserWarning):
    """An optional parameter got a value that is neither its type nor ``None``."""


class UnconsumedParameterWarning(UserWarning):
    """The configuration section of a step sets an option the step does not declare."""


def _did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "Did you mean ...?" hint for a misspelt ``word``, or ``None``."""
    candidates = list(candidates)
    folded = {candidate.lower(): candidate for candidate in candidates}
    if word.lower() in folded:
        return f"Did you mean {folded[word.lower()]!r}?"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else None


# --------------------------------------------------------------------------- base class


class ParameterVisibility(enum.IntEnum):
    """Who gets to see a parameter's value.

    ``PUBLIC`` values are part of the step id and shown everywhere. ``HIDDEN``
    values are sent to the scheduler and stored, but left out of the step id and
    hidden in the UI. ``PRIVATE`` values never leave the process.
    """

    PUBLIC = 0
    HIDDEN = 1
    PRIVATE = 2

    @classmethod
    def has_value(cls, value: object) -> bool:
        """Whether ``value`` is the number of one of the visibilities."""
        return any(value == item.value for item in cls)

    def serialize(self) -> int:
        """The visibility as sent to the scheduler: its number."""
        return self.value


class Parameter(Generic[_T]):
    """A step parameter whose value is a ``str``; the base class of every other parameter type.

    Declare parameters as class attributes of a step; instances of the step
    then carry plain values. Subclasses override :meth:`parse`,
    :meth:`serialize` and :meth:`normalize` for their type, and set
    :attr:`expected_form` for error messages.
    """

    #: How a valid string looks, in words; used in "… expects <expected_form>, got …".
    expected_form: str = "a string"

    def __init__(self, default: Any = _no_value, is_global: bool = False, significant: bool = True,
                 description: str | None = None, config_path: Mapping[str, str] | None = None,
                 positional: bool = True, always_in_help: bool = False,
                 batch_method: Callable[[Iterable[Any]], Any] | None = None,
                 visibility: ParameterVisibility | int = ParameterVisibility.PUBLIC) -> None:
        """
        :param default: value used when nothing else supplies one; without it the
            parameter is required and a missing value raises :class:`MissingParameterException`.
        :param is_global: removed in Luigi; only warns and means ``positional=False``.
        :param significant: ``False`` leaves the parameter out of the step id (for
            secrets or tuning knobs that do not change the output).
        :param description: help text shown by ``--help``.
        :param config_path: deprecated ``{"section": ..., "name": ...}``; another
            configuration location, looked up after ``[Family] param``.
        :param positional: whether the value may be passed positionally.
        :param always_in_help: show the flag in ``--help`` even when this is not
            a parameter of the step being run.
        :param batch_method: combines an iterable of parsed values into one; makes
            the parameter batchable (see ``Step.batchable``).
        :param visibility: a :class:`ParameterVisibility`; unknown values mean ``PUBLIC``.
        """
        self._default = default
        if batch_method is not None and not callable(batch_method):
            raise ParameterException(
                f"batch_method must be a callable combining a list of values (e.g. max), got {batch_method!r}")
        self._batch_method = batch_method
        if is_global:
            warnings.warn("is_global support is removed. Assuming positional=False",
                          DeprecationWarning, stacklevel=2)
            positional = False
        self.significant = significant
        self.positional = positional
        self.visibility = (ParameterVisibility(visibility) if ParameterVisibility.has_value(visibility)
                           else ParameterVisibility.PUBLIC)
        self.description = description
        self.always_in_help = always_in_help
        if config_path is not None and not (isinstance(config_path, Mapping)
                                            and "section" in config_path and "name" in config_path):
            raise ParameterException(
                f"config_path must be a dict with the keys 'section' and 'name', got {config_path!r}")
        self._config_path = config_path
        # Creation order decides the order of positional arguments.
        self._counter = next(_creation_counter)

    # Typed access: on the class the parameter object, on an instance its value.
    @overload
    def __get__(self: _P, instance: None, owner: Any = None) -> _P: ...

    @overload
    def __get__(self, instance: object, owner: Any = None) -> _T: ...

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        # Only reached when the instance has no value stored under this name
        # (values live in the instance __dict__, which takes precedence).
        return self

    def __repr__(self) -> str:
        if self._default is _no_value:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(default={self._default!r})"

    # ----------------------------------------------------------------- value lookup

    def _value_iterator(self, step_name: str, param_name: str) -> Iterable[tuple[Callable[[], Any], str, str | None]]:
        """Yield ``(lookup, source, deprecation)`` for each place a value may come from, in priority order.

        ``lookup()`` returns the raw value there or ``_no_value``.
        """
        cmdline = CmdlineParser.get_instance()
        if cmdline is not None:
            dest = self._parser_global_dest(param_name, step_name)
            flag = cmdline._option_for_dest(dest) or "--" + dest.replace("_", "-")
            yield (lambda: getattr(cmdline.known_args, dest, None) or _no_value), flag, None
        yield (lambda: self._raw_config_value(step_name, param_name),
               f"configuration [{step_name}] {param_name}", None)
        dashed = param_name.replace("_", "-")
        if dashed != param_name:
            yield (lambda: self._raw_config_value(step_name, dashed),
                   f"configuration [{step_name}] {dashed}",
                   f"Configuration [{step_name}] {dashed} (with dashes) should be avoided. Please use underscores.")
        if self._config_path:
            section, name = self._config_path["section"], self._config_path["name"]
            yield (lambda: self._raw_config_value(section, name),
                   f"configuration [{section}] {name}",
                   f"The use of the configuration [{section}] {name} is deprecated. "
                   f"Please use [{step_name}] {param_name}")

    @staticmethod
    def _raw_config_value(section: str, name: str) -> Any:
        from trun.configuration import get_config  # lazy: configuration imports are not needed to declare steps

        try:
            config: Any = get_config()  # the parser classes, not BaseParser, define get()
            return config.get(section, name)
        except (NoSectionError, NoOptionError, KeyError):
            return _no_value

    def _get_value_from_config(self, section: str, name: str) -> Any:
        """The parsed value of ``[section] name`` in the configuration, or ``_no_value``."""
        raw = self._raw_config_value(section, name)
        if raw is _no_value:
            return _no_value
        return self._parse_in_context(raw, section, name, f"configuration [{section}] {name}")

    def _find_value(self, step_name: str, param_name: str) -> tuple[Any, str]:
        """The parsed value and where it was found; the default (maybe ``_no_value``) if nowhere else."""
        for lookup, source, deprecation in self._value_iterator(step_name, param_name):
            raw = lookup()
            if raw is _no_value:
                continue
            if deprecation:
                warnings.warn(deprecation, DeprecationWarning, stacklevel=4)
            return self._parse_in_context(raw, step_name, param_name, source), source
        return self._default, f"the default of {param_name}"

    def _get_value(self, step_name: str, param_name: str) -> Any:
        return self._find_value(step_name, param_name)[0]

    def has_step_value(self, step_name: str, param_name: str) -> bool:
        """Whether a value for ``param_name`` of step family ``step_name`` is found without the constructor."""
        return self._get_value(step_name, param_name) is not _no_value

    def step_value(self, step_name: str, param_name: str) -> _T:
        """The normalized value of ``param_name`` for step family ``step_name``, looked up as the module explains.

        :raises MissingParameterException: if no source has a value.
        :raises ParameterParseError: if a string found cannot be parsed or normalized;
            the message names the step, the parameter and where the value came from.
        """
        value, source = self._find_value(step_name, param_name)
        if value is _no_value:
            flag = "--" + param_name.replace("_", "-")
            raise MissingParameterException(
                f"{step_name}: requires the '{param_name}' parameter to be set: pass {param_name}=... "
                f"or {flag} for the step being run, --{step_name}-{param_name.replace('_', '-')}, "
                f"or set [{step_name}] {param_name} in the configuration")
        return self._normalize_in_context(value, step_name, param_name, source)

    def _parse_in_context(self, raw: Any, step_name: str, param_name: str, source: str | None) -> Any:
        """``parse(raw)``, with errors made into a :class:`ParameterParseError` naming step and parameter."""
        return self._convert_in_context(self.parse, raw, step_name, param_name, source)

    def _normalize_in_context(self, value: Any, step_name: str, param_name: str, source: str | None) -> Any:
        """``normalize(value)``, with errors made into a :class:`ParameterParseError` naming step and parameter."""
        return self._convert_in_context(self.normalize, value, step_name, param_name, source)

    def _convert_in_context(self, convert: Callable[[Any], Any], value: Any, step_name: str, param_name: str,
                            source: str | None) -> Any:
        try:
            return convert(value)
        except ParameterParseError as exc:
            raise exc.attach(step_name, param_name, source) from None
        except (ValueError, TypeError) as exc:
            raise ParameterParseError(param_name, step_name, value, self.expected_form, source=source,
                                      detail=str(exc) or None) from exc
        except Exception as exc:
            # A schema violation (DictParameter/ListParameter ``schema=``) is a bad value too.
            if type(exc).__module__.startswith("jsonschema"):
                detail = getattr(exc, "message", None) or str(exc)
                raise ParameterParseError(param_name, step_name, value, self.expected_form, source=source,
                                          detail=detail) from exc
            raise

    # ----------------------------------------------------------------- conversions

    def parse(self, x: Any) -> _T:
        """Turn the string ``x`` (from the command line or the configuration) into a value.

        The base class returns ``x`` unchanged. Subclasses also accept a value
        that already has their type (TOML configuration gives typed values) and
        raise :class:`ParameterParseError` for a string of the wrong form.
        """
        return x

    def serialize(self, x: Any) -> str:
        """Turn a value into the string that :meth:`parse` reads back."""
        return str(x)

    def normalize(self, x: Any) -> _T:
        """Clean or validate a value (parsed, default, or given to the constructor).

        The base class returns ``x`` unchanged; subclasses may clamp, convert
        or reject (by raising ``ValueError``).
        """
        return x

    def next_in_enumeration(self, value: Any) -> Any:
        """The value following ``value`` (``value + 1`` for integers), or ``None`` if values are not enumerable.

        The execution summary uses it to shorten ``Step(n=1), Step(n=2)`` to ``Step(n=1...2)``.
        """
        return None

    def _is_batchable(self) -> bool:
        return self._batch_method is not None

    def _parse_list(self, xs: Iterable[Any]) -> _T:
        """Parse a list of strings from the scheduler and combine them with ``batch_method``."""
        if not self._is_batchable():
            raise NotImplementedError("No batch method found")
        xs = list(xs)
        if not xs:
            raise ValueError("Empty parameter list passed to parse_list")
        assert self._batch_method is not None
        return self._batch_method(map(self.parse, xs))

    def _parse_or_no_value(self, x: Any) -> Any:
        # The command line leaves unset flags as None (or False for switches).
        return self.parse(x) if x else _no_value

    def _parse_error(self, value: Any, detail: str | None = None, hint: str | None = None) -> ParameterParseError:
        return ParameterParseError(None, None, value, self.expected_form, detail=detail, hint=hint)

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if type(self) is not Parameter:
            return
        if not isinstance(param_value, str):
            warnings.warn(f'Parameter "{param_name}" with value "{param_value}" is not of type string.',
                          stacklevel=3)

    # ----------------------------------------------------------------- command line

    @staticmethod
    def _parser_global_dest(param_name: str, step_name: str) -> str:
        return step_name + "_" + param_name

    def _parser_kwargs(self, param_name: str, step_name: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``argparse.ArgumentParser.add_argument`` of this parameter's flag."""
        return {
            "action": "store",
            "dest": self._parser_global_dest(param_name, step_name) if step_name else param_name,
        }


class StrParameter(Parameter[str]):
    """A parameter whose value is a ``str``; anything else is converted with ``str()``."""

    def parse(self, x: Any) -> str:
        return str(x)


# --------------------------------------------------------------------------- optional values


class OptionalParameterMixin(Generic[_V]):
    """Makes a parameter type also accept ``None``, written as an empty string.

    Used as the first base: ``class OptionalIntParameter(OptionalParameterMixin[int], IntParameter)``.
    Without an explicit ``default`` the default is ``None``.
    """

    #: The type (or tuple of types) a value should have; others warn with OptionalParameterTypeWarning.
    expected_type: Any = type(None)

    if TYPE_CHECKING:
        _default: Any
        expected_form: str

        @overload
        def __get__(self: _M, instance: None, owner: Any = None) -> _M: ...

        @overload
        def __get__(self, instance: object, owner: Any = None) -> _V | None: ...

        def __get__(self, instance: Any, owner: Any = None) -> Any: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._default is _no_value:
            self._default = None
        self.expected_form = f"{self.expected_form} (or an empty string for None)"

    def serialize(self, x: Any) -> str:
        if x is None:
            return ""
        return super().serialize(x)  # type: ignore[misc]

    def parse(self, x: Any) -> _V | None:
        if x is None or x == "":
            return None
        return super().parse(x)  # type: ignore[misc]

    def normalize(self, x: Any) -> _V | None:
        if x is None:
            return None
        return super().normalize(x)  # type: ignore[misc]

    def next_in_enumeration(self, value: Any) -> Any:
        return None

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if param_value is None or isinstance(param_value, self.expected_type):
            return
        if isinstance(self.expected_type, tuple):
            type_names = "any of " + ", ".join(t.__name__ for t in self.expected_type)
        else:
            type_names = self.expected_type.__name__
        warnings.warn(f'{type(self).__name__} "{param_name}" with value "{param_value}" '
                      f'is not of type "{type_names}" or None.', OptionalParameterTypeWarning, stacklevel=3)


class OptionalParameter(OptionalParameterMixin[str], Parameter[str]):  # type: ignore[misc]
    """A ``str`` parameter that may be ``None`` (an empty string on the command line)."""

    expected_type = str


class OptionalStrParameter(OptionalParameterMixin[str], StrParameter):  # type: ignore[misc]
    """A ``str`` parameter that may be ``None`` (an empty string on the command line)."""

    expected_type = str


# --------------------------------------------------------------------------- numbers and booleans


class IntParameter(Parameter[int]):
    """A parameter whose value is an ``int``, written in decimal."""

    expected_form = "an integer"

    def parse(self, x: Any) -> int:
        if isinstance(x, int) and not isinstance(x, bool):
            return x
        if isinstance(x, float) and x.is_integer():
            return int(x)
        if isinstance(x, str):
            try:
                return int(x)
            except ValueError:
                pass
        raise self._parse_error(x)

    def next_in_enumeration(self, value: int) -> int:
        return value + 1


class OptionalIntParameter(OptionalParameterMixin[int], IntParameter):  # type: ignore[misc]
    """An ``int`` parameter that may be ``None`` (an empty string on the command line)."""

    expected_type = int


class FloatParameter(Parameter[float]):
    """A parameter whose value is a ``float``."""

    expected_form = "a number"

    def parse(self, x: Any) -> float:
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            return float(x)
        if isinstance(x, str):
            try:
                return float(x)
            except ValueError:
                pass
        raise self._parse_error(x)


class OptionalFloatParameter(OptionalParameterMixin[float], FloatParameter):  # type: ignore[misc]
    """A ``float`` parameter that may be ``None`` (an empty string on the command line)."""

    expected_type = float


class BoolParameter(Parameter[bool]):
    """A parameter whose value is a ``bool``, written ``true`` or ``false`` (any case); default ``False``.

    On the command line, with ``parsing="implicit"`` (the default) the flag is a
    switch: ``--flag`` means true. With ``parsing="explicit"`` the flag takes an
    optional value: ``--flag``, ``--flag true`` or ``--flag false``; use it when
    the default is ``True``. ``BoolParameter.parsing = "explicit"`` changes the
    default for every BoolParameter created afterwards.
    """

    IMPLICIT_PARSING = "implicit"
    EXPLICIT_PARSING = "explicit"

    #: Class-wide default of the ``parsing`` argument.
    parsing = IMPLICIT_PARSING
    expected_form = "true or false"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        parsing = kwargs.pop("parsing", type(self).parsing)
        if parsing not in (self.IMPLICIT_PARSING, self.EXPLICIT_PARSING):
            raise ParameterException(
                f"BoolParameter parsing must be {self.IMPLICIT_PARSING!r} or {self.EXPLICIT_PARSING!r}, "
                f"got {parsing!r}")
        self.parsing = parsing
        super().__init__(*args, **kwargs)
        if self._default is _no_value:
            self._default = False

    def parse(self, x: Any) -> bool:
        if isinstance(x, bool):
            return x
        text = str(x).lower()
        if text == "true":
            return True
        if text == "false":
            return False
        raise self._parse_error(x)

    def normalize(self, value: Any) -> bool:
        try:
            return self.parse(value)
        except ValueError:
            return None  # type: ignore[return-value]  # Luigi's behaviour: an unreadable value becomes None

    def _parser_kwargs(self, param_name: str, step_name: str | None = None) -> dict[str, Any]:
        kwargs = super()._parser_kwargs(param_name, step_name)
        if self.parsing == self.IMPLICIT_PARSING:
            kwargs["action"] = "store_true"
        else:
            kwargs["nargs"] = "?"
            kwargs["const"] = True
        return kwargs


class OptionalBoolParameter(OptionalParameterMixin[bool], BoolParameter):  # type: ignore[misc]
    """A ``bool`` parameter that may be ``None`` (an empty string in the configuration)."""

    expected_type = bool


class NumericalParameter(Parameter[Any]):
    """A number of type ``var_type`` that must lie between ``min_value`` and ``max_value``.

    By default the range is ``min_value <= x < max_value``; pass ``left_op`` and
    ``right_op`` (``operator.le``/``operator.lt``) to change either end. The
    permitted range is appended to the description.
    """

    def __init__(self, left_op: Callable[[Any, Any], bool] = operator.le,
                 right_op: Callable[[Any, Any], bool] = operator.lt, *args: Any, **kwargs: Any) -> None:
        for required in ("var_type", "min_value", "max_value"):
            if required not in kwargs:
                raise ParameterException(
                    f"{type(self).__name__} requires {required}=...; "
                    "e.g. NumericalParameter(var_type=int, min_value=0, max_value=10)")
        self._var_type: type = kwargs.pop("var_type")
        self._min_value = kwargs.pop("min_value")
        self._max_value = kwargs.pop("max_value")
        self._left_op = left_op
        self._right_op = right_op
        left_bracket = "[" if left_op is operator.le else "("
        right_bracket = "]" if right_op is operator.le else ")"
        self._permitted_range = (f"{self._var_type.__name__} in "
                                 f"{left_bracket}{self._min_value}, {self._max_value}{right_bracket}")
        super().__init__(*args, **kwargs)
        self.description = ((self.description + " ") if self.description else "") + \
            "permitted values: " + self._permitted_range
        self.expected_form = f"a{'n' if self._var_type.__name__[0] in 'aeiou' else ''} {self._permitted_range}"

    def _in_range(self, value: Any) -> bool:
        return bool(self._left_op(self._min_value, value) and self._right_op(value, self._max_value))

    def parse(self, s: Any) -> Any:
        try:
            value = self._var_type(s)
        except (ValueError, TypeError):
            raise self._parse_error(s) from None
        if not self._in_range(value):
            raise self._parse_error(s)
        return value

    def normalize(self, x: Any) -> Any:
        if isinstance(x, (int, float)) and not isinstance(x, bool) and not self._in_range(x):
            raise self._parse_error(x)
        return x


class OptionalNumericalParameter(OptionalParameterMixin[Any], NumericalParameter):  # type: ignore[misc]
    """A :class:`NumericalParameter` that may be ``None`` (an empty string on the command line)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected_type = self._var_type


# --------------------------------------------------------------------------- choices and enums


class ChoiceParameter(Parameter[Any]):
    """A value of ``var_type`` (default ``str``) that must be one of ``choices``.

    The choices are appended to the description as ``Choices: {a, b, c}``.
    """

    def __init__(self, var_type: type = str, *args: Any, **kwargs: Any) -> None:
        if "choices" not in kwargs:
            raise ParameterException(
                f"{type(self).__name__} requires choices=...; e.g. ChoiceParameter(choices=['a', 'b'])")
        choices = list(dict.fromkeys(kwargs.pop("choices")))
        wrong = [choice for choice in choices if type(choice) is not var_type]
        if wrong:
            raise ParameterException(
                f"{type(self).__name__} choices must all be of var_type {var_type.__name__}; "
                f"{wrong[0]!r} is a {type(wrong[0]).__name__}")
        self._var_type = var_type
        self._choices = frozenset(choices)
        self._choices_in_order = tuple(choices)
        super().__init__(*args, **kwargs)
        listed = ", ".join(str(choice) for choice in choices)
        self.description = ((self.description + " ") if self.description else "") + "Choices: {" + listed + "}"
        self.expected_form = "one of " + listed

    def _check_choice(self, value: Any) -> Any:
        if value in self._choices:
            return value
        hint = _did_you_mean(str(value), [str(choice) for choice in self._choices_in_order])
        raise self._parse_error(value, hint=hint)

    def parse(self, s: Any) -> Any:
        try:
            value = self._var_type(s)
        except (ValueError, TypeError):
            raise self._parse_error(s) from None
        return self.normalize(value)

    def normalize(self, var: Any) -> Any:
        return self._check_choice(var)


class OptionalChoiceParameter(OptionalParameterMixin[Any], ChoiceParameter):  # type: ignore[misc]
    """A :class:`ChoiceParameter` that may be ``None`` (an empty string on the command line)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected_type = self._var_type


class ChoiceListParameter(ChoiceParameter):
    """A tuple of values, each one of ``choices``; written comma-separated (``a,c``), empty for ``()``."""

    _sep = ","

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected_form = "comma-separated values from " + ", ".join(map(str, self._choices_in_order))

    def parse(self, s: Any) -> tuple[Any, ...]:
        if not isinstance(s, str):
            return self.normalize(s)
        values = [] if s == "" else s.split(self._sep)
        converted = []
        for value in values:
            try:
                converted.append(self._var_type(value))
            except (ValueError, TypeError):
                raise self._parse_error(s, detail=f"{value!r} is not a {self._var_type.__name__}") from None
        return self.normalize(converted)

    def normalize(self, var: Any) -> tuple[Any, ...]:
        if isinstance(var, str):
            return self.parse(var)
        return tuple(self._check_choice(value) for value in var)

    def serialize(self, values: Iterable[Any]) -> str:
        return self._sep.join(str(value) for value in values)


class EnumParameter(Parameter[_E]):
    """A member of the enum class ``enum``, written by member name.

    .. code-block:: python

        class Model(enum.Enum):
            Honda = 1
            Volvo = 2

        model = trun.EnumParameter(enum=Model)   # --model Honda
    """

    def __init__(self, *args: Any, enum: type[_E] | None = None, **kwargs: Any) -> None:
        if enum is None:
            raise ParameterException("An enum class must be specified: EnumParameter(enum=MyEnum)")
        self._enum = enum
        super().__init__(*args, **kwargs)
        self.expected_form = "one of " + ", ".join(self._enum.__members__)

    def _member(self, name: Any, whole: Any) -> _E:
        try:
            return self._enum[name]
        except KeyError:
            raise self._parse_error(whole, hint=_did_you_mean(str(name), self._enum.__members__)) from None

    def parse(self, s: Any) -> _E:
        if isinstance(s, self._enum):
            return s
        return self._member(s, s)

    def serialize(self, e: _E) -> str:
        return e.name


class EnumListParameter(Parameter[tuple[_E, ...]]):
    """A tuple of members of the enum class ``enum``, written as comma-separated names (empty for ``()``)."""

    _sep = ","

    def __init__(self, *args: Any, enum: type[_E] | None = None, **kwargs: Any) -> None:
        if enum is None:
            raise ParameterException("An enum class must be specified: EnumListParameter(enum=MyEnum)")
        self._enum = enum
        super().__init__(*args, **kwargs)
        self.expected_form = "comma-separated names from " + ", ".join(self._enum.__members__)

    def parse(self, s: Any) -> tuple[_E, ...]:
        if not isinstance(s, str):
            return tuple(s)
        names = [] if s == "" else s.split(self._sep)
        members = []
        for name in names:
            try:
                members.append(self._enum[name])
            except KeyError:
                raise self._parse_error(s, hint=_did_you_mean(name, self._enum.__members__)) from None
        return tuple(members)

    def normalize(self, x: Any) -> tuple[_E, ...]:
        return tuple(x) if isinstance(x, list) else x

    def serialize(self, enum_values: Iterable[_E]) -> str:
        return self._sep.join(e.name for e in enum_values)


# --------------------------------------------------------------------------- dates and times

_UNIX_EPOCH = datetime.datetime(1970, 1, 1)


def _add_months(date: datetime.date, months: int) -> datetime.date:
    """The first day of the month ``months`` after ``date``'s month."""
    index = date.year * 12 + (date.month - 1) + months
    return datetime.date(index // 12, index % 12 + 1, 1)


class _DateParameterBase(Parameter[datetime.date]):
    """Shared parts of the parameters whose value is a ``datetime.date``."""

    date_format = "%Y-%m-%d"

    def __init__(self, interval: int = 1, start: datetime.date | None = None, **kwargs: Any) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ParameterException(
                f"{type(self).__name__} interval must be a positive integer, got {interval!r}"
                + (" (the first positional argument is interval; did you mean default=...?)"
                   if isinstance(interval, datetime.date) else ""))
        super().__init__(**kwargs)
        self.interval = interval
        self.start = start if start is not None else _UNIX_EPOCH.date()

    def parse(self, s: Any) -> datetime.date:
        if isinstance(s, DateInterval):
            return s.date_a
        if isinstance(s, datetime.datetime):
            return s.date()
        if isinstance(s, datetime.date):
            return s
        try:
            return datetime.datetime.strptime(s, self.date_format).date()
        except (ValueError, TypeError):
            raise self._parse_error(s) from None

    def serialize(self, dt: Any) -> str:
        if dt is None:
            return str(dt)
        return dt.strftime(self.date_format)

    def _as_date(self, value: Any) -> Any:
        # A string given to the constructor is parsed (Luigi would fail on it with a TypeError).
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, DateInterval):
            return value.date_a
        if isinstance(value, datetime.datetime):
            return value.date()
        return value


class DateParameter(_DateParameterBase):
    """A ``datetime.date``, written ``YYYY-MM-DD``.

    With ``interval=N`` (days) values snap down to ``start + k*N``
    (``start`` defaults to 1970-01-01). Handy in paths::

        "/data/{date:%Y/%m/%d}/".format(date=self.date)
    """

    expected_form = "a date YYYY-MM-DD"

    def next_in_enumeration(self, value: datetime.date) -> datetime.date:
        return value + datetime.timedelta(days=self.interval)

    def normalize(self, value: Any) -> datetime.date:
        if value is None:
            return None  # type: ignore[return-value]
        value = self._as_date(value)
        if value is None:  # an optional variant parsed an empty string
            return None  # type: ignore[return-value]
        offset = (value - self.start).days % self.interval
        return value - datetime.timedelta(days=offset)


class OptionalDateParameter(OptionalParameterMixin[datetime.date], DateParameter):  # type: ignore[misc]
    """A :class:`DateParameter` that may be ``None`` (an empty string on the command line)."""

    expected_type = datetime.date


class MonthParameter(DateParameter):
    """A ``datetime.date`` on the first of a month, written ``YYYY-MM``; ``interval`` counts months.

    Also accepts a :class:`trun.date_interval.Month` (or any date) and keeps its month.
    """

    date_format = "%Y-%m"
    expected_form = "a month YYYY-MM"

    def next_in_enumeration(self, value: datetime.date) -> datetime.date:
        return _add_months(value, self.interval)

    def normalize(self, value: Any) -> datetime.date:
        if value is None:
            return None  # type: ignore[return-value]
        value = self._as_date(value)
        if value is None:  # an optional variant parsed an empty string
            return None  # type: ignore[return-value]
        months_since_start = (value.year - self.start.year) * 12 + (value.month - self.start.month)
        months_since_start -= months_since_start % self.interval
        return _add_months(self.start, months_since_start)


class YearParameter(DateParameter):
    """A ``datetime.date`` on January 1st, written ``YYYY``; ``interval`` counts years.

    Also accepts a :class:`trun.date_interval.Year` (or any date) and keeps its year.
    """

    date_format = "%Y"
    expected_form = "a year YYYY"

    def next_in_enumeration(self, value: datetime.date) -> datetime.date:
        return value.replace(year=value.year + self.interval)

    def normalize(self, value: Any) -> datetime.date:
        if value is None:
            return None  # type: ignore[return-value]
        value = self._as_date(value)
        if value is None:  # an optional variant parsed an empty string
            return None  # type: ignore[return-value]
        offset = (value.year - self.start.year) % self.interval
        return datetime.date(year=value.year - offset, month=1, day=1)


class _DatetimeParameterBase(Parameter[datetime.datetime]):
    """Shared parts of the parameters whose value is a ``datetime.datetime``."""

    date_format: str = "%Y-%m-%dT%H"
    _timedelta: datetime.timedelta = datetime.timedelta(hours=1)

    def __init__(self, interval: int = 1, start: datetime.datetime | None = None, **kwargs: Any) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ParameterException(
                f"{type(self).__name__} interval must be a positive integer, got {interval!r}"
                + (" (the first positional argument is interval; did you mean default=...?)"
                   if isinstance(interval, datetime.date) else ""))
        super().__init__(**kwargs)
        self.interval = interval
        self.start = start if start is not None else _UNIX_EPOCH

    def parse(self, s: Any) -> datetime.datetime:
        if isinstance(s, datetime.datetime):
            return s
        if isinstance(s, datetime.date):
            return datetime.datetime.combine(s, datetime.time.min)
        try:
            return datetime.datetime.strptime(s, self.date_format)
        except (ValueError, TypeError):
            raise self._parse_error(s) from None

    def serialize(self, dt: Any) -> str:
        if dt is None:
            return str(dt)
        return dt.strftime(self.date_format)

    def next_in_enumeration(self, value: datetime.datetime) -> datetime.datetime:
        return value + self._timedelta * self.interval

    def normalize(self, dt: Any) -> datetime.datetime:
        if dt is None:
            return None  # type: ignore[return-value]
        if isinstance(dt, str):  # from the constructor; Luigi would fail on it with a TypeError
            dt = self.parse(dt)
            if dt is None:  # an optional variant parsed an empty string
                return None  # type: ignore[return-value]
        if not isinstance(dt, datetime.datetime):
            dt = datetime.datetime.combine(dt, datetime.time.min)
        # Microseconds would make the float arithmetic below inexact.
        dt = dt.replace(microsecond=0)
        start = self.start
        if dt.tzinfo is not None and start.tzinfo is None:
            start = start.replace(tzinfo=dt.tzinfo)
        elapsed = (dt - start).total_seconds()
        granularity = (self._timedelta * self.interval).total_seconds()
        return dt - datetime.timedelta(seconds=elapsed % granularity)


class DateHourParameter(_DatetimeParameterBase):
    """A ``datetime.datetime`` to the hour, written ``YYYY-MM-DDTHH`` (ISO 8601), e.g. ``2024-02-13T19``."""

    date_format = "%Y-%m-%dT%H"
    _timedelta = datetime.timedelta(hours=1)
    expected_form = "a date and hour YYYY-MM-DDTHH"


class DateMinuteParameter(_DatetimeParameterBase):
    """A ``datetime.datetime`` to the minute, written ``YYYY-MM-DDTHHMM``, e.g. ``2024-02-13T1930``.

    The old form ``YYYY-MM-DDTHHHMM`` (an ``H`` between hours and minutes) is still read, with a warning.
    """

    date_format = "%Y-%m-%dT%H%M"
    deprecated_date_format = "%Y-%m-%dT%HH%M"
    _timedelta = datetime.timedelta(minutes=1)
    expected_form = "a date and time YYYY-MM-DDTHHMM"

    def parse(self, s: Any) -> datetime.datetime:
        try:
            return super().parse(s)
        except ParameterParseError:
            try:
                value = datetime.datetime.strptime(s, self.deprecated_date_format)
            except (ValueError, TypeError):
                raise self._parse_error(s) from None
            warnings.warn('Using "H" between hours and minutes is deprecated, omit it instead.',
                          DeprecationWarning, stacklevel=2)
            return value


class DateSecondParameter(_DatetimeParameterBase):
    """A ``datetime.datetime`` to the second, written ``YYYY-MM-DDTHHMMSS``, e.g. ``2024-02-13T193045``."""

    date_format = "%Y-%m-%dT%H%M%S"
    _timedelta = datetime.timedelta(seconds=1)
    expected_form = "a date and time YYYY-MM-DDTHHMMSS"


class DateIntervalParameter(Parameter[DateInterval]):
    """A :class:`trun.date_interval.DateInterval`.

    Written as a year ``2024``, a month ``2024-02``, an ISO week ``2024-W07``,
    a day ``2024-02-13`` or a range ``2024-02-01-2024-02-15`` (end excluded).
    """

    expected_form = "a date interval: YYYY, YYYY-MM, YYYY-Www, YYYY-MM-DD or YYYY-MM-DD-YYYY-MM-DD"

    def parse(self, s: Any) -> DateInterval:
        from trun import date_interval

        if isinstance(s, DateInterval):
            return s
        if isinstance(s, str):
            for interval_class in (date_interval.Year, date_interval.Month, date_interval.Week,
                                   date_interval.Date, date_interval.Custom):
                try:
                    interval = interval_class.parse(s)
                except ValueError as exc:  # right form, impossible date (e.g. 2024-02-30)
                    raise self._parse_error(s, detail=str(exc)) from None
                if interval:
                    return interval
        raise self._parse_error(s)


class TimeDeltaParameter(Parameter[datetime.timedelta]):
    """A ``datetime.timedelta``.

    Written as a number of seconds (``90``, ``1.5``), as ISO 8601
    (``P2W``, ``P1DT2H30M``), or as ``"1 w 2 d 3 h 4 m 5 s"`` where each part is
    optional, units may be spelt out (``2 days 3 hours``) and must come in that
    order. Serialized in the last form.
    """

    expected_form = "a time delta: seconds (90), ISO 8601 (P1DT2H30M) or '1 w 2 d 3 h 4 m 5 s'"

    _ISO_8601 = re.compile(
        r"P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?"
        r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?)")
    _SIMPLE = re.compile("".join(
        rf"(?:(?P<{unit}>\d+) ?{unit[0]}(?:{unit[1:-1]})?s? ?)?"
        for unit in ("weeks", "days", "hours", "minutes", "seconds")))

    @staticmethod
    def _apply_regex(regex: re.Pattern[str], text: str) -> datetime.timedelta | None:
        match = regex.fullmatch(text)
        if not match or not any(match.groups()):
            return None
        return datetime.timedelta(**{unit: int(amount) for unit, amount in match.groupdict().items() if amount})

    def parse(self, input: Any) -> datetime.timedelta:
        if isinstance(input, datetime.timedelta):
            return input
        if isinstance(input, (int, float)) and not isinstance(input, bool):
            return datetime.timedelta(seconds=input)
        if not isinstance(input, str):
            raise self._parse_error(input)
        try:
            return datetime.timedelta(seconds=float(input))
        except (ValueError, OverflowError):
            pass
        text = input.strip()
        result = self._apply_regex(self._ISO_8601, text) or self._apply_regex(self._SIMPLE, text)
        if result is None:
            raise self._parse_error(input)
        return result

    def normalize(self, x: Any) -> datetime.timedelta:
        # A number or string from the constructor reads as on the command line
        # (Luigi would fail on it later, in serialize()).
        if isinstance(x, (int, float, str)) and not isinstance(x, bool):
            return self.parse(x)
        return x

    def serialize(self, x: datetime.timedelta) -> str:
        weeks, days = divmod(x.days, 7)
        hours, remainder = divmod(x.seconds, 3600)
        minutes, seconds = divmod(remainder, 60)
        return f"{weeks} w {days} d {hours} h {minutes} m {seconds} s"

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if type(self) is not TimeDeltaParameter:
            return
        if not isinstance(param_value, datetime.timedelta):
            warnings.warn(f'Parameter "{param_name}" with value "{param_value}" is not of type timedelta.',
                          stacklevel=3)


# --------------------------------------------------------------------------- steps


class StepParameter(Parameter["type[Step]"]):
    """A step class, written as its family name (``--upstream my_ns.Load``).

    Lets a step be told at run time which other step to require::

        class Report(trun.Step):
            upstream = trun.StepParameter()

            def requires(self):
                return self.upstream()
    """

    expected_form = "the family name of a registered step"

    def parse(self, input: Any) -> type[Step]:
        if isinstance(input, type):
            return input
        from trun.step_register import Register, StepClassAmbigiousException, StepClassNotFoundException

        try:
            return Register.get_step_cls(input)
        except (StepClassNotFoundException, StepClassAmbigiousException) as exc:
            raise self._parse_error(input, detail=str(exc)) from None

    def serialize(self, cls: type[Step]) -> str:
        return cls.get_step_family()


# --------------------------------------------------------------------------- JSON structures


class _FrozenJSONEncoder(json.JSONEncoder):
    """Writes :class:`FrozenOrderedDict` like a ``dict``, keeping its order."""

    def default(self, o: Any) -> Any:
        if isinstance(o, FrozenOrderedDict):
            return o.get_wrapped()
        return super().default(o)


class _SchemaMixin:
    """Optional JSON-schema validation for dict and list parameters."""

    def _init_schema(self, schema: Any) -> None:
        if isinstance(schema, Mapping):
            try:
                import jsonschema  # type: ignore[import-untyped]  # noqa: F401
            except ImportError:
                raise ParameterException(
                    f"{type(self).__name__}(schema=...) validates with the jsonschema package, which is not "
                    "installed: pip install jsonschema (or pip install trun[jsonschema])") from None
        elif schema is not None and not callable(getattr(schema, "validate", None)):
            raise ParameterException(
                f"{type(self).__name__} schema must be a JSON-schema dict or a validator object with "
                f".validate(instance), got {schema!r}")
        self.schema = schema

    def _validate_and_freeze(self, value: Any) -> Any:
        if self.schema is not None:
            unfrozen = recursively_unfreeze(value)
            if isinstance(self.schema, Mapping):
                import jsonschema  # type: ignore[import-untyped]

                jsonschema.validate(instance=unfrozen, schema=self.schema)
            else:
                self.schema.validate(unfrozen)
                value = unfrozen  # a validator may fill in defaults in place
        return recursively_freeze(value)


class DictParameter(_SchemaMixin, Parameter[Mapping[Any, Any]]):
    """A mapping, written as a JSON object, stored as an immutable, hashable, ordered
    :class:`~trun.freezing.FrozenOrderedDict` (nested lists become tuples).

    On the command line: ``--tags '{"role": "web", "env": "prod"}'``. With
    ``schema=`` (a JSON-schema dict, needs ``jsonschema``, or any object with a
    ``validate(instance)`` method) every value is validated.
    """

    expected_form = "a JSON object"

    def __init__(self, *args: Any, schema: Any = None, **kwargs: Any) -> None:
        self._init_schema(schema)
        super().__init__(*args, **kwargs)

    def normalize(self, value: Any) -> Mapping[Any, Any]:
        return self._validate_and_freeze(value)

    def parse(self, source: Any) -> Mapping[Any, Any]:
        # TOML configuration already gives Python values.
        if not isinstance(source, str):
            return source
        try:
            value = json.loads(source, object_pairs_hook=FrozenOrderedDict)
        except ValueError as exc:
            raise self._parse_error(source, detail=f"invalid JSON: {exc}") from None
        if not isinstance(value, Mapping):
            raise self._parse_error(source, detail=f"JSON {type(value).__name__} is not an object")
        return recursively_freeze(value)

    def serialize(self, x: Any) -> str:
        return json.dumps(x, cls=_FrozenJSONEncoder)


class OptionalDictParameter(OptionalParameterMixin[Mapping[Any, Any]], DictParameter):  # type: ignore[misc]
    """A :class:`DictParameter` that may be ``None`` (an empty string on the command line)."""

    expected_type = FrozenOrderedDict


class ListParameter(_SchemaMixin, Parameter[tuple[Any, ...]]):
    """A list, written as a JSON array (``--ids '[1, 2, 3]'``), stored as a tuple (recursively frozen).

    ``schema=`` works as for :class:`DictParameter`.
    """

    expected_form = "a JSON list"

    def __init__(self, *args: Any, schema: Any = None, **kwargs: Any) -> None:
        self._init_schema(schema)
        super().__init__(*args, **kwargs)

    def normalize(self, x: Any) -> tuple[Any, ...]:
        return self._validate_and_freeze(x)

    def parse(self, x: Any) -> tuple[Any, ...]:
        if not isinstance(x, str):
            return x
        try:
            value = json.loads(x, object_pairs_hook=FrozenOrderedDict)
        except ValueError as exc:
            raise self._parse_error(x, detail=f"invalid JSON: {exc}") from None
        if value is None:
            return None  # type: ignore[return-value]
        if not isinstance(value, list):
            raise self._parse_error(x, detail=f"JSON {type(value).__name__} is not a list")
        return recursively_freeze(value)

    def serialize(self, x: Any) -> str:
        return json.dumps(x, cls=_FrozenJSONEncoder)


class OptionalListParameter(OptionalParameterMixin[tuple[Any, ...]], ListParameter):  # type: ignore[misc]
    """A :class:`ListParameter` that may be ``None`` (an empty string on the command line)."""

    expected_type = tuple


class TupleParameter(ListParameter):
    """A tuple (of tuples), written as a JSON array (``[[1, 2], [3, 4]]``) or a Python
    tuple literal (``((1, 2), (3, 4))``); nested lists become tuples.
    """

    expected_form = "a JSON list or a Python tuple literal"

    def parse(self, x: Any) -> tuple[Any, ...]:
        if not isinstance(x, str):
            return x
        try:
            value = json.loads(x, object_pairs_hook=FrozenOrderedDict)
        except ValueError:
            value = _no_value
        if not isinstance(value, list):
            from ast import literal_eval

            try:
                value = literal_eval(x)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise self._parse_error(x) from None
            if not isinstance(value, (list, tuple)):
                # A bare string would otherwise become a tuple of its characters.
                raise self._parse_error(x, detail=f"a {type(value).__name__} is not a tuple")
        return recursively_freeze(value)


class OptionalTupleParameter(OptionalParameterMixin[tuple[Any, ...]], TupleParameter):  # type: ignore[misc]
    """A :class:`TupleParameter` that may be ``None`` (an empty string on the command line)."""

    expected_type = tuple


# --------------------------------------------------------------------------- paths


class PathParameter(Parameter[Path]):
    """A ``pathlib.Path``.

    :param absolute: make the path absolute (relative to the working directory).
    :param exists: require the path to exist (checked whenever a value is set).
    """

    expected_form = "a path"

    def __init__(self, *args: Any, absolute: bool = False, exists: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.absolute = absolute
        self.exists = exists

    def normalize(self, x: Any) -> Path:
        path = Path(x)
        if self.absolute:
            path = path.absolute()
        if self.exists and not path.exists():
            raise ValueError(f"The path {path} does not exist.")
        return path


class OptionalPathParameter(OptionalParameterMixin[Path], PathParameter):  # type: ignore[misc]
    """A :class:`PathParameter` that may be ``None`` (an empty string on the command line)."""

    expected_type = Path
