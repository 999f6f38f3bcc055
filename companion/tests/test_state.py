import asyncio
import json

import pytest

from conftest import FakePromptServer, fake_server_module
from jobs import PROMPT, node_state, sampling_job

GRAPH = {
    "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 2}, "_meta": {"title": "Sampler"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
}


def handler(server):
    [(_, _, handle)] = server.routes.added
    return handle


async def body(server):
    pytest.importorskip("aiohttp")
    response = await handler(server)(None)
    assert response.status == 200
    return json.loads(response.body)


def test_the_state_route_when_idle(load_companion):
    server = FakePromptServer()
    load_companion(fake_server_module())
    assert asyncio.run(body(server)) == {"companion": "0.1.0", "protocol": 1, "comfyui": None, "running": None}


def test_the_state_route_mid_job(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.prompt_queue.currently_running[0] = (0, PROMPT, GRAPH, {"client_id": "tab"}, ["2"])
        for event, data in sampling_job(steps=2)[:7]:
            await server.send(event, data, "tab")
        return await body(server)

    assert asyncio.run(main())["running"] == {
        "prompt_id": PROMPT,
        "client_id": "tab",
        "started_at": 1796615367572,
        "node": "1",
        "nodes": {"1": {"class_type": "MonitorTestSampler", "title": "Sampler"}, "2": {"class_type": "SaveImage"}},
        "progress_state": {"1": node_state("1", 1, 2, "running")},
    }


def test_the_state_route_for_a_job_queued_without_client_id(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.prompt_queue.currently_running[0] = (0, PROMPT, GRAPH, {}, ["2"])
        nodes = {"1": node_state("1", 1, 2, "running")}
        await server.send("progress_state", {"prompt_id": PROMPT, "nodes": nodes})  # broadcast
        return await body(server), nodes

    state, nodes = asyncio.run(main())
    assert state["running"]["client_id"] is None
    assert state["running"]["started_at"] is None
    assert state["running"]["progress_state"] == nodes


def test_the_route_is_mirrored_under_api_as_comfyui_does(load_companion):
    web = pytest.importorskip("aiohttp.web")
    from aiohttp.test_utils import TestClient, TestServer

    async def main():
        routes = web.RouteTableDef()
        FakePromptServer(routes=routes)
        load_companion(fake_server_module())
        # What PromptServer.add_routes does after the custom nodes are loaded.
        app = web.Application()
        api = web.RouteTableDef()
        for route in routes:
            if isinstance(route, web.RouteDef):
                api.route(route.method, "/api" + route.path)(route.handler, **route.kwargs)
        app.add_routes(api)
        app.add_routes(routes)
        async with TestClient(TestServer(app)) as client:
            for path in ("/comfy_monitor/v1/state", "/api/comfy_monitor/v1/state"):
                response = await client.get(path)
                assert response.status == 200
                assert (await response.json())["protocol"] == 1
            assert (await client.post("/comfy_monitor/v1/state")).status == 405

    asyncio.run(main())


def test_the_companion_lists_itself_in_the_servers_feature_flags(load_companion):
    import sys

    FakePromptServer()
    load_companion(fake_server_module())
    flags = sys.modules["comfy_api.feature_flags"].SERVER_FEATURE_FLAGS
    assert flags["comfy_monitor_companion"] == {"version": "0.1.0", "protocol": 1}
    assert flags["supports_preview_metadata"] is True, "the server's own flags are kept"
