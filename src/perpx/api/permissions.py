"""The one permission check for every way to act: REST, `/v5/trade` and any future entry.

Each command is checked when it is executed, not only when its session authenticated: a key
revoked from the command line, or a read-only key on the trade stream, is refused on its next
command with Bybit's 10003 / 10005.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from perpx.api.keys import ApiKey
from perpx.bybit.errors import ApiError


class Access(Enum):
    """What an action needs: nothing (public), any valid key (read), or trade permission."""

    PUBLIC = "public"
    READ = "read"
    WRITE = "write"


class KeyLookup(Protocol):
    """Where live keys are found (`perpx.api.keys.KeyStore`)."""

    def get(self, api_key: str) -> ApiKey | None:
        """Return the live key, or None if unknown or revoked."""
        ...


INVALID_KEY = "API key is invalid."
DENIED = "Permission denied, please check your API key permissions."


def authorize(keys: KeyLookup, api_key: str, access: Access) -> ApiKey:
    """Return the live key `api_key` if it may do what `access` needs; raise Bybit's error.

    10003 for an unknown or revoked key, 10005 for a read-only key asked to trade.
    """
    return permit(keys.get(api_key), access)


def permit(key: ApiKey | None, access: Access) -> ApiKey:
    """Return `key` if it may do what `access` needs: `authorize`'s check, on a key looked up.

    `key` is what `KeyLookup.get` just returned (None: unknown or revoked). For a caller that
    holds the key from that very lookup (a REST request's authentication, nothing awaited
    since), so that it is not looked up twice.
    """
    if key is None or key.revoked:
        raise ApiError(10003, INVALID_KEY)
    if access is _WRITE and key.read_only:
        raise ApiError(10005, DENIED)
    return key


_WRITE = Access.WRITE  # read once: a member read from its class costs a hook call per read
