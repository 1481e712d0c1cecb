"""Trading (§5): create, amend, cancel, cancel-all, batches, open orders, history, executions.

Order endpoints acknowledge: retCode 0 with the order id means the engine accepted the order
(a conditional one as Untriggered); fills, triggers and cancels that follow are visible on the
order object. A synchronous refusal by the core is answered with its Bybit code and nothing
changes. Parameters become commands in `perpx.bybit.translate` (shared with `/v5/trade` and
`perpx.Exchange`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from perpx.api import wire
from perpx.api.context import Access, Context, Endpoint, raise_rejection
from perpx.bybit import stops, translate
from perpx.bybit.errors import ApiError, params_error
from perpx.bybit.params import LISTED_CATEGORIES, Params, in_category, request_specs
from perpx.core.commands import AmendOrder, CancelAllOrders, CancelOrder, PlaceOrder
from perpx.core.events import (
    ConditionalOrderAccepted,
    ConditionalOrderAmended,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderDeactivated,
    TpSlAttached,
)
from perpx.store.history import decode_cursor, encode_cursor
from perpx.store.records import OrderRecord, is_final

STATUS_NAMES = {name: number for number, name in wire.STATUSES.items()}
BATCH_MAX = 20


def _accepted(events: list[Event]) -> OrderAccepted | ConditionalOrderAccepted:
    raise_rejection(events)
    for event in events:
        if isinstance(event, (OrderAccepted, ConditionalOrderAccepted)):
            return event
    raise ApiError(10016, "Internal system error.")


async def create(ctx: Context) -> dict[str, Any]:
    """POST /v5/order/create."""
    specs = translate.category_specs(ctx.params, ctx.service.specs)
    command = translate.place(ctx.account_id, ctx.params, specs)
    accepted = _accepted(await ctx.service.submit(command))
    return {"orderId": str(accepted.order_id), "orderLinkId": accepted.order_link_id}


def _amend_command(ctx: Context, params: Params, specs: translate.Specs) -> AmendOrder:
    return translate.amend(ctx.account_id, params, specs)


# Order ids a history query names at most (an SQL statement's parameters are bounded).
HISTORY_IDS_MAX = 500


async def _links(ctx: Context, order_ids: Iterable[int]) -> dict[int, str]:
    """Return the link id of each of the account's orders `order_ids` that exists, by id.

    Read after the command that named them, from the order's record: the read side's
    (`Projector.find`: every open order, and the newest `RECENT_CLOSED_PER_ACCOUNT` closed
    ones of the account), else the history tables' (every final order, durable; a query
    waits until they hold the seq the read side shows, `History.run`). Exact either way: an
    order's id is never reused and its link never changes. Only an order closed and pushed
    out of the read side's recent ones (a cancel-all of more than 500 orders, or other
    commands closing as many since) costs a query, one for up to `HISTORY_IDS_MAX`.
    """
    find = ctx.service.projector.find
    links: dict[int, str] = {}
    missing: list[int] = []
    for order_id in dict.fromkeys(order_ids):  # each once (an amend may name one twice)
        found = find(ctx.account_id, order_id, "")
        if found is not None:
            links[order_id] = found.order_link_id
        else:
            missing.append(order_id)
    store = ctx.service.history
    for start in range(0, len(missing), HISTORY_IDS_MAX):
        chunk = tuple(missing[start:start + HISTORY_IDS_MAX])
        page = await store.run(functools.partial(store.orders, ctx.account_id,
                                                 order_id=chunk, limit=len(chunk)))
        links.update((record.order_id, record.order_link_id) for record in page.records)
    return links


# The events that name an order an amend or cancel changed: the one it names, and any other
# it takes along (a pair leg, an attached TP/SL, a position's TP/SL resized).
_NAMING = (OrderCancelled, OrderDeactivated, OrderAmended, ConditionalOrderAmended, TpSlAttached)
# The events that name an order a cancel ended.
_ENDING = (OrderCancelled, OrderDeactivated)


async def _named_ids(ctx: Context, command: AmendOrder | CancelOrder,
                     events: list[Event]) -> dict[str, str]:
    """Return the ids of the order a successful amend or cancel `command` named, from its outcome.

    The core finds the order by `order_id` or, without one, by the link id of the account's
    one open order holding it. By id: the id and the link of its record (`_links`). By link:
    the first order the outcome names (`_NAMING`; a cancel names its order first, an amend
    of a waiting leg names the other leg of its pair first) whose record holds the link.
    Nothing is read before the submit, so neither the single requests nor the batches need
    the catch-up wait (`Endpoint.reads_state`); reading by link after the submit would find
    an older closed order of the same link first. Cancel-all answers by the same rule
    (`_ended`).
    """
    if command.order_id is not None:
        order_id = command.order_id
        link = (await _links(ctx, (order_id,))).get(order_id, command.order_link_id)
        return {"orderId": str(order_id), "orderLinkId": link}
    link = command.order_link_id
    named = [event.order_id for event in events
             if isinstance(event, _NAMING) and event.account_id == ctx.account_id]
    if not named:
        raise ApiError(10016, "Internal system error.")
    links = await _links(ctx, named)
    chosen = next((order_id for order_id in named if links.get(order_id) == link), named[0])
    return {"orderId": str(chosen), "orderLinkId": link}


async def _ended(ctx: Context, outcomes: Iterable[list[Event]]) -> list[dict[str, str]]:
    """Return the ids of each order of the account that `outcomes` ended, in their order.

    Cancel-all's list: each cancelled order (`_ENDING`) with its record's link (`_links`).
    """
    ended = [event.order_id for events in outcomes for event in events
             if isinstance(event, _ENDING) and event.account_id == ctx.account_id]
    links = await _links(ctx, ended)
    return [{"orderId": str(order_id), "orderLinkId": links.get(order_id, "")}
            for order_id in ended]


async def amend(ctx: Context) -> dict[str, Any]:
    """POST /v5/order/amend."""
    command = _amend_command(ctx, ctx.params,
                             translate.category_specs(ctx.params, ctx.service.specs))
    events = await ctx.service.submit(command)
    raise_rejection(events)
    return await _named_ids(ctx, command, events)


def _cancel_command(ctx: Context, params: Params, specs: translate.Specs) -> CancelOrder:
    return translate.cancel(ctx.account_id, params, specs)


async def cancel(ctx: Context) -> dict[str, Any]:
    """POST /v5/order/cancel."""
    command = _cancel_command(ctx, ctx.params,
                              translate.category_specs(ctx.params, ctx.service.specs))
    events = await ctx.service.submit(command)
    raise_rejection(events)
    return await _named_ids(ctx, command, events)


def _symbols(ctx: Context, params: Params, specs: translate.Specs) -> list[str]:
    """Return the symbols a request names by `symbol`, `baseCoin` or `settleCoin` (one required)."""
    return translate.cancel_symbols(params, specs)


def _holds_orders(ctx: Context, command: CancelAllOrders) -> bool:
    """Whether the account has orders, resting or waiting, on the command's symbol."""
    engine = ctx.service.engine
    return bool(engine.orders_of(ctx.account_id, command.symbol)
                or engine.stops.waiting.of(ctx.account_id, command.symbol))


