"""Benchmark of the gateway: load generator, scenarios, echo baseline (``python -m bench.run``)."""
