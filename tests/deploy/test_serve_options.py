"""serve's listener defaults come from the image's environment; a bad value is serve's usage error only."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import _parser


def test_the_environment_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_BROKER_CONFIG", "/config/broker.yaml")
    monkeypatch.setenv("STS_BROKER_HOST", "10.1.2.3")
    monkeypatch.setenv("STS_BROKER_PORT", "8123")
    args = _parser().parse_args(["serve"])
    assert (args.config, args.host, args.port) == (Path("/config/broker.yaml"), "10.1.2.3", 8123)
    assert (args.drain, args.shutdown_deadline) == (0.0, 25)
    assert _parser().parse_args(["check"]).config == Path("/config/broker.yaml")
    args = _parser().parse_args(["serve", "--port", "9000", "--drain", "2.5", "--shutdown-deadline", "10"])
    assert (args.port, args.drain, args.shutdown_deadline) == (9000, 2.5, 10)


def test_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STS_BROKER_CONFIG", "STS_BROKER_HOST", "STS_BROKER_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = _parser().parse_args(["serve"])
    assert (args.config, args.host, args.port) == (Path("broker.yaml"), "127.0.0.1", 8000)


@pytest.mark.parametrize("words", [["serve", "--drain", "-1"], ["serve", "--shutdown-deadline", "1.5"],
                                   ["serve", "--port", "70000"]])
def test_bad_values_are_refused(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(words)
    assert exited.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_a_bad_port_variable_stops_serve_only(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STS_BROKER_PORT", "eighty")
    assert _parser().parse_args(["rules", "test", "x.yaml"]).file == Path("x.yaml")
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve"])
    assert "argument --port" in capsys.readouterr().err
