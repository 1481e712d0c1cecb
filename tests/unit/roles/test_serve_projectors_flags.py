"""`perpx serve --projectors N`: refused without a NATS bus; where each projector's tables go."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpx.cli import app, projector_children, projector_history, projector_seq
from perpx.config import ServeSettings, load_config

runner = CliRunner()


def test_projectors_without_a_nats_bus_are_refused_before_anything_opens(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    for bus in ([], ["--bus", "memory"]):
        result = runner.invoke(app, ["serve", "--data", str(data), "--port", "0",
                                     "--projectors", "1", *bus], env={"COLUMNS": "200"})
        assert result.exit_code == 2, result.output
        assert "needs --bus nats://HOST:PORT" in result.output
        assert not (data / "journal.db").exists()  # refused before the venue opened


def test_each_projector_has_tables_of_its_own(tmp_path: Path) -> None:
    settings = ServeSettings(data=tmp_path / "data", bus="nats://127.0.0.1:4222",
                             projectors=2)
    assert projector_history(settings, 1) == str(tmp_path / "data/projector-1/history.db")
    assert (tmp_path / "data/projector-1").is_dir()
    on_postgres = dataclasses.replace(
        settings, journal="postgresql://u@db:5432/perpx?schema=venue")
    assert projector_history(on_postgres, 0) == \
        "postgresql://u@db:5432/perpx?schema=venue_projector_0"
    default_schema = dataclasses.replace(settings, journal="postgresql://u@db/perpx")
    assert projector_history(default_schema, 3) == \
        "postgresql://u@db/perpx?schema=perpx_projector_3"
    children = projector_children(settings)
    assert children is not None and children.count == 2 and not children.essential
    # Sessions of their own: a terminal's Ctrl-C reaches the writer, which stops them after
    # its last batch.
    assert children.own_session
    args = list(children.args(1))
    assert args[:2] == ["--role", "projector"]
    assert args[args.index("--history") + 1] == projector_history(settings, 1)
    assert projector_children(dataclasses.replace(settings, projectors=0)) is None
    # Not created yet: no seq to show; PostgreSQL is not read per status request.
    assert projector_seq(projector_history(settings, 1)) is None
    assert projector_seq("postgresql://u@db/perpx?schema=x") is None


def test_the_toml_key(tmp_path: Path) -> None:
    config = tmp_path / "perpx.toml"
    config.write_text('[serve]\nprojectors = 2\nbus = "nats://127.0.0.1:4222"\n')
    assert load_config(config).serve.projectors == 2


def test_restart_pause_doubles_while_a_child_keeps_dying_early() -> None:
    from types import SimpleNamespace

    from perpx.roles import supervisor
    from perpx.roles.supervisor import Children

    children = Children("projector", 1, lambda number: [], essential=False)
    now = time.monotonic()
    early = SimpleNamespace(number=0, started_s=now)  # died at once
    pauses = [children._pause(early) for _ in range(7)]  # type: ignore[arg-type]
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    late = SimpleNamespace(number=0, started_s=now - supervisor.STABLE_S)  # ran a while
    assert children._pause(late) == supervisor.RESTART_PAUSE_S  # type: ignore[arg-type]
    assert children._pause(early) == 2.0  # type: ignore[arg-type]


def test_a_child_in_a_session_of_its_own_is_started_so(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    import io
    import subprocess
    from types import SimpleNamespace

    from perpx.roles import supervisor

    started: list[dict[str, object]] = []

    def popen(args: list[str], **kwargs: object) -> SimpleNamespace:
        started.append(kwargs)
        return SimpleNamespace(pid=1, stdout=io.StringIO(""), poll=lambda: 0)

    monkeypatch.setattr(subprocess, "Popen", popen)
    for own in (True, False):
        supervisor.Children("projector", 1, lambda number: [], own_session=own)._spawn(0)
    assert [kwargs["start_new_session"] for kwargs in started] == [True, False]
