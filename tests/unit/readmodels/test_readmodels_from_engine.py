"""The market read models fed with every event of a real engine session agree with the engine."""

from __future__ import annotations

from perpx.convert import to_ticks
from perpx.core.commands import IndexPrice, SetFundingInterval, Tick
from perpx.core.events import Event, FundingPaid, FundingSettled, MarkPriceUpdated, Trade
from perpx.readmodels import FundingHistory, Klines, PriceSource, Tickers
from support.builders import Driver, of_type

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC


class Session:
    """A driver whose every event after the deposits is kept, in order."""

    def __init__(self) -> None:
        self.driver = Driver(start_ts_ms=T0 + 10 * MIN)
        self.events: list[Event] = []

    def at(self, ts_ms: int) -> None:
        self.driver.ts_ms = ts_ms - 1  # the next command is stamped at `ts_ms`

    def keep(self, events: list[Event]) -> None:
        self.events += events

    def index(self, price: str) -> None:
        seq, ts = self.driver.stamp()
        self.keep(self.driver.apply(IndexPrice(seq, ts, "BTCUSDT",
                                               to_ticks(self.driver.spec(), price))))

    def tick(self) -> None:
        seq, ts = self.driver.stamp()
        self.keep(self.driver.apply(Tick(seq, ts)))


def run_session() -> Session:
    s = Session()
    d = s.driver
    seq, ts = d.stamp()
    s.keep(d.apply(SetFundingInterval(seq, ts, "BTCUSDT", 60)))
    s.index("50000")
    s.keep(d.limit(2, "sell", "50010", "0.050"))
    s.keep(d.limit(3, "buy", "49990", "0.050"))
    for minute in range(11, 75):  # an hour and more: ticks, trades, a funding settlement
        s.at(T0 + minute * MIN)
        s.tick()
        if minute % 7 == 0:
            s.keep(d.market(1, "buy", "0.003"))
        if minute % 11 == 0:
            s.keep(d.market(4, "sell", "0.002"))
        if minute % 13 == 0:
            s.keep(d.limit(5, "sell", "50010", "0.004"))
            s.keep(d.limit(6, "buy", "50010", "0.001"))
        if minute == 40:
            s.index("50020")
    s.keep(d.market(1, "sell", "0.005", reduce_only=True))
    return s


def test_models_fed_by_engine_events_match_the_engine() -> None:
    # Arrange
    session = run_session()
    engine = session.driver.engine
    spec = session.driver.spec()
    klines, tickers, funding = Klines([spec]), Tickers([spec]), FundingHistory([spec])
    # Act
    for event in session.events:
        klines.apply(event)
        tickers.apply(event)
        funding.apply(event)
    # Assert
    trades = of_type(session.events, Trade)
    assert len(trades) > 10
    ticker = tickers.ticker("BTCUSDT")
    assert ticker.volume_24h_lots == sum(t.qty_lots for t in trades)
    assert ticker.turnover_24h_atoms == sum(spec.notional_atoms(t.price_ticks, t.qty_lots)
                                            for t in trades)
    longs = sum(p.size_lots for a in engine.clearing.accounts.values()
                for p in a.positions.values() if p.symbol == "BTCUSDT" and p.size_lots > 0)
    assert longs > 0
    assert ticker.open_interest_lots == longs
    assert tickers.open_interest.short_interest_lots("BTCUSDT") == longs
    assert ticker.last_price_ticks == engine.last_price["BTCUSDT"]
    assert ticker.mark_price_ticks == engine.mark_price["BTCUSDT"]
    assert ticker.index_price_ticks == engine.index_price["BTCUSDT"]
    assert ticker.next_funding_ms == T0 + 2 * HOUR
    assert ticker.open_interest_value_atoms == spec.notional_atoms(ticker.mark_price_ticks, longs)
    minutes = klines.candles("BTCUSDT", "1", limit=1000)
    assert sum(c.volume_lots for c in minutes) == ticker.volume_24h_lots
    [day] = klines.candles("BTCUSDT", "D")
    assert (day.volume_lots, day.turnover_atoms) == (ticker.volume_24h_lots,
                                                     ticker.turnover_24h_atoms)
    assert (day.high, day.low) == (ticker.high_price_24h_ticks, ticker.low_price_24h_ticks)
    marks = of_type(session.events, MarkPriceUpdated)
    latest_mark = klines.candles("BTCUSDT", "1", source=PriceSource.MARK, limit=1)[0]
    assert latest_mark.close == marks[-1].price_ticks == engine.mark_price["BTCUSDT"]
    [settled] = of_type(session.events, FundingSettled)
    [rate] = funding.rates("BTCUSDT")
    assert (rate.funding_rate, rate.funding_rate_timestamp_ms) == (settled.rate, T0 + HOUR)
    paid = of_type(session.events, FundingPaid)
    assert paid
    for payment in paid:
        [execution] = funding.executions(payment.account_id)
        assert execution.exec_fee_atoms == payment.amount_atoms
        assert execution.exec_price_ticks == settled.mark_price_ticks


def test_apply_all_folds_a_command_s_events_as_apply_on_each() -> None:
    # Arrange: the same session folded event by event, and in groups (a command's events)
    session = run_session()
    spec = session.driver.spec()
    one = (Klines([spec]), Tickers([spec]), FundingHistory([spec]))
    grouped = (Klines([spec]), Tickers([spec]), FundingHistory([spec]))
    # Act
    for event in session.events:
        for model in one:
            model.apply(event)
    for start in range(0, len(session.events), 3):
        for model in grouped:
            model.apply_all(session.events[start:start + 3])
    # Assert: identical states, clocks and open interest included
    assert one[0].to_state() == grouped[0].to_state()
    assert one[1].to_state() == grouped[1].to_state()
    assert one[1].open_interest.to_state() == grouped[1].open_interest.to_state()
    assert one[2].to_state() == grouped[2].to_state()
    assert grouped[2].rates("BTCUSDT")  # the session settles funding: both kinds were seen
