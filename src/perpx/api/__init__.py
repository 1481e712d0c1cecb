"""The Bybit V5 surface: REST, WebSocket, authentication and the retCode mapping."""
