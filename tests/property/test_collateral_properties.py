"""Random flows over several coins (issue #17 item 1-3, next-mechanics §4): pooled accounts.

One engine lists BTCUSDT and ETHUSDT (USDT), BTCUSD (inverse, settled in BTC) and BTCPERP
(USDC), with a collateral table drawn per example (a USDT rate of 1 or 0.9995, BTC flat at
0.95 or on B-CVR's illustrative tiers). Accounts hold USDT, USDC, BTC and ETH in cross
(pooled: one USD margin pool) and isolated mode; they trade, deposit, withdraw, switch
collateral off and on, repay liabilities by conversion, while the BTC and ETH prices walk
(now and then a 10% drop) and a command a minute crosses hh:05 every hour (interest).

After every command:
- each coin is conserved and open interest balances (`Engine.check_invariants`);
- `Clearing.account_risk` equals a recomputation written here from the balances,
  positions, prices and the collateral table (USD prices, tiers slice by slice, amounts
  floored and requirements ceiled per coin, as `collateral.py` documents);
- the cross order check's fast path (`CrossMargin.available_atoms`) equals the figures'
  available balance in every coin;
- after a price move, no cross account with open positions is left breached (MM rate at or
  over 100%) or below zero margin balance, and no account with open positions (isolated
  too) below zero total equity: liquidation and make-whole did their job.
"""

from __future__ import annotations

