"""How a step class turns constructor arguments into an instance: parameter values, then the cached object.

:class:`~trun.step_register.Register` calls into this module for every
``MyStep(...)``. A parameter's value comes from the constructor (by keyword or
position), else the command line (``--MyStep-param``), else the ``[MyStep]``
configuration section, else its default; values are normalized, and the
instance cache answers with the existing step for the same values.

Creating steps is on every workflow's hot path (``requires()`` builds them
again each time it is called), so each class gets a :class:`_ParamSpec` of
tables built on first use, holding a constructor *written for the class* and
compiled with ``exec`` (as :mod:`dataclasses` writes ``__init__``) for the
usual call that gives every parameter; anything else takes the general way
through :func:`_resolve_params`.

Hazards: the tables are rebuilt when an attribute of the class or of a base
class is set (``Register`` discards them), but a parameter object changed in
place after first use is not noticed; a default without context (no command
line, no ``[family]`` section) is memoized per class.
"""
from __future__ import annotations

import difflib
import inspect
import itertools
import logging
import operator
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from trun.cmdline_parser import CmdlineParser as _CmdlineParser
from trun.parameter import (
    DuplicateParameterException,
    MissingParameterException,
    Parameter,
    ParameterException,
    ParameterVisibility,
    UnconsumedParameterWarning,
    UnknownParameterException,
)
from trun.step_register import Register  # noqa: F401 - read by the compiled constructors

if TYPE_CHECKING:
    from trun.step import Step

logger = logging.getLogger("trun-interface")

def _list_to_tuple(value: Any) -> Any:
    # Lists and sets become tuples so that instances can be hashed and cached.
    if isinstance(value, (list, set)):
        return tuple(value)
    return value


