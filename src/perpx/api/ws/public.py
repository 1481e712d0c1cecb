"""Public topic payloads in Bybit V5's wire shape (spec §8.3-§8.8), from integers to strings.

Prices and quantities are formatted by `perpx.convert` with the instrument's scales, so a level
reads byte-identically in a snapshot and in every later delta (pybit matches levels by string).
"""

from __future__ import annotations

from typing import Any

from perpx.api import wire
from perpx.api.ws.book import DepthView
from perpx.convert import format_atoms, format_lots, format_rate, format_scaled, format_ticks
from perpx.core.enums import Side
from perpx.core.events import Liquidated, Trade
from perpx.core.instruments import InstrumentSpec
from perpx.readmodels.books import Level
from perpx.readmodels.period import next_period_start
from perpx.readmodels.tickers import Ticker
from perpx.rows import Candle
from perpx.store.records import trade_exec_id

ORDERBOOK_DEPTHS = (1, 50, 200, 1000)
# Bybit's push interval per depth, in seconds (spec §8.4): changes are coalesced within it.
ORDERBOOK_INTERVAL_S = {1: 0.010, 50: 0.020, 200: 0.100, 1000: 0.200}
LEVEL1_REPEAT_S = 3.0  # an unchanged level-1 book is re-sent as a snapshot after this
TICKER_INTERVAL_S = 0.100
KLINE_INTERVAL_S = 0.100
_SIDE = {Side.BUY: "Buy", Side.SELL: "Sell"}


def side_name(side: Side) -> str:
    """Bybit's side string."""
    return _SIDE[side]


def _levels(spec: InstrumentSpec, levels: list[Level]) -> list[list[str]]:
    return [[format_ticks(spec, price), format_lots(spec, qty) if qty else "0"]
            for price, qty in levels]


def orderbook_message(spec: InstrumentSpec, view: DepthView, kind: str, bids: list[Level],
                      asks: list[Level], ts_ms: int) -> dict[str, Any]:
    """Return an `orderbook.{depth}.{symbol}` snapshot or delta."""
    return {
        "topic": f"orderbook.{view.depth}.{spec.symbol}",
        "type": kind,
        "ts": ts_ms,
        "data": {"s": spec.symbol, "b": _levels(spec, bids), "a": _levels(spec, asks),
                 "u": view.u, "seq": view.seq},
        "cts": ts_ms,
    }


def trade_row(spec: InstrumentSpec, trade: Trade, direction: str) -> dict[str, Any]:
    """Return one `publicTrade` row: taker side, size, price, tick direction, id.

    The id is the taker's `execId` of the fill, as on Bybit (#13 C5).
    """
    return {"T": trade.ts_ms, "s": trade.symbol, "S": _SIDE[trade.taker_side],
            "v": format_lots(spec, trade.qty_lots), "p": format_ticks(spec, trade.price_ticks),
            "L": direction, "i": trade_exec_id(trade.trade_id, False), "BT": False, "RPI": False,
            "seq": trade.seq}


def liquidation_row(spec: InstrumentSpec, event: Liquidated) -> dict[str, Any]:
    """Return one `allLiquidation` row: the liquidated position's side and bankruptcy price."""
    return {"T": event.ts_ms, "s": event.symbol, "S": _SIDE[event.side],
            "v": format_lots(spec, event.qty_lots),
            "p": format_ticks(spec, event.bust_price_ticks)}


def _price(spec: InstrumentSpec, ticks: int | None) -> str:
    return "" if ticks is None else format_ticks(spec, ticks)


def ticker_fields(spec: InstrumentSpec, ticker: Ticker, direction: str,
                  bid: Level | None, ask: Level | None) -> dict[str, str]:
    """Return every field of a linear ticker (spec §4.2, §8.6) as strings."""
    pcnt = ticker.price_24h_pcnt_rate
    return {
        "symbol": spec.symbol,
        "tickDirection": direction,
        "price24hPcnt": format_scaled(pcnt // 100, 6, 6) if pcnt >= 0
        else "-" + format_scaled(-pcnt // 100, 6, 6),
        "lastPrice": _price(spec, ticker.last_price_ticks),
        "prevPrice24h": _price(spec, ticker.prev_price_24h_ticks),
        "highPrice24h": _price(spec, ticker.high_price_24h_ticks),
        "lowPrice24h": _price(spec, ticker.low_price_24h_ticks),
        "prevPrice1h": _price(spec, ticker.prev_price_1h_ticks),
        "markPrice": _price(spec, ticker.mark_price_ticks),
        "indexPrice": _price(spec, ticker.index_price_ticks),
        "openInterest": format_lots(spec, ticker.open_interest_lots),
        "openInterestValue": ("0" if ticker.open_interest_value_atoms is None
                              else format_atoms(ticker.open_interest_value_atoms)),
        "turnover24h": format_atoms(ticker.turnover_24h_atoms),
        "volume24h": format_lots(spec, ticker.volume_24h_lots),
        "nextFundingTime": str(ticker.next_funding_ms),
        "fundingRate": format_rate(ticker.funding_rate),
        "bid1Price": "" if bid is None else format_ticks(spec, bid[0]),
        "bid1Size": "" if bid is None else format_lots(spec, bid[1]),
        "ask1Price": "" if ask is None else format_ticks(spec, ask[0]),
        "ask1Size": "" if ask is None else format_lots(spec, ask[1]),
        "fundingIntervalHour": str(ticker.funding_interval_min // 60),
        "fundingCap": format_rate(spec.upper_funding_rate),
    }


# A dated future has no funding (next-mechanics §2.3): its ticker carries none of these.
FUNDING_FIELDS = ("fundingRate", "nextFundingTime", "fundingIntervalHour", "fundingCap")


def futures_ticker_fields(spec: InstrumentSpec, ticker: Ticker, fields: dict[str, str],
                          predicted_e8: int | None) -> dict[str, str]:
    """Return a dated future's `tickers.{symbol}` fields: `fields` less funding, plus §2.7's.

    The futures fields (deliveryTime, deliveryFeeRate, predictedDeliveryPrice, basis,
    basisRate, basisRateYear) are the REST ticker's (`wire.futures_ticker`); the funding
    fields are left out rather than sent empty, so no delta ever carries them.
    """
    extra = wire.futures_ticker(spec, ticker, predicted_e8)
    out = {key: value for key, value in fields.items() if key not in FUNDING_FIELDS}
    out.update((key, value) for key, value in extra.items() if key not in FUNDING_FIELDS)
    return out


def kline_row(spec: InstrumentSpec, interval: str, candle: Candle, confirm: bool) -> dict[str, Any]:
    """Return one `kline.{interval}.{symbol}` candle."""
    end = next_period_start(interval, candle.start_ms) - 1
    return {
        "start": candle.start_ms, "end": end, "interval": interval,
        "open": format_ticks(spec, candle.open), "close": format_ticks(spec, candle.close),
        "high": format_ticks(spec, candle.high), "low": format_ticks(spec, candle.low),
        "volume": format_lots(spec, candle.volume_lots),
        "turnover": format_atoms(candle.turnover_atoms), "confirm": confirm,
        "timestamp": candle.updated_ms if candle.updated_ms is not None else candle.start_ms,
    }

