"""The insurance fund's balance per coin over time: one history row per change of the fund.

The fund is system account `INSURANCE_FUND_ID` (−2); every change of its wallet is a
`BalanceChanged` event carrying the balance after it, which the account projector skips (it
records user accounts only). This model turns each of them into an `InsuranceRecord` for the
history's ``insurance`` table, which ``GET /perpx/insurance/history`` reads and the web
page's operator view charts.

One row per change rather than one sample per minute: the fund moves on liquidations (its
fee, a bankrupt position's loss, the takeover's fills), funding remainders and deliveries,
never on an ordinary trade, so the writer pays for a row only when the fund moves, and a row
holds the exact balance, which a sample would round in time. The model keeps no state
between commands (each row is keyed by its command's seq and its place in that command), so
the read-side checkpoint holds nothing of it: the rows up to the checkpoint's seq are in the
tables (the history's watermark), and a restart replays only the journal's tail, writing
the rows past the watermark, as for every other history table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.events import BalanceChanged, Event
from perpx.rows import InsuranceRecord


class InsuranceSink(Protocol):
    """Where the fund's changes go (the history's ``insurance`` table)."""

    def insurance(self, record: InsuranceRecord) -> None:
        """Take one change of the insurance fund."""


def fund_changes(events: Iterable[Event]) -> list[InsuranceRecord]:
    """Return the insurance fund's balance changes among one command's events, in order.

    `n` numbers them within the command (events of one command share its seq), so the
    table's key (seq, n) is the same however often the command is folded.
    """
    rows: list[InsuranceRecord] = []
    for event in events:
        if type(event) is BalanceChanged and event.account_id == INSURANCE_FUND_ID:
            rows.append(InsuranceRecord(event.coin, event.ts_ms, event.seq, len(rows),
                                        event.change_atoms, event.balance_atoms,
                                        event.reason.name, event.symbol))
    return rows


def fold(events: Iterable[Event], sink: InsuranceSink | None) -> None:
    """Hand one command's fund changes to `sink` (None: fold only, rows already stored)."""
    if sink is None:
        return
    for record in fund_changes(events):
        sink.insurance(record)
