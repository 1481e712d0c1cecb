"""Account, user and asset endpoints (§7), and Bybit's demo-trading funds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from perpx.api import wire
from perpx.api.context import Access, Context, Endpoint, raise_rejection, rejection
from perpx.api.pm_wire import PmWallet, portfolio_margin_result
from perpx.bybit.errors import ApiError, params_error
from perpx.bybit.params import LISTED_CATEGORIES, in_category, request_specs
from perpx.bybit.retcodes import bybit_code
from perpx.convert import ConversionError, format_rate, to_atoms
from perpx.core.account.margin_model import pm_legs
from perpx.core.account.portfolio import portfolio_margin as portfolio_margin_of
from perpx.core.codes import RejectCode
from perpx.core.commands import Deposit, SetMarginMode, Withdraw
from perpx.core.enums import MarginMode
from perpx.core.events import CommandRejected, Event

MARGIN_MODES = {"ISOLATED_MARGIN": MarginMode.ISOLATED, "REGULAR_MARGIN": MarginMode.CROSS,
                "PORTFOLIO_MARGIN": MarginMode.PORTFOLIO}
# Bybit's demo trading: at most this much of a coin per request (its published caps); a coin
# is credited only where it is a settle coin here (BTC and ETH settle the inverse contracts).
DEMO_MAX = {"USDT": 100_000, "USDC": 100_000, "BTC": 15, "ETH": 200}
DEMO_ONLY = (10005, "Permission denied: demo-apply-money is for demo trading only")
DAY_MS = 86_400_000


async def wallet_balance(ctx: Context) -> dict[str, Any]:
    """GET /v5/account/wallet-balance (UNIFIED only)."""
    account_type = ctx.params.text("accountType", required=True)
    if account_type != "UNIFIED":
        raise params_error("accountType only support UNIFIED")
    coins = ctx.params.text("coin")
    state = ctx.service.durable.engine
    row = wire.wallet(state, state.clearing.account(ctx.account_id))
    if coins:
        wanted = coins.split(",")
        row["coin"] = [one for one in row["coin"] if one["coin"] in wanted]
    return {"list": [row]}


async def account_info(ctx: Context) -> dict[str, Any]:
    """GET /v5/account/info (unified trading account 2.0)."""
    account = ctx.service.durable.engine.clearing.account(ctx.account_id)
    mode = account.margin_mode if account is not None else MarginMode.CROSS
    return {"marginMode": wire.MARGIN_MODES[mode], "updatedTime": str(ctx.now_ms),
            "unifiedMarginStatus": 6, "dcpStatus": "OFF", "timeWindow": 0, "smpGroup": 0,
            "isMasterTrader": False, "spotHedgingStatus": "OFF"}


async def query_api(ctx: Context) -> dict[str, Any]:
    """GET /v5/user/query-api: this key's rights (ccxt reads `uta` and `unified`)."""
    key = ctx.key
    assert key is not None
    created = datetime.fromtimestamp(key.created_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    trade: list[str] = [] if key.read_only else ["Order", "Position"]
    return {"id": str(key.account_id), "note": key.note, "apiKey": key.api_key,
            "readOnly": int(key.read_only), "secret": "",
            "permissions": {"ContractTrade": trade, "Spot": [], "Wallet": [], "Options": [],
                            "Derivatives": [] if key.read_only else ["DerivativesTrade"],
                            "CopyTrading": [], "BlockTrade": [], "Exchange": [], "NFT": [],
                            "Affiliate": [], "Earn": []},
            "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": created,
            "unified": 0, "uta": 1, "userID": key.account_id, "inviterID": 0,
            "vipLevel": "No VIP", "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "",
            "isMaster": True, "parentUid": "0", "kycLevel": "LEVEL_DEFAULT", "kycRegion": ""}


async def coin_info(ctx: Context) -> dict[str, Any]:
    """GET /v5/asset/coin/query-info: the coins perpx knows, with no chains."""
    wanted = ctx.params.text("coin")
    coins = sorted({c for s in ctx.service.specs.values()
                    for c in (s.base_coin, s.settle_coin)})
    return {"rows": [{"name": c, "coin": c, "remainAmount": "0", "chains": []}
                     for c in coins if not wanted or c == wanted]}


async def fee_rate(ctx: Context) -> dict[str, Any]:
    """GET /v5/account/fee-rate."""
    category = ctx.params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = ctx.params.spec(specs, required=False)
    if category not in LISTED_CATEGORIES:
        return {"list": []}
    chosen = [spec] if spec is not None else list(specs.values())
    return {"list": [{"symbol": s.symbol, "takerFeeRate": format_rate(s.taker_fee_rate),
                      "makerFeeRate": format_rate(s.maker_fee_rate)} for s in chosen]}


async def delivery_record(ctx: Context) -> dict[str, Any]:
    """GET /v5/asset/delivery-record: dated futures' positions settled at delivery (§2.7).

    Bybit's window is 30 days (default: the last 30); `expDate` (``25DEC26``) keeps the
    contracts of that delivery day, the suffix of their symbol.
    """
    params = ctx.params
    category = params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = params.spec(specs, required=False)
    exp_date = params.text("expDate").upper()
    start, end = params.window(ctx.now_ms, days=30)
    limit = params.limit(20, 50)
    cursor = params.cursor()
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    store = ctx.service.history
    page = await store.run(lambda: store.deliveries(
        ctx.account_id, symbol=spec.symbol if spec else tuple(specs), start_ms=start,
        end_ms=end, limit=limit, cursor=cursor))
    return wire.history_page(category, page, specs, wire.delivery_record,
                             lambda r: not exp_date or r.symbol.endswith(f"-{exp_date}"))


async def transaction_log(ctx: Context) -> dict[str, Any]:
    """GET /v5/account/transaction-log (default window: the last 24 hours)."""
    params = ctx.params
    account_type = params.text("accountType")
    if account_type not in ("", "UNIFIED"):
        raise params_error("accountType only support UNIFIED")
    # Without a category, every coin's rows (Bybit's transaction log spans the account).
    category = params.category() if "category" in params else ""
    coin = params.text("currency") or None
    kind = params.text("type") or None
    start = params.integer("startTime", low=0)
    end = params.integer("endTime", low=0)
    if start is None and end is None:
        start, end = ctx.now_ms - DAY_MS, ctx.now_ms
    else:
        start, end = params.window(ctx.now_ms)
    limit = params.limit(20, 50)
    cursor = params.cursor()
    if category and category not in LISTED_CATEGORIES:
        return {"list": [], "nextPageCursor": ""}
    coins: str | tuple[str, ...] | None = coin
    if category:
        # A category's rows are those of its settle coins (USDT for linear, BTC and ETH for
        # inverse): the coin's deposits and withdrawals included, as each coin has one ledger.
        settle = tuple(sorted({s.settle_coin for s in in_category(ctx.service.specs, category)
                               .values()}))
        coins = settle if coin is None else (coin,) if coin in settle else ()
    store = ctx.service.history
    page = await store.run(lambda: store.ledger_entries(
        ctx.account_id, coin=coins, kind=kind, start_ms=start, end_ms=end, limit=limit,
        cursor=cursor))
    specs = ctx.service.specs
    return {"list": [wire.ledger(r, specs.get(r.symbol)) for r in page.records],
            "nextPageCursor": page.next_cursor}


async def settlement_record(ctx: Context) -> dict[str, Any]:
    """GET /v5/asset/settlement-record: USDC session settlements (next-mechanics §3.3).

    `category=linear` (required, as Bybit's), `symbol`, a window of at most 30 days (default
    the last 30), `limit` [1, 50] default 20, `cursor`. Another category has no USDC
    contracts: an empty page.
    """
    params = ctx.params
    category = params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = params.spec(specs, required=False)
    start, end = params.window(ctx.now_ms, days=30)
    limit = params.limit(20, 50)
    cursor = params.cursor()
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    store = ctx.service.history
    page = await store.run(lambda: store.settlements(
        ctx.account_id, symbol=spec.symbol if spec else None, start_ms=start, end_ms=end,
        limit=limit, cursor=cursor))
    return wire.history_page(category, page, specs, wire.settlement_record,
                             lambda r: r.symbol in specs)


async def set_margin_mode(ctx: Context) -> dict[str, Any]:
    """POST /v5/account/set-margin-mode (same mode again: success, as Bybit)."""
    mode = ctx.params.choice("setMarginMode", MARGIN_MODES, required=True)
    engine = ctx.service.engine
    account = engine.clearing.account(ctx.account_id)
    if account is not None and account.margin_mode is mode:
        # Nothing to do, as the writer's state says: answer once that state is durable.
        await ctx.service.settled()
        return {"reasons": []}
    events = await ctx.service.submit(SetMarginMode(0, 0, ctx.account_id, mode))
    error = rejection(events)
    if error is not None:
        raise ApiError(3400045, "Set margin mode failed", {"reasons": [
            _mode_reason(events, error)]})
    return {"reasons": []}


def _mode_reason(events: list[Event], error: ApiError) -> dict[str, str]:
    """Return Bybit's `reasons[]` item for a refused switch (next-mechanics §5.1).

    The core words a reason Bybit numbers as "NNNNNNN: message" (3400000, the PM equity
    floor); any other refusal is reported under the endpoint's own code.
    """
    for event in events:
        if isinstance(event, CommandRejected):
            number, _, text = event.detail.partition(": ")
            if number.isdigit() and text:
                return {"reasonCode": number, "reasonMsg": text}
            return {"reasonCode": str(error.code), "reasonMsg": event.detail or error.message}
    return {"reasonCode": str(error.code), "reasonMsg": error.message}


async def portfolio_margin(ctx: Context) -> dict[str, Any]:
    """GET /v5/asset/portfolio-margin: the PM calculation of the account (§5.6).

    Read from the durable state. An account not in portfolio margin is refused, as Bybit
    shows the endpoint only to PM accounts.
    """
    base_coin = ctx.params.text("baseCoin") or None
    state = ctx.service.durable.engine
    clearing = state.clearing
    account = clearing.account(ctx.account_id)
    if account is None or account.margin_mode is not MarginMode.PORTFOLIO:
        raise params_error("account is not in portfolio margin mode")
    result = portfolio_margin_of(pm_legs(clearing, account), clearing.pm_params)
    risk = clearing.account_risk(account)
    im_rate = wire.rate_text_value(risk.im_rate())
    mm_rate = wire.rate_text_value(risk.mm_rate())
    wallet_figures = PmWallet(risk.total_equity_atoms, risk.wallet_atoms,
                              risk.margin_balance_atoms, max(0, risk.available_atoms),
                              risk.total_im_atoms, risk.mm_atoms, im_rate, mm_rate)
    sessions = {symbol: wire.average_price(spec, held.entry_value_atoms, held.qty_lots)
                for (symbol, _idx), held in account.positions.items()
                if held.size_lots and (spec := state.instruments[symbol]).session_settled}
    return portfolio_margin_result(result, wallet_figures, base_coin, sessions)


async def demo_apply_money(ctx: Context) -> dict[str, Any]:
    """POST /v5/account/demo-apply-money: Bybit demo trading's funds (adjustType 0 add, 1 take).

    Demo mode only: a production server answers 10005, as Bybit answers a key that lacks the
    right. The whole request is checked before anything moves (coins, amounts, the cap summed
    per coin, a take never above what can be withdrawn), then applied as one command per coin,
    all submitted before any is awaited: it applies entirely or not at all.
    """
    if not ctx.service.demo:
        raise ApiError(*DEMO_ONLY)
    adjust = ctx.params.integer("adjustType", 0, low=0, high=1)
    items = ctx.params.data.get("utaDemoApplyMoney")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise params_error("utaDemoApplyMoney must be a non-empty list")
    totals: dict[str, int] = {}
    for item in items:
        coin = item.get("coin")
        if not isinstance(coin, str) or coin not in DEMO_MAX or \
                coin not in ctx.service.engine.clearing.coins:
            raise params_error("coin invalid")
        try:
            amount = to_atoms(str(item.get("amountStr", "")))
        except ConversionError as bad:
            code, message = bybit_code(bad.code)
            raise ApiError(code, message) from bad
        if amount <= 0:
            raise params_error(f"amountStr must be in (0, {DEMO_MAX[coin]}]")
        totals[coin] = totals.get(coin, 0) + amount
    for coin, total in totals.items():
        if total > DEMO_MAX[coin] * 10**8:
            raise params_error(f"{coin}: at most {DEMO_MAX[coin]} per request")
    commands: list[Deposit | Withdraw]
    if adjust == 1:
        clearing = ctx.service.engine.clearing
        account = clearing.account(ctx.account_id)
        for coin, total in totals.items():
            if account is None or total > clearing.figures(account, coin).withdrawable_atoms:
                await ctx.service.settled()  # refused on the writer's state, once durable
                raise ApiError(*bybit_code(RejectCode.INSUFFICIENT_WALLET_BALANCE))
        commands = [Withdraw(0, 0, ctx.account_id, c, t) for c, t in totals.items()]
    else:
        commands = [Deposit(0, 0, ctx.account_id, c, t) for c, t in totals.items()]
    # gather starts every submit in order before any awaits, and a submit applies its command
    # in its first step: no other command comes between them.
    for events in await asyncio.gather(*(ctx.service.submit(c) for c in commands)):
        raise_rejection(events)
    return {}


ROUTES = [
    Endpoint("GET", "/v5/account/wallet-balance", wallet_balance, Access.READ),
    Endpoint("GET", "/v5/account/info", account_info, Access.READ),
    Endpoint("GET", "/v5/user/query-api", query_api, Access.READ),
    Endpoint("GET", "/v5/asset/coin/query-info", coin_info, Access.READ),
    Endpoint("GET", "/v5/asset/settlement-record", settlement_record, Access.READ),
    Endpoint("GET", "/v5/account/fee-rate", fee_rate, Access.READ),
    Endpoint("GET", "/v5/account/transaction-log", transaction_log, Access.READ),
    Endpoint("GET", "/v5/asset/delivery-record", delivery_record, Access.READ),
    Endpoint("POST", "/v5/account/set-margin-mode", set_margin_mode, Access.WRITE),
    Endpoint("GET", "/v5/asset/portfolio-margin", portfolio_margin, Access.READ),
    Endpoint("POST", "/v5/account/demo-apply-money", demo_apply_money, Access.WRITE),
]

