"""The :class:`Step` class: one unit of work with parameters, dependencies and outputs.

A workflow is a graph of steps.  Subclass :class:`Step`, declare
:class:`~trun.Parameter` attributes, and override

* :meth:`Step.requires` – the steps this one depends on,
* :meth:`Step.output` – the targets it produces (it is complete when they exist),
* :meth:`Step.run` – the work itself.

Steps are identified by :attr:`Step.step_id`, built from the family name and
the significant public parameter values exactly as Luigi builds ``task_id``,
so ids are stable across processes, machines and Luigi/trun.

Hazards:

* Step instances are **cached** by parameter values (see
  :class:`trun.step_register.Register`): ``MyStep(a=1) is MyStep(a=1)``.
  Do not store per-run state on a step you expect to be fresh.
* Parameters are resolved when the step is created: constructor argument,
  then command line, then the ``[Family]`` configuration section, then the
  default.  Changing the configuration later does not change existing
  instances.
* ``requires()`` may be called several times (scheduling, then running), in
  different processes; keep it free of side effects.
* Creating a step is on every workflow's hot path, so each class gets
  tables built on first use (``_ParamSpec``, in :mod:`trun.step_construction`
  with the rest of parameter resolution) including two functions *written
  for the class* and compiled with ``exec``: its step id (here, next to
  :func:`step_id_str`), and its constructor for calls that give every
  parameter. They are rebuilt when an attribute of the class or a base
  class is set; a parameter object changed in place after use is not noticed.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import re
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from trun.parameter import (
    Parameter,
    ParameterVisibility,
    UnconsumedParameterWarning,
)
from trun.step_construction import _collect_params, _list_to_tuple, _ParamSpec, _resolve_params, _same_call
from trun.step_register import _SAME_AS_PYTHON_MODULE, Register

__all__ = [
    "BulkCompleteNotImplementedError",
    "Config",
    "DynamicRequirements",
    "ExternalStep",
    "InvalidRequirementError",
    "MixinNaiveBulkComplete",
    "STEP_ID_INCLUDE_PARAMS",
    "STEP_ID_INVALID_CHAR_REGEX",
    "STEP_ID_TRUNCATE_HASH",
    "STEP_ID_TRUNCATE_PARAMS",
    "Step",
    "UnconsumedParameterWarning",
    "WrapperStep",
    "auto_namespace",
    "externalize",
    "flatten",
    "flatten_output",
    "getpaths",
    "namespace",
    "step_id_str",
    "validate_requirement",
]

logger = logging.getLogger("trun-interface")

#: How many parameter values (sorted by name) appear readable in a step id.
STEP_ID_INCLUDE_PARAMS = 3
#: How many characters of each of those values appear.
STEP_ID_TRUNCATE_PARAMS = 16
#: How many hex digits of the md5 of the parameters end the step id.
STEP_ID_TRUNCATE_HASH = 10
#: Characters of the readable part outside this class become ``_``.
STEP_ID_INVALID_CHAR_REGEX = re.compile(r"[^A-Za-z0-9_]")


def _json_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Canonical JSON of the parameters (what json.dumps(params, separators=(",", ":"),
# sort_keys=True) writes): the md5 of exactly this text ends the id.  The C
# encoder is called directly because building it per call costs more than
# encoding a small dict.
if json.encoder.c_make_encoder is not None:
    _canonical_encoder = json.encoder.c_make_encoder(
        None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True)

    def _canonical_json(params: dict[str, str]) -> str:
        return "".join(_canonical_encoder(params, 0))
else:  # pragma: no cover - CPython always has the C accelerator
    _canonical_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode

# json's own string encoder (C): a str becomes its JSON text, anything else raises TypeError.
_encode_json_str = json.encoder.encode_basestring_ascii

# Default of Step.step_namespace meaning "not set on the class".
_NOT_USER_SPECIFIED = "__not_user_specified"

# Attributes the worker injects into a running step; not picklable.
_FORWARDED_ATTRIBUTES = ("set_tracking_url", "set_status_message", "set_progress_percentage",
                         "decrease_running_resources", "scheduler_messages")

# (step class, event) -> the callbacks trigger_event calls; emptied whenever a
# handler is added or removed.
_event_dispatch_cache: dict[tuple[type, str], tuple[Callable[..., Any], ...]] = {}
# Whether any event handler is registered for any class (kept by event_handler
# and remove_event_handler).
_handlers_registered = False

# Key under which Register.__call__ hands already resolved values to __init__.
_PRESET_KEY = "_trun_preset_values"

# Type checkers read the field specifier from the decorator in step_register;
# at run time it can only be filled in once trun.parameter is imported.
Register.__dataclass_transform__["field_specifiers"] = (Parameter,)  # type: ignore[attr-defined]

_StepT = TypeVar("_StepT", bound="Step")


def namespace(namespace: str | None = None, scope: str = "") -> None:
    """Set the namespace of step classes defined after this call.

    The family of such a class becomes ``"<namespace>.<ClassName>"``.  With
    ``scope`` (usually ``__name__``) only classes whose module is ``scope`` or
    lies below it are affected; the most specific scope wins.  Calling it
    with no namespace resets the namespace of that scope.  A
    ``step_namespace`` attribute on the class takes precedence.
    """
    Register._default_namespace_dict[scope] = namespace or ""


def auto_namespace(scope: str = "") -> None:
    """Like :func:`namespace`, but each class's namespace is its module name.

    Usually called as ``trun.auto_namespace(scope=__name__)`` in a package's
    top-level ``__init__.py``, so that equally named steps of different
    modules do not clash.
    """
    namespace(namespace=_SAME_AS_PYTHON_MODULE, scope=scope)


def step_id_str(step_family: str, params: dict[str, str]) -> str:
    """Return the canonical id of a step: ``"<family>_<summary>_<hash>"``.

    ``params`` maps parameter names to serialized values (strings).  The
    summary is the first :data:`STEP_ID_INCLUDE_PARAMS` values sorted by
    parameter name, each cut to :data:`STEP_ID_TRUNCATE_PARAMS` characters,
    joined by ``_`` with characters outside ``[A-Za-z0-9_]`` replaced by
    ``_``.  The hash is the first :data:`STEP_ID_TRUNCATE_HASH` hex digits of
    the md5 of the canonical JSON of ``params`` (sorted keys, no spaces).
    """
    return _step_id(step_family, params, sorted(params))


def _step_id(step_family: str, params: dict[str, str], sorted_names: list[str] | tuple[str, ...]) -> str:
    # step_id_str with the names already sorted (a step class sorts its own once).
    param_hash = hashlib.md5(_canonical_json(params).encode("utf-8"), usedforsecurity=False).hexdigest()
    truncate = STEP_ID_TRUNCATE_PARAMS
    summary = "_".join([params[name][:truncate] for name in sorted_names[:STEP_ID_INCLUDE_PARAMS]])
    # Most summaries (numbers, plain words) need no replacement; for an ASCII
    # string isalnum() is exactly [A-Za-z0-9], and it is cheaper than the regex.
    if not (summary.isascii() and summary.replace("_", "").isalnum()):
        summary = STEP_ID_INVALID_CHAR_REGEX.sub("_", summary)
    return f"{step_family}_{summary}_{param_hash[:STEP_ID_TRUNCATE_HASH]}"


class BulkCompleteNotImplementedError(NotImplementedError):
    """Raised by the default :meth:`Step.bulk_complete`: the class has no bulk completeness check.

    A distinct class so that callers (the range tools) can fall back to
    checking instances one by one, and linters do not take ``bulk_complete``
    for an abstract method.
    """


class InvalidRequirementError(TypeError):
    """``requires()`` (or a dynamic ``yield``) returned something that is not a step."""


# -- parameter tables ---------------------------------------------------------

_STEP_ID_TEMPLATE = """\
def step_id(param_kwargs, {defaults}):
    {serialize}
    if (STEP_ID_INCLUDE_PARAMS != {include} or STEP_ID_TRUNCATE_PARAMS != {truncate}
            or STEP_ID_TRUNCATE_HASH != {truncate_hash}):
        return _step_id(family, {{{by_name}}}, sorted_names)
    try:
        text = {json}
    except TypeError:
        return _step_id(family, {{{by_name}}}, sorted_names)
    summary = {summary}
    if not (summary.isascii() and summary.replace("_", "").isalnum()):
        summary = STEP_ID_INVALID_CHAR_REGEX.sub("_", summary)
    return {prefix} + summary + "_" + _md5(text.encode(), usedforsecurity=False).hexdigest()[:{truncate_hash}]
