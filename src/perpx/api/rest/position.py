"""Positions (§6): list, leverage, position mode, isolated margin, closed P&L."""

from __future__ import annotations

import asyncio
from typing import Any

from perpx.api import wire
from perpx.api.context import Access, Context, Endpoint, raise_rejection
from perpx.bybit import stops, translate
from perpx.bybit.errors import ApiError, params_error
from perpx.bybit.params import LINEAR, LISTED_CATEGORIES, category_of, request_specs
from perpx.bybit.retcodes import bybit_code
from perpx.convert import ConversionError, format_atoms, to_atoms, to_rate
from perpx.core.commands import AdjustMargin, SetAutoAddMargin, SetLeverage, SwitchPositionMode
from perpx.core.enums import MarginMode, PositionMode
from perpx.core.instruments import InstrumentSpec
from perpx.store.records import TradingStop

POSITION_MODES = {"0": PositionMode.ONE_WAY, "3": PositionMode.HEDGE}


def _spec(ctx: Context) -> InstrumentSpec:
    return translate.category_spec(ctx.params, ctx.service.specs)


def _decimal(convert: Any, text: str) -> int:
    try:
        value: int = convert(text)
    except ConversionError as bad:
        code, message = bybit_code(bad.code)
        raise ApiError(code, message) from bad
    return value


def _idx_rows(ctx: Context, spec: InstrumentSpec) -> list[int]:
    account = ctx.service.durable.engine.clearing.account(ctx.account_id)
    hedge = account is not None and account.position_mode(spec.symbol) is PositionMode.HEDGE
    return [1, 2] if hedge else [0]


def _stop(ctx: Context, symbol: str, idx: int) -> TradingStop:
    return ctx.service.projector.trading_stop(ctx.account_id, symbol, idx)


async def position_list(ctx: Context) -> dict[str, Any]:
    """GET /v5/position/list: a symbol's rows even when flat; by settle coin, open ones."""
    params = ctx.params
    category = params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = params.spec(specs, required=False)
    settle = params.text("settleCoin")
    base = params.text("baseCoin")
    params.limit(20, 200)
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    # Bybit requires symbol or settleCoin for linear only: an inverse list may name neither
    # (ccxt.pro's watch_positions asks `category=inverse&limit=200`).
    if spec is None and not settle and not base and category == LINEAR:
        raise ApiError(10001, "Missing some parameters that must be filled in, symbol or "
                              "settleCoin")
    state = ctx.service.durable.engine
    account = state.clearing.account(ctx.account_id)
    rows = []
    if spec is not None:
        rows = [wire.position(state, account, spec, idx, _stop(ctx, spec.symbol, idx),
                              ctx.service.adl.rank(spec.symbol, ctx.account_id, idx))
                for idx in _idx_rows(ctx, spec)]
    elif account is not None:
        for (symbol, idx), held in sorted(account.positions.items()):
            one = specs.get(symbol)  # None: a symbol of another category
            if one is not None and held.size_lots and \
                    (not settle or one.settle_coin == settle) and \
                    (not base or one.base_coin == base):
                rows.append(wire.position(state, account, one, idx, _stop(ctx, symbol, idx),
                                          ctx.service.adl.rank(symbol, ctx.account_id, idx)))
    return {"category": category, "list": rows, "nextPageCursor": ""}


