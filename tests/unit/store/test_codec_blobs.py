"""`CommandCodec.encode_blobs` (the SQLite journal's bodies) against `encode`, byte for byte."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core.commands import Deposit
from perpx.store.codec import FORMAT_COMMAND_ARRAY, FORMAT_JSON, CommandCodec
from perpx.store.loadflow import order_flow


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(0, 300))
def test_encode_blobs_are_the_bytes_of_encode(seed: int, count: int) -> None:
    codec = CommandCodec()
    commands = list(order_flow(count, seed))
    blobs = codec.encode_blobs(commands)
    assert all(type(blob) is bytearray for blob in blobs)
    assert [bytes(blob) for blob in blobs] == codec.encode_many(commands)
    assert [codec.decode(bytes(blob)) for blob in blobs] == commands


@given(amount=st.integers(0, 2**70))
def test_encode_blobs_fall_back_to_json_past_64_bits_as_encode_does(amount: int) -> None:
    codec = CommandCodec()
    command = Deposit(1, 1, 7, "USDT", amount)
    blob = codec.encode_blobs([command])[0]
    assert bytes(blob) == codec.encode(command)
    assert blob[0] == (FORMAT_COMMAND_ARRAY if amount < 2**64 else FORMAT_JSON)
    assert codec.decode(bytes(blob)) == command
