"""What the scheduler accepts: its ``[scheduler]`` settings, its RPC registry, and checks of RPC arguments.

* :class:`SchedulerConfig` holds Luigi's ``[scheduler]`` keys and defaults
  (renamed: ``max_shown_steps``, ``record_step_history``); :func:`make_config`
  merges the configuration files, an optional config object and keyword
  overrides, rejecting unknown keys with a "did you mean".
* :func:`rpc_method` registers a :class:`trun.scheduler.Scheduler` method in
  :data:`RPC_METHODS` (name -> signature without ``self``), which ``trund``
  serves and validates requests against, and which
  :class:`trun.rpc.RemoteScheduler` mirrors. The annotations matter: ``trund``
  checks JSON argument types against them.
* ``check_*``/:func:`parse_status` turn a user's mistake in an RPC argument
  into an exception that names the argument, the expected form, and a fix.

Also the do-nothing defaults of the plug-ins (step history, metrics).
Hazard: reading the configuration files happens when a ``Scheduler`` is made,
not later; tests reset the configuration between schedulers.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from trun.step_status import StepStatus

__all__ = [
    "RPC_METHODS",
    "RPC_REQUEST_ARGS",
    "SchedulerConfig",
    "make_config",
    "rpc_method",
]

logger = logging.getLogger("trun.scheduler")

#: RPC method name -> its signature without ``self``; ``trund`` validates requests against it.
RPC_METHODS: dict[str, inspect.Signature] = {}
#: RPC method name -> client hints (``attempts``, ``allow_null``) for :class:`trun.rpc.RemoteScheduler`.
RPC_REQUEST_ARGS: dict[str, dict[str, Any]] = {}

_F = TypeVar("_F", bound=Callable[..., Any])


def rpc_method(**request_args: Any) -> Callable[[_F], _F]:
    """Mark a scheduler method as callable over RPC and record it in :data:`RPC_METHODS`.

    ``request_args`` are hints for the client (e.g. ``attempts=1`` for ``ping``).
    """

    def decorate(fn: _F) -> _F:
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        RPC_METHODS[fn.__name__] = signature.replace(parameters=params[1:])
        RPC_REQUEST_ARGS[fn.__name__] = dict(request_args)
        fn.is_rpc_method = True  # type: ignore[attr-defined]
        return fn

    return decorate


# ---------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """The ``[scheduler]`` section (Luigi's keys and defaults, renamed)."""

    retry_delay: float = 900.0  #: FAILED -> PENDING after this many seconds (negative: never)
    remove_delay: float = 600.0  #: forget a step this long after its last stakeholder left
    worker_disconnect_delay: float = 60.0  #: a worker silent this long is gone
    state_path: str = "/var/lib/trun-server/state"
    batch_emails: bool = False
    disable_window: float = 3600  #: failures are counted within this many seconds
    retry_count: int = 999999999  #: failures within the window that disable a step
    disable_hard_timeout: float = 999999999  #: disable a step still failing this long after its first failure
    disable_persist: float = 86400  #: a scheduler-disabled step is re-enabled after this many seconds
    max_shown_steps: int = 100000
    max_graph_nodes: int = 100000
    record_step_history: bool = False
    prune_on_get_work: bool = False
    pause_enabled: bool = True
    send_messages: bool = True
    metrics_collector: str = "default"
    metrics_custom_import: str | None = None
    stable_done_cooldown_secs: float = 10  #: ignore PENDING reports this soon after DONE

    def retry_policy(self) -> dict[str, Any]:
        """The default ``retry_count`` / ``disable_hard_timeout`` / ``disable_window`` of every step."""
        return {"retry_count": self.retry_count, "disable_hard_timeout": self.disable_hard_timeout,
                "disable_window": self.disable_window}


_CONFIG_KINDS: dict[str, type] = {
    f.name: {"float": float, "int": int, "bool": bool}.get(str(f.type), str)
    for f in dataclasses.fields(SchedulerConfig)
}
RETRY_POLICY_FIELDS = ("retry_count", "disable_hard_timeout", "disable_window")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _coerce_option(name: str, value: Any) -> Any:
    kind = _CONFIG_KINDS[name]
    if value is None and name == "metrics_custom_import":
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.strip().lower() in ("true", "1", "yes", "on")
    elif kind in (int, float):
        number: Any = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and kind is float:
            return number
        if number is not None and float(number).is_integer():
            return int(number)
    elif isinstance(value, str):
        return value
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
    raise ValueError(f"[scheduler] {name} must be {expected}, got {value!r}")


def _file_options() -> dict[str, Any]:
    from trun.configuration import get_config

    cfg = get_config()
    readers = {float: cfg.getfloat, int: cfg.getint, bool: cfg.getboolean, str: cfg.get}
    return {name: readers[kind]("scheduler", name)
            for name, kind in _CONFIG_KINDS.items() if cfg.has_option("scheduler", name)}


def file_resources() -> dict[str, int]:
    """The ``[resources]`` totals of the configuration files."""
    from trun.configuration import get_config

    cfg = get_config()
    return dict(cfg.getintdict("resources")) if cfg.has_section("resources") else {}


def make_config(config: Any, overrides: Mapping[str, Any]) -> SchedulerConfig:
    """Settings from ``config`` (None: the configuration files; a :class:`SchedulerConfig`,
    a mapping, or an object with the keys as attributes) with ``overrides`` on top."""
    unknown = [k for k in overrides if k not in _CONFIG_KINDS]
    if unknown:
        name = unknown[0]
        raise TypeError(f"Scheduler() got an unknown option {name!r}; options are the [scheduler] keys: "
                        f"{', '.join(_CONFIG_KINDS)}.{did_you_mean(name, _CONFIG_KINDS)}")
    if config is None:
        values = _file_options()
    elif isinstance(config, SchedulerConfig):
        values = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        values = {k: v for k, v in config.items() if k in _CONFIG_KINDS}
    else:  # e.g. a trun ``scheduler`` Config instance: read its attributes
        values = {k: getattr(config, k) for k in _CONFIG_KINDS if hasattr(config, k)}
    values.update(overrides)
    return SchedulerConfig(**{k: _coerce_option(k, v) for k, v in values.items()})


# ---------------------------------------------------------------- plug-in defaults
class NopStepHistory:
    """Step history that records nothing (``record_step_history = false``)."""

    def step_scheduled(self, step: Any) -> None:
        pass

    def step_started(self, step: Any, worker_host: str | None) -> None:
        pass

    def step_finished(self, step: Any, successful: bool) -> None:
        pass


class NopMetrics:
    """Metrics collector that collects nothing (``metrics_collector = default``)."""

    def handle_step_started(self, step: Any) -> None:
        pass

    def handle_step_failed(self, step: Any) -> None:
        pass

    def handle_step_disabled(self, step: Any, config: SchedulerConfig) -> None:
        pass

    def handle_step_done(self, step: Any) -> None:
        pass

    def generate_latest(self) -> bytes:
        return b""


def make_metrics_collector(config: SchedulerConfig) -> Any:
    """The collector named by ``[scheduler] metrics_collector`` (imported only when one is configured)."""
    which = config.metrics_collector
    if which in ("default", "none", ""):
        return NopMetrics()
    from trun.metrics import MetricsCollectors

    return MetricsCollectors.get(MetricsCollectors[which], config.metrics_custom_import)


def send_disable_email(subject: str, message: str) -> None:
    """Best-effort e-mail about a step the scheduler disabled (never raises)."""
    try:
        from trun.notifications import send_error_email
    except ImportError:
        logger.debug("trun.notifications unavailable; not sending %r", subject)
        return
    try:
        send_error_email(subject, message)
    except Exception:
        logger.exception("could not send e-mail %r", subject)


# ---------------------------------------------------------------- argument checks
def parse_status(value: Any, what: str = "status") -> StepStatus:
    """A :class:`StepStatus` from its name; ``ValueError`` listing the statuses otherwise."""
    if isinstance(value, StepStatus):
        return value
    try:
        return StepStatus(value)
    except ValueError:
        names = [s.value for s in StepStatus]
        upper = str(value).upper()
        hint = f" Did you mean {upper!r}?" if upper in names else did_you_mean(str(value), names)
        raise ValueError(f"unknown step {what} {value!r}; expected one of {', '.join(names)}.{hint}") from None


def check_id(value: Any, what: str) -> str:
    """A non-empty string (a worker or step id)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_ids(value: Any, what: str) -> list[str] | None:
    """None, or a list of step ids; a bare string is a mistake (``deps="A"``), not a list of letters."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a list of step ids, got the string {value!r}; did you mean [{value!r}]?")
    try:
        ids = list(value)
    except TypeError:
        raise TypeError(f"{what} must be a list of step ids, got {value!r}") from None
    for i in ids:
        if not isinstance(i, str) or not i:
            raise TypeError(f"{what} must contain step ids (non-empty strings), got {i!r}")
    return ids


