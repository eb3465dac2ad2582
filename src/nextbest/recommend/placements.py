"""The placements file: each placement's pipeline, validated at startup.

`load_placements(path)` reads a TOML file (the shipped `placements.toml` when `path` is None)
and builds a `Placements`: name -> `Pipeline`. Every problem is a `PlacementsError` that names
the file, the key and the value, e.g.

    my.toml: placements.product.generators[1].k: must be >= 1 (got 0)
    my.toml: filters.cheap: at character 22: expected a value, found end of text

so a malformed file stops the server before it serves anything, and a reload
(`POST /v1/placements/reload`) keeps the old placements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextbest.keywords.card import CardConfig, KeywordCampaign, Page
from nextbest.keywords.graph import normalise_text
from nextbest.recommend.diversity import Diversity
from nextbest.recommend.pipeline import Pipeline, Retrieval
from nextbest.recommend.ranking.fusion import FusionRanker
from nextbest.recommend.ranking.learned import LearnedRanking
from nextbest.recommend.ranking.personal import PersonalRanker
from nextbest.recommend.ranking.priority import PriorityRanker
from nextbest.recommend.retrieval.attributes import AttributeSimilar
from nextbest.recommend.retrieval.complements import Complements
from nextbest.recommend.retrieval.given import GivenItems
from nextbest.recommend.retrieval.pipeline_generators import PipelineGenerators
from nextbest.recommend.retrieval.preference import Preference
from nextbest.recommend.retrieval.session_context import SessionContext
from nextbest.recommend.retrieval.session_model import SessionModelNext
from nextbest.recommend.retrieval.similar import SimilarItems
from nextbest.recommend.retrieval.trending import LiveCovisit, LivePopular, NewItems
from nextbest.recommend.rules.after_purchase import AfterPurchaseRule
from nextbest.recommend.rules.exclusions import Exclusions
from nextbest.recommend.rules.filtering import FilterRule
from nextbest.recommend.rules.filters import CompiledFilter, FilterError, compile_filter
from nextbest.recommend.rules.promotions import Campaign, Pin, Promotion
from nextbest.recommend.stages import Generator, Ranker
from nextbest.toml_files import read_toml

DEFAULT_FILE = Path(__file__).with_name("placements.toml")
DEFAULT_PLACEMENT = "home"
MAX_K = 5000
GENERATORS: dict[str, type[Any]] = {
    "session": SessionModelNext,
    "similar": SimilarItems,
    "attributes": AttributeSimilar,
    "complements": Complements,
    "preference": Preference,
    "context": SessionContext,
    "covisit": LiveCovisit,
    "popular": LivePopular,
    "new_items": NewItems,
    "search": GivenItems,
    "generators": PipelineGenerators,
}
Source = Literal[
    "session", "similar", "attributes", "complements", "preference", "context", "covisit",
    "popular", "new_items", "search", "generators",
]  # fmt: skip
Exclude = Literal["bought", "on_screen", "in_cart", "out_of_stock"]
Need = Literal["item_id", "candidates", "user_id", "session_id"]


class PlacementsError(ValueError):
    """A placements file that cannot be served; the message names file, key and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorSpec(_Strict):
    source: Source
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 100
    share: Annotated[float, Field(gt=0, le=1)] | None = None  # priority ranker: reserved share


class DiversitySpec(_Strict):
    mmr: Annotated[float, Field(ge=0, le=1)] = 0.0
    max_per_category: Annotated[int, Field(ge=0)] = 0


class PurchaseRulesSpec(_Strict):
    boost: Annotated[float, Field(ge=0, le=10)] = 1.0


class PromotionSpec(_Strict):
    campaign: str
    slots: Annotated[int, Field(ge=1, le=100)] = 1
    positions: list[Annotated[int, Field(ge=1, le=100)]] = []


class PinSpec(_Strict):
    item: Annotated[str, Field(min_length=1)]
    position: Annotated[int, Field(ge=1, le=100)]
    start: datetime | None = None
    end: datetime | None = None


class CampaignSpec(_Strict):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    filter: str
    start: datetime | None = None
    end: datetime | None = None


