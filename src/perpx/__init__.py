"""perpx: an open-source USDT-perpetual futures exchange with Bybit V5's rules and API.

The public facade is `perpx.Exchange` (see `perpx.exchange`): the whole exchange in-process.
"""

from perpx.exchange import Exchange

__version__ = "0.1.0"

__all__ = ["Exchange", "__version__"]
