"""Both journal backends for the API tests that ask for `location`."""

from support.stores import location  # noqa: F401
