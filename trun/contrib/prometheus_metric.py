"""Prometheus metrics for ``trund``: step counters and execution times, scraped at ``/metrics``.

Turn it on with ``[scheduler] metrics_collector = prometheus`` (needs the
``prometheus`` extra: ``pip install 'trun[prometheus]'``). Exposed, each
labelled by the step's family and the parameters chosen in ``[prometheus]``:

* ``trun_step_started_total``, ``trun_step_failed_total``,
  ``trun_step_disabled_total``, ``trun_step_done_total`` (counters);
* ``trun_step_execution_time_seconds`` (gauge): seconds from start to the last
  DONE or FAILED of that label set.

``[prometheus]`` (Luigi's keys, renamed): ``use_step_family_in_labels``
(default true) and ``step_parameters_to_use_in_labels`` (a JSON list of
parameter names; a step without one of them gets an empty label value).

Hazards: every distinct label value makes a new time series -- only label by
parameters with few values (not dates or ids). Each collector has its own
registry, so two schedulers in one process do not mix their numbers.
"""
from __future__ import annotations

from typing import Any

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
    from prometheus_client import generate_latest as _generate_latest
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("metrics_collector = prometheus needs prometheus-client: "
                      "pip install 'trun[prometheus]'") from _exc

from trun.metrics import MetricsCollector
from trun.parameter import BoolParameter, ListParameter
from trun.step import Config

__all__ = ["PrometheusMetricsCollector", "prometheus"]


class prometheus(Config):  # lower case: the class name is the [prometheus] section name
    """The ``[prometheus]`` section: which labels the step metrics carry."""

    use_step_family_in_labels = BoolParameter(
        default=True, parsing=BoolParameter.EXPLICIT_PARSING,
        description="Label every step metric with the step's family")
    step_parameters_to_use_in_labels = ListParameter(
        default=[], description="Step parameters to add as labels, e.g. [\"region\"]")


class PrometheusMetricsCollector(MetricsCollector):
    """Counts step starts, failures, disables and completions, and the last execution time, per label set.

    ``PrometheusMetricsCollector(**overrides)``: ``overrides`` replace ``[prometheus]``
    keys (``use_step_family_in_labels=False`` ...). Raises ``ValueError`` when that
    leaves no label at all.
    """

    def __init__(self, **overrides: Any) -> None:
        config = prometheus(**overrides)
        self.labels: list[str] = [str(name) for name in config.step_parameters_to_use_in_labels]
        if config.use_step_family_in_labels:
            self.labels.append("family")
        if not self.labels:
            raise ValueError("Prometheus labels cannot be empty: set [prometheus] use_step_family_in_labels = true "
                             "or list parameters in [prometheus] step_parameters_to_use_in_labels")
        self.registry = CollectorRegistry()
        self.step_started_counter = Counter(
            "trun_step_started_total", "Number of trun steps started", self.labels, registry=self.registry)
        self.step_failed_counter = Counter(
            "trun_step_failed_total", "Number of trun steps failed", self.labels, registry=self.registry)
        self.step_disabled_counter = Counter(
            "trun_step_disabled_total", "Number of trun steps disabled", self.labels, registry=self.registry)
        self.step_done_counter = Counter(
            "trun_step_done_total", "Number of trun steps done", self.labels, registry=self.registry)
        self.step_execution_time = Gauge(
            "trun_step_execution_time_seconds", "Execution time of trun steps in seconds", self.labels,
            registry=self.registry)

    def _labels(self, step: Any) -> dict[str, str]:
        params = getattr(step, "params", None) or {}
        return {label: str(step.family) if label == "family" else str(params.get(label, ""))
                for label in self.labels}

    def _record_execution_time(self, step: Any) -> None:
        # time_running is None for a step found complete without running here.
        if getattr(step, "time_running", None) is not None and getattr(step, "updated", None) is not None:
            self.step_execution_time.labels(**self._labels(step)).set(step.updated - step.time_running)

    def handle_step_started(self, step: Any) -> None:
        labels = self._labels(step)
        self.step_started_counter.labels(**labels).inc()
        self.step_execution_time.labels(**labels)  # the series exists from the first start

    def handle_step_failed(self, step: Any) -> None:
        self.step_failed_counter.labels(**self._labels(step)).inc()
        self._record_execution_time(step)

    def handle_step_disabled(self, step: Any, config: Any) -> None:
        self.step_disabled_counter.labels(**self._labels(step)).inc()

    def handle_step_done(self, step: Any) -> None:
        self.step_done_counter.labels(**self._labels(step)).inc()
        self._record_execution_time(step)

    def generate_latest(self) -> bytes:
        """The registry in the Prometheus text format."""
        return _generate_latest(self.registry)

    def configure_http_handler(self, http_handler: Any) -> None:
        """Give the ``/metrics`` answer Prometheus' Content-Type."""
        http_handler.set_header("Content-Type", CONTENT_TYPE_LATEST)
