"""Workloads, schedulers and reporting of the trun-versus-Luigi benchmark harness (``harness.py``)."""
