"""Processes a benchmark starts and watches: a free port, start and stop, memory.

Shared by `perpx bench api` and `perpx bench ws` (their servers are `perpx serve` processes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any


def free_port() -> int:
    """Return a loopback port free at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m ARGV...` with its output piped (unbuffered), `env` added."""
    return subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 30 s; wait for the end."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_memory(pid: int) -> dict[str, float | int | None]:
    """Return the server's resident memory, now and at its peak (MB), and open descriptors."""
    figures: dict[str, float | int | None] = {"rss_mb": None, "peak_rss_mb": None, "fds": None}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    key = "rss_mb" if name == "VmRSS" else "peak_rss_mb"
                    figures[key] = round(int(value.split()[0]) / 1024, 1)
        figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # no /proc (macOS, Windows): the figures stay unknown
        pass
    return figures


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (0 without /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
