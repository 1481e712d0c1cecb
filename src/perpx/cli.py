"""The `perpx` command: serve, bench and (as later issues land) calc, sim and keys."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

import perpx
import perpx.compiled
from perpx import calculator
from perpx.config import Config, ConfigError, ServeSettings, load_config
from perpx.convert import ConversionError
from perpx.core.instruments import InstrumentSpec
from perpx.instruments import bundled_instruments, load_instruments, served_instruments

if TYPE_CHECKING:  # the server's modules load when a command needs them
    from perpx.api.keys import DemoKey, KeyStore
    from perpx.bus import BusPublisher
    from perpx.core.events import Event
    from perpx.roles.supervisor import Children
    from perpx.service import ExchangeService
    from perpx.store.journal import Journal
    from perpx.transport import CommandEndpoint

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="perpx: a USDT-perpetual futures exchange with Bybit's V5 rules.")
bench_app = typer.Typer(no_args_is_help=True, help="Measure perpx; each prints JSON last.")
app.add_typer(bench_app, name="bench")
calc_app = typer.Typer(no_args_is_help=True,
                       help="Trader's calculator: the exchange's own figures for an order or "
                            "position. --json prints JSON.")
app.add_typer(calc_app, name="calc")
console = Console()


@app.command()
def version() -> None:
    """Print the version and which core runs (compiled by mypyc, or pure Python, and why)."""
    console.print(perpx.__version__)
    core = "compiled by mypyc" if perpx.compiled.COMPILED else "pure Python"
    console.print(f"core: {core} ({perpx.compiled.REASON})", highlight=False, soft_wrap=True)


keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")
app.add_typer(keys_app, name="keys")
DATA_OPTION = typer.Option(Path("perpx-data"), "--data", help="The data folder.")


_SERVE = ServeSettings()  # the defaults of `perpx serve`, one place for the CLI and the file


@app.command()
def serve(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, help="TOML settings: a \\[serve] table with these options' names (and "
                   "production = true). Options given on the command line win."),
    production: bool = typer.Option(
        _SERVE.production, "--production/--demo",
        help="Production: no demo key, no demo funds, no demo-apply-money."),
    host: str = typer.Option(_SERVE.host, help="Interface to listen on."),
    port: int = typer.Option(_SERVE.port, help="TCP port of the REST (and WebSocket) API."),
    data: Path = typer.Option(_SERVE.data, "--data", help="The data folder."),
    journal: str | None = typer.Option(
        _SERVE.journal, help="Journal location: postgresql://...?schema=NAME or a SQLite path "
                             "(default DATA/journal.db)."),
    replay: Path | None = typer.Option(_SERVE.replay,
                                       help="Replay this candle CSV as the index."),
    replay_symbol: str = typer.Option(_SERVE.replay_symbol, help="The symbol --replay drives."),
    maker: bool = typer.Option(_SERVE.maker, "--maker/--no-maker",
                               help="Run the market maker."),
    snapshot_every: int = typer.Option(
        _SERVE.snapshot_every,
        help="Snapshot the state every N durable commands (0: never by count); a projector "
             "checkpoints its read side as often."),
    snapshot_seconds: float = typer.Option(
        _SERVE.snapshot_seconds,
        help="Snapshot the state every T seconds if anything changed (0: never by time)."),
    snapshot_keep: int = typer.Option(_SERVE.snapshot_keep, help="How many snapshots to keep."),
    bus: str = typer.Option(
        _SERVE.bus, help="Publish every durable batch of events on this bus: 'memory', or "
                         "nats://HOST:PORT (JetStream); default none."),
    bus_stream: str = typer.Option(_SERVE.bus_stream,
                                   help="The venue's JetStream stream name (with --bus nats://)."),
    command_socket: Path | None = typer.Option(
        _SERVE.command_socket,
        help="Also take encoded commands from API gateways on this Unix socket "
             "(default off)."),
    command_nats: str = typer.Option(
        _SERVE.command_nats,
        help="Also take encoded commands as NATS requests on perpx.<bus-stream>.commands "
             "at this nats://HOST:PORT (default off)."),
    role: str = typer.Option(
        _SERVE.role, help="all: the whole exchange in this process. standby: follow the "
                          "journal of a running leader (same --journal, --data and --port) and "
                          "take over, serving on --port, when its writer lock comes free. "
                          "projector: fold the history tables from --bus into --history. "
                          "gateway: serve the API on --port (shared, SO_REUSEPORT) with "
                          "commands to the writer at --command-socket and reads from its "
                          "--journal."),
    gateways: int = typer.Option(
        _SERVE.gateways, min=0,
        help="Start N API gateway processes on --port (SO_REUSEPORT) that forward commands "
             "to this writer over --command-socket (default DATA/command.sock); the writer "
             "then serves no HTTP itself. 0: one process serves all (the default)."),
    shared_limits: str = typer.Option(
        _SERVE.shared_limits,
        help="API gateways (--role gateway, --gateways N) share each key's rate limit with "
             "the gateways of every machine through this nats://HOST:PORT (JetStream KV); "
             "default: with those of this data folder only."),
    history: str | None = typer.Option(
        _SERVE.history, help="With --role projector: its own history tables, a SQLite file "
                             "or postgresql://...?schema=NAME. With --role gateway: the "
                             "history projector's tables it reads (default: the writer's)."),
    projectors: int = typer.Option(
        _SERVE.projectors, min=0,
        help="Start N projector processes following --bus (nats:// only), each folding the "
             "history tables into its own (DATA/projector-K/history.db, or schema "
             "<journal's>_projector_K on a PostgreSQL journal); restarted when one dies, "
             "stopped with the venue. 0: none (the default). With --gateways the writer "
             "keeps no history: projector 0's tables are what the gateways read."),
) -> None:
    """Run the exchange: Bybit V5 REST, a simulated index, a market maker, snapshots.

    Without options it is a local demo: a demo key with 100,000 USDT of demo funds (its
    secret shown once, then kept in DATA/demo-key.json) and demo-apply-money. --production
    (or production = true in --config) turns all three off. Port 0 takes any free port
    (printed). Snapshots beside the journal make a restart replay only the journal's tail.
    """
    import logging

    from perpx.api.server import run as run_loop
    from perpx.api.server import serve as serve_api
    from perpx.api.sharedlimits import running_limits

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings, file_config = serve_settings(ctx, config)
    if settings.role == "projector":
        serve_projector(settings)
        return
    if settings.role == "gateway":
        serve_gateway(settings, file_config)
        return
    if settings.role not in ("all", "standby"):
        raise typer.BadParameter(f"unknown role {settings.role!r}: use all, standby, gateway "
                                 "or projector", param_hint="--role")
    projecting = projector_children(settings)  # before anything opens: a bad flag fails fast
    if settings.gateways:
        import dataclasses

        from perpx.api.keys import private_folder

        # The gateways reach the writer on its command socket: one by default.
        socket_path = settings.command_socket or private_folder(settings.data) / "command.sock"
        settings = dataclasses.replace(settings, command_socket=socket_path)
    # The venue's configured parameters ([collateral], [portfolio_margin]), checked at load:
    # one journaled SetVenueParams at start if the recovered venue's differ (issue #17).
    venue = file_config.venue_params
    exchange = (take_over(settings, say=typer.echo, venue_params=venue)
                if settings.role == "standby"
                else open_exchange(settings, say=typer.echo, venue_params=venue))

    def ready(bound: int) -> None:
        base = f"{settings.host}:{bound}"
        # The leader record in the journal's database says where the writer serves.
        advertise = getattr(exchange.service.sequencer.journal, "advertise", None)
        if advertise is not None:
            advertise(f"http://{base}")
        through = f" through {settings.gateways} gateways" if settings.gateways else ""
        if settings.writer_only:
            through += " (writer only: history by projector 0)"
        console.print(f"perpx {perpx.__version__} serving Bybit V5 REST on "
                      f"http://{base}{through} (data: {settings.data})", soft_wrap=True)
        console.print(f"WebSocket: ws://{base}/v5/public/linear and "
                      f"ws://{base}/v5/public/inverse (public), "
                      f"ws://{base}/v5/private (private), ws://{base}/v5/trade (orders)",
                      soft_wrap=True)
        console.print("instruments: " + ", ".join(
            f"{s.symbol} (tick {s.tick_size}, step {s.qty_step})"
            for s in exchange.service.specs.values()))
        demo = exchange.demo
        if demo is None:
            console.print("production mode: no demo key, no demo funds, demo-apply-money "
                          "refused; Ctrl-C stops", soft_wrap=True)
            return
        secret = (f"demo secret:  {demo.key.secret} (shown once; kept in {demo.path})"
                  if demo.created else f"demo secret:  in {demo.path}")
        console.print(f"demo API key: {demo.key.api_key}\n{secret}\n(account "
                      f"{demo.key.account_id}, {demo.key.demo_funds} USDT demo funds); "
                      "Ctrl-C stops", soft_wrap=True)

    service = exchange.service
    if projecting is not None:
        service.process_status = lambda: {"projectors": projecting.status()}

    async def main() -> None:
        import asyncio

        endpoint = await open_endpoint(settings, service)
        # The projectors follow the bus, which needs no venue to wait for: they start with
        # it, and the venue serves without waiting for them (they catch up).
        supervising = asyncio.ensure_future(projecting.run()) if projecting else None

        async def stop_projectors() -> None:
            if supervising is not None and projecting is not None:
                supervising.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await supervising  # a failure to start one was said: stop the others
                await projecting.stop()

        # Stopped once the service has closed: a signal's shutdown closes it, then ends the
        # process (uvicorn raises the signal again), so a `finally` here may never run. The
        # writer first, then the projectors: by then the bus holds the writer's last batch,
        # and each projector folds up to the stream's end before it stops (`project`).
        service.on_closed.append(stop_projectors)
        try:
            if settings.gateways:
                await serve_through_gateways(settings, config, service, ready)
            else:
                # Serving HTTP itself, the writer shares rate limits as a gateway would.
                async with running_limits(settings.shared_limits, settings.bus_stream) as shared:
                    await serve_api(service, exchange.keys, settings.host, settings.port, ready,
                                    limits=file_config.limits, auth_limits=file_config.auth,
                                    rate_limiter=shared)
        finally:
            await stop_projectors()  # also on an error before the service started
            if endpoint is not None:
                await endpoint.close()

    from perpx.heap import freeze_loaded

    freeze_loaded()  # the recovered state: out of the cyclic GC's walks (`perpx.heap`)
    try:
        run_loop(main())
    finally:
        exchange.keys.close()
    if service.fatal is not None:
        console.print(f"[red]stopped: {service.fatal!r}[/red]")
        raise typer.Exit(1)
    console.print("stopped")


async def serve_through_gateways(settings: ServeSettings, config: Path | None,
                                 service: ExchangeService,
                                 ready: Callable[[int], None]) -> None:
    """Run the writer with `settings.gateways` gateway processes serving the API on its port.

    The writer serves no HTTP itself: taking HTTP, authentication and JSON off the writer's
    interpreter is the point of gateways (`docs/decisions.md`). It holds the port with a
    bound, never listening SO_REUSEPORT socket (so port 0 picks one port for all), starts the
    gateways, restarts one that dies, and stops them all when it stops.
    """
    import asyncio
    import signal

    from perpx.api.server import shared_port_socket
    from perpx.roles.supervisor import Children

    try:
        held = shared_port_socket(settings.host, settings.port)
    except OSError as bad:
        raise typer.BadParameter(f"cannot take port {settings.port}: {bad}",
                                 param_hint="--port") from None
    bound = held.getsockname()[1]
    assert settings.command_socket is not None
    args = ["--role", "gateway", "--command-socket", str(settings.command_socket),
            "--data", str(settings.data), "--host", settings.host, "--port", str(bound),
            "--production" if settings.production else "--demo"]
    if settings.journal:
        args += ["--journal", settings.journal]
    if settings.writer_only:  # the history tables are projector 0's, not the writer's
        args += ["--history", projector_history(settings, 0)]
    if settings.shared_limits:
        args += ["--shared-limits", settings.shared_limits, "--bus-stream", settings.bus_stream]
    if config is not None:
        args += ["--config", str(config)]  # the same [limits] and [auth]
    gateways = Children("gateway", settings.gateways, lambda number: args, say=typer.echo)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    await service.start()
    try:
        await gateways.start()
        ready(bound)
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(service.stopped.wait()),
                 asyncio.ensure_future(gateways.supervise())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
    finally:
        await gateways.stop()
        held.close()
        await service.close()


def projector_history(settings: ServeSettings, number: int) -> str:
    """Where projector `number` of `perpx serve --projectors` keeps its tables.

    Beside the venue's own: a SQLite file DATA/projector-K/history.db, or, when the journal
    is on PostgreSQL, the schema ``<journal's schema>_projector_K`` of the same database.
    """
    from perpx.api.keys import private_folder
    from perpx.store import parse_location

    if settings.journal:
        kind, dsn, schema = parse_location(settings.journal)
        if kind == "postgres":
            joiner = "&" if "?" in dsn else "?"
            return f"{dsn}{joiner}schema={schema}_projector_{number}"
    folder = private_folder(settings.data) / f"projector-{number}"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "history.db")


def projector_seq(location: str) -> int | None:
    """Return the last seq a projector committed, from its SQLite tables (None: not cheap).

    For `/perpx/status`: one read-only query on a local file. A PostgreSQL schema would
    need a connection per request, so it is left out ("").
    """
    import sqlite3

    from perpx.store import parse_location

    kind, path, _ = parse_location(location)
    if kind != "sqlite":
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=0.1)) as db:
            rows = db.execute("SELECT value FROM history_meta WHERE key = 'seq'").fetchall()
    except sqlite3.Error:  # not created yet, or busy
        return None
    return int(rows[0][0]) if rows else 0


def projector_children(settings: ServeSettings) -> Children | None:
    """Return the projector processes `settings.projectors` asks for (None for 0), unstarted.

    Refuses (BadParameter) without a NATS bus: a projector in another process can only
    follow the venue's events on JetStream. Each child gets the venue's bus, stream and
    snapshot pacing (its checkpoints) and a history of its own (`projector_history`).
    """
    from perpx.roles.supervisor import Children

    if not settings.projectors:
        return None
    if not settings.bus.startswith(("nats://", "tls://")):
        raise typer.BadParameter(
            "projectors follow the venue's events on a NATS JetStream bus: --projectors "
            "needs --bus nats://HOST:PORT", param_hint="--projectors")
    if settings.role not in ("all", "standby"):
        raise typer.BadParameter("only a writer (--role all or standby) starts projectors",
                                 param_hint="--projectors")
    places = [projector_history(settings, number) for number in range(settings.projectors)]

    def args(number: int) -> list[str]:
        return ["--role", "projector", "--bus", settings.bus, "--bus-stream",
                settings.bus_stream, "--history", places[number],
                "--snapshot-every", str(settings.snapshot_every),
                "--snapshot-seconds", str(settings.snapshot_seconds),
                "--snapshot-keep", str(settings.snapshot_keep)]

    return Children("projector", settings.projectors, args, say=typer.echo, essential=False,
                    seq_of=lambda number: projector_seq(places[number]), own_session=True)


def serve_gateway(settings: ServeSettings, file_config: Config) -> None:
    """Run the gateway role: the API over a journal follower, commands to the writer."""
    import os
    import sys

    from perpx.api.keys import KeyStore, private_folder
    from perpx.api.ratelimit import SharedRateLimiter
    from perpx.api.server import run as run_loop
    from perpx.api.server import serve as serve_api
    from perpx.api.sharedlimits import running_limits
    from perpx.heap import freeze_loaded
    from perpx.roles.gateway import GatewayService
    from perpx.store import open_history
    from perpx.transport import NatsWriterClient, UnixWriterClient, WriterClient

    if settings.command_socket is None and not settings.command_nats:
        raise typer.BadParameter("a gateway forwards commands to the writer: --command-socket "
                                 "PATH (or --command-nats URL)", param_hint="--command-socket")
    data = private_folder(settings.data)
    location = settings.journal or str(data / "journal.db")
    writer: WriterClient = (UnixWriterClient(settings.command_socket)
                            if settings.command_socket is not None
                            else NatsWriterClient(settings.command_nats, settings.bus_stream))
    where = (f"unix://{settings.command_socket}" if settings.command_socket is not None
             else settings.command_nats)

    def say(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    try:
        # Read only by this process: a history projector's tables (--history), or the
        # writer's own beside the journal.
        history = (open_history(settings.history, beside_journal=False) if settings.history
                   else open_history(location))
    except Exception as bad:
        raise typer.BadParameter(f"--history or --journal: {bad}") from bad
    keys = KeyStore(data)
    # Every gateway with this data folder counts a key's requests in one table; with
    # --shared-limits, every gateway on that NATS (any machine) shares grants instead.
    table = None if settings.shared_limits else SharedRateLimiter(data / "rate-limits.bin")

    def ready(bound: int) -> None:
        say(f"perpx {perpx.__version__} gateway serving Bybit V5 REST on "
            f"http://{settings.host}:{bound} (commands: {where})")

    async def main() -> int:
        service = GatewayService(served_instruments(), location, writer, history,
                                 demo=not settings.production, say=say,
                                 projected=bool(settings.history))
        freeze_loaded()  # the followed state: out of the cyclic GC's walks (`perpx.heap`)
        profile = os.environ.get("PERPX_PROFILE_GATEWAY")  # `perpx bench api --profile-gateway`
        if profile:
            service.profile_on_signals(f"{profile}.{os.getpid()}")
        async with running_limits(settings.shared_limits, settings.bus_stream) as shared:
            await serve_api(service, keys, settings.host, settings.port, ready,
                            limits=file_config.limits, auth_limits=file_config.auth,
                            reuse_port=True, rate_limiter=shared or table)
        return 1 if service.fatal is not None else 0

    try:
        failed = run_loop(main())
    finally:
        keys.close()
        if table is not None:
            table.close()
    if failed:
        raise typer.Exit(1)
    say("gateway stopped")


def serve_settings(ctx: typer.Context,
                   config: Path | None) -> tuple[ServeSettings, Config]:
    """Return the [serve] settings of `config` (options given win) and the whole file.

    The whole file's configuration carries its [limits] and [auth] tables.
    """
    import dataclasses

    try:
        whole = load_config(config) if config is not None else Config()
        settings = whole.serve
    except ConfigError as bad:
        raise typer.BadParameter(str(bad), param_hint="--config") from None
    # By name: typer ships its own copy of click's ParameterSource.
    sources = {f.name: ctx.get_parameter_source(f.name) for f in dataclasses.fields(settings)}
    given = {name: ctx.params[name] for name, source in sources.items()
             if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")}
    return dataclasses.replace(settings, **given), whole


def serve_projector(settings: ServeSettings) -> None:
    """Run the projector role until stopped (SIGINT/SIGTERM); exit 1 on a gap or an error."""
    import asyncio
    import signal
    import sys

    from perpx.bus import BusError, open_bus
    from perpx.heap import freeze_loaded
    from perpx.roles.projector import DRAIN_S, HistoryProjector, ProjectorError, project
    from perpx.store import open_history, parse_location

    if not settings.bus.startswith(("nats://", "tls://")):
        raise typer.BadParameter("the projector follows a JetStream bus: --bus nats://HOST:PORT",
                                 param_hint="--bus")
    if not settings.history:
        raise typer.BadParameter("the projector needs tables of its own: --history PATH or "
                                 "postgresql://...?schema=NAME", param_hint="--history")
    try:
        if parse_location(settings.history)[0] == "postgres" and "schema=" not in \
                settings.history:
            # The default schema is the writer's: a projector's tables are its own.
            raise ValueError("a PostgreSQL history needs ?schema=NAME (the projector's own)")
        history = open_history(settings.history, beside_journal=False)
    except Exception as bad:
        raise typer.BadParameter(str(bad), param_hint="--history") from bad

    def say(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    async def run() -> int:
        bus = open_bus(settings.bus, settings.bus_stream)
        assert bus is not None
        stop, hurry = asyncio.Event(), asyncio.Event()

        def stopping() -> None:
            # The first signal stops at the stream's end (`drain`); a second one at once.
            if stop.is_set():
                hurry.set()
            stop.set()

        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stopping)
        try:
            # Its read-side checkpoints are its snapshots: the same two settings pace them.
            projector = await asyncio.to_thread(
                lambda: HistoryProjector(
                    served_instruments(), history, say=say,
                    checkpoint_every=settings.snapshot_every or 2**62,
                    checkpoint_seconds=settings.snapshot_seconds or float("inf"),
                    checkpoint_keep=settings.snapshot_keep))
            freeze_loaded()  # its checkpoint's state: out of the GC's walks (`perpx.heap`)
            return await project(bus, projector, stop=stop, drain_s=DRAIN_S, hurry=hurry)
        finally:
            await bus.close()

    try:
        reached = asyncio.run(run())
    except (BusError, ProjectorError) as failure:  # a GapError is a BusError
        typer.echo(f"projector stopped: {failure}", err=True)
        raise typer.Exit(1) from None
    finally:
        history.close()
    say(f"projector stopped at seq {reached}")


@dataclass(slots=True)
class Exchange:
    """What `perpx serve` runs: the service, its keys, and (demo mode) the demo key."""

    service: ExchangeService
    keys: KeyStore
    demo: DemoKey | None


def take_over(settings: ServeSettings, say: Callable[[str], None],
              venue_params: dict[str, Any] | None = None) -> Exchange:
    """`--role standby`: follow the journal until the leader is gone, then open the exchange.

    The exchange is recovered as on any restart (snapshot + tail, read side, history); it
    must hash the same as the engine the standby followed, or nothing is served.
    """
    from perpx.api.keys import private_folder
    from perpx.standby import Standby

    data = private_folder(settings.data)
    location = settings.journal or str(data / "journal.db")
    standby = Standby(served_instruments(), location, say=say)
    try:
        takeover = standby.run()
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    assert takeover is not None  # run() without a stop condition returns only on takeover
    epoch = getattr(takeover.journal, "epoch", 0)
    say(f"standby: the leader is gone; took the journal over at seq "
        f"{takeover.engine.last_seq} as leader epoch {epoch} in "
        f"{takeover.took_s * 1000:.0f} ms")
    exchange = open_exchange(settings, say, command_journal=takeover.journal,
                             venue_params=venue_params, recorded=takeover.recorded)
    followed, recovered = takeover.engine.state_hash(), exchange.service.engine.state_hash()
    if followed != recovered:
        takeover.journal.close()
        raise RuntimeError(f"the recovered state hash {recovered} differs from the followed "
                           f"one {followed}: not serving")
    return exchange


def open_exchange(settings: ServeSettings, say: Callable[[str], None],
                  command_journal: Journal | None = None,
                  venue_params: dict[str, Any] | None = None,
                  recorded: Iterable[tuple[bytes, int, list[Event]]] = ()) -> Exchange:
    """Open the journal, snapshots, history and keys and recover the service (no serving).

    `command_journal`: the writer journal already open (a standby's, at takeover), with
    `recorded`, the request ids and events the standby followed (`Takeover.recorded`).
    `venue_params`: the configured halves of the venue's parameters (`Config.venue_params`),
    journaled at the service's start if they differ from the recovered ones.
    In demo mode the demo key is made on first start; in production none is, and a demo key
    left live by earlier demo runs is named so the operator can revoke it.
    """
    from perpx.api.keys import KeyStore, demo_key, live_demo_key, private_folder
    from perpx.service import ExchangeService, open_service_journal
    from perpx.store import open_history, open_snapshots

    data = private_folder(settings.data)
    read_side = not settings.writer_only
    # A venue lists all its contracts: the perpetuals, the inverse ones included. Gateways,
    # the projector, the standby, replay, audit and loadtarget read the same journal with
    # the same instruments (`served_instruments`).
    specs = served_instruments()
    location = settings.journal or str(data / "journal.db")
    try:
        if command_journal is None:
            command_journal = open_service_journal(data, settings.journal)
        snapshots = open_snapshots(location)
        # The history read models live in the journal's database (beside a SQLite journal);
        # the writer only has none (projector 0 keeps them, `ServeSettings.writer_only`).
        history = open_history(location) if read_side else None
    except Exception as bad:  # a bad location or an unreachable database: say which
        raise typer.BadParameter(f"--journal: {bad}") from bad
    say(f"journal: {location} ({command_journal.last_seq():,} commands journaled)")
    keys = KeyStore(data)
    demo: DemoKey | None = None
    if settings.production:
        left = live_demo_key(keys)
        if left is not None:
            say(f"warning: the demo key {left.api_key} of an earlier demo run is still live "
                f"(without demo funds); revoke it: perpx keys revoke {left.api_key} "
                f"--data {data}")
    else:
        demo = demo_key(keys, data)
    service = ExchangeService(specs, command_journal, history=history,
        maker=settings.maker, replay=settings.replay, replay_symbol=settings.replay_symbol,
        snapshots=snapshots, snapshot_every=settings.snapshot_every,
        snapshot_seconds=settings.snapshot_seconds, snapshot_keep=settings.snapshot_keep,
        on_snapshot=say, demo=not settings.production,
        bus=open_publisher(settings, specs, command_journal), venue_params=venue_params,
        recorded=recorded, read_side=read_side)
    recovered = service.recovery
    for refusal in recovered.rejected:
        console.print(f"[yellow]{refusal}[/yellow]", soft_wrap=True)
    # One plain line, parsed by operators' scripts and the crash tests.
    say(f"recovered seq {service.engine.last_seq} from snapshot "
        f"{recovered.snapshot_seq} + {recovered.replayed} commands in "
        f"{recovered.seconds:.3f} s; state hash {service.engine.state_hash()}")
    return Exchange(service, keys, demo)


def open_publisher(settings: ServeSettings, specs: list[InstrumentSpec],
                   journal: Journal) -> BusPublisher | None:
    """Return the publisher of `settings.bus` (None without one); it republishes `journal`."""
    from perpx.bus import BusPublisher, journal_source, open_bus

    try:
        bus = open_bus(settings.bus, settings.bus_stream)
    except ValueError as bad:
        raise typer.BadParameter(str(bad), param_hint="--bus") from None
    if bus is None:
        return None
    # The catch-up replays the journal from its start (no snapshot: the snapshot store's
    # connection belongs to the writer's thread).
    return BusPublisher(bus, journal_source(specs, journal))


async def open_endpoint(settings: ServeSettings,
                        service: ExchangeService) -> CommandEndpoint | None:
    """Open the command endpoint(s) `settings` ask for (None when both are off)."""
    if settings.command_socket is None and not settings.command_nats:
        return None
    from perpx.transport import CommandEndpoint, command_subject

    # A shutdown closes the sequencer before the endpoint: a request in that gap is refused
    # unread (safe to resend to the next leader) rather than failed as an unknown outcome.
    endpoint = CommandEndpoint(service.submit, stopped=lambda: service.stopped.is_set()
                               or service.sequencer.closed,
                               durable_seq=lambda: service.sequencer.durable_seq,
                               fund=service.fund_for_gateway, submit_entries=service.submit_entries)
    if settings.command_socket is not None:
        await endpoint.start_unix(settings.command_socket)
        console.print(f"commands: unix://{settings.command_socket}", soft_wrap=True)
    if settings.command_nats:
        await endpoint.start_nats(settings.command_nats, settings.bus_stream)
        console.print(f"commands: {settings.command_nats} on "
                      f"{command_subject(settings.bus_stream)}", soft_wrap=True)
    return endpoint


@keys_app.command("create")
def keys_create(
    data: Path = DATA_OPTION,
    read_only: bool = typer.Option(False, "--read-only", help="May read but not trade."),
    demo_funds: str = typer.Option("0", help="USDT credited to the new account once."),
    rate_limit: int = typer.Option(200, help="Requests per second allowed."),
    note: str = typer.Option("", help="A note shown by `keys list`."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an API key on a new account."""
    from perpx.api.keys import KeyStore
    from perpx.convert import to_atoms

    try:
        to_atoms(demo_funds)
    except ConversionError as bad:
        raise typer.BadParameter(f"--demo-funds: {bad}") from bad
    keys = KeyStore(data)
    key = keys.create(read_only=read_only, demo_funds=demo_funds, rate_limit=rate_limit,
                      note=note)
    keys.close()
    if as_json:
        typer.echo(json.dumps({"api_key": key.api_key, "api_secret": key.secret,
                               "account_id": key.account_id}))
    else:
        typer.echo(f"api key:    {key.api_key}\napi secret: {key.secret}\n"
                   f"account:    {key.account_id}")


@keys_app.command("list")
def keys_list(data: Path = DATA_OPTION,
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the API keys (never their secrets)."""
    from perpx.api.keys import KeyStore

    keys = KeyStore(data)
    rows = [{"api_key": k.api_key, "account_id": k.account_id, "read_only": k.read_only,
             "revoked": k.revoked, "rate_limit": k.rate_limit, "demo_funds": k.demo_funds,
             "note": k.note} for k in keys.list()]
    keys.close()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(" ".join(f"{name}={value}" for name, value in row.items()))


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The API key to revoke."),
                data: Path = DATA_OPTION) -> None:
    """Revoke an API key."""
    from perpx.api.keys import KeyStore

    keys = KeyStore(data)
    done = keys.revoke(key)
    keys.close()
    if not done:
        typer.echo(f"no live key {key}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key}")


@bench_app.command("match")
def bench_match_command(
    events: int = typer.Option(1_000_000, help="Events in the standard stream."),
    seed: int = typer.Option(42, help="Seed of the stream generator."),
    peers: bool = typer.Option(True, help="Also run the PyPI order-book peers."),
    realistic: bool = typer.Option(
        True, help="Also run the realistic stream (moving mark, margin refusals, "
                   "liquidations, funding) on the engine."),
    profile: bool = typer.Option(
        False, help="Instead, cProfile the engine on --events standard-stream commands and "
                    "print the top 15 functions by cumulative and by own time."),
    memory: int = typer.Option(
        50_000, help="Last, measure the engine's bytes per resting order and per open "
                     "position with this many of each (0: skip; `perpx bench memory` for 1M)."),
) -> None:
    """Replay the standard order stream through perpx, the baseline and the PyPI peers."""
    from perpx.bench.match import bench_match, profile_engine

    if profile:
        profile_engine(events, seed, echo=typer.echo)
        return
    bench_match(events, seed, with_peers=peers, echo=typer.echo, realistic=realistic,
                memory=memory)


@bench_app.command("memory")
def bench_memory_command(
    orders: int = typer.Option(1_000_000, help="Resting orders to measure."),
    positions: int = typer.Option(1_000_000, help="Open positions to measure."),
) -> None:
    """Bytes per resting order and per open position in the engine (tracemalloc); JSON last."""
    from perpx.bench.memory import bench_memory

    bench_memory(orders, positions, echo=typer.echo)


_MARGIN_WORDS = {"cross": "CROSS", "isolated": "ISOLATED"}
_POSITION_WORDS = {"oneway": "ONE_WAY", "one-way": "ONE_WAY", "hedge": "HEDGE"}


def _choices(text: str, words: dict[str, str], option: str) -> list[str]:
    """Split a comma list of words into enum member names, refusing unknown ones."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in words]
    if unknown or not names:
        raise typer.BadParameter(f"{option}: use a comma list of {', '.join(sorted(words))}")
    return [words[n] for n in names]


def _leverage_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        pair = (int(low), int(high or low))
    except ValueError:
        raise typer.BadParameter("--leverage: MIN-MAX, e.g. 10-100") from None
    if not 1 <= pair[0] <= pair[1] <= 100:
        raise typer.BadParameter("--leverage: 1 <= MIN <= MAX <= 100")
    return pair


@app.command()
def sim(
    data: Path | None = typer.Option(None, help="Candle CSV to replay as the index (e.g. "
                                                "tests/data/prices/btcusd_1m_...csv); without it a "
                                                "seeded random walk."),
    hours: float = typer.Option(8.0, help="Hours of feed time to run."),
    start: str | None = typer.Option(None, help="Start the replay at this UTC time "
                                                "(2023-03-02T16:00); default the file's start."),
    traders: int = typer.Option(8, help="Noise traders (both margin and position modes)."),
    seed: int | None = typer.Option(None, help="Seed of the traders and the random walk "
                                               "(default 1, or the scenario's)."),
    step_ms: int | None = typer.Option(None, help="Feed and tick step, ms of feed time "
                                                  "(default 15000, or the scenario's)."),
    check_every: int | None = typer.Option(None, help="Check invariants every N commands "
                                                      "(0: end; default 1000, or the "
                                                      "scenario's)."),
    leverage: str = typer.Option("10-50", help="Traders' leverage range MIN-MAX (1-100)."),
    margin_modes: str = typer.Option("cross,isolated", help="Traders' margin modes, in turn."),
    position_modes: str = typer.Option("oneway,hedge", help="Traders' position modes "
                                                             "(inverse contracts: one-way)."),
    symbol: str = typer.Option("BTCUSDT", help="The contract traded: any bundled one, e.g. "
                                               "BTCUSD (inverse) or BTCUSDT-25DEC26 (dated)."),
    delivery_at: str | None = typer.Option(
        None, help="A dated future delivers at this UTC time (2023-03-03T08:00), renamed "
                   "for that day; default its own deliveryTime."),
    deposit: str | None = typer.Option(None, help="Each trader's deposit in the settle coin "
                                                  "(default 50000 USDT, 2 BTC inverse)."),
    max_qty: str | None = typer.Option(None, help="Largest order of a trader (default 0.5 "
                                                  "BTC, 10000 contracts inverse)."),
    stop_loss: float = typer.Option(0.5, help="Traders close at a loss of this × margin "
                                              "(0: never; liquidation decides)."),
    take_profit: float = typer.Option(1.0, help="Traders close at a gain of this × margin."),
    hold_hours: float = typer.Option(2.0, help="Traders close after this many hours."),
    trend_weight: float = typer.Option(0.4, help="How much traders chase the last 30 min."),
    maker_qty: str | None = typer.Option(None, help="Market maker's size per level, 5 levels "
                                                    "(default 3 BTC, 60000 contracts inverse)."),
    insurance_fund: str | None = typer.Option(None, help="Insurance fund seed in the settle "
                                                         "coin (default 10000 USDT, 1 BTC)."),
    plot: Path | None = typer.Option(None, help="Write the chart to this PNG."),
    report_dir: Path | None = typer.Option(None, help="Write report.md, chart.png, "
                                                      "series.csv and events.csv here."),
    sample_ms: int = typer.Option(60_000, help="Time series resolution, ms of feed time."),
    scenario: str | None = typer.Option(
        None, help="A venue's population in TOML: a file or a bundled name (default, calm, "
                   "crash); it replaces the market maker and the traders options above."),
    as_json: bool = typer.Option(False, "--json", help="Also print the market figures "
                                                       "(basis, premium, funding, ADL) as JSON "
                                                       "last."),
    sweep: list[str] = typer.Option([], help="With --scenario: KEY=V1,V2,... (repeatable), a "
                                             "grid of runs; KEY is table.field "
                                             "(run.insurance_fund, retail.count, "
                                             "makers.level_qty) or insurance_fund, seed, "
                                             "retail_count, maker_depth, max_leverage."),
    workers: int | None = typer.Option(None, help="Processes for --sweep and --fund-sizing "
                                                  "(default every core)."),
    fund_sizing: bool = typer.Option(False, help="With --scenario and --data: the probability "
                                                 "that the fund is exhausted, per --funds "
                                                 "size, on bootstrapped price paths."),
    paths: int = typer.Option(4, help="--fund-sizing: Monte Carlo price paths."),
    horizon_hours: float = typer.Option(3.0, help="--fund-sizing: hours of each path."),
    funds: str = typer.Option("1000,10000,100000",
                              help="--fund-sizing: insurance fund sizes, comma list."),
    block_minutes: int = typer.Option(60, help="--fund-sizing: bootstrap block length."),
) -> None:
    """Run a market maker and noise traders against the engine on real or simulated prices.

    Prints the engine's report and a summary table (trades, volume, fees, funding,
    liquidations, ADL, insurance fund, invariant checks); --plot and --report-dir add charts
    of prices, funding, open interest, the fund, liquidations and the traders' equity.
    """
    import shlex
    import sys

    from perpx.convert import to_atoms
    from perpx.core.enums import MarginMode, PositionMode
    from perpx.feeds import CandleReplay, RandomWalkFeed
    from perpx.feeds.base import PriceFeed
    from perpx.sim import Agent, MarketMaker, Simulation, noise_population
    from perpx.sim.adlcause import AdlCauses, watch_pool
    from perpx.sim.figures import MarketFigures
    from perpx.sim.scenario import ScenarioError, load_scenario
    from perpx.sim.series import SeriesRecorder
    from perpx.sim.summary import summary_rows

    spec = _sim_spec(symbol, delivery_at)
    if sweep or fund_sizing:
        _stress(spec, scenario=scenario, data=data, start=start, hours=hours, sweep=sweep,
                workers=workers, fund_sizing=fund_sizing, paths=paths,
                horizon_hours=horizon_hours, funds=funds, block_minutes=block_minutes,
                report_dir=report_dir, seed=seed)
        return
    venue = None
    if scenario is not None:
        try:
            venue = load_scenario(scenario)
        except ScenarioError as bad:
            raise typer.BadParameter(str(bad), param_hint="--scenario") from None
        insurance_fund = insurance_fund or venue.insurance_fund
    seed = seed if seed is not None else (venue.seed if venue is not None else 1)
    step_ms = step_ms or (venue.step_ms if venue is not None else 15_000)
    if check_every is None:
        check_every = venue.check_every if venue is not None else 1_000
    inverse = spec.contract.value_sign < 0
    # Defaults in the contract's own units: USDT and BTC for linear, BTC and USD contracts
    # for inverse (about the same exposure at the bundled prices).
    deposit = deposit or ("2" if inverse else "50000")
    max_qty = max_qty or ("10000" if inverse else "0.5")
    maker_qty = maker_qty or ("60000" if inverse else "3")
    insurance_fund = insurance_fund or ("1" if inverse else "10000")
    lev = _leverage_range(leverage)
    margins = [MarginMode[n] for n in _choices(margin_modes, _MARGIN_WORDS, "--margin-modes")]
    positions = [PositionMode[n]
                 for n in _choices(position_modes, _POSITION_WORDS, "--position-modes")]
    if inverse and PositionMode.HEDGE in positions:
        # UTA 2.0: inverse contracts trade one-way only (next-mechanics §1.1).
        positions = [PositionMode.ONE_WAY]
        console.print(f"{spec.symbol} is inverse: one-way mode only")
    try:
        fund_atoms = to_atoms(insurance_fund)
    except ConversionError as bad:
        raise typer.BadParameter(f"--insurance-fund: {bad}") from None
    feed: PriceFeed
    if data is not None:
        if not data.exists():
            raise typer.BadParameter(f"no such file: {data}")
        first_ms = next(iter(CandleReplay(data, spec.symbol, spec.tick_size,
                                          step_ms=step_ms)))[0]
        start_ms = first_ms if start is None else _utc_ms(start, "--start")
        feed = _StartingAt(CandleReplay(data, spec.symbol, spec.tick_size, step_ms=step_ms),
                            start_ms)
    else:
        start_ms = 1_677_628_800_000  # 2023-03-01 00:00 UTC, as the bundled minute data
        feed = RandomWalkFeed(spec.symbol, spec.tick_size, "23000", start_ms=start_ms,
                              step_ms=step_ms, volatility=0.6, seed=seed)
    population = noise_population(
        spec.symbol, traders, seed=seed, trend_weight=trend_weight, leverage=lev,
        margin_modes=margins, position_modes=positions, deposit=deposit, max_qty=max_qty,
        stop_loss=stop_loss if stop_loss > 0 else float("inf"), take_profit=take_profit,
        max_hold_ms=int(hold_hours * 3_600_000))
    agents: list[Agent] = [MarketMaker(1, spec.symbol, level_qty=maker_qty), *population]
    followed = {t.account_id for t in population}
    if venue is not None:
        from perpx.sim.scenario import SIGNAL_IDS

        agents = venue.agents(spec.symbol, seed)
        followed = {a.account_id for a in agents if a.account_id >= SIGNAL_IDS}
    recorder = SeriesRecorder(spec, every_ms=sample_ms, traders=followed)
    figures = MarketFigures(spec.symbol, causes=AdlCauses(spec))
    simulation = Simulation([spec], feed, agents, tick_every_ms=step_ms, seed=seed,
                            check_every=check_every, observers=[recorder, figures],
                            insurance_fund_atoms=fund_atoms)
    watch_pool(figures.causes, simulation.engine)  # type: ignore[arg-type]
    started = time.monotonic()
    end_ms = start_ms + int(hours * 3_600_000)
    report = simulation.run(until_ms=end_ms)
    recorder.finish(report.last_ts_ms or end_ms)
    console.print(report.format({spec.symbol: spec}))
    table = Table(title="summary")
    table.add_column("")
    table.add_column("", justify="right")
    for label, value in [*summary_rows(recorder, report), *figures.rows()]:
        table.add_row(label, value)
    console.print(table)
    elapsed = time.monotonic() - started
    console.print(f"{report.commands:,} commands in {elapsed:.1f} s; "
                  f"invariants held at every check")
    command_line = "perpx sim " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
    if plot is not None:
        from perpx.sim.plot import plot_series

        plot_series(recorder, plot, title=f"{spec.symbol}: {command_line}")
        console.print(f"chart written to {plot}")
    if report_dir is not None:
        from perpx.sim.reportdir import write_report_dir

        written = write_report_dir(recorder, report, report_dir, command_line=command_line)
        console.print(f"report written to {report_dir}: "
                      + ", ".join(p.name for p in written))
    if as_json:
        typer.echo(json.dumps({"scenario": venue.name if venue is not None else None,
                               "agents": len(agents), "commands": report.commands,
                               "seconds": round(elapsed, 1), **figures.as_dict()}))


def _stress(spec: InstrumentSpec, *, scenario: str | None, data: Path | None,
            start: str | None, hours: float, sweep: list[str], workers: int | None,
            fund_sizing: bool, paths: int, horizon_hours: float, funds: str,
            block_minutes: int, report_dir: Path | None, seed: int | None) -> None:
    """`perpx sim --sweep` and `--fund-sizing`: many runs of a scenario, a stress report."""
    import os
    import shlex
    import sys

    from perpx.convert import to_atoms
    from perpx.feeds import CandleReplay
    from perpx.sim import stress, stressreport
    from perpx.sim.scenario import ScenarioError

    if scenario is None or data is None or report_dir is None:
        raise typer.BadParameter("--sweep and --fund-sizing need --scenario, --data and "
                                 "--report-dir")
    if not data.exists():
        raise typer.BadParameter(f"no such file: {data}")
    command_line = "perpx sim " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
    started = time.monotonic()
    try:
        doc, name = stress.load_doc(scenario)
        if seed is not None:
            stress.apply_override(doc, "seed", str(seed))
        axes = stress.parse_sweep(sweep)
        if fund_sizing:
            # With --fund-sizing, --sweep KEY=VALUE sets one field for every run.
            for key, values in axes:
                if len(values) != 1:
                    raise ScenarioError(f"--sweep {key}: one value with --fund-sizing")
                stress.apply_override(doc, key, values[0])
            sizes = [f.strip() for f in funds.split(",") if f.strip()]
            for size in sizes:
                to_atoms(size)
            runs = stress.sizing_runs(doc, name, spec=spec, data=str(data), paths=paths,
                                      horizon_hours=horizon_hours, funds=sizes,
                                      block=block_minutes,
                                      seed=seed if seed is not None else 1)
        else:
            first_ms = next(iter(CandleReplay(data, spec.symbol, spec.tick_size)))[0]
            start_ms = first_ms if start is None else _utc_ms(start, "--start")
            runs = stress.sweep_runs(doc, name, axes, spec=spec, data=str(data),
                                     start_ms=start_ms, hours=hours)
    except (ScenarioError, ConversionError, ValueError) as bad:
        raise typer.BadParameter(str(bad)) from None
    console.print(f"{len(runs)} runs in {workers or os.cpu_count()} processes...")
    results = stress.run_all(runs, workers)
    if fund_sizing:
        written = stressreport.write_sizing_report(results, report_dir,
                                                   command_line=command_line,
                                                   block=block_minutes)
        table = Table(title="fund exhaustion")
        for column in stress.EXHAUSTION_COLUMNS:
            table.add_column(column, justify="right")
        for row in stress.exhaustion_curve(results):
            table.add_row(*row)
    else:
        written = stressreport.write_sweep_report(results, axes, report_dir,
                                                  command_line=command_line)
        table = Table(title="sweep")
        shown = [1, 2, 3, 4, 6, 9, 10, 11]  # params, liquidations ... recovery (summary.md)
        for k in shown:
            table.add_column(stress.SUMMARY_COLUMNS[k], justify="right")
        for result in results:
            row = result.row()
            table.add_row(*(row[k] for k in shown))
    console.print(table)
    console.print(f"{len(runs)} runs, {sum(r.commands for r in results):,} commands in "
                  f"{time.monotonic() - started:.1f} s; invariants held at "
                  f"{sum(r.invariant_checks for r in results):,} checks")
    console.print(f"report written to {report_dir}: " + ", ".join(p.name for p in written))


def _utc_ms(text: str, option: str) -> int:
    """Return an ISO UTC time (2023-03-02T16:00) in epoch ms, or refuse the option."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise typer.BadParameter(f"{option}: an ISO time such as 2023-03-02T16:00") from None
    return int(moment.timestamp()) * 1_000


def _sim_spec(symbol: str, delivery_at: str | None) -> InstrumentSpec:
    """Return the bundled contract `symbol`; a dated one moved to deliver at `delivery_at`.

    A replay of past prices needs the delivery inside its window, so the operator picks the
    time; the contract is then named for that day as Bybit would name it (`dated_symbol`).
    """
    import dataclasses

    from perpx.core.instruments import dated_symbol

    spec = next((s for s in bundled_instruments() if s.symbol == symbol), None)
    if spec is None:
        raise typer.BadParameter(f"unknown symbol {symbol}", param_hint="--symbol")
    if delivery_at is None:
        return spec
    if not spec.dated:
        raise typer.BadParameter(f"{symbol} is a perpetual: it never delivers",
                                 param_hint="--delivery-at")
    delivery_ms = _utc_ms(delivery_at, "--delivery-at")
    if delivery_ms <= 0:
        raise typer.BadParameter("a delivery time after 1970", param_hint="--delivery-at")
    named = dated_symbol(spec.base_coin, spec.quote_coin, spec.settle_coin, delivery_ms)
    return dataclasses.replace(spec, symbol=named, delivery_time_ms=delivery_ms,
                               launch_time_ms=min(spec.launch_time_ms, delivery_ms))


class _StartingAt:
    """A price feed's observations from `start_ms` on (iterable again, like the feed)."""

    def __init__(self, feed: Iterable[Any], start_ms: int) -> None:
        self.feed = feed
        self.start_ms = start_ms

    def __iter__(self) -> Iterator[Any]:
        return (o for o in self.feed if o.ts_ms >= self.start_ms)


SYMBOL = typer.Option("BTCUSDT", help="Instrument.")
SIDE = typer.Option("buy", help="buy/long or sell/short.")
LEVERAGE = typer.Option("10", help="Leverage, e.g. 10 or 12.5.")
FEE = typer.Option(None, help="Taker fee rate; default the instrument's (0.00055).")
AS_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
FORMULA = typer.Option(None, "--formula",
                       help="Isolated liquidation-price formula: uta (Bybit's current) or "
                            "legacy (the older USDT article); default the instrument's.")


def _show(title: str, figures: dict[str, str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures))
        return
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, value)
    console.print(table)


def _calc_spec(symbol: str) -> InstrumentSpec:
    specs = {s.symbol: s for s in bundled_instruments()}
    if symbol not in specs:
        raise typer.BadParameter(f"unknown symbol {symbol}")
    return specs[symbol]


def _calc_inputs(symbol: str, side: str, leverage: str, fee: str | None,
                 formula: str | None = None) -> calculator.Inputs:
    spec = _calc_spec(symbol)
    try:
        return calculator.inputs(spec, side, leverage, fee, formula)
    except (ValueError, ConversionError) as error:
        raise typer.BadParameter(str(error)) from None


def _run(title: str, compute: Callable[[], dict[str, str]], as_json: bool) -> None:
    try:
        figures = compute()
    except (ValueError, ConversionError) as error:
        raise typer.BadParameter(str(error)) from None
    _show(title, figures, as_json)


@calc_app.command("cost")
def calc_cost(price: str = typer.Option(..., help="Order price."),
              qty: str = typer.Option(..., help="Order quantity."),
              symbol: str = SYMBOL, side: str = SIDE, leverage: str = LEVERAGE,
              fee: str | None = FEE, as_json: bool = AS_JSON) -> None:
    """Order cost: initial margin + fee to open + fee to close (what the order locks)."""
    given = _calc_inputs(symbol, side, leverage, fee)
    _run("order cost", lambda: calculator.order_cost(given, price, qty), as_json)


@calc_app.command("position")
def calc_position(entry: str = typer.Option(..., help="Entry price."),
                  qty: str = typer.Option(..., help="Position size."),
                  mark: str | None = typer.Option(None, help="Mark price (default: entry)."),
                  extra: str = typer.Option("0", help="Margin added to the position."),
                  symbol: str = SYMBOL, side: str = SIDE, leverage: str = LEVERAGE,
                  fee: str | None = FEE, formula: str | None = FORMULA,
                  as_json: bool = AS_JSON) -> None:
    """Isolated position: margin, MM, liquidation and bankruptcy price, uPnL and ROI."""
    given = _calc_inputs(symbol, side, leverage, fee, formula)
    _run("position", lambda: calculator.position(given, entry, qty, mark, extra), as_json)


@calc_app.command("instrument")
def calc_instrument(symbol: str = SYMBOL,
                    price: str | None = typer.Option(
                        None, help="Price to value the impact margin notional at."),
                    as_json: bool = AS_JSON) -> None:
    """Instrument risk figures: formula, tier 1 and the impact margin notional."""
    spec = _calc_spec(symbol)
    _run("instrument", lambda: calculator.instrument(spec, price), as_json)


@calc_app.command("pnl")
def calc_pnl(entry: str = typer.Option(..., help="Entry price."),
             exit_price: str = typer.Option(..., "--exit", help="Exit price."),
             qty: str = typer.Option(..., help="Quantity."),
             funding: str = typer.Option(
                 "0", help="Funding paid while open (negative: received)."),
             symbol: str = SYMBOL, side: str = SIDE, leverage: str = LEVERAGE,
             fee: str | None = FEE, as_json: bool = AS_JSON) -> None:
    """Bybit's closed P&L of a round trip: taker fees both ways and the funding paid."""
    given = _calc_inputs(symbol, side, leverage, fee)
    _run("closed P&L",
         lambda: calculator.closed_pnl(given, entry, exit_price, qty, funding), as_json)


@calc_app.command("target")
def calc_target(entry: str = typer.Option(..., help="Entry price."),
                qty: str = typer.Option(..., help="Quantity."),
                roi: str = typer.Option(..., help="Target ROI as a fraction (0.5 = 50%)."),
                symbol: str = SYMBOL, side: str = SIDE, leverage: str = LEVERAGE,
                fee: str | None = FEE, as_json: bool = AS_JSON) -> None:
    """Find the exit price that reaches a target ROI."""
    given = _calc_inputs(symbol, side, leverage, fee)
    _run("target price", lambda: calculator.target_price(given, entry, qty, roi), as_json)


@calc_app.command("delivery")
def calc_delivery(entry: str = typer.Option(..., help="Entry price."),
                  qty: str = typer.Option(..., help="Position size held at delivery."),
                  price: str = typer.Option(..., help="Delivery price (8 decimals)."),
                  delivery_fee: str | None = typer.Option(
                      None, help="Delivery fee rate (default: the instrument's)."),
                  symbol: str = typer.Option("BTCUSDT-25DEC26", help="A dated future."),
                  side: str = SIDE, as_json: bool = AS_JSON) -> None:
    """Settle a dated future at delivery: P&L at the delivery price and the fee."""
    given = _calc_inputs(symbol, side, "1", None)
    _run("delivery",
         lambda: calculator.delivery(given, entry, qty, price, delivery_fee), as_json)


@calc_app.command("qty")
def calc_qty(price: str = typer.Option(..., help="Order price."),
             value: str | None = typer.Option(None, help="Order by value (in the settle coin)."),
             cost: str | None = typer.Option(None, help="Order by cost (in the settle coin)."),
             symbol: str = SYMBOL, side: str = SIDE, leverage: str = LEVERAGE,
             fee: str | None = FEE, as_json: bool = AS_JSON) -> None:
    """Quantity for an order by value or by cost (seed 000), rounded down to the step."""
    given = _calc_inputs(symbol, side, leverage, fee)
    _run("quantity", lambda: calculator.quantity(given, price, value, cost), as_json)


@calc_app.command("pm")
def calc_pm(position: list[str] = typer.Option(
                [], help="A position SYMBOL:QTY, signed (repeatable): BTCUSDT:1, "
                         "BTCUSDT-25DEC26:-1, BTCUSD:60000 (inverse: USD contracts)."),
            order: list[str] = typer.Option(
                [], help="Open orders SYMBOL:buy|sell:QTY (repeatable); they enter the IM."),
            index: list[str] = typer.Option(
                [], help="Index price COIN=PRICE for a base coin's instruments, or "
                         "SYMBOL=PRICE for one (repeatable): BTC=60000."),
            mark: list[str] = typer.Option(
                [], help="Mark price SYMBOL=PRICE (repeatable; default the index)."),
            usd: list[str] = typer.Option(
                [], help="USD price of a settle coin COIN=PRICE (default USDT=1, USDC=1)."),
            shock_base: str = typer.Option(
                "index", help="Price the grid shocks: index (default) or mark."),
            risk_factor: str | None = typer.Option(
                None, help="Futures contingency rate (default 0.006, not Bybit's)."),
            im_factor: str | None = typer.Option(None, help="IM = MM x this (default 1.2)."),
            fill: list[str] = typer.Option(
                [], help="What if an order SYMBOL:buy|sell:QTY fills (repeatable): the book's "
                         "MM and IM before and after."),
            as_json: bool = AS_JSON) -> None:
    """Portfolio margin of a book: each unit's P&L grid, MaxLoss, contingencies, MM and IM (USD)."""
    specs = {spec.symbol: spec for spec in bundled_instruments()}
    try:
        params = calculator.portfolio_params(shock_base, risk_factor, im_factor)
        legs = calculator.portfolio_legs(specs, position, order, index, mark, usd)
        figures = calculator.portfolio(legs, params)
        if fill:
            after = calculator.portfolio_legs(
                specs, calculator.filled_positions(position, fill), order, index, mark, usd)
            figures["what_if"] = calculator.portfolio_what_if(legs, after, params)
    except (ValueError, ConversionError) as error:
        raise typer.BadParameter(str(error)) from None
    if as_json:
        typer.echo(json.dumps(figures))
        return
    for unit in figures["units"]:
        grid = Table(title=f"{unit['base_coin']} unit: scenario P&L (USD)")
        columns = list(unit["pnl_grid"][0]) if unit["pnl_grid"] else []
        for name in columns:
            grid.add_column(name, justify="right")
        for row in unit["pnl_grid"]:
            grid.add_row(*(row[name] for name in columns))
        console.print(grid)
        shown = {f"position {symbol}": qty for symbol, qty in unit["positions"].items()}
        shown |= {name: value for name, value in unit.items()
                  if isinstance(value, str) and name != "base_coin"}
        _show(f"{unit['base_coin']} unit: margin (USD)", shown, False)
    _show("portfolio margin (USD)",
          {name: value for name, value in figures.items() if isinstance(value, str)}, False)
    if "what_if" in figures:
        what_if = figures["what_if"]
        _show("what if the fills trade (USD)",
              {f"{figure} {when}": what_if[when][figure]
               for when in ("before", "after", "change") for figure in ("mm", "im")}, False)


@calc_app.command("account")
def calc_account(coin: list[str] = typer.Option(
                     [], help="A coin balance COIN=AMOUNT (repeatable; negative: owed): "
                              "BTC=1, USDT=1500."),
                 position: list[str] = typer.Option(
                     [], help="A position SYMBOL:QTY@ENTRY, signed (repeatable): "
                              "BTCUSDT:2@61000, BTCUSD:-60000@60000 (inverse: contracts)."),
                 index: list[str] = typer.Option(
                     [], help="Index price SYMBOL=PRICE, or COIN=PRICE for the instruments on "
                              "that base coin (repeatable); a coin's USD price is its USDT "
                              "perpetual's index times the USDT rate."),
                 mark: list[str] = typer.Option(
                     [], help="Mark price SYMBOL=PRICE (repeatable; default the index)."),
                 leverage: list[str] = typer.Option(
                     [], help="Leverage SYMBOL=L of a position (repeatable; default 10)."),
                 usdt_rate: str | None = typer.Option(
                     None, help="USD per USDT (default 1): BTCUSD index / BTCUSDT index."),
                 ratio: list[str] = typer.Option(
                     [], help="Collateral ratio COIN=R, or tiers COIN=R1:UPTO1,R2:UPTO2,...,Rn "
                              "applied slice by slice (repeatable): BTC=0.98."),
                 usd_price: list[str] = typer.Option(
                     [], help="USD price COIN=P of a coin no index prices (USDC, or a coin of "
                              "your own; repeatable)."),
                 usdt_price: list[str] = typer.Option(
                     [], help="USDT (spot) price COIN=P of such a coin, times the USDT rate "
                              "(repeatable): USDC=1.0002."),
                 borrow_limit: list[str] = typer.Option(
                     [], help="Borrowing limit COIN=QTY (repeatable): above it the penalty "
                              "interest applies."),
                 as_json: bool = AS_JSON) -> None:
    """Multi-coin cross account: per-coin and USD figures, rates, liquidation prices."""
    specs = {spec.symbol: spec for spec in bundled_instruments()}
    try:
        table = calculator.collateral_table(usdt_rate, ratio, usd_price, usdt_price,
                                            borrow_limit)
        book = calculator.AccountBook(specs, table, coin, position, index, mark, leverage)
        figures = book.figures()
    except (ValueError, ConversionError) as error:
        raise typer.BadParameter(str(error)) from None
    if as_json:
        typer.echo(json.dumps(figures))
        return
    coins = figures["coins"]
    table_view = Table(title="coins (amounts in the coin; usd_ and collateral_ in USD)")
    table_view.add_column("figure")
    for name in coins:
        table_view.add_column(name, justify="right")
    for row in next(iter(coins.values()), {}):
        table_view.add_row(row, *(coins[name][row] for name in coins))
    if coins:
        console.print(table_view)
    _show("account (USD)", figures["account"], False)


@bench_app.command("ws")
def bench_ws_command(
    subscribers: int = typer.Option(200, help="WebSocket connections subscribed at once."),
    seconds: float = typer.Option(3.0, help="How long the order flow runs in each pass."),
    per_tick: int = typer.Option(20, help="Commands submitted every 10 ms."),
    seed: int = typer.Option(42, help="Seed of the order flow."),
    gateways: str = typer.Option(
        "", help="Also measure through `perpx serve --gateways N` for each N of this comma "
                 "list (e.g. 1,2): msgs/s, RSS and CPU of the writer and each gateway."),
    gateway_subscribers: int = typer.Option(
        1000, help="Subscribers (book, trades, ticker) in the --gateways measurements."),
    client_processes: int = typer.Option(
        0, help="Subscribers as frame-counting clients in this many processes (0: "
                "`websockets` clients in a thread of the bench), so the server is measured."),
) -> None:
    """Messages/s delivered to many subscribers of orderbook.50 and publicTrade; JSON last."""
    from perpx.bench.ws import bench_ws

    try:
        counts = [int(part) for part in gateways.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter("a comma list of gateway counts, e.g. 1,2",
                                 param_hint="--gateways") from None
    bench_ws(subscribers, seconds, per_tick, seed, echo=typer.echo, gateways=counts,
             gateway_subscribers=gateway_subscribers, client_processes=client_processes)


@bench_app.command("api")
def bench_api_command(
    clients: int = typer.Option(64, help="Concurrent clients, each with its own key."),
    seconds: float = typer.Option(5.0, help="Seconds per measurement."),
    pipeline: int = typer.Option(1, help="Requests in flight per connection (HTTP/1.1)."),
    ws_subscribers: int = typer.Option(
        200, help="Subscribers of the WebSocket fan-out measured after (0: skip it)."),
    idle: int = typer.Option(
        0, help="Also measure signed orders beside this many idle connections that never "
                "send a byte (server RSS, descriptors, connections refused and timed out)."),
    idle_per_address: int = typer.Option(
        400, help="Idle connections per loopback source address (127.0.0.2, .3, ...)."),
    gateways: str = typer.Option(
        "", help="Also measure through `perpx serve --gateways N` for each N of this comma "
                 "list (e.g. 1,2): baseline GET, signed orders, RSS of every process."),
    shared_limits: str = typer.Option(
        "", help="With --gateways: measure each count again with the gateways sharing rate "
                 "limits through this nats://HOST:PORT (perpx serve --shared-limits)."),
    writer_only: str = typer.Option(
        "", help="With --gateways: measure each count again split, the writer only (perpx "
                 "serve --projectors 1 --bus nats://HOST:PORT: projector 0 keeps the history "
                 "the gateways read)."),
    profile_writer: str = typer.Option(
        "", help="With --writer-only: run that writer under cProfile, statistics to this file."),
    profile_gateway: str = typer.Option(
        "", help="With --writer-only: profile each gateway (cProfile, both its threads) during "
                 "the signed orders only; statistics to FILE.PID."),
) -> None:
    """Signed orders/s against `perpx serve`, GET baseline, client ceiling, WS msgs/s."""
    from perpx.bench.api import bench_api

    try:
        counts = [int(part) for part in gateways.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter("a comma list of gateway counts, e.g. 1,2",
                                 param_hint="--gateways") from None
    bench_api(clients, seconds, pipeline=pipeline, ws_subscribers=ws_subscribers, idle=idle,
              idle_per_address=idle_per_address, gateways=counts, shared_limits=shared_limits,
              writer_only=writer_only, profile_writer=profile_writer,
              profile_gateway=profile_gateway, echo=typer.echo)


@bench_app.command("risk")
def bench_risk_command(
    accounts: int = typer.Option(100_000, help="Isolated accounts (even)."),
    symbols: int = typer.Option(10, help="Contracts; each account holds one position in each."),
    pooled_every: int = typer.Option(
        2, help="Every Nth cross pair holds BTC collateral instead of USDT (a multi-coin USD "
                "pool); 0: none."),
    pm_every: int = typer.Option(
        2, help="Every Nth other cross pair trades in portfolio margin; 0: none."),
) -> None:
    """Open positions in every contract, then move one mark: how long the risk sweep takes."""
    from perpx.bench.risk import bench_risk

    bench_risk(accounts, symbols, echo=typer.echo, pooled_every=pooled_every,
               pm_every=pm_every)


@bench_app.command("restart")
def bench_restart_command(
    commands: int = typer.Option(200_000, help="Commands in the journal before the snapshot."),
    tail: int = typer.Option(2_000, help="Commands journaled after the snapshot."),
) -> None:
    """Restart time of the service: full journal replay vs snapshot + tail."""
    from perpx.bench.restart import bench_restart

    bench_restart(commands, tail, echo=typer.echo)


@bench_app.command("journal")
def bench_journal_command(
    quick: bool = typer.Option(False, help="CI-sized run (seconds, not minutes)."),
    postgres: str = typer.Option("postgresql://postgres@127.0.0.1:5432/test",
                                 help="PostgreSQL DSN; a fresh schema is created and dropped."),
) -> None:
    """Durable commands/s (SQLite, PostgreSQL), replay speed, snapshot time and size."""
    from perpx.bench.journal import bench_journal

    bench_journal(quick, postgres, echo=typer.echo)


@bench_app.command("bus")
def bench_bus_command(
    commands: int = typer.Option(20_000, help="Commands of the seeded order flow."),
    nats: str = typer.Option("nats://127.0.0.1:4222", help="NATS server with JetStream."),
    max_batch: int = typer.Option(256, help="Most commands in one bus message."),
) -> None:
    """Events/s through the event bus (in-process and JetStream), published and consumed."""
    from perpx.bench.bus import bench_bus

    bench_bus(commands, nats, max_batch, echo=typer.echo)


@bench_app.command("projector")
def bench_projector_command(
    commands: int = typer.Option(20_000, help="Commands of the seeded order flow."),
    nats: str = typer.Option("nats://127.0.0.1:4222", help="NATS server with JetStream."),
    postgres: str = typer.Option("", help="Also into PostgreSQL at this DSN (a fresh "
                                          "schema, dropped afterwards)."),
) -> None:
    """Commands, events and rows/s a projector folds from the bus into history tables."""
    from perpx.bench.projector import bench_projector

    bench_projector(commands, nats, postgres, echo=typer.echo)


@bench_app.command("transport")
def bench_transport_command(
    commands: int = typer.Option(4000, help="PlaceOrder round trips per path and concurrency."),
    nats: str = typer.Option("nats://127.0.0.1:4222", help="NATS server for request/reply."),
) -> None:
    """PlaceOrder round trips/s and latency: in process, Unix socket, NATS request/reply."""
    from perpx.bench.transport import bench_transport

    bench_transport(commands, nats, echo=typer.echo)


# -- journal tools (issue #7) -------------------------------------------------------------


def _journal_progress(total: int, label: str) -> tuple[object, Callable[[int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn(), console=console)
    task = bar.add_task(label, total=total)
    return bar, lambda done: bar.update(task, completed=done)


def _open_readonly_journal(location: str) -> Journal:
    """Open a journal read-only; exit 2, having created nothing, if there is none to read."""
    from perpx.store import open_journal
    from perpx.store.journal import JournalError

    try:
        return open_journal(location, readonly=True)
    except (JournalError, ValueError) as bad:
        typer.echo(f"perpx: {bad}", err=True)
        raise typer.Exit(2) from None


_INSTRUMENTS_HELP = ("The instruments the journal was written with: a bundled table "
                     "(default, inverse, futures) or a table file; without it, what `perpx "
                     "serve` lists, default and inverse (a `perpx.Exchange()` journal: default).")


def _journal_instruments(name: str | None) -> list[InstrumentSpec]:
    """Return the instruments `perpx replay` / `audit` read a journal with (`_INSTRUMENTS_HELP`)."""
    if name is None:
        return served_instruments()
    try:
        return load_instruments(name)
    except (OSError, ValueError, KeyError) as bad:
        raise typer.BadParameter(str(bad), param_hint="--instruments") from bad


@app.command()
def replay(
    journal: str = typer.Option(..., help="Journal: a file path, sqlite:///PATH or postgresql://..."),
    verify_snapshots: bool = typer.Option(False, help="Also check every stored snapshot."),
    instruments: str | None = typer.Option(None, help=_INSTRUMENTS_HELP),
) -> None:
    """Rebuild the state from the whole journal; print last seq, commands/s and state hash."""
    from perpx.store import open_snapshots
    from perpx.store.journal import JournalMissing
    from perpx.store.replay import replay_journal
    from perpx.store.snapshots import SnapshotStore

    source = _open_readonly_journal(journal)
    store: SnapshotStore | None = None
    if verify_snapshots:
        try:
            store = open_snapshots(journal, readonly=True)
        except JournalMissing:
            console.print("no snapshots stored beside this journal")
    bar, progress = _journal_progress(source.last_seq(), "replay")
    with bar:  # type: ignore[attr-defined]
        report = replay_journal(_journal_instruments(instruments), source, store, progress)
    console.print(f"last seq {report.engine.last_seq:,}; {report.commands:,} commands in "
                  f"{report.seconds:.2f} s = {report.commands_per_s:,.0f} commands/s")
    console.print(f"state hash {report.engine.state_hash()}")
    if verify_snapshots:
        console.print(f"snapshots verified: {len(report.snapshots_ok)}")
    if store is not None:
        for problem in report.snapshot_problems:
            console.print(f"[red]{problem}[/red]")
        store.close()
    source.close()
    if report.snapshot_problems:
        raise typer.Exit(1)


@app.command()
def audit(
    journal: str = typer.Option(..., help="Journal: a file path, sqlite:///PATH or postgresql://..."),
    instruments: str | None = typer.Option(None, help=_INSTRUMENTS_HELP),
) -> None:
    """Replay, then check every wallet against the transaction log and each coin's total."""
    from perpx.convert import format_atoms
    from perpx.store.audit import audit_journal

    source = _open_readonly_journal(journal)
    bar, progress = _journal_progress(source.last_seq(), "audit")
    with bar:  # type: ignore[attr-defined]
        report = audit_journal(_journal_instruments(instruments), source, progress)
    source.close()
    table = Table(title=f"conservation after {report.commands:,} commands "
                        f"(seq {report.engine.last_seq:,})")
    table.add_column("per coin, atoms as decimals")
    for c in report.coins:
        table.add_column(c.coin, justify="right")
    rows = [("deposits", "deposits"), ("withdrawals", "withdrawals"),
            ("user wallets", "user_wallets"), ("insurance fund", "insurance_fund"),
            ("fee account", "fee_account"), ("open positions' cash", "position_cash"),
            ("held − (deposits − withdrawals)", "difference"),
            ("engine's net deposits", "engine_net_deposits")]
    for label, name in rows:
        table.add_row(label, *(format_atoms(getattr(c, name)) for c in report.coins))
    table.add_row("conserved", *("yes" if c.ok else "[red]NO[/red]" for c in report.coins))
    console.print(table)
    console.print(f"wallets checked against the transaction log: {report.wallets_checked:,}, "
                  f"mismatches: {len(report.wallet_mismatches)}")
    for problem in report.wallet_mismatches[:20] + report.log_breaks:
        console.print(f"[red]{problem}[/red]")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def leader(
    journal: str = typer.Option(..., help="Journal: a file path, sqlite:///PATH or postgresql://..."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Say who writes the journal: the leader record (epoch, address, since) and if it lives.

    How gateways and operators find the leader after a standby took over; exit 1 when no
    writer holds the journal's lock.
    """
    source = _open_readonly_journal(journal)
    try:
        record = source.leader()  # type: ignore[attr-defined]
        alive = bool(source.writer_alive())  # type: ignore[attr-defined]
    finally:
        source.close()
    figures = {"epoch": record.epoch if record else 0, "holder": record.holder if record else "",
               "since_ms": record.since_ms if record else 0, "alive": alive}
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        typer.echo(" ".join(f"{name}={value}" for name, value in figures.items()))
    if not alive:
        raise typer.Exit(1)


@app.command("venue-params")
def venue_params(
    journal: str | None = typer.Option(
        None, help="A venue's journal (a file path, sqlite:///PATH or postgresql://...): "
                   "print the parameters in force there (snapshot + tail, read only)."),
    config: Path | None = typer.Option(
        None, help="Check this TOML's [collateral] and [portfolio_margin] and print the "
                   "parameters `perpx serve --config` would put in force."),
    instruments: str | None = typer.Option(None, help=_INSTRUMENTS_HELP),
) -> None:
    """Print the venue's collateral table and PM parameters as TOML for `serve --config`.

    Without options: perpx's defaults (the spec's decisions where Bybit publishes nothing),
    the tables an operator starts from. Exit 2 if --config holds a bad table.
    """
    from perpx.core.engine import Engine
    from perpx.store import open_snapshots
    from perpx.store.journal import JournalMissing
    from perpx.store.recovery import recover_engine
    from perpx.venue_config import venue_params_toml

    specs = _journal_instruments(instruments)
    if journal is None:
        current = Engine(specs).current_venue_params()
    else:
        source = _open_readonly_journal(journal)
        try:
            store = open_snapshots(journal, readonly=True)
        except JournalMissing:
            store = None
        current = recover_engine(specs, source, store, verify=False).current_venue_params()
        if store is not None:
            store.close()
        source.close()
    if config is not None:
        try:
            current = {**current, **load_config(config).venue_params}
        except ConfigError as bad:
            raise typer.BadParameter(str(bad), param_hint="--config") from None
    typer.echo(venue_params_toml(current), nl=False)


@app.command("list-contract")
def list_contract(
    symbol: str | None = typer.Option(
        None, help="A bundled contract to list (e.g. BTCUSDT-26MAR27, BTCUSDZ26)."),
    item: Path | None = typer.Option(
        None, help="A JSON file: one Bybit instruments-info item with perpx's fields (as in "
                   "the bundled tables), or a table of them ({\"instruments\": [...]})."),
    command_socket: Path | None = typer.Option(
        None, help="The running writer's command socket (perpx serve --command-socket)."),
    command_nats: str | None = typer.Option(
        None, help="Or the NATS URL the writer takes commands on (perpx serve --command-nats)."),
    bus_stream: str = typer.Option(_SERVE.bus_stream, help="The venue's name on NATS."),
) -> None:
    """List a new contract on a running venue: a `ListInstrument` on the command path.

    The command goes to the writer as a gateway's do (the same socket or NATS subject), is
    journaled and answered once durable; every read side (the writer's API, gateways
    following the journal, a restart) learns the contract from it. Exit 1 if refused.
    """
    import asyncio

    from perpx.bybit.retcodes import bybit_code
    from perpx.core.commands import ListInstrument
    from perpx.core.events import CommandRejected, InstrumentListed
    from perpx.core.instruments import spec_record
    from perpx.instruments import spec_from_bybit
    from perpx.transport import NatsWriterClient, UnixWriterClient, WriterClient, WriterError

    if (symbol is None) == (item is None):
        raise typer.BadParameter("give exactly one of --symbol and --item")
    if (command_socket is None) == (command_nats is None):
        raise typer.BadParameter("give exactly one of --command-socket and --command-nats")
    if symbol is not None:
        found = [spec for spec in bundled_instruments() if spec.symbol == symbol]
        if not found:
            raise typer.BadParameter(f"{symbol} is not a bundled contract; use --item")
        specs = found
    else:
        assert item is not None
        try:
            data = json.loads(item.read_text("utf-8"))
            items = data.get("instruments", [data])
            specs = [spec_from_bybit(one) for one in items]
        except (OSError, ValueError, KeyError, TypeError) as bad:
            raise typer.BadParameter(f"--item: {bad}") from bad
    writer: WriterClient = (UnixWriterClient(command_socket) if command_socket is not None
                            else NatsWriterClient(command_nats or "", bus_stream))

    async def send() -> int:
        refused = 0
        try:
            for spec in specs:
                seq, events = await writer.submit(ListInstrument(0, 0, spec_record(spec)))
                listed = [e for e in events if isinstance(e, InstrumentListed)]
                if listed:
                    typer.echo(f"listed {spec.symbol} at seq {seq}")
                    continue
                refused += 1
                rejected = [e for e in events if isinstance(e, CommandRejected)]
                code, message = (bybit_code(rejected[0].reason) if rejected
                                 else (0, "no listing"))
                typer.echo(f"refused {spec.symbol}: retCode {code} {message}"
                           + (f" ({rejected[0].detail})" if rejected else ""), err=True)
        finally:
            await writer.close()
        return refused

    try:
        failed = asyncio.run(send())
    except WriterError as bad:
        typer.echo(f"perpx: {bad}", err=True)
        raise typer.Exit(2) from None
    if failed:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
