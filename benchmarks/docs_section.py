"""Writing a benchmark's figures into docs/benchmarks.md between its markers.

    replace_section(text, "<!-- name:begin -->", "<!-- name:end -->", "Heading")

The text between the markers is replaced; a document without them gets a new `## Heading`
section at its end holding them. Every benchmark's `--write-docs` goes through here.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(
    text: str, begin: str, end: str, heading: str, path: Path = DOCS, level: str = "##"
) -> None:
    """Put `text` between `begin` and `end` in `path` (a new section when they are absent)."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current:
        before, rest = current.split(begin, 1)
        current = before + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + f"\n\n{level} {heading}\n\n" + block + "\n"
    path.write_text(current)
