"""An experiment file: which placement is tested, its variants, their shares, salt and window.

    [experiments.home-ranker]
    placement = "home"
    salt = "home-ranker-1"             # a new salt reshuffles the shoppers
    start = 2026-12-07T00:00:00Z
    end = 2026-12-21T00:00:00Z         # optional

    [[experiments.home-ranker.variants]]
    name = "control"
    control = true
    model = "latest"                   # "latest" (the version answering), a version folder
                                       # name, or "latest:NAME" (the newest version of model
                                       # NAME, e.g. "latest:gru4rec", found at load)
    share = 0.5

    [[experiments.home-ranker.variants]]
    name = "pipeline"
    model = "20261206T215935.750450-pipeline"
    placements = "placements-b.toml"   # optional: the variant's own placements file
                                       # (a relative path is taken from this file's folder)
    share = 0.5

`load_experiments` checks it against what the server would serve: the placements (the
shipped file or the one given) and the model versions under the home folder. Shares must sum
to 1, one variant is the control, and two experiments may not test one placement at the same
time. Each problem is an ExperimentsError naming the file and key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextbest.models.base import MODEL_FILE
from nextbest.models.store import list_versions
from nextbest.recommend.placements import Placements, PlacementsError, load_placements
from nextbest.toml_files import first_problem, read_toml

LATEST = "latest"
SHARE_TOLERANCE = 1e-9


class ExperimentsError(ValueError):
    """An experiment file that cannot run; the message names the file, key and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantSpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    model: Annotated[str, Field(min_length=1)] = LATEST
    placements: Path | None = None
    share: Annotated[float, Field(gt=0, le=1)]
    control: bool = False


class ExperimentSpec(_Strict):
    placement: Annotated[str, Field(min_length=1)]
    salt: Annotated[str, Field(min_length=1, max_length=200)]
    start: datetime
    end: datetime | None = None
    variants: Annotated[list[VariantSpec], Field(min_length=2)]


class ExperimentsFile(_Strict):
    experiments: Annotated[dict[str, ExperimentSpec], Field(min_length=1)]


@dataclass(frozen=True)
class Variant:
    name: str
    model: str  # a version folder name, or LATEST
    placements: Path | None
    share: float
    control: bool
    # the variant's own placements, loaded from `placements` (None: the server's)
    placement_config: Placements | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Experiment:
    name: str
    placement: str
    salt: str
    start: float  # Unix time
    end: float | None
    variants: tuple[Variant, ...]

    @property
    def shares(self) -> tuple[float, ...]:
        return tuple(v.share for v in self.variants)

    def running(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


def load_experiments(path: Path, placements: Placements, home: Path) -> list[Experiment]:
    """The experiments of `path`, checked against `placements` and the versions in `home`."""
    raw = read_toml(path, "experiments", ExperimentsError)
    return parse_experiments(raw, str(path), placements, home, path.parent)


def parse_experiments(
    raw: dict[str, Any],
    source: str,
    placements: Placements,
    home: Path,
    base: Path | None = None,
) -> list[Experiment]:
    """`raw`: the file's tables; `base`: the folder relative placements paths start from
    (default: the working directory)."""
    try:
        spec = ExperimentsFile.model_validate(raw)
    except ValidationError as error:
        raise ExperimentsError(first_problem(error, source)) from None
    folders = list_versions(home)
    experiments = []
    for name, e in spec.experiments.items():
        key = f"{source}: experiments.{name}"
        if e.placement not in placements:
            raise ExperimentsError(
                f"{key}.placement: unknown placement {e.placement!r}; the placements are: "
                f"{', '.join(placements.names)}"
            )
        total = sum(v.share for v in e.variants)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ExperimentsError(f"{key}.variants: the shares sum to {total:g}, not 1")
        if sum(v.control for v in e.variants) != 1:
            raise ExperimentsError(f"{key}.variants: exactly one variant must be the control")
        names = [v.name for v in e.variants]
        if len(set(names)) != len(names):
            raise ExperimentsError(f"{key}.variants: two variants share a name")
        configs: list[Placements | None] = []
        models: list[str] = []
        for k, v in enumerate(e.variants):
            models.append(_version_of(v.model, folders, f"{key}.variants[{k}].model", home))
            configs.append(_variant_placements(v, e.placement, f"{key}.variants[{k}]", base))
        if e.end is not None and e.end <= e.start:
            raise ExperimentsError(f"{key}.end: must be after start")
        experiments.append(
            Experiment(
                name=name,
                placement=e.placement,
                salt=e.salt,
                start=e.start.timestamp(),
                end=e.end.timestamp() if e.end else None,
                variants=tuple(
                    Variant(v.name, m, _resolve(v.placements, base), v.share, v.control, c)
                    for v, m, c in zip(e.variants, models, configs, strict=True)
                ),
            )
        )
    _no_overlap(experiments, source)
    return experiments


def _version_of(model: str, folders: list[Path], key: str, home: Path) -> str:
    """The variant's model: LATEST, or the version folder `model` names (itself, or the
    newest version of a model for "latest:NAME")."""
    if model == LATEST:
        return model
    if model.startswith(LATEST + ":"):
        name = model.split(":", 1)[1]
        found = [f.name for f in folders if _model_name(f) == name]
        if not found:
            known = sorted({n for f in folders if (n := _model_name(f))})
            raise ExperimentsError(
                f"{key}: no version of model {name!r} under {home / 'models'}; the versions "
                f"there are of: {', '.join(known) or 'none'}"
            )
        return found[-1]  # folders come oldest first
    if model not in {f.name for f in folders}:
        raise ExperimentsError(f"{key}: no model version {model!r} under {home / 'models'}")
    return model


def _model_name(folder: Path) -> str | None:
    try:
        name = json.loads((folder / MODEL_FILE).read_text()).get("model")
    except (OSError, ValueError):
        return None
    return name if isinstance(name, str) else None


def _resolve(path: Path | None, base: Path | None) -> Path | None:
    if path is None or path.is_absolute() or base is None:
        return path
    return base / path


def _variant_placements(
    variant: VariantSpec, placement: str, key: str, base: Path | None
) -> Placements | None:
    """The variant's own placements file, loaded; it must define the tested placement."""
    path = _resolve(variant.placements, base)
    if path is None:
        return None
    if not path.is_file():
        raise ExperimentsError(f"{key}.placements: no such file {str(path)!r}")
    try:
        config = load_placements(path)
    except PlacementsError as exc:
        raise ExperimentsError(f"{key}.placements: {exc}") from None
    if placement not in config:
        raise ExperimentsError(
            f"{key}.placements: {str(path)!r} has no placement {placement!r} to test"
        )
    return config


def _no_overlap(experiments: list[Experiment], source: str) -> None:
    """Two experiments on one placement at the same time would each take the other's users."""
    for k, a in enumerate(experiments):
        for b in experiments[k + 1 :]:
            if a.placement != b.placement:
                continue
            a_end = a.end if a.end is not None else float("inf")
            b_end = b.end if b.end is not None else float("inf")
            if a.start < b_end and b.start < a_end:
                raise ExperimentsError(
                    f"{source}: experiments.{b.name}: overlaps experiments.{a.name} on the "
                    f"placement {a.placement!r} (their windows meet); end one before the "
                    "other starts"
                )
