"""Range steps: keep a recurring step complete over a window of days, hours, minutes or months.

A pipeline usually has one step per day (or hour) of data. A range step
requires the instances of that step which are *missing* in a window, so a
crontab line like::

    trun --module my_steps RangeDaily --of Aggregate --start 2026-01-01

fills every gap since 2026-01-01 (up to ``days_back`` days ago) and then, each
day, the newest day. ``start`` is inclusive, ``stop`` exclusive; at least one of
them is needed. The window never reaches further back than ``*_back`` nor
further forward than ``*_forward`` from now (``now`` overrides the clock, in
seconds since the epoch, read as UTC).

Classes: :class:`RangeDaily`, :class:`RangeHourly`, :class:`RangeByMinutes`
find missing instances quickly — with the ``of`` class's ``bulk_complete()``
when it has one, else by listing the file system its outputs live on;
:class:`RangeDailyBase`, :class:`RangeHourlyBase`, :class:`RangeByMinutesBase`
and :class:`RangeMonthly` check instance by instance. :class:`RangeBase` is the
common parent for new kinds of ranges. They fire :class:`RangeEvent` events.

Hazards:

* Gaps that never fill (an upstream input that never arrives) are required
  again on every run, oldest first, and can hold back newer instances;
  ``step_limit`` caps how many are required at once and ``reverse=True``
  works newest first.
* ``requires()`` is computed once per range instance and kept. Step instances
  are cached per process too, so a long-lived process that builds the same
  range twice gets the first answer unless it clears the instance cache.
* Completeness inferred from the file system assumes the step is complete
  exactly when its outputs exist. A step that overrides ``complete()`` is
  checked instance by instance instead (Luigi would list the file system
  anyway), and so is one whose outputs are not files (Luigi raised
  ``NotImplementedError``): correct, but one ``complete()`` per instance.
"""
from __future__ import annotations

import inspect
import logging
import os
import re
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from dateutil.relativedelta import relativedelta

from trun.event import Event
from trun.parameter import (
    BoolParameter,
    DateHourParameter,
    DateMinuteParameter,
    DateParameter,
    DictParameter,
    IntParameter,
    MonthParameter,
    OptionalParameter,
    Parameter,
    ParameterException,
    StepParameter,
)
from trun.step import Step, WrapperStep, flatten_output
from trun.target import FileSystem, FileSystemTarget

__all__ = [
    "RangeEvent", "RangeBase", "RangeDailyBase", "RangeHourlyBase", "RangeByMinutesBase",
    "RangeMonthly", "RangeDaily", "RangeHourly", "RangeByMinutes",
    "infer_bulk_complete_from_fs", "most_common",
]

logger = logging.getLogger("trun-interface")

_T = TypeVar("_T")


class RangeEvent(Event):
    """Events a range step fires each time it works out what is missing; handlers get ``(of_family, value)``.

    * ``COMPLETE_COUNT``: how many instances in the window are complete; grows
      run over run as a backfill progresses.
    * ``COMPLETE_FRACTION``: that count over the number expected (1.0 for an
      empty window); reaching 1 marks the end of a backfill with start and stop.
    * ``DELAY``: how many instances there are from the oldest missing one to
      the end of the window (0 when nothing is missing).

    When ``start`` or ``stop`` lie outside the ``*_back``/``*_forward`` window,
    the counts cover the union of both.
    """

    COMPLETE_COUNT = "event.tools.range.complete.count"
    COMPLETE_FRACTION = "event.tools.range.complete.fraction"
    DELAY = "event.tools.range.delay"


class _OfStepParameter(StepParameter):
    """The ``of`` parameter: a step class, also accepted as its family name in Python code."""

    def normalize(self, x: Any) -> Any:
        # Luigi only resolved names on the command line; resolving them here too
        # lets RangeDaily(of="MyStep") compute its step id instead of failing.
        if isinstance(x, str):
            return self.parse(x)
        return x


