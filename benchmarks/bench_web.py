"""The web page's two figures of issue #18: load time from a local server, and the tab's CPU
while the order book updates at the stream's rate.

A fresh `perpx serve` (demo mode, market maker on) in a temporary folder; a key made with
`perpx keys create`; headless Chromium (the OS package, driven by Playwright). Then:

1. **Page load**: `--loads` fresh tabs open `/`; navigation timing's loadEventEnd, and the time
   until the page says it is ready (instruments, ticker, chart history, streams subscribed).
2. **Book at the stream's rate**: a load thread places and cancels post-only BTCUSDT orders
   inside the top 50 levels (`--rate` requests/s), so the `orderbook.50` topic has a change
   in every 20 ms push window (its ceiling, 50 frames/s); over `--seconds` the tab counts the
   frames it received and painted, and we read its main thread's busy time (DevTools
   `TaskDuration`) and the CPU time of Chromium's renderer processes from /proc (all of the
   tab's threads: parsing, script, layout, paint, compositing).

Measurement only, nothing asserted (benchmarks/README.md). Prints a table and one JSON line.
Run: `PYTHONPATH=src .venv/bin/python benchmarks/bench_web.py` (Debian: apt-get install
chromium; pip install -e '.[dev]' for Playwright).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from perpx.api.keys import ApiKey

URL = re.compile(r"serving .*?(http://127\.0\.0\.1:\d+)")
RECV_WINDOW = "5000"
TICKS = os.sysconf("SC_CLK_TCK")


def start_server(data: Path) -> tuple[subprocess.Popen[str], str]:
    """Start `perpx serve` on a free port; return the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "perpx.cli", "serve", "--data", str(data),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1",
                                                COLUMNS="200"))
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    for line in proc.stdout:
        found = URL.search(line)
        if found:
            threading.Thread(target=lambda: [None for _ in proc.stdout or []],
                             daemon=True).start()  # keep draining its output
            return proc, found.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("perpx serve did not start")


def make_key(data: Path) -> ApiKey:
    """A key with demo funds, made the operator's way (`perpx keys create`)."""
    made = subprocess.run([sys.executable, "-m", "perpx.cli", "keys", "create", "--json",
                           "--demo-funds", "100000", "--data", str(data)],
                          check=True, capture_output=True, text=True)
    row = json.loads(made.stdout)
    return ApiKey(row["api_key"], row["api_secret"], int(row["account_id"]), False, "100000",
                  10_000, "", 0)


def signed_post(client: httpx.Client, key: ApiKey, path: str,
                body: dict[str, Any]) -> dict[str, Any]:
    payload = json.dumps(body)
    now = str(int(time.time() * 1000))
    headers = {"X-BAPI-API-KEY": key.api_key, "X-BAPI-TIMESTAMP": now,
               "X-BAPI-RECV-WINDOW": RECV_WINDOW, "Content-Type": "application/json",
               "X-BAPI-SIGN": key.sign(now + key.api_key + RECV_WINDOW + payload)}
    return dict(client.post(path, content=payload, headers=headers).json())


def churn(url: str, key: ApiKey, rate: float, stop: threading.Event, sent: list[int]) -> None:
    """Place and cancel post-only bids 1..40 ticks under the best bid, `rate` requests/s."""
    with httpx.Client(base_url=url, timeout=10) as client:
        book = client.get("/v5/market/orderbook", params={"category": "linear",
                                                           "symbol": "BTCUSDT"}).json()
        top = float(book["result"]["b"][0][0])
        step, n, resting = 1.0 / rate, 0, []
        next_at = time.monotonic()
        while not stop.is_set():
            if len(resting) < 20:
                price = f"{top - 0.1 * (1 + n % 40):.1f}"
                reply = signed_post(client, key, "/v5/order/create", {
                    "category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                    "orderType": "Limit", "qty": "0.001", "price": price,
                    "timeInForce": "PostOnly"})
                if reply["retCode"] == 0:
                    resting.append(reply["result"]["orderId"])
            else:
                signed_post(client, key, "/v5/order/cancel", {
                    "category": "linear", "symbol": "BTCUSDT", "orderId": resting.pop(0)})
            n += 1
            sent[0] = n
            next_at += step
            time.sleep(max(0.0, next_at - time.monotonic()))