"""

_md5 = hashlib.md5




def _compile_step_id(family: str,
                     serializers: list[tuple[str, Callable[[Any], Any]]]) -> Callable[[dict[str, Any]], str]:
    """A function computing ``step_id_str(family, {name: serialize(value)})`` from a step's ``param_kwargs``.

    Written out for the class's parameters (as dataclasses write ``__init__``):
    creating a step computes its id, and for a few parameters the general
    code's loops, comprehensions and JSON encoder cost more than the md5
    itself. The text hashed is the same: the canonical JSON of a dict of str
    is what ``encode_basestring_ascii`` makes of each key and value, in key
    order. Anything else (a ``serialize()`` returning a non-str, changed
    ``STEP_ID_*`` constants) goes the general way, through :func:`_step_id`.
    """
    if not serializers:
        return functools.partial(_step_id_without_params, family)
    names = [name for name, _ in serializers]
    in_key_order = sorted(range(len(names)), key=names.__getitem__)
    json_parts = [f"{_encode_json_str(names[i]) + ':'!r} + _encode_json_str(v{i})" for i in in_key_order]
    summary_parts = [f"v{i}[:{STEP_ID_TRUNCATE_PARAMS}]" for i in in_key_order[:STEP_ID_INCLUDE_PARAMS]]
    source = _STEP_ID_TEMPLATE.format(
        defaults=", ".join([f"_s{i}=_s{i}" for i in range(len(names))] + ["family=family", "sorted_names=sorted_names"]),
        # Serialized in declaration order, as step_id_str's callers always did.
        serialize="\n    ".join(f"v{i} = _s{i}(param_kwargs[{name!r}])" for i, name in enumerate(names)),
        include=STEP_ID_INCLUDE_PARAMS, truncate=STEP_ID_TRUNCATE_PARAMS, truncate_hash=STEP_ID_TRUNCATE_HASH,
        by_name=", ".join(f"{name!r}: v{i}" for i, name in enumerate(names)),
        json="'{' + " + " + ',' + ".join(json_parts) + " + '}'",
        summary=" + '_' + ".join(summary_parts),
        prefix=repr(family + "_"),
    )
    # Bound as default arguments; the module's globals, so that the function
    # sees the STEP_ID_* constants as they are when it runs.
    namespace: dict[str, Any] = {f"_s{i}": serialize for i, (_, serialize) in enumerate(serializers)}
    namespace.update(family=family, sorted_names=tuple(sorted(names)))
    exec(source, globals(), namespace)  # noqa: S102 - the source is made above from identifiers and reprs
    return namespace["step_id"]


def _step_id_without_params(family: str, param_kwargs: dict[str, Any]) -> str:
    return _step_id(family, {}, ())


class _ClassFacts(dict):  # type: ignore[type-arg]
    """What callers (the worker) learned about one step class; see :func:`_class_facts`."""

    __slots__ = ("owner",)

    def __init__(self, owner: type) -> None:
        super().__init__()
        self.owner = owner


def _class_facts(cls: type[Step]) -> dict[str, Any]:
    """A dict in which callers cache what they learned about ``cls`` (e.g. "run() is Step's own").

    Kept on the class itself (``_trun_facts``; a subclass sees its base's,
    hence the owner check) and thrown away by :class:`Register` whenever an
    attribute of ``cls`` or of a base class is set or deleted.
    """
    facts = cls._trun_facts
    if facts is None or facts.owner is not cls:
        facts = _ClassFacts(cls)
        type.__setattr__(cls, "_trun_facts", facts)
    return facts


def _no_event_handlers(step: Step, event: str) -> bool:
    """True when ``step.trigger_event(event, ...)`` is known to call nothing, so the call can be skipped.

    Known when no handler is registered at all, or once the class has
    triggered ``event`` (trigger_event fills the cache); and only for a step
    that keeps Step's own ``trigger_event``.
    """
    return ((not _handlers_registered or _event_dispatch_cache.get((type(step), event)) == ())
            and type(step).trigger_event is _step_trigger_event and "trigger_event" not in step.__dict__)


# -- the Step class -----------------------------------------------------------

class Step(metaclass=Register):
    """Base class of all steps: a unit of work with parameters, dependencies and outputs.

    Declare parameters as class attributes and override :meth:`requires`,
    :meth:`output` and :meth:`run`::

        class CountLines(trun.Step):
            date = trun.DateParameter()

            def requires(self):
                return FetchLog(date=self.date)

            def output(self):
                return trun.LocalTarget(f"counts/{self.date}.txt")

            def run(self):
                with self.input().open() as src, self.output().open("w") as dst:
                    dst.write(str(sum(1 for _ in src)))

    Positional constructor arguments fill the parameters in declaration
    order; missing ones come from the command line (``--CountLines-date``),
    the ``[CountLines]`` configuration section, or the parameter's default.
    """

    # class -> event name -> callbacks (a dict used as an ordered set);
    # shared by all classes, handlers apply to instances of subclasses too.
    _event_callbacks: ClassVar[dict[type, dict[str, dict[Callable[..., Any], None]]]] = {}

    #: Scheduler favours runnable steps with higher priority first.
    priority: Any = 0
    #: When true the worker reports the step as DISABLED instead of running it.
    disabled: Any = False
    #: Resources the running step holds, e.g. ``{"database": 1}``; limits come
    #: from the ``[resources]`` configuration section.
    resources: Any = {}
    #: Seconds after which the worker kills ``run()``; None means ``[worker] timeout``.
    worker_timeout: Any = None
    #: Most instances the scheduler merges into one batch run.
    max_batch_size: Any = float("inf")
    #: When False, the parameters are exposed as bare ``--param`` flags
    #: instead of ``--Family-param`` (used by ``core``).
    use_cmdline_section: ClassVar[bool] = True
    #: Keys of the ``[Family]`` configuration section that are not parameters
    #: but must not raise :class:`UnconsumedParameterWarning`.
    ignore_unconsumed: ClassVar[Iterable[str]] = frozenset()

    # Callbacks the worker injects while the step runs; None elsewhere.
    set_tracking_url: Callable[[str], Any] | None = None
    set_status_message: Callable[[str], Any] | None = None
    set_progress_percentage: Callable[[float], Any] | None = None
    decrease_running_resources: Callable[[dict[str, int]], Any] | None = None
    scheduler_messages: Any = None

    _visible_in_registry: ClassVar[bool] = True
    # The class's parameter tables (see _trun_param_spec) and the facts cached by
    # _class_facts(): the class's own, or a base class's (ignored; hence their owner).
    _trun_spec: ClassVar[_ParamSpec | None] = None
    _trun_facts: ClassVar[_ClassFacts | None] = None
    # Set by the Register metaclass for every class.
    _namespace_at_class_time: ClassVar[str] = ""

    #: Namespace of the class; read it with :meth:`get_step_namespace`.
    #: Set it as a plain class attribute (a property does not work).
    step_namespace: ClassVar[str | None] = _NOT_USER_SPECIFIED

    step_id: str
    param_kwargs: dict[str, Any]

    # -- policy hooks (properties so subclasses may compute them) ----------

    @property
    def batchable(self) -> bool:
        """True when this instance may run as part of a batch (it has batched parameters)."""
        return bool(self.batch_param_names())

    @property
    def retry_count(self) -> int | None:
        """Failures after which the scheduler disables the step; None uses ``[scheduler] retry_count``."""
        return None

    @property
    def disable_hard_timeout(self) -> int | None:
        """Seconds after the first failure after which the step is disabled; None uses the scheduler's."""
        return None

    @property
    def disable_window(self) -> int | None:
        """Window (seconds) in which failures are counted; None uses ``[scheduler] disable_window``."""
        # Honour the deprecated spelling when a subclass still overrides it.
        if type(self).disable_window_seconds is not Step.disable_window_seconds:
            return self.disable_window_seconds
        return None

    @property
    def disable_window_seconds(self) -> int | None:
        """Deprecated alias of :attr:`disable_window`."""
        warnings.warn("disable_window_seconds is deprecated, use disable_window instead",
                      DeprecationWarning, stacklevel=2)
        return None

    @property
    def owner_email(self) -> str | list[str] | None:
        """Extra recipients of failure e-mails: one address, comma-separated addresses, or a list."""
        return None

    def _owner_list(self) -> list[str]:
        """:attr:`owner_email` as a list of addresses."""
        owner_email = self.owner_email
        if owner_email is None:
            return []
        if isinstance(owner_email, str):
            return owner_email.split(",")
        return list(owner_email)

    @property
    def accepts_messages(self) -> bool:
        """When true, messages sent from the scheduler UI reach :attr:`scheduler_messages`."""
        return False

    # -- events --------------------------------------------------------------

    @classmethod
    def event_handler(cls, event: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a callback for ``event`` on this class and its subclasses.

        ``event`` is one of the :class:`trun.Event` names; the callback
        receives the arguments documented there.
        """
        def register(callback: Callable[..., Any]) -> Callable[..., Any]:
            global _handlers_registered
            cls._event_callbacks.setdefault(cls, {}).setdefault(event, {})[callback] = None
            _event_dispatch_cache.clear()
            _handlers_registered = True
            return callback
        return register

    @classmethod
    def remove_event_handler(cls, event: str, callback: Callable[..., Any]) -> None:
        """Unregister a callback added with :meth:`event_handler` on this same class."""
        global _handlers_registered
        try:
            del cls._event_callbacks[cls][event][callback]
            _event_dispatch_cache.clear()
            _handlers_registered = any(any(by_event.values()) for by_event in cls._event_callbacks.values())
        except KeyError:
            raise ValueError(
                f"{callback!r} is not registered for event {event!r} on {cls.__name__}; "
                "remove it from the class whose event_handler() registered it") from None

    def trigger_event(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Call every callback registered for ``event`` on this step's class or its bases.

        A callback that raises is logged and skipped; ``KeyboardInterrupt``
        stops the dispatch.
        """
        # The callbacks of a (class, event) pair are looked up once: the worker
        # triggers several events per step, most of them with no callback at all.
        key = (type(self), event)
        callbacks = _event_dispatch_cache.get(key)
        if callbacks is None:
            callbacks = tuple(callback
                              for event_class, callbacks_by_event in list(self._event_callbacks.items())
                              if isinstance(self, event_class)
                              for callback in callbacks_by_event.get(event, ()))
            _event_dispatch_cache[key] = callbacks
        for callback in callbacks:
            try:
                callback(*args, **kwargs)
            except KeyboardInterrupt:
                return
            except BaseException:
                logger.exception("Error in event callback for %r", event)

    # -- names ---------------------------------------------------------------

    @property
    def step_module(self) -> str:
        """The module to import to get this step's class (sent to the scheduler)."""
        return self.__class__.__module__

    @classmethod
    def get_step_namespace(cls) -> str:
        """The namespace of the class: ``step_namespace``, else the one in force at definition."""
        if cls.step_namespace != _NOT_USER_SPECIFIED:
            return cls.step_namespace  # type: ignore[return-value]
        if cls._namespace_at_class_time == _SAME_AS_PYTHON_MODULE:
            return cls.__module__
        return cls._namespace_at_class_time

    @property
    def step_family(self) -> str:  # type: ignore[override]
        """The family of the step (same as :meth:`get_step_family`)."""
        return self.__class__.get_step_family()

    @classmethod
    def get_step_family(cls) -> str:
        """``"<namespace>.<ClassName>"``, or just the class name when there is no namespace."""
        step_namespace = cls.get_step_namespace()
        if not step_namespace:
            return cls.__name__
        return f"{step_namespace}.{cls.__name__}"

    # -- parameters ----------------------------------------------------------

    @classmethod
    def _trun_param_spec(cls) -> _ParamSpec:
        spec = cls._trun_spec
        if spec is None or spec.owner is not cls:
            spec = _ParamSpec(cls)
            type.__setattr__(cls, "_trun_spec", spec)
        return spec

    @classmethod
    def get_params(cls) -> list[tuple[str, Parameter]]:
        """All ``(name, Parameter)`` pairs of the class, in declaration order."""
        spec = cls._trun_spec
        if spec is not None and spec.owner is cls and not spec.custom:
            return list(spec.params)
        return _collect_params(cls)

    @classmethod
    def batch_param_names(cls) -> list[str]:
        """Names of the parameters that have a ``batch_method``."""
        return list(cls._trun_param_spec().batch_names)

    @classmethod
    def get_param_names(cls, include_significant: bool = False) -> list[str]:
        """Names of the significant parameters, or of all with ``include_significant=True``."""
        return [name for name, p in cls.get_params() if include_significant or p.significant]

    @classmethod
    def get_param_values(cls, params: list[tuple[str, Parameter]], args: tuple[Any, ...] | list[Any],
                         kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        """Resolve the values of ``params`` for a constructor call with ``args`` and ``kwargs``.

        Returns ``[(name, value), ...]`` in the order of ``params``; lists and
        sets become tuples.  Raises :class:`~trun.parameter.MissingParameterException`,
        :class:`~trun.parameter.UnknownParameterException` or
        :class:`~trun.parameter.DuplicateParameterException` for a bad call.
        """
        params = list(params)
        by_name = dict(params)
        positional = [(n, p) for n, p in params if p.positional]
        result = _resolve_params(cls, cls.get_step_family(), params, by_name, positional, tuple(args), kwargs)
        return [(name, _list_to_tuple(result[name])) for name, _ in params]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        spec = type(self)._trun_param_spec()
        preset = self.__dict__.pop(_PRESET_KEY, None)
        if preset is not None and _same_call(preset, args, kwargs):
            values = preset[2]
        else:
            values = spec.resolve(type(self), args, kwargs)
        self._trun_init(spec, values)

    @classmethod
    def _trun_instantiate(cls, spec: _ParamSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                          values: tuple[Any, ...]) -> Step:
        """Create the instance for ``Register.__call__``, reusing ``values`` instead of resolving them again."""
        if spec.plain_construction:
            instance = object.__new__(cls)
            instance._trun_init(spec, values)
            return instance
        instance = cls.__new__(cls, *args, **kwargs)
        if isinstance(instance, cls):
            instance.__dict__[_PRESET_KEY] = (args, kwargs, values)
            try:
                instance.__init__(*args, **kwargs)
            finally:
                instance.__dict__.pop(_PRESET_KEY, None)
        return instance

    def _trun_init(self, spec: _ParamSpec, values: tuple[Any, ...]) -> None:
        # The part of construction shared by __init__ and Register's fast path.
        param_kwargs = dict(zip(spec.names, values))
        state = self.__dict__
        state.update(param_kwargs)
        state["param_kwargs"] = param_kwargs
        for name, check in spec.type_checks:
            check(name, param_kwargs[name])
        state["step_id"] = spec.step_id(param_kwargs)

    @property
    def param_args(self) -> tuple[Any, ...]:
        """Deprecated: the parameter values in declaration order; use :attr:`param_kwargs`."""
        warnings.warn("Use of param_args has been deprecated.", DeprecationWarning, stacklevel=2)
        return tuple(self.param_kwargs[name] for name, _ in self.get_params())

    def initialized(self) -> bool:
        """True once the constructor has run (the step has a :attr:`step_id`)."""
        return hasattr(self, "step_id")

    @classmethod
    def from_str_params(cls: type[_StepT], params_str: dict[str, Any]) -> _StepT:
        """Create an instance from ``{name: serialized value}`` (the inverse of :meth:`to_str_params`).

        A list value for a batched parameter is combined with the
        parameter's ``batch_method``.  Names that are not parameters are ignored.
        """
        kwargs = {}
        for param_name, param_obj in cls.get_params():
            if param_name in params_str:
                param_str = params_str[param_name]
                if isinstance(param_str, list):
                    kwargs[param_name] = param_obj._parse_list(param_str)
                else:
                    kwargs[param_name] = param_obj.parse(param_str)
        return cls(**kwargs)

    def to_str_params(self, only_significant: bool = False, only_public: bool = False) -> dict[str, str]:
        """Serialize the parameters to ``{name: string}``; PRIVATE parameters are always left out."""
        cls = type(self)
        spec = cls._trun_spec
        if spec is None or spec.owner is not cls:
            spec = cls._trun_param_spec()
        if not only_significant and not only_public:
            # What the worker sends for every report: the tables say it all. A loop,
            # not a comprehension: for a few parameters, making one costs more.
            serializers = spec.str_serializers
            params_str = {}
            for param_name, param_value in self.param_kwargs.items():
                serialize = serializers[param_name]
                if serialize is not None:
                    params_str[param_name] = serialize(param_value)
            return params_str
        params = spec.by_name
        params_str = {}
        for param_name, param_value in self.param_kwargs.items():
            param_obj = params[param_name]
            if ((not only_significant or param_obj.significant)
                    and (not only_public or param_obj.visibility == ParameterVisibility.PUBLIC)
                    and param_obj.visibility != ParameterVisibility.PRIVATE):
                params_str[param_name] = param_obj.serialize(param_value)
        return params_str

    def _get_param_visibilities(self) -> dict[str, int]:
        """``{name: visibility}`` of the non-PRIVATE parameters (sent to the scheduler)."""
        params = type(self)._trun_param_spec().by_name
        return {name: params[name].visibility.serialize() for name in self.param_kwargs
                if params[name].visibility != ParameterVisibility.PRIVATE}

    def clone(self, cls: type[_StepT] | None = None, **kwargs: Any) -> _StepT:
        """A new step of class ``cls`` (default: this class) with this step's values, updated by ``kwargs``.

        Every parameter of ``cls`` takes its value from ``kwargs`` if given,
        else from the attribute of the same name on this step; keyword
        arguments that ``cls`` has no parameter for are ignored.
        """
        target_cls = self.__class__ if cls is None else cls
        new_kwargs = {}
        for param_name, _ in target_cls.get_params():
            if param_name in kwargs:
                new_kwargs[param_name] = kwargs[param_name]
            elif hasattr(self, param_name):
                new_kwargs[param_name] = getattr(self, param_name)
        return target_cls(**new_kwargs)  # type: ignore[return-value]

    def __hash__(self) -> int:
        # Not stored: str hashes differ between processes (hash randomization),
        # and an unpickled step must hash like the steps of its new process.
        # str caches its own hash, so this stays cheap.
        return hash(self.step_id)

    def __repr__(self) -> str:
        """``Family(p1=v1, p2=v2)`` with the significant parameters in declaration order."""
        param_kwargs = self.__dict__.get("param_kwargs")
        if param_kwargs is None:
            return f"{self.get_step_family()}(<not initialized>)"
        parts = ["%s=%s" % (name, param_obj.serialize(param_kwargs[name]))
                 for name, param_obj in type(self)._trun_param_spec().repr_params if name in param_kwargs]
        return "{}({})".format(self.get_step_family(), ", ".join(parts))

    def __eq__(self, other: object) -> bool:
        return self.__class__ == other.__class__ and getattr(self, "step_id", None) == getattr(other, "step_id", None)

    # -- the workflow --------------------------------------------------------

    def complete(self) -> bool:
        """True when every output exists (False, with a warning, when there are none).

        Override for other notions of completeness; it must return a bool.
        """
        outputs = flatten(self.output())
        if not outputs:
            warnings.warn("Step %r without outputs has no custom complete() method" % self, stacklevel=2)
            return False
        return all(output.exists() for output in outputs)

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[Any]) -> Iterable[Any]:
        """Return those of ``parameter_tuples`` for which the step is complete.

        Override with an efficient check (one listing instead of N
        ``exists()``) to speed up the range tools; keep it consistent with
        :meth:`complete`.  The default raises :class:`BulkCompleteNotImplementedError`.
        """
        raise BulkCompleteNotImplementedError()

    def output(self) -> Any:
        """The target(s) this step produces: one Target or any nesting of lists/tuples/dicts."""
        return []

    def requires(self) -> Any:
        """The step(s) this one depends on: one Step or any nesting of lists/tuples/dicts/iterables."""
        return []

    def _requires(self) -> Any:
        """Dependencies including hidden ones; template base classes override it to add their own.

        Must include the ``_requires()`` of the superclass.
        """
        return flatten(self.requires())

    def process_resources(self) -> dict[str, int]:
        """The resources sent to the scheduler; template base classes override it to add some."""
        return self.resources

    def input(self) -> Any:
        """The outputs of :meth:`requires`, in the same structure."""
        return getpaths(self.requires())

    def deps(self) -> list[Step]:
        """The flat list of dependencies the scheduler sees."""
        if type(self)._requires is _step_requires and "_requires" not in self.__dict__:
            # Step's own _requires() is flatten(requires()); flattening twice gives the same list.
            return flatten(self.requires())
        return flatten(self._requires())

    def run(self) -> Any:
        """The work of the step.  When written as a generator, each ``yield`` declares dynamic
        dependencies; ``run()`` is restarted from the top once they are complete."""

    def on_failure(self, exception: BaseException) -> Any:
        """Called when :meth:`run` raised; the result is sent to the scheduler as the explanation.

        The default returns ``"Runtime error:\\n"`` followed by the traceback.
        """
        return "Runtime error:\n%s" % traceback.format_exc()

    def on_success(self) -> Any:
        """Called when :meth:`run` succeeded; the result is sent to the scheduler as the explanation."""
        return None

    @contextmanager
    def no_unpicklable_properties(self) -> Iterator[None]:
        """Temporarily replace the callbacks injected by the worker so the step can be pickled."""
        reserved = {name: self.__dict__[name] for name in _FORWARDED_ATTRIBUTES if name in self.__dict__}
        for name in reserved:
            self.__dict__[name] = "placeholder_during_pickling"
        try:
            yield
        finally:
            self.__dict__.update(reserved)


_step_trigger_event = Step.trigger_event
_step_requires = Step._requires


class MixinNaiveBulkComplete:
    """Mixin giving :meth:`Step.bulk_complete` by calling ``complete()`` on each instance.

    For steps whose ``complete()`` is cheap: it saves the range tools a
    round trip per instance without any storage-specific trick.
    """

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[Any]) -> list[Any]:
        done = []
        for parameter_tuple in parameter_tuples:
            if isinstance(parameter_tuple, (list, tuple)):
                instance = cls(*parameter_tuple)
            elif isinstance(parameter_tuple, dict):
                instance = cls(**parameter_tuple)
            else:
                instance = cls(parameter_tuple)
            if instance.complete():  # type: ignore[attr-defined]
                done.append(parameter_tuple)
        return done


