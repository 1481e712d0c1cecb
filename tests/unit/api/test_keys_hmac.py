"""An API key signs with OpenSSL's HMAC object directly: the same MAC as the `hmac` module's."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from perpx.api.keys import ApiKey, keyed_hmac


@given(st.binary(max_size=80), st.binary(max_size=400))
def test_the_keyed_hmac_is_hmac_sha256(secret: bytes, payload: bytes) -> None:
    mac = keyed_hmac(secret).copy()
    mac.update(payload)
    assert mac.hexdigest() == hmac.new(secret, payload, hashlib.sha256).hexdigest()


@given(st.text(min_size=1, max_size=40), st.text(max_size=200))
def test_a_key_signs_and_verifies_as_hmac_does(secret: str, payload: str) -> None:
    key = ApiKey("k", secret, 1001, False, "", 10, "", 0)
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert key.sign(payload) == expected
    assert key.sign(payload) == expected  # the keyed state is copied, never consumed
    assert key.verify(payload.encode(), expected.upper())
    assert not key.verify(payload.encode() + b"x", expected)
