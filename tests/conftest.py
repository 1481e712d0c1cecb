"""Suite-wide settings: hypothesis profiles (more examples under CI)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# Service fixtures (PostgreSQL, NATS) shared by every test directory.
from support.services import nats_url, pg_schema, postgres_dsn, stream_name  # noqa: E402, F401