async def cancel_all(ctx: Context) -> dict[str, Any]:
    """POST /v5/order/cancel-all, by `symbol`, `baseCoin` or `settleCoin`.

    The venue's state (`Venue.engine`, its contracts) is read first only as a hint: the
    symbols where it shows orders of the account get their `CancelAllOrders`, submitted
    together. Once they are durable and shown, the venue shows every write acknowledged
    before the request (each precedes them in the journal), and every contract listed by
    then: it is read again, and the symbols it now shows orders on (a gateway's follower
    lagged, or a contract listed since) get theirs. Without a first submit that wait is the
    request's own (`Context.catch_up`; by symbol, as by coin: the request names no contract
    the dispatcher waits for, `Endpoint.by_coin`). A symbol still skipped is an answer
    drawn from the state read last, so it is given once the writer's state is durable too
    (`settled`). The list names what the outcomes cancelled, symbol by symbol in the
    order the contracts are listed (`_ended`).
    """
    account_id, params = ctx.account_id, ctx.params
    commands = translate.cancel_all(account_id, params, ctx.service.specs)
    outcomes: dict[str, list[Event]] = {}
    for look in range(2):
        if look:
            if not outcomes:
                await ctx.catch_up()
            commands = translate.cancel_all(account_id, params, ctx.service.specs)
        wanted = [command for command in commands
                  if command.symbol not in outcomes and _holds_orders(ctx, command)]
        if wanted:
            for command, events in zip(wanted, await ctx.service.submit_all(wanted),
                                       strict=True):
                raise_rejection(events)
                outcomes[command.symbol] = events
    cancelled = await _ended(ctx, (outcomes[command.symbol] for command in commands
                                   if command.symbol in outcomes))
    if len(outcomes) < len(commands):
        await ctx.service.settled()
    return {"list": cancelled, "success": "1"}