class ExternalStep(Step):
    """A step produced outside trun: it has no ``run``, the worker only checks its outputs."""

    run = None  # type: ignore[assignment]


class WrapperStep(Step):
    """A step that only groups others: it is complete when all its requirements are."""

    def complete(self) -> bool:
        return all(requirement.complete() for requirement in flatten(self.requires()))


class Config(Step):
    """A parameter container read from the command line and the ``[ClassName]`` configuration section.

    ``MyConfig().option`` gives the resolved value.
    """


def _step_wraps(step_class: type) -> Callable[[type], type]:
    # Make a wrapper class look like the wrapped one (name, module, docstring,
    # namespace), so that its family and pickling are unchanged.
    assigned = (*functools.WRAPPER_ASSIGNMENTS, "_namespace_at_class_time")
    return functools.wraps(step_class, assigned=assigned, updated=[])


def externalize(step_class_or_object: Any) -> Any:
    """Return a copy of a step class or step object whose ``run`` is None (an external step).

    The original is not modified.  For a class, the copy is a hidden subclass
    with the same name, module and namespace (so the same family) that is not
    visible in the registry.  To make a class external from the start,
    subclass :class:`ExternalStep` instead.
    """
    copied = copy.copy(step_class_or_object)
    if copied is step_class_or_object:
        # copy.copy returns classes unchanged.
        step_class = step_class_or_object

        @_step_wraps(step_class)
        class _CopyOfClass(step_class):
            _visible_in_registry = False

        _CopyOfClass.run = None
        return _CopyOfClass
    copied.run = None
    return copied


