"""Private topics (`order`, `execution`, `position`, `wallet`) built from one account's events.

`PrivateFeed.collect(events)` folds a durable command's events into per-account rows (spec §8.9,
§10): one `order` row per order the command touched, in its state after the command; one
`execution` row per fill, funding payment, takeover (`BustTrade`) or ADL (`AdlTrade`); one
`position` row per position that changed; one `wallet` row per account whose money or margin
moved. Order state is mirrored from events (open orders only, forgotten once final).

Position and wallet figures that no event carries (IM, MM, liquidation price, available
balance) are read from the engine's clearing when the row is built, so they may already include
commands applied but still being flushed (at most one group commit ahead).
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from perpx.api.ws.public import side_name
from perpx.convert import format_atoms, format_lots, format_rate, format_ticks
from perpx.core import calc
from perpx.core.engine import Engine
from perpx.core.enums import CancelReason, MarginMode, OrderType, TimeInForce
from perpx.core.events import (
    BalanceChanged,
    Deleveraged,
    Event,
    Executed,
    FundingPaid,
    LeverageSet,
    Liquidated,
    MarginAdjusted,
    MarginModeSet,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    PositionChanged,
)
from perpx.core.liquidation import position_summary
from perpx.core.margin import position_risk
from perpx.core.positions import Position
from perpx.core.takeover import adl_rank_indicator

PRIVATE_TOPICS = ("order", "execution", "position", "wallet")
_EXEC_NAMESPACE = uuid.UUID("5c1d2a3e-8f7b-4c6d-9e0a-1b2c3d4e5f60")

_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK",
        TimeInForce.POST_ONLY: "PostOnly"}
# CancelReason -> (rejectReason, cancelType), spec §5.7.
_CANCEL = {
    CancelReason.BY_USER: ("EC_PerCancelRequest", "CancelByUser"),
    CancelReason.POST_ONLY_WOULD_TAKE: ("EC_PostOnlyWillTakeLiquidity", "UNKNOWN"),
    CancelReason.NO_IMMEDIATE_QTY: ("EC_NoImmediateQtyToFill", "UNKNOWN"),
    CancelReason.IOC_REMAINDER: ("EC_NoError", "UNKNOWN"),
    CancelReason.FOK_NOT_FILLABLE: ("EC_CancelForNoFullFill", "UNKNOWN"),
    CancelReason.SELF_MATCH: ("EC_BySelfMatch", "CancelBySmp"),
    CancelReason.OUTSIDE_PRICE_BAND: ("EC_NoImmediateQtyToFill", "UNKNOWN"),
    CancelReason.REDUCE_ONLY: ("EC_NoError", "CancelByReduceOnly"),
    CancelReason.BEFORE_LIQUIDATION: ("EC_NoError", "CancelAllBeforeLiq"),
    CancelReason.BEFORE_ADL: ("EC_NoError", "CancelAllBeforeAdl"),
    CancelReason.TPSL_CLEARED: ("EC_NoError", "CancelByTpSlTsClear"),
    CancelReason.BY_ADMIN: ("EC_NoError", "CancelByAdmin"),
}


def exec_id(trade_id: int, is_maker: bool) -> str:
    """Return the execution id of one side of a trade: a UUID stable across restarts."""
    return str(uuid.uuid5(_EXEC_NAMESPACE, f"{trade_id}:{'m' if is_maker else 't'}"))


class OrderState:
    """An order as the `order` topic shows it, kept while it is open."""

    __slots__ = (
        "accepted",
        "account_id",
        "cancel",
        "closed_pnl",
        "created_ms",
        "cum_fee",
        "cum_qty",
        "cum_value",
        "order_id",
        "price",
        "qty",
        "updated_ms",
    )

    def __init__(self, event: OrderAccepted) -> None:
        self.accepted = event
        self.account_id = event.account_id
        self.order_id = event.order_id
        self.price = event.price_ticks
        self.qty = event.qty_lots
        self.cum_qty = 0
        self.cum_value = 0
        self.cum_fee = 0
        self.closed_pnl = 0
        self.cancel: CancelReason | None = None
        self.created_ms = event.ts_ms
        self.updated_ms = event.ts_ms

    @property
    def final(self) -> bool:
        """Tell whether the order is filled or cancelled."""
        return self.cancel is not None or self.cum_qty >= self.qty

    def status(self) -> str:
        """Bybit's orderStatus (derivatives: a part-filled cancel is `Cancelled`)."""
        if self.cancel is not None:
            return "Cancelled"
        if self.cum_qty >= self.qty:
            return "Filled"
        return "PartiallyFilled" if self.cum_qty else "New"

    def row(self, engine: Engine) -> dict[str, Any]:
        """Return the order object of spec §5.5 with the WS-only fields."""
        a = self.accepted
        spec = engine.instruments[a.symbol]
        leaves = 0 if self.final else self.qty - self.cum_qty
        reject, cancel_type = ("EC_NoError", "UNKNOWN") if self.cancel is None \
            else _CANCEL[self.cancel]
        avg = (format_ticks(spec, calc.average_entry_display(spec, self.cum_value, self.cum_qty))
               if self.cum_qty else "0")
        return {
            "category": "linear", "symbol": a.symbol, "orderId": str(a.order_id),
            "orderLinkId": a.order_link_id, "blockTradeId": "", "parentOrderLinkId": "",
            "side": side_name(a.side), "positionIdx": a.position_idx,
            "orderStatus": self.status(), "cancelType": cancel_type, "rejectReason": reject,
            "timeInForce": _TIF[a.time_in_force], "isLeverage": "",
            "price": format_ticks(spec, self.price), "qty": format_lots(spec, self.qty),
            "avgPrice": avg, "leavesQty": format_lots(spec, leaves),
            "leavesValue": format_atoms(spec.notional_atoms(self.price, leaves)),
            "cumExecQty": format_lots(spec, self.cum_qty),
            "cumExecValue": format_atoms(self.cum_value),
            "cumExecFee": format_atoms(self.cum_fee),
            "cumFeeDetail": {spec.settle_coin: format_atoms(self.cum_fee)} if self.cum_fee
            else {},
            "closedPnl": format_atoms(self.closed_pnl),
            "orderType": "Market" if a.order_type is OrderType.MARKET else "Limit",
            "stopOrderType": "", "orderIv": "", "triggerPrice": "", "takeProfit": "",
            "stopLoss": "", "triggerBy": "", "tpTriggerBy": "", "slTriggerBy": "",
            "triggerDirection": 0, "placeType": "", "lastPriceOnCreated": "",
            "closeOnTrigger": a.close_on_trigger, "reduceOnly": a.reduce_only,
            "smpGroup": 0, "smpType": a.smp_type.name.title().replace("_", "")
            if a.smp_type else "None", "smpOrderId": "",
            "slLimitPrice": "0", "tpLimitPrice": "0", "tpslMode": "UNKNOWN",
            "createType": "CreateByUser" if a.account_id > 0 else "CreateByLiq",
            "marketUnit": "", "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms), "feeCurrency": "",
            "slippageTolerance": "0", "slippageToleranceType": "UNKNOWN", "extraFees": "",
        }


