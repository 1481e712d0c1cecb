"""Both journal backends for the recovery tests."""

from support.stores import location, opener, snapshot_opener  # noqa: F401
