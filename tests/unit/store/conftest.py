"""Both journal backends for the store tests."""

from support.stores import location, opener, snapshot_opener  # noqa: F401
