"""Orders beyond the book: admission rules, validation, reduce-only room, conditional orders.

`rules` (each admission check, written once), `validation` (a new order's checks in their
order), `closing` (reduce-only orders never exceed their position), `conditional` and
`triggers` (waiting orders and the index of their triggers), `tpsl` (the TP/SL and
trailing-stop rules) and `stops` (the trigger engine that places, changes and fires them).
"""