def _utc_from_epoch(seconds: float) -> datetime:
    """A naive datetime in UTC, as the window arithmetic uses."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def _count_on_grid(first_point: datetime, spacing: timedelta, stop: datetime) -> int:
    """How many of ``first_point + k*spacing`` (k >= 0) lie before ``stop``."""
    if first_point >= stop:
        return 0
    return -((first_point - stop) // spacing)  # ceiling division of (stop - first_point) by spacing


class _StepClassWithParams:
    """Stands in for the ``of`` class when its ``bulk_complete`` is called.

    Calling it with one positional value builds the step with ``of_params`` and
    that value as the ranged parameter (``param_name``, or the first positional
    one); any other call goes to the class with ``of_params`` added. Attribute
    reads reach the class, so ``bulk_complete`` can use its other class methods.
    """

    def __init__(self, step_cls: type[Step], of_params: dict[str, Any], param_name: str) -> None:
        self._step_cls = step_cls
        self._of_params = of_params
        self._param_name = param_name

    def __call__(self, *args: Any, **kwargs: Any) -> Step:
        if len(args) == 1 and not kwargs:
            return self._step_cls(**{**self._of_params, self._param_name: args[0]})
        return self._step_cls(*args, **{**self._of_params, **kwargs})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._step_cls, name)

    def __repr__(self) -> str:
        return f"{self._step_cls.get_step_family()} with {self._of_params!r}"


class RangeBase(WrapperStep):
    """Requires the missing instances of a recurring step ``of`` between ``start`` and ``stop``.

    The ``of`` step takes one date-like parameter (``param_name``, by default
    its first positional parameter) and any others given in ``of_params``.
    Subclasses fix the kind of date (``DateParameter``, ``DateHourParameter``…)
    and the spacing, by providing :meth:`datetime_to_parameter`,
    :meth:`parameter_to_datetime`, :meth:`moving_start`, :meth:`moving_stop`
    and :meth:`finite_datetimes`; they may override :meth:`missing_datetimes`
    with a faster completeness check.

    :raises ParameterException: from :meth:`requires` when neither start nor
        stop is given, when start is missing without ``reverse``, or when
        start is after stop.
    """

    of = _OfStepParameter(
        description="The recurring step to complete, e.g. --of MyDailyStep. It takes one "
                    "date-like parameter (see --param-name); of_params gives the others")
    of_params = DictParameter(
        default=dict(),
        description="Other parameters of each 'of' instance, as a JSON object, e.g. '{\"region\": \"eu\"}'")
    # start and stop have a type that depends on the subclass; see the overrides.
    start = Parameter()
    stop = Parameter()
    reverse = BoolParameter(
        default=False,
        description="Order in which missing instances are required: oldest first (default), "
                    "or newest first with --reverse")
    step_limit = IntParameter(
        default=50,
        description="Most instances of 'of' to require in one go; guards against scheduling "
                    "a whole history at once")
    now = IntParameter(
        default=None,
        description="The current time, in seconds since the epoch (UTC); defaults to the clock")
    param_name = OptionalParameter(
        default=None, positional=False,
        description="Parameter of 'of' that receives each date; defaults to its first positional parameter")

    # -- the datetime arithmetic that subclasses provide --------------------

    def datetime_to_parameter(self, dt: datetime) -> Any:
        """The value of the ranged parameter for the point in time ``dt``."""
        raise NotImplementedError

    def parameter_to_datetime(self, p: Any) -> datetime:
        """The point in time of a value of the ranged parameter (the inverse of :meth:`datetime_to_parameter`)."""
        raise NotImplementedError

    def datetime_to_parameters(self, dt: datetime) -> dict[str, Any]:
        """All constructor arguments of the ``of`` instance for ``dt``: ``of_params`` plus the ranged parameter."""
        raise NotImplementedError

    def parameters_to_datetime(self, p: dict[str, Any]) -> datetime:
        """The point in time in a dict of constructor arguments (the inverse of :meth:`datetime_to_parameters`)."""
        raise NotImplementedError

    def moving_start(self, now: datetime) -> datetime:
        """The earliest point of the window when ``start`` is absent or further back."""
        raise NotImplementedError

    def moving_stop(self, now: datetime) -> datetime:
        """The end (exclusive) of the window when ``stop`` is absent or further forward."""
        raise NotImplementedError

    def finite_datetimes(self, finite_start: datetime, finite_stop: datetime) -> list[datetime]:
        """The sorted points in time in ``[finite_start, finite_stop)`` whose instances should be complete."""
        raise NotImplementedError

    def _count_datetimes(self, finite_start: datetime, finite_stop: datetime) -> int:
        """``len(self.finite_datetimes(finite_start, finite_stop))``; regular spacings count without listing."""
        return len(self.finite_datetimes(finite_start, finite_stop))

    # -- the 'of' class ------------------------------------------------------

    @property
    def of_cls(self) -> type[Step]:
        """The ``of`` step class (a family name given in code is looked up in the registry)."""
        if isinstance(self.of, str):
            return StepParameter().parse(self.of)
        return self.of

    @property
    def _param_name(self) -> str:
        # Looked up for every instance built; worked out once.
        resolved = self.__dict__.get("_resolved_param_name")
        if resolved is None:
            resolved = self.__dict__["_resolved_param_name"] = self._find_param_name()
        return resolved

    def _find_param_name(self) -> str:
        of_cls = self.of_cls
        param_names = [name for name, _ in of_cls.get_params()]
        if self.param_name is not None:
            if self.param_name not in param_names:
                raise ParameterException(
                    f"{self.get_step_family()}: param_name={self.param_name!r} is not a parameter of "
                    f"{of_cls.get_step_family()}, whose parameters are: {', '.join(param_names) or 'none'}")
            return self.param_name
        for name, param_obj in of_cls.get_params():
            if param_obj.positional:
                return name
        raise ParameterException(
            f"{self.get_step_family()}: {of_cls.get_step_family()} has no positional parameter to take the "
            f"date; name the one to use with param_name (--param-name)")

    def _step_parameters(self, param: Any) -> dict[str, Any]:
        kwargs = dict(self.of_params)
        kwargs[self._param_name] = param
        return kwargs

    def _instantiate_step_cls(self, param: Any) -> Step:
        return self.of_cls(**self._step_parameters(param))

    # -- formatting for log lines ---------------------------------------------

    def _format_datetime(self, dt: datetime) -> str:
        return str(self.datetime_to_parameter(dt))

    def _format_range(self, datetimes: Sequence[datetime]) -> str:
        return "[%s, %s]" % (self._format_datetime(datetimes[0]), self._format_datetime(datetimes[-1]))

    # -- working out what is missing ------------------------------------------

    def _check_start_and_stop(self) -> None:
        family = self.get_step_family()
        if self.start is None and self.stop is None:
            raise ParameterException(
                f"{family}: at least one of start and stop needs to be specified, e.g. --start or start=...")
        if self.start is None and not self.reverse:
            raise ParameterException(
                f"{family}: without start, reverse needs to be True (--reverse), so that the range works "
                f"backward from stop; or give start")
        if self.start is not None and self.stop is not None and self.start > self.stop:
            raise ParameterException(
                f"{family}: start ({self.start}) is after stop ({self.stop}); start is inclusive and stop "
                f"exclusive, so start must not be later than stop")
        if self.step_limit < 0:
            raise ParameterException(
                f"{family}: step_limit must be 0 or more, got {self.step_limit}")

    def _now(self) -> datetime:
        return _utc_from_epoch(time.time() if self.now is None else self.now)

    def requires(self) -> list[Step]:
        """The missing instances of ``of`` in the window, at most ``step_limit``; computed once and kept."""
        cached = self.__dict__.get("_cached_requires")
        if cached is not None:
            return cached

        self._check_start_and_stop()
        of_family = self.of_cls.get_step_family()
        now = self._now()
        moving_start = self.moving_start(now)
        finite_start = (moving_start if self.start is None
                        else max(self.parameter_to_datetime(self.start), moving_start))
        moving_stop = self.moving_stop(now)
        finite_stop = (moving_stop if self.stop is None
                       else min(self.parameter_to_datetime(self.stop), moving_stop))

        datetimes = self.finite_datetimes(finite_start, finite_stop) if finite_start <= finite_stop else []
        if datetimes:
            logger.debug("Actually checking if range %s of %s is complete", self._format_range(datetimes), of_family)
            missing_datetimes = sorted(self._missing_datetimes(datetimes))
            logger.debug("Range %s lacked %d of expected %d %s instances",
                         self._format_range(datetimes), len(missing_datetimes), len(datetimes), of_family)
        else:
            missing_datetimes = []
            logger.debug("Empty range. No %s instances expected", of_family)

        self._emit_metrics(missing_datetimes, finite_start, finite_stop)

        limit = self.step_limit
        if limit == 0:
            required_datetimes: list[datetime] = []
        elif self.reverse:
            required_datetimes = missing_datetimes[-limit:]
            required_datetimes.reverse()
        else:
            required_datetimes = missing_datetimes[:limit]
        if required_datetimes:
            logger.debug("Requiring %d missing %s instances in range %s", len(required_datetimes), of_family,
                         self._format_range(sorted(required_datetimes)))

        required = [self._instantiate_step_cls(self.datetime_to_parameter(d)) for d in required_datetimes]
        self._cached_requires = required
        return required

    def _emit_metrics(self, missing_datetimes: Sequence[datetime], finite_start: datetime,
                      finite_stop: datetime) -> None:
        # An open range (no start or no stop) has no finite size; the counts cover
        # the window, widened to start/stop when those lie outside it.
        metric_start = finite_start if self.start is None else min(finite_start,
                                                                   self.parameter_to_datetime(self.start))
        metric_stop = finite_stop if self.stop is None else max(finite_stop, self.parameter_to_datetime(self.stop))
        expected_count = self._count_datetimes(metric_start, metric_stop)
        if missing_datetimes and expected_count:
            delay = self._count_datetimes(max(missing_datetimes[0], metric_start), metric_stop)
        else:
            delay = 0
        complete_count = expected_count - len(missing_datetimes)
        of_family = self.of_cls.get_step_family()
        self.trigger_event(RangeEvent.DELAY, of_family, delay)
        self.trigger_event(RangeEvent.COMPLETE_COUNT, of_family, complete_count)
        self.trigger_event(RangeEvent.COMPLETE_FRACTION, of_family,
                           float(complete_count) / expected_count if expected_count else 1)

    def missing_datetimes(self, finite_datetimes: list[datetime]) -> list[datetime]:
        """Those of ``finite_datetimes`` whose ``of`` instance is not complete, sorted.

        This base version calls ``complete()`` on every instance; subclasses
        override it with a bulk check.
        """
        return [d for d in finite_datetimes
                if not self._instantiate_step_cls(self.datetime_to_parameter(d)).complete()]

    def _missing_datetimes(self, finite_datetimes: list[datetime]) -> Iterable[datetime]:
        method = self.missing_datetimes
        if _takes_legacy_arguments(method):
            warnings.warn(f"{type(self).__name__}.missing_datetimes(of_cls, finite_datetimes) takes the old "
                          f"arguments; define missing_datetimes(self, finite_datetimes) and use self.of_cls",
                          DeprecationWarning, stacklevel=3)
            return method(self.of_cls, finite_datetimes)  # type: ignore[call-arg]
        return method(finite_datetimes)

    # -- the fast paths of RangeDaily, RangeHourly and RangeByMinutes ---------

    def _bulk_complete_missing(self, finite_datetimes: list[datetime]) -> list[datetime]:
        """Missing datetimes according to the ``of`` class's ``bulk_complete``.

        :raises NotImplementedError: if the class has no ``bulk_complete``.
        """
        of_cls = self.of_cls
        parameters = [self.datetime_to_parameter(d) for d in finite_datetimes]
        bulk_complete = of_cls.bulk_complete
        function = getattr(bulk_complete, "__func__", None)
        if function is not None and getattr(bulk_complete, "__self__", None) is of_cls:
            # A classmethod: call it with a stand-in class that adds of_params.
            stand_in = _StepClassWithParams(of_cls, dict(self.of_params), self._param_name)
            complete_parameters = function(stand_in, parameters)
        else:
            complete_parameters = bulk_complete(parameters)
        complete = {self.parameter_to_datetime(p) for p in complete_parameters}
        return [d for d in finite_datetimes if d not in complete]

    def _fast_missing_datetimes(self, finite_datetimes: list[datetime], datetime_regex: str) -> list[datetime]:
        """``bulk_complete``, else a file-system listing, else instance by instance."""
        try:
            return self._bulk_complete_missing(finite_datetimes)
        except NotImplementedError:
            pass
        of_cls = self.of_cls
        if _overrides_complete(of_cls):
            logger.debug("%s overrides complete(); checking its instances one by one", of_cls.get_step_family())
            return RangeBase.missing_datetimes(self, finite_datetimes)
        try:
            return infer_bulk_complete_from_fs(
                finite_datetimes,
                lambda d: self._instantiate_step_cls(self.datetime_to_parameter(d)),
                lambda d: d.strftime(datetime_regex))
        except NotImplementedError as exc:
            logger.info("Cannot infer which %s instances are complete from a file listing (%s); "
                        "checking them one by one. Implement %s.bulk_complete() to make this faster.",
                        of_cls.get_step_family(), exc, of_cls.get_step_family())
            return RangeBase.missing_datetimes(self, finite_datetimes)


def _takes_legacy_arguments(method: Callable[..., Any]) -> bool:
    """Whether a bound ``missing_datetimes`` wants ``(of_cls, finite_datetimes)`` rather than one argument."""
    try:
        parameters = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 and positional[1].default is inspect.Parameter.empty


def _overrides_complete(step_cls: type[Step]) -> bool:
    """Whether completeness of ``step_cls`` is more than "all outputs exist"."""
    return step_cls.complete not in (Step.complete, WrapperStep.complete)


def _regular_grid(finite_start: datetime, finite_stop: datetime, first_point: datetime,
                  spacing: timedelta) -> list[datetime]:
    """``first_point + k*spacing`` for every k >= 0 with the point in ``[finite_start, finite_stop)``."""
    if first_point < finite_start:
        first_point += spacing * -((first_point - finite_start) // spacing)
    return [first_point + spacing * k for k in range(_count_on_grid(first_point, spacing, finite_stop))]


class RangeDailyBase(RangeBase):
    """Requires the missing instances of a daily step in a window; checks them one by one.

    See :class:`RangeDaily` for the faster variant.
    """

    start = DateParameter(
        default=None,
        description="First date, inclusive. Default: none, work backward without end (needs --reverse)")
    stop = DateParameter(
        default=None,
        description="Last date, exclusive. Default: none, work forward without end")
    days_back = IntParameter(
        default=100,
        description="How many days back from now the range reaches (the window when start is further back "
                    "or absent). Keep it within the data's retention, so that removed old outputs do not "
                    "come back")
    days_forward = IntParameter(
        default=0,
        description="How many days forward from now the range reaches (when stop is further or absent)")

    def datetime_to_parameter(self, dt: datetime) -> date:
        return dt.date()

    def parameter_to_datetime(self, p: date) -> datetime:
        return datetime(p.year, p.month, p.day)

    def datetime_to_parameters(self, dt: datetime) -> dict[str, Any]:
        return self._step_parameters(dt.date())

    def parameters_to_datetime(self, p: dict[str, Any]) -> datetime:
        dt = p[self._param_name]
        return datetime(dt.year, dt.month, dt.day)

    def moving_start(self, now: datetime) -> datetime:
        return now - timedelta(days=self.days_back)

    def moving_stop(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days_forward)

    def finite_datetimes(self, finite_start: datetime, finite_stop: datetime) -> list[datetime]:
        """Each midnight in ``[finite_start, finite_stop)``."""
        return _regular_grid(finite_start, finite_stop, self._floor(finite_start), timedelta(days=1))

    @staticmethod
    def _floor(dt: datetime) -> datetime:
        return datetime(dt.year, dt.month, dt.day)

    def _count_datetimes(self, finite_start: datetime, finite_stop: datetime) -> int:
        if type(self).finite_datetimes is not RangeDailyBase.finite_datetimes:
            return super()._count_datetimes(finite_start, finite_stop)
        first = self._floor(finite_start)
        if first < finite_start:
            first += timedelta(days=1)
        return _count_on_grid(first, timedelta(days=1), finite_stop)


class RangeHourlyBase(RangeBase):
    """Requires the missing instances of an hourly step in a window; checks them one by one.

    See :class:`RangeHourly` for the faster variant.
    """

    start = DateHourParameter(
        default=None,
        description="First date and hour, inclusive. Default: none, work backward without end (needs --reverse)")
    stop = DateHourParameter(
        default=None,
        description="Last date and hour, exclusive. Default: none, work forward without end")
    hours_back = IntParameter(
        default=100 * 24,
        description="How many hours back from now the range reaches (the window when start is further back "
                    "or absent). Keep it within the data's retention, so that removed old outputs do not "
                    "come back")
    hours_forward = IntParameter(
        default=0,
        description="How many hours forward from now the range reaches (when stop is further or absent)")

    def datetime_to_parameter(self, dt: datetime) -> datetime:
        return dt

    def parameter_to_datetime(self, p: datetime) -> datetime:
        return p

    def datetime_to_parameters(self, dt: datetime) -> dict[str, Any]:
        return self._step_parameters(dt)

    def parameters_to_datetime(self, p: dict[str, Any]) -> datetime:
        return p[self._param_name]

    def moving_start(self, now: datetime) -> datetime:
        return now - timedelta(hours=self.hours_back)

    def moving_stop(self, now: datetime) -> datetime:
        return now + timedelta(hours=self.hours_forward)

    @staticmethod
    def _floor(dt: datetime) -> datetime:
        return datetime(dt.year, dt.month, dt.day, dt.hour)

    def finite_datetimes(self, finite_start: datetime, finite_stop: datetime) -> list[datetime]:
        """Each whole hour in ``[finite_start, finite_stop)``."""
        return _regular_grid(finite_start, finite_stop, self._floor(finite_start), timedelta(hours=1))

    def _count_datetimes(self, finite_start: datetime, finite_stop: datetime) -> int:
        if type(self).finite_datetimes is not RangeHourlyBase.finite_datetimes:
            return super()._count_datetimes(finite_start, finite_stop)
        first = self._floor(finite_start)
        if first < finite_start:
            first += timedelta(hours=1)
        return _count_on_grid(first, timedelta(hours=1), finite_stop)

    def _format_datetime(self, dt: datetime) -> str:
        return DateHourParameter().serialize(dt)


class RangeByMinutesBase(RangeBase):
    """Requires the missing instances of a step recurring every ``minutes_interval`` minutes; checks them one by one.

    See :class:`RangeByMinutes` for the faster variant.
    """

    start = DateMinuteParameter(
        default=None,
        description="First date, hour and minute, inclusive. Default: none, work backward without end "
                    "(needs --reverse)")
    stop = DateMinuteParameter(
        default=None,
        description="Last date, hour and minute, exclusive. Default: none, work forward without end")
    minutes_back = IntParameter(
        default=60 * 24,
        description="How many minutes back from now the range reaches (the window when start is further "
                    "back or absent). Keep it within the data's retention, so that removed old outputs do "
                    "not come back")
    minutes_forward = IntParameter(
        default=0,
        description="How many minutes forward from now the range reaches (when stop is further or absent)")
    minutes_interval = IntParameter(
        default=1,
        description="Minutes between two instances; must divide 60 evenly (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)")

    def datetime_to_parameter(self, dt: datetime) -> datetime:
        return dt

    def parameter_to_datetime(self, p: datetime) -> datetime:
        return p

    def datetime_to_parameters(self, dt: datetime) -> dict[str, Any]:
        return self._step_parameters(dt)

    def parameters_to_datetime(self, p: dict[str, Any]) -> datetime:
        dt = p[self._param_name]
        return datetime(dt.year, dt.month, dt.day, dt.hour, dt.minute)

    def moving_start(self, now: datetime) -> datetime:
        return now - timedelta(minutes=self.minutes_back)

    def moving_stop(self, now: datetime) -> datetime:
        return now + timedelta(minutes=self.minutes_forward)

    def _checked_interval(self) -> int:
        interval = self.minutes_interval
        if not 0 < interval < 60:
            raise ParameterException(
                f"{self.get_step_family()}: minutes_interval must be within 1..59, got {interval}")
        if 60 % interval != 0:
            divisors = ", ".join(str(n) for n in range(1, 60) if 60 % n == 0)
            raise ParameterException(
                f"{self.get_step_family()}: minutes_interval must divide 60 evenly, got {interval}; "
                f"use one of {divisors}")
        return interval

    def _floor(self, dt: datetime, interval: int) -> datetime:
        return datetime(dt.year, dt.month, dt.day, dt.hour, dt.minute - dt.minute % interval)

    def finite_datetimes(self, finite_start: datetime, finite_stop: datetime) -> list[datetime]:
        """Each multiple of ``minutes_interval`` minutes past the hour in ``[finite_start, finite_stop)``.

        :raises ParameterException: if ``minutes_interval`` does not divide 60.
        """
        interval = self._checked_interval()
        return _regular_grid(finite_start, finite_stop, self._floor(finite_start, interval),
                             timedelta(minutes=interval))

    def _count_datetimes(self, finite_start: datetime, finite_stop: datetime) -> int:
        if type(self).finite_datetimes is not RangeByMinutesBase.finite_datetimes:
            return super()._count_datetimes(finite_start, finite_stop)
        interval = self._checked_interval()
        spacing = timedelta(minutes=interval)
        first = self._floor(finite_start, interval)
        if first < finite_start:
            first += spacing
        return _count_on_grid(first, spacing, finite_stop)

    def _format_datetime(self, dt: datetime) -> str:
        return DateMinuteParameter().serialize(dt)


class RangeMonthly(RangeBase):
    """Requires the missing instances of a monthly step (a ``MonthParameter``) in a window.

    Uses the ``of`` class's ``bulk_complete()`` when it has one, else checks
    month by month (there are few months, so no file-system inference).
    """

    start = MonthParameter(
        default=None,
        description="First month, inclusive. Default: none, work backward without end (needs --reverse)")
    stop = MonthParameter(
        default=None,
        description="Last month, exclusive. Default: none, work forward without end")
    months_back = IntParameter(
        default=13,
        description="How many months back from now the range reaches (the window when start is further "
                    "back or absent). Keep it within the data's retention, so that removed old outputs do "
                    "not come back")
    months_forward = IntParameter(
        default=0,
        description="How many months forward from now the range reaches (when stop is further or absent)")

    def datetime_to_parameter(self, dt: datetime) -> date:
        return date(dt.year, dt.month, 1)

    def parameter_to_datetime(self, p: date) -> datetime:
        return datetime(p.year, p.month, 1)

    def datetime_to_parameters(self, dt: datetime) -> dict[str, Any]:
        return self._step_parameters(dt.date())

    def parameters_to_datetime(self, p: dict[str, Any]) -> datetime:
        dt = p[self._param_name]
        return datetime(dt.year, dt.month, 1)

    def _format_datetime(self, dt: datetime) -> str:
        return dt.strftime("%Y-%m")

    @staticmethod
    def _align(dt: datetime) -> datetime:
        return datetime(dt.year, dt.month, 1)

    def moving_start(self, now: datetime) -> datetime:
        return self._align(now) - relativedelta(months=self.months_back)

    def moving_stop(self, now: datetime) -> datetime:
        return self._align(now) + relativedelta(months=self.months_forward)

    def finite_datetimes(self, finite_start: datetime, finite_stop: datetime) -> list[datetime]:
        """The first of each month from ``finite_start`` up to the month of ``finite_stop`` (exclusive)."""
        first_month = self._align(finite_start)
        aligned_stop = self._align(finite_stop)
        months = []
        month = first_month
        while month < aligned_stop:
            if month >= finite_start:
                months.append(month)
            month += relativedelta(months=1)
        return months

    def missing_datetimes(self, finite_datetimes: list[datetime]) -> list[datetime]:
        try:
            return self._bulk_complete_missing(finite_datetimes)
        except NotImplementedError:
            return super().missing_datetimes(finite_datetimes)


class RangeDaily(RangeDailyBase):
    """Requires the missing instances of a daily step (one ``DateParameter``) in a window, found quickly.

    Uses the ``of`` class's ``bulk_complete()`` when it has one; otherwise lists
    the directories its outputs live in, which takes one listing per directory
    instead of one check per day. From the command line::

        trun --module my_steps RangeDaily --of MyDailyStep --start 2026-01-01
    """

    def missing_datetimes(self, finite_datetimes: list[datetime]) -> list[datetime]:
        return self._fast_missing_datetimes(finite_datetimes, "(%Y).*(%m).*(%d)")


class RangeHourly(RangeHourlyBase):
    """Requires the missing instances of an hourly step (one ``DateHourParameter``) in a window, found quickly.

    Uses ``bulk_complete()`` or a file-system listing like :class:`RangeDaily`.
    From the command line::

        trun --module my_steps RangeHourly --of MyHourlyStep --start 2026-01-01T00
    """

    def missing_datetimes(self, finite_datetimes: list[datetime]) -> list[datetime]:
        return self._fast_missing_datetimes(finite_datetimes, "(%Y).*(%m).*(%d).*(%H)")


class RangeByMinutes(RangeByMinutesBase):
    """Requires the missing instances of a step recurring every few minutes (one ``DateMinuteParameter``), quickly.

    Uses ``bulk_complete()`` or a file-system listing like :class:`RangeDaily`.
    From the command line::

        trun --module my_steps RangeByMinutes --of MyStep --start 2026-01-01T0000 --minutes-interval 15
    """

    def missing_datetimes(self, finite_datetimes: list[datetime]) -> list[datetime]:
        return self._fast_missing_datetimes(finite_datetimes, "(%Y).*(%m).*(%d).*(%H).*(%M)")


# --------------------------------------------------------------------------- completeness from listings


def most_common(items: Iterable[_T]) -> tuple[_T, int]:
    """The most frequent item and its count; among equally frequent ones, the first seen.

    :raises ValueError: if ``items`` is empty.
    """
    counts = Counter(items)
    if not counts:
        raise ValueError("most_common() needs at least one item")
    return counts.most_common(1)[0]


def _digit_set_wildcard(chars: Iterable[str]) -> str:
    """A readable character class for the digits: ``[1-5]`` for a run, else ``[137]``."""
    ordered = sorted(chars)
    if len(ordered) > 1 and ord(ordered[-1]) - ord(ordered[0]) == len(ordered) - 1:
        return f"[{ordered[0]}-{ordered[-1]}]"
    return "[%s]" % "".join(ordered)


def _constrain_glob(glob: str, paths: Sequence[str], limit: int = 5) -> list[str]:
    """Split ``glob`` into narrower globs that still match all ``paths`` and little else.

    The leftmost ``[0-9]`` wildcards are replaced by the digits that actually
    occur there in ``paths``, one glob per digit, as long as that makes at most
    ``limit`` globs; the next wildcard then becomes a set of the digits seen.
    A long history is then listed directory by directory instead of in full.
    """
    # Each glob maps to the paths it must cover; a wildcard replaced by one
    # character keeps glob positions aligned with path positions.
    current: dict[str, list[str]] = {glob: list(paths)}
    while True:
        position = next(iter(current)).find("[0-9]")
        if position == -1:
            return list(current)
        chars_by_glob = {g: sorted({path[position] for path in covered}) for g, covered in current.items()}
        if sum(len(chars) for chars in chars_by_glob.values()) > limit:
            return [g.replace("[0-9]", _digit_set_wildcard(chars_by_glob[g]), 1) for g in current]
        narrowed: dict[str, list[str]] = {}
        for g, chars in chars_by_glob.items():
            for char in chars:
                narrowed[g.replace("[0-9]", char, 1)] = [p for p in current[g] if p[position] == char]
        current = narrowed


def _get_per_location_glob(steps: Sequence[Step], outputs: Sequence[FileSystemTarget],
                           regexes: Sequence[re.Pattern[str]]) -> str:
    """A glob of the directory holding one logical output, with the date digits as ``[0-9]``.

    :raises NotImplementedError: if a path does not show its step's date.
    """
    paths = [output.path for output in outputs]
    matches = [regex.search(path) for regex, path in zip(regexes, paths)]
    for match, path, step in zip(matches, paths, steps):
        if match is None:
            raise NotImplementedError(f"Couldn't deduce datehour representation in output path {path!r} "
                                      f"of step {step}")
    n_groups = len(matches[0].groups())  # type: ignore[union-attr]
    # A number elsewhere in a path can match by accident; the position where
    # most samples match is the real one.
    positions = [most_common((m.start(i), m.end(i)) for m in matches)[0]  # type: ignore[union-attr]
                 for i in range(1, n_groups + 1)]
    glob = list(paths[0])
    for start, end in positions:
        glob = glob[:start] + ["[0-9]"] * (end - start) + glob[end:]
    # Listing the directory gives the files; the last path item is not needed.
    return "".join(glob).rsplit("/", 1)[0]


def _get_filesystems_and_globs(datetime_to_step: Callable[[datetime], Step],
                               datetime_to_re: Callable[[datetime], str]) -> Iterator[tuple[FileSystem, str]]:
    """Yield ``(filesystem, glob)`` for each output location of the step (outputs of a wrapper's requirements count).

    :raises NotImplementedError: if the outputs differ in number over time or are not FileSystemTargets.
    """
    # Scattered points in time whose digits are unlikely to appear in a path by accident.
    sample_datetimes = [datetime(y, m, d, h) for y in range(2000, 2050, 10) for m in range(1, 4)
                        for d in range(5, 8) for h in range(21, 24)]
    regexes = [re.compile(datetime_to_re(d)) for d in sample_datetimes]
    sample_steps = [datetime_to_step(d) for d in sample_datetimes]
    sample_outputs = [flatten_output(step) for step in sample_steps]

    for outputs, step in zip(sample_outputs, sample_steps):
        if len(outputs) != len(sample_outputs[0]):
            raise NotImplementedError(
                f"Outputs must be consistent over time; was {outputs!r} for {step} and "
                f"{sample_outputs[0]!r} for {sample_steps[0]}")
        for target in outputs:
            if not isinstance(target, FileSystemTarget):
                raise NotImplementedError(
                    f"Output targets must be instances of FileSystemTarget; was {target!r} for {step}")

    for location_outputs in zip(*sample_outputs):  # one logical output across all sampled times
        yield location_outputs[0].fs, _get_per_location_glob(sample_steps, location_outputs, regexes)


def _list_existing(filesystem: FileSystem, glob: str, paths: Sequence[str]) -> set[str]:
    """Every path listed under the directories matching ``glob`` (narrowed to ``paths``)."""
    globs = _constrain_glob(glob, paths)
    started = time.time()
    listing: list[str] = []
    for g in sorted(globs):
        logger.debug("Listing %s", g)
        if filesystem.exists(g):
            listing.extend(filesystem.listdir(g))
    logger.debug("%d %s listings took %f s to return %d items",
                 len(globs), type(filesystem).__name__, time.time() - started, len(listing))
    return set(listing)


_listable_kinds: dict[tuple[type, type], str | None] = {}


def _listable_kind(target: Any) -> str | None:
    """``"local"`` or ``"mock"`` when existence of ``target`` can be read off a listing exactly, else None."""
    if not isinstance(target, FileSystemTarget):
        return None
    key = (type(target), type(target.fs))
    kind = _listable_kinds.get(key, "?")
    if kind == "?":
        kind = _listable_kinds[key] = _classify_listable(*key)
    return kind


def _classify_listable(target_type: type, fs_type: type) -> str | None:
    from trun.local_target import LocalFileSystem
    from trun.mock import MockFileSystem, MockTarget

    if target_type.exists not in (FileSystemTarget.exists, MockTarget.exists):  # type: ignore[attr-defined]
        return None  # a custom exists() may mean more than "the path is there"
    if issubclass(fs_type, LocalFileSystem) and fs_type.exists is LocalFileSystem.exists:  # type: ignore[attr-defined]
        return "local"
    if issubclass(fs_type, MockFileSystem) and fs_type.exists is MockFileSystem.exists:  # type: ignore[attr-defined]
        return "mock"
    return None


def _existing_local_paths(paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` that exist on the local disk, listing each parent directory once."""
    by_directory: dict[str, list[str]] = defaultdict(list)
    existing: set[str] = set()
    for path in paths:
        directory, name = os.path.split(path.rstrip("/" + os.sep))
        if not name:
            if os.path.exists(path):
                existing.add(path)
            continue
        by_directory[directory].append(path)
    for directory, wanted in by_directory.items():
        try:
            with os.scandir(directory or os.curdir) as entries:
                listing = {entry.name: entry for entry in entries}
        except (FileNotFoundError, NotADirectoryError):
            continue  # nothing below a missing directory exists
        except OSError:
            existing.update(path for path in wanted if os.path.exists(path))
            continue
        for path in wanted:
            entry = listing.get(os.path.basename(path.rstrip("/" + os.sep)))
            if entry is None:
                continue
            # A symlink may dangle, and "dir/" exists only as a directory: ask the OS as exists() would.
            if entry.is_symlink() or path.endswith(("/", os.sep)):
                if os.path.exists(path):
                    existing.add(path)
            else:
                existing.add(path)
    return existing


def _missing_by_listing(datetimes: Sequence[datetime], outputs_by_datetime: Sequence[list[Any]]) -> list[datetime]:
    """Missing datetimes for outputs all on the local disk or in the mock file system."""
    from trun.mock import MockFileSystem

    local_paths = set()
    mock_paths = set()
    for outputs in outputs_by_datetime:
        for target in outputs:
            (local_paths if _listable_kind(target) == "local" else mock_paths).add(target.path)
    existing = _existing_local_paths(local_paths) if local_paths else set()
    if mock_paths:
        stored = set(MockFileSystem().get_all_data().keys())  # one round trip to the shared store
        existing |= mock_paths & stored
    return [d for d, outputs in zip(datetimes, outputs_by_datetime)
            if not all(target.path in existing for target in outputs)]


def infer_bulk_complete_from_fs(datetimes: Sequence[datetime], datetime_to_step: Callable[[datetime], Step],
                                datetime_to_re: Callable[[datetime], str]) -> list[datetime]:
    """Those of ``datetimes`` whose step has a missing output, found by listing instead of N ``exists()`` calls.

    ``datetime_to_step(d)`` builds the step for ``d`` (a wrapper step counts
    with the outputs of its requirements); ``datetime_to_re(d)`` gives a regular
    expression with one group per date field as ``d`` shows in paths, e.g.
    ``d.strftime("(%Y).*(%m).*(%d)")``.

    Outputs on the local disk or in :mod:`trun.mock` are checked by listing
    each directory once. For other file systems the date fields are located in
    sampled output paths to build a glob, which is then listed
    (``FileSystem.exists`` and ``listdir`` must understand globs).

    :raises NotImplementedError: when completeness cannot be inferred this way:
        outputs that are not ``FileSystemTarget``\\ s, steps without outputs,
        or (other file systems) outputs whose number or date layout varies.
    """
    steps = [datetime_to_step(d) for d in datetimes]
    outputs_by_datetime = [flatten_output(step) for step in steps]
    for step, outputs in zip(steps, outputs_by_datetime):
        if not outputs:
            raise NotImplementedError(f"{step} has no outputs, so a listing cannot tell whether it is complete")
    if all(_listable_kind(target) for outputs in outputs_by_datetime for target in outputs):
        return _missing_by_listing(datetimes, outputs_by_datetime)

    filesystems_and_globs = list(_get_filesystems_and_globs(datetime_to_step, datetime_to_re))
    for step, outputs in zip(steps, outputs_by_datetime):
        if len(outputs) != len(filesystems_and_globs):
            raise NotImplementedError(
                f"Outputs must be consistent over time; {step} has {len(outputs)} outputs where the sampled "
                f"instances have {len(filesystems_and_globs)}")
    paths_by_datetime = [[target.path for target in outputs] for outputs in outputs_by_datetime]
    listing: set[str] = set()
    # Transposed: one logical output location at a time, across all datetimes.
    for (filesystem, glob), paths in zip(filesystems_and_globs, zip(*paths_by_datetime)):
        listing |= _list_existing(filesystem, glob, paths)
    return [d for d, paths in zip(datetimes, paths_by_datetime) if not set(paths) <= listing]

