from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from perpx.api.auth import authenticate_ws
from perpx.api.keys import KeyStore
from perpx.bybit.errors import ApiError


def test_keys_are_encrypted_at_rest_and_verify_hmacs(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    key = store.create(demo_funds="5000", note="n")
    assert stat.S_IMODE((tmp_path / "server.key").stat().st_mode) == 0o600
    assert key.secret.encode() not in (tmp_path / "keys.db").read_bytes()
    assert key.secret not in repr(key)
    store.close()
    again = KeyStore(tmp_path)  # another process reads the same folder
    loaded = again.get(key.api_key)
    assert loaded is not None and loaded.secret == key.secret and loaded.account_id >= 1001
    assert loaded.verify(b"payload", hmac.new(key.secret.encode(), b"payload",
                                              hashlib.sha256).hexdigest())
    assert not loaded.verify(b"payload", "00" * 32)
    assert again.create().account_id == key.account_id + 1
    assert again.revoke(key.api_key) and not again.revoke(key.api_key)
    assert again.get(key.api_key) is None
    assert [k.revoked for k in again.list()] == [True, False]


def test_ws_auth_checks_expiry_key_and_signature() -> None:
    """(Moved from KeyStore.verify_ws, now perpx.api.auth.authenticate_ws.)"""
    store = KeyStore()
    key = store.create()
    expires = 2_000_000_000_000
    signature = key.sign(f"GET/realtime{expires}")
    assert authenticate_ws(store, key.api_key, expires, signature, expires - 1) == key
    for api_key, now, code in ((key.api_key, expires, 10002), ("unknown", expires - 1, 10003)):
        with pytest.raises(ApiError) as refused:
            authenticate_ws(store, api_key, expires, signature, now)
        assert refused.value.code == code
    with pytest.raises(ApiError) as refused:
        authenticate_ws(store, key.api_key, expires + 1, signature, expires - 1)
    assert refused.value.code == 10004


def test_revoked_among_sees_another_processes_revocation(tmp_path: Path) -> None:
    """Finding: revoked keys kept working; the server asks the database, not its cache."""
    store = KeyStore(tmp_path)
    kept, dropped = store.create(), store.create()
    assert store.get(dropped.api_key) is not None  # cached
    KeyStore(tmp_path).revoke(dropped.api_key)  # as `perpx keys revoke` would
    assert store.revoked_among([kept.api_key, dropped.api_key]) == {dropped.api_key}
    assert store.get(dropped.api_key) is None  # and the cache forgot it


def test_a_non_ascii_signature_is_refused_not_raised() -> None:
    """Finding: a non-ASCII X-BAPI-SIGN raised TypeError in hmac.compare_digest."""
    key = KeyStore().create()
    assert not key.verify(b"payload", "\u00e9" * 64)
    assert not key.verify(b"payload", "\ud800")


def test_the_key_cache_sees_other_connections_writes_within_its_ttl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache is checked by one `data_version` query per TTL, not one lookup per key."""
    import perpx.api.keys as keys_module

    clock = [1000.0]
    monkeypatch.setattr(keys_module.time, "monotonic", lambda: clock[0])
    store = KeyStore(tmp_path)
    kept, dropped = store.create(), store.create()
    assert store.get(dropped.api_key) is not None and store.get(kept.api_key) is not None
    other = KeyStore(tmp_path)  # as `perpx keys revoke` / `perpx keys create` would
    assert other.revoke(dropped.api_key)
    late = other.create()
    clock[0] += keys_module.CACHE_TTL_S / 2
    assert store.get(dropped.api_key) is not None  # still cached, within the TTL
    clock[0] += keys_module.CACHE_TTL_S
    assert store.get(dropped.api_key) is None
    assert store.get(kept.api_key) == kept
    assert store.get(late.api_key) == late
    clock[0] += keys_module.CACHE_TTL_S * 2  # nothing written since: the cache is kept
    assert store.get(kept.api_key) == kept
    assert store.get("unknown") is None
    fresh = store.create()  # this connection's own write: no stale "unknown" answer
    assert store.get(fresh.api_key) == fresh
    other.close()
    store.close()
