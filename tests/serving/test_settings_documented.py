"""Every server setting is in docs/serving.md's settings table, and every variable there is a
setting: a setting nobody can find is as bad as a documented one that does nothing."""

from __future__ import annotations

import re
from pathlib import Path

from nextbest.serving.settings import ServingSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def documented_variables() -> set[str]:
    text = DOCS.read_text()
    table = text[text.index("## Settings and backends") :]
    table = table[: table.index("\n## ", 1)]
    names: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for token in re.findall(r"`([A-Z_]+)`", first_cell):
            # "`NEXTBEST_WRITE_KEYS`, `_READ_KEYS`": a leading _ continues the NEXTBEST_ prefix
            names.add(token if token.startswith("NEXTBEST_") else "NEXTBEST" + token)
    return names


def test_every_setting_is_documented_and_every_documented_variable_exists() -> None:
    settings = {f"NEXTBEST_{name.upper()}" for name in ServingSettings.model_fields}
    documented = documented_variables()
    assert not settings - documented, f"undocumented settings: {sorted(settings - documented)}"
    assert not documented - settings, f"documented, not settings: {sorted(documented - settings)}"
