"""The side-by-side benchmark's bridge to the authors' GRU4Rec (benchmarks/bench_gru4rec.py
--reference): every parameter both implementations have reaches their run.py, and their
printout is read back right."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nextbest.models.gru4rec import GRU4RecConfig

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# ours only: no counterpart in the authors' code (the seed and threads are run settings; their
# code always divides a mini-batch's loss by its size, our batch_loss=mean)
OURS_ONLY = {
    "final_act", "seed", "threads", "attributes", "attribute_id_dropout", "attribute_rate",
    "batch_loss",
}  # fmt: skip


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_gru4rec")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_every_shared_parameter_reaches_the_authors_run(bench: ModuleType) -> None:
    fields = {field.name for field in dataclasses.fields(GRU4RecConfig)}
    assert fields - set(bench.AUTHORS_PARAMETERS) == OURS_ONLY  # a new field must be placed
    config = GRU4RecConfig(
        loss="bpr-max", layers=(224, 100), n_epochs=3, batch_size=80, dropout_p_embed=0.5,
        dropout_p_hidden=0.05, learning_rate=0.05, momentum=0.4, sample_alpha=0.4, bpreg=1.95,
        elu_param=0.5, constrained_embedding=True,
    )  # fmt: skip
    given = dict(part.split("=") for part in bench.authors_parameter_string(config).split(","))
    assert given["layers"] == "224/100" and given["constrained_embedding"] == "True"
    assert {name: given[name] for name in ("loss", "bpreg", "momentum", "n_epochs")} == {
        "loss": "bpr-max", "bpreg": "1.95", "momentum": "0.4", "n_epochs": "3",
    }  # fmt: skip
    assert set(given) == set(bench.AUTHORS_PARAMETERS)
    with pytest.raises(ValueError, match="no counterpart"):
        bench.authors_parameter_string(dataclasses.replace(config, final_act="tanh"))
    with pytest.raises(ValueError, match="no counterpart"):
        bench.authors_parameter_string(dataclasses.replace(config, batch_loss="sum"))


def test_the_authors_printout_is_read_back(bench: ModuleType) -> None:
    printout = "\n".join(
        [
            "Epoch1 --> loss: 0.550933 \t(1.14s) \t[133.78 mb/s | 17124 e/s]",
            "Total training time: 123.45s",
            "Evaluation took 7.50s",
            "Recall@5: 0.250000 MRR@5: 0.125000",
            "Recall@20: 0.476543 MRR@20: 0.147321",
        ]
    )
    read = bench.parse_authors_output(printout)
    assert read["fit_seconds"] == 123.5 and read["eval_seconds"] == 7.5
    assert read["metrics"] == {
        "recall@5": 0.25, "mrr@5": 0.125, "recall@20": 0.4765, "mrr@20": 0.1473,
    }  # fmt: skip
    with pytest.raises(RuntimeError, match="no training time"):
        bench.parse_authors_output("Traceback (most recent call last): ...")
