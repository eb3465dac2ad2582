"""The triggers file (`NEXTBEST_TRIGGERS`): which moments call for a message, and where it goes.

```toml
[triggers.abandoned-cart]
rule = "abandoned_cart"          # a cart add, then no purchase by the user for `after`
after = "2h"
window = "7d"                    # at most one message per user per window
placement = "cart"               # the list sent with it
n = 4
webhook = "https://shop.example/hooks/nextbest"
secret = "a shared secret of at least 16 characters"   # signs each delivery

[triggers.goes-with]
rule = "purchase_complements"    # a purchase: what goes with it, `after` later
after = "0s"
redis_stream = "nextbest:triggers"
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nextbest.durations import parse_duration
from nextbest.toml_files import first_problem, read_toml

RULES = ("abandoned_cart", "purchase_complements")
DEFAULT_PLACEMENT = {"abandoned_cart": "cart", "purchase_complements": "cart"}


class TriggersError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerSpec(_Strict):
    rule: Literal["abandoned_cart", "purchase_complements"]
    after: str = "1h"
    window: str = "7d"
    placement: str | None = None
    n: Annotated[int, Field(ge=1, le=50)] = 4
    webhook: str | None = None
    secret: Annotated[str, Field(min_length=16)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    redis_stream: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> TriggerSpec:
        if (self.webhook is None) == (self.redis_stream is None):
            raise ValueError("give exactly one target: webhook (with secret) or redis_stream")
        if self.webhook is not None:
            if not self.webhook.startswith(("http://", "https://")):
                raise ValueError(f"webhook must be an http(s) URL, not {self.webhook!r}")
            if self.secret is None:
                raise ValueError("a webhook needs a secret (16+ characters) to sign with")
        return self


class DeliverySpec(_Strict):
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 8
    first_retry: str = "30s"  # then doubled after each failed attempt


class TriggersFile(_Strict):
    triggers: Annotated[dict[str, TriggerSpec], Field(min_length=1)]
    delivery: DeliverySpec = DeliverySpec()


@dataclass(frozen=True)
class Trigger:
    name: str
    rule: str
    after: float  # seconds
    window: float  # seconds
    placement: str
    n: int
    webhook: str | None
    secret: str | None
    timeout: float
    redis_stream: str | None


@dataclass(frozen=True)
class Triggers:
    source: str
    triggers: tuple[Trigger, ...]
    max_attempts: int
    first_retry: float


def load_triggers(path: Path) -> Triggers:
    """The triggers of `path`; TriggersError names the file, the key and the problem."""
    raw = read_toml(path, "triggers", TriggersError)
    try:
        spec = TriggersFile.model_validate(raw)
    except ValidationError as error:
        raise TriggersError(first_problem(error, path)) from None
    triggers = []
    for name, t in spec.triggers.items():
        try:
            after = parse_duration(t.after, f"triggers.{name}.after")
            window = parse_duration(t.window, f"triggers.{name}.window", minimum=1.0)
        except ValueError as exc:
            raise TriggersError(f"{path}: {exc}") from None
        triggers.append(
            Trigger(
                name=name,
                rule=t.rule,
                after=after,
                window=window,
                placement=t.placement or DEFAULT_PLACEMENT[t.rule],
                n=t.n,
                webhook=t.webhook,
                secret=t.secret,
                timeout=t.timeout_seconds,
                redis_stream=t.redis_stream,
            )
        )
    try:
        first_retry = parse_duration(spec.delivery.first_retry, "delivery.first_retry", 0.1)
    except ValueError as exc:
        raise TriggersError(f"{path}: {exc}") from None
    return Triggers(str(path), tuple(triggers), spec.delivery.max_attempts, first_retry)
