"""#13 B2: one isolated bankruptcy price for `perpx calc`, the engine's takeover and the views.

Bybit's isolated bankruptcy price is where the loss equals the initial margin, moved by any
margin added or removed: long ``EP(1 - 1/L)``, short ``EP(1 + 1/L)`` (spec §1.3, public
vector V13: 60,000 at 50x long -> 58,800). The fee to close is reserved beside it and valued
at that price (58,800 x 0.055% = 32.34). Rounded in the exchange's favour, away from the mark:
a long's down, a short's up (DESIGN.md).
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from perpx import Exchange
from perpx.calculator import inputs, position
from perpx.cli import app
from perpx.convert import to_atoms, to_ticks
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.enums import MarginMode
from perpx.core.events import Liquidated, Trade
from support.builders import VECTORS, Driver, btcusdt, of_type

USDT = to_atoms
BTC = "BTCUSDT"


def v13() -> str:
    """Return V13's published bankruptcy price from the repository's copy of the vectors."""
    cases = json.loads((VECTORS / "public_vectors.json").read_text())["cases"]
    [case] = [c for c in cases if c["id"] == "V13"]
    assert case["inputs"] == "long EP 60,000, L 50"
    return case["expected"].replace(",", "")


def calc_position(*args: str) -> dict[str, str]:
    result = CliRunner().invoke(app, ["calc", "position", *args, "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, str] = json.loads(result.output)
    return figures


def test_v13_through_perpx_calc_position() -> None:
    """#13 B2: `perpx calc position` prints V13's 58,800, beside its fee to close at 58,800."""
    figures = calc_position("--entry", "60000", "--qty", "1", "--leverage", "50")
    assert figures["bankruptcy_price"] == f"{v13()}.00"  # was 58,767.60: EP - (IM + FTC)/q
    assert figures["initial_margin"] == "1200"
    assert figures["fee_to_close"] == "32.34"  # 1 x 58,800 x 0.055%: valued at that price
    short = calc_position("--side", "sell", "--entry", "60000", "--qty", "1", "--leverage", "50")
    assert short["bankruptcy_price"] == "61200.00"  # 60,000 x (1 + 1/50)
    assert short["fee_to_close"] == "33.66"  # 61,200 x 0.055%


def test_added_margin_moves_the_bankruptcy_price_by_extra_over_qty() -> None:
    """#13 B2: 600 added to a 2 BTC long moves its BP down by 300 (the calculator function)."""
    given = inputs(btcusdt(), "buy", "50", None)
    assert position(given, "60000", "2", extra_margin="600")["bankruptcy_price"] == "58500.00"
    assert position(given, "60000", "1")["bankruptcy_price"] == f"{v13()}.00"
    # Rounded away from the mark: 0.003 BTC long from 60,000.1 at 50x: 58,800.098 -> 58,800.0.
    assert position(given, "60000.1", "0.003")["bankruptcy_price"] == "58800.00"
    short = inputs(btcusdt(), "sell", "50", None)
    # 60,000.1 x 1.02 = 61,200.102 -> 61,200.2 (a short's rounds up).
    assert position(short, "60000.1", "0.003")["bankruptcy_price"] == "61200.20"


def test_v13_through_the_exchange_position_view() -> None:
    """#13 B2: `perpx.Exchange`'s position shows the same 58,800; added margin moves it."""
    ex = Exchange([BTC], check_invariants=True)
    assert ex.deposit(1, "5000").ok and ex.deposit(2, "100000").ok
    assert ex.set_margin_mode(1, "isolated").ok
    assert ex.set_leverage(1, BTC, "50").ok
    assert ex.mark_price(BTC, "60000").ok
    assert ex.place_order(2, BTC, "Sell", "Limit", qty="1", price="60000").ok
    assert ex.place_order(1, BTC, "Buy", "Limit", qty="1", price="60000").ok
    [long] = ex.positions(1)
    assert long.bust_price == f"{v13()}.00"
    assert ex.add_margin(1, BTC, "600").ok
    [long] = ex.positions(1)
    assert long.bust_price == "58200.00"  # 60,000 - (1,200 + 600) / 1
    assert ex.add_margin(1, BTC, "-600").ok
    [long] = ex.positions(1)
    assert long.bust_price == f"{v13()}.00"


def test_the_insurance_fund_takes_the_position_over_at_the_bankruptcy_price() -> None:
    """#13 B2: the takeover is at 58,800; the trader loses IM + fee to close, no more.

    The fund is paid the reserved fee to close valued at 58,800 (32.34) and, closing in the
    book at 58,900, gains 100 on the price less its own taker fee.
    """
    d = Driver(funded={1: "2000", 2: "1000000", 3: "1000000"})
    d.margin_mode(1, MarginMode.ISOLATED)
    d.leverage(1, "50")
    d.mark("60000")
    d.limit(2, "sell", "60000", "1")
    d.limit(1, "buy", "60000", "1")
    position = d.position(1)
    assert position.margin_atoms == USDT("1232.34")  # IM 1,200 + fee to close 32.34
    wallet = d.wallet(1)
    d.limit(3, "buy", "58900", "1")  # a bid for the fund's close
    events = d.mark("59000")  # LP: 60,000 x 0.98 / 0.995 = 59,095.5: reached
    [liquidated] = of_type(events, Liquidated)
    assert liquidated.bust_price_ticks == to_ticks(d.spec(), "58800")
    assert d.position(1).size_lots == 0
    assert wallet - d.wallet(1) == USDT("1232.34")  # the whole margin: loss 1,200 + fee
    [close] = [t for t in of_type(events, Trade) if t.taker_account_id == INSURANCE_FUND_ID]
    assert close.price_ticks == to_ticks(d.spec(), "58900")
    fund_fee = USDT("32.395")  # 58,900 x 0.055%
    assert d.wallet(INSURANCE_FUND_ID) == USDT("100") + USDT("32.34") - fund_fee
