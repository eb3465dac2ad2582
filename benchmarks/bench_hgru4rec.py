"""HGRU4Rec against GRU4Rec of the same size and the kNN baselines, on the user protocol.

    .venv/bin/python benchmarks/bench_hgru4rec.py --part demo --seeds 3 --knn --boost --jobs 2 \
        --log benchmarks/results/hgru4rec.jsonl --docs
    .venv/bin/python benchmarks/bench_hgru4rec.py --part ml100k --seeds 3 --docs
    .venv/bin/python benchmarks/bench_hgru4rec.py --part demo --seeds 1 --variants gru4rec,init \
        --demo-config research_share=0 --demo-config teaser_share=0
    .venv/bin/python benchmarks/bench_hgru4rec.py --part demo --write-split data/demo-users
        # then: nextbest evaluate --model hgru4rec --protocol user-last-session \
        #     --train data/demo-users/train.parquet --test data/demo-users/test.parquet

Each user's last session is the test session (`split_users_last_session`, then test items
unseen in training dropped); HGRU4Rec warms the user state on the user's training sessions,
the other models see the test session alone. Parts: `demo`, the demo shop (users with lasting
tastes); `ml100k`, MovieLens 100k ratings cut into sessions by an inactivity gap
(`--gap-hours`); `retailrocket` and `diginetica`, the raw samples with user ids in
../shared/datasets, read by the generic importer with their own sessions.
The GRU models are trained with `--seeds` seeds; the table gives the mean ± half the range.
`--variants` picks the GRU models (gru4rec, auto, init, all, all+output, init+output; auto is
HGRU4Rec's default, which chooses its user level on a validation split inside fit; the others
are set with user_level=on), `--demo-config` changes a `DemoShopConfig` field (to measure a
shop without one of its planted habits), `--boost` adds a reference row that is not a model:
GRU4Rec's scores plus a bonus for the items of the user's last sessions, which measures what
a user's history holds that the session does not show.
`--jobs` trains that many models side by side (each in its own process, one thread each).
Results go to stdout as JSON lines, to `--log` and, with `--docs`, into
benchmarks/records/hgru4rec.md between `<!-- hgru4rec:begin -->` and `<!-- hgru4rec:end -->`
(docs/benchmarks.md keeps the figures at the defaults): each part has its own block there,
so running one part leaves the others' tables as they were.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from machine_info import cpu_name
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.prepare import sessionize
from nextbest.data.sessions import Sessions
from nextbest.data.splits import drop_unseen_items, split_users_last_session
from nextbest.evaluation.next_event import EvalConfig
from nextbest.evaluation.user_protocol import FOCUS_HISTORY, evaluate_user_last_session
from nextbest.events.importers import import_file
from nextbest.models.base import SessionModel
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.hgru4rec import HGRU4Rec, HGRU4RecConfig
from nextbest.models.knn import SKNN, STAN, VSKNN, VSTAN

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
# The full per-bucket tables are a record beside the benchmarks; docs/benchmarks.md keeps the
# figures at the defaults.
DOCS = ROOT / "benchmarks" / "records" / "hgru4rec.md"
BEGIN, END = "<!-- hgru4rec:begin -->", "<!-- hgru4rec:end -->"
CUTOFFS = (5, 20)

# One size for both GRU models; the session part of HGRU4Rec is exactly this GRU4Rec.
BASE = HGRU4RecConfig(
    loss="cross-entropy",
    layers=(100,),
    user_layer=100,
    batch_size=64,
    n_epochs=8,
    learning_rate=0.05,
    n_sample=2048,
    dropout_p_hidden=0.0,
    threads=1,
    user_level="on",  # each variant as set; the "auto" variant chooses on a validation split
)
# The HGRU4Rec variants, by the key `--variants` takes (with "gru4rec"), and their row names.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "auto": ("hgru4rec (auto: the default)", {"user_level": "auto"}),
    "init": ("hgru4rec (init)", {"user_propagation": "init"}),
    "all": ("hgru4rec (all)", {"user_propagation": "all"}),
    "all+output": ("hgru4rec (all + output)", {"user_propagation": "all", "user_to_output": True}),
    "init+output": (
        "hgru4rec (init + output)",
        {"user_propagation": "init", "user_to_output": True},
    ),
}
DEFAULT_VARIANTS = ["gru4rec", "init", "all", "all+output"]


# The reference row `--boost` adds: GRU4Rec's scores plus BOOST for every item of the user's
# last BOOST_SESSIONS training sessions, times BOOST_DECAY per session further back.
BOOST, BOOST_DECAY, BOOST_SESSIONS = 1.0, 0.7, 5
BOOST_NAME = "gru4rec + user's recent items (reference)"
PARTS = ("demo", "ml100k", "retailrocket", "diginetica")


def demo_events(n_events: int, n_users: int, changes: dict[str, Any]) -> tuple[pl.DataFrame, str]:
    config = DemoShopConfig(seed=7, n_events=n_events, n_users=n_users, **changes)  # type: ignore[arg-type]
    shop = generate_demo_shop(config)
    events = shop.events.filter(pl.col("item_id").is_not_null())
    label = f"demo shop, seed 7, {n_events:,} events, {n_users:,} users"
    label += "".join(f", {k}={v}" for k, v in changes.items())
    return events, label


def ml100k_events(gap_hours: float) -> tuple[pl.DataFrame, str]:
    events = import_file("movielens", DATASETS / "ml-100k").events
    events = sessionize(events, gap_hours * 3600.0)
    return events, f"ml-100k, sessions cut at {gap_hours:g} h without a rating"


def sample_events(part: str) -> tuple[pl.DataFrame, str]:
    """The raw samples with user ids, through the generic importer (any file with a user
    column), with the samples' own sessions."""
    if part == "retailrocket":
        path = DATASETS / "retailrocket_raw_sample" / "sample_retailrocket.csv"
        columns = {"timestamp": "timestamp", "user_id": "user_id", "item_id": "item_id"}
        options: dict[str, Any] = {"separator": "\t", "time_format": "s"}
    else:  # Diginetica: no time of day; `timeframe` (ms) orders a session's events
        path = DATASETS / "diginetica_raw_sample" / "sample_train-item-views.csv"
        columns = {"timestamp": "timeframe", "user_id": "user_id", "item_id": "item_id"}
        options = {"separator": ";", "time_format": "ms", "null_values": ["NA"]}
    events = import_file(
        "generic", path, columns=columns | {"session_id": "session_id"}, **options
    ).events
    if part == "diginetica":  # the day first, so that sessions keep their order in time
        day = pl.read_csv(path, separator=";", columns=["eventdate"], infer_schema=False)
        days = day["eventdate"].str.to_date().cast(pl.Int64) * 86_400.0
        events = events.with_columns(pl.col("timestamp") + days)
    return events, f"{part} raw sample ({path.name}), generic importer"


