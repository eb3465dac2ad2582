"""Reading a request's candidate features online: Feast against Redis read directly.

    /tmp/feastvenv/bin/python benchmarks/bench_feature_store.py        # with Feast (its venv)
    .venv/bin/python benchmarks/bench_feature_store.py --write-docs     # without; update docs

Feast cannot be installed beside nextbest's pins (feast 0.67.0 needs prometheus_client
<0.25, we pin 0.26.0), so it runs from its own environment: `python3 -m venv /tmp/feastvenv;
/tmp/feastvenv/bin/pip install feast==0.67.0 redis==8.1.0 hiredis==3.5.0`. The script imports
nextbest's online reader from src/ (it needs only numpy and redis) and Feast when it can.

`--items` items, each with `--features` of the store's item features (random values), are
written into Redis on 127.0.0.1 three ways: Feast's `materialize` of a Parquet file into its
Redis online store (a project of its own, torn down after); a hash per item with a field per
feature (Feast's layout, written by hand); nextbest's `write_online` (one hash of rows). The
last two under a key prefix of their own, deleted after. Then, for each request size in
`--rows`, the same random candidate sets are read `--repeats` times by each reader, the
readers taking turns for `--rounds` rounds, so that other load falls on all of them alike:

    feast                      get_online_features(...).to_dict(), as a float array
    redis-py, a hash per item  a pipeline of one HMGET per candidate (Feast's layout, bare)
    redis-py, one HMGET        one HMGET of the candidates' rows (nextbest's layout, bare)
    nextbest OnlineFeatures    the same with the version check and defaults, as served

Every reader's values are checked equal to the written ones before timing. Wall time per
read (p50, p99) and the process's CPU per read (mean) are reported, with the 1-minute load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from nextbest.twostage.store.definitions import features_of
from nextbest.twostage.store.online import OnlineFeatures, write_online

BEGIN, END = "<!-- feature-store:begin -->", "<!-- feature-store:end -->"
Reader = Callable[[list[str]], np.ndarray]
DEFAULTS: dict[str, Any] = {}  # the options' defaults, to leave out of the recorded command


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def feast_reader(
    url: str, ids: list[str], names: list[str], values: np.ndarray, folder: Path
) -> tuple[Reader, Callable[[], None], float]:
    """Feast over its Redis online store: the reader, its teardown, materialize seconds."""
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.repo_config import RegistryConfig, RepoConfig
    from feast.types import Float64

    project = f"nextbest_bench_{uuid.uuid4().hex[:10]}"
    parts = redis.connection.parse_url(url)
    host, port, db = parts.get("host", "127.0.0.1"), parts.get("port", 6379), parts.get("db", 0)
    connection = f"{host}:{port},db={db}"
    columns = [n.replace(".", "__") for n in names]  # Feast names are identifiers
    stamp = datetime.now(UTC) - timedelta(hours=1)
    frame = pd.DataFrame(values, columns=columns)
    frame.insert(0, "item_id", ids)
    frame["event_timestamp"] = stamp
    frame.to_parquet(folder / "items.parquet")
    config = RepoConfig(
        project=project,
        provider="local",
        registry=RegistryConfig(path=str(folder / "registry.db"), cache_ttl_seconds=0),
        online_store=RedisOnlineStoreConfig(connection_string=connection),
        offline_store={"type": "dask"},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="item_stats",
        entities=[item],
        schema=[Field(name=c, dtype=Float64) for c in columns],
        source=FileSource(path=str(folder / "items.parquet"), timestamp_field="event_timestamp"),
        ttl=timedelta(days=2),
        online=True,
    )
    store.apply([item, view])
    started = time.perf_counter()
    store.materialize(stamp - timedelta(hours=1), stamp + timedelta(minutes=30))
    seconds = time.perf_counter() - started
    refs = [f"item_stats:{c}" for c in columns]

    def read(candidates: list[str]) -> np.ndarray:
        rows = [{"item_id": i} for i in candidates]
        answer = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        return np.array([answer[c] for c in columns], np.float64).T

    def teardown() -> None:
        store.teardown()
        client = redis.Redis.from_url(url)
        left = [k for k in client.scan_iter(count=10_000) if k.endswith(project.encode())]
        if left:
            client.delete(*left)

    return read, teardown, seconds


def per_item_reader(client: redis.Redis, prefix: str, names: list[str]) -> Reader:
    """Feast's layout without Feast: a hash per item, a field per feature, read by one
    pipeline of HMGETs (one per candidate) and decoded by hand."""

    def read(candidates: list[str]) -> np.ndarray:
        with client.pipeline(transaction=False) as pipe:
            for item_id in candidates:
                pipe.hmget(f"{prefix}item:{item_id}", names)
            replies = pipe.execute()
        raw = b"".join(v for reply in replies for v in reply)
        return np.frombuffer(raw, np.float64).reshape(len(candidates), len(names))

    return read


def write_per_item(
    client: redis.Redis, prefix: str, ids: list[str], names: list[str], values: np.ndarray
) -> None:
    with client.pipeline(transaction=False) as pipe:
        for k, item_id in enumerate(ids):
            row = {n: np.float64(v).tobytes() for n, v in zip(names, values[k], strict=True)}
            pipe.hset(f"{prefix}item:{item_id}", mapping=row)  # type: ignore[arg-type]
            if k % 2_000 == 1_999:
                pipe.execute()
        pipe.execute()


def one_hmget_reader(client: redis.Redis, prefix: str, version: str, width: int) -> Reader:
    """nextbest's layout read bare: one HMGET of the candidates' rows, decoded."""

    def read(candidates: list[str]) -> np.ndarray:
        reply = client.hmget(f"{prefix}features:{version}:item", candidates)
        raw = b"".join(reply)  # type: ignore[arg-type]
        return np.frombuffer(raw, np.float64).reshape(len(candidates), width)

    return read


def time_reads(read: Reader, requests: list[list[str]]) -> tuple[list[float], float]:
    """Wall seconds of each read, and the process CPU seconds of all of them."""
    walls = []
    cpu = time.process_time()
    for candidates in requests:
        started = time.perf_counter()
        read(candidates)
        walls.append(time.perf_counter() - started)
    return walls, time.process_time() - cpu


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    names = [f.name for f in features_of("item")][: args.features]
    ids = [f"i{k}" for k in range(args.items)]
    values = rng.random((args.items, len(names))) * 100
    client = redis.Redis.from_url(args.redis)
    client.ping()
    prefix = f"nextbest-bench-{uuid.uuid4().hex[:10]}:"
    loads = {"start": load()}
    readers: dict[str, Reader] = {}
    teardown: Callable[[], None] | None = None
    result: dict[str, Any] = {"items": args.items, "features": len(names), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            started = time.perf_counter()
            version = write_online(client, prefix, 86_400.0, {"item": (ids, names, values)})
            result["nextbest_write_seconds"] = time.perf_counter() - started
            online = OnlineFeatures(client, prefix)
            write_per_item(client, prefix, ids, names, values)
            readers["redis-py, a hash per item"] = per_item_reader(client, prefix, names)
            readers["redis-py, one HMGET"] = one_hmget_reader(client, prefix, version, len(names))
            readers["nextbest OnlineFeatures"] = lambda c: online.read("item", c, names)
            try:
                import feast

                read, teardown, seconds = feast_reader(args.redis, ids, names, values, Path(tmp))
                readers["feast"] = read
                result["feast"] = feast.__version__
                result["feast_materialize_seconds"] = seconds
            except ImportError:
                result["feast"] = None
            for name, read in readers.items():  # the same values, before any timing
                sample = [ids[k] for k in rng.choice(args.items, 50, replace=False)]
                expected = values[[int(i[1:]) for i in sample]]
                if not np.array_equal(read(sample), expected):
                    raise AssertionError(f"{name} read other values than were written")
            for size in args.rows:
                requests = [
                    [ids[k] for k in rng.choice(args.items, size, replace=False)]
                    for _ in range(args.repeats)
                ]
                walls: dict[str, list[float]] = {name: [] for name in readers}
                cpus: dict[str, float] = dict.fromkeys(readers, 0.0)
                for _ in range(args.rounds):
                    for name, read in readers.items():
                        wall, cpu = time_reads(read, requests)
                        walls[name] += wall
                        cpus[name] += cpu
                result["sizes"][size] = {
                    name: {
                        "p50_ms": 1000 * statistics.median(walls[name]),
                        "p99_ms": 1000 * percentile(walls[name], 0.99),
                        "cpu_ms": 1000 * cpus[name] / len(walls[name]),
                    }
                    for name in readers
                }
                loads[f"after {size}"] = load()
        finally:
            keys = list(client.scan_iter(match=f"{prefix}*", count=10_000))
            if keys:
                client.delete(*keys)
            if teardown is not None:
                teardown()
    result["loads"] = loads
    result["machine"] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    result["command"] = command(args)
    return result


def command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (no output paths)."""
    given = []
    for key, value in vars(args).items():
        if key not in ("json", "write_docs") and value != DEFAULTS[key]:
            shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            given.append(f"--{key.replace('_', '-')} {shown}")
    return " ".join([sys.executable, "benchmarks/bench_feature_store.py", *given])


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['items']:,} items x {result['features']} features in Redis on 127.0.0.1; "
        f"Feast {result['feast'] or 'not installed'}; {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores, {result['machine']['date']}; 1-minute load "
        + ", ".join(f"{k} {v}" for k, v in result["loads"].items()),
        "",
        "| candidates | reader | p50 ms | p99 ms | CPU ms per read |",
        "|---|---|---|---|---|",
    ]
    for size, readers in result["sizes"].items():
        for name, f in readers.items():
            lines.append(
                f"| {size} | {name} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['cpu_ms']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    DEFAULTS.update(vars(parser.parse_args([])))
    result = run(args)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.write_docs:
        from docs_section import replace_section

        block = f"```bash\n{result['command']} --write-docs\n```\n\n{table(result)}"
        replace_section(block, BEGIN, END, "Feature store: Feast against Redis read directly")


if __name__ == "__main__":
    main()
