"""freqtrade's live-futures calls on Bybit, made through the real ccxt against a live perpx.

freqtrade itself is not installed here (it pulls in TA-Lib, pandas and more; issue #13
allows its exact call sequence instead). Its Bybit exchange class, in live futures mode,
makes these ccxt calls, wrapped in the same error handling reproduced below:

- start (`additional_exchange_init`): `set_position_mode(False)` on every start, then
  `is_unified_enabled()`; a ccxt ExchangeError there (NoChange included) stops the bot;
- markets and leverage tiers (`fetch_leverage_tiers`), tickers, candles, balance;
- before each entry (`_lev_prep`): `set_margin_mode(...)` and `set_leverage(...)`, both
  with `accept_fail=True` (BadRequest, OperationRejected and InsufficientFunds tolerated,
  any other ExchangeError fatal), then `create_order` with `position_idx` 0 in its params;
- `fetch_order` until filled, `fetch_positions`, `fetch_my_trades`, the exit as a
  reduce-only market order, and `cancel_order` for an entry that did not fill.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ccxt

from apisupport import Live

PAIR = "BTC/USDT:USDT"


def _bot(live: Live) -> ccxt.bybit:
    key = live.new_key()
    return ccxt.bybit({"apiKey": key.api_key, "secret": key.secret,
                       "options": {"defaultType": "swap"},
                       "urls": {"api": {"public": live.url, "private": live.url}}})


def _start(api: ccxt.bybit) -> None:
    """freqtrade's `additional_exchange_init`: any ExchangeError here stops the bot."""
    api.load_markets()
    api.set_position_mode(False)
    unified = api.is_unified_enabled()
    assert unified and len(unified) > 1 and unified[1]  # a UTA: freqtrade logs and goes on


def _lev_prep(api: ccxt.bybit, leverage: float) -> None:
    """freqtrade's Bybit `_lev_prep`: margin mode, then leverage, both with accept_fail."""
    tolerated = (ccxt.BadRequest, ccxt.OperationRejected, ccxt.InsufficientFunds)
    with contextlib.suppress(tolerated):
        api.set_margin_mode("cross", PAIR, {"leverage": leverage})
    with contextlib.suppress(tolerated):  # 110043, not modified, on every later entry
        api.set_leverage(leverage, PAIR)


def _entry(api: ccxt.bybit, kind: str, side: str, amount: float,
           price: float | None = None, reduce_only: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"position_idx": 0}
    if reduce_only:
        params["reduceOnly"] = True
    else:
        _lev_prep(api, 3.0)
    return api.create_order(PAIR, kind, side, amount, price, params)


def test_freqtrade_live_futures_sequence_trades_unchanged(live: Live) -> None:
    """#13 C1: freqtrade's start-up and a whole trade, through ccxt as freqtrade calls it."""
    api = _bot(live)
    _start(api)
    _start(api)  # a restart of the bot calls set_position_mode(False) again: still fine
    tiers = api.fetch_leverage_tiers([PAIR])
    assert tiers[PAIR][0]["maxLeverage"] == 100
    tickers = api.fetch_tickers([PAIR])
    assert tickers[PAIR]["last"] or tickers[PAIR]["bid"]
    assert isinstance(api.fetch_ohlcv(PAIR, "5m", limit=10), list)
    assert api.fetch_balance()["USDT"]["free"] == 100000.0

    # An entry that does not fill is cancelled after its timeout.
    book = api.fetch_order_book(PAIR)
    waiting = _entry(api, "limit", "buy", 0.01, book["bids"][0][0] - 100)
    assert api.fetch_order(waiting["id"], PAIR, {"acknowledged": True})["status"] == "open"
    api.cancel_order(waiting["id"], PAIR)
    assert api.fetch_order(waiting["id"], PAIR, {"acknowledged": True})["status"] == "canceled"

    # An entry that fills, twice (the second meets 110043 in set_leverage), then the exit.
    for _ in range(2):
        order = _entry(api, "market", "buy", 0.01)
        filled = api.fetch_order(order["id"], PAIR, {"acknowledged": True})
        assert filled["status"] == "closed" and filled["filled"] == 0.01
    (position,) = api.fetch_positions([PAIR])
    assert position["contracts"] == 0.02 and position["side"] == "long"
    assert position["leverage"] == 3
    assert sum(t["amount"] for t in api.fetch_my_trades(PAIR)) == 0.02
    exit_order = _entry(api, "market", "sell", 0.02, reduce_only=True)
    assert api.fetch_order(exit_order["id"], PAIR, {"acknowledged": True})["status"] == "closed"
    assert all(not row["contracts"] for row in api.fetch_positions([PAIR]))