def write_split(events: pl.DataFrame, folder: Path) -> None:
    """The user split as the files `nextbest evaluate --protocol user-last-session` reads:
    train.parquet (every session but the users' last ones) and test.parquet (those, with the
    items unseen in training dropped)."""
    split = split_users_last_session(events)
    folder.mkdir(parents=True, exist_ok=True)
    split.train.write_parquet(folder / "train.parquet")
    drop_unseen_items(split.test, split.train).write_parquet(folder / "test.parquet")
    print(f"{folder}/train.parquet and test.parquet written", file=sys.stderr)


def user_split(events: pl.DataFrame, validate: bool) -> tuple[Sessions, Sessions]:
    """Each user's last session is the test; with `validate`, their last training session is,
    and the model learns from the sessions before it (to choose settings without the test)."""
    if validate:
        events = split_users_last_session(events).train
    split = split_users_last_session(events)
    train = Sessions.from_events(split.train)
    test_events = drop_unseen_items(split.test, split.train)
    return train, Sessions.from_events(test_events, item_ids=train.item_ids, min_session_length=2)


_SPLITS: dict[tuple[str, str], tuple[Sessions, Sessions, str]] = {}


def load_part(part: str, args: argparse.Namespace) -> tuple[Sessions, Sessions, str]:
    """The (train, test, label) of a part, built once per process."""
    key = (part, json.dumps(args.demo_config, sort_keys=True))
    if key not in _SPLITS:
        if part == "demo":
            events, label = demo_events(args.demo_events, args.demo_users, args.demo_config)
        elif part == "ml100k":
            events, label = ml100k_events(args.gap_hours)
        else:
            events, label = sample_events(part)
        if args.validate:
            label += ", validation (each user's last training session)"
        _SPLITS[key] = (*user_split(events, args.validate), label)
    return _SPLITS[key]


