import asyncio
import logging
import types

from conftest import LOGGER, FakePromptServer, FakeRoutes, fake_server_module, settle
from jobs import sampling_job

MONITOR_FLAGS = {"comfy_monitor_relay": 1}


def inactive_records(caplog):
    return [r for r in caplog.records if r.name == LOGGER and "inactive" in r.getMessage()]


def test_loaded_by_folder_it_adds_no_node_and_hooks_the_server(load_companion):
    server = FakePromptServer()
    package = load_companion(fake_server_module())
    assert package.NODE_CLASS_MAPPINGS == {}
    assert package.NODE_DISPLAY_NAME_MAPPINGS == {}
    assert package.companion is not None
    assert "send" in vars(server)
    assert [(m, p) for m, p, _ in server.routes.added] == [("GET", "/comfy_monitor/v1/state")]


def test_an_exception_in_the_companion_is_contained_and_logged_once(load_companion, caplog):
    async def main():
        server = FakePromptServer()
        package = load_companion(fake_server_module())
        submitter = server.connect("tab")
        server.connect("monitor", MONITOR_FLAGS)

        def broken(*args):
            raise ValueError("boom")

        package.companion.relay.observe = broken
        job = sampling_job(steps=2)
        for event, data in job:
            await server.send(event, data, "tab")
        await settle()
        assert len(submitter.frames) == len(job)
        failures = [r for r in caplog.records if r.name == LOGGER and r.exc_info]
        assert len(failures) == 1
        assert "boom" in str(failures[0].exc_info[1])

    asyncio.run(main())


def test_a_missing_hook_point_leaves_the_server_untouched(load_companion, caplog):
    class OldServer:
        instance = None

        def __init__(self):
            self.sockets = {}
            self.routes = FakeRoutes()
            OldServer.instance = self

        async def send(self, event, data, sid=None):
            pass

    server = OldServer()  # no sockets_metadata: ComfyUI before 0.3.45
    package = load_companion(fake_server_module(OldServer))
    assert package.companion is None
    assert "send" not in vars(server)
    assert server.routes.added == []
    [record] = inactive_records(caplog)
    assert "sockets_metadata" in record.getMessage()


def test_no_server_instance_or_no_server_module_is_inactive(load_companion, caplog):
    class NoInstance:
        instance = None

    assert load_companion(fake_server_module(NoInstance)).companion is None
    assert load_companion(types.ModuleType("server")).companion is None
    assert len(inactive_records(caplog)) == 2


def test_a_second_copy_does_not_hook_twice(load_companion, caplog):
    server = FakePromptServer()
    load_companion(fake_server_module())
    wrapped = server.send
    assert load_companion(fake_server_module()).companion is None
    assert server.send is wrapped
    assert len(server.routes.added) == 1
    assert "already installed" in inactive_records(caplog)[0].getMessage()


def test_activation_is_logged(load_companion, caplog):
    FakePromptServer()
    load_companion(fake_server_module())
    assert any(r.levelno == logging.INFO and "active" in r.getMessage() for r in caplog.records if r.name == LOGGER)
