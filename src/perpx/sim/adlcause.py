"""Why each ADL step happened, derived from a takeover's events (issue #19, report side only).

The core's `Deleveraged` event says what was closed, not why; the core is left as it is (its
events and behaviour digest unchanged), and the cause is read from the events around it.
A takeover is the run of events from a `Liquidated` to the next one (or the command's end);
its ADL steps share one cause (``perpx.core.risk.takeover._take_over``):

- ``fund``: the insurance fund could not pay for a worse close: its close's limit price was
  the one its balance (less the fee reserve of two closes) allowed
  (`Contract.loss_limit_price_ticks` of that spare; the bankruptcy price itself when nothing
  is spare) — a larger fund would have closed deeper in the book (ADL condition 2's side of
  the takeover);
- ``pool``: the ADL pool's drawdown trigger (condition 1, `perpx.core.risk.adl_pool`): the fund
  sent no close (the symbol was triggered: takeovers go to ADL directly), or its close was
  cut short of its balance's limit while the symbol stands triggered after the command (the
  pool's loss headroom bounded it);
- ``book``: the fund's close was bounded by neither (the order price band), and the book held
  too little depth within it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from perpx.core import Engine
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Command
from perpx.core.events import (
    BalanceChanged,
    Deleveraged,
    Event,
    Liquidated,
    OrderAccepted,
)
from perpx.core.instruments import InstrumentSpec

CAUSES = ("fund", "pool", "book")
CAUSE_TEXT = {"fund": "fund exhausted (its balance bounded the close)",
              "pool": "ADL-pool drawdown trigger (condition 1)",
              "book": "book could not absorb (within the price band)"}


@dataclass(slots=True)
class AdlCauses:
    """Observer: counts ADL steps by cause and keeps (ts_ms, cause, qty_lots) of each."""

    spec: InstrumentSpec
    pool_triggered: Callable[[str], bool] = lambda symbol: False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))
    steps: list[tuple[int, str, int]] = field(default_factory=list)
    _fund: int = 0  # the fund's balance in the settle coin, as the events moved it

    def __call__(self, command: Command, events: list[Event]) -> None:
        """Observe one applied command (the `Simulation` observer signature)."""
        coin, symbol = self.spec.settle_coin, self.spec.symbol
        taking: Liquidated | None = None
        limit: int | None = None  # the fund's close: its limit price
        spare_limit: int | None = None  # the limit the fund's balance allowed then
        pending: list[Deleveraged] = []
        for event in events:
            if isinstance(event, BalanceChanged):
                if event.account_id == INSURANCE_FUND_ID and event.coin == coin:
                    self._fund = event.balance_atoms
            elif isinstance(event, Liquidated) and event.symbol == symbol:
                self._settle(taking, limit, spare_limit, pending)
                taking, limit, spare_limit, pending = event, None, None, []
            elif (isinstance(event, OrderAccepted) and taking is not None
                  and event.account_id == INSURANCE_FUND_ID and event.symbol == symbol):
                limit, spare_limit = event.price_ticks, self._spare_limit(taking)
            elif isinstance(event, Deleveraged) and event.symbol == symbol:
                pending.append(event)
        self._settle(taking, limit, spare_limit, pending)

    def _spare_limit(self, taking: Liquidated) -> int:
        """Return the close limit the fund's balance allows now (the takeover's own rule)."""
        contract = self.spec.contract
        reserve = contract.fill_fee_atoms(taking.bust_price_ticks, 2 * taking.qty_lots,
                                          self.spec.taker_fee_rate)
        return contract.loss_limit_price_ticks(taking.side, taking.qty_lots,
                                               taking.bust_price_ticks,
                                               max(0, self._fund - reserve))

    def _settle(self, taking: Liquidated | None, limit: int | None, spare_limit: int | None,
                pending: list[Deleveraged]) -> None:
        if taking is None or not pending:
            return
        if limit is None:  # no close sent: condition 1 sends takeovers to ADL directly
            cause = "pool"
        elif limit == spare_limit:
            cause = "fund"
        elif self.pool_triggered(self.spec.symbol):
            cause = "pool"
        else:
            cause = "book"
        for step in pending:
            self.counts[cause] += 1
            self.steps.append((step.ts_ms, cause, step.qty_lots))


def watch_pool(causes: AdlCauses, engine: Engine) -> None:
    """Let `causes` ask `engine`'s ADL pool whether a symbol stands triggered (read only)."""
    pool = engine.adl_pool
    causes.pool_triggered = lambda symbol: symbol in pool.triggered