class RecentItemsBoost:
    """Not a model: a fitted GRU4Rec whose scores get a bonus for the items of the user's last
    sessions. It measures how much a user's history holds that the session does not show."""

    def __init__(self, model: GRU4Rec) -> None:
        self.model = model
        self.n_items, self.item_ids = model.n_items, model.item_ids

    def fit(self, train: Sessions) -> RecentItemsBoost:
        return self

    def warm_up(self, history: Sessions, owned: list[np.ndarray]) -> tuple[Any, np.ndarray]:
        bonus = np.zeros((len(owned), self.n_items), dtype=np.float32)  # [B, n_items]
        for row, sessions in enumerate(owned):
            for back, s in enumerate(sessions[::-1][:BOOST_SESSIONS]):
                items = history.items[history.offsets[s] : history.offsets[s + 1]]
                bonus[row, items] = np.maximum(bonus[row, items], BOOST * BOOST_DECAY**back)
        return self.model.initial_state(len(owned)), bonus

    def initial_state(self, n: int) -> tuple[Any, np.ndarray]:
        return self.model.initial_state(n), np.zeros((n, self.n_items), dtype=np.float32)

    def step(self, state: Any, items: np.ndarray, times: np.ndarray) -> Any:
        return self.model.step(state[0], items, times), state[1]

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return self.model.select(state[0], rows), state[1][rows]

    def score(self, state: Any) -> np.ndarray:
        scores: np.ndarray = self.model.score(state[0]) + state[1]  # [B, n_items]
        return scores


def run(
    name: str, model: SessionModel[Any, Any], train: Sessions, test: Sessions
) -> dict[str, Any]:
    started = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - started
    users = evaluate_user_last_session(model, train, test, EvalConfig(cutoffs=CUTOFFS))
    first = users.result.positions == 1
    focus = users.history >= FOCUS_HISTORY
    ranks = users.result.ranks
    return {
        "model": name,
        "overall": {
            k: v
            for k, v in users.result.metrics().items()
            if k.split("@")[0] in ("recall", "mrr", "ndcg")
        },
        "focus": users.focus(),
        "by_history": users.by_history(),
        "focus_first_mrr@20": float(
            np.mean(np.where(ranks[focus & first] <= 20, 1 / ranks[focus & first], 0))
        ),
        "focus_later_mrr@20": float(
            np.mean(np.where(ranks[focus & ~first] <= 20, 1 / ranks[focus & ~first], 0))
        ),
        "cases": users.result.cases,
        "fit_seconds": round(fit_seconds, 1),
        "eval_seconds": round(users.result.eval_seconds, 1),
        **getattr(model, "fit_report", dict)(),  # HGRU4Rec: its user level, chosen or as set
    }


def gru_model(
    name: str, seed: int, epochs: int, user_level: dict[str, Any]
) -> SessionModel[Any, Any]:
    """GRU4Rec, or an HGRU4Rec variant with the `--hgru-config` changes (user level only, so
    that GRU4Rec stays the same size as HGRU4Rec's session path)."""
    base = replace(BASE, seed=seed, n_epochs=epochs)
    if name == "gru4rec":
        return GRU4Rec(base.session_config())
    return HGRU4Rec(replace(base, **VARIANTS[name][1], **user_level))


def variant_name(name: str, user_level: dict[str, Any]) -> str:
    if name == "gru4rec":
        return name
    changes = ", ".join(f"{k} {v}" for k, v in user_level.items())
    return VARIANTS[name][0] + (f" [{changes}]" if changes else "")


def knn_models() -> dict[str, SessionModel[Any, Any]]:
    return {"sknn": SKNN(), "vsknn": VSKNN(), "stan": STAN(), "vstan": VSTAN()}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f}"


def run_task(part: str, args: argparse.Namespace, seed: int, name: str) -> list[dict[str, Any]]:
    """One model (seed 0: a kNN baseline by name; else a GRU model by variant key)."""
    train, test, _ = load_part(part, args)
    extra: dict[str, Any] = {"seed": seed, "part": part}
    if part == "demo" and args.demo_config:
        extra["demo_config"] = args.demo_config
    if args.hgru_config:
        extra["hgru_config"] = args.hgru_config
    if args.validate:
        extra["validate"] = True
    if seed == 0:
        model = knn_models()[name]
        rows = [run(name, model, train, test) | extra]
    else:
        model = gru_model(name, seed, args.epochs, args.hgru_config)
        rows = [run(variant_name(name, args.hgru_config), model, train, test) | extra]
        if name == "gru4rec" and args.boost:
            assert isinstance(model, GRU4Rec)
            boosted = cast(SessionModel[Any, Any], RecentItemsBoost(model))
            rows.append(run(BOOST_NAME, boosted, train, test) | extra)
    for row in rows:
        row["load"] = load()
        print(json.dumps(row), flush=True)
    return rows


