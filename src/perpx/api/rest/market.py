"""Public market data (§4): instruments, tickers, book, trades, candles, funding, OI, risk."""

from __future__ import annotations

from typing import Any

from perpx.api import wire
from perpx.api.context import Access, Context, Endpoint
from perpx.bybit.errors import params_error
from perpx.bybit.params import LISTED_CATEGORIES, category_of, in_category, request_specs
from perpx.convert import format_atoms, format_lots, format_rate, format_scaled, format_ticks
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.numbers import RATE_DECIMALS
from perpx.readmodels import PriceSource
from perpx.readmodels.candles import select_candles
from perpx.readmodels.klines import HOLDS_VALUE
from perpx.readmodels.period import KLINE_INTERVALS, OPEN_INTEREST_INTERVALS
from perpx.store.history import decode_cursor, encode_cursor
from perpx.store.records import trade_exec_id


async def instruments_info(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/instruments-info."""
    params = ctx.params
    category = params.category()
    status = params.text("status")
    limit = params.limit(500, 1000)
    cursor = params.text("cursor")
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    symbol = params.text("symbol")
    base = params.text("baseCoin")
    # A dated future's status is the durable engine's (Trading until it delivers, then
    # Closed); without `status` only Trading contracts are listed, as Bybit does.
    delivery = ctx.service.durable.engine.delivery
    wanted = status or "Trading"
    specs = [spec for spec in in_category(ctx.service.specs, category).values()
             if (not symbol or spec.symbol == symbol) and (not base or spec.base_coin == base)
             and wire.STATUS_WORDS[delivery.status(spec.symbol)] == wanted]
    start = decode_cursor(cursor) if cursor else 0
    page = specs[start:start + limit]
    more = start + limit < len(specs)
    return {"category": category, "list": [wire.instrument(spec, wanted) for spec in page],
            "nextPageCursor": encode_cursor(start + limit) if more else ""}


async def delivery_price(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/delivery-price: delivered futures' prices, newest first (§2.7).

    From the durable engine's delivery clocks; Bybit's `settleCoin` defaults to USDC, so a
    query without it or a symbol asks for USDC contracts, as on Bybit. A query that names
    its symbol defaults to that symbol's settle coin (ccxt's `fetch_settlement_history`
    sends only category and symbol, and a USDT future's price must not read as none).
    """
    params = ctx.params
    category = params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = params.spec(specs, required=False)
    settle = params.text("settleCoin") or (spec.settle_coin if spec is not None else "USDC")
    limit = params.limit(50, 200)
    cursor = params.text("cursor")
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    delivery = ctx.service.durable.engine.delivery
    done = sorted(((specs[symbol].delivery_time_ms, symbol, clock.price_e8)
                   for symbol, clock in delivery.clocks.items()
                   if clock.price_e8 and symbol in specs
                   and specs[symbol].settle_coin == settle
                   and (spec is None or spec.symbol == symbol)), reverse=True)
    start = decode_cursor(cursor) if cursor else 0
    page = done[start:start + limit]
    more = start + limit < len(done)
    return {"category": category,
            "list": [{"symbol": symbol, "deliveryPrice": format_scaled(price, 8, 8),
                      "deliveryTime": str(when)} for when, symbol, price in page],
            "nextPageCursor": encode_cursor(start + limit) if more else ""}


async def tickers(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/tickers."""
    category = ctx.params.category()
    if category not in LISTED_CATEGORIES:
        return {"category": category, "list": []}
    service = ctx.service
    specs = in_category(service.specs, category)
    spec = ctx.params.spec(specs, required=False)
    chosen = [spec] if spec is not None else list(specs.values())
    service.tickers.now_ms = max(service.tickers.now_ms, ctx.now_ms)
    items: list[dict[str, Any]] = []
    books = service.durable.engine.books  # the durable book, as the tickers are durable
    for one in chosen:
        book = books[one.symbol]
        bids, asks = book.depth(1)
        item = service.tickers.ticker(one.symbol)
        row = wire.ticker(item, one, bids[0] if bids else None, asks[0] if asks else None)
        if one.dated:
            predicted = service.durable.engine.delivery.predicted_price_e8(one.symbol)
            row |= wire.futures_ticker(one, item, predicted)
        items.append(row)
    return {"category": category, "list": items}


async def orderbook(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/orderbook."""
    category = ctx.params.category()
    spec = ctx.params.spec(request_specs(ctx.service.specs, category))
    assert spec is not None
    limit = ctx.params.limit(25, 1000)
    # The book as of the durable seq it names in `u`/`seq` (never the writer's engine).
    state = ctx.service.durable.engine
    bids, asks = state.books[spec.symbol].depth(limit)
    return {"s": spec.symbol,
            "b": [[format_ticks(spec, p), format_lots(spec, q)] for p, q in bids],
            "a": [[format_ticks(spec, p), format_lots(spec, q)] for p, q in asks],
            "ts": ctx.now_ms, "u": state.last_seq, "seq": state.last_seq,
            "cts": state.last_ts_ms}


async def recent_trade(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/recent-trade."""
    category = ctx.params.category()
    if category not in LISTED_CATEGORIES:
        return {"category": category, "list": []}
    spec = ctx.params.spec(in_category(ctx.service.specs, category))
    assert spec is not None
    limit = ctx.params.limit(500, 1000)
    trades = ctx.service.projector.recent_trades[spec.symbol]
    items: list[dict[str, Any]] = []
    for trade_id, price, qty, side, ts_ms, seq in reversed(trades):
        if len(items) == limit:
            break
        items.append({"execId": trade_exec_id(trade_id, False), "symbol": spec.symbol,
                      "price": format_ticks(spec, price), "size": format_lots(spec, qty),
                      "side": wire.SIDES[side], "time": str(ts_ms), "isBlockTrade": False,
                      "isRPITrade": False, "seq": str(seq)})
    return {"category": category, "list": items}


def _kline(source: PriceSource) -> Any:
    async def handler(ctx: Context) -> dict[str, Any]:
        params = ctx.params
        # Without a category, the symbol's own (Bybit defaults to linear; perpx names the
        # category a listed symbol is in rather than calling an inverse one invalid).
        named = params.category() if "category" in params else ""
        spec = params.spec(request_specs(ctx.service.specs, named) if named
                           else ctx.service.specs)
        assert spec is not None
        category = named or category_of(spec)
        interval = params.text("interval", required=True)
        if interval not in KLINE_INTERVALS:
            raise params_error("interval invalid")
        start = params.integer("start", low=0)
        end = params.integer("end", low=0)
        limit = params.limit(200, 1000)
        if category not in LISTED_CATEGORIES:
            return {"symbol": spec.symbol, "category": category, "list": []}
        # Closed candles from the history table, the open one from memory (taken now, with
        # the table as it stands once every row queued so far is written: the same instant).
        klines = ctx.service.klines
        now_ms = max(klines.now_ms, ctx.now_ms)
        current = klines.latest(spec.symbol, interval, source)
        store = ctx.service.history
        symbol = spec.symbol
        candles = await store.run(lambda: select_candles(
            store.closed_candles(source.value, symbol, interval), current, interval,
            filled=source in HOLDS_VALUE, start_ms=start, end_ms=end, limit=limit,
            now_ms=now_ms))
        rows: list[list[str]] = []
        for candle in candles:
            if source is PriceSource.PREMIUM_INDEX:
                prices = [format_rate(v) for v in (candle.open, candle.high, candle.low,
                                                   candle.close)]
            else:
                prices = [format_ticks(spec, v) for v in (candle.open, candle.high,
                                                          candle.low, candle.close)]
            row = [str(candle.start_ms), *prices]
            if source is PriceSource.LAST:
                row += [format_lots(spec, candle.volume_lots),
                        format_atoms(candle.turnover_atoms)]
            rows.append(row)
        return {"symbol": spec.symbol, "category": category, "list": rows}
    return handler


async def server_time(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/time."""
    return {"timeSecond": str(ctx.now_ms // 1000), "timeNano": str(ctx.now_ms * 1_000_000)}


async def funding_history(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/funding/history."""
    params = ctx.params
    category = params.category()
    spec = params.spec(request_specs(ctx.service.specs, category))
    assert spec is not None
    start = params.integer("startTime", low=0)
    end = params.integer("endTime", low=0)
    limit = params.limit(200, 200)
    if category not in LISTED_CATEGORIES:
        return {"category": category, "list": []}
    store = ctx.service.history
    symbol = spec.symbol
    rates = await store.run(lambda: store.funding_rates(symbol, start_ms=start, end_ms=end,
                                                        limit=limit))
    return {"category": category, "list": [
        {"symbol": r.symbol, "fundingRate": format_rate(r.funding_rate),
         "fundingRateTimestamp": str(r.funding_rate_timestamp_ms)} for r in rates]}


async def open_interest(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/open-interest."""
    params = ctx.params
    category = params.category()
    spec = params.spec(request_specs(ctx.service.specs, category))
    assert spec is not None
    interval = params.text("intervalTime", required=True)
    if interval not in OPEN_INTEREST_INTERVALS:
        raise params_error("intervalTime invalid")
    start = params.integer("startTime", low=0)
    end = params.integer("endTime", low=0)
    limit = params.limit(50, 200)
    cursor = params.text("cursor")
    if category not in LISTED_CATEGORIES:
        return {"symbol": spec.symbol, "category": category, "list": [], "nextPageCursor": ""}
    model = ctx.service.open_interest
    model.now_ms = max(model.now_ms, ctx.now_ms)
    if cursor:
        end = decode_cursor(cursor) - 1
    points = model.history(spec.symbol, interval, start_ms=start, end_ms=end, limit=limit)
    more = len(points) == limit and points[-1].timestamp_ms > (start or 0)
    return {"symbol": spec.symbol, "category": category, "list": [
        {"openInterest": format_lots(spec, p.open_interest_lots),
         "timestamp": str(p.timestamp_ms)} for p in points],
        "nextPageCursor": encode_cursor(points[-1].timestamp_ms) if more else ""}


async def risk_limit(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/risk-limit (tiers ascending)."""
    category = ctx.params.category()
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    specs = in_category(ctx.service.specs, category)
    spec = ctx.params.spec(specs, required=False)
    chosen = [spec] if spec is not None else list(specs.values())
    rows = []
    for one in chosen:
        for number, tier in enumerate(one.risk_tiers):
            rows.append({
                "id": tier.tier_id, "symbol": one.symbol,
                "riskLimitValue": format_atoms(tier.limit_atoms),
                "maintenanceMargin": format_rate(tier.mmr),
                "initialMargin": format_rate(tier.imr), "isLowestRisk": int(number == 0),
                "maxLeverage": format_scaled(tier.max_leverage, RATE_DECIMALS, 2),
                "mmDeduction": format_atoms(tier.mm_deduction_atoms) if number else ""})
    return {"category": category, "list": rows, "nextPageCursor": ""}


async def insurance(ctx: Context) -> dict[str, Any]:
    """GET /v5/market/insurance: the one shared USDT fund."""
    coin = ctx.params.text("coin")
    state = ctx.service.durable.engine
    fund = state.clearing.accounts[INSURANCE_FUND_ID]
    rows = []
    for settle in sorted({spec.settle_coin for spec in ctx.service.specs.values()}):
        if coin and coin != settle:
            continue
        balance = format_atoms(fund.balance(settle))
        rows.append({"coin": settle, "symbols": ",".join(
            s for s, spec in ctx.service.specs.items() if spec.settle_coin == settle),
            "balance": balance, "value": balance})
    return {"updatedTime": str(state.last_ts_ms), "list": rows}


async def system_status(ctx: Context) -> dict[str, Any]:
    """GET /v5/system/status: no maintenance."""
    return {"list": []}


ROUTES = [
    Endpoint("GET", "/v5/market/instruments-info", instruments_info, Access.PUBLIC),
    Endpoint("GET", "/v5/market/delivery-price", delivery_price, Access.PUBLIC),
    Endpoint("GET", "/v5/market/tickers", tickers, Access.PUBLIC),
    Endpoint("GET", "/v5/market/orderbook", orderbook, Access.PUBLIC),
    Endpoint("GET", "/v5/market/recent-trade", recent_trade, Access.PUBLIC),
    Endpoint("GET", "/v5/market/kline", _kline(PriceSource.LAST), Access.PUBLIC),
    Endpoint("GET", "/v5/market/mark-price-kline", _kline(PriceSource.MARK), Access.PUBLIC),
    Endpoint("GET", "/v5/market/index-price-kline", _kline(PriceSource.INDEX), Access.PUBLIC),
    Endpoint("GET", "/v5/market/premium-index-price-kline", _kline(PriceSource.PREMIUM_INDEX),
             Access.PUBLIC),
    Endpoint("GET", "/v5/market/time", server_time, Access.PUBLIC),
    Endpoint("GET", "/v5/market/funding/history", funding_history, Access.PUBLIC),
    Endpoint("GET", "/v5/market/open-interest", open_interest, Access.PUBLIC),
    Endpoint("GET", "/v5/market/risk-limit", risk_limit, Access.PUBLIC),
    Endpoint("GET", "/v5/market/insurance", insurance, Access.PUBLIC),
    Endpoint("GET", "/v5/system/status", system_status, Access.PUBLIC),
]
