"""Does removing noise before training help? Each rule of `data/noise.py`, measured on the demo
shop with noise planted in its training period.

    .venv/bin/python benchmarks/bench_noise.py                # print the table
    .venv/bin/python benchmarks/bench_noise.py --write-docs   # and update benchmarks.md

The demo shop (seed 7, 300,000 events) has no bots and few accidental clicks, so the noise is
planted, in the training events only; the test is the shop's own, untouched:

* bots: 3% more sessions, each 30-150 views of items drawn uniformly from the catalog,
  0.3-1 s apart;
* accidental clicks: after 5% of the views, a view of a random item 0.5 s before the next
  event;
* over-long sessions: 0.5% more sessions of 300-600 views wandering the catalog, 30 s apart.

Every training set is then cleaned by one rule (or all, or none) at the thresholds `nextbest
data stats` reports with, and two models are trained on it and judged on the same test
(next-event protocol, Recall@20 and MRR@20). "clean" is the shop without planted noise: the
ceiling.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench_serving import machine, save_result, write_docs
from nextbest.cli.models import build_model
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop
from nextbest.data.noise import (
    REPORT_ACCIDENTAL_SECONDS,
    REPORT_BOT_EVENTS_PER_MINUTE,
    REPORT_MAX_SESSION_EVENTS,
    NoiseConfig,
    remove_noise,
)
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, evaluate_next_event
from nextbest.events.io import read_events
from nextbest.events.schema import conform_events

BEGIN, END = "<!-- noise:begin -->", "<!-- noise:end -->"
MODELS = ("covisit", "vsknn")
RULES = {
    "none": NoiseConfig(),
    "bot-like sessions": NoiseConfig(bot_events_per_minute=REPORT_BOT_EVENTS_PER_MINUTE),
    "accidental clicks": NoiseConfig(accidental_seconds=REPORT_ACCIDENTAL_SECONDS),
    "over-long sessions": NoiseConfig(max_session_events=REPORT_MAX_SESSION_EVENTS),
    "all three": NoiseConfig(
        bot_events_per_minute=REPORT_BOT_EVENTS_PER_MINUTE,
        accidental_seconds=REPORT_ACCIDENTAL_SECONDS,
        max_session_events=REPORT_MAX_SESSION_EVENTS,
    ),
}


def plant_noise(train: pl.DataFrame, seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    items = train["item_id"].drop_nulls().unique().sort().to_numpy()
    start, end = float(train["timestamp"].min()), float(train["timestamp"].max())
    n_sessions = train["session_id"].n_unique()
    rows: list[dict[str, Any]] = []

    def session(prefix: str, k: int, length: int, gaps: np.ndarray) -> None:
        t = rng.uniform(start, end - float(gaps.sum()))
        for j, item in enumerate(rng.choice(items, length)):
            rows.append(
                {
                    "event_id": f"{prefix}{k}-{j}",
                    "type": "view",
                    "session_id": f"{prefix}{k}",
                    "item_id": str(item),
                    "timestamp": t,
                }
            )
            t += float(gaps[j])

    for k in range(int(0.03 * n_sessions)):
        length = int(rng.integers(30, 151))
        session("bot-", k, length, rng.uniform(0.3, 1.0, length))
    for k in range(int(0.005 * n_sessions)):
        length = int(rng.integers(300, 601))
        session("long-", k, length, np.full(length, 30.0))
    ordered = train.sort(["session_id", "timestamp"], maintain_order=True)
    next_time = ordered["timestamp"].shift(-1)
    same = ordered["session_id"] == ordered["session_id"].shift(-1)
    views = ordered.filter(
        (pl.col("type") == "view") & same & (next_time - pl.col("timestamp") > 1.0)
    )
    picked = views.sample(fraction=0.05, seed=seed)
    following = ordered.with_columns(next_time.alias("_next")).filter(
        pl.col("event_id").is_in(picked["event_id"].implode())
    )
    for k, (sid, nxt) in enumerate(following.select("session_id", "_next").iter_rows()):
        rows.append(
            {
                "event_id": f"oops-{k}",
                "type": "view",
                "session_id": sid,
                "item_id": str(rng.choice(items)),
                "timestamp": float(nxt) - 0.5,
            }
        )
    planted = conform_events(pl.DataFrame(rows))
    return pl.concat([train, planted]).sort("timestamp", maintain_order=True)


def score(train: pl.DataFrame, test_events: pl.DataFrame) -> dict[str, dict[str, float]]:
    sessions = Sessions.from_events(train)
    test = Sessions.from_events(test_events, item_ids=sessions.item_ids, min_session_length=2)
    out = {}
    for name in MODELS:
        model = build_model(name, {})
        model.fit(sessions)
        metrics = evaluate_next_event(model, test, EvalConfig(cutoffs=(20,))).metrics()
        out[name] = {"recall@20": metrics["recall@20"], "mrr@20": metrics["mrr@20"]}
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Measured {result['machine']['date']} on {result['machine']['cpu']}; "
        "`.venv/bin/python benchmarks/bench_noise.py` (demo shop seed 7, 300,000 events, noise "
        f"planted in training: {result['planted']:,} events). Rules at the `nextbest data "
        "stats` thresholds; the same test for every row.",
        "",
        "| training data | events removed | "
        + " | ".join(f"{m} Recall@20 / MRR@20" for m in MODELS)
        + " |",
        "|---|---|" + "---|" * len(MODELS),
    ]
    for row in result["rows"]:
        cells = " | ".join(
            f"{row['scores'][m]['recall@20']:.4f} / {row['scores'][m]['mrr@20']:.4f}"
            for m in MODELS
        )
        lines.append(f"| {row['name']} | {row['removed']:,} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_demo_shop(generate_demo_shop(DemoShopConfig(seed=7, n_events=300_000)), Path(folder))
        clean = read_events(Path(folder) / "train.tsv")
        test = read_events(Path(folder) / "test.tsv")
    noisy = plant_noise(clean)
    rows = [{"name": "clean (no planted noise)", "removed": 0, "scores": score(clean, test)}]
    for name, config in RULES.items():
        cleaned, removed = remove_noise(noisy, config)
        label = (
            "planted noise, nothing removed" if name == "none" else f"planted noise, {name} removed"
        )
        rows.append(
            {
                "name": label,
                "removed": sum(r.events for r in removed),
                "scores": score(cleaned, test),
            }
        )
        print(rows[-1], flush=True)
    result = {"machine": machine(), "planted": noisy.height - clean.height, "rows": rows}
    save_result("noise", result)
    text = table(result)
    print(text)
    if args.write_docs:
        write_docs(text, BEGIN, END, heading="Noise removal before training")


if __name__ == "__main__":
    main()
