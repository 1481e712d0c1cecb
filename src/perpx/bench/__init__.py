"""Benchmarks runnable as `perpx bench ...`; each prints figures and ends with one JSON line."""