import random
from collections import Counter

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.account.accounts import Account
from perpx.core.account.collateral import (
    CollateralCoin,
    CollateralTable,
    CollateralTier,
    default_collateral,
)
from perpx.core.account.margin import order_margin_atoms
from perpx.core.account.margin_model import CROSS, position_risk
from perpx.core.account.risk_value import AccountRisk
from perpx.core.calc import average_entry_display
from perpx.core.commands import (
    CancelOrder,
    Deposit,
    IndexPrice,
    MarkPrice,
    RepayLiability,
    SetCollateralSwitch,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    Tick,
    Withdraw,
)
from perpx.core.enums import MarginMode
from perpx.core.events import (
    CommandRejected,
    Converted,
    InterestCharged,
    Liquidated,
    OrderRejected,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE
from support.builders import btcperp, btcusd, btcusdt, ethusdt

SPECS = [btcusdt(), ethusdt(), btcusd(), btcperp()]
BY_SYMBOL = {spec.symbol: spec for spec in SPECS}
# Start prices in ticks: BTC 65,000 (0.10 ticks; BTCPERP 0.5), ETH 3,000 (0.01).
START = {"BTCUSDT": 650_000, "ETHUSDT": 300_000, "BTCUSD": 650_000, "BTCPERP": 130_000}
BASE = {"BTCUSDT": "BTC", "ETHUSDT": "ETH", "BTCUSD": "BTC", "BTCPERP": "BTC"}
LOT = {"BTCUSDT": 1, "ETHUSDT": 1, "BTCUSD": 65, "BTCPERP": 1}  # about 65 / 30 / 65 USD
UNIT = {"USDT": 10**8, "USDC": 10**8, "BTC": 1_540, "ETH": 33_333}  # about one USD
# Opening wallets: 1 and 2 make markets; 3 holds only BTC; 4 USDT, ETH, USDC; 5 is
# isolated; 6 holds only USDT; 7 USDC and BTC.
WALLETS = {
    1: {"USDT": 300_000, "USDC": 100_000, "BTC": 100_000},
    2: {"USDT": 300_000, "USDC": 100_000, "BTC": 100_000, "ETH": 50_000},
    3: {"BTC": 6_000},
    4: {"USDT": 2_000, "ETH": 3_000, "USDC": 1_500},
    5: {"USDT": 4_000, "BTC": 2_000, "USDC": 2_000},
    6: {"USDT": 5_000},
    7: {"USDC": 3_000, "BTC": 3_000},
}
ACCOUNTS = tuple(WALLETS)
TRADERS = (3, 4, 5, 6, 7)
MINUTE_MS = 60_000
T0 = 1_677_628_800_000  # 2023-03-01 00:00 UTC
ILLUSTRATIVE = (CollateralTier(0, 10 * 10**8, 98_000_000),
                CollateralTier(10 * 10**8, 20 * 10**8, 95_000_000),
                CollateralTier(20 * 10**8, 30 * 10**8, 90_000_000),
                CollateralTier(30 * 10**8, None, 0))


def table_for(usdt_rate_e8: int, tiered: bool) -> CollateralTable:
    """The default table with the USDT rate given and, if `tiered`, B-CVR's BTC tiers."""
    coins: list[CollateralCoin] = []
    for terms in default_collateral().coins.values():
        if tiered and terms.coin == "BTC":
            terms.tiers = ILLUSTRATIVE
        coins.append(terms)
    return CollateralTable(tuple(coins), usdt_rate_e8)


class Walk:
    """The BTC and ETH price levels (ticks of BTCUSDT and ETHUSDT), walking around the start."""

    def __init__(self) -> None:
        self.level = {"BTC": 650_000, "ETH": 300_000}

    def step(self, rng: random.Random, coin: str) -> None:
        level = self.level[coin]
        start = 650_000 if coin == "BTC" else 300_000
        wide = level // (10 if rng.random() < 0.15 else 40)
        pull = (start - level) // 8  # back toward the start, so a stream stays in range
        self.level[coin] = max(start // 3, level + pull + rng.randint(-wide, wide // 2))

    def ticks(self, symbol: str) -> int:
        """The symbol's price at the level, on its own tick."""
        level = self.level[BASE[symbol]]
        return level * START[symbol] // START["BTCUSDT" if BASE[symbol] == "BTC" else "ETHUSDT"]


def random_command(rng: random.Random, walk: Walk, engine: Engine) -> Command:
    """Draw one command (seq and time are stamped by the caller)."""
    account = rng.choice(TRADERS if rng.random() < 0.75 else ACCOUNTS)
    spec = rng.choice(SPECS)
    symbol = spec.symbol
    draw = rng.random()
    if draw < 0.08:  # a market maker quotes near the level
        maker = rng.choice((1, 2))
        mid = walk.ticks(symbol)
        side = Side.BUY if maker == 1 else Side.SELL
        price = mid - mid // 500 if side is Side.BUY else mid + mid // 500
        return PlaceOrder(0, 0, maker, symbol, side, OrderType.LIMIT, 300 * LOT[symbol], price)
    if draw < 0.42:
        kind = OrderType.MARKET if rng.random() < 0.3 else OrderType.LIMIT
        mid = walk.ticks(symbol)
        price = None if kind is OrderType.MARKET else mid + rng.randint(-mid // 150, mid // 150)
        return PlaceOrder(0, 0, account, symbol, rng.choice([Side.BUY, Side.SELL]), kind,
                          rng.randint(1, 500) * LOT[symbol], price,
                          reduce_only=rng.random() < 0.1)
    if draw < 0.50 and engine.open_orders:
        order = engine.open_orders[rng.choice(sorted(engine.open_orders))]
        return CancelOrder(0, 0, order.account_id, order.symbol, order.order_id)
    if draw < 0.66:
        coin = BASE[symbol]
        walk.step(rng, coin)
        return IndexPrice(0, 0, symbol, walk.ticks(symbol))
    if draw < 0.70:
        return MarkPrice(0, 0, symbol, walk.ticks(symbol))
    if draw < 0.74:
        return Tick(0, 0)
    coin = rng.choice(["USDT", "USDC", "BTC", "ETH"])
    if draw < 0.80:
        return Deposit(0, 0, account, coin, rng.randint(1, 3_000) * UNIT[coin])
    if draw < 0.83:
        return Withdraw(0, 0, account, coin, rng.randint(1, 3_000) * UNIT[coin])
    if draw < 0.89:
        owed = rng.choice(["", "USDT", "USDC", "BTC"])
        amount = 0 if rng.random() < 0.7 else rng.randint(1, 500) * UNIT[owed or "USDT"]
        return RepayLiability(0, 0, account, owed, amount, rng.random() < 0.85)
    if draw < 0.92:
        return SetCollateralSwitch(0, 0, account, [(rng.choice(["BTC", "ETH"]),
                                                    rng.random() < 0.6)])
    if draw < 0.97:
        leverage = rng.choice([5, 10, 25, 50]) * RATE_ONE
        return SetLeverage(0, 0, account, symbol, leverage, leverage)
    return SetMarginMode(0, 0, account, rng.choice([MarginMode.ISOLATED, MarginMode.CROSS]))


# -- the recomputation ------------------------------------------------------------------------


def usd_px(engine: Engine, coin: str) -> int:
    """A coin's USD price (next-mechanics §4.1), as `collateral.py` documents it."""
    table = engine.clearing.collateral
    rate = table.usdt_rate_e8
    if coin == "USDT":
        return rate
    terms = table.coins.get(coin)
    if terms is not None and not terms.price_symbol:
        return terms.fixed_px_e8
    if terms is not None and terms.price_symbol in engine.instruments:
        spec = engine.instruments[terms.price_symbol]
        ticks = (engine.index_price.get(spec.symbol) or engine.mark_price.get(spec.symbol)
                 or engine.last_price.get(spec.symbol))
        if ticks:
            return ticks * spec.tick_atoms * rate // 10**8
    for symbol in sorted(engine.instruments):
        spec = engine.instruments[symbol]
        if spec.base_coin == coin and spec.quote_coin == "USD":
            ticks = (engine.index_price.get(symbol) or engine.mark_price.get(symbol)
                     or engine.last_price.get(symbol))
            if ticks:
                return ticks * spec.tick_atoms
    return 0


def counted_atoms(terms: CollateralCoin, qty: int) -> int:
    """The part of a positive quantity that counts: each slice at its tier's ratio."""
    total = 0
    for tier in terms.tiers:
        top = qty if tier.max_atoms is None else min(qty, tier.max_atoms)
        total += max(0, top - tier.min_atoms) * tier.ratio
    return total // RATE_ONE


def expected_risk(engine: Engine, account: Account) -> AccountRisk:
    """The account's USD figures from scratch: Σ per coin, floored and ceiled in USD."""
    clearing = engine.clearing
    coins = {c for c, b in account.balances.items() if b}
    coins |= {BY_SYMBOL[p.symbol].settle_coin for p in account.positions.values()
              if p.size_lots}
    coins |= {BY_SYMBOL[s].settle_coin for (s, _i, _d), o in account.order_sums.items()
              if o.leaves_lots}
    sums = dict.fromkeys(("equity", "wallet", "upnl", "margin", "pim", "oim", "mm", "loss"), 0)
    for coin in sorted(coins):
        px = usd_px(engine, coin)
        wallet = account.balances.get(coin, 0)
        upnl = pim = mm = oim = loss = 0
        symbols: set[str] = set()
        for position in account.positions.values():
            spec = BY_SYMBOL[position.symbol]
            if not position.size_lots or spec.settle_coin != coin:
                continue
            symbols.add(spec.symbol)
            mark = engine.mark_price.get(spec.symbol) or engine.last_price.get(spec.symbol) or (
                average_entry_display(spec, position.entry_value_atoms, position.qty_lots))
            risk = position_risk(position, spec, mark, account.margin_mode)
            upnl += risk.upnl_atoms
            pim += risk.im_atoms
            mm += risk.mm_atoms
        symbols |= {s for (s, _i, _d), o in account.order_sums.items()
                    if o.leaves_lots and BY_SYMBOL[s].settle_coin == coin}
        for symbol in sorted(symbols):
            oim += order_margin_atoms(account, BY_SYMBOL[symbol])
            loss += clearing.order_loss_atoms(account.account_id, BY_SYMBOL[symbol])
        equity = wallet + upnl
        terms = clearing.collateral.coins.get(coin)
        if equity <= 0:
            margin = equity * px // 10**8
        elif terms is None or not terms.margin_collateral or coin in account.collateral_off:
            margin = 0
        else:
            margin = counted_atoms(terms, equity) * px // 10**8
        sums["equity"] += equity * px // 10**8
        sums["wallet"] += wallet * px // 10**8
        sums["upnl"] += upnl * px // 10**8
        sums["margin"] += margin
        sums["pim"] += -(-pim * px // 10**8)
        sums["oim"] += -(-oim * px // 10**8)
        sums["mm"] += -(-mm * px // 10**8)
        sums["loss"] += loss * px // 10**8
    return AccountRisk(sums["equity"], sums["wallet"], sums["upnl"], sums["margin"],
                       sums["pim"], sums["oim"], sums["mm"], sums["loss"])


# -- the stream ---------------------------------------------------------------------------------


class Seen:
    """What a stream went through, so the tests can show it was not vacuous."""

    def __init__(self) -> None:
        self.pooled_liquidations = 0
        self.conversions = 0
        self.automatic_conversions = 0
        self.interest = 0
        self.pooled_checked = 0
        self.events: Counter[str] = Counter()
        self.refusals: Counter[tuple[str, str]] = Counter()
        self.state_hash = ""


def check(engine: Engine, command: Command, seen: Seen) -> None:
    """Every property of the module docstring, after one command."""
    engine.check_invariants()
    clearing = engine.clearing
    moved = isinstance(command, IndexPrice | MarkPrice | Tick)
    for account_id in ACCOUNTS:
        account = clearing.accounts.get(account_id)
        if account is None:
            continue
        risk = clearing.account_risk(account)
        assert risk == expected_risk(engine, account), (account_id, command)
        if clearing.pooled(account):
            seen.pooled_checked += 1
        if account.model is CROSS:
            for coin in clearing.coins:
                assert CROSS.available_atoms(clearing, account, coin) == (
                    clearing.figures(account, coin).available_atoms), (account_id, coin, command)
            if moved and any(p.size_lots for p in account.positions.values()):
                assert not risk.breached(), (account_id, command, risk)
                assert risk.margin_balance_atoms >= 0, (account_id, command, risk)
        if moved and any(p.size_lots for p in account.positions.values()):
            assert risk.total_equity_atoms >= 0, (account_id, command, risk)


def run_stream(seed: int, length: int, usdt_rate_e8: int, tiered: bool,
               commands: list[Command] | None = None) -> Seen:
    """Apply a setup and `length` random commands, checking after each (kept in `commands`)."""
    rng = random.Random(seed)
    walk = Walk()
    engine = Engine(SPECS, table_for(usdt_rate_e8, tiered))
    setup: list[Command] = []
    for account, wallet in WALLETS.items():
        setup += [Deposit(0, 0, account, coin, usd * UNIT[coin]) for coin, usd in wallet.items()]
    setup.append(SetMarginMode(0, 0, 5, MarginMode.ISOLATED))
    for spec in SPECS:
        # The traders start at 25x: a drop of a few percent can breach a full account.
        setup += [SetLeverage(0, 0, account, spec.symbol, 25 * RATE_ONE, 25 * RATE_ONE)
                  for account in TRADERS]
        setup += [IndexPrice(0, 0, spec.symbol, START[spec.symbol]),
                  SetFundingInterval(0, 0, spec.symbol, 60)]
        # Resting depth from the market makers, so market orders and takeovers find a book.
        for k in range(1, 4):
            for maker, side, sign in ((1, Side.BUY, -1), (2, Side.SELL, 1)):
                setup.append(PlaceOrder(0, 0, maker, spec.symbol, side, OrderType.LIMIT,
                                        100 * LOT[spec.symbol],
                                        START[spec.symbol] * (1000 + sign * 3 * k) // 1000))
    seen = Seen()
    for seq in range(1, len(setup) + length + 1):
        draft = setup[seq - 1] if seq <= len(setup) else random_command(rng, walk, engine)
        command = msgspec.structs.replace(draft, seq=seq, ts_ms=T0 + seq * MINUTE_MS)
        if commands is not None:
            commands.append(command)
        pooled_before = {i for i, a in engine.clearing.accounts.items()
                         if i > 0 and a.model is CROSS and engine.clearing.pooled(a)}
        events = engine.apply(command)
        for event in events:
            seen.events[type(event).__name__] += 1
            if isinstance(event, OrderRejected | CommandRejected):
                seen.refusals[type(command).__name__, event.reason.name] += 1
            if isinstance(event, Liquidated) and event.account_id in pooled_before:
                seen.pooled_liquidations += 1
            elif isinstance(event, Converted):
                seen.conversions += 1
                seen.automatic_conversions += event.automatic
            elif isinstance(event, InterestCharged):
                seen.interest += 1
        check(engine, command, seen)
    seen.state_hash = engine.state_hash()
    return seen


@given(st.integers(0, 10**6), st.sampled_from([10**8, 99_950_000]), st.booleans())
@settings(deadline=None, max_examples=10, derandomize=True)
def test_random_flows_over_several_coins(seed: int, usdt_rate_e8: int, tiered: bool) -> None:
    run_stream(seed, 200, usdt_rate_e8, tiered)


def test_the_flows_are_not_vacuous() -> None:
    """Pools are checked, interest is charged, collateral converted, pooled accounts liquidated.

    Seeds 3 and 4 (found by running the stream) each liquidate a cross account holding
    several coins, whose liquidation converts its collateral to repay its liabilities.
    """
    for seed in (3, 4):
        seen = run_stream(seed, 400, 99_950_000, seed % 2 == 0)
        assert seen.pooled_checked > 1_000
        assert seen.interest > 0
        assert seen.conversions > 0 and seen.automatic_conversions > 0, seed
        assert seen.pooled_liquidations > 0, seed
        assert seen.events["Liquidated"] > 0 and seen.events["Trade"] > 50


def test_a_flow_replays_and_restores_to_the_same_state() -> None:
    """Liabilities, conversions (the desk's account) and interest survive a snapshot."""
    commands: list[Command] = []
    seen = run_stream(3, 400, 99_950_000, False, commands)
    assert seen.conversions and seen.interest
    table = table_for(99_950_000, False)
    replayed = Engine(SPECS, table)
    for command in commands:
        replayed.apply(command)
    assert replayed.state_hash() == seen.state_hash
    cut = len(commands) // 2 + 7
    first = Engine(SPECS, table)
    for command in commands[:cut]:
        first.apply(command)
    restored = Engine.from_snapshot(SPECS, first.to_snapshot(), table)
    for command in commands[cut:]:
        restored.apply(command)
    assert restored.state_hash() == seen.state_hash


def test_specs_are_the_four_families() -> None:
    """The flows cover USDT, inverse and USDC contracts."""
    settle = {spec.symbol: spec.settle_coin for spec in SPECS}
    assert settle == {"BTCUSDT": "USDT", "ETHUSDT": "USDT", "BTCUSD": "BTC", "BTCPERP": "USDC"}
    assert all(isinstance(spec, InstrumentSpec) for spec in SPECS)
