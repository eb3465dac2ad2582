"""`nextbest batch`: a placement's lists for a file of users, for an email campaign."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from nextbest.cli.common import console, friendly_errors, progress_bar, server_settings
from nextbest.events.schema import MAX_ID_LENGTH

OUTPUT_SCHEMA = {
    "user_id": pl.String(),
    "position": pl.Int32(),
    "item_id": pl.String(),
    "score": pl.Float64(),
    "source": pl.String(),
    "reason": pl.String(),
    "recommendation_id": pl.String(),
    "placement": pl.String(),
    "model_version": pl.String(),
    "generated_at": pl.Float64(),
}


def read_users(path: Path) -> tuple[list[str], list[str]]:
    """The user ids of `path` (a `user_id` column of a .csv/.tsv/.parquet file, or one id a
    line of a .txt file), first appearance first; and the problems of the rows skipped, by
    line (an empty or over-long id; a repeat is skipped silently)."""
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    if path.suffix == ".txt":
        values: Sequence[object] = path.read_text().splitlines()
        first_line = 1
    elif path.suffix in (".csv", ".tsv", ".parquet"):
        try:
            frame = (
                pl.read_parquet(path)
                if path.suffix == ".parquet"
                else pl.read_csv(
                    path, separator="\t" if path.suffix == ".tsv" else ",", infer_schema=False
                )
            )
        except pl.exceptions.PolarsError as exc:
            raise ValueError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        if "user_id" not in frame.columns:
            raise ValueError(
                f"{path} has no user_id column (it has {', '.join(frame.columns[:8])})"
            )
        values = frame["user_id"].to_list()
        first_line = 2 if path.suffix != ".parquet" else 1  # a text file's header is line 1
    else:
        raise ValueError(f"cannot tell the format of {path.name}: use .csv, .tsv, .parquet or .txt")
    users: dict[str, None] = {}
    problems = []
    for offset, value in enumerate(values):
        where = f"{'row' if path.suffix == '.parquet' else 'line'} {first_line + offset}"
        text = "" if value is None else str(value).strip()
        if not text:
            problems.append(f"{where}: an empty user id")
        elif len(text) > MAX_ID_LENGTH:
            problems.append(f"{where}: a user id longer than {MAX_ID_LENGTH} characters")
        else:
            users.setdefault(text, None)
    return list(users), problems


@friendly_errors
def batch(
    users_path: Annotated[
        Path,
        typer.Option("--users", help="user ids: a user_id column (.csv/.tsv/.parquet) or .txt"),
    ],
    out: Annotated[Path, typer.Option(help="the lists (.parquet, one row per item)")],
    placement: Annotated[str, typer.Option(help="the placement that answers")] = "email",
    n: Annotated[int, typer.Option(help="items per user")] = 10,
    record: Annotated[
        bool, typer.Option(help="keep each list for attribution, as the server does")
    ] = True,
) -> None:
    """A placement's lists for every user of a file (an email campaign): the served model
    version, the catalog, the live counts and the users' records, as the server would answer.
    Each list has a recommendation_id to put in the email's links."""
    from nextbest.serving.batch import BatchRecommender

    if not 1 <= n <= 100:
        raise ValueError(f"--n must be between 1 and 100, not {n}")
    if out.suffix != ".parquet":
        raise ValueError(f"--out writes Parquet: give a .parquet path, not {out.name}")
    users, problems = read_users(users_path)
    for problem in problems[:10]:
        console.print(f"skipped {problem}", highlight=False)
    if len(problems) > 10:
        console.print(f"... and {len(problems) - 10} more skipped rows")
    if not users:
        raise ValueError(f"{users_path} holds no user id")
    settings = server_settings()
    started = time.time()
    rows: list[dict[str, object]] = []
    with BatchRecommender.open(settings, record=record) as recommender:
        recommender.check(placement)  # an unknown placement, or one that needs an item
        version = recommender.model.version if recommender.model else None
        with progress_bar() as bar:
            task = bar.add_task(f"{placement} lists", total=len(users))
            for user_id in users:
                listed = recommender.user_list(user_id, placement, n)
                for position, item in enumerate(listed.items, start=1):
                    rows.append(
                        {"user_id": user_id, "position": position, "item_id": item.item_id,
                         "score": item.score, "source": item.source, "reason": item.reason,
                         "recommendation_id": listed.recommendation_id, "placement": placement,
                         "model_version": version, "generated_at": started}
                    )  # fmt: skip
                bar.advance(task)
    out.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema=OUTPUT_SCHEMA).write_parquet(out)
    took = time.time() - started
    console.print(
        f"{len(users):,} lists of the {placement} placement ({len(rows):,} items, model "
        f"{version or 'none: live popularity'}) in {took:.1f} s -> {out}"
        + ("; kept for attribution" if record else "")
    )
