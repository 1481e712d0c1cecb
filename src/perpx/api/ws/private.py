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
balance) are read from the engine this feed is given: the service's durable follower
(`perpx.durable`), which has applied exactly the command being published when its rows are
built, never a command that is not yet durable.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from perpx.adl import AdlIndicators
from perpx.api import wire
from perpx.bybit.params import category_of
from perpx.core.engine import Engine
from perpx.core.events import (
    BalanceChanged,
    CollateralSwitched,
    Event,
    LeverageSet,
    MarginAdjusted,
    MarginModeSet,
    PositionChanged,
    TradingStopSet,
)
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

    def __init__(self, engine: Engine, projector: Projector,
                 adl: AdlIndicators | None = None) -> None:
        self.engine = engine
        self.projector = projector
        self.adl = adl if adl is not None else AdlIndicators(engine)

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
            elif isinstance(event, (BalanceChanged, MarginModeSet, CollateralSwitched)):
                # Money moved (a conversion, interest too), or a coin's collateralSwitch.
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

    def position_row(self, account_id: int, symbol: str, idx: int) -> dict[str, Any]:
        """Return the position as the WS shows it: REST's row, with `entryPrice` (§8.9)."""
        engine = self.engine
        spec = engine.instruments[symbol]
        row = wire.position(engine, engine.clearing.account(account_id), spec, idx,
                            self.projector.trading_stop(account_id, symbol, idx),
                            self.adl.rank(symbol, account_id, idx))
        row["entryPrice"] = row.pop("avgPrice")
        row["category"] = category_of(spec)
        row["seq"] = engine.last_seq
        return row

    def wallet_row(self, account_id: int) -> dict[str, Any] | None:
        """Return the wallet account object of spec §7.1 (UNIFIED), or None without a wallet."""
        account = self.engine.clearing.account(account_id)
        if account is None:
            return None
        return wire.wallet(self.engine, account)
