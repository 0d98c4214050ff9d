"""trun: write workflows as Python steps; run them locally, coordinated by ``trund``.

The public names are those of Luigi 3.x under the rename luigi→trun, Task→Step.
They are loaded lazily (PEP 562) so that ``import trun`` stays fast: the worker,
RPC client and interface modules are only imported when first used.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trun.__version__ import __version__

# public name -> module that defines it
_LAZY_NAMES = {
    # steps
    "Step": "trun.step", "Config": "trun.step", "ExternalStep": "trun.step",
    "WrapperStep": "trun.step", "namespace": "trun.step", "auto_namespace": "trun.step",
    "DynamicRequirements": "trun.step",
    # targets
    "Target": "trun.target", "LocalTarget": "trun.local_target",
    # scheduling and running
    "RemoteScheduler": "trun.rpc", "RPCError": "trun.rpc",
    "Event": "trun.event",
    "build": "trun.interface", "run": "trun.interface",
    "TrunStatusCode": "trun.execution_summary",
    # parameters
    "Parameter": "trun.parameter", "StrParameter": "trun.parameter",
    "OptionalParameter": "trun.parameter", "OptionalStrParameter": "trun.parameter",
    "DateParameter": "trun.parameter", "OptionalDateParameter": "trun.parameter",
    "MonthParameter": "trun.parameter", "YearParameter": "trun.parameter",
    "DateHourParameter": "trun.parameter", "DateMinuteParameter": "trun.parameter",
    "DateSecondParameter": "trun.parameter", "DateIntervalParameter": "trun.parameter",
    "TimeDeltaParameter": "trun.parameter",
    "IntParameter": "trun.parameter", "OptionalIntParameter": "trun.parameter",
    "FloatParameter": "trun.parameter", "OptionalFloatParameter": "trun.parameter",
    "BoolParameter": "trun.parameter", "OptionalBoolParameter": "trun.parameter",
    "StepParameter": "trun.parameter",
    "EnumParameter": "trun.parameter", "EnumListParameter": "trun.parameter",
    "ListParameter": "trun.parameter", "OptionalListParameter": "trun.parameter",
    "TupleParameter": "trun.parameter", "OptionalTupleParameter": "trun.parameter",
    "DictParameter": "trun.parameter", "OptionalDictParameter": "trun.parameter",
    "ChoiceParameter": "trun.parameter", "OptionalChoiceParameter": "trun.parameter",
    "ChoiceListParameter": "trun.parameter",
    "NumericalParameter": "trun.parameter", "OptionalNumericalParameter": "trun.parameter",
    "PathParameter": "trun.parameter", "OptionalPathParameter": "trun.parameter",
    "ParameterVisibility": "trun.parameter",
}

_SUBMODULES = {
    "step", "target", "rpc", "parameter", "configuration", "interface", "local_target",
    "event", "step_register", "step_status", "worker", "scheduler", "format", "mock",
    "util", "date_interval", "freezing", "execution_summary", "retcodes", "lock",
    "notifications", "cmdline", "cmdline_parser", "server", "tools", "contrib", "testing",
}

__all__ = sorted(_LAZY_NAMES) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"trun.{name}")
    raise AttributeError(f"module 'trun' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES) | _SUBMODULES)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from trun.event import Event
    from trun.execution_summary import TrunStatusCode
    from trun.interface import build, run
    from trun.local_target import LocalTarget
    from trun.parameter import *  # noqa: F403
    from trun.rpc import RemoteScheduler, RPCError
    from trun.step import Config, DynamicRequirements, ExternalStep, Step, WrapperStep, auto_namespace, namespace
    from trun.target import Target
