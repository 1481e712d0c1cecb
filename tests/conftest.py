"""Suite-wide settings: hypothesis profiles (more examples under CI)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# Service fixtures (PostgreSQL, NATS) shared by every test directory.
from support.services import nats_url, pg_schema, postgres_dsn, stream_name  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _no_heap_freeze_in_the_test_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`perpx serve` run in this process (the CLI tests) leaves pytest's heap to the collector.

    A serving process freezes what it holds once loaded (`perpx.heap.freeze_loaded`); in the
    test process that would be every test's leftovers, and the threshold it sets would stay
    for the rest of the run. Servers the tests start as processes of their own freeze as in
    production; `tests/unit/test_heap.py` runs the real function in a subprocess.
    """
    monkeypatch.setattr("perpx.heap.freeze_loaded", lambda: False)
    yield
