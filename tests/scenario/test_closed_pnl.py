"""#13 B3: closed P&L as Bybit reports it, the same through the core, REST, Exchange and calc.

Per closing, ``closedPnl = price P&L - the closed part's share of the opening fee - the
closing fee - the funding the closed part paid`` (received adds); ``openFee`` is that share
of the opening fee and ``closeFee`` the closing fee (spec §12, bybit-v5-api closed-pnl).

The worked scenario: account 1 buys 1 BTC at 50,000 as a taker (opening fee 50,000 x 0.055%
= 27.5), pays one 8-hour funding of 0.01% at mark 50,000 (5), then sells 0.5 at 51,000 and
0.5 at 52,000, each as a taker:

| close        | P&L   | open fee | close fee | funding | closed P&L |
|--------------|-------|----------|-----------|---------|------------|
| 0.5 @ 51,000 | 500   | 13.75    | 14.025    | 2.5     | 469.725    |
| 0.5 @ 52,000 | 1,000 | 13.75    | 14.3      | 2.5     | 969.45     |
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from perpx import Exchange
from perpx.api import wire
from perpx.cli import app
from perpx.convert import format_atoms, to_atoms
from perpx.core import TimeInForce
from perpx.core.account.positions import take_share
from perpx.core.commands import Command
from perpx.core.enums import MarginMode
from perpx.core.events import Event, Executed, FundingPaid
from perpx.core.prices.funding import next_funding_after
from perpx.store.records import (
    ClosedPnlRecord,
    ExecutionRecord,
    LedgerRecord,
    OrderRecord,
    Projector,
)
from support.builders import Driver, btcusdt, of_type

USDT = to_atoms
BTC = "BTCUSDT"
EXPECTED = [  # (closedPnl, openFee, closeFee) of each closing, as the endpoint prints them
    {"closedPnl": "469.725", "openFee": "13.75", "closeFee": "14.025"},
    {"closedPnl": "969.45", "openFee": "13.75", "closeFee": "14.3"},
]


class Rows:
    """A record sink keeping the closed-P&L rows."""

    def __init__(self) -> None:
        self.closed: list[ClosedPnlRecord] = []

    def order_final(self, record: OrderRecord) -> None:
        pass

    def execution(self, record: ExecutionRecord) -> None:
        pass

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        self.closed.append(record)

    def ledger(self, record: LedgerRecord) -> None:
        pass


class Projected(Driver):
    """A Driver whose every command is also folded into the REST projector."""

    def __init__(self, margin_mode: MarginMode) -> None:
        self.rows = Rows()
        self.projector = Projector([btcusdt()], self.rows)
        start = next_funding_after(1_700_000_000_000, 480) - 3_600_000
        super().__init__(btcusdt(), start_ts_ms=start)
        self.margin_mode(1, margin_mode)

    def apply(self, command: Command) -> list[Event]:
        events = super().apply(command)
        self.projector.project(command, events)
        return events


def run(margin_mode: MarginMode) -> tuple[Projected, list[Executed]]:
    d = Projected(margin_mode)
    d.index("50000")  # starts the funding clock
    d.mark("50000")
    d.limit(2, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1", tif=TimeInForce.IOC)
    assert d.position(1).open_fee_atoms == USDT("27.5")
    d.ts_ms = next_funding_after(d.ts_ms, 480) - 1
    [paid] = [e for e in of_type(d.mark("50000"), FundingPaid) if e.account_id == 1]
    assert paid.amount_atoms == USDT("5")
    assert d.position(1).funding_atoms == USDT("5")
    closes: list[Executed] = []
    for price in ("51000", "52000"):
        d.mark(price)  # so that the price band lets the close trade there
        d.limit(3, "buy", price, "0.5")
        events = d.limit(1, "sell", price, "0.5", tif=TimeInForce.IOC)
        closes += [e for e in of_type(events, Executed) if e.account_id == 1]
    assert d.position(1).size_lots == 0
    assert (d.position(1).open_fee_atoms, d.position(1).funding_atoms) == (0, 0)
    return d, closes


def test_the_closed_pnl_row_deducts_the_opening_fee_share_and_the_funding() -> None:
    """#13 B3: the REST closed-pnl rows of the worked scenario, isolated and cross alike."""
    for mode in (MarginMode.CROSS, MarginMode.ISOLATED):
        d, _ = run(mode)
        rows = [wire.closed_pnl(record, d.spec()) for record in d.rows.closed]
        assert [{k: row[k] for k in EXPECTED[0]} for row in rows] == EXPECTED, mode
        assert [row["closedSize"] for row in rows] == ["0.500", "0.500"]


