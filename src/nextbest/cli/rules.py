"""`nextbest rules ...`: look at the purchase rules a model version learned."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nextbest.cli.common import console, friendly_errors
from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.models.store import latest_version, list_versions, nextbest_home
from nextbest.recommend.rules.purchase_rules import (
    KINDS,
    RULES_FILE,
    CategoryRule,
    PurchaseRules,
)

rules_app = typer.Typer(no_args_is_help=True, help="Look at the learned purchase rules.")

SHOWN_COMPLEMENTS = 3  # per row: the table stays one line per category on a 160-column log


@rules_app.command()
@friendly_errors
def show(
    version: Annotated[
        str | None, typer.Option(help="the model version (folder name); default: the newest")
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="only categories whose path contains this text")
    ] = None,
    limit: Annotated[int, typer.Option(help="show at most this many rows (0: all)")] = 30,
) -> None:
    """Print the purchase rules of a model version under $NEXTBEST_HOME/models."""
    if limit < 0:
        raise ValueError(f"--limit must be 0 (all) or more, not {limit}")
    folder = version_folder(nextbest_home(), version)
    rules = PurchaseRules.load(folder)
    if rules is None:
        raise ValueError(
            f"version {folder.name} has no {RULES_FILE}: it was trained without purchase rules "
            "(train with --items CATALOG on events with purchases)"
        )
    rows = sorted(rules, key=_order)
    if category is not None:
        needle = category.casefold()
        rows = [rule for rule in rows if needle in rule.category.casefold()]
        if not rows:
            raise ValueError(f"no category of version {folder.name} contains {category!r}")
    shown = rows if limit == 0 else rows[:limit]
    console.print(f"version {folder.name}", highlight=False)
    console.print(rules.summary(), highlight=False)
    console.print(_table(shown, _short_names(rules), rules.config.min_follow_days))
    if len(shown) < len(rows):
        console.print(f"{len(shown)} of {len(rows)} categories shown (--limit 0 shows all)")


def version_folder(home: Path, version: str | None) -> Path:
    if version is None:
        newest = latest_version(home)
        if newest is None:
            raise ValueError(f"no model versions under {home / 'models'}: run nextbest train first")
        return newest
    versions = {folder.name: folder for folder in list_versions(home)}
    if version not in versions:
        known = ", ".join(list(versions)[-3:]) or "none"
        raise ValueError(
            f"no model version {version!r} under {home / 'models'} (the newest: {known})"
        )
    return versions[version]


def _order(rule: CategoryRule) -> tuple[int, int, str]:
    """Durables first, then consumables, regular and unknown; most bought first within."""
    return KINDS.index(rule.kind), -rule.buyers, rule.category


def _short_names(rules: PurchaseRules) -> dict[str, str]:
    """Each category's leaf name where no other category shares it, else its full path."""
    paths = set(rules.categories)
    paths.update(other for rule in rules for other, _ in rule.complements)
    leaves = {path: path.rsplit(CATEGORY_SEPARATOR, 1)[-1] for path in paths}
    taken = Counter(leaves.values())
    return {path: leaf if taken[leaf] == 1 else path for path, leaf in leaves.items()}


def _table(rows: list[CategoryRule], names: dict[str, str], follow_days: float) -> Table:
    caption = (
        f"back: buyers seen again {follow_days:g}+ days after buying, of whom re-buy bought it "
        "again and revisit came back to it; cycle and hold in days"
    )
    table = Table(show_edge=False, header_style="bold", caption=caption, caption_justify="left")
    table.add_column("category", no_wrap=True)
    table.add_column("kind")
    for header in ("buyers", "back", "re-buy", "revisit", "cycle", "hold"):
        table.add_column(header, justify="right")
    table.add_column("complements (lift)")
    for rule in rows:
        complements = [
            f"{names.get(other, other)} {lift:.1f}"
            for other, lift in rule.complements[:SHOWN_COMPLEMENTS]
        ]
        if len(rule.complements) > SHOWN_COMPLEMENTS:
            complements.append(f"+{len(rule.complements) - SHOWN_COMPLEMENTS}")
        table.add_row(
            rule.category,
            rule.kind,
            f"{rule.buyers:,}",
            f"{rule.returning:,}",
            f"{rule.rebuy_share:.0%}",
            f"{rule.revisit_share:.0%}",
            "-" if rule.cycle_days is None else f"{rule.cycle_days:.1f}",
            "-" if not rule.hold_days else f"{rule.hold_days:.0f}",
            ", ".join(complements) or "-",
        )
    return table
