"""The console server in the test's own loop: HTTPS with a certificate, and a mission's basemap."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from sink_contract import contract_config
from tiles_fixtures import png, write_mbtiles

from hub.broker.files import BrokerFiles, write_auth_files
from hub.broker.launcher import free_port
from hub.config import Web, WebTls
from hub.errors import ConfigError
from hub.messages import HubStatus
from hub.publish.web import WebSink
from hub.release.policy import MISSION
from hub.web.metrics import HubMetrics
from hub.web.server import WebServer, web_context


@contextlib.asynccontextmanager
async def serving(files: BrokerFiles, **settings: Any) -> AsyncIterator[WebServer]:
    web = Web(port=free_port(), passwd_file=str(files.auth.password_file), **settings)
    sink = WebSink(web, ["a", "b", "c", MISSION], lambda audience: 0.0)
    context = web_context(contract_config(), web, sink, lambda: HubStatus(
        ts=time.time(), online=True, version="test", broker="connected"),
        lambda audience: [audience], HubMetrics())
    server = WebServer(context)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def files(tmp_path: Path) -> BrokerFiles:
    return write_auth_files(contract_config(), tmp_path / "auth")


async def test_https_with_a_configured_certificate_and_secure_cookies(
        files: BrokerFiles, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "web.pem"))
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    tls = WebTls(certfile=str(tmp_path / "web.pem"), keyfile=str(tmp_path / "web.pem"))
    async with serving(files, tls=tls) as server:
        assert server.url.startswith("https://")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as c:
            login = await c.post(f"{server.url}api/v1/login", ssl=client_ssl,
                                 json={"identity": "a", "password": files.password("a")})
            assert login.status == 200
            assert "Secure" in login.headers["Set-Cookie"]
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the HTTPS port
                await c.get(f"http://127.0.0.1:{server.context.settings.port}/livez")
            picture = await c.get(f"{server.url}api/v1/picture.geojson", ssl=client_ssl)
            assert picture.status == 200


async def test_a_bad_certificate_is_refused_naming_the_key(files: BrokerFiles,
                                                           tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    tls = WebTls(certfile=str(tmp_path / "junk.pem"), keyfile=str(tmp_path / "junk.pem"))
    with pytest.raises(ConfigError, match=r"\$\.web\.tls"):
        async with serving(files, tls=tls):
            pass


async def test_a_missions_basemap_is_served_to_logged_in_clients(files: BrokerFiles,
                                                                 tmp_path: Path) -> None:
    basemap = write_mbtiles(tmp_path / "sector.mbtiles")
    async with serving(files, basemap=str(basemap)) as server:
        url = server.url.rstrip("/")
        async with aiohttp.ClientSession() as anonymous:
            assert (await anonymous.get(f"{url}/tiles/1/1/0")).status == 401
        auth = aiohttp.encode_basic_auth("b", files.password("b"))
        async with aiohttp.ClientSession(headers={"Authorization": auth}) as b:
            tile = await b.get(f"{url}/tiles/1/1/0")
            assert tile.status == 200 and tile.headers["Content-Type"] == "image/png"
            assert await tile.read() == png(1, 1, 0)
            assert (await b.get(f"{url}/tiles/2/0/0")).status == 404  # not in the file
            assert (await b.get(f"{url}/tiles/1/5/0")).status == 404  # off the world
            async with b.ws_connect(f"{url}/api/v1/stream") as ws:
                hello = json.loads((await ws.receive()).data)
            assert hello["basemap"] is True and hello["basemap_maxzoom"] == 2


async def test_a_port_in_use_is_refused_naming_the_key(files: BrokerFiles) -> None:
    async with serving(files) as first:
        port = first.context.settings.port
        web = Web(port=port, passwd_file=str(files.auth.password_file))
        sink = WebSink(web, ["a"], lambda audience: 0.0)
        second = WebServer(web_context(contract_config(), web, sink, first.context.status,
                                       lambda audience: [], HubMetrics()))
        with pytest.raises(ConfigError, match=r"\$\.web\.port: cannot listen"):
            await second.start()
