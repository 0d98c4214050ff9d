"""``python -m trun …`` is the ``trun`` command."""
from __future__ import annotations

from trun.cmdline import trun_run

if __name__ == "__main__":
    trun_run()