@dataclass(slots=True)
class AccountRows:
    """What one command changed for one account."""

    orders: dict[int, OrderState] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    positions: set[tuple[str, int]] = field(default_factory=set)
    wallet: bool = False


class PrivateFeed:
    """Mirror open orders from events and turn each command's events into private rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.orders: dict[int, OrderState] = {}

    def collect(self, events: list[Event], interested: Container[int]) -> dict[int, AccountRows]:
        """Fold `events` into the order mirror; return what changed for `interested` accounts.

        Every event updates the mirror (an order placed before its owner connected must still
        be known when it fills); rows are built only for accounts someone listens to.
        """
        out: dict[int, AccountRows] = {}
        orders = self.orders

        def rows(account_id: int) -> AccountRows | None:
            if account_id not in interested:
                return None
            found = out.get(account_id)
            if found is None:
                found = out[account_id] = AccountRows()
            return found

        for event in events:
            if isinstance(event, OrderAccepted):
                state = orders[event.order_id] = OrderState(event)
                target = rows(event.account_id)
                if target is not None:
                    target.orders[event.order_id] = state
                    target.wallet = True
            elif isinstance(event, Executed):
                found = orders.get(event.order_id)
                spec = self.engine.instruments[event.symbol]
                value = spec.notional_atoms(event.price_ticks, event.qty_lots)
                if found is not None:
                    found.cum_qty += event.qty_lots
                    found.cum_value += value
                    found.cum_fee += event.fee_atoms
                    found.closed_pnl += event.closed_pnl_atoms
                    found.updated_ms = event.ts_ms
                target = rows(event.account_id)
                if target is not None:
                    if found is not None:
                        target.orders[event.order_id] = found
                    target.executions.append(self._execution(event, found, value))
                    target.wallet = True
            elif isinstance(event, OrderCancelled):
                found = orders.get(event.order_id)
                if found is not None:
                    found.cancel = event.reason
                    found.updated_ms = event.ts_ms
                    target = rows(event.account_id)
                    if target is not None:
                        target.orders[event.order_id] = found
                        target.wallet = True
                    del orders[event.order_id]
            elif isinstance(event, OrderAmended):
                found = orders.get(event.order_id)
                if found is not None:
                    found.price = event.price_ticks
                    found.qty = event.qty_lots
                    found.updated_ms = event.ts_ms
                    target = rows(event.account_id)
                    if target is not None:
                        target.orders[event.order_id] = found
                        target.wallet = True
            elif isinstance(event, (PositionChanged, MarginAdjusted)):
                target = rows(event.account_id)
                if target is not None:
                    target.positions.add((event.symbol, event.position_idx))
                    target.wallet = True
            elif isinstance(event, LeverageSet):
                target = rows(event.account_id)
                account = self.engine.clearing.account(event.account_id)
                if target is not None and account is not None:
                    target.positions.update(k for k in account.positions if k[0] == event.symbol)
                    target.wallet = True
            elif isinstance(event, FundingPaid):
                target = rows(event.account_id)
                if target is not None:
                    target.executions.append(self._funding(event))
            elif isinstance(event, (Liquidated, Deleveraged)):
                target = rows(event.account_id)
                if target is not None:
                    target.executions.append(self._forced(event))
            elif isinstance(event, (BalanceChanged, MarginModeSet)):
                target = rows(event.account_id)
                if target is not None:
                    target.wallet = True
        self._forget_filled(out, events)
        return out

    def _forget_filled(self, out: dict[int, AccountRows], events: list[Event]) -> None:
        # A fully filled order is final: its last row is built, so the mirror lets it go.
        for event in events:
            if isinstance(event, Executed):
                found = self.orders.get(event.order_id)
                if found is not None and found.final:
                    del self.orders[event.order_id]

    def _execution(self, event: Executed, state: OrderState | None,
                   value: int) -> dict[str, Any]:
        spec = self.engine.instruments[event.symbol]
        rate = spec.maker_fee_rate if event.is_maker else spec.taker_fee_rate
        mark = self.engine.mark_of(event.symbol)
        order_type = "Limit"
        order_price = order_qty = leaves = ""
        link = ""
        if state is not None:
            a = state.accepted
            order_type = "Market" if a.order_type is OrderType.MARKET else "Limit"
            order_price = format_ticks(spec, state.price)
            order_qty = format_lots(spec, state.qty)
            leaves = format_lots(spec, 0 if state.final else state.qty - state.cum_qty)
            link = a.order_link_id
        return {
            "category": "linear", "symbol": event.symbol, "orderId": str(event.order_id),
            "orderLinkId": link, "side": side_name(event.side), "orderPrice": order_price,
            "orderQty": order_qty, "leavesQty": leaves, "createType": "CreateByUser",
            "orderType": order_type, "stopOrderType": "UNKNOWN",
            "execId": exec_id(event.trade_id, event.is_maker),
            "execPrice": format_ticks(spec, event.price_ticks),
            "execQty": format_lots(spec, event.qty_lots), "execValue": format_atoms(value),
            "execType": "Trade", "execTime": str(event.ts_ms),
            "execFee": format_atoms(event.fee_atoms), "feeRate": format_rate(rate),
            "feeCurrency": spec.settle_coin, "isMaker": event.is_maker,
            "markPrice": "" if mark is None else format_ticks(spec, mark),
            "closedSize": format_lots(spec, event.closed_qty_lots),
            "execPnl": format_atoms(event.closed_pnl_atoms), "seq": event.seq,
            "isLeverage": "0", "marketUnit": "", "indexPrice": "", "underlyingPrice": "",
            "tradeIv": "", "markIv": "", "blockTradeId": "", "extraFees": "", "execFeeV2": "",
        }

    def _funding(self, event: FundingPaid) -> dict[str, Any]:
        spec = self.engine.instruments[event.symbol]
        return {
            "category": "linear", "symbol": event.symbol, "orderId": "", "orderLinkId": "",
            "side": "Buy" if event.size_lots > 0 else "Sell", "orderPrice": "",
            "orderQty": "", "leavesQty": "", "createType": "", "orderType": "UNKNOWN",
            "stopOrderType": "UNKNOWN",
            "execId": str(uuid.uuid5(_EXEC_NAMESPACE, f"funding:{event.seq}:"
                                     f"{event.account_id}:{event.symbol}:{event.position_idx}")),
            "execPrice": format_ticks(spec, event.mark_price_ticks),
            "execQty": format_lots(spec, abs(event.size_lots)),
            "execValue": format_atoms(event.value_atoms), "execType": "Funding",
            "execTime": str(event.funding_ms), "execFee": format_atoms(event.amount_atoms),
            "feeRate": format_rate(event.rate), "feeCurrency": spec.settle_coin,
            "isMaker": False, "markPrice": format_ticks(spec, event.mark_price_ticks),
            "closedSize": "0", "execPnl": format_atoms(-event.amount_atoms), "seq": event.seq,
            "isLeverage": "0", "marketUnit": "", "indexPrice": "", "underlyingPrice": "",
            "tradeIv": "", "markIv": "", "blockTradeId": "", "extraFees": "", "execFeeV2": "",
        }

    def _forced(self, event: Liquidated | Deleveraged) -> dict[str, Any]:
        spec = self.engine.instruments[event.symbol]
        if isinstance(event, Liquidated):
            kind, price = "BustTrade", event.bust_price_ticks
            side = side_name(event.side.opposite)  # the closing side
        else:
            kind, price = "AdlTrade", event.price_ticks
            position = self._position(event.account_id, event.symbol, event.position_idx)
            side = "Sell" if position is None or position.size_lots >= 0 else "Buy"
        return {
            "category": "linear", "symbol": event.symbol, "orderId": "", "orderLinkId": "",
            "side": side, "orderPrice": format_ticks(spec, price),
            "orderQty": format_lots(spec, event.qty_lots), "leavesQty": "0",
            "createType": ("CreateByTakeOver_PassThrough" if kind == "BustTrade"
                           else "CreateByAdl_PassThrough"),
            "orderType": "Market", "stopOrderType": "UNKNOWN",
            "execId": str(uuid.uuid5(_EXEC_NAMESPACE, f"{kind}:{event.seq}:"
                                     f"{event.account_id}:{event.symbol}:{event.position_idx}")),
            "execPrice": format_ticks(spec, price),
            "execQty": format_lots(spec, event.qty_lots),
            "execValue": format_atoms(spec.notional_atoms(price, event.qty_lots)),
            "execType": kind, "execTime": str(event.ts_ms), "execFee": "0", "feeRate": "0",
            "feeCurrency": spec.settle_coin, "isMaker": False,
            "markPrice": format_ticks(spec, event.mark_price_ticks), "closedSize":
            format_lots(spec, event.qty_lots), "execPnl": "", "seq": event.seq,
            "isLeverage": "0", "marketUnit": "", "indexPrice": "", "underlyingPrice": "",
            "tradeIv": "", "markIv": "", "blockTradeId": "", "extraFees": "", "execFeeV2": "",
        }

    def _position(self, account_id: int, symbol: str, idx: int) -> Position | None:
        account = self.engine.clearing.account(account_id)
        return None if account is None else account.position(symbol, idx)

    def position_row(self, account_id: int, symbol: str, idx: int,
                     adl: dict[tuple[int, int], int] | None = None) -> dict[str, Any]:
        """Return the position of spec §6.1 as the WS shows it (`entryPrice`)."""
        engine = self.engine
        spec = engine.instruments[symbol]
        account = engine.clearing.account(account_id)
        position = None if account is None else account.position(symbol, idx)
        leverage = (account.leverage_for(symbol, idx) if account is not None
                    else 10 * 10**8)
        row: dict[str, Any] = {
            "category": "linear", "symbol": symbol, "positionIdx": idx, "tradeMode": 0,
            "autoAddMargin": int(bool(account and account.auto_add_margin.get((symbol, idx)))),
            "positionStatus": "Normal", "leverage": format_rate(leverage), "bustPrice": "",
            "tpslMode": "Full", "takeProfit": "0", "stopLoss": "0", "trailingStop": "0",
            "sessionAvgPrice": "", "isReduceOnly": False, "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "", "seq": engine.last_seq,
        }
        mark = engine.mark_of(symbol)
        if account is None or position is None or not position.size_lots:
            tier = spec.risk_tiers[0]
            row.update({
                "side": "", "size": "0", "entryPrice": "0", "positionValue": "0",
                "markPrice": "" if mark is None else format_ticks(spec, mark),
                "riskId": tier.tier_id, "riskLimitValue": format_atoms(tier.limit_atoms),
                "breakEvenPrice": "0", "positionBalance": "0", "positionIM": "0",
                "positionIMByMp": "0", "positionMM": "0", "positionMMByMp": "0",
                "liqPrice": "", "unrealisedPnl": "0",
                "curRealisedPnl": format_atoms(position.realized_pnl_atoms if position else 0),
                "cumRealisedPnl": format_atoms(position.cum_realized_pnl_atoms
                                               if position else 0),
                "adlRankIndicator": 0,
                "createdTime": "0", "updatedTime": str(position.updated_ts_ms if position else 0),
            })
            return row
        summary = position_summary(engine.clearing, account, position)
        mark_ticks = mark if mark is not None else summary.entry_price_ticks
        risk = position_risk(position, spec, mark_ticks, account.margin_mode)
        tier = calc.tier_for_position(spec, summary.value_atoms)
        im = position.margin_atoms if account.margin_mode is MarginMode.ISOLATED else risk.im_atoms
        ranks = adl if adl is not None else adl_rank_indicator(engine, symbol)
        row.update({
            "side": side_name(position.side) if position.side is not None else "",
            "size": format_lots(spec, position.qty_lots),
            "entryPrice": format_ticks(spec, summary.entry_price_ticks),
            "positionValue": format_atoms(position.entry_value_atoms),
            "markPrice": format_ticks(spec, mark_ticks),
            "riskId": tier.tier_id, "riskLimitValue": format_atoms(tier.limit_atoms),
            "breakEvenPrice": "", "positionBalance": format_atoms(im),
            "positionIM": format_atoms(im), "positionIMByMp": format_atoms(im),
            "positionMM": format_atoms(risk.mm_atoms),
            "positionMMByMp": format_atoms(risk.mm_atoms),
            "liqPrice": ("" if summary.liq_price_ticks is None
                         else format_ticks(spec, summary.liq_price_ticks)),
            "unrealisedPnl": format_atoms(summary.upnl_atoms),
            "curRealisedPnl": format_atoms(summary.realized_pnl_atoms),
            "cumRealisedPnl": format_atoms(summary.cum_realized_pnl_atoms),
            "adlRankIndicator": ranks.get((account_id, idx), 0),
            "createdTime": str(position.updated_ts_ms),
            "updatedTime": str(position.updated_ts_ms),
        })
        return row

    def wallet_row(self, account_id: int) -> dict[str, Any] | None:
        """Return the wallet account object of spec §7.1 (UNIFIED), or None without a wallet."""
        clearing = self.engine.clearing
        account = clearing.account(account_id)
        if account is None:
            return None
        coins = []
        totals = {"equity": 0, "wallet": 0, "upnl": 0, "im": 0, "mm": 0, "available": 0,
                  "margin_balance": 0}
        for coin in clearing.coins:
            figures = clearing.figures(account, coin)
            cum_realized = sum(p.cum_realized_pnl_atoms for p in account.positions.values()
                               if self.engine.instruments[p.symbol].settle_coin == coin)
            equity = figures.wallet_atoms + figures.upnl_atoms
            totals["equity"] += equity
            totals["wallet"] += figures.wallet_atoms
            totals["upnl"] += figures.upnl_atoms
            totals["im"] += figures.total_im_atoms
            totals["mm"] += figures.mm_atoms
            totals["available"] += figures.available_atoms
            totals["margin_balance"] += figures.margin_balance_atoms
            coins.append({
                "coin": coin, "equity": format_atoms(equity), "usdValue": format_atoms(equity),
                "walletBalance": format_atoms(figures.wallet_atoms),
                "availableToWithdraw": "", "availableToBorrow": "", "borrowAmount": "0",
                "accruedInterest": "0", "totalOrderIM": format_atoms(figures.order_im_atoms),
                "totalPositionIM": format_atoms(figures.position_im_atoms),
                "totalPositionMM": format_atoms(figures.mm_atoms),
                "unrealisedPnl": format_atoms(figures.upnl_atoms),
                "cumRealisedPnl": format_atoms(cum_realized), "bonus": "0",
                "collateralSwitch": True, "marginCollateral": True, "locked": "0",
                "spotHedgingQty": "0", "spotBorrow": "0",
            })
        balance = totals["margin_balance"]
        im_rate = _rate4(totals["im"], balance)
        mm_rate = _rate4(totals["mm"], balance)
        return {
            "accountType": "UNIFIED", "accountLTV": "0",
            "totalEquity": format_atoms(totals["equity"]),
            "totalWalletBalance": format_atoms(totals["wallet"]),
            "totalMarginBalance": format_atoms(balance),
            "totalAvailableBalance": format_atoms(totals["available"]),
            "totalPerpUPL": format_atoms(totals["upnl"]),
            "totalInitialMargin": format_atoms(totals["im"]),
            "totalInitialMarginByMp": format_atoms(totals["im"]),
            "totalMaintenanceMargin": format_atoms(totals["mm"]),
            "totalMaintenanceMarginByMp": format_atoms(totals["mm"]),
            "accountIMRate": im_rate, "accountIMRateByMp": im_rate,
            "accountMMRate": mm_rate, "accountMMRateByMp": mm_rate,
            "coin": coins,
        }


def _rate4(numerator: int, denominator: int) -> str:
    """Return numerator / denominator to 4 decimals, rounded up (a requirement's ratio)."""
    if denominator <= 0:
        return "0"
    scaled = -(-numerator * 10_000 // denominator)
    whole, frac = divmod(scaled, 10_000)
    text = f"{whole}.{frac:04d}".rstrip("0").rstrip(".")
    return text