def check_resources(value: Any, what: str = "resources") -> dict[str, int]:
    """A copy of a ``{name: non-negative int}`` mapping (``{}`` for None)."""
    if value is None:
        return {}
    if type(value) is not dict and not isinstance(value, Mapping):  # dict first: ABC checks are slow
        raise TypeError(f"{what} must be a mapping of resource name to amount, e.g. {{'db': 1}}, got {value!r}")
    out = {}
    for name, amount in value.items():
        if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"{what}: {name!r} must map to a non-negative integer amount, got {amount!r}")
        out[name] = amount
    return out


def check_number(value: Any, what: str) -> float:
    """An int or float (not a bool, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{what} must be a number, got {value!r}")
    return value


def check_retry_policy(retry_policy_dict: Any) -> dict[str, Any] | None:
    """The non-None entries of a step's ``retry_policy_dict`` (None when there are none)."""
    if not retry_policy_dict:
        return None
    if type(retry_policy_dict) is not dict and not isinstance(retry_policy_dict, Mapping):
        raise TypeError(f"retry_policy_dict must be a mapping, got {retry_policy_dict!r}")
    out = {}
    for key, value in retry_policy_dict.items():
        if key not in RETRY_POLICY_FIELDS:
            raise ValueError(f"retry_policy_dict: unknown key {key!r}; expected "
                             f"{', '.join(RETRY_POLICY_FIELDS)}.{did_you_mean(key, RETRY_POLICY_FIELDS)}")
        if value is not None:
            out[key] = check_number(value, f"retry_policy_dict[{key!r}]")
    return out or None
