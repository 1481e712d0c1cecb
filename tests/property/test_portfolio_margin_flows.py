"""Random flows with accounts in portfolio margin beside cross and isolated ones (issue #17).

The flows of `test_all_contracts` (USDT, inverse and USDC perpetuals, a dated future listed
mid-way, wallets in USDT, USDC and BTC), with some accounts switched to PORTFOLIO_MARGIN at
the start and any account switching now and then. After every command: each coin is
conserved (the core's invariants); a PM account's figures equal their recomputation from
scratch (the coins' equities valued in USD after their collateral ratios, IM and MM from the
risk units' scenarios over legs rebuilt here from the positions and orders); and after a mark
or index move no account with open positions is left at an MM rate of 100% or more (the
sweep found and liquidated every breached pool).
"""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from test_all_contracts import (
    ACCOUNTS,
    EVERY,
    FUTURE,
    ISOLATED,
    MID,
    MINUTE_MS,
    PERPETUALS,
    UNIT,
    T,
    random_command,
)

from perpx.core import Command, Engine
from perpx.core.account.accounts import Account
from perpx.core.account.collateral import margin_value_usd, usd_floor
from perpx.core.account.portfolio import PmLeg, portfolio_margin
from perpx.core.account.risk_value import AccountRisk
from perpx.core.commands import (
    Deposit,
    IndexPrice,
    ListInstrument,
    MarkPrice,
    SetFundingInterval,
    SetMarginMode,
)
from perpx.core.enums import MarginMode, Side
from perpx.core.events import Liquidated, MarginModeSet
from perpx.core.instruments import spec_record

PORTFOLIO_ACCOUNTS = (1, 2, 6)


def expected_pm_risk(engine: Engine, account: Account) -> AccountRisk:
    """Recompute a PM account's USD figures from its wallets, positions, orders and prices."""
    clearing = engine.clearing
    coins = sorted({c for c, b in account.balances.items() if b}
                   | {engine.instruments[s].settle_coin
                      for (s, _), p in account.positions.items() if p.size_lots}
                   | {engine.instruments[s].settle_coin
                      for (s, _, _), o in account.order_sums.items() if o.leaves_lots})
    total = wallet = upnl = margin = order_loss = 0
    for coin in coins:
        px = clearing.usd_px(coin)
        own = clearing.coin_figures(account, coin)
        equity = own.wallet_atoms + own.upnl_atoms
        total += usd_floor(equity, px)
        wallet += usd_floor(own.wallet_atoms, px)
        upnl += usd_floor(own.upnl_atoms, px)
        margin += margin_value_usd(clearing.collateral.coin(coin), equity, px,
                                   coin not in account.collateral_off)
        order_loss += usd_floor(own.order_loss_atoms, px)
    lots: dict[str, list[int]] = {}
    for (symbol, _), position in account.positions.items():
        if position.size_lots:
            lots.setdefault(symbol, [0, 0, 0])[0] += position.size_lots
    for (symbol, _, side), sums in account.order_sums.items():
        if sums.leaves_lots:
            lots.setdefault(symbol, [0, 0, 0])[1 if side is Side.BUY else 2] += sums.leaves_lots
    legs = []
    for symbol, (net, buys, sells) in sorted(lots.items()):
        spec = engine.instruments[symbol]
        mark = engine.mark_of(symbol)
        index = engine.index_price.get(symbol) or mark
        assert index, symbol
        legs.append(PmLeg(spec, net, index, clearing.usd_px(spec.settle_coin), mark or index,
                          buys, sells))
    result = portfolio_margin(legs, clearing.pm_params)
    position_im = sum(-(-unit.mm * clearing.pm_params.im_factor // 10**8)
                      for unit in result.units)
    return AccountRisk(total, wallet, upnl, margin, position_im, result.im - position_im,
                       result.mm, order_loss)


def run(seed: int, length: int) -> tuple[int, int, int]:
    """Run one stream; return (PM accounts seen with positions, liquidations, mode switches)."""
    rng = random.Random(seed)
    engine = Engine(PERPETUALS)
    setup: list[Command] = []
    for account in ACCOUNTS:
        setup += [Deposit(0, 0, account, "USDT", 1_000 * UNIT["USDT"]),
                  Deposit(0, 0, account, "USDC", 500 * UNIT["USDC"]),
                  Deposit(0, 0, account, "BTC", 500 * UNIT["BTC"])]
    setup += [SetMarginMode(0, 0, a, MarginMode.PORTFOLIO) for a in PORTFOLIO_ACCOUNTS]
    setup += [SetMarginMode(0, 0, a, MarginMode.ISOLATED) for a in ISOLATED]
    setup.append(ListInstrument(0, 0, spec_record(FUTURE)))
    for spec in EVERY:
        setup += [IndexPrice(0, 0, spec.symbol, MID[spec.symbol]),
                  MarkPrice(0, 0, spec.symbol, MID[spec.symbol])]
        if spec is not FUTURE:
            setup.append(SetFundingInterval(0, 0, spec.symbol, 60))
    start = T - (len(setup) + length // 2) * MINUTE_MS
    pm_with_positions = liquidations = switches = 0
    for seq in range(1, len(setup) + length + 1):
        if seq <= len(setup):
            draft = setup[seq - 1]
        elif rng.random() < 0.02:
            draft = SetMarginMode(0, 0, rng.choice(ACCOUNTS), rng.choice(list(MarginMode)))
        else:
            draft = random_command(rng, seq, engine)
            if isinstance(draft, SetMarginMode) and draft.account_id in PORTFOLIO_ACCOUNTS:
                # Mostly back to portfolio margin: these accounts should spend time in it.
                draft = msgspec.structs.replace(draft, margin_mode=MarginMode.PORTFOLIO)
        cmd = msgspec.structs.replace(draft, seq=seq, ts_ms=start + seq * MINUTE_MS)
        events = engine.apply(cmd)
        engine.check_invariants()
        switches += sum(1 for e in events if isinstance(e, MarginModeSet)
                        and e.margin_mode is MarginMode.PORTFOLIO)
        liquidations += sum(1 for e in events if isinstance(e, Liquidated))
        clearing = engine.clearing
        for account_id in ACCOUNTS:
            account = clearing.accounts.get(account_id)
            if account is None or account.margin_mode is not MarginMode.PORTFOLIO:
                continue
            assert clearing.account_risk(account) == expected_pm_risk(engine, account), seq
            if any(p.size_lots for p in account.positions.values()):
                pm_with_positions += 1
        if isinstance(cmd, MarkPrice | IndexPrice):
            for account_id in ACCOUNTS:
                account = clearing.accounts.get(account_id)
                if account is None or account.model.holds_position_margin:
                    continue
                if any(p.size_lots for p in account.positions.values()):
                    assert not clearing.account_risk(account).breached(), (seq, account_id)
    return pm_with_positions, liquidations, switches


@settings(max_examples=4, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_portfolio_margin_flows_keep_their_figures_exact(seed: int) -> None:
    run(seed, 500)


def test_a_long_flow_is_not_vacuous() -> None:
    pm_with_positions, liquidations, switches = run(20261206, 1_500)
    assert pm_with_positions > 0
    assert switches >= len(PORTFOLIO_ACCOUNTS)
    assert liquidations > 0