def _describe_call(family: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return "%s[args=%s, kwargs=%s]" % (family, args, kwargs)


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _resolve_params(cls: type[Step], family: str, params: list[tuple[str, Parameter]],
                    by_name: dict[str, Parameter], positional: list[tuple[str, Parameter]],
                    args: tuple[Any, ...], kwargs: dict[str, Any],
                    default_memo: dict[str, Any] | None = None) -> dict[str, Any]:
    """Map every parameter of ``params`` to its value for a constructor call.

    Positional arguments fill positional parameters in declaration order,
    then keyword arguments, then command line / configuration / default.
    ``default_memo`` (from the class's tables) remembers values that came
    from defaults while neither a command line nor a ``[family]`` section
    existed, so that those lookups are not repeated for every instance.
    """
    result: dict[str, Any] = {}
    if args:
        if len(args) > len(positional):
            raise UnknownParameterException(
                "%s: takes at most %d parameters (%d given)"
                % (_describe_call(family, args, kwargs), len(positional), len(args)))
        for (name, param_obj), arg in zip(positional, args):
            result[name] = param_obj.normalize(arg)
    for name, arg in kwargs.items():
        if name in result:
            raise DuplicateParameterException(
                "%s: parameter %s was already set as a positional parameter"
                % (_describe_call(family, args, kwargs), name))
        param_obj = by_name.get(name)
        if param_obj is None:
            known = ", ".join(by_name) or "none"
            raise UnknownParameterException(
                "%s: unknown parameter %s.%s %s takes the parameters: %s"
                % (_describe_call(family, args, kwargs), name, _suggest(name, by_name), family, known))
        result[name] = param_obj.normalize(arg)

    conf = _current_config()
    has_section = conf.has_section(family)
    if len(result) < len(params):
        # Without a command line and a [family] section, a parameter's value
        # can only be its default, which is the same for every instance.
        use_memo = default_memo is not None and not has_section and _CmdlineParser.get_instance() is None
        for name, param_obj in params:
            if name in result:
                continue
            if use_memo:
                value = default_memo.get(name, _NOT_MEMOIZED)  # type: ignore[union-attr]
                if value is _NOT_MEMOIZED:
                    value = _value_from_context(family, name, param_obj, args, kwargs)
                    if _default_is_context_free(param_obj):
                        default_memo[name] = value  # type: ignore[index]
                result[name] = value
            else:
                result[name] = _value_from_context(family, name, param_obj, args, kwargs)
    if has_section:
        _warn_unconsumed_config(cls, family, result, conf)
    return result


_NOT_MEMOIZED = object()

# Parameter methods that decide where a value comes from; a subclass that
# overrides one of them may read other sources, so its defaults are not memoized.
_LOOKUP_METHODS = ("step_value", "has_step_value", "_find_value", "_get_value", "_value_iterator",
                   "_raw_config_value", "_get_value_from_config")


def _default_is_context_free(param_obj: Parameter) -> bool:
    if getattr(param_obj, "_config_path", None):
        return False  # read from another config section
    param_type = type(param_obj)
    return all(getattr(param_type, method, None) is getattr(Parameter, method, None) for method in _LOOKUP_METHODS)


def _current_config() -> Any:
    # Imported on first use: declaring steps does not need the configuration.
    global _get_config
    if _get_config is None:
        from trun.configuration import get_config

        _get_config = get_config
    return _get_config()


_get_config: Callable[[], Any] | None = None


def _value_from_context(family: str, name: str, param_obj: Parameter,
                        args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The value of a parameter not passed to the constructor: command line, config, default."""
    try:
        return param_obj.step_value(family, name)
    except MissingParameterException:
        flag = "--" + f"{family}_{name}".replace("_", "-")
        raise MissingParameterException(
            "%s: requires the '%s' parameter to be set (pass %s=..., give %s on the command line, "
            "or set %s in the [%s] section of the configuration)"
            % (_describe_call(family, args, kwargs), name, name, flag, name, family)) from None
    except (ValueError, ParameterException):
        raise  # already names the step, the parameter and where the value came from
    except Exception as exc:
        raise ValueError("%s: Error when parsing the default value of '%s': %s"
                         % (_describe_call(family, args, kwargs), name, exc)) from exc


# (family, key) pairs already warned about, so each stray key warns once.
_warned_unconsumed: set[tuple[str, str]] = set()


def _warn_unconsumed_config(cls: type[Step], family: str, values: dict[str, Any], conf: Any,
                            stacklevel: int = 5) -> None:
    """Warn once per key of the ``[family]`` config section that names no parameter.

    ``stacklevel`` is counted from here: the warning names the code that created the step.
    """
    ignore = getattr(cls, "ignore_unconsumed", ()) or ()
    for key, value in conf.items(family):
        key = key.replace("-", "_")
        if key in values or key in ignore or (family, key) in _warned_unconsumed:
            continue
        if key in cls._trun_param_spec().by_name:
            continue  # a parameter left out of a partial get_param_values() call
        _warned_unconsumed.add((family, key))
        warnings.warn(
            "The configuration contains the parameter '%s' with value '%s' that is not consumed by the "
            "step '%s'.%s" % (key, value, family, _suggest(key, values)),
            UnconsumedParameterWarning, stacklevel=stacklevel)


class _ParamSpec:
    """Per-class tables derived from the parameters, built once and cached on the class.

    :class:`Register` discards it when an attribute of the class (or of a base
    class) changes after definition.
    """

    __slots__ = ("family", "params", "names", "by_name", "positional", "id_params", "repr_params",
                 "batch_names", "type_checks", "custom", "plain_construction", "default_memo",
                 "normalizers", "identity", "get_values", "id_serializers", "step_id", "str_serializers", "owner",
                 "new_from_call")

    def __init__(self, cls: type[Step]) -> None:
        from trun.step import Step, _compile_step_id  # trun.step imports this module

        self.owner = cls
        self.custom = (cls.get_params.__func__ is not Step.get_params.__func__  # type: ignore[attr-defined]
                       or cls.get_param_values.__func__ is not Step.get_param_values.__func__)  # type: ignore[attr-defined]
        params = list(cls.get_params()) if self.custom else _collect_params(cls)
        self.family = cls.get_step_family()
        self.params = params
        self.names = tuple(name for name, _ in params)
        self.by_name = dict(params)
        self.positional = [(n, p) for n, p in params if p.positional]
        self.id_params = [(n, p) for n, p in params
                          if p.significant and p.visibility == ParameterVisibility.PUBLIC]
        self.repr_params = [(n, p) for n, p in params if p.significant]
        self.batch_names = [n for n, p in params if p._is_batchable()]
        self.type_checks = [(n, p._warn_on_wrong_param_type) for n, p in params
                            if hasattr(p, "_warn_on_wrong_param_type") and not _type_check_is_noop(p)]
        self.plain_construction = cls.__init__ is Step.__init__ and cls.__new__ is object.__new__
        self.default_memo: dict[str, Any] = {}
        # None: the parameter keeps the value as given (Parameter.normalize).
        self.normalizers = {n: None if type(p).normalize is Parameter.normalize else p.normalize
                            for n, p in params}
        #: True when no parameter changes the values it is given.
        self.identity = not any(self.normalizers.values())
        #: mapping -> its values of the parameters (two or more), in declaration order: one C call.
        self.get_values: Callable[[Any], Any] = operator.itemgetter(*self.names) if len(params) > 1 else tuple
        self.id_serializers = [(n, _serializer(p)) for n, p in self.id_params]
        #: param_kwargs -> step id: what step_id_str() says, compiled for this class.
        self.step_id: Callable[[dict[str, Any]], str] = _compile_step_id(self.family, self.id_serializers)
        # None for PRIVATE parameters, which to_str_params() leaves out.
        self.str_serializers = {n: None if p.visibility == ParameterVisibility.PRIVATE else _serializer(p)
                                for n, p in params}
        #: (cls, args, kwargs) -> the step, or None; see _compile_new_from_call.
        self.new_from_call = _compile_new_from_call(self)
        _share_attribute_names(cls, self.names)

    def resolve(self, cls: type[Step], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Values of all parameters, in declaration order, for a constructor call."""
        if self.custom:
            pairs = cls.get_param_values(list(self.params), args, kwargs)
            return tuple(value for _, value in pairs)
        normalizers = self.normalizers
        if not args and len(kwargs) == len(normalizers) and kwargs.keys() == normalizers.keys():
            # Every parameter given by keyword (how requires() usually builds
            # steps): no command line, config or default is consulted, and
            # nothing can be unknown or given twice.
            if self.identity:
                given: dict[str, Any] = kwargs
                values = (kwargs[self.names[0]],) if len(kwargs) == 1 else self.get_values(kwargs)
            else:
                given = {}
                for name, arg in kwargs.items():
                    normalize = normalizers[name]
                    given[name] = arg if normalize is None else normalize(arg)
                values = [given[name] for name in self.names]
            conf = _current_config()
            if conf.has_section(self.family):
                _warn_unconsumed_config(cls, self.family, given, conf, stacklevel=4)
        else:
            result = _resolve_params(cls, self.family, self.params, self.by_name, self.positional, args, kwargs,
                                     self.default_memo)
            values = [result[name] for name in self.names]
        if any(map(isinstance, values, _LIST_OR_SET)):
            return tuple([tuple(value) if isinstance(value, (list, set)) else value for value in values])
        return tuple(values)


_NEW_FROM_CALL_TEMPLATE = """\
def new_from_call(cls, args, kwargs, {defaults}):
    if args:
        if kwargs or len(args) != {count} or not {all_positional}:
            return None
        {unpack_args} = args
    else:
        if len(kwargs) != {count}:
            return None
        try:
            {unpack}
        except KeyError:
            return None
    if not ({strings}):
        return None  # Parameter warns about a non-str: the general way, so that the warning points where it did
    {normalize}
    cache = Register._instance_cache
    if cache is not None:
        # A step made before (most calls: requires() runs again each time a step
        # is checked or run). A list or set, which the general way stores as a
        # tuple, cannot be hashed: it goes on below.
        instances = cache.get(cls)
        if instances is not None:
            try:
                instance = instances.get(({values},))
            except TypeError:
                pass
            else:
                if instance is not None:
                    return instance
    {tuples}
    values = ({values},)
    instances = None
    if cache is not None:
        instances = cache.get(cls)
        if instances is None:
            instances = cache[cls] = {{}}
        try:
            instance = instances.get(values)
        except TypeError:
            logger.debug("Not all parameter values of %s are hashable, so the instance is not cached",
                         cls.__name__)
            instances = None
        else:
            if instance is not None:
                # Made before, when its [family] section was looked at: each
                # unconsumed key is warned about once per process anyway.
                return instance
    conf = _current_config()
    if conf.has_section(family):
        _warn_unconsumed_config(cls, family, kwargs, conf, stacklevel=4)
    instance = _object_new(cls)
    param_kwargs = {{{param_kwargs}}}
    state = instance.__dict__
    {fill}
    state["param_kwargs"] = param_kwargs
    state["step_id"] = step_id(param_kwargs)
    if instances is not None:
        instances[values] = instance
    return instance
"""


def _normalizing_source(indexes: list[int]) -> str:
    """The constructor's lines that normalize the values ``v<i>`` of the parameters at ``indexes``."""
    lines = [f"v{i} = _normalize{i}(v{i})" for i in indexes]
    if len(lines) < 2:
        return lines[0] if lines else "pass"
    body = "\n        ".join(lines)
    return (f"try:\n        {body}\n    except Exception:\n"
            # The general way normalizes in the caller's keyword order (positional: declaration order).
            "        if args or tuple(kwargs) == _names:\n            raise\n"
            "        return None")


def _share_attribute_names(cls: type, names: tuple[str, ...]) -> None:
    """Enter in ``cls``'s shared table of attribute names every name its steps get, before the first step is made.

    CPython keeps the attribute names of a class's instances in one table
    that all of them share, each instance holding only an array of values.
    A name missing from that table when an instance gets it turns the
    instance's attributes into a dict of their own: about 180 bytes more per
    step that runs, since running a step hands it five callbacks
    (``set_tracking_url``...). Setting every such name once, in the order
    construction sets them, on a throw-away instance enters them all.

    Only an optimisation: on an interpreter that lays out attributes
    otherwise, the names are set on an object that is then dropped. A class
    with a ``__del__`` is left alone, so no finalizer sees the throw-away.
    """
    from trun.step import _FORWARDED_ATTRIBUTES  # trun.step imports this module

    if hasattr(cls, "__del__"):
        return
    # A name the class gives a setter of its own (a property) is not kept in the
    # instance, and the setter must not run on the throw-away.
    plain = [name for name in (*names, "param_kwargs", "step_id", *_FORWARDED_ATTRIBUTES)
             if not hasattr(type(inspect.getattr_static(cls, name, None)), "__set__")]
    try:
        throw_away = object.__new__(cls)
        for name in plain:
            object.__setattr__(throw_away, name, None)
    except Exception:  # noqa: S110 - a class that refuses plain attributes only misses the saving
        pass


def _compile_new_from_call(spec: _ParamSpec) -> Callable[[type, tuple[Any, ...], dict[str, Any]], Any] | None:
    """``Register.__call__`` for a call giving every parameter, written out for the class.

    Every parameter by keyword (the usual way ``requires()`` makes steps),
    or every one by position: the function does what ``resolve()``, the
    instance cache and ``_trun_init()`` do then, without their loops and
    calls. It returns None for a call it does not handle (a missing or
    unknown parameter...), which then goes the general way. Only for
    classes that keep Step's own ``__init__``/``__new__``.

    With several parameters that have their own ``normalize``, it normalizes
    in declaration order, where the general way follows the caller's keyword
    order: when one raises and the caller named the parameters in another
    order, the call goes the general way, so that the error is the one the
    general way raises first.
    """
    normalizers = {name: normalize for name, normalize in spec.normalizers.items() if normalize is not None}
    if spec.custom or not spec.plain_construction or not spec.names:
        return None
    # The only type check left on the way is plain Parameter's "is it a str?"
    # (see _type_check_is_noop): asked first, and a value that would warn goes
    # the general way. Any other check: no function.
    checked = [name for name, _ in spec.type_checks]
    if any(type(spec.by_name[name]) is not Parameter or name in normalizers for name in checked):
        return None
    names = spec.names
    variables = [f"v{i}" for i in range(len(names))]
    normalize_args = [f"_normalize{i}" for i, name in enumerate(names) if name in normalizers]
    source = _NEW_FROM_CALL_TEMPLATE.format(
        defaults=", ".join(f"{arg}={arg}" for arg in ["family", "step_id", "_object_new", "_names", *normalize_args]),
        count=len(names),
        # Every value read before any is normalized: a KeyError raised by a normalizer is its own.
        unpack="\n            ".join(f"{var} = kwargs[{name!r}]" for var, name in zip(variables, names)),
        unpack_args="".join(f"{var}, " for var in variables),
        all_positional=len(spec.positional) == len(names),
        normalize=_normalizing_source([i for i, name in enumerate(names) if name in normalizers]),
        # Lists and sets become tuples, as resolve() makes them.
        tuples="\n    ".join(f"if isinstance({var}, (list, set)):\n        {var} = tuple({var})" for var in variables),
        values=", ".join(variables),
        param_kwargs=", ".join(f"{name!r}: {var}" for var, name in zip(variables, names)),
        fill="\n    ".join(f"state[{name!r}] = {var}" for var, name in zip(variables, names)),
        strings=" and ".join(f"isinstance(v{i}, str)" for i, name in enumerate(names) if name in checked) or "True",
    )
    namespace: dict[str, Any] = {f"_normalize{i}": normalizers[name] for i, name in enumerate(names)
                                 if name in normalizers}
    namespace.update(family=spec.family, step_id=spec.step_id, _object_new=object.__new__, _names=names)
    exec(source, globals(), namespace)  # noqa: S102 - the source is made above from identifiers and reprs
    return namespace["new_from_call"]



# isinstance(value, (list, set)) for each value of a map().
_LIST_OR_SET = itertools.repeat((list, set))


def _serializer(param_obj: Parameter) -> Callable[[Any], str]:
    # Parameter.serialize is str(); calling str directly skips a Python frame.
    return str if type(param_obj).serialize is Parameter.serialize else param_obj.serialize


def _type_check_is_noop(param_obj: Parameter) -> bool:
    # Parameter's and TimeDeltaParameter's checks only look at instances of
    # exactly that class; for any other parameter they return at once.
    from trun.parameter import TimeDeltaParameter

    check = type(param_obj)._warn_on_wrong_param_type
    for owner in (Parameter, TimeDeltaParameter):
        if check is owner._warn_on_wrong_param_type and type(param_obj) is not owner:
            return True
    return False


def _collect_params(cls: type) -> list[tuple[str, Parameter]]:
    """All ``(name, Parameter)`` attributes of ``cls`` and its bases, in declaration order."""
    attributes: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        attributes.update(vars(klass))
    params = [(name, value) for name, value in attributes.items() if isinstance(value, Parameter)]
    params.sort(key=lambda pair: pair[1]._counter)
    return params


def _same_call(preset: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # True when an overridden __init__ passed the constructor's arguments on unchanged.
    preset_args, preset_kwargs, _ = preset
    if len(args) != len(preset_args) or len(kwargs) != len(preset_kwargs):
        return False
    for given, original in zip(args, preset_args):
        if given is not original:
            return False
    for name, given in kwargs.items():
        if name not in preset_kwargs or preset_kwargs[name] is not given:
            return False
    return True
