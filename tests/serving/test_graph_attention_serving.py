"""SR-GNN and the self-attentive model served: one event steps the session's stored state
(the items for SR-GNN; keys, values and the last output for SASRec), the reply ranks the
pattern's next item first, two workers sharing Redis agree, and either model is a generator
of a served two-stage pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serving_helpers import (
    CLASSES,
    N_ITEMS,
    MakeClient,
    TestClient,
    cyclic_sessions,
    item,
    recommend,
    send,
    settings_for,
    view,
)

from nextbest.models.base import SessionModel
from nextbest.models.registry import build_model
from nextbest.models.store import save_version
from nextbest.serving.app import create_app
from nextbest.twostage.model import PipelineModel, train_pipeline
from nextbest.twostage.protocol import GeneratorSpec, PipelineSpec

PARAMS = {
    "srgnn": {
        "hidden": "16",
        "n_epochs": "6",
        "batch_size": "32",
        "learning_rate": "0.01",
        "threads": "1",
    },
    "sasrec": {
        "hidden": "16",
        "n_epochs": "15",
        "batch_size": "64",
        "learning_rate": "0.01",
        "threads": "1",
    },
}


# overrides conftest's model_home: conftest's `home` and `make_client` serve this model
@pytest.fixture(scope="module", params=sorted(PARAMS))
def model_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model: SessionModel[Any, Any] = build_model(request.param, PARAMS[request.param])
    model.fit(cyclic_sessions())
    home = tmp_path_factory.mktemp(f"{request.param}-home")
    save_version(model, home, {"model": request.param})
    return home


def _walk(client: TestClient, session: str, first: int, clicks: int) -> None:
    events = [view(f"{session}-{first + k}", session, item(first + k)) for k in range(clicks)]
    assert send(client, *events).status_code == 200


def test_the_next_item_of_the_pattern_comes_first(make_client: MakeClient) -> None:
    client = make_client()
    version = client.get("/healthz").json()["model_version"]
    assert version.endswith(("-srgnn", "-sasrec")), version  # this module's model, served
    for first, clicks in ((3, 1), (10, 3), (25, 6)):  # states of different lengths
        session = f"s{first}"
        _walk(client, session, first, clicks)
        items = recommend(client, session_id=session, n=5).json()["items"]
        assert items[0]["item_id"] == item(first + clicks)
        assert items[0]["source"] != "popularity"


def test_two_workers_sharing_redis_agree(
    make_client: MakeClient, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    first = make_client(redis_url=url, redis_prefix=prefix)
    second = make_client(redis_url=url, redis_prefix=prefix)
    _walk(first, "shared", 7, 2)
    _walk(second, "shared", 9, 2)  # the second worker continues the first one's state
    reply = recommend(first, session_id="shared", n=5).json()["items"]
    assert reply == recommend(second, session_id="shared", n=5).json()["items"]
    assert reply[0]["item_id"] == item(11)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_either_model_is_a_generator_of_a_pipeline(name: str, tmp_path: Path) -> None:
    spec = PipelineSpec(
        generators=(GeneratorSpec(name, 10, PARAMS[name]), GeneratorSpec("pop", N_ITEMS)),
        ranker="ftrl",
        ranker_share=0.3,
        ranker_folds=1,  # each fold fits the generators again: one keeps the test short
    )
    model, _ = train_pipeline(spec, cyclic_sessions())
    save_version(model, tmp_path, {"model": "pipeline"})
    classes = {**CLASSES, "pipeline": PipelineModel}
    with TestClient(create_app(settings_for(tmp_path), classes)) as client:
        _walk(client, "p", 4, 3)
        items = recommend(client, session_id="p", n=5).json()["items"]
        assert items[0]["item_id"] == item(7)