def _batch_items(ctx: Context) -> tuple[str, translate.Specs, list[Params]]:
    """Return the batch's category, its instruments and its items (the body names the category)."""
    specs = translate.category_specs(ctx.params, ctx.service.specs)
    items = ctx.params.data.get("request")
    if not isinstance(items, list) or not items:
        raise params_error("request must be a non-empty list")
    if len(items) > BATCH_MAX:
        raise params_error(f"at most {BATCH_MAX} orders per batch")
    if not all(isinstance(item, dict) for item in items):
        raise params_error("request items must be objects")
    return ctx.params.category(), specs, [Params(item) for item in items]


C = TypeVar("C", PlaceOrder, AmendOrder, CancelOrder)


async def _batch(ctx: Context, build: Callable[[Context, Params, translate.Specs], C],
                 answer: Callable[[Context, C, list[Event]], Awaitable[dict[str, str]]],
                 failed: Callable[[Params], dict[str, str]]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a batch: each item's command in request order, each answered on its own.

    All items' commands are built first, then submitted together (`Venue.submit_all`:
    applied in request order, sharing group commits). An item refused before the core (its
    parameters) or by it gets its code in `retExtInfo` and `failed(params)` in the list;
    the others `answer(ctx, command, events)`, from their own outcome.
    """
    category, specs, items = _batch_items(ctx)
    built: list[C | ApiError] = []
    for params in items:
        try:
            built.append(build(ctx, params, specs))
        except ApiError as error:
            built.append(error)
    outcomes = iter(await ctx.service.submit_all(
        [command for command in built if not isinstance(command, ApiError)]))
    results, codes = [], []
    for params, command in zip(items, built, strict=True):
        try:
            if isinstance(command, ApiError):
                raise command
            results.append({"category": category,
                            **await answer(ctx, command, next(outcomes))})
            codes.append({"code": 0, "msg": "OK"})
        except ApiError as error:
            results.append({"category": category, **failed(params)})
            codes.append({"code": error.code, "msg": error.message})
    return {"list": results}, {"list": codes}


def _place_command(ctx: Context, params: Params, specs: translate.Specs) -> PlaceOrder:
    return translate.place(ctx.account_id, params, specs)


async def _created(ctx: Context, command: PlaceOrder,
                   events: list[Event]) -> dict[str, str]:
    accepted = _accepted(events)
    return {"symbol": accepted.symbol, "orderId": str(accepted.order_id),
            "orderLinkId": accepted.order_link_id, "createAt": str(accepted.ts_ms)}


def _not_created(params: Params) -> dict[str, str]:
    return {"symbol": params.text("symbol"), "orderId": "",
            "orderLinkId": params.text("orderLinkId"), "createAt": ""}


async def _changed(ctx: Context, command: AmendOrder | CancelOrder,
                   events: list[Event]) -> dict[str, str]:
    raise_rejection(events)
    return {"symbol": command.symbol, **await _named_ids(ctx, command, events)}


def _not_changed(params: Params) -> dict[str, str]:
    return {"symbol": params.text("symbol"), "orderId": params.text("orderId"),
            "orderLinkId": params.text("orderLinkId")}


async def create_batch(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /v5/order/create-batch."""
    return await _batch(ctx, _place_command, _created, _not_created)