def test_the_core_events_carry_the_closed_parts_of_fee_and_funding() -> None:
    """#13 B3: each closing fill's Executed event carries the three deductions."""
    _, closes = run(MarginMode.CROSS)
    assert [(e.open_fee_atoms, e.close_fee_atoms, e.funding_atoms) for e in closes] == [
        (USDT("13.75"), USDT("14.025"), USDT("2.5")), (USDT("13.75"), USDT("14.3"), USDT("2.5"))]
    # closed_pnl_atoms stays the price P&L less the closing fee (the execution's execPnl).
    assert [e.closed_pnl_atoms for e in closes] == [USDT("485.975"), USDT("985.7")]


def test_perpx_exchange_reports_the_same_closed_pnl() -> None:
    """#13 B3: through `perpx.Exchange` the fills carry the same figures, and the position's
    realized P&L over its life is the sum of the two closed P&L rows."""
    ex = Exchange([BTC], start_ms=next_funding_after(1_700_000_000_000, 480) - 3_600_000,
                  check_invariants=True)
    for account in (1, 2, 3):
        assert ex.deposit(account, "1000000").ok
    assert ex.index_price(BTC, "50000").ok and ex.mark_price(BTC, "50000").ok
    assert ex.place_order(2, BTC, "Sell", "Limit", qty="1", price="50000").ok
    assert ex.place_order(1, BTC, "Buy", "Market", qty="1").ok
    ex.at(next_funding_after(ex.now_ms, 480))
    assert ex.mark_price(BTC, "50000").ok  # funding settles first
    nets = []
    for price in ("51000", "52000"):
        assert ex.mark_price(BTC, price).ok
        assert ex.place_order(3, BTC, "Buy", "Limit", qty="0.5", price=price).ok
        result = ex.place_order(1, BTC, "Sell", "Market", qty="0.5")
        [fill] = [e for e in result.events if isinstance(e, Executed) and e.account_id == 1]
        nets.append(format_atoms(fill.closed_pnl_atoms - fill.open_fee_atoms
                                 - fill.funding_atoms))
        if price == "51000":
            [held] = ex.positions(1)
    assert nets == [row["closedPnl"] for row in EXPECTED]
    # After the first close the position's realized P&L is the row less what the remaining
    # half has not closed yet: -27.5 - 5 + 500 - 14.025.
    assert held.cur_realised_pnl == "453.475"


def test_perpx_calc_pnl_takes_the_funding() -> None:
    """#13 B3: `perpx calc pnl --funding` gives each row's closedPnl, openFee and closeFee."""
    for exit_price, expected in zip(("51000", "52000"), EXPECTED, strict=True):
        result = CliRunner().invoke(app, ["calc", "pnl", "--entry", "50000", "--exit",
                                          exit_price, "--qty", "0.5", "--funding", "2.5",
                                          "--json"])
        assert result.exit_code == 0, result.output
        figures = json.loads(result.output)
        assert (figures["closed_pnl"], figures["fee_to_open"], figures["fee_to_close"]) == (
            expected["closedPnl"], expected["openFee"], expected["closeFee"])
    received = CliRunner().invoke(app, ["calc", "pnl", "--entry", "50000", "--exit", "51000",
                                        "--qty", "0.5", "--funding", "-2.5", "--json"])
    assert json.loads(received.output)["closed_pnl"] == "474.725"  # received funding adds


def test_shares_round_toward_zero_and_the_last_close_takes_the_remainder() -> None:
    """#13 B3: pro rata shares in whole atoms; the pieces always sum to the whole."""
    assert take_share(10, 1, 3) == 3 and take_share(-10, 1, 3) == -3
    assert take_share(10, 3, 3) == 10 and take_share(-7, 5, 5) == -7
    left, pieces = 1_000_001, []
    for part, held in ((333, 1000), (333, 667), (334, 334)):
        piece = take_share(left, part, held)
        pieces.append(piece)
        left -= piece
    assert left == 0 and sum(pieces) == 1_000_001 and pieces[:2] == [333_000, 333_000]


def test_snapshots_and_the_state_hash_carry_the_unattributed_fee_and_funding() -> None:
    """#13 B3: the opening fee and funding not yet attributed survive a snapshot, and the
    state hash tells two states apart that differ only there."""
    from perpx.core.engine import Engine

    d = Projected(MarginMode.CROSS)
    d.index("50000")
    d.mark("50000")
    d.limit(2, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1", tif=TimeInForce.IOC)
    d.ts_ms = next_funding_after(d.ts_ms, 480) - 1
    d.mark("50000")
    restored = Engine.from_snapshot([btcusdt()], d.engine.to_snapshot())
    position = restored.clearing.accounts[1].positions["BTCUSDT", 0]
    assert (position.open_fee_atoms, position.funding_atoms) == (USDT("27.5"), USDT("5"))
    assert restored.state_hash() == d.engine.state_hash()
    position.funding_atoms += 1
    assert restored.state_hash() != d.engine.state_hash()