def renderer_cpu_s() -> float:
    """CPU seconds used so far by this run's Chromium renderer processes (the tabs), from /proc.

    Only processes descended from this one count (other Chromiums on the machine do not).
    """
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[pid], stats[pid] = int(fields[1]), fields

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parents.get(pid, 1)
        return False

    total = 0
    for pid, fields in stats.items():
        try:
            renderer = b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if renderer and ours(pid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="book requests per second")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium on PATH (apt-get install -y chromium)")
    data = Path(tempfile.mkdtemp(prefix="perpx-web-bench-"))
    key = make_key(data)
    proc, url = start_server(data)
    stop = threading.Event()
    try:
        with sync_playwright() as play:
            browser = play.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            loads, ready = [], []
            for _ in range(args.loads):
                tab = browser.new_page(viewport={"width": 1440, "height": 900})
                start = time.monotonic()
                tab.goto(url + "/")
                tab.wait_for_selector("body[data-ready='1']", timeout=30_000)
                ready.append((time.monotonic() - start) * 1000)
                loads.append(tab.evaluate(
                    "() => performance.getEntriesByType('navigation')[0].loadEventEnd"))
                tab.close()
            tab = browser.new_page(viewport={"width": 1440, "height": 900})
            tab.goto(url + "/")
            tab.wait_for_selector("#asks tr", timeout=30_000)
            sent = [0]
            loader = threading.Thread(target=churn, args=(url, key, args.rate, stop, sent),
                                      daemon=True)
            loader.start()
            time.sleep(2)  # let the flow settle
            cdp = tab.context.new_cdp_session(tab)
            cdp.send("Performance.enable")

            def sample() -> tuple[float, float, int, int, int]:
                metrics = {m["name"]: m["value"]
                           for m in cdp.send("Performance.getMetrics")["metrics"]}
                painted = int(tab.get_attribute("#book", "data-paints") or 0)
                received = int(tab.evaluate("() => window.perpxBookFrames || 0"))
                return (float(metrics["TaskDuration"]), renderer_cpu_s(), painted, received,
                        sent[0])

            t0, before = time.monotonic(), sample()
            time.sleep(args.seconds)
            after, elapsed = sample(), time.monotonic() - t0
            stop.set()
            loader.join(timeout=10)
            browser.close()
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
    main_thread = (after[0] - before[0]) / elapsed
    renderer = (after[1] - before[1]) / elapsed
    frames = (after[3] - before[3]) / elapsed
    paints = (after[2] - before[2]) / elapsed
    requests = (after[4] - before[4]) / elapsed
    figures = {"load_ms_median": round(statistics.median(loads)), "load_ms_max": round(max(loads)),
               "ready_ms_median": round(statistics.median(ready)),
               "book_frames_per_s": round(frames, 1), "book_paints_per_s": round(paints, 1),
               "requests_per_s": round(requests, 1),
               "main_thread_cores": round(main_thread, 3), "renderer_cores": round(renderer, 3)}
    print(f"page load (loadEventEnd, {args.loads} fresh tabs): median {figures['load_ms_median']}"
          f" ms, max {figures['load_ms_max']} ms; ready (data, chart, streams): median "
          f"{figures['ready_ms_median']} ms")
    print(f"book: {frames:.1f} orderbook.50 frames/s received, {paints:.1f} paints/s "
          f"(order flow {requests:.0f} requests/s)")
    print(f"tab CPU: main thread {main_thread:.3f} of a core (TaskDuration), renderer "
          f"processes {renderer:.3f} of a core (/proc)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
