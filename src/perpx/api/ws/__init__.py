"""Bybit V5 WebSocket streams: public market data, private account topics and order entry."""