def validate_requirement(step: Step, dependency: Any) -> None:
    """Raise :class:`InvalidRequirementError` unless ``dependency`` (from ``step.requires()``) is a Step.

    The worker calls this for every dependency it schedules.
    """
    if _is_step(dependency):
        return
    from trun.target import Target

    if isinstance(dependency, Target):
        raise InvalidRequirementError(
            f"{step!r}: requires() returned the target {dependency!r}; requires() can not return "
            "Target objects. Wrap it in an ExternalStep whose output() returns it, e.g. "
            "class MyInput(trun.ExternalStep): def output(self): return <the target>")
    raise InvalidRequirementError(
        f"{step!r}: requires() must return Step objects but {dependency!r} is a {type(dependency).__name__}")


class DynamicRequirements:
    """Dependencies yielded from ``run()``, optionally with one custom completeness check.

    ``custom_complete(complete_fn)`` replaces N calls of ``complete()`` by one
    check of your own (for instance one directory listing); ``complete_fn``
    is the worker's completeness function for single steps.
    """

    def __init__(self, requirements: Any, custom_complete: Callable[[Callable[[Step], bool]], bool] | None = None):
        self.requirements = requirements
        self.custom_complete = custom_complete
        self._flat_requirements: list[Step] | None = None
        self._paths: Any = None

    @property
    def flat_requirements(self) -> list[Step]:
        """The requirements as a flat list."""
        if self._flat_requirements is None:
            self._flat_requirements = flatten(self.requirements)
        return self._flat_requirements

    @property
    def paths(self) -> Any:
        """The outputs of the requirements, in their structure (what ``yield`` hands back)."""
        if self._paths is None:
            self._paths = getpaths(self.requirements)
        return self._paths

    def complete(self, complete_fn: Callable[[Step], bool] | None = None) -> bool:
        """True when all requirements are complete, by ``custom_complete`` if given."""
        if complete_fn is None:
            def complete_fn(step: Step) -> bool:
                return step.complete()
        if self.custom_complete:
            return self.custom_complete(complete_fn)
        return all(complete_fn(requirement) for requirement in self.flat_requirements)


