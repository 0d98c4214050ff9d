"""The registry of step classes and the metaclass that feeds it.

Every subclass of :class:`trun.Step` is created by :class:`Register`, which

1. records the class so that it can be found by family name
   (``trun MyStep`` on the command line, ``load_step`` in a worker that runs
   steps for the scheduler), with "Did you mean …?" suggestions when the name
   is unknown;
2. remembers the namespace in force when the class was defined
   (:func:`trun.namespace`, :func:`trun.auto_namespace`);
3. caches instances: ``MyStep(a=1)`` twice returns the same object.

Hazards:

* The registry and the instance cache are **process-global**.  Tests that
  define steps should call :meth:`Register.clear_instance_cache` between
  cases, and give classes distinct names (or namespaces) where a lookup by
  name could find two of them.
* Instances are cached by parameter values, including insignificant ones;
  a step holding unhashable values (e.g. a plain ``dict``) is not cached.
  The cache is keyed by class, then by the tuple of values.
* Setting an attribute on a step class after it was defined (as
  :func:`trun.util.inherits` does) discards the per-class parameter tables;
  that is supported, but slow if done in a loop.
"""
from __future__ import annotations

import abc
import difflib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from typing_extensions import dataclass_transform

if TYPE_CHECKING:  # pragma: no cover
    from trun.parameter import Parameter
    from trun.parameter import Parameter as _FieldSpecifier
    from trun.step import Step
else:
    # trun.parameter is not imported here (it imports modules that import this
    # one); trun.step puts the real class into __dataclass_transform__.
    _FieldSpecifier = object

__all__ = [
    "Register",
    "StepClassAmbigiousException",
    "StepClassException",
    "StepClassNotFoundException",
    "load_step",
]

logger = logging.getLogger("trun-interface")


class StepClassException(Exception):
    """A step class could not be found by name."""


class StepClassNotFoundException(StepClassException):
    """No registered step class has the requested family name."""


class StepClassAmbigiousException(StepClassException):
    """Two unrelated step classes share the requested family name (Luigi's spelling is kept)."""


#: Placeholder that :meth:`Register._get_reg` stores for a family name
#: claimed by two unrelated classes.
_AMBIGUOUS_CLASS = object()

#: Value stored by :func:`trun.auto_namespace`: "use the class's module".
_SAME_AS_PYTHON_MODULE = "_same_as_python_module"


