"""Accounts and the money in them: wallets, positions, margin per mode, clearing, settings.

From the bottom: `positions` (a position and what a fill does to it), `risk_value` (the
records of a risk value), `accounts` (an account, and the `MarginModel` base class it holds),
`margin` (order margin, shared by every mode), `margin_model` (cross and isolated),
`clearing` (every account, and the rules that move money between them), `settings`
(leverage, margin mode, position mode, added margin). Nothing here knows orders beyond their
sums, the market, or liquidation.
"""
