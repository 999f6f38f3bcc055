"""A stand-in for the parts of ComfyUI's PromptServer the companion hooks, and a loader that
imports the package the way ComfyUI does: by folder, under a path-like module name."""

import asyncio
import importlib.util
import itertools
import json
import logging
import shutil
import struct
import sys
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
LOGGER = "comfy_monitor_companion"
_loads = itertools.count()


class FakeSocket:
    """Records what is sent to one socket. `stall()` makes every send wait until `release()`."""

    def __init__(self):
        self.frames = []
        self.closed = False
        self.close_code = None
        self._gate = None
        self.fail = None

    def stall(self):
        self._gate = asyncio.Event()

    def release(self):
        self._gate.set()

    async def _write(self, frame):
        if self.fail is not None:
            raise self.fail
        if self._gate is not None:
            await self._gate.wait()
        self.frames.append(frame)

    async def send_str(self, text):
        await self._write(text)

    async def send_json(self, message):
        await self._write(json.dumps(message))

    async def send_bytes(self, data):
        await self._write(bytes(data))

    async def close(self, code=1000, message=b""):
        self.closed = True
        self.close_code = code

    def texts(self):
        return [json.loads(f) for f in self.frames if isinstance(f, str)]

    def binaries(self):
        return [f for f in self.frames if isinstance(f, bytes)]


class FakeImage:
    """Enough of a PIL image for `save()`: writes a recognisable payload."""

    def __init__(self, tag):
        self.tag = tag

    def save(self, fp, format, **options):
        fp.write(f"{self.tag}:{format}".encode())


class FakeQueue:
    def __init__(self):
        self.currently_running = {}
        self.history = {}


class FakePromptServer:
    """The PromptServer surface: sockets, sockets_metadata, routes, prompt_queue and the async
    send family with ComfyUI's dispatch and routing rules (sid None = everyone)."""

    instance = None

    def __init__(self, routes=None):
        self.sockets = {}
        self.sockets_metadata = {}
        self.routes = routes if routes is not None else FakeRoutes()
        self.prompt_queue = FakeQueue()
        FakePromptServer.instance = self

    def connect(self, sid, flags=None):
        ws = FakeSocket()
        self.sockets[sid] = ws
        self.sockets_metadata[sid] = {"feature_flags": dict(flags or {})}
        return ws

    def disconnect(self, sid):
        self.sockets.pop(sid, None)
        self.sockets_metadata.pop(sid, None)

    async def send(self, event, data, sid=None):
        if event == 2:
            await self.send_image(data, sid=sid)
        elif event == 4 and isinstance(data, tuple):
            image, metadata = data
            await self.send_image_with_metadata(image, metadata, sid=sid)
        elif isinstance(data, (bytes, bytearray)):
            await self.send_bytes(event, data, sid)
        else:
            await self.send_json(event, data, sid)

    async def send_image(self, image_data, sid=None):
        kind = 2 if image_data[0] == "PNG" else 1
        await self.send_bytes(1, struct.pack(">I", kind) + f"{image_data[1].tag}:{image_data[0]}".encode(), sid)

    async def send_image_with_metadata(self, image_data, metadata=None, sid=None):
        metadata = {} if metadata is None else metadata
        metadata["image_type"] = "image/png" if image_data[0] == "PNG" else "image/jpeg"
        header = json.dumps(metadata).encode()
        body = f"{image_data[1].tag}:{image_data[0]}".encode()
        await self.send_bytes(4, struct.pack(">I", len(header)) + header + body, sid)

    async def send_bytes(self, event, data, sid=None):
        message = struct.pack(">I", event) + bytes(data)
        for ws in self._targets(sid):
            await ws.send_bytes(message)

    async def send_json(self, event, data, sid=None):
        for ws in self._targets(sid):
            await ws.send_json({"type": event, "data": data})

    def _targets(self, sid):
        if sid is None:
            return list(self.sockets.values())
        return [self.sockets[sid]] if sid in self.sockets else []


class FakeRoutes:
    """aiohttp's RouteTableDef surface that custom nodes use: `routes.get(path)(handler)`."""

    def __init__(self):
        self.added = []

    def get(self, path, **kwargs):
        def register(handler):
            self.added.append(("GET", path, handler))
            return handler

        return register


def fake_server_module(instance_class=FakePromptServer):
    module = types.ModuleType("server")
    module.PromptServer = instance_class
    return module


@pytest.fixture
def load_companion(tmp_path, monkeypatch, caplog):
    """Returns load(server_module=...) -> the imported package, loaded as ComfyUI loads a
    custom-node folder (spec_from_file_location on <folder>/__init__.py), from a copy of the
    package under a folder name that is not a Python identifier."""
    caplog.set_level(logging.INFO, logger=LOGGER)

    def load(server_module):
        monkeypatch.setitem(sys.modules, "server", server_module)
        # ComfyUI's feature-flag module, where the companion lists itself.
        comfy_api = types.ModuleType("comfy_api")
        flags = types.ModuleType("comfy_api.feature_flags")
        flags.SERVER_FEATURE_FLAGS = {"supports_preview_metadata": True}
        comfy_api.feature_flags = flags
        monkeypatch.setitem(sys.modules, "comfy_api", comfy_api)
        monkeypatch.setitem(sys.modules, "comfy_api.feature_flags", flags)
        folder = tmp_path / "custom_nodes" / f"comfy-monitor companion {next(_loads)}"
        shutil.copytree(PACKAGE, folder, ignore=shutil.ignore_patterns("tests", "__pycache__"))
        name = str(folder).replace(".", "_x_")
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load


async def until(condition, timeout=2.0):
    """Lets the event loop run until condition() holds (the senders are tasks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)
