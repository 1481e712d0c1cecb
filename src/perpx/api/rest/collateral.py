"""Collateral and borrowing endpoints (next-mechanics §4.6): tiers, switches, liabilities.

Public: the venue's collateral tiers and borrowing terms (`/v5/spot-margin-trade/collateral`,
`/data`). Signed reads: an account's borrowing (`/v5/account/collateral-info`,
`/v5/spot-margin-trade/liability`, `/v5/account/borrow-history`). Writes (trade permission,
as every POST): the collateral switch, one coin or a batch, and the three repayments. The
request fields go through `perpx.bybit.translate` (the one parser, which `perpx.Exchange`
shares) and become one command each; the core decides what is allowed.

A repayment is synchronous here (Bybit answers "P", processing): `resultStatus` is "SU"
when some liability was repaid and "FA" when nothing could be (without conversion a
derivatives liability has no spot balance to repay it, §4.4).
"""

from __future__ import annotations

from typing import Any

from perpx.api import collateral_wire as cwire
from perpx.api.context import Access, Context, Endpoint, raise_rejection
from perpx.bybit import translate
from perpx.bybit.errors import params_error
from perpx.convert import format_atoms
from perpx.core.account.collateral import CollateralCoin
from perpx.core.commands import RepayLiability, SetCollateralSwitch
from perpx.core.events import Event, LiabilityRepaid

BORROW_HISTORY_DAYS = 30  # Bybit's window for /v5/account/borrow-history


def _coins(ctx: Context, name: str = "currency", *,
           required: bool = False) -> list[CollateralCoin]:
    """Return the collateral coins a read names by `currency` (all when absent).

    A coin this venue does not take as collateral is refused, 10001 "currency invalid".
    """
    clearing = ctx.service.durable.engine.clearing
    known = cwire.table_coins(clearing)
    wanted = ctx.params.text(name, required=required)
    if not wanted:
        return known
    found = [terms for terms in known if terms.coin == wanted]
    if not found:
        raise params_error(f"{name} invalid")
    return found


async def tiered_collateral(ctx: Context) -> dict[str, Any]:
    """GET /v5/spot-margin-trade/collateral (public): each coin's tiers, verbatim."""
    return {"list": [cwire.tiers(terms) for terms in _coins(ctx)]}


async def vip_margin_data(ctx: Context) -> dict[str, Any]:
    """GET /v5/spot-margin-trade/data (public): borrowing terms at perpx's one VIP level.

    Another `vipLevel` has no coins here: an empty `vipCoinList`.
    """
    coins = _coins(ctx)
    level = ctx.params.text("vipLevel")
    if level and level != cwire.VIP_LEVEL:
        return {"vipCoinList": []}
    clearing = ctx.service.durable.engine.clearing
    return {"vipCoinList": [{"list": [cwire.vip_coin(clearing, terms) for terms in coins],
                             "vipLevel": cwire.VIP_LEVEL}]}


async def collateral_info(ctx: Context) -> dict[str, Any]:
    """GET /v5/account/collateral-info: the caller's borrowing and switch per coin."""
    coins = _coins(ctx)
    clearing = ctx.service.durable.engine.clearing
    account = clearing.account(ctx.account_id)
    return {"list": [cwire.collateral_info(clearing, account, terms) for terms in coins]}


async def liability(ctx: Context) -> dict[str, Any]:
    """GET /v5/spot-margin-trade/liability?currency= (required, as Bybit's)."""
    [terms] = _coins(ctx, required=True)
    clearing = ctx.service.durable.engine.clearing
    return cwire.liability(clearing, clearing.account(ctx.account_id), terms.coin)


async def borrow_history(ctx: Context) -> dict[str, Any]:
    """GET /v5/account/borrow-history: interest charged, newest first (30-day window)."""
    params = ctx.params
    coins = _coins(ctx)
    coin = coins[0].coin if "currency" in params else None
    start, end = params.window(ctx.now_ms, days=BORROW_HISTORY_DAYS)
    limit = params.limit(20, 50)
    cursor = params.cursor()
    store = ctx.service.history
    page = await store.run(lambda: store.borrows(
        ctx.account_id, coin=coin, start_ms=start, end_ms=end, limit=limit, cursor=cursor))
    return {"list": [cwire.borrow_row(r) for r in page.records],
            "nextPageCursor": page.next_cursor}


async def _apply(ctx: Context, command: SetCollateralSwitch | RepayLiability) -> list[Event]:
    events = await ctx.service.submit(command)
    raise_rejection(events)
    return events


def _switch_word(on: bool) -> str:
    return "ON" if on else "OFF"


async def set_collateral_switch(ctx: Context) -> dict[str, Any]:
    """POST /v5/account/set-collateral-switch {coin, collateralSwitch ON/OFF}."""
    await _apply(ctx, translate.collateral_switch(ctx.account_id, ctx.params))
    return {}


async def set_collateral_switch_batch(ctx: Context) -> dict[str, Any]:
    """POST /v5/account/set-collateral-switch-batch {request: [...]}: all or nothing."""
    command = translate.collateral_switch_batch(ctx.account_id, ctx.params)
    await _apply(ctx, command)
    return {"list": [{"coin": coin, "collateralSwitch": _switch_word(on)}
                     for coin, on in command.switches]}


def _repaid(events: list[Event]) -> list[LiabilityRepaid]:
    return [e for e in events if isinstance(e, LiabilityRepaid)]


def _status(events: list[Event]) -> dict[str, Any]:
    repaid = sum(e.repaid_atoms for e in _repaid(events))
    return {"resultStatus": "SU" if repaid > 0 else "FA"}


async def repay(ctx: Context) -> dict[str, Any]:
    """POST /v5/account/repay {coin?, amount?}: repay, converting other coins as needed."""
    return _status(await _apply(ctx, translate.repay(ctx.account_id, ctx.params,
                                                     convert=True)))


async def no_convert_repay(ctx: Context) -> dict[str, Any]:
    """POST /v5/account/no-convert-repay {coin, amount?}: the coin's own balance only."""
    return _status(await _apply(ctx, translate.repay(ctx.account_id, ctx.params,
                                                     convert=False, coin_required=True)))


async def quick_repayment(ctx: Context) -> dict[str, Any]:
    """POST /v5/account/quick-repayment {coin?}: repay all of it, converting in order."""
    events = await _apply(ctx, translate.repay(ctx.account_id, ctx.params, convert=True,
                                               with_amount=False))
    return {"list": [{"coin": e.coin, "repaymentQty": format_atoms(e.repaid_atoms)}
                     for e in _repaid(events)]}


ROUTES = [
    Endpoint("GET", "/v5/spot-margin-trade/collateral", tiered_collateral, Access.PUBLIC),
    Endpoint("GET", "/v5/spot-margin-trade/data", vip_margin_data, Access.PUBLIC),
    Endpoint("GET", "/v5/account/collateral-info", collateral_info, Access.READ),
    Endpoint("GET", "/v5/spot-margin-trade/liability", liability, Access.READ),
    Endpoint("GET", "/v5/account/borrow-history", borrow_history, Access.READ),
    Endpoint("POST", "/v5/account/set-collateral-switch", set_collateral_switch, Access.WRITE),
    Endpoint("POST", "/v5/account/set-collateral-switch-batch", set_collateral_switch_batch,
             Access.WRITE),
    Endpoint("POST", "/v5/account/repay", repay, Access.WRITE),
    Endpoint("POST", "/v5/account/no-convert-repay", no_convert_repay, Access.WRITE),
    Endpoint("POST", "/v5/account/quick-repayment", quick_repayment, Access.WRITE),
]
