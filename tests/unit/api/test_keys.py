from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

from perpx.api.keys import KeyStore


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


def test_verify_ws() -> None:
    store = KeyStore()
    key = store.create()
    expires = 2_000_000_000_000
    signature = key.sign(f"GET/realtime{expires}")
    assert store.verify_ws(key.api_key, expires, signature, now_ms=expires - 1) == key.account_id
    assert store.verify_ws(key.api_key, expires, signature, now_ms=expires) is None
    assert store.verify_ws(key.api_key, expires + 1, signature, now_ms=0) is None
    assert store.verify_ws("unknown", expires, signature, now_ms=0) is None
