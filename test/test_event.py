"""Tests of trun.event names and the Step event handler mechanism."""
from __future__ import annotations

import logging

import pytest

import trun
from trun.event import Event


def test_event_names_are_luigis_strings_after_the_rename():
    assert Event.DEPENDENCY_DISCOVERED == "event.core.dependency.discovered"
    assert Event.DEPENDENCY_MISSING == "event.core.dependency.missing"
    assert Event.DEPENDENCY_PRESENT == "event.core.dependency.present"
    assert Event.BROKEN_STEP == "event.core.step.broken"
    assert Event.START == "event.core.start"
    assert Event.PROGRESS == "event.core.progress"
    assert Event.FAILURE == "event.core.failure"
    assert Event.SUCCESS == "event.core.success"
    assert Event.PROCESSING_TIME == "event.core.processing_time"
    assert Event.TIMEOUT == "event.core.timeout"
    assert Event.PROCESS_FAILURE == "event.core.process_failure"


def test_event_is_exported_from_trun():
    assert trun.Event is Event


def test_handler_receives_trigger_arguments():
    class Emitting(trun.Step):
        pass

    received = []

    @Emitting.event_handler(Event.SUCCESS)
    def on_success(step, *extra):
        received.append((step, extra))

    step = Emitting()
    step.trigger_event(Event.SUCCESS, step, 1.5)
    assert received == [(step, (1.5,))]


def test_handler_fires_for_subclass_instances_but_not_for_siblings():
    class Parent(trun.Step):
        pass

    class Child(Parent):
        pass

    class Sibling(trun.Step):
        pass

    fired = []
    Parent.event_handler(Event.START)(lambda step: fired.append(step))
    Child().trigger_event(Event.START, Child())
    Sibling().trigger_event(Event.START, Sibling())
    assert fired == [Child()]


def test_handler_only_fires_for_its_event():
    class Quiet(trun.Step):
        pass

    fired = []
    Quiet.event_handler(Event.FAILURE)(lambda step, exc: fired.append(exc))
    Quiet().trigger_event(Event.SUCCESS, Quiet())
    assert fired == []


def test_handlers_fire_in_registration_order():
    class Ordered(trun.Step):
        pass

    calls = []
    Ordered.event_handler(Event.START)(lambda step: calls.append("first"))
    Ordered.event_handler(Event.START)(lambda step: calls.append("second"))
    Ordered().trigger_event(Event.START, Ordered())
    assert calls == ["first", "second"]


def test_exception_in_handler_is_logged_and_does_not_stop_others(caplog):
    class Fragile(trun.Step):
        pass

    calls = []

    @Fragile.event_handler(Event.START)
    def broken(step):
        raise RuntimeError("handler bug")

    Fragile.event_handler(Event.START)(lambda step: calls.append("ran"))
    with caplog.at_level(logging.ERROR, logger="trun-interface"):
        Fragile().trigger_event(Event.START, Fragile())
    assert calls == ["ran"]
    assert "Error in event callback for 'event.core.start'" in caplog.text
    assert "handler bug" in caplog.text


def test_keyboard_interrupt_in_handler_stops_dispatch():
    class Interrupted(trun.Step):
        pass

    calls = []

    @Interrupted.event_handler(Event.START)
    def interrupt(step):
        raise KeyboardInterrupt

    Interrupted.event_handler(Event.START)(lambda step: calls.append("ran"))
    Interrupted().trigger_event(Event.START, Interrupted())
    assert calls == []


def test_remove_event_handler_stops_the_callback():
    class Removable(trun.Step):
        pass

    calls = []

    @Removable.event_handler(Event.SUCCESS)
    def handler(step):
        calls.append(step)

    Removable.remove_event_handler(Event.SUCCESS, handler)
    Removable().trigger_event(Event.SUCCESS, Removable())
    assert calls == []


def test_remove_unregistered_handler_raises_naming_event_and_class():
    class NeverRegistered(trun.Step):
        pass

    with pytest.raises(ValueError, match=r"event\.core\.success.*NeverRegistered"):
        NeverRegistered.remove_event_handler(Event.SUCCESS, lambda step: None)


def test_event_handler_returns_the_callback_unchanged():
    class Decorated(trun.Step):
        pass

    def callback(step):
        return "value"

    assert Decorated.event_handler(Event.START)(callback) is callback
