"""A pybit WebSocket callback for tests: collects messages and waits for one, or for rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Inbox:
    """Collects callback messages; waits for a message, or for the rows of all of them."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append(message)

    def rows(self) -> list[dict[str, Any]]:
        """Every `data` row received so far, in order."""
        with self.lock:
            return [row for m in self.messages for row in m["data"]]

    def wait(self, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 10) -> dict[str, Any]:
        """Return the first message that satisfies `predicate`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for message in self.messages:
                    if predicate(message):
                        return message
            time.sleep(0.02)
        raise AssertionError(f"no matching message; got {[m.get('topic') for m in self.messages]}")

    def wait_rows(self, predicate: Callable[[list[dict[str, Any]]], bool],
                  timeout: float = 10) -> list[dict[str, Any]]:
        """Return all rows once they satisfy `predicate`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.rows()
            if predicate(rows):
                return rows
            time.sleep(0.02)
        raise AssertionError(f"no match in {self.rows()}")
