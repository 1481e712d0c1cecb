"""The USDC worked examples (next-mechanics §3.4) as a user meets them: `perpx calc` and
`perpx.Exchange` on the bundled BTCPERP (tick 0.5 USDC, 0.001 BTC, settled in USDC).

U1-U4 are trading figures, shown here with the bundled fees (taker 0.055%, maker 0.02%)
taken out of the wallet changes; U6 is the calculator's position IM with its fee to close.
A scenario runs one position through several sessions, with funding, and checks that the
wallet moves by the session P&L each time, `avgPrice` keeps the true entry and
`sessionAvgPrice` follows the marks; another settles a loss of an isolated position.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from perpx import Exchange
from perpx.cli import app
from perpx.convert import to_atoms
from perpx.core.enums import BalanceReason
from perpx.core.events import BalanceChanged, SessionSettled

runner = CliRunner()
EPOCH = 1_677_628_800_000  # 2023-03-01 00:00 UTC, perpx.Exchange's first moment
SESSION_MS = 8 * 3_600_000


def calc(*args: str) -> dict[str, str]:
    """Run `perpx calc ... --symbol BTCPERP --json` and return its figures."""
    result = runner.invoke(app, ["calc", *args, "--symbol", "BTCPERP", "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, str] = json.loads(result.output.strip().splitlines()[-1])
    return figures


def test_u6_position_im_with_the_fee_to_close_through_calc() -> None:
    """U6: 0.5 BTC @ 50,000, 10x, mark 50,500, 0.055%: IM 2,525 + 12.375 = 2,537.375."""
    figures = calc("position", "--entry", "50000", "--qty", "0.5", "--mark", "50500",
                   "--leverage", "10")
    assert figures["fee_to_close"] == "12.375"
    assert figures["position_im"] == "2537.375"


def test_u6_position_im_through_the_exchange() -> None:
    """U6 on a traded position (default fees, cross): positionIM at the mark 2,537.375."""
    ex = Exchange(["BTCPERP"], check_invariants=True)
    for account in (1, 2):
        ex.deposit(account, "100000", "USDC")
    trade(ex, 1, 2, "50000", "0.5")
    ex.mark_price("BTCPERP", "50500")
    [long] = ex.positions(1, "BTCPERP")
    assert (long.position_im, long.unrealised_pnl) == ("2537.375", "250")


def test_u2_closed_pnl_through_calc() -> None:
    """U2's close of 0.1 at 50,700 against the session average 50,250: 45 before fees."""
    figures = calc("pnl", "--entry", "50250", "--exit", "50700", "--qty", "0.1",
                   "--leverage", "10")
    assert figures["pnl"] == "45"


def test_the_instrument_figures_name_usdc() -> None:
    figures = calc("instrument", "--price", "50000")
    assert figures["contract_type"] == "LinearPerpetual"
    assert figures["settle_coin"] == "USDC"


def trade(ex: Exchange, buyer: int, seller: int, price: str, qty: str) -> None:
    """`seller` rests a sell at `price` and `buyer` takes it (the index follows the price)."""
    ex.index_price("BTCPERP", price)
    assert ex.place_order(seller, "BTCPERP", "Sell", "Limit", qty=qty, price=price).ret_code == 0
    assert ex.place_order(buyer, "BTCPERP", "Buy", "Market", qty=qty).ret_code == 0


def exchange(margin: str = "cross") -> Exchange:
    ex = Exchange(["BTCUSDT", "BTCPERP"], check_invariants=True)
    for account in (1, 2):
        ex.deposit(account, "100000", "USDC")
        if margin == "isolated":
            ex.set_margin_mode(account, "ISOLATED_MARGIN")
    return ex


