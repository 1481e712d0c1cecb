"""A venue's configurable parameters as one plain-data record (issue #17).

Bybit does not publish every collateral and portfolio-margin parameter, so perpx uses the
spec's decisions as defaults and lets each venue set its own. The parameters change state
(margin, liquidation, interest), so they travel as a journaled operator command,
`SetVenueParams`, carrying this record: every replica replays the same command at the same
seq and can never disagree with the writer (docs/decisions.md, "Venue parameters").

The record is ``{"collateral": collateral_record(...), "portfolioMargin":
pm_params_record(...)}``; each half has its one parser beside its class.
"""

from __future__ import annotations

from perpx.core.account.collateral import (
    CollateralTable,
    collateral_from_record,
    collateral_record,
)
from perpx.core.account.portfolio import PmParams, pm_params_from_record, pm_params_record


def venue_params_record(collateral: CollateralTable, pm_params: PmParams) -> dict[str, object]:
    """Return a venue's collateral table and PM parameters as one plain-data record."""
    return {"collateral": collateral_record(collateral),
            "portfolioMargin": pm_params_record(pm_params)}


def venue_params_from_record(record: object) -> tuple[CollateralTable, PmParams]:
    """Parse `venue_params_record`'s data; ValueError naming the first fault if malformed."""
    if not isinstance(record, dict) or set(record) != {"collateral", "portfolioMargin"}:
        raise ValueError("venue params: expected exactly collateral and portfolioMargin")
    return (collateral_from_record(record["collateral"]),
            pm_params_from_record(record["portfolioMargin"]))
