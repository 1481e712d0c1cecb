"""Both journal backends for the service tests."""

from support.stores import location  # noqa: F401
