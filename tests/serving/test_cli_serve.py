"""`nextbest serve` refuses bad settings with one line that says what to do."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from nextbest.cli.main import app as main_app
from nextbest.cli.serve import serve
from nextbest.serving.auth import (
    KEYS_FILE,
    ApiKeys,
    NoKeysConfigured,
    read_keys_file,
    resolve_keys,
)

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


def test_serve_without_any_keys_refuses_to_start_and_says_how_to_make_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    for name in ("NEXTBEST_WRITE_KEYS", "NEXTBEST_READ_KEYS", "NEXTBEST_ADMIN_KEYS",
                 "NEXTBEST_KEYS_FILE", "NEXTBEST_DEMO"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, [], terminal_width=200)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "no API keys configured" in output and "nextbest keys new" in output
    assert not (tmp_path / KEYS_FILE).exists()  # nothing invented behind the operator's back


def test_keys_new_writes_an_owner_only_file_that_serve_reads_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    made = CliRunner().invoke(main_app, ["keys", "new"], terminal_width=200)
    assert made.exit_code == 0, made.output
    path = tmp_path / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = read_keys_file(path)
    assert len(keys.write) == len(keys.read) == len(keys.admin) == len(keys.browser) == 1
    assert len(keys.identity_secrets) == 1
    assert resolve_keys(ApiKeys(), None, tmp_path).current == keys  # what serve will use
    again = CliRunner().invoke(main_app, ["keys", "new"], terminal_width=200)
    assert again.exit_code == 2 and "--force" in again.output
    assert read_keys_file(path) == keys
    forced = CliRunner().invoke(main_app, ["keys", "new", "--force"])
    assert forced.exit_code == 0 and read_keys_file(path) != keys


def test_demo_mode_alone_makes_keys_when_none_are_configured(tmp_path: Path) -> None:
    with pytest.raises(NoKeysConfigured, match="nextbest keys new"):
        resolve_keys(ApiKeys(), None, tmp_path)
    keys = resolve_keys(ApiKeys(), None, tmp_path, demo=True).current
    assert keys.write and keys.read and keys.admin and keys.browser and keys.identity_secrets
    assert read_keys_file(tmp_path / KEYS_FILE) == keys
