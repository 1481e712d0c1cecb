"""`perpx.heap.freeze_loaded`: what a serving process loaded leaves the cyclic GC's walks."""

from __future__ import annotations

import gc

import pytest

from perpx.heap import ENV, GEN0, GEN0_ENV, freeze_loaded


def test_freezing_moves_the_loaded_heap_out_of_the_collector_and_the_env_turns_it_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    monkeypatch.setenv(ENV, "0")
    monkeypatch.setenv(GEN0_ENV, "700")
    try:
        assert freeze_loaded() is False
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == (700, *threshold[1:])
        monkeypatch.delenv(ENV)
        monkeypatch.delenv(GEN0_ENV)
        loaded = [[n] for n in range(1000)]  # state a process loaded, held for its life
        assert freeze_loaded() is True
        assert gc.get_threshold() == (GEN0, *threshold[1:])
        frozen = gc.get_freeze_count()
        assert frozen >= len(loaded)
        after = [[n] for n in range(10)]  # allocated while serving: collected as before
        assert gc.get_freeze_count() == frozen and len(after) == 10
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
