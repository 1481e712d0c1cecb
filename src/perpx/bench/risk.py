"""`perpx bench risk`: a million open positions, then a mark move; how long the risk sweep takes.

The population is built through the engine itself (deposits, margin modes, leverage, and
orders that trade into positions): `accounts` accounts, each holding one position in each of
`symbols` BTCUSDT-like contracts, longs and shorts paired so open interest balances, entries
over ±0.5% of 50,000. Half the pairs are isolated, with leverage spread over 2x-100x; the
other half are cross accounts whose wallets give them 5x-74x effective leverage over their
whole book, so the index files them by margin budget across all their symbols. A market
maker rests bids and asks from 0.1% to 20% away from the mark for the liquidation engine to
trade into, and the insurance fund starts with 10M USDT.

Multi-coin accounts (issue #17): every `pooled_every`-th cross pair holds BTC instead of USDT
(the same USD value at 50,000, over its 0.95 collateral ratio), BTC being priced by SYM0USDT
(all the contracts are BTCUSDT copies). Their USDT fees and losses are liabilities backed by
BTC, so their margin is one USD pool (next-mechanics §4.3) that a move of SYM0USDT revalues
twice (collateral and positions); the risk index files them to be checked on every move of
their symbols (`RiskIndex._file_pool`). `pooled_every` 0 leaves them out (the population
before multi-coin accounts). Portfolio-margin accounts: every `pm_every`-th of the other cross
pairs trades in PORTFOLIO_MARGIN with 1,000 USDT or 21% of its book, whichever is more
(§5.1's entry floor); the index files them by a USD budget over their symbols as well.
`pooled_accounts` counts the multi-coin pools alone, `pm_accounts` the PM ones, and
`pm_closed_on_symbol` the PM positions the 10% move closed.

Measured, on one symbol:
- `find_ms`: the risk index's lookup of the candidates a 0.1% move may breach;
  `detect_ms`: the engine's whole `apply` of that move (index refresh, candidates, exact
  checks, and the few liquidations it causes), beside a brute-force scan of every position;
- `process_ms` and `us_per_liquidation`: a 10% move, which liquidates every long of that
  symbol above about 9x: takeover, the insurance fund's close in the book, events.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.account.collateral import CollateralTable, default_collateral
from perpx.core.commands import Command, Deposit, MarkPrice, SetLeverage, SetMarginMode
from perpx.core.enums import MarginMode
from perpx.core.events import Liquidated
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE
from perpx.core.risk.takeover import cross_is_liquidatable, is_liquidatable
from perpx.instruments import load_instruments

MID = 500_000  # 50,000.0 in ticks of 0.1
MAKER = 10**9


class Stamper:
    """Plays the sequencer: stamps rising seq and time and applies."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seq = 0

    def __call__(self, kind: type[Command], *fields: Any) -> list[Any]:
        """Build the next command of `kind` with its seq and time, and apply it."""
        self.seq += 1
        return self.engine.apply(kind(self.seq, self.seq, *fields))


def contracts(count: int) -> list[InstrumentSpec]:
    """Return `count` copies of BTCUSDT named SYM0USDT, SYM1USDT, ..."""
    btc = next(s for s in load_instruments() if s.symbol == "BTCUSDT")
    return [dataclasses.replace(btc, symbol=f"SYM{k}USDT") for k in range(count)]


def is_cross(pair: int) -> bool:
    """Whether the pair of accounts (pair, pair + 1) trades in cross margin: every other pair."""
    return pair % 4 == 1


