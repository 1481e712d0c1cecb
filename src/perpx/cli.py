"""The `perpx` command: serve, bench and (as later issues land) calc, sim and keys."""

from __future__ import annotations

import random
import time

import typer
from rich.console import Console
from rich.table import Table

import perpx
from perpx.convert import format_lots, format_ticks
from perpx.core import Engine, OrderType, PlaceOrder, Side, Trade
from perpx.core.commands import Deposit
from perpx.instruments import load_instruments

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="perpx: a USDT-perpetual futures exchange with Bybit's V5 rules.")
bench_app = typer.Typer(no_args_is_help=True, help="Measure perpx; each prints JSON last.")
app.add_typer(bench_app, name="bench")
console = Console()


@app.command()
def version() -> None:
    """Print the version."""
    console.print(perpx.__version__)


@app.command()
def serve(
    seconds: float = typer.Option(10.0, help="How long to run; 0 runs until Ctrl-C."),
    symbol: str = typer.Option("BTCUSDT", help="The symbol to trade."),
    seed: int = typer.Option(7, help="Seed of the demo order flow."),
) -> None:
    """Run the exchange engine live with a market maker and takers, showing its book.

    The Bybit V5 REST and WebSocket server is built in issue #8; until it lands this runs
    the matching engine in the terminal on the bundled instruments.
    """
    specs = {s.symbol: s for s in load_instruments()}
    if symbol not in specs:
        raise typer.BadParameter(f"unknown symbol {symbol}; known: {', '.join(sorted(specs))}")
    spec = specs[symbol]
    engine = Engine(specs.values())
    for account in (1, 2):
        engine.apply(Deposit(account, 0, account, spec.settle_coin, 10**9 * 10**8))
    rng = random.Random(seed)
    mid = {"BTCUSDT": 650_000, "ETHUSDT": 350_000, "SOLUSDT": 150_000}.get(symbol, 100_000)
    seq = 2
    trades = 0
    started = time.monotonic()
    console.print(f"perpx {perpx.__version__}: demo exchange on {symbol} "
                  f"(tick {spec.tick_size}, step {spec.qty_step}); Ctrl-C stops")
    try:
        while seconds <= 0 or time.monotonic() - started < seconds:
            for _ in range(200):
                seq += 1
                mid += rng.choice((-1, 0, 0, 1))
                side = rng.choice((Side.BUY, Side.SELL))
                qty = rng.randint(spec.min_order_qty_lots, spec.min_order_qty_lots * 50)
                if rng.random() < 0.8:
                    away = rng.randint(1, 30)
                    price = mid - away if side is Side.BUY else mid + away
                    command = PlaceOrder(seq, int(time.time() * 1000), 1, symbol, side,
                                         OrderType.LIMIT, qty * 10, price)
                else:
                    command = PlaceOrder(seq, int(time.time() * 1000), 2, symbol, side,
                                         OrderType.MARKET, qty)
                trades += sum(type(e) is Trade for e in engine.apply(command))
            show_book(engine, symbol, trades)
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopped")


def show_book(engine: Engine, symbol: str, trades: int) -> None:
    """Print the top of the book."""
    spec = engine.instruments[symbol]
    bids, asks = engine.books[symbol].depth(5)
    table = Table(title=f"{symbol} book, {trades:,} trades so far, "
                        f"last {format_ticks(spec, engine.last_price.get(symbol, 0))}")
    table.add_column("bid qty", justify="right")
    table.add_column("bid", justify="right")
    table.add_column("ask", justify="right")
    table.add_column("ask qty", justify="right")
    for i in range(5):
        bid = bids[i] if i < len(bids) else None
        ask = asks[i] if i < len(asks) else None
        table.add_row(
            format_lots(spec, bid[1]) if bid else "", format_ticks(spec, bid[0]) if bid else "",
            format_ticks(spec, ask[0]) if ask else "", format_lots(spec, ask[1]) if ask else "",
        )
    console.print(table)


@bench_app.command("match")
def bench_match_command(
    events: int = typer.Option(1_000_000, help="Events in the standard stream."),
    seed: int = typer.Option(42, help="Seed of the stream generator."),
    peers: bool = typer.Option(True, help="Also run the PyPI order-book peers."),
) -> None:
    """Replay the standard order stream through perpx, the baseline and the PyPI peers."""
    from perpx.bench.match import bench_match

    bench_match(events, seed, with_peers=peers, echo=typer.echo)


def main() -> None:
    """Entry point of the console script."""
    app()
