"""Bybit's wire objects: orders, executions, positions, wallets, instruments, tickers.

Prices carry the instrument's price decimals and quantities its qty-step decimals,
identically everywhere; money and rates are exact decimal strings from `perpx.convert`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from perpx.bybit.params import category_of
from perpx.convert import (
    account_rate_e4,
    format_atoms,
    format_average_price,
    format_lots,
    format_rate,
    format_scaled,
    format_ticks,
)
from perpx.core import calc
from perpx.core.account.accounts import Account
from perpx.core.account.margin_model import position_risk
from perpx.core.engine import Engine
from perpx.core.enums import (
    InstrumentStatus,
    MarginMode,
    OrderStatus,
    OrderType,
    Side,
    SmpType,
    StopOrderType,
    TimeInForce,
    TpSlMode,
    TriggerBy,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_DECIMALS
from perpx.core.risk.liquidation import position_summary
from perpx.instruments import CONTRACT_TYPE_WORDS
from perpx.readmodels import Ticker
from perpx.store.history import Page
from perpx.store.records import (
    ClosedPnlRecord,
    DeliveryRecord,
    ExecutionRecord,
    LedgerRecord,
    OrderRecord,
    SettlementRecord,
    TradingStop,
    cancel_reasons,
    create_type,
)

SIDES = {int(Side.BUY): "Buy", int(Side.SELL): "Sell"}
YEAR_MS = 365 * 86_400_000
# Bybit's instrument `status` words (next-mechanics §2.1).
STATUS_WORDS = {InstrumentStatus.TRADING: "Trading", InstrumentStatus.DELIVERING: "Delivering",
                InstrumentStatus.CLOSED: "Closed"}
ORDER_TYPES = {int(OrderType.LIMIT): "Limit", int(OrderType.MARKET): "Market"}
TIME_IN_FORCE = {int(TimeInForce.GTC): "GTC", int(TimeInForce.IOC): "IOC",
                 int(TimeInForce.FOK): "FOK", int(TimeInForce.POST_ONLY): "PostOnly"}
SMP_TYPES = {int(SmpType.NONE): "None", int(SmpType.CANCEL_MAKER): "CancelMaker",
             int(SmpType.CANCEL_TAKER): "CancelTaker", int(SmpType.CANCEL_BOTH): "CancelBoth"}
STATUSES = {int(OrderStatus.NEW): "New", int(OrderStatus.PARTIALLY_FILLED): "PartiallyFilled",
            int(OrderStatus.FILLED): "Filled", int(OrderStatus.CANCELLED): "Cancelled",
            int(OrderStatus.REJECTED): "Rejected", int(OrderStatus.UNTRIGGERED): "Untriggered",
            int(OrderStatus.TRIGGERED): "Triggered",
            int(OrderStatus.DEACTIVATED): "Deactivated"}
STOP_ORDER_TYPES = {0: "", int(StopOrderType.STOP): "Stop",
                    int(StopOrderType.TAKE_PROFIT): "TakeProfit",
                    int(StopOrderType.STOP_LOSS): "StopLoss",
                    int(StopOrderType.PARTIAL_TAKE_PROFIT): "PartialTakeProfit",
                    int(StopOrderType.PARTIAL_STOP_LOSS): "PartialStopLoss",
                    int(StopOrderType.TRAILING_STOP): "TrailingStop"}
TRIGGER_BY = {int(TriggerBy.LAST_PRICE): "LastPrice", int(TriggerBy.MARK_PRICE): "MarkPrice",
              int(TriggerBy.INDEX_PRICE): "IndexPrice"}
TPSL_MODES = {int(TpSlMode.FULL): "Full", int(TpSlMode.PARTIAL): "Partial"}
MARGIN_MODES = {MarginMode.ISOLATED: "ISOLATED_MARGIN", MarginMode.CROSS: "REGULAR_MARGIN",
                MarginMode.PORTFOLIO: "PORTFOLIO_MARGIN"}
EXTRA_DECIMALS = 4  # an average price may fall between ticks; show up to 4 more decimals


def average_price(spec: InstrumentSpec, value_atoms: int, lots: int) -> str:
    """Value / quantity as a price, floored to the price decimals + 4 ('0' without fills)."""
    return format_average_price(spec, value_atoms, lots, EXTRA_DECIMALS)


def leverage_text(leverage: int) -> str:
    """Return a leverage in 10**-8 as Bybit shows it ("10", "12.5")."""
    return format_rate(leverage)


def _optional_price(spec: InstrumentSpec, ticks: int) -> str:
    return format_ticks(spec, ticks) if ticks else "0"


def order(record: OrderRecord, spec: InstrumentSpec) -> dict[str, Any]:
    """Return the order object of §5.5, the same on REST and on the WS `order` topic.

    The WS-only fields (`category`, `closedPnl`, `feeCurrency`) are sent on REST too, so a
    client sees one object whichever way it asks.
    """
    status = STATUSES[record.status]
    reject, cancel = cancel_reasons(record)
    leaves = record.leaves_lots
    fee = record.cum_fee_atoms
    conditional = record.stop_order_type != 0
    return {
        "category": category_of(spec),
        "orderId": str(record.order_id), "orderLinkId": record.order_link_id,
        "parentOrderLinkId": "", "blockTradeId": "", "symbol": record.symbol,
        "price": format_ticks(spec, record.price_ticks) if record.price_ticks else "0",
        "qty": format_lots(spec, record.qty_lots),
        "side": SIDES[record.side], "isLeverage": "", "positionIdx": record.position_idx,
        "orderStatus": status, "createType": create_type(record), "cancelType": cancel,
        "rejectReason": reject,
        "avgPrice": average_price(spec, record.cum_value_atoms, record.cum_lots),
        "leavesQty": format_lots(spec, leaves),
        "leavesValue": format_atoms(spec.notional_atoms(record.price_ticks, leaves)),
        "cumExecQty": format_lots(spec, record.cum_lots),
        "cumExecValue": format_atoms(record.cum_value_atoms), "cumExecFee": format_atoms(fee),
        "cumFeeDetail": {spec.settle_coin: format_atoms(fee)} if fee else {},
        "timeInForce": TIME_IN_FORCE[record.time_in_force],
        "orderType": ORDER_TYPES[record.order_type],
        "stopOrderType": STOP_ORDER_TYPES[record.stop_order_type], "orderIv": "",
        "triggerPrice": _optional_price(spec, record.trigger_price_ticks),
        "takeProfit": _optional_price(spec, record.take_profit_ticks),
        "stopLoss": _optional_price(spec, record.stop_loss_ticks),
        "tpslMode": TPSL_MODES.get(record.tpsl_mode, "UNKNOWN"),
        "tpLimitPrice": _optional_price(spec, record.tp_limit_price_ticks),
        "slLimitPrice": _optional_price(spec, record.sl_limit_price_ticks),
        "tpTriggerBy": TRIGGER_BY.get(record.tp_trigger_by, "UNKNOWN"),
        "slTriggerBy": TRIGGER_BY.get(record.sl_trigger_by, "UNKNOWN"),
        "triggerBy": TRIGGER_BY.get(record.trigger_by, "UNKNOWN"),
        "triggerDirection": record.trigger_direction if conditional else 0,
        "lastPriceOnCreated": _optional_price(spec, record.last_price_on_created),
        "basePrice": "", "reduceOnly": record.reduce_only,
        "closeOnTrigger": record.close_on_trigger, "placeType": "",
        "smpType": SMP_TYPES[record.smp_type], "smpGroup": 0, "smpOrderId": "",
        "slippageToleranceType": "UNKNOWN", "slippageTolerance": "0", "marketUnit": "",
        "createdTime": str(record.created_ms), "updatedTime": str(record.updated_ms),
        "extraFees": "", "closedPnl": format_atoms(record.closed_pnl_atoms),
        "feeCurrency": "",
    }


def execution(record: ExecutionRecord, spec: InstrumentSpec) -> dict[str, Any]:
    """Return the execution object of §5.11 with the WS fields of §8.9 (one for both)."""
    funding = record.exec_type == "Funding"
    has_order = record.order_id != 0
    return {
        "category": category_of(spec),
        "symbol": record.symbol, "orderId": str(record.order_id) if has_order else "",
        "orderLinkId": record.order_link_id, "side": SIDES[record.side],
        "orderPrice": format_ticks(spec, record.order_price_ticks) if has_order else "",
        "orderQty": format_lots(spec, record.order_qty_lots) if has_order else "",
        "leavesQty": format_lots(spec, record.leaves_lots),
        "createType": record.create_type,
        "orderType": "UNKNOWN" if funding else ORDER_TYPES.get(record.order_type, "UNKNOWN"),
        "stopOrderType": STOP_ORDER_TYPES.get(record.stop_order_type) or "UNKNOWN",
        "execId": record.exec_id,
        "execPrice": format_ticks(spec, record.price_ticks),
        "execQty": format_lots(spec, record.qty_lots),
        "execValue": format_atoms(record.value_atoms), "execType": record.exec_type,
        "execTime": str(record.exec_ms), "execFee": format_atoms(record.fee_atoms),
        "feeRate": format_rate(record.fee_rate), "feeCurrency": spec.settle_coin,
        "isMaker": record.is_maker,
        "markPrice": format_ticks(spec, record.mark_ticks) if record.mark_ticks else "",
        "closedSize": format_lots(spec, record.closed_lots), "seq": record.seq,
        "execPnl": format_atoms(record.closed_pnl_atoms), "isLeverage": "0",
        "marketUnit": "",
        "indexPrice": "", "underlyingPrice": "", "tradeIv": "", "markIv": "",
        "blockTradeId": "", "extraFees": "", "execFeeV2": "",
    }


def closed_pnl(record: ClosedPnlRecord, spec: InstrumentSpec) -> dict[str, Any]:
    """Return the closed-P&L object of §6.9."""
    return {
        "symbol": record.symbol, "orderId": str(record.order_id), "side": SIDES[record.side],
        "qty": format_lots(spec, record.qty_lots),
        "orderPrice": format_ticks(spec, record.order_price_ticks),
        "orderType": ORDER_TYPES[record.order_type], "execType": record.exec_type,
        "closedSize": format_lots(spec, record.closed_lots),
        "cumEntryValue": format_atoms(record.entry_value_atoms),
        "avgEntryPrice": average_price(spec, record.entry_value_atoms, record.closed_lots),
        "cumExitValue": format_atoms(record.exit_value_atoms),
        "avgExitPrice": average_price(spec, record.exit_value_atoms, record.closed_lots),
        "closedPnl": format_atoms(record.closed_pnl_atoms), "fillCount": str(record.fill_count),
        "leverage": leverage_text(record.leverage) if record.leverage else "",
        "openFee": format_atoms(record.open_fee_atoms),
        "closeFee": format_atoms(record.close_fee_atoms),
        "createdTime": str(record.created_ms), "updatedTime": str(record.updated_ms),
    }


def delivery_record(record: DeliveryRecord, spec: InstrumentSpec) -> dict[str, Any]:
    """Return the delivery-record object of next-mechanics §2.7 (`/v5/asset/delivery-record`).

    `deliveryTime` is a number, as Bybit's is; the delivery price keeps its 8 decimals (it is
    not on the tick, §2.4) and `deliveryRpl` is the price P&L less the delivery fee; `strike`
    is an option's, empty for a future.
    """
    return {
        "deliveryTime": record.delivery_ms, "symbol": record.symbol,
        "side": SIDES[record.side], "position": format_lots(spec, record.qty_lots),
        "entryPrice": average_price(spec, record.entry_value_atoms, record.qty_lots),
        "deliveryPrice": format_scaled(record.delivery_price_e8, 8, 8), "strike": "",
        "fee": format_atoms(record.fee_atoms),
        "deliveryRpl": format_atoms(record.pnl_atoms - record.fee_atoms),
    }


def ledger(record: LedgerRecord, spec: InstrumentSpec | None = None) -> dict[str, Any]:
    """Return the transaction-log object of §7.7.

    A TRADE row names its fill (#13 C5): side, qty, the signed position size after it, the
    fill price, fee rate, order and `tradeId` = the execution's `execId`, as Bybit's do.
    """
    row = {
        "id": record.entry_id, "symbol": record.symbol,
        "category": category_of(spec) if record.symbol and spec is not None else "",
        "side": "None",
        "transactionTime": str(record.ts_ms), "type": record.kind, "transSubType": "",
        "qty": "", "size": "", "currency": record.coin, "tradePrice": "",
        "funding": format_atoms(record.funding_atoms), "fee": format_atoms(record.fee_atoms),
        "cashFlow": format_atoms(record.cash_flow_atoms),
        "change": format_atoms(record.change_atoms),
        "cashBalance": format_atoms(record.balance_atoms), "feeRate": "", "bonusChange": "",
        "tradeId": str(record.trade_id) if record.trade_id else "", "orderId": "",
        "orderLinkId": "", "extraFees": "",
    }
    if record.kind == "SETTLEMENT" and record.qty_lots and spec is not None:
        # A funding settlement names the position it charged and the funding's mark price
        # and rate; the payment is its `funding` and `change` (`fee` and `cashFlow` are 0).
        size = format_lots(spec, abs(record.size_lots))
        row.update({
            "side": SIDES[record.side], "qty": format_lots(spec, record.qty_lots),
            "size": "-" + size if record.size_lots < 0 else size,
            "tradePrice": format_ticks(spec, record.price_ticks),
            "feeRate": format_rate(record.fee_rate),
        })
    elif record.exec_id and spec is not None:
        size = format_lots(spec, abs(record.size_lots))
        row.update({
            "side": SIDES[record.side], "qty": format_lots(spec, record.qty_lots),
            "size": "-" + size if record.size_lots < 0 else size,
            "tradePrice": format_ticks(spec, record.price_ticks),
            "feeRate": format_rate(record.fee_rate), "tradeId": record.exec_id,
            "orderId": str(record.order_id), "orderLinkId": record.order_link_id,
        })
    return row


def trading_stop_fields(spec: InstrumentSpec, stop: TradingStop) -> dict[str, str]:
    """Return a position's `takeProfit`, `stopLoss`, `trailingStop` and their trigger-bys."""
    return {"tpslMode": "Full", "takeProfit": _optional_price(spec, stop.take_profit_ticks),
            "stopLoss": _optional_price(spec, stop.stop_loss_ticks),
            "trailingStop": _optional_price(spec, stop.trailing_stop_ticks),
            "activePrice": _optional_price(spec, stop.active_price_ticks),
            "tpTriggerBy": TRIGGER_BY[stop.tp_trigger_by],
            "slTriggerBy": TRIGGER_BY[stop.sl_trigger_by]}


def settlement_record(record: SettlementRecord, spec: InstrumentSpec) -> dict[str, Any]:
    """Return one row of GET /v5/asset/settlement-record (next-mechanics §3.3).

    `sessionAvgPrice` is the session's average before the settlement, `markPrice` the
    settlement's mark and `realisedPnl` what went to the wallet: U5's ``sessionAvgPrice =
    markPrice − realisedPnl / size`` for a long.
    """
    return {
        "symbol": record.symbol, "side": SIDES[record.side],
        "size": format_lots(spec, record.size_lots),
        "sessionAvgPrice": average_price(spec, record.session_entry_value_atoms,
                                         record.size_lots),
        "markPrice": format_ticks(spec, record.mark_price_ticks),
        "realisedPnl": format_atoms(record.realised_pnl_atoms),
        "createdTime": str(record.ts_ms),
    }


def position(engine: Engine, account: Account | None, spec: InstrumentSpec,
             position_idx: int, stop: TradingStop | None = None,
             adl_rank: int = 0) -> dict[str, Any]:
    """Return the position object of §6.1 (a flat row when there is no position).

    The figures are the core's own (`position_summary`, `position_risk`); `stop` is the
    position's TP/SL and trailing stop from the order projection, `adl_rank` its ADL
    indicator. The WebSocket's `position` topic shows the same row (§8.9).
    """
    symbol = spec.symbol
    held = account.positions.get((symbol, position_idx)) if account is not None else None
    leverage = (account.leverage_for(symbol, position_idx) if account is not None
                else 10 * 10**RATE_DECIMALS)
    mark = engine.mark_of(symbol)
    row: dict[str, Any] = {
        "positionIdx": position_idx, "riskId": spec.risk_tiers[0].tier_id,
        "riskLimitValue": format_atoms(spec.risk_tiers[0].limit_atoms), "symbol": symbol,
        "side": "", "size": format_lots(spec, 0), "avgPrice": "0", "positionValue": "0",
        "tradeMode": 0, "positionStatus": "Normal",
        "autoAddMargin": int(account.auto_add_margin.get((symbol, position_idx), False))
        if account is not None else 0,
        "adlRankIndicator": 0, "leverage": leverage_text(leverage), "breakEvenPrice": "",
        "positionBalance": "0", "markPrice": format_ticks(spec, mark) if mark else "",
        "liqPrice": "", "bustPrice": "", "positionMM": "0", "positionMMByMp": "0",
        "positionIM": "0", "positionIMByMp": "0", "tpslMode": "Full", "takeProfit": "",
        "stopLoss": "", "trailingStop": "", "unrealisedPnl": "0", "curRealisedPnl": "0",
        "cumRealisedPnl": "0", "sessionAvgPrice": "", "delta": "", "gamma": "", "vega": "",
        "theta": "", "isReduceOnly": False, "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "", "createdTime": "", "updatedTime": "", "seq": -1,
    }
    row.update(trading_stop_fields(spec, stop if stop is not None else TradingStop()))
    if held is None or account is None:
        return row
    row["curRealisedPnl"] = format_atoms(held.realized_pnl_atoms)
    row["cumRealisedPnl"] = format_atoms(held.cum_realized_pnl_atoms)
    row["updatedTime"] = row["createdTime"] = str(held.updated_ts_ms)
    if not held.size_lots:
        return row
    qty = held.qty_lots
    summary = position_summary(engine.clearing, account, held)
    value_mark = mark if mark else summary.entry_price_ticks
    risk = position_risk(held, spec, value_mark, account.margin_mode)
    tier = calc.tier_for_position(spec, summary.value_atoms)

    def price(ticks: int | None) -> str:
        return "" if ticks is None else format_ticks(spec, ticks)  # None: no such price

    row.update({
        "side": SIDES[int(held.side)] if held.side is not None else "",
        "size": format_lots(spec, qty),
        "avgPrice": average_price(spec, held.true_entry_value_atoms(spec), qty),
        # USDC contracts: the session's entry, which uPnL and margin use (§3.3); else "".
        "sessionAvgPrice": (average_price(spec, held.entry_value_atoms, qty)
                            if spec.session_settled else ""),
        "positionValue": format_atoms(held.entry_value_atoms), "riskId": tier.tier_id,
        "riskLimitValue": format_atoms(tier.limit_atoms),
        "markPrice": format_ticks(spec, value_mark),
        "positionBalance": format_atoms(summary.margin_atoms),
        "liqPrice": price(summary.liq_price_ticks), "bustPrice": price(summary.bust_price_ticks),
        "positionIM": format_atoms(risk.im_atoms), "positionIMByMp": format_atoms(risk.im_atoms),
        "positionMM": format_atoms(risk.mm_atoms), "positionMMByMp": format_atoms(risk.mm_atoms),
        "unrealisedPnl": format_atoms(summary.upnl_atoms), "adlRankIndicator": adl_rank,
        "breakEvenPrice": price(calc.break_even_price_ticks(
            spec, Side.BUY if held.size_lots > 0 else Side.SELL, held.entry_value_atoms, qty,
            held.realized_pnl_atoms)),
        "seq": engine.last_seq,
    })
    if account.margin_mode is MarginMode.PORTFOLIO:
        # Portfolio margin switches the per-position risk-limit machinery off (next-mechanics
        # §5.1): no risk tier, no leverage, no liquidation price, no position IM or MM.
        row.update({"riskId": 0, "riskLimitValue": "0", "leverage": "", "liqPrice": "",
                    "bustPrice": "", "positionIM": "", "positionIMByMp": "",
                    "positionMM": "", "positionMMByMp": ""})
    return row


def usd_price(engine: Engine, coin: str) -> tuple[int, int] | None:
    """Return a coin's USD price as a fraction (USD atoms per coin atom), None while unknown.

    The clearing's (`Clearing.usd_px`, next-mechanics §4.1): one rule for margin and display.
    """
    px = engine.clearing.usd_px(coin)
    return (px, 10**8) if px > 0 else None


def _usd(atoms: int, price: tuple[int, int]) -> int:
    """Return a coin amount in USD atoms, floored: an asset counts no more, a debt no less."""
    return atoms * price[0] // price[1]


def rate_text_value(fraction: tuple[int, int]) -> int:
    """Return an account rate (requirement over balance) in 10**-4 as the wallet shows it.

    Truncated (`convert.account_rate_e4`, as Bybit prints the rates); 0 without a base.
    """
    rate = account_rate_e4(*fraction)
    return 0 if rate is None else rate


def wallet(engine: Engine, account: Account | None) -> dict[str, Any]:
    """Return the UNIFIED wallet-balance object of §7.1: a row per coin, totals in USD.

    Each coin row is in its coin (a BTC row: walletBalance, unrealisedPnl, cumRealisedPnl,
    totalPositionIM in BTC), with the coin's own figures: its wallet and the contracts settled
    in it; `borrowAmount` is its liability (|min(0, equity)|, next-mechanics §4.4). A row is
    listed once the account holds, owes or trades the coin; an account without any shows the
    first settle coin's zero row, as Bybit shows an empty wallet.

    The account totals of a USD pool (cross or portfolio margin across coins, §4.3) are the
    pool's: total equity at the USD prices, the margin balance after collateral ratios, IM,
    MM and the account rates in USD. An account margined per coin (isolated, or one coin at
    par) sums its rows in USD, and its IM and MM rates are the highest of its coins' own.
    """
    clearing = engine.clearing
    rows: list[dict[str, Any]] = []
    totals = dict.fromkeys(("equity", "wallet", "margin", "available", "upnl", "im", "mm"), 0)
    im_rate = mm_rate = 0  # in 10**-4
    pooled = account is not None and clearing.pooled(account)
    portfolio = account is not None and account.model.mode is MarginMode.PORTFOLIO
    for coin in clearing.coins:
        if account is None:
            continue
        figures = clearing.coin_figures(account, coin)
        cum_realized = sum(p.cum_realized_pnl_atoms for p in account.positions.values()
                           if engine.instruments[p.symbol].settle_coin == coin)
        if not (figures.wallet_atoms or figures.upnl_atoms or figures.total_im_atoms
                or cum_realized):
            continue
        equity = figures.wallet_atoms + figures.upnl_atoms
        price = usd_price(engine, coin)
        if price is not None and not pooled:
            for name, atoms in (("equity", equity), ("wallet", figures.wallet_atoms),
                                ("margin", figures.margin_balance_atoms),
                                ("available", max(0, figures.available_atoms)),
                                ("upnl", figures.upnl_atoms), ("im", figures.total_im_atoms),
                                ("mm", figures.mm_atoms)):
                totals[name] += _usd(atoms, price)
        if not pooled:
            im_rate = max(im_rate, rate_text_value(figures.im_rate()))
            mm_rate = max(mm_rate, rate_text_value(figures.mm_rate()))
        terms = clearing.collateral.coin(coin)
        rows.append(_wallet_coin(coin, figures.wallet_atoms, figures.upnl_atoms,
                                 figures.order_im_atoms, figures.position_im_atoms,
                                 figures.mm_atoms, cum_realized,
                                 _usd(equity, price) if price is not None else None,
                                 margin_collateral=terms is not None and terms.margin_collateral,
                                 switched_on=coin not in account.collateral_off,
                                 portfolio=portfolio))
    if pooled and account is not None:
        risk = clearing.account_risk(account)
        totals.update(equity=risk.total_equity_atoms, wallet=risk.wallet_atoms,
                      margin=risk.margin_balance_atoms,
                      available=max(0, risk.available_atoms), upnl=risk.upnl_atoms,
                      im=risk.total_im_atoms, mm=risk.mm_atoms)
        im_rate, mm_rate = rate_text_value(risk.im_rate()), rate_text_value(risk.mm_rate())
    if not rows and clearing.coins:
        rows.append(_wallet_coin("USDT" if "USDT" in clearing.coins else clearing.coins[0],
                                 0, 0, 0, 0, 0, 0, 0))
    im_text, mm_text = format_scaled(im_rate, 4), format_scaled(mm_rate, 4)
    return {
        "accountType": "UNIFIED", "totalEquity": format_atoms(totals["equity"]),
        "totalWalletBalance": format_atoms(totals["wallet"]),
        "totalMarginBalance": format_atoms(totals["margin"]),
        "totalAvailableBalance": format_atoms(totals["available"]),
        "totalPerpUPL": format_atoms(totals["upnl"]),
        "totalInitialMargin": format_atoms(totals["im"]),
        "totalInitialMarginByMp": format_atoms(totals["im"]),
        "totalMaintenanceMargin": format_atoms(totals["mm"]),
        "totalMaintenanceMarginByMp": format_atoms(totals["mm"]),
        "accountIMRate": im_text, "accountIMRateByMp": im_text,
        "accountMMRate": mm_text, "accountMMRateByMp": mm_text, "accountLTV": "0",
        "coin": rows,
    }


def _wallet_coin(coin: str, wallet_atoms: int, upnl: int, order_im: int, position_im: int,
                 mm: int, cum_realized: int, usd_value: int | None, *,
                 margin_collateral: bool = True, switched_on: bool = True,
                 portfolio: bool = False) -> dict[str, Any]:
    """One coin row of the wallet, every amount in the coin (usdValue: "" without a price).

    `borrowAmount` is the coin's liability (a negative equity, next-mechanics §4.4); interest
    is booked into the balance when charged, so nothing is left accrued. Under portfolio margin
    the per-coin IM and MM are "" (§5.1).
    """
    equity = wallet_atoms + upnl
    return {
        "coin": coin, "equity": format_atoms(equity),
        "usdValue": format_atoms(usd_value) if usd_value is not None else "",
        "walletBalance": format_atoms(wallet_atoms), "locked": "0",
        "spotHedgingQty": "0", "borrowAmount": format_atoms(max(0, -equity)),
        "accruedInterest": "0",
        "spotBorrow": "0",
        "totalOrderIM": "" if portfolio else format_atoms(order_im),
        "totalPositionIM": "" if portfolio else format_atoms(position_im),
        "totalPositionMM": "" if portfolio else format_atoms(mm),
        "unrealisedPnl": format_atoms(upnl),
        "cumRealisedPnl": format_atoms(cum_realized), "bonus": "0",
        "marginCollateral": margin_collateral, "collateralSwitch": switched_on, "colRes": "0",
        # Deprecated for UNIFIED: Bybit answers "" and ccxt then derives free from the IMs.
        "availableToWithdraw": "", "availableToBorrow": "", "free": "",
    }


def instrument(spec: InstrumentSpec, status: str = "Trading") -> dict[str, Any]:
    """Return the instruments-info item of §4.1, linear or inverse (a dated future's: §2.1).

    A dated future has its contractType, deliveryTime and deliveryFeeRate, fundingInterval 0
    and no funding caps.
    """
    item: dict[str, Any] = {
        "symbol": spec.symbol, "contractType": CONTRACT_TYPE_WORDS[spec.contract_type],
        "status": status, "baseCoin": spec.base_coin, "quoteCoin": spec.quote_coin,
        "settleCoin": spec.settle_coin, "symbolType": "",
        "launchTime": str(spec.launch_time_ms), "deliveryTime": str(spec.delivery_time_ms),
        "deliveryFeeRate": format_rate(spec.delivery_fee_rate) if spec.dated else "",
        "priceScale": str(spec.price_scale),
        "leverageFilter": {"minLeverage": format_rate(spec.min_leverage),
                           "maxLeverage": format_scaled(spec.max_leverage, RATE_DECIMALS, 2),
                           "leverageStep": format_rate(spec.leverage_step)},
        "priceFilter": {"minPrice": format_ticks(spec, spec.min_price_ticks),
                        "maxPrice": format_ticks(spec, spec.max_price_ticks),
                        "tickSize": spec.tick_size},
        "lotSizeFilter": {"maxOrderQty": format_lots(spec, spec.max_order_qty_lots),
                          "minOrderQty": format_lots(spec, spec.min_order_qty_lots),
                          "qtyStep": spec.qty_step,
                          "postOnlyMaxOrderQty": format_lots(spec, spec.max_order_qty_lots),
                          "maxMktOrderQty": format_lots(spec, spec.max_mkt_order_qty_lots),
                          "minNotionalValue": format_atoms(spec.min_notional_atoms)},
        "unifiedMarginTrade": True,
        "fundingInterval": 0 if spec.dated else spec.funding_interval_min,
        "copyTrading": "both", "upperFundingRate": format_rate(spec.upper_funding_rate),
        "lowerFundingRate": format_rate(spec.lower_funding_rate), "isPreListing": False,
        "preListingInfo": None, "displayName": spec.display_name, "forbidUplWithdrawal": False,
        "riskParameters": {"priceLimitRatioX": format_rate(spec.price_limit_ratio_x),
                           "priceLimitRatioY": format_rate(spec.price_limit_ratio_y)},
    }
    if spec.dated:
        del item["upperFundingRate"], item["lowerFundingRate"]
    return item


def _price(spec: InstrumentSpec, ticks: int | None) -> str:
    return format_ticks(spec, ticks) if ticks is not None else ""


def ticker(item: Ticker, spec: InstrumentSpec, bid: tuple[int, int] | None,
           ask: tuple[int, int] | None) -> dict[str, Any]:
    """Return the ticker of §4.2; an inverse one's volume is in contracts, its values in coin."""
    oi_value = item.open_interest_value_atoms
    return {
        "symbol": item.symbol, "lastPrice": _price(spec, item.last_price_ticks),
        "indexPrice": _price(spec, item.index_price_ticks),
        "markPrice": _price(spec, item.mark_price_ticks),
        "prevPrice24h": _price(spec, item.prev_price_24h_ticks),
        "price24hPcnt": format_scaled(item.price_24h_pcnt_rate // 100, 6),
        "highPrice24h": _price(spec, item.high_price_24h_ticks),
        "lowPrice24h": _price(spec, item.low_price_24h_ticks),
        "prevPrice1h": _price(spec, item.prev_price_1h_ticks),
        "openInterest": format_lots(spec, item.open_interest_lots),
        "openInterestValue": format_atoms(oi_value) if oi_value is not None else "0",
        "turnover24h": format_atoms(item.turnover_24h_atoms),
        "volume24h": format_lots(spec, item.volume_24h_lots),
        "fundingRate": format_rate(item.funding_rate),
        "nextFundingTime": str(item.next_funding_ms),
        "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "",
        "deliveryTime": "0", "basis": "", "preOpenPrice": "", "preQty": "",
        "curPreListingPhase": "", "basisRateYear": "",
        "bid1Price": _price(spec, bid[0]) if bid else "",
        "bid1Size": format_lots(spec, bid[1]) if bid else "",
        "ask1Price": _price(spec, ask[0]) if ask else "",
        "ask1Size": format_lots(spec, ask[1]) if ask else "",
        "fundingIntervalHour": str(item.funding_interval_min // 60),
        "fundingCap": format_rate(spec.upper_funding_rate),
    }


def futures_ticker(spec: InstrumentSpec, item: Ticker, predicted_e8: int | None
                   ) -> dict[str, Any]:
    """Return the fields a dated future's ticker adds (next-mechanics §2.7).

    `predictedDeliveryPrice` has a value only in the last 30 minutes (the running mean of
    the index samples); `basis` is mark − index and `basisRate` basis / index (the mark is
    the index times one plus the 10-minute basis-rate average, §2.3). No funding fields.
    """
    mark, index = item.mark_price_ticks, item.index_price_ticks
    basis = mark - index if mark is not None and index else None
    left_ms = spec.delivery_time_ms - item.ts_ms
    # The basis rate annualised over the time left to delivery (Bybit's basisRateYear).
    yearly = (format_scaled(basis * 10**8 * YEAR_MS // (index * left_ms), 8)
              if basis is not None and index and left_ms > 0 else "")
    return {
        "deliveryTime": str(spec.delivery_time_ms),
        "deliveryFeeRate": format_rate(spec.delivery_fee_rate),
        "predictedDeliveryPrice": (format_scaled(predicted_e8, 8, 8)
                                   if predicted_e8 is not None else ""),
        "basis": format_ticks(spec, basis) if basis is not None else "",
        "basisRate": (format_scaled(basis * 10**8 // index, 8) if basis is not None and index
                      else ""),
        "basisRateYear": yearly,
        "fundingRate": "", "nextFundingTime": "", "fundingIntervalHour": "", "fundingCap": "",
    }


class _Keyed(Protocol):
    """A history record: it names its instrument."""

    @property
    def symbol(self) -> str: ...


R = TypeVar("R", bound=_Keyed)


def empty_page(category: str) -> dict[str, Any]:
    """Return the answer for a category this exchange does not list (Bybit: an empty page)."""
    return {"category": category, "list": [], "nextPageCursor": ""}


def history_page(category: str, page: Page[R], specs: Mapping[str, InstrumentSpec],
                 render: Callable[[R, InstrumentSpec], dict[str, Any]],
                 keep: Callable[[R], bool] = lambda _: True) -> dict[str, Any]:
    """Return a history page of `category`'s records, each rendered with its instrument."""
    return {"category": category,
            "list": [render(r, specs[r.symbol]) for r in page.records if keep(r)],
            "nextPageCursor": page.next_cursor}
