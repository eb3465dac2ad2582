"""Every setting of the server, read from `NEXTBEST_*` environment variables in one place.

    NEXTBEST_HOME                 data folder: models/, events.db, api-keys.json (./.nextbest)
    NEXTBEST_DATABASE_URL         postgresql+psycopg://... (default: SQLite file in the home)
    NEXTBEST_DATABASE_SCHEMA      PostgreSQL schema for the tables (default: the user's default)
    NEXTBEST_SQLITE_SYNCHRONOUS   FULL (synced to disk before the reply) or NORMAL
    NEXTBEST_REDIS_URL            redis://host:6379/0 for shared session state (default: in-process)
    NEXTBEST_REDIS_PREFIX         key prefix in Redis (nextbest:)
    NEXTBEST_STATE_TTL_SECONDS    idle expiry of a session's live state (1800)
    NEXTBEST_EVENT_BUS            nats://host:4222: events go through a NATS JetStream stream
                                  to the log (default: ingest commits to the log itself)
    NEXTBEST_WRITE_KEYS, NEXTBEST_READ_KEYS, NEXTBEST_ADMIN_KEYS, NEXTBEST_BROWSER_KEYS
                                  comma-separated API keys
    NEXTBEST_IDENTITY_SECRETS     comma-separated secrets user tokens are signed with
    NEXTBEST_KEYS_FILE            JSON {"write": ..., "read": ..., "admin": ..., "browser": ...,
                                  "identity_secrets": ...} (each a string or a list), read
                                  again when it changes
    NEXTBEST_CORS_ORIGINS         comma-separated origins allowed to call from a browser
    NEXTBEST_MAX_BODY_BYTES       largest request body (1 MiB)
    NEXTBEST_RATE_LIMIT_REQUESTS_PER_ADDRESS, NEXTBEST_RATE_LIMIT_REQUESTS_PER_KEY,
    NEXTBEST_RATE_LIMIT_EVENTS_PER_ADDRESS, NEXTBEST_RATE_LIMIT_EVENTS_PER_KEY
                                  per second, per client address or API key (0: no limit, the
                                  default); NEXTBEST_RATE_LIMIT_BURST_SECONDS: a burst (2)
    NEXTBEST_RATE_LIMIT_BROWSER_REQUESTS_PER_ADDRESS, _BROWSER_EVENTS_PER_ADDRESS
                                  the same for browser keys' requests (20, 100: on by default)
    NEXTBEST_SERVED_KEEP_DAYS     how long answered lists are kept for attribution (30)
    NEXTBEST_EVENT_RETENTION_DAYS events older than this are deleted, hourly (0: kept for good)
    NEXTBEST_PLACEMENTS           the placements file (TOML; default: the shipped placements)
    NEXTBEST_EXPERIMENTS          the experiments file (TOML; default: experiments.toml in the home)
    NEXTBEST_ONLINE_LEARNING      0: a two-stage version's FTRL ranker does not learn from outcomes
    NEXTBEST_DEMO                 1: serve the demo shop's page at / (with its keys: demo only)

The rest (poll intervals, windows) have defaults that suit a shop; see the fields below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nextbest.events.log.database import sqlite_url
from nextbest.serving.auth import ApiKeys

CommaList = Annotated[tuple[str, ...], NoDecode]


TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXTBEST_", frozen=True, extra="ignore")

    home: Path = Path(".nextbest")
    database_url: str | None = None
    database_schema: str | None = None
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    redis_url: str | None = None
    redis_prefix: str = "nextbest:"
    state_ttl_seconds: float = Field(default=1800.0, gt=0)
    state_max_sessions: int = Field(default=1_000_000, ge=1)  # in-process store only
    rebuild_events: int = Field(default=200, ge=1)  # events replayed to rebuild one session
    # nats://host:4222: ingest acknowledges events once a JetStream stream stored them, and
    # every node's consumer logs them (docs/operations.md). None: ingest commits to the log.
    event_bus: str | None = None
    event_bus_stream: str = Field(default="nextbest_events", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # how long a recommendation waits for its session's events published on the same node to
    # be logged and applied (read-your-writes); then it answers from the state as it is
    event_bus_wait_seconds: float = Field(default=0.5, ge=0)
    write_keys: CommaList = ()
    read_keys: CommaList = ()
    admin_keys: CommaList = ()
    browser_keys: CommaList = ()
    identity_secrets: CommaList = ()
    keys_file: Path | None = None
    cors_origins: CommaList = ()
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # 429 with Retry-After beyond these rates (per second; 0: no limit). Off by default: behind
    # a proxy every client has the proxy's address, and a backend key carries a whole shop.
    rate_limit_requests_per_address: float = Field(default=0.0, ge=0)
    rate_limit_requests_per_key: float = Field(default=0.0, ge=0)
    rate_limit_events_per_address: float = Field(default=0.0, ge=0)
    rate_limit_events_per_key: float = Field(default=0.0, ge=0)
    rate_limit_burst_seconds: float = Field(default=2.0, gt=0)
    # browser keys' requests per client address: on by default (a browser key is public)
    rate_limit_browser_requests_per_address: float = Field(default=20.0, ge=0)
    rate_limit_browser_events_per_address: float = Field(default=100.0, ge=0)
    model_poll_seconds: float = Field(default=5.0, gt=0)
    refresh_seconds: float = Field(default=2.0, gt=0)  # live counts and catalog changes
    trend_window_events: int = Field(default=200_000, ge=1)
    placements: Path | None = None  # the placements file; None: the shipped defaults
    experiments: Path | None = None  # the experiments file; None: experiments.toml in the home
    served_keep_days: float = Field(default=30.0, gt=0)  # answered lists kept for attribution
    keep_versions: int = Field(default=10, ge=0)  # model versions a retrain keeps (0: all)
    triggers: Path | None = None  # the triggers file (TOML): abandoned carts, complements
    trigger_tick_seconds: float = Field(default=5.0, gt=0)  # how often the triggers run
    # other shops this deployment serves, each in its own data folder (see `for_tenant`)
    tenants: CommaList = ()
    tenant: str | None = None  # a command run for one of them (NEXTBEST_TENANT=shop-b)
    event_retention_days: float = Field(default=0.0, ge=0)  # events older are deleted; 0: kept
    torch_threads: int = Field(default=1, ge=1)
    online_learning: bool = True  # the FTRL ranker learns from the outcomes of its lists
    online_save_seconds: float = Field(default=30.0, gt=0)  # how often its state is saved
    docs: bool = True
    demo: bool = False  # the demo shop's page at / (hands out the demo's keys: demo only)
    web_dir: Path | None = None  # web/ (SDK, demo page); default: the source checkout's

    @field_validator(
        "write_keys",
        "read_keys",
        "admin_keys",
        "browser_keys",
        "identity_secrets",
        "cors_origins",
        "tenants",
        mode="before",
    )
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def fixed_keys(self) -> ApiKeys:
        """The keys and identity secrets set in the environment (the keys file adds more)."""
        return ApiKeys(
            write=self.write_keys,
            read=self.read_keys,
            admin=self.admin_keys,
            browser=self.browser_keys,
            identity_secrets=self.identity_secrets,
        )

    @property
    def experiments_file(self) -> Path:
        """The experiments file (it need not exist: then no experiment runs)."""
        return self.experiments or self.home / "experiments.toml"

    def for_tenant(self, name: str) -> ServingSettings:
        """The settings of tenant `name`: its own data folder (`$NEXTBEST_HOME/tenants/NAME`:
        models, SQLite log, keys file, experiments), its own PostgreSQL schema
        (`<schema>_NAME`), Redis prefix and event bus stream (`<stream>_NAME`); no keys from
        the environment (those are the deployment's own shop's), no other tenants, no
        triggers."""
        if not TENANT_NAME.fullmatch(name):
            raise ValueError(
                f"tenant name {name!r}: use 1-40 lower-case letters, digits, '-' or '_'"
            )
        schema = None
        if self.database_url is not None and self.database_url.startswith("postgresql"):
            schema = f"{self.database_schema or 'nextbest'}_{name.replace('-', '_')}"
        return self.model_copy(
            update={
                "home": self.home / "tenants" / name, "tenant": name, "tenants": (),
                "database_schema": schema, "redis_prefix": f"{self.redis_prefix}{name}:",
                "event_bus_stream": f"{self.event_bus_stream}_{name}",
                "write_keys": (), "read_keys": (), "admin_keys": (), "browser_keys": (),
                "identity_secrets": (), "keys_file": None, "experiments": None,
                "triggers": None,
            }
        )  # fmt: skip

    @property
    def database(self) -> str:
        """The event log's URL: NEXTBEST_DATABASE_URL, or the SQLite file in the home."""
        return self.database_url or sqlite_url(self.home)