# -- structures of steps and targets ------------------------------------------

def getpaths(struct: Any) -> Any:
    """Replace each Step in a structure by its ``output()``, keeping dicts, lists and tuples.

    Other iterables become lists; anything else raises ``TypeError``.
    """
    if isinstance(struct, Step):
        return struct.output()
    if isinstance(struct, dict):
        return struct.__class__((key, getpaths(value)) for key, value in struct.items())
    if isinstance(struct, (list, tuple)):
        mapped = [getpaths(item) for item in struct]
        if hasattr(struct, "_fields"):  # a namedtuple takes its fields as arguments
            return struct.__class__(*mapped)
        return struct.__class__(mapped)
    try:
        items = iter(struct)
    except TypeError:
        raise TypeError(f"Cannot map {struct!r} to Step/dict/list: expected a Step or a "
                        "dict/list/tuple/iterable of Steps") from None
    return [getpaths(item) for item in items]


def _is_step(obj: Any) -> bool:
    # isinstance(obj, Step) without abc's Python-level __instancecheck__:
    # Register is the metaclass of Step and of nothing else, so a class made
    # by it is a Step class (flatten() runs this for every dependency).
    return isinstance(type(obj), Register) or isinstance(obj, Step)


def _all_steps(items: list[Any] | tuple[Any, ...]) -> bool:
    """True when the items are all steps of one class made by Register (False does not mean they are not steps).

    A long list from ``requires()`` is nearly always of one class: the set of
    its items' classes is made in C, where a test per item would cost a dozen
    bytecodes for each of a layer's fifty dependencies.
    """
    kinds = set(map(type, items))
    return len(kinds) == 1 and type(kinds.pop()) is Register


