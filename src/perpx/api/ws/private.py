"""Private topics (`order`, `execution`, `position`, `wallet`) built from one account's events.

`PrivateFeed.collect(events, interested, projection)` turns a durable command's events into
per-account rows (spec §8.9, §10): one `order` row per order the command touched, in its state
after the command (preceded by its Triggered state when its trigger fired); one `execution`
row per fill, funding payment, takeover (`BustTrade`) or ADL (`AdlTrade`); one `position` row
per position that changed; one `wallet` row per account whose money or margin moved.

Orders and executions come from the service's order projection (`perpx.store.records`), the
same records the REST endpoints read, built into wire objects by `perpx.api.wire`: a client
sees identical order objects and execution ids on REST and WS.

Position and wallet figures that no event carries (IM, MM, liquidation price, available
balance) are read from the engine's clearing when the row is built, so they may already include
commands applied but still being flushed (at most one group commit ahead).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from perpx.api import wire
from perpx.api.ws.public import side_name
from perpx.convert import format_atoms, format_lots, format_rate, format_ticks
from perpx.core import calc
from perpx.core.engine import Engine
from perpx.core.enums import MarginMode
from perpx.core.events import (
    BalanceChanged,
    Event,
    LeverageSet,
    MarginAdjusted,
    MarginModeSet,
    PositionChanged,
    TradingStopSet,
)
from perpx.core.liquidation import position_summary
from perpx.core.margin import position_risk
from perpx.core.takeover import adl_rank_indicator
from perpx.store.records import ExecutionRecord, OrderRecord, Projection, Projector

PRIVATE_TOPICS = ("order", "execution", "position", "wallet")


@dataclass(slots=True)
class AccountRows:
    """What one command changed for one account."""

    orders: list[OrderRecord] = field(default_factory=list)
    executions: list[ExecutionRecord] = field(default_factory=list)
    positions: set[tuple[str, int]] = field(default_factory=set)
    wallet: bool = False


class PrivateFeed:
    """Turn each command's events and its order projection into private rows."""

    def __init__(self, engine: Engine, projector: Projector) -> None:
        self.engine = engine
        self.projector = projector

    def collect(self, events: list[Event], interested: Container[int],
                projection: Projection) -> dict[int, AccountRows]:
        """Return what changed for the `interested` accounts (nothing is built for others)."""
        out: dict[int, AccountRows] = {}

        def rows(account_id: int) -> AccountRows | None:
            if account_id not in interested:
                return None
            found = out.get(account_id)
            if found is None:
                found = out[account_id] = AccountRows()
            return found

        for record in projection.triggered:
            target = rows(record.account_id)
            if target is not None:
                target.orders.append(record)
        for record in projection.orders.values():
            target = rows(record.account_id)
            if target is not None:
                target.orders.append(record)
                target.wallet = True
        for execution in projection.executions:
            target = rows(execution.account_id)
            if target is not None:
                target.executions.append(execution)
                if execution.exec_type == "Trade":
                    target.wallet = True
        for event in events:
            if isinstance(event, (PositionChanged, MarginAdjusted, TradingStopSet)):
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
            elif isinstance(event, (BalanceChanged, MarginModeSet)):
                target = rows(event.account_id)
                if target is not None:
                    target.wallet = True
        return out

    def order_row(self, record: OrderRecord) -> dict[str, Any]:
        """Return an order's wire object (spec §5.5), as REST shows it."""
        return wire.order(record, self.engine.instruments[record.symbol])

    def execution_row(self, record: ExecutionRecord) -> dict[str, Any]:
        """Return an execution's wire object (spec §5.11 + §8.9), as REST shows it."""
        return wire.execution(record, self.engine.instruments[record.symbol])

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
            **wire.trading_stop_fields(spec, self.projector.trading_stop(account_id, symbol,
                                                                         idx)),
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