def test_u1_u2_u3_through_the_exchange() -> None:
    ex = exchange()
    trade(ex, 1, 2, "50000", "0.1")
    trade(ex, 1, 2, "50500", "0.1")
    [long] = ex.positions(1, "BTCPERP")
    assert (long.avg_price, long.session_avg_price) == ("50250.0", "50250.0")  # U1
    ex.index_price("BTCPERP", "50700")
    ex.place_order(2, "BTCPERP", "Buy", "Limit", qty="0.1", price="50700")
    closing = ex.place_order(1, "BTCPERP", "Sell", "Market", qty="0.1")
    [line] = [e for e in closing.events if isinstance(e, BalanceChanged) and e.account_id == 1]
    assert line.cash_flow_atoms == to_atoms("45")  # U2: realised, before the taker fee
    assert line.fee_atoms == to_atoms("2.78850")  # 5,070 x 0.055%
    ex.mark_price("BTCPERP", "51000")
    [long] = ex.positions(1, "BTCPERP")
    assert long.unrealised_pnl == "75"  # U2
    ex.index_price("BTCPERP", "52000")
    ex.mark_price("BTCPERP", "52000")
    wallet = to_atoms(ex.wallet(1, "USDC").wallet_balance)
    ex.at(EPOCH + SESSION_MS)
    settled = ex.tick()
    [mine] = [e for e in settled.events if isinstance(e, SessionSettled) and e.account_id == 1]
    assert mine.realised_pnl_atoms == to_atoms("175")  # U3
    funding = sum(e.change_atoms for e in settled.events if isinstance(e, BalanceChanged)
                  and e.account_id == 1 and e.reason is BalanceReason.FUNDING)
    assert to_atoms(ex.wallet(1, "USDC").wallet_balance) == wallet + to_atoms("175") + funding
    [long] = ex.positions(1, "BTCPERP")
    assert (long.avg_price, long.session_avg_price) == ("50250.0", "52000.0")  # U3
    assert ex.wallet(1, "USDT").wallet_balance == "0"  # nothing in USDT


def test_u4_session_average_through_the_exchange() -> None:
    """U4: 0.5 @ 50,000 + 0.8 @ 51,000: 50,615.38 (the API shows 4 more decimals)."""
    ex = exchange()
    trade(ex, 1, 2, "50000", "0.5")
    trade(ex, 1, 2, "51000", "0.8")
    [long] = ex.positions(1, "BTCPERP")
    assert long.session_avg_price == "50615.38461"
    assert long.position_value == "65800"


def test_several_sessions_settle_each_move_once() -> None:
    """Long 0.2 from 50,000 through marks 50,800 / 49,900 / 51,300 at three funding times,
    with an add of 0.1 at 50,600 in the second session. Each settlement realises side × |q|
    × (MP − sessionAvgPrice): 0.2 × 800 = 160; (0.3 × 49,900) − (10,160 + 5,060) = −250;
    0.3 × 1,400 = 420. avgPrice keeps the true entry, (10,000 + 5,060) / 0.3 = 50,200; the
    short's settlements mirror the long's."""
    ex = exchange()
    trade(ex, 1, 2, "50000", "0.2")
    expected = {"50800": "160", "49900": "-250", "51300": "420"}
    for n, (mark, pnl) in enumerate(expected.items(), start=1):
        if n == 2:
            trade(ex, 1, 2, "50600", "0.1")
            [added] = ex.positions(1, "BTCPERP")
            assert added.session_avg_price == "50733.33333"  # 15,220 / 0.3, floored
        ex.index_price("BTCPERP", mark)
        ex.mark_price("BTCPERP", mark)
        ex.at(EPOCH + n * SESSION_MS)
        result = ex.tick()
        got = {e.account_id: e.realised_pnl_atoms for e in result.events
               if isinstance(e, SessionSettled)}
        assert got == {1: to_atoms(pnl), 2: -to_atoms(pnl)}
        [after] = ex.positions(1, "BTCPERP")
        assert after.session_avg_price == f"{mark}.0"
    [long] = ex.positions(1, "BTCPERP")
    assert long.avg_price == "50200.0"


def test_an_isolated_position_settles_its_loss_out_of_its_margin() -> None:
    ex = exchange("isolated")
    trade(ex, 1, 2, "50000", "0.1")
    [long] = ex.positions(1, "BTCPERP")
    available = to_atoms(ex.wallet(1, "USDC").available_balance)
    ex.index_price("BTCPERP", "49500")
    ex.mark_price("BTCPERP", "49500")
    ex.at(EPOCH + SESSION_MS)
    result = ex.tick()
    [mine] = [e for e in result.events if isinstance(e, SessionSettled) and e.account_id == 1]
    assert mine.realised_pnl_atoms == -to_atoms("50")
    funding = sum(e.change_atoms for e in result.events if isinstance(e, BalanceChanged)
                  and e.account_id == 1 and e.reason is BalanceReason.FUNDING)
    # The loss left the position's margin, not the free balance.
    assert to_atoms(ex.wallet(1, "USDC").available_balance) == available + funding
    [after] = ex.positions(1, "BTCPERP")
    assert after.liq_price == long.liq_price


def test_hedge_mode_is_refused_for_a_usdc_contract() -> None:
    ex = exchange()
    refused = ex.switch_position_mode(1, "BTCPERP", 3)
    assert (refused.ret_code, refused.ret_msg) == (
        110029, "Hedge mode is not supported for this symbol")
