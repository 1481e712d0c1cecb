"""What happens near and past bankruptcy: liquidation prices, AMR, the risk index, takeover, ADL.

`liquidation` (the liquidation and bankruptcy prices a position shows, and auto margin
replenishment), `risk_index` (which accounts a mark move may breach), `adl_pool` (the
insurance pool's ADL triggers) and `takeover` (the liquidation engine: takeover at
bankruptcy, the close in the book, the insurance fund, ADL).
"""
