"""The Luigi side of the benchmarks: its private virtualenv (never a dependency of trun)."""
