"""The statuses a step can have, and which of them a worker may report.

Luigi spells statuses as plain strings; trun keeps those exact strings (they
travel over the wire and appear in the UI) but makes them members of one
``StepStatus`` enum so the scheduler can reason about them explicitly.
``StepStatus.PENDING == "PENDING"`` is true, and ``json.dumps`` writes the
plain string.
"""
from __future__ import annotations

import enum


class StepStatus(str, enum.Enum):
    """Status of a step as the scheduler records it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    DISABLED = "DISABLED"
    UNKNOWN = "UNKNOWN"
    BATCH_RUNNING = "BATCH_RUNNING"
    #: Legacy; the scheduler treats it as PENDING.
    SUSPENDED = "SUSPENDED"

    __str__ = str.__str__
    __format__ = str.__format__


PENDING = StepStatus.PENDING
RUNNING = StepStatus.RUNNING
DONE = StepStatus.DONE
FAILED = StepStatus.FAILED
DISABLED = StepStatus.DISABLED
UNKNOWN = StepStatus.UNKNOWN
BATCH_RUNNING = StepStatus.BATCH_RUNNING
SUSPENDED = StepStatus.SUSPENDED

#: Statuses derived by the scheduler for a PENDING step from its dependencies,
#: most severe last.  They are never stored on a step.
UPSTREAM_RUNNING = "UPSTREAM_RUNNING"
UPSTREAM_MISSING_INPUT = "UPSTREAM_MISSING_INPUT"
UPSTREAM_FAILED = "UPSTREAM_FAILED"
UPSTREAM_DISABLED = "UPSTREAM_DISABLED"
UPSTREAM_SEVERITY_ORDER = ("", UPSTREAM_RUNNING, UPSTREAM_MISSING_INPUT, UPSTREAM_FAILED, UPSTREAM_DISABLED)
