"""The two-stage pipeline against the best single model, with its ablations.

    .venv/bin/python benchmarks/bench_twostage.py --dataset rsc15_100k
    .venv/bin/python benchmarks/bench_twostage.py --dataset demo --singles --save-data /tmp/twostage

Runs `benchmarks/pipelines/<dataset>.toml` with the protocol of `nextbest evaluate --pipeline`
(generators fitted before a cut of the training data, the ranker on the sessions after it, the
generators refitted on all of it, next-event protocol on the test split, conservative ties).
Then, on the same candidates: every other ranker in place of the pipeline's, and the
pipeline's ranker without each feature group. `--singles` also evaluates every generator
model alone on the test split in the same run (the demo shop has no single-model figures in
docs/benchmarks.md); the public splits' best single models are the baselines table's.
`--save-data DIR` writes the ranker's training candidates and the test candidates as
RankingData (`<dataset>_click_train.npz`, `<dataset>_click_test.npz`): the click-prediction
time split of the rankers' AUC benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from docs_section import replace_section
from nextbest.data.sessions import Sessions
from nextbest.evaluation.metrics import mrr_at, recall_at
from nextbest.evaluation.next_event import EvalConfig, evaluate_next_event
from nextbest.events.io import read_events
from nextbest.events.schema import items_of_table
from nextbest.models.registry import build_model
from nextbest.twostage.data import save_ranking_data
from nextbest.twostage.features import GROUPS
from nextbest.twostage.metrics import auc, gauc
from nextbest.twostage.protocol import load_spec, make_ranker, run_pipeline

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
SPLITS = {
    "rsc15_100k": ("train_full.tsv", "test.tsv"),
    "diginetica": ("train.tsv", "test.tsv"),
    "retailrocket": ("train.tsv", "test.tsv"),
}
# the best single model's MRR@20 in docs/benchmarks.md (the baselines table)
BEST_SINGLE = {
    "rsc15_100k": ("stan", 0.3728, 0.6849),
    "diginetica": ("vstan", 0.1852, 0.5032),
    "retailrocket": ("vstan", 0.2952, 0.5629),
}


def load(
    dataset: str, shared: Path, demo_dir: Path, files: tuple[str, str] | None = None
) -> tuple[Sessions, Sessions, Any]:
    if dataset == "demo":
        if not (demo_dir / "train.tsv").exists():
            from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop

            write_demo_shop(generate_demo_shop(DemoShopConfig(seed=7)), demo_dir)
        folder, (train_file, test_file) = demo_dir, ("train.tsv", "test.tsv")
        import polars as pl

        from nextbest.events.schema import conform_items

        catalog = items_of_table(conform_items(pl.read_csv(demo_dir / "items.csv")))
    else:
        folder, (train_file, test_file) = shared / dataset, files or SPLITS[dataset]
        catalog = None
    train = Sessions.from_events(read_events(folder / train_file))
    test = Sessions.from_events(
        read_events(folder / test_file), item_ids=train.item_ids, min_session_length=2
    )
    return train, test, catalog


def figures(ranks: np.ndarray) -> dict[str, float]:
    return {
        "recall@20": recall_at(ranks, 20),
        "mrr@20": mrr_at(ranks, 20),
        "recall@5": recall_at(ranks, 5),
        "mrr@5": mrr_at(ranks, 5),
    }


def click_quality(data: Any, scores: np.ndarray) -> dict[str, float]:
    assert data.label is not None and data.session is not None
    return {
        "auc": auc(data.label, scores),
        "gauc": gauc(data.label, scores, data.session[data.case]),
    }


# each generator's Recall@20 alone in docs/benchmarks.md (baselines; GRU4Rec: its own table,
# at the authors' setting of the split, which is at least the pipeline's smaller GRU4Rec's)
ALONE_RECALL = {
    "rsc15_100k": {"stan": 0.6849, "vstan": 0.6805, "vsknn": 0.6754, "covisit": 0.6145,
                   "gru4rec": 0.6746},
    "diginetica": {"vstan": 0.5032, "vsknn": 0.5168, "stan": 0.5074, "covisit": 0.3968,
                   "gru4rec": 0.4808},
    "retailrocket": {"vstan": 0.5629, "vsknn": 0.5670, "stan": 0.5595, "covisit": 0.4301,
                     "gru4rec": 0.5973},
}  # fmt: skip
BEGIN, END = "<!-- twostage:begin -->", "<!-- twostage:end -->"
DOCS = ROOT / "docs" / "benchmarks.md"


def render(records: list[dict[str, Any]]) -> str:
    """The docs section: the pipeline beside the best single model, the rankers, the
    ablation and the cost of each part, per dataset."""
    lines = [
        "| dataset | pipeline MRR@20 | best single MRR@20 | ratio | pipeline Recall@20 | best "
        "generator Recall@20 (alone) | candidate recall@20 / @50 | ranker AUC / gAUC | "
        "training s (load) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        p, best = r["pipeline"], r.get("best_single", {})
        alone = {k: v["recall@20"] for k, v in r.get("singles", {}).items()}
        alone = alone or ALONE_RECALL.get(r["dataset"], {})
        top = max(alone, key=alone.__getitem__) if alone else ""
        best_recall = f"{alone[top]:.4f} ({top})" if top else ""
        fit = sum(
            v for k, v in p["seconds"].items()
            if k.startswith(("fit", "candidates for the ranker", "ranker fit"))
        )  # fmt: skip
        cr = p["candidate_recall"]
        lines.append(
            f"| {r['dataset']} | {p['mrr@20']:.4f} | {best.get('mrr@20', float('nan')):.4f} "
            f"({best.get('model', '')}) | {r.get('ratio_mrr@20', float('nan')):.3f} | "
            f"{p['recall@20']:.4f} | {best_recall} | {cr['20']:.3f} / {cr['50']:.3f} | "
            f"{p['auc']:.3f} / {p['gauc']:.3f} | {fit:.0f} "
            f"({r['load_before'][0]:.1f}-{r['load_after_pipeline'][0]:.1f}) |"
        )
    lines.append("")
    for r in records:
        command = r["command"].replace("/tmp/twostage", "DIR")
        lines.append(f"**{r['dataset']}** (`{command}`, {r['started']}):")
        lines.append("")
        lines.append("| variant | MRR@20 | Recall@20 | AUC | gAUC |")
        lines.append("|---|---|---|---|---|")
        p = r["pipeline"]
        lines.append(
            f"| {p['ranker']} (the pipeline) | {p['mrr@20']:.4f} | {p['recall@20']:.4f} | "
            f"{p['auc']:.3f} | {p['gauc']:.3f} |"
        )
        for name, v in r.get("rankers", {}).items():
            lines.append(
                f"| ranker {name} | {v['mrr@20']:.4f} | {v['recall@20']:.4f} | "
                f"{v['auc']:.3f} | {v['gauc']:.3f} |"
            )
        for group, v in r.get("ablation", {}).items():
            lines.append(
                f"| without {group} | {v['mrr@20']:.4f} | {v['recall@20']:.4f} | "
                f"{v['auc']:.3f} | {v['gauc']:.3f} |"
            )
        for name, v in r.get("singles", {}).items():
            lines.append(f"| {name} alone | {v['mrr@20']:.4f} | {v['recall@20']:.4f} | | |")
        parts = {k: v for k, v in p["seconds"].items() if v >= 0.5}
        lines.append("")
        lines.append("Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()) + ".")
        lines.append("")
    return "\n".join(lines)


def write_docs(paths: list[Path]) -> None:
    records = [json.loads(path.read_text()) for path in paths]
    replace_section(render(records), BEGIN, END, "Two-stage ranking", DOCS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-docs", type=Path, nargs="+", help="results JSON files -> docs")
    if "--write-docs" in sys.argv:
        write_docs(parser.parse_known_args()[0].write_docs)
        return
    parser.add_argument("--dataset", required=True, choices=[*SPLITS, "demo"])
    parser.add_argument("--pipeline", type=Path, help="default: benchmarks/pipelines/DATASET.toml")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--demo-dir", type=Path, default=Path("/tmp/nextbest-demo-shop"))
    parser.add_argument("--singles", action="store_true", help="evaluate each generator alone")
    parser.add_argument(
        "--files",
        nargs=2,
        metavar=("TRAIN", "TEST"),
        help="other files of the dataset's folder (rsc15_100k: train_tr.tsv train_valid.tsv, "
        "the validation split that chooses a pipeline's settings without the test)",
    )
    parser.add_argument("--rankers", nargs="*", default=["popularity", "ftrl", "attention_gru"])
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--save-data", type=Path, help="write the click-prediction split here")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--cache", type=Path, help="reuse generators fitted on the same data (fit seconds kept)"
    )
    args = parser.parse_args()
    path = args.pipeline or ROOT / "benchmarks" / "pipelines" / f"{args.dataset}.toml"
    spec = load_spec(path)
    command = "python benchmarks/bench_twostage.py " + " ".join(sys.argv[1:])
    files = tuple(args.files) if args.files else None
    train, test, catalog = load(args.dataset, args.shared, args.demo_dir, files)  # type: ignore[arg-type]
    record: dict[str, Any] = {
        "dataset": args.dataset,
        "pipeline": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    run = run_pipeline(
        spec, train, test, catalog, say=lambda line: print(line, flush=True), cache=args.cache
    )
    record["load_after_pipeline"] = os.getloadavg()
    record["pipeline"] = {
        "ranker": spec.ranker,
        **figures(run.ranks),
        **click_quality(run.test_data, run.scores),
        "cases": len(run.ranks),
        "candidate_recall": run.candidate_recall,
        "generator_recall": run.recall_of_generators,
        "seconds": run.seconds,
        "ranker_train_cases": run.ranker_train_cases,
        "candidates_per_case": len(run.test_data) / max(len(run.ranks), 1),
    }
    importance: dict[str, float] = getattr(run.ranker, "importance", dict)()
    record["pipeline"]["feature_gain"] = dict(sorted(importance.items(), key=lambda kv: -kv[1]))
    print(json.dumps({k: v for k, v in record["pipeline"].items() if k != "feature_gain"}))
    if args.save_data:
        args.save_data.mkdir(parents=True, exist_ok=True)
        save_ranking_data(run.ranker_data, args.save_data / f"{args.dataset}_click_train.npz")
        save_ranking_data(run.test_data, args.save_data / f"{args.dataset}_click_test.npz")
    rankers: dict[str, dict[str, float]] = {}
    for name in args.rankers:
        if name == spec.ranker:
            continue
        started = time.perf_counter()
        try:
            ranker = make_ranker(name, {})
        except (ImportError, ValueError) as exc:
            print(f"ranker {name}: not available ({exc})")
            continue
        ranker.fit(run.ranker_data)
        scores = ranker.predict(run.test_data)
        rankers[name] = {
            **figures(run.ranks_of(scores)),
            **click_quality(run.test_data, scores),
            "seconds": time.perf_counter() - started,
        }
        print(name, json.dumps(rankers[name]), flush=True)
    record["rankers"] = rankers
    ablation: dict[str, dict[str, float]] = {}
    if not args.no_ablation:
        for group in GROUPS:
            names = run.test_data.groups.get(group, ())
            if not names:
                continue
            ranker = make_ranker(spec.ranker, spec.ranker_params)
            train_part = run.ranker_data.without(names)
            test_part = run.test_data.without(names)
            ranker.fit(train_part)
            scores = ranker.predict(test_part)
            ablation[group] = {
                **figures(run.ranks_of(scores, test_part)),
                **click_quality(test_part, scores),
            }
            print(f"without {group}", json.dumps(ablation[group]), flush=True)
    record["ablation"] = ablation
    singles: dict[str, dict[str, float]] = {}
    if args.singles:
        support = train.item_support()
        for generator in spec.generators:
            model = build_model(generator.model, dict(generator.params))
            if catalog is not None:
                model.use_catalog(catalog)
            model.fit(train)
            result = evaluate_next_event(model, test, EvalConfig(), train_support=support)
            singles[generator.name] = figures(result.ranks)
            print(f"single {generator.name}", json.dumps(singles[generator.name]), flush=True)
    record["singles"] = singles
    record["load_after"] = os.getloadavg()
    if args.dataset in BEST_SINGLE:
        name, mrr, recall = BEST_SINGLE[args.dataset]
        record["best_single"] = {"model": name, "mrr@20": mrr, "recall@20": recall}
    elif singles:
        name = max(singles, key=lambda n: singles[n]["mrr@20"])
        record["best_single"] = {"model": name, **singles[name]}
    best = record.get("best_single")
    if best:
        record["ratio_mrr@20"] = record["pipeline"]["mrr@20"] / best["mrr@20"]
        print(f"pipeline / best single ({best['model']}) MRR@20: {record['ratio_mrr@20']:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2, default=float))


if __name__ == "__main__":
    main()
