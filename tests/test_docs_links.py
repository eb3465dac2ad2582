"""Every relative link in the README and docs/ reaches a file, and every `#anchor` a heading
of that file (GitHub's rule: lower case, punctuation dropped, spaces to hyphens), so moving a
section or a page cannot leave a reader at a dead end."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "benchmarks" / "records").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.*)")


def anchors(text: str) -> set[str]:
    """The anchors GitHub makes for the headings of `text` (code blocks skipped)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else HEADING.match(line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            repeat = seen.get(slug, 0)
            seen[slug] = repeat + 1
            found.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return found


def dead_links(path: Path, text: str) -> list[str]:
    problems = []
    for match in LINK.finditer(text):
        link = match.group(1)
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        target_name, _, anchor = link.partition("#")
        where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        if not target_name:  # a heading of this page
            target, target_text = path, text
        else:
            target = (path.parent / target_name).resolve()
            if not target.exists():
                problems.append(f"{where}: {link}: no such file")
                continue
            target_text = target.read_text() if target.suffix == ".md" else ""
        if anchor and target.suffix == ".md" and anchor not in anchors(target_text):
            problems.append(f"{where}: {link}: no heading #{anchor} in {target.name}")
    return problems


def test_every_link_reaches_its_file_and_heading() -> None:
    problems = [p for path in DOCUMENTS for p in dead_links(path, path.read_text())]
    assert not problems, "\n".join(problems)


def test_a_dead_anchor_and_a_missing_file_are_reported() -> None:
    text = "# Top\n\n## A `code` heading, too\n\n[ok](#a-code-heading-too) [gone](#nowhere)\n"
    text += "[file](no-such-page.md) [guide](../README.md#quick-start-two-commands)\n"
    text += "[serving](serving.md#no-such-section)\n"
    page = ROOT / "docs" / "page.md"
    problems = dead_links(page, text)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "#nowhere: no heading #nowhere in page.md",
        "no-such-page.md: no such file",
        "serving.md#no-such-section: no heading #no-such-section in serving.md",
    ]