class PlacementSpec(_Strict):
    generators: Annotated[list[GeneratorSpec], Field(min_length=1)]
    ranker: Literal["priority", "fusion", "personal", "learned"] = "fusion"
    ranker_weights: dict[str, float] = {}
    exclude: list[Exclude] = ["bought", "on_screen", "in_cart", "out_of_stock"]
    filters: list[str] = []
    purchase_rules: PurchaseRulesSpec | bool = True
    diversity: DiversitySpec = DiversitySpec()
    promotions: list[PromotionSpec] = []
    pins: list[PinSpec] = []
    fill: list[Literal["popular", "prior", "catalog"]] = ["popular", "prior", "catalog"]
    needs: list[Need] = []


class KeywordCampaignSpec(_Strict):
    title: Annotated[str, Field(min_length=1, max_length=80)]
    queries: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]],
                       Field(min_length=1)]  # fmt: skip
    slots: Annotated[int, Field(ge=1, le=10)] = 2
    start: datetime | None = None
    end: datetime | None = None


class KeywordCardSpec(_Strict):
    """`[keywords]`: the keyword card's settings (GET /v1/keywords) and its campaigns."""

    recall: Annotated[int, Field(ge=1, le=1000)] = 50
    max_overlap: Annotated[float, Field(gt=0, le=1)] = 0.5
    max_per_leaf: Annotated[int, Field(ge=1, le=10)] = 1
    min_keywords: Annotated[int, Field(ge=1, le=10)] = 2
    funnel_events: Annotated[int, Field(ge=1, le=100)] = 3
    focus_run: Annotated[int, Field(ge=0, le=50)] = 0
    show_on: list[Page] = ["product", "home", "cart", "search", "other"]
    hours: tuple[Annotated[int, Field(ge=0, le=23)], Annotated[int, Field(ge=1, le=24)]] = (0, 24)
    show_model: bool = True  # ask the version's show model, when it has one
    campaigns: dict[str, KeywordCampaignSpec] = {}


class PlacementsFile(_Strict):
    filters: dict[str, str] = {}
    campaigns: dict[str, CampaignSpec] = {}
    keywords: KeywordCardSpec = KeywordCardSpec()
    placements: Annotated[dict[str, PlacementSpec], Field(min_length=1)]


@dataclass(frozen=True)
class Placement:
    name: str
    pipeline: Pipeline
    needs: tuple[str, ...]


@dataclass(frozen=True)
class KeywordCardSettings:
    config: CardConfig
    campaigns: tuple[KeywordCampaign, ...]
    show_model: bool = True


@dataclass(frozen=True)
class Placements:
    source: str  # the file it came from
    placements: Mapping[str, Placement]
    filters: Mapping[str, CompiledFilter]
    keyword_card: KeywordCardSettings = KeywordCardSettings(CardConfig(), (), True)

    def __getitem__(self, name: str) -> Placement:
        return self.placements[name]

    def __contains__(self, name: object) -> bool:
        return name in self.placements

    @property
    def names(self) -> list[str]:
        return sorted(self.placements)


def load_placements(path: Path | None = None) -> Placements:
    """The placements of `path` (the shipped defaults when None); PlacementsError if bad."""
    path = path or DEFAULT_FILE
    return parse_placements(read_toml(path, "placements", PlacementsError), str(path))


def parse_placements(raw: dict[str, Any], source: str) -> Placements:
    try:
        spec = PlacementsFile.model_validate(raw)
    except ValidationError as exc:
        raise PlacementsError(_first_problem(exc, source)) from None
    filters = {
        name: _compile(text, f"{source}: filters.{name}") for name, text in spec.filters.items()
    }
    campaigns = {
        name: Campaign(
            name=name,
            title=c.title,
            compiled=_compile(c.filter, f"{source}: campaigns.{name}.filter"),
            start=c.start.timestamp() if c.start else None,
            end=c.end.timestamp() if c.end else None,
        )
        for name, c in spec.campaigns.items()
    }
    placements = {
        name: Placement(name, _pipeline(name, p, filters, campaigns, source), tuple(p.needs))
        for name, p in spec.placements.items()
    }
    return Placements(source, placements, filters, _keyword_card(spec.keywords, source))


def _keyword_card(spec: KeywordCardSpec, source: str) -> KeywordCardSettings:
    for name, c in spec.campaigns.items():
        if c.start and c.end and c.end <= c.start:
            raise PlacementsError(f"{source}: keywords.campaigns.{name}: end must be after start")
    settings = spec.model_dump(exclude={"campaigns", "show_model"})
    settings["show_on"] = tuple(spec.show_on)
    campaigns = tuple(
        KeywordCampaign(
            name=name,
            title=c.title,
            queries=tuple(dict.fromkeys(normalise_text(q) for q in c.queries)),
            slots=c.slots,
            start=c.start.timestamp() if c.start else None,
            end=c.end.timestamp() if c.end else None,
        )
        for name, c in spec.campaigns.items()
    )
    try:  # the card's own checks (the shape of each value was checked above)
        config = CardConfig(**settings)
    except ValueError as exc:
        raise PlacementsError(f"{source}: keywords.{exc}") from None
    return KeywordCardSettings(config, campaigns, spec.show_model)


