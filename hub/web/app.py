"""The aiohttp application: the console's files, the API, health and metrics.

Every endpoint that returns data takes the audience from the caller's session
cookie or HTTP Basic credential (hub.web.auth), never from the URL, and reads
only that audience's state in the web sink, which only the release view fills.
docs/PROTOCOL.md (*Web*) is the contract.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from hub.publish.geojson import encode as encode_json
from hub.release.policy import MISSION
from hub.web import streams
from hub.web.auth import Principal, basic_credentials
from hub.web.context import CONTEXT, WebContext

COOKIE = "hub_session"
MAX_LOGIN_BODY = 4096
MAX_ZOOM = 30
GEOJSON = "application/geo+json"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
"""Nothing the console loads may come from anywhere but the hub."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AuthedHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]


def static_root() -> Path:
    """The console's files, installed with the package."""
    return Path(str(importlib.resources.files("hub.web") / "static"))


def build_app(context: WebContext) -> web.Application:
    """The application, with every route and the heartbeat task."""
    app = web.Application(middlewares=[security_headers], client_max_size=MAX_LOGIN_BODY)
    app[CONTEXT] = context
    root = static_root()
    app.router.add_get("/", index)
    app.router.add_static("/static/", root, show_index=False, follow_symlinks=False)
    app.router.add_post("/api/v1/login", login)
    app.router.add_post("/api/v1/logout", logout)
    app.router.add_get("/api/v1/session", session)
    app.router.add_get("/api/v1/picture.geojson", authed(picture))
    app.router.add_get("/api/v1/trails.geojson", authed(trails))
    app.router.add_get("/api/v1/tracks/{track_id}/history.geojson", authed(history))
    app.router.add_get("/api/v1/stream", authed(streams.websocket, websocket=True))
    app.router.add_get("/api/v1/events", authed(streams.events))
    app.router.add_get("/api/v1/status", authed(status))
    app.router.add_get("/tiles/{z}/{x}/{y}", authed(tile))
    app.router.add_get("/metrics", authed(metrics))
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/healthz", readyz)
    app.cleanup_ctx.append(streams.beat)
    return app


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No outside content, no framing, no caching of answers that carry a picture."""
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
    return response


def principal(request: web.Request) -> Principal | None:
    """Who is calling: from the session cookie, or from HTTP Basic credentials."""
    context = request.app[CONTEXT]
    token = request.cookies.get(COOKIE)
    if token:
        who = context.sessions.principal(token)
        if who is not None:
            return who
    header = request.headers.get("Authorization")
    given = basic_credentials(header) if header else None
    if given is None:
        return None
    keys = _limit_keys(request, given[0])
    if context.limiter.retry_after(keys) > 0:
        return None
    audience = context.credentials.check(*given)
    if audience is None:
        context.limiter.failed(keys)
        return None
    return Principal(given[0], audience, float("inf"))


def authed(handler: AuthedHandler, websocket: bool = False) -> Handler:
    """``handler`` for logged-in callers only; WebSocket upgrades from another origin refused."""

    async def checked(request: web.Request) -> web.StreamResponse:
        who = principal(request)
        if who is None:
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="hub"'},
                                       text="log in first")
        if websocket and not same_origin(request):
            request.app[CONTEXT].sink.counters["web_refused.origin"] += 1
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        return await handler(request, who)

    return checked


def same_origin(request: web.Request) -> bool:
    """Whether the request's ``Origin`` (if any) is the hub itself."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


async def index(request: web.Request) -> web.StreamResponse:
    """The console page."""
    return web.FileResponse(static_root() / "index.html",
                            headers={"Cache-Control": "no-cache"})


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/login``: check an identity's password; set the session cookie."""
    context = request.app[CONTEXT]
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-origin login refused")
    identity, password = await _login_body(request)
    keys = _limit_keys(request, identity)
    wait = context.limiter.retry_after(keys)
    if wait > 0:
        context.sink.counters["web_logins.limited"] += 1
        raise web.HTTPTooManyRequests(headers={"Retry-After": str(int(wait) + 1)},
                                      text="too many failed logins: wait")
    audience = await asyncio.to_thread(context.credentials.check, identity, password)
    if audience is None:
        context.limiter.failed(keys)
        context.sink.counters["web_logins.failed"] += 1
        raise web.HTTPUnauthorized(text="unknown identity or wrong password")
    token, expires = context.sessions.issue(identity)
    context.sink.counters["web_logins.ok"] += 1
    response = web.json_response({"identity": identity, "audience": audience,
                                  "expires": expires})
    response.set_cookie(COOKIE, token, max_age=int(context.settings.session_ttl_s), path="/",
                        httponly=True, samesite="Strict",
                        secure=context.settings.tls is not None)
    return response


