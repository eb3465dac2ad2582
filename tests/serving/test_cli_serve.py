"""`nextbest serve` refuses bad settings with one line that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from nextbest.cli.serve import serve

app = typer.Typer()
app.command()(serve)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "2"], {}, "NEXTBEST_REDIS_URL"),
        (["--workers", "0"], {}, "--workers must be >= 1"),
        (["--port", "70000"], {}, "--port must be between"),
        (["--log-level", "loud"], {}, "--log-level"),
        ([], {"NEXTBEST_STATE_TTL_SECONDS": "-1"}, "NEXTBEST_STATE_TTL_SECONDS"),
        ([], {"NEXTBEST_DATABASE_URL": "mysql://x"}, "unsupported database URL"),
        ([], {"NEXTBEST_WRITE_KEYS": "short"}, "16 or more characters"),
    ],
)
def test_bad_settings_end_with_a_clear_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # the console wraps long lines
    assert message in output and "Traceback" not in output


def test_a_malformed_placements_file_stops_serve_with_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    bad = tmp_path / "placements.toml"
    monkeypatch.setenv("NEXTBEST_PLACEMENTS", str(bad))  # so that the one serve sets is undone
    bad.write_text("[placements.home]\ngenerators = [{ source = 'session', k = 0 }]\n")
    result = CliRunner().invoke(app, ["--placements", str(bad)], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert "placements.home.generators[0].k" in result.output and str(bad) in result.output
    missing = CliRunner().invoke(app, ["--placements", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "no such placements file" in missing.output
