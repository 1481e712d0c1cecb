"""The book mirror follows the engine's book from events alone; depth views diff safely."""

from __future__ import annotations

import random

import msgspec

from api_ws.flow import random_command
from perpx.api.ws.book import BookMirror, DepthView, diff_side
from support.builders import Driver


def test_mirror_equals_the_engine_book_after_every_command_of_a_random_flow() -> None:
    driver = Driver()
    driver.mark("30000")
    mirror = BookMirror("BTCUSDT")
    rng = random.Random(7)
    book = driver.engine.books["BTCUSDT"]
    for _ in range(3000):
        seq, ts = driver.stamp()
        command = msgspec.structs.replace(random_command(rng, driver.engine), seq=seq, ts_ms=ts)
        for event in driver.apply(command):
            if getattr(event, "symbol", None) == "BTCUSDT":
                mirror.apply(event)
        mirror.end_command()
        assert mirror.top(1000) == book.depth(1000)


def test_a_delta_never_deletes_a_level_the_view_does_not_hold() -> None:
    rng = random.Random(3)
    for _ in range(500):
        old = {rng.randint(0, 30): rng.randint(1, 5) for _ in range(rng.randint(0, 10))}
        new = sorted({rng.randint(0, 30): rng.randint(1, 5)
                      for _ in range(rng.randint(0, 10))}.items())
        changes = diff_side(old, new)
        for price, qty in changes:
            if qty == 0:
                assert price in old
        applied = dict(old)
        for price, qty in changes:
            if qty:
                applied[price] = qty
            else:
                del applied[price]
        assert applied == dict(new)


def test_view_re_adds_levels_that_enter_the_top_n() -> None:
    driver = Driver()
    driver.mark("30000")
    mirror = BookMirror("BTCUSDT")

    def run(events: list) -> None:
        for event in events:
            mirror.apply(event)
        mirror.end_command()

    for i in range(4):
        run(driver.limit(1, "Buy", str(29990 - i), "0.001"))
    view = DepthView("BTCUSDT", 2)
    view.reset(mirror, driver.seq)
    assert view.levels()[0] == [(299900, 1), (299890, 1)]
    best = driver.engine.books["BTCUSDT"].bids.levels[299900].orders()[0].order_id
    run(driver.cancel(1, best))
    changes = view.advance(mirror, driver.seq)
    assert changes is not None
    assert changes[0] == [(299900, 0), (299880, 1)]  # the deeper level enters in full
    assert view.u == 2