async def set_leverage(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/set-leverage."""
    spec = _spec(ctx)
    buy = _decimal(to_rate, ctx.params.text("buyLeverage", required=True))
    sell = _decimal(to_rate, ctx.params.text("sellLeverage", required=True))
    raise_rejection(await ctx.service.submit(SetLeverage(0, 0, ctx.account_id, spec.symbol,
                                                         buy, sell)))
    return {}


async def switch_mode(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/switch-mode: one symbol, or every symbol of a settle coin.

    A symbol already in `mode` answers 110025, as Bybit. By coin, the symbols already in
    `mode` are left alone and, when all are, nothing changes and the answer is 0 (freqtrade
    and ccxt set a coin's mode at every start and stop on 110025). Every symbol to switch is
    checked before any is switched, and the switches are submitted together: all or none.
    """
    params = ctx.params
    specs = translate.category_specs(params, ctx.service.specs)
    mode = params.choice("mode", POSITION_MODES, required=True)
    spec = params.spec(specs, required=False)
    coin = params.text("coin")
    if spec is None and not coin:
        raise params_error("symbol or coin is required")
    symbols = [spec.symbol] if spec is not None else [
        s.symbol for s in specs.values() if s.settle_coin == coin]
    if not symbols:
        raise params_error("coin invalid")
    engine = ctx.service.engine
    account = engine.clearing.account(ctx.account_id)
    # An account with no wallet yet is one-way everywhere, like a new one.
    todo = [s for s in symbols if (account.position_mode(s) if account is not None
                                   else PositionMode.ONE_WAY) is not mode]
    if not todo:
        # Nothing to switch, as the writer's state says: answer once that state is durable.
        await ctx.service.settled()
        if spec is None:
            return {}
        raise ApiError(110025, "Position mode is not modified")
    if account is None:
        raise ApiError(10001, "params error: the account has no wallet yet")
    for symbol in todo:
        refused = engine.position_mode_refusal(ctx.account_id, symbol, mode)
        if refused is not None:
            await ctx.service.settled()  # refused on the writer's state: once it is durable
            code, message = bybit_code(refused)
            raise ApiError(code, f"{message}: {symbol}")
    # gather starts every submit in order before any awaits, and a submit applies its command
    # in its first step: no other command comes between the checks and the switches.
    for events in await asyncio.gather(*(ctx.service.submit(SwitchPositionMode(
            0, 0, ctx.account_id, symbol, mode)) for symbol in todo)):
        raise_rejection(events)
    return {}


async def switch_isolated(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/switch-isolated: not for unified accounts (Bybit UTA 2.0)."""
    raise ApiError(100028, "The API cannot be accessed by unified account users.")


async def set_auto_add_margin(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/set-auto-add-margin."""
    spec = _spec(ctx)
    enabled = ctx.params.integer("autoAddMargin", required=True, low=0, high=1)
    account = ctx.service.engine.clearing.account(ctx.account_id)
    if account is None or account.margin_mode is not MarginMode.ISOLATED:
        await ctx.service.settled()  # refused on the writer's state: once it is durable
        raise ApiError(110076, "Only isolated mode can set auto-add-margin")
    raise_rejection(await ctx.service.submit(SetAutoAddMargin(
        0, 0, ctx.account_id, spec.symbol, translate.position_idx(ctx.params), bool(enabled))))
    return {}


async def add_margin(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/add-margin: add (positive) or reduce (negative) isolated margin."""
    spec = _spec(ctx)
    amount = _decimal(to_atoms, ctx.params.text("margin", required=True))
    idx = translate.position_idx(ctx.params)
    engine = ctx.service.engine
    account = engine.clearing.account(ctx.account_id)
    if account is not None and account.margin_mode is not MarginMode.ISOLATED:
        await ctx.service.settled()  # refused on the writer's state: once it is durable
        raise ApiError(110015, "The position is in cross margin mode.")
    raise_rejection(await ctx.service.submit(AdjustMargin(0, 0, ctx.account_id, spec.symbol,
                                                          idx, amount)))
    # Acknowledged, so the durable state holds the adjustment (read-your-writes).
    state = ctx.service.durable.engine
    row = wire.position(state, state.clearing.account(ctx.account_id), spec, idx,
                        _stop(ctx, spec.symbol, idx))
    return {"category": category_of(spec), **{k: row[k] for k in (
        "symbol", "positionIdx", "riskId", "riskLimitValue", "size", "positionValue",
        "avgPrice", "liqPrice", "bustPrice", "markPrice", "leverage", "autoAddMargin",
        "positionStatus", "positionIM", "positionMM", "unrealisedPnl", "cumRealisedPnl",
        "stopLoss", "takeProfit", "trailingStop", "createdTime", "updatedTime")}}


async def set_risk_limit(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/set-risk-limit: risk limits are automatic (Bybit, 2024); no effect."""
    spec = _spec(ctx)
    risk_id = ctx.params.integer("riskId", required=True, low=1)
    tier = next((t for t in spec.risk_tiers if t.tier_id == risk_id), None)
    if tier is None:
        raise params_error("riskId invalid")
    return {"riskId": tier.tier_id, "riskLimitValue": format_atoms(tier.limit_atoms),
            "category": category_of(spec)}


async def trading_stop(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/trading-stop: set, change or remove a position's TP/SL and trailing."""
    command = translate.trading_stop(ctx.account_id, ctx.params, ctx.service.specs)
    raise_rejection(await ctx.service.submit(command))
    return {}


async def set_tpsl_mode(ctx: Context) -> dict[str, Any]:
    """POST /v5/position/set-tpsl-mode (deprecated by Bybit: TP/SL mode is per order now).

    Checked and answered, without effect: each create and trading-stop names its own mode
    (Full when absent), as Bybit's order-level TP/SL do.
    """
    _spec(ctx)
    mode = ctx.params.text("tpSlMode", required=True)
    if mode not in stops.TPSL_MODES:
        raise params_error("tpSlMode invalid")
    return {"tpSlMode": mode}


async def closed_pnl(ctx: Context) -> dict[str, Any]:
    """GET /v5/position/closed-pnl."""
    params = ctx.params
    category = params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = params.spec(specs, required=False)
    start, end = params.window(ctx.now_ms)
    limit = params.limit(50, 100)
    cursor = params.cursor()
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    store = ctx.service.history
    page = await store.run(lambda: store.closed_pnls(
        ctx.account_id, symbol=spec.symbol if spec else tuple(specs), start_ms=start,
        end_ms=end, limit=limit, cursor=cursor))
    return wire.history_page(category, page, specs, wire.closed_pnl)


ROUTES = [
    Endpoint("GET", "/v5/position/list", position_list, Access.READ),
    Endpoint("POST", "/v5/position/set-leverage", set_leverage, Access.WRITE),
    Endpoint("POST", "/v5/position/switch-mode", switch_mode, Access.WRITE),
    Endpoint("POST", "/v5/position/switch-isolated", switch_isolated, Access.WRITE),
    Endpoint("POST", "/v5/position/set-auto-add-margin", set_auto_add_margin, Access.WRITE),
    Endpoint("POST", "/v5/position/add-margin", add_margin, Access.WRITE),
    Endpoint("POST", "/v5/position/set-risk-limit", set_risk_limit, Access.WRITE),
    Endpoint("POST", "/v5/position/trading-stop", trading_stop, Access.WRITE),
    Endpoint("POST", "/v5/position/set-tpsl-mode", set_tpsl_mode, Access.WRITE),
    Endpoint("GET", "/v5/position/closed-pnl", closed_pnl, Access.READ),
]
