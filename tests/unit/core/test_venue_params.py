"""The venue's configurable parameters, `SetVenueParams` (issue #17): records and the engine.

The collateral table and the PM parameters round-trip through their plain-data records;
a malformed record is a refusal that changes nothing; a venue that never set them
snapshots (and hashes) exactly as before; one that did keeps them across a snapshot; and
C6 (next-mechanics §4.7) comes out of an account built on the default table once the
operator sets C6's BTC ratio 0.98 and USDT rate 0.9995.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from perpx import Exchange
from perpx.convert import format_atoms
from perpx.core.account.collateral import (
    CollateralCoin,
    CollateralTable,
    CollateralTier,
    collateral_from_record,
    collateral_record,
    default_collateral,
)
from perpx.core.account.portfolio import (
    PmParams,
    PmRange,
    ShockBase,
    pm_params_from_record,
    pm_params_record,
)
from perpx.core.account.venue import venue_params_from_record, venue_params_record
from perpx.core.codes import RejectCode
from perpx.core.commands import Deposit, SetVenueParams
from perpx.core.engine import Engine
from perpx.core.events import CommandRejected, VenueParamsSet
from perpx.instruments import load_instruments

SPECS = load_instruments()


def defaults() -> dict[str, Any]:
    return venue_params_record(default_collateral(), PmParams())


def c6_params() -> dict[str, Any]:
    """The defaults with C6's venue: BTC at 0.98, USDT at 0.9995 USD, USDC at 1.0002 USDT."""
    record = defaults()
    coins = {c["coin"]: c for c in record["collateral"]["coins"]}
    record["collateral"]["usdtRate"] = 99_950_000
    coins["BTC"]["tiers"] = [[0, None, 98_000_000]]
    coins["USDC"]["fixedPx"] = 100_020_000 * 99_950_000 // 10**8  # 0.9996999 USD
    return record


def test_the_records_round_trip_through_json() -> None:
    table = CollateralTable((
        CollateralCoin("USDT", (CollateralTier(0, None, 10**8),), switchable=False),
        CollateralCoin("BTC", (CollateralTier(0, 10 * 10**8, 98_000_000),
                               CollateralTier(10 * 10**8, None, 95_000_000)),
                       price_symbol="BTCUSDT", liquidation_order=3,
                       hourly_borrow_rate=1_216_904_000_000, max_borrowing_atoms=5),
    ), usdt_rate_e8=99_950_000, conversion_fee_rate=1_000)
    record = json.loads(json.dumps(collateral_record(table)))
    assert collateral_record(collateral_from_record(record)) == collateral_record(table)
    assert [c["coin"] for c in record["coins"]] == ["BTC", "USDT"]  # canonical order
    params = PmParams({"SOL": PmRange(20_000_000, 5_000_000)}, PmRange(30_000_000, 10_000_000),
                      700_000, 130_000_000, ShockBase.MARK, 10, 20)
    again = pm_params_from_record(json.loads(json.dumps(pm_params_record(params))))
    assert repr(again) == repr(params)
    collateral, pm = venue_params_from_record(json.loads(json.dumps(defaults())))
    assert venue_params_record(collateral, pm) == defaults()


def _broken() -> list[Any]:
    def edit(path: list[Any], value: Any) -> dict[str, Any]:
        record = defaults()
        place: Any = record
        for key in path[:-1]:
            place = place[key]
        if value is KeyError:
            del place[path[-1]]
        else:
            place[path[-1]] = value
        return record

    btc = ["collateral", "coins", 0]
    return [
        None, [], {}, {**defaults(), "extra": 1},
        edit(["collateral", "usdtRate"], 0),
        edit(["collateral", "usdtRate"], "1"),
        edit(["collateral", "conversionFeeRate"], 10**8),
        edit(["collateral", "coins"], []),  # no USDT
        edit([*btc, "tiers"], [[0, None, 10**8 + 1]]),  # ratio above 1
        edit([*btc, "tiers"], [[1, None, 10**8]]),  # does not start at 0
        edit([*btc, "tiers"], [[0, 5, 10**8]]),  # bounded last tier
        edit([*btc, "tiers"], [[0, 5, 10**8], [6, None, 10**8]]),  # a gap
        edit([*btc, "tiers"], [[0, None, 10**8], [5, None, 10**8]]),
        edit([*btc, "tiers"], []),
        edit([*btc, "switchable"], 1),
        edit([*btc, "liquidationOrder"], -1),
        edit([*btc, "liquidationOrder"], True),
        edit([*btc, "coin"], "btc"),
        edit([*btc, "fixedPx"], 0),
        edit([*btc, "maxBorrowing"], KeyError),
        edit(["portfolioMargin", "ranges"], [["BTC", 10_000_000, 3_000_000]]),  # not whole
        edit(["portfolioMargin", "ranges"], [["BTC", 10**8, 10**7]]),  # 100%
        edit(["portfolioMargin", "ranges"], [["BTC", 10, 0]]),
        edit(["portfolioMargin", "ranges"], [["BTC", 10, 5], ["BTC", 10, 5]]),
        edit(["portfolioMargin", "defaultRange"], [10]),
        edit(["portfolioMargin", "imFactor"], 10**8 - 1),  # IM below MM
        edit(["portfolioMargin", "riskFactor"], -1),
        edit(["portfolioMargin", "shockBase"], "index"),
        edit(["portfolioMargin", "usdtUsdcRate"], 1.5),
    ]


