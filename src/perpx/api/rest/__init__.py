"""REST endpoints by area: market data, orders, positions, account."""
