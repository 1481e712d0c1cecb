"""Trading (§5): create, amend, cancel, cancel-all, batches, open orders, history, executions.

Order endpoints acknowledge: retCode 0 with the order id means the engine accepted the order
(a conditional one as Untriggered); fills, triggers and cancels that follow are visible on the
order object. A synchronous refusal by the core is answered with its Bybit code and nothing
changes. Parameters become commands in `perpx.bybit.translate` (shared with `/v5/trade` and
`perpx.Exchange`).
"""

from __future__ import annotations

from typing import Any

from perpx.api import wire
from perpx.api.context import Access, Context, Endpoint, raise_rejection, rejection
from perpx.bybit import stops, translate
from perpx.bybit.errors import ApiError, params_error
from perpx.bybit.params import LISTED_CATEGORIES, Params, in_category, request_specs
from perpx.core.commands import AmendOrder, CancelOrder
from perpx.core.events import (
    ConditionalOrderAccepted,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderDeactivated,
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


def _ids(ctx: Context, order_id: int | None, link: str) -> dict[str, str]:
    found = ctx.service.projector.find(ctx.account_id, order_id, link)
    if found is not None:
        return {"orderId": str(found.order_id), "orderLinkId": found.order_link_id}
    return {"orderId": str(order_id or ""), "orderLinkId": link}


async def amend(ctx: Context) -> dict[str, Any]:
    """POST /v5/order/amend."""
    command = _amend_command(ctx, ctx.params,
                             translate.category_specs(ctx.params, ctx.service.specs))
    events = await ctx.service.submit(command)
    raise_rejection(events)
    return _ids(ctx, command.order_id, command.order_link_id)


def _cancel_command(ctx: Context, params: Params, specs: translate.Specs) -> CancelOrder:
    return translate.cancel(ctx.account_id, params, specs)


def _cancelled_ids(ctx: Context, command: CancelOrder, events: list[Event]) -> dict[str, str]:
    """Return the ids of the order a successful `command` cancelled, from its outcome.

    The core ends the order it names first (`OrderCancelled` or `OrderDeactivated`; any
    attached leg or pair it takes along comes after), found by `order_id` or, without one,
    by the link id of the account's one open order holding it: so by link, the first such
    event's id and the command's link; by id, the id and the link its record holds, read
    by id after the submit (exact: ids are never reused, and the submit returned once its
    seq is shown here). Nothing is read before the submit, so the request needs no
    catch-up wait (`Endpoint.reads_state`); by link, reading the projection after the
    cancel would find an older closed order of the same link first.
    """
    if command.order_id is not None:
        return _ids(ctx, command.order_id, command.order_link_id)
    for event in events:
        if isinstance(event, (OrderCancelled, OrderDeactivated)):
            return {"orderId": str(event.order_id), "orderLinkId": command.order_link_id}
    raise ApiError(10016, "Internal system error.")


async def cancel(ctx: Context) -> dict[str, Any]:
    """POST /v5/order/cancel."""
    command = _cancel_command(ctx, ctx.params,
                              translate.category_specs(ctx.params, ctx.service.specs))
    events = await ctx.service.submit(command)
    raise_rejection(events)
    return _cancelled_ids(ctx, command, events)


def _symbols(ctx: Context, params: Params, specs: translate.Specs) -> list[str]:
    """Return the symbols a request names by `symbol`, `baseCoin` or `settleCoin` (one required)."""
    return translate.cancel_symbols(params, specs)


async def cancel_all(ctx: Context) -> dict[str, Any]:
    """POST /v5/order/cancel-all."""
    commands = translate.cancel_all(ctx.account_id, ctx.params, ctx.service.specs)
    links = {o.order_id: o.order_link_id for o in ctx.service.projector.open_orders(
        ctx.account_id)}
    engine = ctx.service.engine  # the writer's: which symbols need a command at all
    cancelled: list[dict[str, str]] = []
    skipped = False
    for command in commands:
        if not engine.orders_of(ctx.account_id, command.symbol) and \
                not engine.stops.waiting.of(ctx.account_id, command.symbol):
            skipped = True
            continue
        events = await ctx.service.submit(command)
        raise_rejection(events)
        cancelled += [{"orderId": str(e.order_id), "orderLinkId": links.get(e.order_id, "")}
                      for e in events if isinstance(e, (OrderCancelled, OrderDeactivated))
                      and e.account_id == ctx.account_id]
    if skipped:
        # "Nothing to cancel" came from the writer's state: answer once it is durable.
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


async def create_batch(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /v5/order/create-batch."""
    results, codes = [], []
    category, specs, items = _batch_items(ctx)
    for params in items:
        try:
            command = translate.place(ctx.account_id, params, specs)
            events = await ctx.service.submit(command)
            accepted = _accepted(events)
            results.append({"category": category, "symbol": accepted.symbol,
                            "orderId": str(accepted.order_id),
                            "orderLinkId": accepted.order_link_id,
                            "createAt": str(accepted.ts_ms)})
            codes.append({"code": 0, "msg": "OK"})
        except ApiError as error:
            results.append({"category": category, "symbol": params.text("symbol"),
                            "orderId": "", "orderLinkId": params.text("orderLinkId"),
                            "createAt": ""})
            codes.append({"code": error.code, "msg": error.message})
    return {"list": results}, {"list": codes}


async def _each(ctx: Context, build: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    results, codes = [], []
    category, specs, items = _batch_items(ctx)
    for params in items:
        try:
            command = build(ctx, params, specs)
            before = ctx.service.projector.find(ctx.account_id, command.order_id,
                                                command.order_link_id)
            events = await ctx.service.submit(command)
            error = rejection(events)
            if error is not None:
                raise error
            ids = ({"orderId": str(before.order_id), "orderLinkId": before.order_link_id}
                   if before is not None else _ids(ctx, command.order_id,
                                                   command.order_link_id))
            results.append({"category": category, "symbol": command.symbol, **ids})
            codes.append({"code": 0, "msg": "OK"})
        except ApiError as error:
            results.append({"category": category, "symbol": params.text("symbol"),
                            "orderId": params.text("orderId"),
                            "orderLinkId": params.text("orderLinkId")})
            codes.append({"code": error.code, "msg": error.message})
    return {"list": results}, {"list": codes}


async def amend_batch(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /v5/order/amend-batch."""
    return await _each(ctx, _amend_command)


async def cancel_batch(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /v5/order/cancel-batch."""
    return await _each(ctx, _cancel_command)


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
    # Create, amend and cancel read nothing before they submit but the contract (`Endpoint`;
    # cancel's answer comes from its outcome, `_cancelled_ids`); the batches and cancel-all
    # read more.
    Endpoint("POST", "/v5/order/create", create, Access.WRITE, reads_state=False),
    Endpoint("POST", "/v5/order/amend", amend, Access.WRITE, reads_state=False),
    Endpoint("POST", "/v5/order/cancel", cancel, Access.WRITE, reads_state=False),
    Endpoint("POST", "/v5/order/cancel-all", cancel_all, Access.WRITE),
    Endpoint("POST", "/v5/order/create-batch", create_batch, Access.WRITE),
    Endpoint("POST", "/v5/order/amend-batch", amend_batch, Access.WRITE),
    Endpoint("POST", "/v5/order/cancel-batch", cancel_batch, Access.WRITE),
    Endpoint("GET", "/v5/order/realtime", realtime, Access.READ),
    Endpoint("GET", "/v5/order/history", history, Access.READ),
    Endpoint("GET", "/v5/execution/list", executions, Access.READ),
]