@pytest.mark.parametrize("record", _broken())
def test_a_malformed_record_is_refused_and_changes_nothing(record: Any) -> None:
    engine = Engine(SPECS)
    engine.apply(Deposit(1, 1, 7, "USDT", 10**12))
    before = engine.state_hash()
    events = engine.apply(SetVenueParams(2, 2, record))
    assert [type(e) for e in events] == [CommandRejected]
    rejected = events[0]
    assert isinstance(rejected, CommandRejected)
    assert rejected.reason is RejectCode.INVALID_PARAMETER and rejected.detail
    assert engine.venue_params is None
    assert "venue_params" not in engine.to_snapshot()
    assert engine.current_venue_params() == defaults()
    # Only the seq moved.
    engine.last_seq = 1
    engine.last_ts_ms = 1
    assert engine.state_hash() == before


def test_a_venue_that_never_set_params_snapshots_as_before() -> None:
    engine = Engine(SPECS)
    engine.apply(Deposit(1, 1, 7, "USDT", 10**12))
    assert "venue_params" not in engine.to_snapshot()


def test_set_params_are_in_force_snapshotted_and_restored() -> None:
    engine = Engine(SPECS)
    engine.apply(Deposit(1, 1, 7, "BTC", 10**8))
    wanted = c6_params()
    events = engine.apply(SetVenueParams(2, 2, copy.deepcopy(wanted)))
    assert events == [VenueParamsSet(2, 2, wanted)]
    assert engine.venue_params == wanted == engine.current_venue_params()
    assert engine.clearing.collateral.usdt_rate_e8 == 99_950_000
    assert "USDT" not in engine.clearing.par_coins  # 0.9995 USD: no longer at par
    snapshot = json.loads(json.dumps(engine.to_snapshot()))
    assert snapshot["venue_params"] == wanted
    again = Engine.from_snapshot(SPECS, snapshot)
    assert again.state_hash() == engine.state_hash()
    assert again.current_venue_params() == wanted
    assert again.clearing.multi_coin == engine.clearing.multi_coin
    # Setting the defaults back is a change too, and is kept (the record is in force).
    engine.apply(SetVenueParams(3, 3, defaults()))
    assert engine.current_venue_params() == defaults()
    assert engine.to_snapshot()["venue_params"] == defaults()


def c6_account(ex: Exchange) -> None:
    """C6's account, traded on the venue (tests/unit/test_collateral_vectors.py)."""
    ex.deposit(1, "1", "BTC")
    ex.deposit(1, "1567.1")
    ex.deposit(1, "2000", "USDC")
    ex.deposit(2, "100000")
    ex.index_price("BTCUSDT", "61000")
    assert ex.place_order(2, "BTCUSDT", "Sell", "Limit", qty="2", price="61000").ok
    assert ex.place_order(1, "BTCUSDT", "Buy", "Market", qty="2").ok
    ex.index_price("BTCUSDT", "60000")
    ex.mark_price("BTCUSDT", "60000")


def test_c6_figures_follow_the_operators_params_through_the_exchange() -> None:
    """C6 [con] on a default venue, then with C6's ratio and rate set by SetVenueParams."""
    ex = Exchange(["BTCUSDT"], check_invariants=True)
    c6_account(ex)
    clearing = ex.engine.clearing
    account = clearing.account(1)
    assert account is not None
    before = clearing.account_risk(account)
    # The defaults: BTC at 0.95 and 60,000 USD, USDT and USDC at 1 USD.
    # 1 BTC x 60,000 x 0.95 + 2,000 USDC + (1,500 - 2,000 unrealised) USDT.
    assert format_atoms(before.margin_balance_atoms) == "58500"
    result = ex.submit(SetVenueParams(0, 0, c6_params()))
    assert result.ok and [type(e) for e in result.events] == [VenueParamsSet]
    risk = clearing.account_risk(account)
    assert format_atoms(risk.margin_balance_atoms) == "60270.2498"
    assert format_atoms(risk.total_equity_atoms) == "61469.6498"
    assert format_atoms(risk.total_im_atoms) == "12054.359805"
    assert format_atoms(risk.mm_atoms) == "660.059805"
    assert format_atoms(risk.available_atoms) == "48215.889995"
    assert clearing.liability_atoms(account, "USDT") == 500 * 10**8
    refused = ex.submit(SetVenueParams(0, 0, {"collateral": {}}))
    assert not refused.ok and refused.reject is RejectCode.INVALID_PARAMETER
