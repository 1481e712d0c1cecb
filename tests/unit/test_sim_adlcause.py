"""Each ADL step's cause, derived from a takeover's events (issue #19, `perpx.sim.adlcause`)."""

from __future__ import annotations

from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Tick
from perpx.core.enums import BalanceReason, OrderType, Side, SmpType, TimeInForce
from perpx.core.events import BalanceChanged, Deleveraged, Event, Liquidated, OrderAccepted
from perpx.sim.adlcause import AdlCauses
from support.builders import btcusdt

SPEC = btcusdt()
BUST, MARK, QTY = 220_000, 220_500, 500  # a long of 0.5 BTC, bankrupt at 22,000.0


def _fund(balance: int) -> BalanceChanged:
    return BalanceChanged(1, 0, INSURANCE_FUND_ID, "USDT", balance, balance,
                          BalanceReason.DEPOSIT)


def _takeover(close_at: int | None) -> list[Event]:
    events: list[Event] = [Liquidated(2, 0, 101, "BTCUSDT", 0, Side.BUY, QTY, BUST, MARK)]
    if close_at is not None:
        events.append(OrderAccepted(2, 0, 9, INSURANCE_FUND_ID, "BTCUSDT", Side.SELL,
                                    OrderType.LIMIT, close_at, QTY, TimeInForce.IOC, True,
                                    False, 0, "", SmpType.NONE))
    events.append(Deleveraged(2, 0, 102, "BTCUSDT", 0, QTY, BUST, MARK))
    return events


def _cause(balance: int, close_at: int | None, triggered: bool = False) -> dict[str, int]:
    causes = AdlCauses(SPEC, pool_triggered=lambda symbol: triggered)
    causes(Tick(1, 0), [_fund(balance)])
    causes(Tick(2, 0), _takeover(close_at))
    return {k: v for k, v in causes.counts.items() if v}


def test_adl_after_a_close_bounded_by_the_funds_balance_is_the_funds() -> None:
    balance = 50 * 10**8  # 50 USDT, less the fee reserve: the close stops just below bust
    limit = AdlCauses(SPEC)
    limit._fund = balance
    at = limit._spare_limit(Liquidated(2, 0, 101, "BTCUSDT", 0, Side.BUY, QTY, BUST, MARK))
    assert 0 < at < BUST
    assert _cause(balance, at) == {"fund": 1}
    assert _cause(0, BUST) == {"fund": 1}  # nothing to spend: a close at bankruptcy only


def test_adl_without_a_close_the_fund_could_pay_is_the_pools_drawdown_trigger() -> None:
    assert _cause(10**6 * 10**8, None) == {"pool": 1}


def test_adl_after_a_close_cut_short_of_the_balance_is_the_book_or_the_pool() -> None:
    rich = 10**6 * 10**8
    assert _cause(rich, BUST - 2_000) == {"book": 1}  # the band, and no depth within it
    assert _cause(rich, BUST - 2_000, triggered=True) == {"pool": 1}  # the pool's headroom


def test_a_takeover_closed_in_the_book_has_no_adl_cause() -> None:
    causes = AdlCauses(SPEC)
    causes(Tick(2, 0), _takeover(BUST - 100)[:-1])
    assert sum(causes.counts.values()) == 0 and not causes.steps
