"""perpx: an open-source USDT-perpetual futures exchange with Bybit V5's rules and API.

The public facade is `perpx.Exchange` (see `perpx.exchange`): the whole exchange in-process.
"""

from perpx.compiled import choose_core

choose_core()  # before anything imports the core: its compiled build, or the sources

from perpx.exchange import Exchange  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Exchange", "__version__"]
