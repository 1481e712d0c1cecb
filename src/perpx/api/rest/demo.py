"""POST /perpx/demo/account: a new demo account and key for a browser (a perpx extension).

Bybit's site opens a demo account in one click; perpx's web page does the same where the
server runs in demo mode (`perpx serve` without --production). The route makes a key on a new
account with the demo key's funds (credited on the key's first signed request, as for every
key with demo funds) and answers its secret once, to the caller only. It does not exist in
production mode (10005, as demo-apply-money). It is public, so the per-address throttle of
public endpoints applies, and on top the key limiter (`api/ratelimit.py`, shared by the
gateways on a machine) allows `PER_SECOND` new accounts per second for the whole server,
so a script cannot grow the key table faster than that (10006 over it). The path is
outside `/v5`: no Bybit client mistakes it for Bybit's.
"""

from __future__ import annotations

from typing import Any

from perpx.api.context import Access, Context, Endpoint
from perpx.api.keys import DEMO_FUNDS
from perpx.bybit.errors import ApiError

PATH = "/perpx/demo/account"
NOTE = "web demo"  # `perpx keys list` tells these keys from the operator's
PER_SECOND = 2
LIMITER_KEY = "perpx:demo-account"  # not a key: API keys are 18 letters and digits
PRODUCTION = (10005, "Permission denied: demo accounts are for demo mode only")


async def account(ctx: Context) -> dict[str, Any]:
    """Create a demo account and its key; answer the key, its secret and the account id."""
    if not ctx.service.demo:
        raise ApiError(*PRODUCTION)
    server = ctx.server
    if server is not None:
        allowed, _, _ = server.limiter.hit(LIMITER_KEY, PER_SECOND, ctx.now_ms)
        if not allowed:
            raise ApiError(10006, "Too many visits. Exceeded the API Rate Limit.")
    key = ctx.keys.create(demo_funds=DEMO_FUNDS, note=NOTE)
    return {"apiKey": key.api_key, "apiSecret": key.secret, "accountId": str(key.account_id),
            "demoFunds": {"coin": "USDT", "amount": DEMO_FUNDS}}


ROUTES = [Endpoint("POST", PATH, account, Access.PUBLIC)]