# From this many items on, _all_steps() costs less than a test per item.
_MANY = 16


def flatten(struct: Any) -> list[Any]:
    """A flat list of the items of a nested structure of dicts (their values), lists and iterables.

    ``None`` gives ``[]``; a string or any non-iterable gives ``[struct]``::

        flatten({"a": t1, "b": [t2, (t3,)]}) == [t1, t2, t3]
    """
    if struct is None:
        return []
    if type(struct) is list or type(struct) is tuple:  # the usual case first
        if len(struct) >= _MANY and _all_steps(struct):
            return list(struct)
        items: Iterable[Any] = struct
    elif _is_step(struct) or isinstance(struct, str):
        return [struct]
    elif isinstance(struct, dict):
        items = struct.values()
    elif isinstance(struct, (list, tuple)):
        items = struct
    else:
        try:
            items = iter(struct)
        except TypeError:
            return [struct]
    flat: list[Any] = []
    for item in items:
        # The first test is _is_step's usual answer without its call.
        if type(type(item)) is Register or _is_step(item):
            flat.append(item)
        else:
            flat.extend(flatten(item))
    return flat


def flatten_output(step: Step) -> list[Any]:
    """All outputs of ``step``, looking through output-less (wrapper) steps to their requirements."""
    with_outputs: dict[Step, None] = {}  # ordered set
    queue = deque([step])
    while queue:
        current = queue.popleft()
        if flatten(current.output()):
            with_outputs.setdefault(current, None)
        else:
            queue.extend(flatten(current.requires()))
    return flatten([s.output() for s in with_outputs])