async def _login_body(request: web.Request) -> tuple[str, str]:
    try:
        body = await request.json()
    except (ValueError, web.HTTPRequestEntityTooLarge) as exc:
        raise web.HTTPBadRequest(text="send a JSON object {identity, password}") from exc
    if not (isinstance(body, dict) and isinstance(body.get("identity"), str)
            and isinstance(body.get("password"), str)):
        raise web.HTTPBadRequest(text="send a JSON object {identity, password}")
    return body["identity"][:128], body["password"][:1024]


def _limit_keys(request: web.Request, identity: str) -> tuple[str, ...]:
    return f"address:{request.remote}", f"identity:{identity[:128]}"


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/logout``: end the session."""
    token = request.cookies.get(COOKIE)
    if token:
        request.app[CONTEXT].sessions.revoke(token)
    response = web.json_response({"logged_out": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def session(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/session``: who is logged in (401, without a Basic challenge, if nobody)."""
    who = principal(request)
    if who is None:
        raise web.HTTPUnauthorized(text="not logged in")
    return web.json_response({"identity": who.identity, "audience": who.audience,
                              "expires": who.expires if who.expires != float("inf") else None})


async def picture(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /api/v1/picture.geojson``."""
    state = request.app[CONTEXT].sink.audiences[who.audience]
    return web.Response(body=encode_json(state.collection()), content_type=GEOJSON)


async def trails(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /api/v1/trails.geojson``."""
    state = request.app[CONTEXT].sink.audiences[who.audience]
    return web.Response(body=encode_json(state.all_trails()), content_type=GEOJSON)


async def history(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /api/v1/tracks/{id}/history.geojson``: 404 for a track this audience has not seen."""
    state = request.app[CONTEXT].sink.audiences[who.audience]
    found = state.trail(request.match_info["track_id"])
    if found is None:
        raise web.HTTPNotFound(text="no such track in your picture")
    return web.Response(body=encode_json(found), content_type=GEOJSON)


async def status(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /api/v1/status``."""
    return web.json_response(request.app[CONTEXT].status_for(who.audience))


async def tile(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /tiles/{z}/{x}/{y}``: a basemap tile from ``web.basemap``."""
    tiles = request.app[CONTEXT].tiles
    try:
        z, x = int(request.match_info["z"]), int(request.match_info["x"])
        y = int(request.match_info["y"].split(".")[0])
    except ValueError as exc:
        raise web.HTTPNotFound() from exc
    if tiles is None or not (0 <= z <= MAX_ZOOM and 0 <= x < 1 << z and 0 <= y < 1 << z):
        raise web.HTTPNotFound()
    found = await asyncio.to_thread(tiles.tile, z, x, y)
    if found is None:
        raise web.HTTPNotFound()
    return web.Response(body=found.data, content_type=found.content_type,
                        headers={"Cache-Control": "private, max-age=3600"})


async def metrics(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /metrics``: the operator's (and ``web.metrics_identities``') only."""
    context = request.app[CONTEXT]
    if who.audience != MISSION and who.identity not in context.settings.metrics_identities:
        raise web.HTTPForbidden(text="metrics are the operator's")
    body, content_type = context.metrics.exposition(request.headers.get("Accept", ""))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def livez(request: web.Request) -> web.StreamResponse:
    """``GET /livez``: the process serves."""
    return web.json_response({"live": True})


async def readyz(request: web.Request) -> web.StreamResponse:
    """``GET /readyz``: 200 while the broker is connected, else 503."""
    broker = request.app[CONTEXT].status().broker
    body: dict[str, Any] = {"ready": broker == "connected", "broker": broker}
    return web.Response(text=json.dumps(body), content_type="application/json",
                        status=200 if body["ready"] else 503)
