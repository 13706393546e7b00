"""create_app(settings): the one place where the parts are built and wired."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

from aiohttp import web

from api.auth.second_factor import (
    require_key_if_enrolled,
    require_relying_party_if_registered,
)
from api.clock import Clock, system_clock
from api.db import connection as db
from api.infra.tasks import cancel_all
from api.networks import TrustedNetworks, parse_networks, rate_limit_key
from api.services import Services
from api.settings import Settings
from api.web.admission import request_lane
from api.web.appkeys import (
    ADMISSION_LAG_KEY,
    DRAINING_KEY,
    LOOP_LAG_KEY,
    SERVICES_KEY,
    SETTINGS_KEY,
)
from api.web.clients import client_ip, from_proxy
from api.web.graphiql import add_graphiql_assets
from api.web.metrics import metrics_handler
from api.web.middleware import cors, hide_server_version, identity_bodies_only, security_headers
from api.web.overload import LoopLag, in_flight_limit
from api.web.persisted import persisted_documents, store_ctx
from api.web.telemetry import add_telemetry
from schema.admission import Lane, LaneClassifier

log = logging.getLogger("graphgate")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database (and Redis, if configured) answer within a second; else 503
    (at once, without checking, once SIGTERM has come: the worker is on its way out)."""
    if request.app[DRAINING_KEY].is_set():
        return web.json_response({"status": "draining"}, status=503)
    checks: dict[str, Awaitable[None]] = {"database": db.ping()}
    feed = request.app[SERVICES_KEY].revocations.feed
    if feed is not None:
        checks["redis"] = feed.ping()
    results = await asyncio.gather(*checks.values(), return_exceptions=True)
    states = {}
    for name, result in zip(checks, results, strict=True):
        states[name] = "down" if isinstance(result, BaseException) else "up"
        if isinstance(result, BaseException):
            log.warning("readiness check: %s does not answer (%r)", name, result)
    # Without Redis the service is still correct (docs/scaling.md): optionally, still ready.
    needed = {"database"} if request.app[SETTINGS_KEY].ready_without_redis else set(states)
    ready = all(states[name] == "up" for name in needed)
    body = {"status": "ok" if ready else "unavailable", **states}
    return web.json_response(body, status=200 if ready else 503)


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICES_KEY].keys.jwks)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The database, open for the app's lifetime."""
    async with db.opened(app[SETTINGS_KEY]):
        yield


async def mfa_key_ctx(app: web.Application) -> AsyncIterator[None]:
    """Refuse to start without the key that opens enrolled users' TOTP secrets, or without
    the relying party their passkeys belong to."""
    await require_key_if_enrolled(app[SERVICES_KEY].factor.box)
    await require_relying_party_if_registered(app[SETTINGS_KEY].passkeys)
    yield


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES_KEY]
    async with services.revocations.running(services.settings.redis_url):
        yield
    services.hasher.close()


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """Subscription events: in-process, and shared over Redis when REDIS_URL is set."""
    services = app[SERVICES_KEY]
    async with services.events.running(services.settings.redis_url):
        yield


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """Deliver mail in the background; at shutdown, drain the queue (bounded)."""
    services = app[SERVICES_KEY]
    async with services.mailer.running(services.settings.shutdown_timeout):
        yield


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(app[key].watch()) for key in (LOOP_LAG_KEY, ADMISSION_LAG_KEY)]
    yield
    await cancel_all(tasks)


def short_of_cpu(lag: LoopLag, priority_waiting: bool, s: Settings) -> bool:
    """Whether the worker refuses ordinary operations now. Any time the loop runs MAX_LOOP_LAG
    late (so a sign-in arriving meets a short queue); while a sign-in, refresh or sign-out is
    in progress, already past SHED_LOOP_LAG (each of its ~30 turns stays short).

    Hashes waiting for a thread do not shed by themselves: a few concurrent logins (wrong
    passwords too) would then refuse every other request of every user."""
    late = max(lag.late_now(), lag.sustained)
    if priority_waiting and late > s.shed_loop_lag:
        return True
    return late > s.max_loop_lag


