"""Rate limits: one process's counts, and the table API gateways on one machine share."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpx.api import ratelimit
from perpx.api.ratelimit import RateLimiter, SharedRateLimiter

NOW = 1_700_000_000_000  # the start of a one-second window


def test_in_memory_and_shared_count_alike(tmp_path: Path) -> None:
    shared = SharedRateLimiter(tmp_path / "limits.bin")
    local = RateLimiter()
    hits = [("a", NOW), ("a", NOW + 10), ("b", NOW + 20), ("a", NOW + 999), ("a", NOW + 1000),
            ("a", NOW + 1001), ("b", NOW + 2500)]
    assert [shared.hit(key, 2, now) for key, now in hits] == \
        [local.hit(key, 2, now) for key, now in hits]
    assert local.hit("c", 2, NOW) == (True, 1, NOW + 1000)
    shared.close()


def test_gateways_sharing_the_table_count_a_key_once(tmp_path: Path) -> None:
    # Two gateways (two mappings of one file): a key's requests add up across them.
    first, second = (SharedRateLimiter(tmp_path / "limits.bin") for _ in range(2))
    verdicts = [limiter.hit("key", 3, NOW + n) for n, limiter in
                enumerate([first, second, first, second, first])]
    assert [allowed for allowed, _, _ in verdicts] == [True, True, True, False, False]
    assert verdicts[2] == (True, 0, NOW + 1000)
    # The next window starts afresh, for both.
    assert second.hit("key", 3, NOW + 1000) == (True, 2, NOW + 2000)
    assert first.hit("key", 3, NOW + 1001) == (True, 1, NOW + 2000)
    first.close()
    second.close()


def test_a_full_neighbourhood_falls_back_to_counting_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "SLOTS", 4)
    monkeypatch.setattr(ratelimit, "PROBE", 4)
    limiter = SharedRateLimiter(tmp_path / "small.bin")
    for number in range(4):  # four keys active in this second take every slot
        assert limiter.hit(f"k{number}", 1, NOW)[0]
    assert limiter.hit("k0", 1, NOW)[0] is False  # still counted in the table
    assert limiter.hit("late", 1, NOW) == (True, 0, NOW + 1000)  # in memory, still counted
    assert limiter.hit("late", 1, NOW)[0] is False
    # A second later the stale slots are free for anyone.
    assert limiter.hit("late", 1, NOW + 1000) == (True, 0, NOW + 2000)
    limiter.close()
