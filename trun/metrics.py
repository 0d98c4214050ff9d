"""Metrics collectors: how the scheduler reports step starts, failures and completions to a monitoring system.

``[scheduler] metrics_collector`` picks one (Luigi's names): ``default`` (or
``none``) collects nothing, ``prometheus`` exposes counters at ``trund``'s
``/metrics`` (:mod:`trun.contrib.prometheus_metric`, extra ``prometheus``),
``datadog`` sends counters and events to a DogStatsD agent
(:mod:`trun.contrib.datadog_metric`, extra ``datadog``), and ``custom``
instantiates the :class:`MetricsCollector` subclass named by ``[scheduler]
metrics_custom_import`` (``package.module.ClassName``).

The scheduler calls the ``handle_step_*`` hooks with its own record of the
step (attributes ``id``, ``family``, ``params``, ``time_running``, ``updated``).

Hazards: hooks run on the scheduler's thread inside ``get_work``/``add_step``;
they must be quick and must not keep the record (it changes afterwards). An
exception in a hook is logged by the scheduler and otherwise ignored.
"""
from __future__ import annotations

import abc
import enum
import importlib
from typing import Any

__all__ = ["MetricsCollector", "MetricsCollectors", "NoMetricsCollector"]


class MetricsCollector(abc.ABC):
    """Receives step events from the scheduler; subclass it for a custom collector."""

    @abc.abstractmethod
    def handle_step_started(self, step: Any) -> None:
        """``step`` was handed to a worker to run."""

    @abc.abstractmethod
    def handle_step_failed(self, step: Any) -> None:
        """``step`` failed."""

    @abc.abstractmethod
    def handle_step_disabled(self, step: Any, config: Any) -> None:
        """The scheduler disabled ``step`` after too many failures (``config``: the ``[scheduler]`` settings)."""

    @abc.abstractmethod
    def handle_step_done(self, step: Any) -> None:
        """``step`` finished successfully."""

    def handle_step_statistics(self, step: Any, statistics: dict[str, Any]) -> None:
        """A running step reported ``statistics`` (``status_reporter.report_step_statistics``); ignored by default."""

    def generate_latest(self) -> bytes | str | None:
        """The text ``trund`` serves at ``/metrics`` (nothing by default)."""
        return None

    def configure_http_handler(self, http_handler: Any) -> None:
        """Adjust the ``/metrics`` response (e.g. its Content-Type) before the body is written."""


class NoMetricsCollector(MetricsCollector):
    """The ``default`` collector: collects nothing."""

    def handle_step_started(self, step: Any) -> None:
        pass

    def handle_step_failed(self, step: Any) -> None:
        pass

    def handle_step_disabled(self, step: Any, config: Any) -> None:
        pass

    def handle_step_done(self, step: Any) -> None:
        pass


class _MetricsCollectorsMeta(enum.EnumMeta):
    def __getitem__(cls, name: str) -> Any:
        # ``MetricsCollectors[name]`` is how the scheduler reads its setting: name the accepted values.
        try:
            return super().__getitem__(name)
        except KeyError:
            names = ", ".join(cls.__members__)
            raise ValueError(f"[scheduler] metrics_collector must be one of {names}, got {name!r}") from None


class MetricsCollectors(enum.Enum, metaclass=_MetricsCollectorsMeta):
    """The values of ``[scheduler] metrics_collector`` (``none`` is another name for ``default``).

    ``MetricsCollectors["name"]`` raises ``ValueError`` naming the accepted values for an unknown name.
    """

    custom = -1
    default = 1
    none = 1
    datadog = 2
    prometheus = 3

    @classmethod
    def get(cls, which: MetricsCollectors | str, custom_import: str | None = None) -> MetricsCollector:
        """A new collector of kind ``which``; for ``custom``, of the class at import path ``custom_import``."""
        if isinstance(which, str):
            which = cls[which]
        if which is cls.default:
            return NoMetricsCollector()
        if which is cls.prometheus:
            from trun.contrib.prometheus_metric import PrometheusMetricsCollector

            return PrometheusMetricsCollector()
        if which is cls.datadog:
            from trun.contrib.datadog_metric import DatadogMetricsCollector

            return DatadogMetricsCollector()
        return _custom_collector(custom_import)


def _custom_collector(custom_import: str | None) -> MetricsCollector:
    if not custom_import or "." not in custom_import:
        raise ValueError("metrics_collector = custom needs [scheduler] metrics_custom_import = "
                         f"package.module.ClassName (a MetricsCollector subclass), got {custom_import!r}")
    module_name, _, class_name = custom_import.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"[scheduler] metrics_custom_import = {custom_import}: cannot import module "
                          f"{module_name!r} ({exc})") from exc
    collector_class = getattr(module, class_name, None)
    if collector_class is None:
        raise ValueError(f"[scheduler] metrics_custom_import = {custom_import}: module {module_name!r} "
                         f"has no {class_name!r}")
    if not (isinstance(collector_class, type) and issubclass(collector_class, MetricsCollector)):
        raise ValueError(f"[scheduler] metrics_custom_import = {custom_import} is not a subclass of "
                         "trun.metrics.MetricsCollector")
    return collector_class()