async def amend_batch(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /v5/order/amend-batch."""
    return await _batch(ctx, _amend_command, _changed, _not_changed)


async def cancel_batch(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /v5/order/cancel-batch."""
    return await _batch(ctx, _cancel_command, _changed, _not_changed)


def _page(orders: list[OrderRecord], limit: int, cursor: str) -> tuple[list[OrderRecord], str]:
    """Newest-first orders after `cursor`, at most `limit`, and the next cursor."""
    if cursor:
        below = decode_cursor(cursor)
        orders = [o for o in orders if o.order_id < below]
    page = orders[:limit]
    more = len(orders) > limit
    return page, encode_cursor(page[-1].order_id) if more else ""


async def realtime(ctx: Context) -> dict[str, Any]:
    """GET /v5/order/realtime: open orders, recent closed ones, any recent one by id."""
    params = ctx.params
    category = params.category()
    order_id = _order_id_or_none(params)
    link = params.text("orderLinkId")
    limit = params.limit(20, 50)
    cursor = params.text("cursor")
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    specs = in_category(ctx.service.specs, category)
    symbols = set(_symbols(ctx, params, specs)) if (order_id is None and not link) else None
    service = ctx.service
    if order_id is not None or link:
        found = service.projector.find(ctx.account_id, order_id, link)
        if found is None:
            stored = await service.history.run(lambda: service.history.orders(
                ctx.account_id, order_id=order_id, order_link_id=link or None, limit=1))
            chosen = stored.records
        else:
            chosen = [found]
        symbol = params.text("symbol")
        chosen = [o for o in chosen if o.symbol in specs and (not symbol or o.symbol == symbol)]
        return {"category": category, "list": [wire.order(o, specs[o.symbol])
                                               for o in chosen], "nextPageCursor": ""}
    wanted = stops.list_filter(params)
    if params.integer("openOnly", 0, low=0, high=2) == 1:
        pool = service.projector.recent_closed(ctx.account_id)
    else:
        pool = service.projector.open_orders(ctx.account_id)
    assert symbols is not None
    page, next_cursor = _page([o for o in pool if o.symbol in symbols and wanted(o)], limit,
                              cursor)
    return {"category": category, "list": [wire.order(o, specs[o.symbol]) for o in page],
            "nextPageCursor": next_cursor}


def _order_id_or_none(params: Params) -> int | None:
    try:
        return translate.order_id(params)
    except ApiError:
        return -1  # a malformed id finds nothing


async def history(ctx: Context) -> dict[str, Any]:
    """GET /v5/order/history: final orders, newest first."""
    params = ctx.params
    category = params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = params.spec(specs, required=False)
    order_id = _order_id_or_none(params)
    link = params.text("orderLinkId") or None
    status_name = params.text("orderStatus")
    status = None
    if status_name:
        if status_name not in STATUS_NAMES:
            raise params_error("orderStatus invalid")
        status = STATUS_NAMES[status_name]
    start, end = params.window(ctx.now_ms)
    limit = params.limit(20, 50)
    cursor = params.cursor()
    wanted = stops.list_filter(params)
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    store = ctx.service.history
    page = await store.run(lambda: store.orders(
        ctx.account_id, symbol=spec.symbol if spec else tuple(specs), order_id=order_id,
        order_link_id=link, status=status, start_ms=start, end_ms=end, limit=limit,
        cursor=cursor))
    return wire.history_page(category, page, specs, wire.order,
                             lambda o: is_final(o.status) and wanted(o))


async def executions(ctx: Context) -> dict[str, Any]:
    """GET /v5/execution/list: fills, funding and bust trades, newest first."""
    params = ctx.params
    category = params.category()
    specs = request_specs(ctx.service.specs, category)
    spec = params.spec(specs, required=False)
    order_id = _order_id_or_none(params)
    link = params.text("orderLinkId") or None
    exec_type = params.text("execType") or None
    start, end = params.window(ctx.now_ms)
    limit = params.limit(50, 100)
    cursor = params.cursor()
    if category not in LISTED_CATEGORIES:
        return wire.empty_page(category)
    store = ctx.service.history
    page = await store.run(lambda: store.executions(
        ctx.account_id, symbol=spec.symbol if spec else tuple(specs), order_id=order_id,
        order_link_id=link, exec_type=exec_type, start_ms=start, end_ms=end, limit=limit,
        cursor=cursor))
    return wire.history_page(category, page, specs, wire.execution)


ROUTES = [
    # The writes read nothing before they submit but the contracts they name (`Endpoint`):
    # amend's and cancel's answers, single or batch, come from their outcome (`_named_ids`),
    # and cancel-all, by symbol or by coin, waits itself only when it finds nothing to cancel
    # (`cancel_all`).
    Endpoint("POST", "/v5/order/create", create, Access.WRITE, reads_state=False),
    Endpoint("POST", "/v5/order/amend", amend, Access.WRITE, reads_state=False),
    Endpoint("POST", "/v5/order/cancel", cancel, Access.WRITE, reads_state=False),
    Endpoint("POST", "/v5/order/cancel-all", cancel_all, Access.WRITE, reads_state=False,
             by_coin=True),
    Endpoint("POST", "/v5/order/create-batch", create_batch, Access.WRITE,
             reads_state=False),
    Endpoint("POST", "/v5/order/amend-batch", amend_batch, Access.WRITE, reads_state=False),
    Endpoint("POST", "/v5/order/cancel-batch", cancel_batch, Access.WRITE,
             reads_state=False),
    Endpoint("GET", "/v5/order/realtime", realtime, Access.READ),
    Endpoint("GET", "/v5/order/history", history, Access.READ),
    Endpoint("GET", "/v5/execution/list", executions, Access.READ),
]
