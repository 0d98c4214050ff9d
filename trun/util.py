"""Decorators and helpers that pass parameters from one step class to another.

In a chain ``A -> B -> C`` the downstream steps usually need every parameter
of the upstream ones.  Instead of re-declaring them::

    class Fetch(trun.Step):
        date = trun.DateParameter()

    @trun.util.requires(Fetch)
    class Count(trun.Step):
        def output(self): ...
        def run(self):
            self.input()  # the output of Fetch(date=self.date)

:func:`inherits` copies the parameters (and adds ``clone_parent()`` /
``clone_parents()``); :func:`requires` also writes ``requires()``;
:func:`copies` also writes a ``run()`` that copies the input to the output;
:func:`delegates` runs "sub-steps" inside the wrapping step.
:func:`previous` and :func:`get_previous_completed` walk back in time along a
date-like parameter.

Hazards:

* The decorators modify the decorated class in place (:func:`inherits`,
  :func:`requires`) or return a subclass of the same name (:func:`copies`,
  :func:`delegates`).  A parameter the decorated class already defines is
  kept, not replaced by the inherited one.
* :func:`previous` needs exactly one date-like parameter.
"""
from __future__ import annotations

import datetime
import logging
from typing import Any, TypeVar

from trun import parameter
from trun.step import Step, _step_wraps, flatten
from trun.step_register import Register

__all__ = ["common_params", "copies", "delegates", "get_previous_completed", "inherits", "previous", "requires"]

logger = logging.getLogger("trun-interface")

_StepClassT = TypeVar("_StepClassT", bound=type)


def common_params(step_instance: Step, step_cls: type[Step]) -> dict[str, Any]:
    """The values of ``step_instance`` for the parameters that ``step_cls`` also has.

    ``step_cls`` must be a step class, not an instance.
    """
    if not isinstance(step_cls, Register):
        raise TypeError(f"common_params() needs a step class as second argument, got {step_cls!r}; "
                        "pass the class (e.g. MyStep), not an instance (MyStep())")
    instance_param_names = {name for name, _ in step_instance.get_params()}
    cls_params = dict(step_cls.get_params())
    shared = [(name, cls_params[name]) for name in cls_params if name in instance_param_names]
    shared_kwargs = {name: step_instance.param_kwargs[name] for name, _ in shared}
    return dict(step_instance.get_param_values(shared, [], shared_kwargs))


def _check_step_classes(decorator: str, positional: tuple[Any, ...], named: dict[str, Any]) -> None:
    if not positional and not named:
        raise TypeError(f"@{decorator}() needs at least one step class, e.g. @{decorator}(OtherStep)")
    if positional and named:
        raise TypeError(f"@{decorator}() takes step classes either positionally or by name, not both")
    for step_cls in (*positional, *named.values()):
        if not isinstance(step_cls, Register):
            raise TypeError(f"@{decorator}() takes step classes, got {step_cls!r}; "
                            "pass the class (e.g. OtherStep), not an instance (OtherStep())")


class inherits:
    """Class decorator copying the parameters of other step classes onto the decorated one.

    ``@inherits(A, B)`` adds ``clone_parent()`` (an ``A`` with the shared
    values) and ``clone_parents()`` (a list ``[A(...), B(...)]``);
    ``@inherits(a=A, b=B)`` adds ``clone_parents()`` returning a dict.
    Parameters the decorated class already has are kept.  Keyword
    arguments of ``clone_parent(**kwargs)`` override values.
    """

    def __init__(self, *steps_to_inherit: type[Step], **kw_steps_to_inherit: type[Step]) -> None:
        _check_step_classes("inherits", steps_to_inherit, kw_steps_to_inherit)
        self.steps_to_inherit = steps_to_inherit
        self.kw_steps_to_inherit = kw_steps_to_inherit

    def __call__(self, step_that_inherits: _StepClassT) -> _StepClassT:
        for step_to_inherit in self.steps_to_inherit or self.kw_steps_to_inherit.values():
            for param_name, param_obj in step_to_inherit.get_params():
                if not hasattr(step_that_inherits, param_name):
                    setattr(step_that_inherits, param_name, param_obj)

        steps_to_inherit = self.steps_to_inherit
        kw_steps_to_inherit = self.kw_steps_to_inherit
        if steps_to_inherit:
            def clone_parent(_self: Step, **kwargs: Any) -> Step:
                return _self.clone(cls=steps_to_inherit[0], **kwargs)

            def clone_parents(_self: Step, **kwargs: Any) -> Any:
                return [_self.clone(cls=step_to_inherit, **kwargs) for step_to_inherit in steps_to_inherit]

            step_that_inherits.clone_parent = clone_parent  # type: ignore[attr-defined]
        else:
            def clone_parents(_self: Step, **kwargs: Any) -> Any:
                return {name: _self.clone(cls=step_to_inherit, **kwargs)
                        for name, step_to_inherit in kw_steps_to_inherit.items()}
        step_that_inherits.clone_parents = clone_parents  # type: ignore[attr-defined]
        return step_that_inherits


