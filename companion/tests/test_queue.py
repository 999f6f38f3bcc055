import asyncio

from conftest import LOGGER, FakeImage, FakePromptServer, fake_server_module, settle, until
from jobs import PROMPT

MONITOR_FLAGS = {"comfy_monitor_relay": 1}
QUEUE_LIMIT = 256


def progress(i):
    return ("progress", {"value": i, "max": 1000, "prompt_id": PROMPT, "node": "1"})


def test_a_stalled_subscriber_sheds_progress_and_previews_keeps_the_rest_and_never_stalls_the_loop(load_companion):
    async def main():
        server = FakePromptServer()
        package = load_companion(fake_server_module())
        submitter = server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        monitor.stall()
        sends = [("execution_start", {"prompt_id": PROMPT, "timestamp": 1})]
        for i in range(400):
            sends += [progress(i), (2, ("JPEG", FakeImage(f"s{i}"), None))]
        sends += [
            ("executed", {"node": "2", "output": None, "prompt_id": PROMPT}),
            ("execution_success", {"prompt_id": PROMPT}),
            ("executing", {"node": None, "prompt_id": PROMPT}),
        ]
        # The publish loop: every send completes at once although the monitor reads nothing.
        for event, data in sends:
            await asyncio.wait_for(server.send(event, data, "tab"), 0.5)
        assert len(submitter.frames) == len(sends)

        subscriber = package.companion.relay.subscribers["monitor"]
        assert len(subscriber.items) <= QUEUE_LIMIT + 3
        assert subscriber.dropped > 0

        monitor.release()
        await until(lambda: not subscriber.items)
        await settle()
        types = [m["type"] for m in monitor.texts()]
        assert types[0] == "execution_start"
        assert types[-3:] == ["executed", "execution_success", "executing"]
        assert len(monitor.frames) < len(sends)

    asyncio.run(main())


def test_undroppable_messages_displace_queued_previews(load_companion):
    async def main():
        server = FakePromptServer()
        package = load_companion(fake_server_module())
        server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        monitor.stall()
        for i in range(QUEUE_LIMIT + 10):
            await server.send(*progress(i), "tab")
        subscriber = package.companion.relay.subscribers["monitor"]
        before = len(subscriber.items)
        await server.send("executing", {"node": "2", "prompt_id": PROMPT}, "tab")
        assert len(subscriber.items) == before
        assert subscriber.items[-1][0].startswith('{"type": "executing"')
        monitor.release()

    asyncio.run(main())


def test_a_subscriber_too_far_behind_is_cut_off_with_1013(load_companion, caplog):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        monitor.stall()
        for i in range(1100):
            await server.send("executing", {"node": str(i), "prompt_id": PROMPT}, "tab")
        await settle()
        assert monitor.closed and monitor.close_code == 1013
        assert len([r for r in caplog.records if r.name == LOGGER and "cut off" in r.getMessage()]) == 1

    asyncio.run(main())


def test_the_sender_goes_away_with_its_socket(load_companion, caplog):
    async def main():
        server = FakePromptServer()
        package = load_companion(fake_server_module())
        server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        await server.send("executing", {"node": "1", "prompt_id": PROMPT}, "tab")
        await until(lambda: len(monitor.frames) == 1)
        relay = package.companion.relay
        task = relay.subscribers["monitor"].task

        server.disconnect("monitor")
        await server.send("executing", {"node": "2", "prompt_id": PROMPT}, "tab")
        await settle()
        assert relay.subscribers == {} and task.done()
        assert len(monitor.frames) == 1

        # A socket that fails on write (peer reset) is forgotten too, quietly.
        other = server.connect("monitor-2", MONITOR_FLAGS)
        other.fail = ConnectionResetError("reset")
        await server.send("executing", {"node": "3", "prompt_id": PROMPT}, "tab")
        await until(lambda: "monitor-2" not in relay.subscribers)
        assert not [r for r in caplog.records if r.name == LOGGER and r.exc_info]

    asyncio.run(main())


def test_a_reconnected_sid_gets_a_new_sender(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.connect("tab")
        old = server.connect("monitor", MONITOR_FLAGS)
        await server.send("executing", {"node": "1", "prompt_id": PROMPT}, "tab")
        await until(lambda: old.frames)
        new = server.connect("monitor", MONITOR_FLAGS)  # same clientId: ComfyUI replaces the entry
        await server.send("executing", {"node": "2", "prompt_id": PROMPT}, "tab")
        await until(lambda: new.frames)
        assert len(old.frames) == 1

    asyncio.run(main())
