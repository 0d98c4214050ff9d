"""Datadog metrics for ``trund``: step counters, execution times and events, sent to a DogStatsD agent.

Turn it on with ``[scheduler] metrics_collector = datadog`` (needs the
``datadog`` extra: ``pip install 'trun[datadog]'``). Sent to the agent at
``[datadog] statsd_host``:``statsd_port``, under ``metric_namespace``
(default ``trun``):

* ``trun.step.started``, ``trun.step.failed``, ``trun.step.disabled``,
  ``trun.step.done`` (counters, one per event);
* ``trun.step.execution_time`` (gauge): seconds from start to DONE;
* an event for each of them, tagged ``step_state:STARTED`` (``FAILED``,
  ``DISABLED``, ``DONE``).

Every metric and event is tagged ``step_name:<family>``, ``<param>:<value>``
for each parameter of the step, ``environment:<[datadog] environment>`` and the
comma-separated ``[datadog] default_tags`` (default ``application:trun``).
These are Luigi's metrics, tags and events under the mechanical rename.

One deliberate difference: Luigi posts its events to Datadog's HTTP API from
the scheduler's thread; here they go to the agent over DogStatsD (UDP), like
the metrics, so that ``trund`` never waits on Datadog. ``api_key`` and
``app_key`` are read for configuration compatibility and not used.

The agent's host name is resolved once, when the collector is made: a name
that does not resolve is an error then, rather than a DNS lookup in the
scheduler's thread for every packet. When packets cannot be sent (no agent
listens), the ``datadog`` library warns for each one it drops; ``trund``
lets one such warning through per minute, saying how many it held back, so
that its log does not fill with a few lines per step.

Hazards: every distinct tag value makes a new time series in Datadog, and
every parameter becomes a tag, as in Luigi. UDP drops what no agent receives:
nothing is raised, nothing is kept.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

try:
    from datadog.dogstatsd.base import DogStatsd
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("metrics_collector = datadog needs the datadog package: "
                      "pip install 'trun[datadog]'") from _exc

from trun.metrics import MetricsCollector
from trun.parameter import IntParameter, Parameter
from trun.step import Config

__all__ = ["DatadogMetricsCollector", "DroppedPacketWarnings", "datadog"]

#: The ``datadog`` library's logger, which warns for every packet it could not send.
DOGSTATSD_LOGGER = "datadog.dogstatsd"


class datadog(Config):  # lower case: the class name is the [datadog] section name
    """The ``[datadog]`` section: where the agent listens and how metrics are named and tagged."""

    api_key = Parameter(default="dummy_api_key", description="Datadog API key (unused: events go through the agent)")
    app_key = Parameter(default="dummy_app_key", description="Datadog application key (unused, as api_key)")
    default_tags = Parameter(default="application:trun",
                             description="Comma-separated tags added to every metric and event")
    environment = Parameter(default="development",
                            description="Environment the pipelines run in, sent as the tag environment:<value>")
    metric_namespace = Parameter(default="trun", description="Prefix of the metric names (trun.step.started ...)")
    statsd_host = Parameter(default="localhost", description="Host of the DogStatsD agent")
    statsd_port = IntParameter(default=8125, description="UDP port of the DogStatsD agent")


class DatadogMetricsCollector(MetricsCollector):
    """Sends a counter, and an event, for each step started, failed, disabled or done; and its execution time.

    ``DatadogMetricsCollector(**overrides)``: ``overrides`` replace ``[datadog]``
    keys (``statsd_port=8126`` ...). Each collector has its own DogStatsD
    client, so two schedulers in one process may send to different agents.
    """

    def __init__(self, **overrides: Any) -> None:
        self._config = config = datadog(**overrides)
        self._namespace = str(config.metric_namespace)
        tags = [f"environment:{config.environment}"]
        if config.default_tags:
            tags += [tag.strip() for tag in str(config.default_tags).split(",") if tag.strip()]
        self.default_tags = tags
        self._statsd = DogStatsd(host=_agent_address(config.statsd_host, config.statsd_port),
                                 port=config.statsd_port, disable_telemetry=True, origin_detection_enabled=False)
        DroppedPacketWarnings.install()

    def handle_step_started(self, step: Any) -> None:
        self._send("started", "STARTED", step, "Trun: A step has been started!",
                   f"A step has been started in the pipeline named: {step.family}", "info", "low")

    def handle_step_failed(self, step: Any) -> None:
        self._send("failed", "FAILED", step, "Trun: A step has failed!",
                   f"A step has failed in the pipeline named: {step.family}", "error", "normal")

    def handle_step_disabled(self, step: Any, config: Any) -> None:
        text = (f"A step has been disabled in the pipeline named: {step.family}. The step has failed "
                f"{config.retry_count} times in the last {config.disable_window} seconds, so it is being "
                f"disabled for {config.disable_persist} seconds.")
        self._send("disabled", "DISABLED", step, "Trun: A step has been disabled!", text, "error", "normal")

    def handle_step_done(self, step: Any) -> None:
        if step.time_running is None:
            return  # reported DONE without having run here (complete already): no news
        tags = self._step_tags(step)
        self._statsd.gauge(f"{self._namespace}.step.execution_time", step.updated - step.time_running, tags=tags)
        self._send("done", "DONE", step, "Trun: A step has been completed!",
                   f"A step has completed in the pipeline named: {step.family}", "info", "low", tags)

    def close(self) -> None:
        """Close the UDP socket (a new one is opened if the collector is used again)."""
        self._statsd.close_socket()

    def _send(self, what: str, state: str, step: Any, title: str, text: str, alert_type: str, priority: str,
              tags: list[str] | None = None) -> None:
        tags = self._step_tags(step) if tags is None else tags
        self._statsd.increment(f"{self._namespace}.step.{what}", tags=tags)
        self._statsd.event(title, text, alert_type=alert_type, priority=priority,
                           tags=[*tags, f"step_state:{state}"])

    def _step_tags(self, step: Any) -> list[str]:
        params = getattr(step, "params", None) or {}
        return [f"step_name:{step.family}", *(f"{key}:{value}" for key, value in params.items()),
                *self.default_tags]


class DroppedPacketWarnings(logging.Filter):
    """Lets one "Error submitting packet" warning of the ``datadog`` library through per ``interval`` seconds.

    The next one let through says how many were held back meanwhile. Other
    records pass untouched. ``install()`` puts the filter on the library's
    logger once per process.
    """

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_passed: float | None = None
        self._held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not str(record.msg).startswith("Error submitting packet"):
            return True
        with self._lock:
            now = self._clock()
            if self._last_passed is not None and now - self._last_passed < self.interval:
                self._held_back += 1
                return False
            if self._held_back:
                record.msg = (f"{record.msg} ({self._held_back} more such warnings in the last "
                              f"{self.interval:g} s were not logged)")
            self._last_passed = now
            self._held_back = 0
            return True

    @classmethod
    def install(cls) -> DroppedPacketWarnings:
        """The filter on the library's logger, added on first use."""
        logger = logging.getLogger(DOGSTATSD_LOGGER)
        for existing in logger.filters:
            if isinstance(existing, cls):
                return existing
        added = cls()
        logger.addFilter(added)
        return added


def _agent_address(host: str, port: int) -> str:
    """The IP address of the agent's ``host``; ValueError naming the setting when it does not resolve."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0]
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"[datadog] statsd_host = {host}: cannot resolve it ({exc}); "
                         f"set it to the host of the DogStatsD agent") from None