def bench(args: argparse.Namespace, part: str) -> tuple[str, list[dict[str, Any]]]:
    train, test, label = load_part(part, args)
    tasks = [(seed, name) for seed in range(1, args.seeds + 1) for name in args.variants]
    if part in ("ml100k", "retailrocket", "diginetica") or args.knn:
        tasks += [(0, name) for name in knn_models()]
    info = (
        f"{label}: {train.n_sessions:,} training sessions ({train.n_events:,} events), "
        f"{test.n_sessions:,} test sessions ({int(test.lengths.sum() - test.n_sessions):,} cases)"
    )
    if test.n_sessions == 0:
        print(f"{info}: no user has two sessions, nothing to test", file=sys.stderr)
        return info, []
    if args.jobs > 1:  # models side by side, each in its own process with one thread
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_task, part, args, seed, name) for seed, name in tasks]
            done = [future.result() for future in futures]
    else:
        done = [run_task(part, args, seed, name) for seed, name in tasks]
    rows = [row for task_rows in done for row in task_rows]
    names = [variant_name(key, args.hgru_config) for key in VARIANTS]
    order = {n: i for i, n in enumerate(["gru4rec", BOOST_NAME, *names])}
    rows.sort(key=lambda r: (r["seed"] == 0, order.get(r["model"], 99), r["seed"]))
    return info, rows


