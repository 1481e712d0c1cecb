"""perpx: an open-source USDT-perpetual futures exchange with Bybit V5's rules and API."""

__version__ = "0.1.0"