def _compile(text: str, where: str) -> CompiledFilter:
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise PlacementsError(f"{where}: {exc}") from None


def _pipeline(
    name: str,
    spec: PlacementSpec,
    filters: Mapping[str, CompiledFilter],
    campaigns: Mapping[str, Campaign],
    source: str,
) -> Pipeline:
    key = f"{source}: placements.{name}"
    labels = [g.source for g in spec.generators]
    if len(set(labels)) != len(labels):
        raise PlacementsError(f"{key}.generators: each source may appear once, got {labels}")
    retrieval = [Retrieval(_generator(g.source), g.k, g.source) for g in spec.generators]
    for weight_of in spec.ranker_weights:
        if weight_of not in labels and weight_of != "personal":
            raise PlacementsError(
                f"{key}.ranker_weights.{weight_of}: not one of this placement's generators "
                f"({', '.join(labels)})"
            )
    if spec.ranker != "priority" and any(g.share is not None for g in spec.generators):
        raise PlacementsError(f'{key}.generators: `share` needs ranker = "priority"')
    ranker: Ranker
    if spec.ranker == "priority":
        ranker = PriorityRanker(tuple(g.share for g in spec.generators))
    elif spec.ranker == "personal":
        ranker = PersonalRanker(spec.ranker_weights.get("personal", 1.0))
    elif spec.ranker == "learned":
        ranker = LearnedRanking(FusionRanker(dict(spec.ranker_weights)))
    else:
        ranker = FusionRanker(dict(spec.ranker_weights))
    rules: list[Any] = [
        Exclusions(
            bought="bought" in spec.exclude,
            on_screen="on_screen" in spec.exclude,
            in_cart="in_cart" in spec.exclude,
            out_of_stock="out_of_stock" in spec.exclude,
        )
    ]
    for position, filter_name in enumerate(spec.filters):
        if filter_name not in filters:
            known = ", ".join(sorted(filters)) or "none defined"
            raise PlacementsError(
                f"{key}.filters[{position}]: unknown filter {filter_name!r} (defined: {known})"
            )
        rules.append(FilterRule(filter_name, filters[filter_name]))
    if spec.purchase_rules is not False:
        boost = (
            spec.purchase_rules.boost if isinstance(spec.purchase_rules, PurchaseRulesSpec) else 1.0
        )
        rules.append(AfterPurchaseRule(boost))
    promotions = []
    for position, promotion in enumerate(spec.promotions):
        if promotion.campaign not in campaigns:
            known = ", ".join(sorted(campaigns)) or "none defined"
            raise PlacementsError(
                f"{key}.promotions[{position}].campaign: unknown campaign "
                f"{promotion.campaign!r} (defined: {known})"
            )
        promotions.append(
            Promotion(campaigns[promotion.campaign], promotion.slots, tuple(promotion.positions))
        )
    pins = [
        Pin(p.item, p.position, p.start.timestamp() if p.start else None,
            p.end.timestamp() if p.end else None)
        for p in spec.pins
    ]  # fmt: skip
    return Pipeline(
        name=name,
        retrieval=retrieval,
        ranker=ranker,
        rules=tuple(rules),
        diversifier=Diversity(spec.diversity.mmr, spec.diversity.max_per_category),
        promotions=tuple(promotions),
        pins=tuple(pins),
        fill=tuple(spec.fill),
    )


def _generator(source: str) -> Generator:
    generator: Generator = GENERATORS[source]()
    return generator


def _first_problem(exc: ValidationError, source: str) -> str:
    error = exc.errors()[0]
    key = ""
    for part in error["loc"]:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part in ("bool", "PurchaseRulesSpec") or str(part).startswith(("literal[", "list[")):
            continue
        else:
            key += f".{part}" if key else str(part)
    value = error.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
    more = f"; and {len(exc.errors()) - 1} more problem(s)" if len(exc.errors()) > 1 else ""
    return f"{source}: {key or 'top level'}: {error['msg']}{shown}{more}"
