"""Our FTRL-Proximal ranker against River's and Vowpal Wabbit's FTRL, on the same examples.

    .venv/bin/python benchmarks/bench_ftrl.py --train /tmp/twostage/demo_click_train.npz \\
        --test /tmp/twostage/demo_click_test.npz --json results.json
    .venv/bin/python benchmarks/bench_ftrl.py --synthetic   # planted data, no files needed

All three learn from the very same examples: the hashed token lists our ranker makes of each
row (its buckets, ids and crosses, in 2**bits slots), every token a binary feature, in the same
shuffled order for the same number of passes, with the same alpha, beta, l1 and l2:

    ours   FTRLRanker (numba), trained on the token matrix
    River  river.linear_model.LogisticRegression(optimizer=river.optim.FTRLProximal(...)), one
           learn_one per row on a dict {slot: 1.0}; its intercept is switched off
           (intercept_lr=0, l2=0) as our bias token already is the intercept under FTRL
    VW     vowpalwabbit --ftrl --ftrl_alpha --ftrl_beta --l1 --l2 -b bits --noconstant
           --loss_function logistic, reading a text file "label | slot slot ..." with its native
           parser (the slot numbers are its feature indices: the empty namespace adds nothing)

Reported: held-out AUC and gAUC, training examples/second (process CPU time; ours and River
from ready-made examples, VW including its own text parsing, its normal input path), and the
CPU microseconds of one online update of ours: a served list of K rows with its outcome,
`FTRLRanker.update` (tokens and FTRL) and the FTRL pass alone, by time.process_time over many
repetitions. The machine is shared, so the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nextbest.twostage.data import RankingData, load_ranking_data
from nextbest.twostage.metrics import auc, gauc
from nextbest.twostage.rankers.ftrl import FTRLConfig, FTRLRanker
from nextbest.twostage.synthetic import planted_ranking_data


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def quality(data: RankingData, scores: np.ndarray) -> dict[str, float]:
    assert data.label is not None
    groups = data.session[data.case] if data.session is not None else data.case
    return {"auc": auc(data.label, scores), "gauc": gauc(data.label, scores, groups)}


def epoch_orders(config: FTRLConfig, n: int) -> list[np.ndarray]:
    """The row orders `FTRLRanker.fit` uses, epoch by epoch."""
    rng = np.random.default_rng(config.seed)
    return [rng.permutation(n) if config.shuffle else np.arange(n) for _ in range(config.epochs)]


def run_ours(
    config: FTRLConfig, train: RankingData, test: RankingData
) -> tuple[FTRLRanker, np.ndarray, np.ndarray, dict[str, Any]]:
    start = time.process_time()
    ranker = FTRLRanker(config).fit(train)
    fit_cpu = time.process_time() - start
    train_tokens, test_tokens = ranker.tokens(train), ranker.tokens(test)
    assert train.label is not None
    labels = train.label.astype(np.float64)
    # the FTRL passes alone, on the ready-made tokens: what River and VW are timed on
    again = FTRLRanker(config)
    again.__dict__.update({k: v for k, v in ranker.__dict__.items() if k != "zn"})
    again.zn = np.zeros_like(ranker.zn)
    orders = epoch_orders(config, len(train))
    start = time.process_time()
    for order in orders:
        again._pass(train_tokens, labels, order)
    pass_cpu = time.process_time() - start
    np.testing.assert_array_equal(again.zn, ranker.zn)  # the same model as fit made
    scores = ranker.predict(test)
    row = {
        "name": "ours (numba)",
        **quality(test, scores),
        "examples_per_s": len(train) * config.epochs / pass_cpu,
        "pass_cpu_s": pass_cpu,
        "fit_cpu_s": fit_cpu,
        "fit_examples_per_s": len(train) * config.epochs / fit_cpu,
        "load": loadavg(),
    }
    return ranker, train_tokens, test_tokens, row


def run_river(
    config: FTRLConfig,
    train_tokens: np.ndarray,
    labels: np.ndarray,
    test_tokens: np.ndarray,
    test: RankingData,
) -> dict[str, Any]:
    from river import linear_model, optim

    def example(tokens: np.ndarray) -> dict[int, float]:
        x: dict[int, float] = {}
        for t in tokens.tolist():
            x[t] = x.get(t, 0.0) + 1.0  # a slot twice in a row counts twice, as in ours
        return x

    model = linear_model.LogisticRegression(
        optimizer=optim.FTRLProximal(
            alpha=config.alpha, beta=config.beta, l1=config.l1, l2=config.l2
        ),
        intercept_lr=0.0,
        l2=0.0,
    )
    xs = [example(t) for t in train_tokens]
    ys = (labels > 0.5).tolist()
    start = time.process_time()
    for order in epoch_orders(config, len(xs)):
        for r in order.tolist():
            model.learn_one(xs[r], ys[r])
    cpu = time.process_time() - start
    scores = np.array([model.predict_proba_one(example(t))[True] for t in test_tokens])
    return {
        "name": "River FTRLProximal",
        **quality(test, scores),
        "examples_per_s": len(xs) * config.epochs / cpu,
        "fit_cpu_s": cpu,
        "load": loadavg(),
    }


def _vw_lines(tokens: np.ndarray, labels: np.ndarray, order: np.ndarray, path: Path) -> None:
    with path.open("w") as out:
        for r in order.tolist():
            out.write("1 | " if labels[r] > 0.5 else "-1 | ")
            out.write(" ".join(map(str, tokens[r].tolist())))
            out.write("\n")


def run_vw(
    config: FTRLConfig,
    train_tokens: np.ndarray,
    labels: np.ndarray,
    test_tokens: np.ndarray,
    test: RankingData,
) -> dict[str, Any]:
    from vowpalwabbit import Workspace

    assert test.label is not None
    common = f"--quiet -b {config.bits} --noconstant --loss_function logistic"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        orders = np.concatenate(epoch_orders(config, len(train_tokens)))
        _vw_lines(train_tokens, labels, orders, tmp / "train.txt")
        _vw_lines(test_tokens, test.label, np.arange(len(test_tokens)), tmp / "test.txt")
        start, wall = time.process_time(), time.perf_counter()
        vw = Workspace(
            f"{common} --ftrl --ftrl_alpha {config.alpha} --ftrl_beta {config.beta} "
            f"--l1 {config.l1} --l2 {config.l2} -d {tmp / 'train.txt'} -f {tmp / 'model.vw'}"
        )
        vw.finish()
        cpu, wall = time.process_time() - start, time.perf_counter() - wall
        vw = Workspace(f"{common} -t -i {tmp / 'model.vw'} -d {tmp / 'test.txt'} -p {tmp / 'p'}")
        vw.finish()
        scores = np.loadtxt(tmp / "p", usecols=0)
    return {
        "name": "VW --ftrl",
        **quality(test, scores),
        "examples_per_s": len(orders) / cpu,
        "fit_cpu_s": cpu,
        "fit_wall_s": wall,
        "load": loadavg(),
    }


def served_list(data: RankingData, size: int, start_case: int) -> RankingData:
    """`size` rows from consecutive cases from `start_case` on, as one served list (one case,
    the first case's history)."""
    bounds = data.case_bounds
    first = bounds[start_case % data.n_cases]
    rows = (first + np.arange(size)) % len(data)
    return replace(
        data,
        case=np.zeros(size, np.int64),
        item=data.item[rows],
        features=data.features[rows],
        label=None if data.label is None else data.label[rows],
        session=None if data.session is None else data.session[[start_case % data.n_cases]],
        history=None
        if data.history is None
        else data.history.take(np.array([start_case % data.n_cases])),
    )


def online_update_cost(
    ranker: FTRLRanker, test: RankingData, sizes: list[int], repetitions: int
) -> list[dict[str, Any]]:
    online = copy.deepcopy(ranker)
    rows = []
    for size in sizes:
        lists = [served_list(test, size, 37 * i) for i in range(16)]
        tokens = [online.tokens(x) for x in lists]
        labels = [np.ascontiguousarray(x.label, dtype=np.float64) for x in lists]
        order = np.arange(size)
        for x in lists:  # warm: compiled, cached
            online.update(x)
        start = time.process_time()
        for i in range(repetitions):
            online.update(lists[i % len(lists)])
        full = (time.process_time() - start) / repetitions * 1e6
        start = time.process_time()
        for i in range(repetitions):
            online._pass(tokens[i % len(lists)], labels[i % len(lists)], order)
        kernel = (time.process_time() - start) / repetitions * 1e6
        rows.append(
            {
                "rows": size,
                "update_us_per_list": full,
                "update_us_per_row": full / size,
                "ftrl_pass_us_per_list": kernel,
                "ftrl_pass_us_per_row": kernel / size,
                "load": loadavg(),
            }
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"rows: train {results['train_rows']}, test {results['test_rows']}, "
        f"{results['tokens_per_row']} tokens per row, {results['config']['epochs']} passes",
        "",
        "| learner | AUC | gAUC | train examples/s | train CPU s | load |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["learners"]:
        lines.append(
            f"| {row['name']} | {row['auc']:.4f} | {row['gauc']:.4f} | "
            f"{row['examples_per_s']:,.0f} | {row.get('pass_cpu_s', row['fit_cpu_s']):.2f} "
            f"| {row['load']} |"
        )
    ours = results["learners"][0]
    lines.append(
        f"| ours, end to end (fit: buckets, crosses, tokens, passes) | | | "
        f"{ours['fit_examples_per_s']:,.0f} | {ours['fit_cpu_s']:.2f} | {ours['load']} |"
    )
    lines += [
        "",
        "| served list rows | update() µs/list | µs/row | FTRL pass µs/list | µs/row | load |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["online"]:
        lines.append(
            f"| {row['rows']} | {row['update_us_per_list']:.1f} | {row['update_us_per_row']:.2f} "
            f"| {row['ftrl_pass_us_per_list']:.1f} | {row['ftrl_pass_us_per_row']:.3f} "
            f"| {row['load']} |"
        )
    lines += ["", "targets: " + ", ".join(f"{k} {v}" for k, v in results["targets"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--synthetic", action="store_true", help="planted data, no files")
    parser.add_argument("--cases", type=int, default=10000, help="synthetic training cases")
    parser.add_argument("--alpha", type=float, default=FTRLConfig.alpha)
    parser.add_argument("--beta", type=float, default=FTRLConfig.beta)
    parser.add_argument("--l1", type=float, default=FTRLConfig.l1)
    parser.add_argument("--l2", type=float, default=FTRLConfig.l2)
    parser.add_argument("--bits", type=int, default=FTRLConfig.bits)
    parser.add_argument("--epochs", type=int, default=FTRLConfig.epochs)
    parser.add_argument("--skip", nargs="*", default=[], choices=["river", "vw"])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20, 50, 100, 200])
    parser.add_argument("--repetitions", type=int, default=3000)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--max-cases",
        type=int,
        help="with --train/--test: only the latest this many cases of each (River's pace)",
    )
    args = parser.parse_args(argv)

    if args.synthetic:
        train = planted_ranking_data(args.cases, seed=1)
        test = planted_ranking_data(max(args.cases // 4, 1), seed=2)
        source = f"synthetic planted_ranking_data({args.cases}, seed=1) / seed=2"
    elif args.train and args.test:
        train, test = load_ranking_data(args.train), load_ranking_data(args.test)
        source = f"{args.train} / {args.test}"
        if args.max_cases:
            train = train.cases(np.arange(max(0, train.n_cases - args.max_cases), train.n_cases))
            test = test.cases(np.arange(min(test.n_cases, args.max_cases)))
            source += f" (the last {args.max_cases:,} training cases, the first test ones)"
    else:
        parser.error("give --train PATH --test PATH, or --synthetic")
    if train.label is None or test.label is None:
        parser.error("both data sets need labels")
    config = FTRLConfig(
        alpha=args.alpha, beta=args.beta, l1=args.l1, l2=args.l2, bits=args.bits,
        epochs=args.epochs,
    )  # fmt: skip
    print(f"data: {source}; load {loadavg()}", file=sys.stderr)

    ranker, train_tokens, test_tokens, ours = run_ours(config, train, test)
    learners = [ours]
    print(f"ours done: AUC {ours['auc']:.4f}; load {loadavg()}", file=sys.stderr)
    labels = train.label.astype(np.float64)
    if "vw" not in args.skip:
        learners.append(run_vw(config, train_tokens, labels, test_tokens, test))
        print(f"VW done: AUC {learners[-1]['auc']:.4f}; load {loadavg()}", file=sys.stderr)
    if "river" not in args.skip:
        learners.append(run_river(config, train_tokens, labels, test_tokens, test))
        print(f"River done: AUC {learners[-1]['auc']:.4f}; load {loadavg()}", file=sys.stderr)
    online = online_update_cost(ranker, test, args.sizes, args.repetitions)

    others = learners[1:]
    targets: dict[str, Any] = {}
    if others:
        best = max(r["auc"] for r in others)
        targets["AUC >= best reference - 0.005"] = bool(ours["auc"] >= best - 0.005)
    river = [r for r in learners if r["name"].startswith("River")]
    if river:
        ratio = ours["examples_per_s"] / river[0]["examples_per_s"]
        targets[f"examples/s >= 10x River ({ratio:.0f}x)"] = bool(ratio >= 10)
    served = [r for r in online if 20 <= r["rows"] <= 200]
    if served:
        worst = max(r["update_us_per_list"] for r in served)
        targets[f"update of a served list <= 50 µs CPU (worst {worst:.0f})"] = bool(worst <= 50)
    results = {
        "source": source,
        "config": asdict(config),
        "train_rows": len(train),
        "test_rows": len(test),
        "tokens_per_row": int(train_tokens.shape[1]),
        "fields": ranker._field_names(),
        "learners": learners,
        "online": online,
        "targets": targets,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
