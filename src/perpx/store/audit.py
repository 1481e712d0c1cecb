"""Audit a journal: replay it and check every wallet and every coin against the events.

Two independent checks of the replayed state:

- Each wallet balance is recomputed from the transaction log alone (the `BalanceChanged`
  events, summed per account and coin; each line's running `balance_atoms` must also follow
  from the previous one) and compared with the engine's wallet.
- Conservation per coin, from the log's deposits and withdrawals: user wallets + insurance
  fund + fee account + the cash open positions hold (− Σ signed entry value: a long has paid
  its entry value out of its wallet, a short received it; docs/decisions.md, "conservation
  is checked in the cash view") == deposits − withdrawals, and the engine's own count of net
  deposits agrees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from perpx.core.account.accounts import FEE_ACCOUNT_ID, INSURANCE_FUND_ID
from perpx.core.engine import Engine
from perpx.core.enums import BalanceReason
from perpx.core.events import BalanceChanged
from perpx.core.instruments import InstrumentSpec
from perpx.store.journal import Journal


@dataclass(slots=True)
class CoinAudit:
    """One coin's conservation line, all in atoms."""

    coin: str
    deposits: int = 0
    withdrawals: int = 0
    user_wallets: int = 0
    insurance_fund: int = 0
    fee_account: int = 0
    position_cash: int = 0
    engine_net_deposits: int = 0

    @property
    def difference(self) -> int:
        """Held − (deposits − withdrawals): zero when the coin is conserved."""
        held = self.user_wallets + self.insurance_fund + self.fee_account + self.position_cash
        return held - (self.deposits - self.withdrawals)

    @property
    def ok(self) -> bool:
        """True when conserved and the engine's net deposits agree with the log's."""
        return self.difference == 0 and (
            self.engine_net_deposits == self.deposits - self.withdrawals)


@dataclass(slots=True)
class AuditReport:
    """The outcome of `audit_journal`."""

    engine: Engine
    commands: int = 0
    seconds: float = 0.0
    wallets_checked: int = 0
    wallet_mismatches: list[str] = field(default_factory=list)
    log_breaks: list[str] = field(default_factory=list)
    coins: list[CoinAudit] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing disagrees."""
        return not self.wallet_mismatches and not self.log_breaks and all(
            c.ok for c in self.coins)


def audit_journal(instruments: Iterable[InstrumentSpec], journal: Journal,
                  progress: Callable[[int], None] | None = None) -> AuditReport:
    """Replay the whole journal from an empty engine and audit the result."""
    started = time.perf_counter()
    engine = Engine(instruments)
    logged: dict[tuple[int, str], int] = {}
    deposits: dict[str, int] = {}
    withdrawals: dict[str, int] = {}
    report = AuditReport(engine)
    for command in journal.read(1):
        for event in engine.apply(command):
            if type(event) is not BalanceChanged:
                continue
            key = (event.account_id, event.coin)
            balance = logged.get(key, 0) + event.change_atoms
            if balance != event.balance_atoms and len(report.log_breaks) < 20:
                report.log_breaks.append(
                    f"seq {event.seq}: account {event.account_id} {event.coin} line says "
                    f"{event.balance_atoms}, the log sums to {balance}")
            logged[key] = balance
            if event.reason is BalanceReason.DEPOSIT:
                deposits[event.coin] = deposits.get(event.coin, 0) + event.change_atoms
            elif event.reason is BalanceReason.WITHDRAW:
                withdrawals[event.coin] = withdrawals.get(event.coin, 0) - event.change_atoms
        report.commands += 1
        if progress is not None:
            progress(report.commands)
    report.seconds = time.perf_counter() - started
    _check_wallets(engine, logged, report)
    _check_coins(engine, deposits, withdrawals, report)
    return report


def _check_wallets(engine: Engine, logged: dict[tuple[int, str], int],
                   report: AuditReport) -> None:
    held = {(account.account_id, coin): balance
            for account in engine.clearing.accounts.values()
            for coin, balance in account.balances.items()}
    for key in sorted(held.keys() | logged.keys()):
        report.wallets_checked += 1
        if held.get(key, 0) != logged.get(key, 0):
            report.wallet_mismatches.append(
                f"account {key[0]} {key[1]}: wallet {held.get(key, 0)}, "
                f"transaction log {logged.get(key, 0)}")


def _check_coins(engine: Engine, deposits: dict[str, int], withdrawals: dict[str, int],
                 report: AuditReport) -> None:
    lines: dict[str, CoinAudit] = {}

    def line(coin: str) -> CoinAudit:
        return lines.setdefault(coin, CoinAudit(coin))

    for coin, amount in deposits.items():
        line(coin).deposits = amount
    for coin, amount in withdrawals.items():
        line(coin).withdrawals = amount
    for coin, amount in engine.clearing.net_deposits.items():
        line(coin).engine_net_deposits = amount
    for account in engine.clearing.accounts.values():
        for coin, balance in account.balances.items():
            entry = line(coin)
            if account.account_id == INSURANCE_FUND_ID:
                entry.insurance_fund += balance
            elif account.account_id == FEE_ACCOUNT_ID:
                entry.fee_account += balance
            else:
                entry.user_wallets += balance
        for (symbol, _idx), position in account.positions.items():
            if position.size_lots:
                sign = 1 if position.size_lots > 0 else -1
                coin = engine.instruments[symbol].settle_coin
                line(coin).position_cash -= sign * position.entry_value_atoms
    report.coins = [lines[coin] for coin in sorted(lines)]