def _mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {(max(values) - min(values)) / 2:.4f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Mean ± half the range over seeds, per model: users with 3+ earlier sessions, then all."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    buckets = list(dict.fromkeys(b for r in rows for b in r["by_history"]))
    head = ["model", "seeds", f"MRR@20 {FOCUS_HISTORY}+", f"Recall@20 {FOCUS_HISTORY}+"]
    head += [f"MRR@20 {FOCUS_HISTORY}+ pos 1", "MRR@5 all", "MRR@20 all", "Recall@5 all"]
    head += ["Recall@20 all", "NDCG@20 all"] + [f"MRR@20 [{b}]" for b in buckets] + ["fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        mine = [r for r in rows if r["model"] == name]

        def cell(get: Any, mine: list[dict[str, Any]] = mine) -> str:
            return _mean_spread([float(get(r)) for r in mine])

        cells = [name, str(len(mine)), cell(lambda r: r["focus"]["mrr@20"])]
        cells += [cell(lambda r: r["focus"]["recall@20"]), cell(lambda r: r["focus_first_mrr@20"])]
        for key in ("mrr@5", "mrr@20", "recall@5", "recall@20", "ndcg@20"):
            cells.append(cell(lambda r, key=key: r["overall"][key]))
        for b in buckets:
            cells.append(
                cell(lambda r, b=b: r["by_history"].get(b, {}).get("mrr@20", float("nan")))
            )
        cells.append(f"{np.mean([r['fit_seconds'] for r in mine]):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    cases = {b: int(rows[0]["by_history"][b]["cases"]) for b in buckets}
    chosen = [r for r in rows if r.get("user_level", {}).get("asked") == "auto"]
    if chosen:
        lines.append("")
        lines.append(
            "User level chosen by auto: "
            + ", ".join(f"seed {r['seed']}: {r['user_level']['chosen']}" for r in chosen)
        )
    lines.append("")
    lines.append(
        "Cases per bucket of earlier sessions: "
        + ", ".join(f"[{b}] {n:,}" for b, n in cases.items())
    )
    return "\n".join(lines)


def write_docs(sections: list[tuple[str, str, str]], command: str) -> None:
    """Put each (part, info, table) into its own block of the HGRU4Rec section of the docs,
    keeping the blocks of parts not run this time."""
    text = DOCS.read_text() if DOCS.exists() else ""
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    section = text[start:end]
    if not section.strip():
        section = (
            "\n## HGRU4Rec on the user protocol\n\n"
            "See docs/hgru4rec.md for what the columns mean.\n"
        )
    stamp = (
        f"`{command}`, {time.strftime('%Y-%m-%d')}, {cpu_name()} with "
        f"{os.cpu_count()} cores shared with other jobs (load at the end {load()})"
    )
    for part, info, tab in sections:
        block = f"<!-- part:{part} -->\n**{info}**\n\n{stamp}\n\n{tab}\n<!-- part:{part}:end -->\n"
        opening, closing = f"<!-- part:{part} -->", f"<!-- part:{part}:end -->\n"
        if opening in section and closing in section:
            i, j = section.index(opening), section.index(closing) + len(closing)
            section = section[:i] + block + section[j:]
        else:
            section = section.rstrip("\n") + "\n\n" + block
    DOCS.write_text(text[:start] + section + text[end:])


def _changes(values: list[str], check: Any) -> dict[str, Any]:
    """`name=value` pairs as config fields (ints, floats or text), checked by `check(**pairs)`."""
    out: dict[str, Any] = {}
    for pair in values:
        name, _, text = pair.partition("=")
        for kind in (int, float, str):
            try:
                out[name] = kind(text)
                break
            except ValueError:
                continue
    check(**out)  # a bad name or value stops here
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=BASE.n_epochs)
    parser.add_argument(
        "--variants",
        type=lambda text: text.split(","),
        default=DEFAULT_VARIANTS,
        help="GRU models to run, comma-separated: gru4rec," + ",".join(VARIANTS),
    )
    parser.add_argument(
        "--hgru-config",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a user-level HGRU4Rec field, e.g. dropout_p_user=0.5 (repeatable)",
    )
    parser.add_argument(
        "--validate", action="store_true", help="test on each user's last training session"
    )
    parser.add_argument("--demo-events", type=int, default=300_000)
    parser.add_argument("--demo-users", type=int, default=3_000)
    parser.add_argument(
        "--demo-config",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a DemoShopConfig field, e.g. research_share=0 (repeatable)",
    )
    parser.add_argument("--gap-hours", type=float, default=1.0)
    parser.add_argument("--knn", action="store_true", help="kNN baselines on the demo shop too")
    parser.add_argument(
        "--boost", action="store_true", help="add the reference row: GRU4Rec + user's recent items"
    )
    parser.add_argument("--jobs", type=int, default=1, help="models trained side by side")
    parser.add_argument("--log", type=Path, default=None, help="append JSON lines here")
    parser.add_argument("--docs", action="store_true", help="write the tables into the docs")
    parser.add_argument(
        "--write-split",
        type=Path,
        default=None,
        metavar="DIR",
        help="only write the part's user split to DIR/train.parquet and DIR/test.parquet",
    )
    args = parser.parse_args()
    unknown = set(args.variants) - {"gru4rec", *VARIANTS}
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; use gru4rec," + ",".join(VARIANTS))
    args.demo_config = _changes(args.demo_config, DemoShopConfig)
    named = {pair.partition("=")[0] for pair in args.hgru_config}
    session_fields = named & set(asdict(BASE.session_config()))
    if session_fields:
        parser.error(f"--hgru-config: {sorted(session_fields)} would change the session path")
    args.hgru_config = _changes(args.hgru_config, lambda **c: replace(BASE, **c))
    parts = list(PARTS) if args.part == "all" else [args.part]
    if args.write_split is not None:
        if len(parts) != 1 or parts[0] not in ("demo", "ml100k"):
            parser.error("--write-split takes one --part: demo or ml100k")
        if parts[0] == "demo":
            events, _ = demo_events(args.demo_events, args.demo_users, args.demo_config)
        else:
            events, _ = ml100k_events(args.gap_hours)
        write_split(events, args.write_split)
        return
    sections = []
    for part in parts:
        info, rows = bench(args, part)
        if not rows:
            continue
        if args.log is not None:
            args.log.parent.mkdir(parents=True, exist_ok=True)
            with args.log.open("a") as log:
                log.writelines(json.dumps(r) + "\n" for r in rows)
        key = part  # a changed shop, HGRU4Rec or split gets a block of its own in the docs
        changes = {**args.demo_config, **args.hgru_config} if part == "demo" else args.hgru_config
        if changes:
            key += "(" + ",".join(f"{k}={v}" for k, v in changes.items()) + ")"
        if args.validate:
            key += "(validation)"
        sections.append((key, info, table(rows)))
        print(info + "\n" + table(rows), file=sys.stderr, flush=True)
    if args.docs:
        write_docs(sections, "benchmarks/bench_hgru4rec.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
