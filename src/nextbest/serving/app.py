"""The HTTP API of nextbest (FastAPI). `create_app()` reads the settings from the environment;
`uvicorn --factory nextbest.serving.app:create_app` or `nextbest serve` runs it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from nextbest.serving.auth import KeyOwners
from nextbest.serving.bus_consumer import BusConsumer, open_bus
from nextbest.serving.errors import install_error_handlers
from nextbest.serving.limits import BodySizeLimit
from nextbest.serving.metrics import MetricsMiddleware
from nextbest.serving.openapi import openapi_document
from nextbest.serving.registry import ModelClasses
from nextbest.serving.routes import (
    affinity,
    dashboard,
    events,
    experiments,
    health,
    identity,
    items,
    keywords,
    models,
    placements,
    privacy,
    recommendations,
    search,
)
from nextbest.serving.routes.dashboard import mount_dashboard
from nextbest.serving.routes.demo import default_web_dir, mount_demo, mount_sdk
from nextbest.serving.services import open_services
from nextbest.serving.settings import ServingSettings


def create_app(
    settings: ServingSettings | None = None, classes: ModelClasses | None = None
) -> FastAPI:
    settings = settings or ServingSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = open_services(settings, classes)
        services.start()
        app.state.services = services
        # other shops of this deployment: their own log, catalog, models, state and limits
        app.state.tenants = {}
        consumers: list[BusConsumer] = []  # NEXTBEST_EVENT_BUS: each shop's log writer
        try:
            for name in settings.tenants:
                tenant = open_services(settings.for_tenant(name), classes)
                app.state.tenants[name] = tenant
                tenant.start()
            for one in (services, *app.state.tenants.values()):
                consumer = await open_bus(one)
                if consumer is not None:
                    consumers.append(consumer)
            shops = (services, *app.state.tenants.values())
            app.state.key_owners = KeyOwners([(shop, shop.keys) for shop in shops])
            yield
        finally:
            for consumer in consumers:  # before the logs close: they write to them
                await consumer.close()
            for tenant in app.state.tenants.values():
                tenant.close()
            services.close()

    app = FastAPI(
        title="nextbest",
        version=version("nextbest"),
        summary="Session-aware next-best product recommendations, live.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
        # nextbest has its own Prometheus metrics; FastAPI's OpenTelemetry hooks would only
        # look for providers on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    for router in (
        events.router,
        identity.router,
        recommendations.router,
        items.router,
        models.router,
        placements.router,
        affinity.router,
        privacy.router,
        search.router,
        keywords.router,
        experiments.router,
        dashboard.router,
    ):
        app.include_router(router)
    app.include_router(health.router)
    if settings.demo:
        mount_demo(app, settings.web_dir or default_web_dir())
    if not mount_sdk(app, settings.web_dir or default_web_dir()):
        logging.getLogger(__name__).info("no web/sdk/dist folder: /sdk/ is off")
    if not mount_dashboard(app, settings.web_dir or default_web_dir()):
        logging.getLogger(__name__).info("no web/dashboard folder: the dashboard page is off")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-User-Token"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app
