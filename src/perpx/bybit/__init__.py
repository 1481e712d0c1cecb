"""Bybit V5's words below the API: request parameters, the translator to commands, retCodes.

The REST and WebSocket gateways (`perpx.api`) and the in-process facade (`perpx.Exchange`)
speak the same words, so both import them from here; nothing in this package imports the
API or a web framework.
"""