def is_pooled(pair: int, pooled_every: int) -> bool:
    """Whether a cross pair holds BTC collateral: every `pooled_every`-th cross pair."""
    return pooled_every > 0 and is_cross(pair) and (pair // 4) % pooled_every == 0


def is_portfolio(pair: int, pm_every: int) -> bool:
    """Whether a cross pair trades in portfolio margin: every `pm_every`-th cross pair not pooled.

    Counted on the cross pairs offset by one from the pooled ones, so the two never coincide
    when both are every 2nd.
    """
    return pm_every > 0 and is_cross(pair) and (pair // 4 + 1) % pm_every == 0


def collateral(specs: list[InstrumentSpec]) -> CollateralTable:
    """Return the default collateral table with BTC priced by the first contract's index."""
    table = default_collateral()
    table.coins["BTC"].price_symbol = specs[0].symbol
    return table


def build(accounts: int, symbols: int, echo: Callable[[str], None],
          pooled_every: int = 0, pm_every: int = 0) -> tuple[Engine, Stamper]:
    """Build the population through the engine; return it with its stamper."""
    specs = contracts(symbols)
    engine = Engine(specs, collateral(specs))
    stamp = Stamper(engine)
    started = time.perf_counter()
    stamp(Deposit, MAKER, "USDT", 10**12 * 10**8)
    stamp(Deposit, INSURANCE_FUND_ID, "USDT", 10**7 * 10**8)  # the fund starts with 10M USDT
    for spec in specs:
        stamp(MarkPrice, spec.symbol, MID)
    for account in range(1, accounts + 1):
        pair = account if account % 2 else account - 1
        if is_cross(pair):
            # Wallet = the book's notional (50 USDT per lot per symbol) / effective leverage,
            # plus 1% of one position's value to carry the fees and order loss of opening.
            effective = 5 + (account * 7919) % 70
            per_symbol = 50 * (1 + pair % 5) * 10**8
            wallet = per_symbol * symbols // effective + per_symbol // 100
            if is_pooled(pair, pooled_every):
                # The same USD value in BTC at 50,000, grossed up by its 0.95 ratio.
                stamp(Deposit, account, "BTC", wallet * 100 // (50_000 * 95))
            elif is_portfolio(pair, pm_every) and not is_pooled(pair, pooled_every):
                # Portfolio margin needs 1,000 USD of equity to enter (next-mechanics §5.1),
                # and asks ~10.6% of an unhedged book: twice that, at least 1,000.
                notional = per_symbol * symbols
                stamp(Deposit, account, "USDT", max(1_000 * 10**8, notional * 21 // 100))
                stamp(SetMarginMode, account, MarginMode.PORTFOLIO)
            else:
                stamp(Deposit, account, "USDT", wallet)  # accounts are cross by default
            leverage = 100 * RATE_ONE
        else:
            stamp(Deposit, account, "USDT", 10_000 * 10**8)
            stamp(SetMarginMode, account, MarginMode.ISOLATED)
            leverage = (2 + (account * 7919) % 99) * RATE_ONE
        for spec in specs:
            stamp(SetLeverage, account, spec.symbol, leverage, leverage)
    for pair in range(1, accounts, 2):
        for k, spec in enumerate(specs):
            long_first = (pair // 2 + k) % 2 == 0
            buyer, seller = (pair, pair + 1) if long_first else (pair + 1, pair)
            price = MID + ((pair * 31 + k * 17) % 100 - 50) * 50
            qty = 1 + pair % 5
            stamp(PlaceOrder, seller, spec.symbol, Side.SELL, OrderType.LIMIT, qty, price)
            stamp(PlaceOrder, buyer, spec.symbol, Side.BUY, OrderType.LIMIT, qty, price)
    # The maker quotes once the pairs have traded with each other (their entries span
    # ±0.5%, so quotes placed earlier would be taken instead).
    for spec in specs:
        # Bids and asks from 0.1% to 19.9% away for the fund's closes: 250 a side, within
        # Bybit's 500 active orders per symbol. The fund may close only inside the price band
        # (1% around the mark here), so a book quoted only outside it sends every takeover
        # it cannot absorb to ADL.
        for level in range(250):
            stamp(PlaceOrder, MAKER, spec.symbol, Side.BUY, OrderType.LIMIT, 5_000,
                  MID * 999 // 1000 - 396 * level)
            stamp(PlaceOrder, MAKER, spec.symbol, Side.SELL, OrderType.LIMIT, 5_000,
                  MID * 1001 // 1000 + 396 * level)
    positions = sum(1 for a in engine.clearing.accounts.values()
                    for p in a.positions.values() if p.size_lots)
    echo(f"built {positions:,} positions over {accounts:,} accounts in "
         f"{time.perf_counter() - started:.1f} s ({stamp.seq:,} commands)")
    engine.risk.refresh(engine.clearing.dirty)  # file everything once, as a restart would
    return engine, stamp


def brute_force_breached(engine: Engine, symbol: str, mark: int) -> int:
    """Count breached positions of `symbol` by checking every account: the baseline.

    An isolated position is breached at its liquidation price; a cross account's positions
    on `symbol` when the account's MM rate reaches 100%.
    """
    count = 0
    coin = engine.instruments[symbol].settle_coin
    for account in engine.clearing.accounts.values():
        held = [p for idx in (0, 1, 2)
                if (p := account.positions.get((symbol, idx))) is not None and p.size_lots]
        if not held:
            continue
        if not account.model.holds_position_margin:  # cross and portfolio: the account
            if cross_is_liquidatable(engine.clearing, account, coin):
                count += len(held)
            continue
        count += sum(1 for p in held if is_liquidatable(engine.clearing, p, mark))
    return count


def bench_risk(accounts: int = 100_000, symbols: int = 10,
               echo: Callable[[str], None] = print, pooled_every: int = 2,
               pm_every: int = 2) -> dict[str, Any]:
    """Run the risk benchmark and return its summary (also echoed, JSON last)."""
    if accounts % 2:
        raise ValueError("accounts must be even: longs and shorts are paired")
    engine, stamp = build(accounts, symbols, echo, pooled_every, pm_every)
    clearing = engine.clearing
    portfolio = {i for i, a in clearing.accounts.items()
                 if i > 0 and a.margin_mode is MarginMode.PORTFOLIO}
    pooled = {i for i, a in clearing.accounts.items()
              if i > 0 and clearing.pooled(a)} - portfolio
    pooled_positions = sum(1 for i in pooled for p in clearing.accounts[i].positions.values()
                           if p.size_lots)
    symbol = "SYM0USDT"

    def pm_held() -> int:
        return sum(1 for i in portfolio for p in clearing.accounts[i].positions.values()
                   if p.size_lots and p.symbol == symbol)

    pm_before = pm_held()
    positions = sum(1 for a in engine.clearing.accounts.values()
                    for p in a.positions.values() if p.size_lots)
    gc.collect()
    small = MID * 999 // 1000
    started = time.perf_counter_ns()
    proposed = engine.risk.candidates(symbol, small)  # the index lookup alone
    find_ns = time.perf_counter_ns() - started
    started = time.perf_counter_ns()
    events = stamp(MarkPrice, symbol, small)
    detect_ns = time.perf_counter_ns() - started
    quiet = sum(isinstance(e, Liquidated) for e in events)
    started = time.perf_counter_ns()
    scanned = brute_force_breached(engine, symbol, small)
    scan_ns = time.perf_counter_ns() - started
    gc.collect()
    big = MID * 9 // 10
    started = time.perf_counter_ns()
    events = stamp(MarkPrice, symbol, big)
    process_ns = time.perf_counter_ns() - started
    liquidated = sum(isinstance(e, Liquidated) for e in events)
    cross_liquidated = sum(
        isinstance(e, Liquidated)
        and engine.clearing.accounts[e.account_id].margin_mode is MarginMode.CROSS
        for e in events)
    pooled_liquidated = sum(isinstance(e, Liquidated) and e.account_id in pooled
                            for e in events)
    # A PM account's positions are first closed in the book (no takeover): count them gone.
    pm_closed = pm_before - pm_held()
    left = brute_force_breached(engine, symbol, big)
    engine.check_invariants()
    summary = {
        "bench": "risk",
        "positions": positions,
        "accounts": accounts,
        "symbols": symbols,
        "find_ms": round(find_ns / 1e6, 3),
        "find_candidates": len(proposed),
        "detect_ms": round(detect_ns / 1e6, 3),
        "detect_liquidated": quiet,
        "brute_force_scan_ms": round(scan_ns / 1e6, 3),
        "brute_force_breached": scanned,
        "liquidated": liquidated,
        "cross_liquidated": cross_liquidated,
        "cross_accounts": sum(1 for a in engine.clearing.accounts.values()
                              if a.margin_mode is MarginMode.CROSS),
        "pooled_accounts": len(pooled),
        "pooled_positions": pooled_positions,
        "pooled_liquidated": pooled_liquidated,
        "pm_accounts": len(portfolio),
        "pm_positions": sum(1 for i in portfolio for p in clearing.accounts[i].positions.values()
                            if p.size_lots) + pm_closed,
        "pm_closed_on_symbol": pm_closed,
        "process_ms": round(process_ns / 1e6, 3),
        "us_per_liquidation": round(process_ns / 1e3 / liquidated, 2) if liquidated else None,
        "breached_left_after": left,
        "events": len(events),
    }
    echo(f"0.1% move on {symbol}: the index finds {len(proposed)} candidates in "
         f"{summary['find_ms']} ms; {summary['detect_ms']} ms in the engine "
         f"({quiet} liquidated); brute-force scan of every position: "
         f"{summary['brute_force_scan_ms']} ms")
    echo(f"10% move on {symbol}: {liquidated:,} positions liquidated in "
         f"{summary['process_ms']} ms, {summary['us_per_liquidation']} us each; "
         f"breached positions left: {left}")
    echo(json.dumps(summary))
    return summary
