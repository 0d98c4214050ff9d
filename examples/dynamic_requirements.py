"""Dependencies discovered while running: a config file decides which parts to build.

    trun --module dynamic_requirements Assemble --local-scheduler

``Assemble.run`` reads ``parts.json`` (written by ``Configure``) and then
yields the ``Part`` steps it names; trun schedules them, and runs
``Assemble`` again once they are complete.
"""
from __future__ import annotations

import json

import trun


class Configure(trun.Step):
    """Decides which parts exist (here: a fixed list, in real life a listing or a query)."""

    n_parts = trun.IntParameter(default=3)

    def output(self):
        return trun.LocalTarget("parts.json")

    def run(self):
        with self.output().open("w") as f:
            json.dump([f"part{i}" for i in range(self.n_parts)], f)


class Part(trun.Step):
    """Builds one part."""

    name = trun.Parameter()

    def output(self):
        return trun.LocalTarget(f"parts/{self.name}.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write(f"content of {self.name}\n")


class Assemble(trun.Step):
    """Concatenates every part listed by ``Configure``."""

    def requires(self):
        return Configure()

    def output(self):
        return trun.LocalTarget("assembled.txt")

    def run(self):
        with self.input().open("r") as f:
            names = json.load(f)
        parts = yield [Part(name) for name in names]
        with self.output().open("w") as out:
            for target in parts:
                with target.open("r") as f:
                    out.write(f.read())