@dataclass_transform(kw_only_default=True, field_specifiers=(_FieldSpecifier,))
class Register(abc.ABCMeta):
    """Metaclass of :class:`trun.Step`: registry, namespaces and instance cache.

    Type checkers see step classes as dataclass-like (``dataclass_transform``),
    so parameters declared with annotations appear as keyword arguments of the
    constructor.
    """

    # cls -> parameter values -> instance; None when caching is disabled. Keyed
    # per class so that a key is a tuple of plain values, which the garbage
    # collector stops tracking, instead of a (class, values) pair it tracks for ever.
    _instance_cache: dict[type, dict[tuple[Any, ...], Any]] | None = {}
    # scope (module prefix) -> namespace set by trun.namespace()/auto_namespace().
    _default_namespace_dict: dict[str, str] = {}
    # Every class ever created by this metaclass, in definition order.
    _reg: list[type] = []
    AMBIGUOUS_CLASS = _AMBIGUOUS_CLASS
    """Stored by :meth:`_get_reg` for a family name that two unrelated classes share."""

    # Bumped whenever the registry may have changed; keys the _get_reg() cache.
    _reg_generation: int = 0
    _reg_cache: tuple[int, dict[str, Any], dict[str, list[type]]] | None = None

    def __new__(mcs, classname: str, bases: tuple[type, ...], classdict: dict[str, Any], **kwargs: Any) -> Register:
        cls = super().__new__(mcs, classname, bases, classdict, **kwargs)
        type.__setattr__(cls, "_namespace_at_class_time", mcs._get_namespace(cls.__module__))
        mcs._reg.append(cls)
        Register._reg_generation += 1
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        """Create a step, or return the cached instance with the same parameter values.

        Arguments are normalized and completed (command line, configuration,
        defaults) before the cache is consulted, so ``MyStep(1)`` and
        ``MyStep(a=1)`` are the same object.
        """
        spec = cls._trun_spec
        if spec is None or spec.owner is not cls:  # none yet, or a base class's
            spec = cls._trun_param_spec()
        if spec.new_from_call is not None:
            instance = spec.new_from_call(cls, args, kwargs)
            if instance is not None:
                return instance
        values = spec.resolve(cls, args, kwargs)
        cache = Register._instance_cache
        if cache is None:
            return cls._trun_instantiate(spec, args, kwargs, values)
        instances = cache.get(cls)
        if instances is None:
            instances = cache[cls] = {}
        try:
            instance = instances.get(values)
        except TypeError:
            logger.debug("Not all parameter values of %s are hashable, so the instance is not cached",
                         cls.__name__)
            return cls._trun_instantiate(spec, args, kwargs, values)
        if instance is None:
            instance = instances[values] = cls._trun_instantiate(spec, args, kwargs, values)
        return instance

    def __setattr__(cls, name: str, value: Any) -> None:
        type.__setattr__(cls, name, value)
        cls._discard_param_tables()

    def __delattr__(cls, name: str) -> None:
        type.__delattr__(cls, name)
        cls._discard_param_tables()

    def _discard_param_tables(cls) -> None:
        # Parameters, the namespace or the constructor of ``cls`` (and so of
        # its subclasses) may have changed: rebuild their tables, and forget
        # the facts cached about them (step._class_facts), on next use.
        Register._reg_generation += 1
        pending = [cls]
        while pending:
            klass = pending.pop()
            for name in ("_trun_spec", "_trun_facts"):
                # None rather than deleted: Step's own None is what lookups fall back on.
                if klass.__dict__.get(name) is not None:
                    type.__setattr__(klass, name, None)
            pending.extend(type.__subclasses__(klass))

    @classmethod
    def clear_instance_cache(mcs) -> None:
        """Forget every cached step instance (and re-enable the cache if it was disabled)."""
        Register._instance_cache = {}

    @classmethod
    def disable_instance_cache(mcs) -> None:
        """Stop caching: every constructor call creates a new instance."""
        Register._instance_cache = None

    @property
    def step_family(cls) -> str:
        """The family of the class: ``"<namespace>.<ClassName>"``, or the class name without namespace."""
        return cls.get_step_family()

    # -- the registry ---------------------------------------------------------

    @classmethod
    def _get_reg(mcs) -> dict[str, Any]:
        """Return ``{family: class}`` for every visible registered class.

        A family claimed by two classes of which neither derives from the
        other maps to :attr:`AMBIGUOUS_CLASS`; when one derives from the other
        the most derived class wins (decorators such as
        :func:`trun.util.requires` make such pairs).
        """
        return mcs._registry()[0]

    @classmethod
    def _registry(mcs) -> tuple[dict[str, Any], dict[str, list[type]]]:
        cached = Register._reg_cache
        if cached is not None and cached[0] == Register._reg_generation:
            return cached[1], cached[2]
        reg: dict[str, Any] = {}
        claimants: dict[str, list[type]] = {}
        for step_cls in Register._reg:
            if not step_cls._visible_in_registry:
                continue
            name = step_cls.get_step_family()
            claimants.setdefault(name, []).append(step_cls)
            known = reg.get(name)
            if known is not None and (known is _AMBIGUOUS_CLASS or not issubclass(step_cls, known)):
                reg[name] = _AMBIGUOUS_CLASS
            else:
                reg[name] = step_cls
        Register._reg_cache = (Register._reg_generation, reg, claimants)
        return reg, claimants

    @classmethod
    def _set_reg(mcs, reg: dict[str, Any]) -> None:
        """Replace the registry by the classes of ``reg`` (the complement of :meth:`_get_reg`)."""
        Register._reg = [step_cls for step_cls in reg.values() if step_cls is not _AMBIGUOUS_CLASS]
        Register._reg_generation += 1

    @classmethod
    def step_names(mcs) -> list[str]:
        """Sorted family names of all registered step classes."""
        return sorted(mcs._get_reg())

    @classmethod
    def steps_str(mcs) -> str:
        """The registered family names, comma separated (for messages)."""
        return ",".join(mcs.step_names())

    @classmethod
    def get_step_cls(mcs, name: str) -> type[Step]:
        """Return the step class whose family is ``name``.

        Raises :class:`StepClassNotFoundException` (with suggestions) when no
        class has that family, and :class:`StepClassAmbigiousException` when
        two unrelated classes share it.
        """
        reg, claimants = mcs._registry()
        step_cls = reg.get(name)
        if step_cls is None:
            raise StepClassNotFoundException(mcs._missing_step_msg(name))
        if step_cls is _AMBIGUOUS_CLASS:
            where = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in claimants[name])
            raise StepClassAmbigiousException(
                f"Step {name!r} is ambiguous: it is defined by more than one class ({where}). "
                "Give the classes different names or set step_namespace on them."
            )
        return step_cls

    @classmethod
    def get_all_params(mcs) -> Iterator[tuple[str, bool, str, Parameter]]:
        """Yield ``(family, is_without_section, param_name, param)`` for every registered class.

        ``is_without_section`` is true for classes with
        ``use_cmdline_section = False``, whose parameters are exposed as bare
        ``--param`` flags.  Ambiguous families are skipped.
        """
        for step_name, step_cls in mcs._get_reg().items():
            if step_cls is _AMBIGUOUS_CLASS:
                continue
            for param_name, param_obj in step_cls.get_params():
                yield step_name, (not step_cls.use_cmdline_section), param_name, param_obj

    @staticmethod
    def _editdistance(a: str, b: str) -> int:
        """Unweighted Levenshtein distance between ``a`` and ``b``."""
        previous = list(range(len(b) + 1))
        for i, char_a in enumerate(a, start=1):
            current = [i] + [0] * len(b)
            for j, char_b in enumerate(b, start=1):
                current[j] = min(current[j - 1] + 1, previous[j] + 1, previous[j - 1] + (char_a != char_b))
            previous = current
        return previous[-1]

    @classmethod
    def _missing_step_msg(mcs, step_name: str) -> str:
        names = mcs.step_names()
        by_distance = sorted((mcs._editdistance(step_name, other), other) for other in names)
        candidates = [other for distance, other in by_distance if distance <= 5 and distance < len(other)]
        folded = step_name.lower()
        candidates += [other for other in names if other.lower() == folded and other not in candidates]
        candidates += [other for other in difflib.get_close_matches(step_name, names, n=3)
                       if other not in candidates]
        hint = ("If the step is defined in a module that is not imported yet, "
                "name it with --module <module> (or import it before running).")
        if candidates:
            return "No step %s. Did you mean:\n%s\n%s" % (step_name, "\n".join(candidates), hint)
        return "No step %s. Candidates are: %s\n%s" % (step_name, mcs.steps_str(), hint)

    # -- namespaces -----------------------------------------------------------

    @classmethod
    def _get_namespace(mcs, module_name: str) -> str:
        for parent in mcs._module_parents(module_name):
            entry = mcs._default_namespace_dict.get(parent)
            if entry:
                return entry
        return ""

    @staticmethod
    def _module_parents(module_name: str) -> Iterator[str]:
        """Yield ``module_name`` and its parent packages, most specific first, then ``""``."""
        parts = module_name.split(".")
        for i in range(len(parts), 0, -1):
            yield ".".join(parts[:i])
        if module_name:
            yield ""


def load_step(module: str | None, step_name: str, params_str: dict[str, Any]) -> Step:
    """Import ``module`` (if given), find the class ``step_name`` and build it from string parameters.

    Used by workers that run steps named by the scheduler.
    """
    if module is not None:
        __import__(module)
    step_cls = Register.get_step_cls(step_name)
    return step_cls.from_str_params(params_str)