_heap_frozen = False


async def freeze_heap(app: web.Application) -> None:
    """After start-up, once per process: full collections stop walking the start-up objects
    (schema, models, modules)."""
    global _heap_frozen
    if _heap_frozen:  # tests build an app per test: freezing each would keep every test's
        return  # app, once garbage (cycles), from ever being collected
    _heap_frozen = True
    gc.collect()  # garbage from start-up goes now, not into the frozen generation
    gc.freeze()


def create_app(settings: Settings, *, clock: Clock = system_clock) -> web.Application:
    """The whole service: database, auth services, GraphQL view, health endpoints."""
    from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

    from api.web.view import AuthGraphQLView
    from schema.build import build_schema
    from schema.manifest import read_manifest

    hide_server_version()
    trusted = TrustedNetworks(parse_networks("TRUSTED_PROXIES", settings.trusted_proxies))
    admission_lag = LoopLag(interval=0.01)
    # A manifest that cannot be read or holds an invalid document stops the start here.
    documents = read_manifest(settings.trusted_documents) if settings.trusted_documents else ()
    # security_headers outermost: CORS preflights and overload answers get the headers too.
    app = web.Application(
        middlewares=[
            security_headers,
            identity_bodies_only,
            cors(settings.cors_origins),
            in_flight_limit(
                {
                    Lane.SIGN_IN: settings.max_in_flight_sign_in,
                    Lane.REFRESH: settings.max_in_flight_refresh,
                    Lane.SIGN_OUT: settings.max_in_flight_sign_out,
                    Lane.OTHER: settings.max_in_flight,
                },
                settings.max_websockets,
                lane_of=request_lane(LaneClassifier(), {d.id: d.text for d in documents}),
                busy=lambda priority_waiting: short_of_cpu(
                    admission_lag, priority_waiting, settings
                ),
                sockets_per_client=settings.max_websockets_per_ip,
                client_key=lambda request: rate_limit_key(client_ip(request, trusted)),
                shared=lambda request: from_proxy(request, trusted),
                protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            ),
        ]
    )
    app[SETTINGS_KEY] = settings
    app[SERVICES_KEY] = services = Services.build(settings, clock)
    app[LOOP_LAG_KEY] = LoopLag()
    app[ADMISSION_LAG_KEY] = admission_lag
    app[DRAINING_KEY] = asyncio.Event()
    add_telemetry(app, services.metrics)  # outermost: request id, access log, metrics
    app.cleanup_ctx.append(loop_lag_ctx)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(mfa_key_ctx)
    app.cleanup_ctx.append(services_ctx)
    app.cleanup_ctx.append(events_ctx)
    app.cleanup_ctx.append(mail_ctx)  # after the database: drained before it closes

    persisted = persisted_documents(settings, documents)
    app.cleanup_ctx.append(store_ctx(persisted))
    view = AuthGraphQLView(
        schema=build_schema(settings, documents),
        persisted=persisted,
        graphql_ide="graphiql" if settings.graphiql else None,
        allow_queries_via_get=settings.get_queries,
        settings=settings,
        trusted_proxies=trusted,  # parsed once for the app: the socket caps and the view
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),  # the contract's one protocol
        # Browsers on these origins may open the WebSocket too (same origin always may).
        allowed_origins=settings.cors_origins,
        # A socket that never says connection_init is closed (4408) instead of holding a slot.
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        # One note change is one event per subscription: bound the fan-out per socket.
        max_subscriptions_per_connection=settings.max_subscriptions_per_socket,
    )
    app.router.add_route("*", "/graphql", view)
    app.on_shutdown.append(view.close_sockets)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get("/metrics", metrics_handler(services.metrics, settings.metrics_token))
    if settings.graphiql:
        add_graphiql_assets(app)
    app.on_startup.append(freeze_heap)  # after the cleanup contexts: database, revocations
    return app
