"""The smallest workflow: one step that writes a greeting.

    trun --module hello_world HelloWorld --local-scheduler
"""
from __future__ import annotations

import trun


class HelloWorld(trun.Step):
    """Writes ``hello_world.txt`` once; the next run sees it and does nothing."""

    name = trun.Parameter(default="world")

    def output(self):
        return trun.LocalTarget(f"hello_{self.name}.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write(f"Hello, {self.name}!\n")


if __name__ == "__main__":
    trun.build([HelloWorld()], local_scheduler=True)
