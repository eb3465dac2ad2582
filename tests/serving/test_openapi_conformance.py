"""The served OpenAPI document is true: schemathesis, run as a new user would against
`nextbest serve`, finds no server error and no reply the document does not describe (status
code, content type, headers, body), with each kind of key, over its coverage, fuzzing and
stateful phases.

Two of its checks are left out, on purpose: `positive_data_acceptance` (a request the schema
allows must succeed) and `negative_data_rejection` (a request it does not allow must fail).
A schema cannot say which item ids exist, so a well-formed request naming an unknown item is
a 422 by design; and the server's models coerce as pydantic does (`"in_stock": 0` is false),
which the document does not spell out. Every reply the server gives is still checked.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_process import Server, free_port
from serving_helpers import ADMIN, BROWSER, N_ITEMS, READ, WRITE, auth, item

CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance,negative_data_rejection"]
PHASES = ["--phases", "examples,coverage,fuzzing,stateful"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_home: Path) -> Iterator[Server]:
    import shutil

    home = tmp_path_factory.mktemp("openapi") / "home"
    shutil.copytree(model_home, home)
    server = Server(home, free_port(), {}, "openapi.log")
    items = [
        {"item_id": item(j), "title": f"Product {j}", "category_path": ["Sports", "Shoes"],
         "brand": "Acme", "price": 10.0 + j}
        for j in range(N_ITEMS)
    ]  # fmt: skip
    server.client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).raise_for_status()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "key", [BROWSER, WRITE, READ, ADMIN], ids=["browser", "write", "read", "admin"]
)
def test_schemathesis_finds_every_reply_described(served: Server, key: str, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [str(schemathesis), "run", f"{served.url}/openapi.json",
         "--header", f"Authorization: Bearer {key}", *CHECKS, *PHASES,
         "--max-examples", "10", "--seed", "7", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):  # each phase ran, and found nothing
        assert f"✅ {phase}" in report, report[-3000:]
    assert "failure" not in report.splitlines()[-1]