class requires:
    """Class decorator: :class:`inherits` plus a ``requires()`` returning the parent step(s).

    ``@requires(A)`` makes ``requires()`` return ``A(...)``; ``@requires(A, B)``
    returns ``[A(...), B(...)]``; ``@requires(a=A, b=B)`` returns
    ``{"a": A(...), "b": B(...)}``.
    """

    def __init__(self, *steps_to_require: type[Step], **kw_steps_to_require: type[Step]) -> None:
        _check_step_classes("requires", steps_to_require, kw_steps_to_require)
        self.steps_to_require = steps_to_require
        self.kw_steps_to_require = kw_steps_to_require

    def __call__(self, step_that_requires: _StepClassT) -> _StepClassT:
        step_that_requires = inherits(*self.steps_to_require, **self.kw_steps_to_require)(step_that_requires)
        single = len(self.steps_to_require) == 1

        def requires(_self: Any) -> Any:
            return _self.clone_parent() if single else _self.clone_parents()

        step_that_requires.requires = requires  # type: ignore[attr-defined]
        return step_that_requires


class copies:
    """Class decorator: :class:`requires` plus a ``run()`` copying the input's lines to the output.

    Both ``input()`` and ``output()`` must be single file-like targets.
    """

    def __init__(self, step_to_copy: type[Step]) -> None:
        self.requires_decorator = requires(step_to_copy)

    def __call__(self, step_that_copies: _StepClassT) -> _StepClassT:
        step_that_copies = self.requires_decorator(step_that_copies)

        @_step_wraps(step_that_copies)
        class Wrapped(step_that_copies):  # type: ignore[valid-type, misc]
            def run(_self) -> None:
                source, destination = _self.input(), _self.output()
                with source.open("r") as lines, destination.open("w") as out:
                    for line in lines:
                        out.write(line)

        return Wrapped  # type: ignore[return-value]


def delegates(step_that_delegates: _StepClassT) -> _StepClassT:
    """Class decorator for a step that runs other steps ("sub-steps") inside its own ``run()``.

    The class must define ``substeps()`` returning the steps to delegate to.
    Their dependencies become dependencies of the decorated step, and its
    ``run()`` first runs each sub-step's ``run()``, then its own.
    """
    if not hasattr(step_that_delegates, "substeps"):
        raise AttributeError(f"{step_that_delegates.__name__} needs to implement the method \"substeps\" "
                             "to be decorated with @delegates (return the steps to run inside it)")

    @_step_wraps(step_that_delegates)
    class Wrapped(step_that_delegates):  # type: ignore[valid-type, misc]
        def deps(self) -> list[Step]:
            return flatten(self.requires()) + flatten([sub.deps() for sub in flatten(self.substeps())])

        def run(self) -> None:
            for sub in flatten(self.substeps()):
                sub.run()
            step_that_delegates.run(self)

    return Wrapped  # type: ignore[return-value]


def _one_step_back(param_obj: Any, value: Any) -> Any:
    """``value`` moved one period back for a date-like parameter, or ``None`` if not date-like."""
    if isinstance(param_obj, parameter.DateParameter):
        # Month/Year parameters are DateParameters; normalizing the day before
        # yields the previous month/year.
        return value - datetime.timedelta(days=1)
    if isinstance(param_obj, parameter.DateSecondParameter):
        return value - datetime.timedelta(seconds=1)
    if isinstance(param_obj, parameter.DateMinuteParameter):
        return value - datetime.timedelta(minutes=1)
    if isinstance(param_obj, parameter.DateHourParameter):
        return value - datetime.timedelta(hours=1)
    if isinstance(param_obj, parameter.DateIntervalParameter):
        return value.prev()
    return None


def previous(step: Step) -> Step:
    """The same step one period earlier (one day, hour, minute, second or interval).

    The step must have exactly one date-like parameter; the other values are
    kept.
    """
    previous_params: dict[str, Any] = {}
    previous_date_params: dict[str, Any] = {}
    for param_name, param_obj in step.get_params():
        value = getattr(step, param_name)
        moved = _one_step_back(param_obj, value)
        if moved is None:
            previous_params[param_name] = value
        else:
            previous_date_params[param_name] = moved
    if not previous_date_params:
        raise NotImplementedError(
            f"{step!r} has no date-like parameter, so there is no previous step; previous() needs exactly one "
            "Date/DateHour/DateMinute/DateSecond/DateInterval/Month/Year parameter")
    if len(previous_date_params) > 1:
        raise NotImplementedError(
            f"{step!r} has several date-like parameters ({', '.join(previous_date_params)}), so the previous "
            "step is ambiguous; previous() needs exactly one")
    previous_params.update(previous_date_params)
    return step.clone(**previous_params)


def get_previous_completed(step: Step, max_steps: int = 10) -> Step | None:
    """The closest earlier instance of ``step`` (see :func:`previous`) that is complete.

    Looks back at most ``max_steps`` periods; returns None if none is complete.
    """
    prev = step
    for _ in range(max_steps):
        prev = previous(prev)
        logger.debug("Checking if %s is complete", prev)
        if prev.complete():
            return prev
    return None

