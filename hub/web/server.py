"""The console's HTTP(S) server on the hub's event loop: built from the config, started, stopped."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from hub.config import HubConfig, Web
from hub.errors import ConfigError
from hub.messages import HubStatus
from hub.publish.web import WebSink
from hub.web.app import build_app
from hub.web.auth import Credentials, LoginLimiter, Sessions, session_key
from hub.web.context import WebContext
from hub.web.metrics import HubMetrics
from hub.web.tiles import open_basemap


def web_context(config: HubConfig, settings: Web, sink: WebSink,
                status: Callable[[], HubStatus], rules_of: Callable[[str], list[str]],
                metrics: HubMetrics) -> WebContext:
    """Everything the app needs; files named by ``[web]`` are opened here (errors name the key)."""
    credentials = Credentials(config, Path(settings.passwd_file))
    sessions = Sessions(session_key(settings.session_secret_file), settings.session_ttl_s,
                        credentials)
    tiles = open_basemap(settings.basemap) if settings.basemap else None
    return WebContext(config=config, settings=settings, sink=sink, credentials=credentials,
                      sessions=sessions, limiter=LoginLimiter(settings.login_attempts),
                      status=status, rules_of=rules_of, metrics=metrics, tiles=tiles)


def tls_context(settings: Web) -> ssl.SSLContext | None:
    """The HTTPS context of ``[web.tls]``, or None for plain HTTP."""
    if settings.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls.certfile, settings.tls.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"$.web.tls: cannot load {settings.tls.certfile} with "
                          f"{settings.tls.keyfile}: {exc}") from exc
    return context


class WebServer:
    """The console and API on ``web.host:web.port``."""

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.ssl = tls_context(context.settings)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where a browser opens the console."""
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{self.context.settings.host}:{self.context.settings.port}/"

    async def start(self) -> None:
        """Listen; a port in use is a ConfigError naming the key."""
        runner = web.AppRunner(build_app(self.context), access_log=None,
                               handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.context.settings.host, self.context.settings.port,
                           ssl_context=self.ssl)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"$.web.port: cannot listen on {self.context.settings.host}:"
                              f"{self.context.settings.port}: {exc.strerror}") from exc
        self._runner = runner

    async def stop(self) -> None:
        """Close every stream and the listener."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.context.tiles is not None:
            self.context.tiles.close()
