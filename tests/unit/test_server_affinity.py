"""Server mode: Query 2 follows Query 1 to the same server (its prefix cache), unless that server is down."""

from __future__ import annotations

import asyncio

import httpx

from zoomguard.detector.engines.base import GenerationRequest, Turn
from zoomguard.detector.engines.openai_server import OpenAIServerEngine
from zoomguard.detector.engines.settings import EngineSettings

CHAT = {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}], "usage": {}}
URLS = ["http://gpu-1:8000", "http://gpu-2:8000", "http://gpu-3:8000"]


def _engine(hosts: list[str], down: set[str]) -> OpenAIServerEngine:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host in down:
            raise httpx.ConnectError("refused")
        hosts.append(request.url.host)
        return httpx.Response(200, json=CHAT)

    settings = EngineSettings(mode="server", server_urls=URLS, served_model_name="m", endpoint_cooldown_s=60)
    return OpenAIServerEngine(settings, client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def _request(image: str, query: str) -> GenerationRequest:
    return GenerationRequest(f"{image}:{query}", (Turn("user", "x"),), {"type": "object"}, 4, affinity=image)


def test_both_queries_of_an_image_go_to_the_same_server_while_images_spread() -> None:
    hosts: list[str] = []
    engine = _engine(hosts, set())

    async def scenario() -> None:
        for image in ("a", "b", "c", "d", "e", "f"):
            await engine.generate(_request(image, "locate"))
            await engine.generate(_request(image, "examine"))

    asyncio.run(scenario())
    pairs = list(zip(hosts[::2], hosts[1::2], strict=True))
    assert all(locate == examine for locate, examine in pairs)
    assert {locate for locate, _ in pairs} == {"gpu-1", "gpu-2", "gpu-3"}  # Query 1 is still balanced


def test_a_down_server_loses_its_affinity_and_the_query_still_runs() -> None:
    hosts: list[str] = []
    down: set[str] = set()
    engine = _engine(hosts, down)

    async def scenario() -> None:
        await engine.generate(_request("a", "locate"))
        down.add(hosts[0])
        await engine.generate(_request("a", "examine"))

    asyncio.run(scenario())
    assert len(hosts) == 2 and hosts[1] != hosts[0]


def test_requests_without_affinity_are_not_remembered() -> None:
    hosts: list[str] = []
    engine = _engine(hosts, set())
    request = GenerationRequest("r", (Turn("user", "x"),), {"type": "object"}, 4)
    asyncio.run(engine.generate(request))
    assert engine.affinity_entries == 0
