import asyncio
import json
import struct

from conftest import FakeImage, FakePromptServer, fake_server_module, settle, until
from jobs import PROMPT, json_events, sampling_job

MONITOR_FLAGS = {"supports_preview_metadata": True, "comfy_monitor_relay": 1}


def type4(frame):
    assert frame[:4] == struct.pack(">I", 4)
    (length,) = struct.unpack(">I", frame[4:8])
    return json.loads(frame[8 : 8 + length]), frame[8 + length :]


async def publish(server, job, sid):
    for event, data in job:
        await server.send(event, data, sid)


def test_a_subscriber_gets_copies_of_another_sids_job_and_others_get_nothing(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        submitter = server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        bystander = server.connect("script", {"supports_preview_metadata": True, "comfy_monitor_relay": 0})
        job = sampling_job(steps=2)
        await publish(server, job, "tab")
        await until(lambda: len(monitor.frames) == len(job))
        await settle()
        assert monitor.texts() == [{"type": e, "data": d} for e, d in job if isinstance(e, str)]
        assert len(monitor.binaries()) == 2
        assert bystander.frames == []
        assert [m["data"] for m in submitter.texts()] == json_events(job)

    asyncio.run(main())


def test_the_submitters_stream_is_unchanged_byte_for_byte(load_companion):
    async def main(with_companion, metadata):
        server = FakePromptServer()
        if with_companion:
            load_companion(fake_server_module())
        flags = {"supports_preview_metadata": True, "comfy_monitor_relay": 1} if metadata else {}
        submitter = server.connect("tab", flags)
        server.connect("monitor", MONITOR_FLAGS)
        await publish(server, sampling_job(steps=3, metadata_previews=metadata), "tab")
        await settle()
        return submitter.frames

    for metadata in (False, True):
        assert asyncio.run(main(True, metadata)) == asyncio.run(main(False, metadata))


def test_a_subscribed_submitter_gets_nothing_twice(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        submitter = server.connect("tab", MONITOR_FLAGS)
        job = sampling_job(steps=2, metadata_previews=True)
        await publish(server, job, "tab")
        await settle()
        assert len(submitter.frames) == len(job)

    asyncio.run(main())


def test_broadcasts_and_other_types_are_not_copied(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        await server.send("status", {"status": {"exec_info": {"queue_remaining": 1}}})
        await server.send("progress", {"value": 1, "max": 2, "prompt_id": PROMPT, "node": "1"})
        await server.send(3, struct.pack(">I", 1) + b"1hello")
        await server.send("feature_flags", {"supports_preview_metadata": True}, "tab")
        await server.send("logs", {"entries": [], "size": None}, "tab")
        await server.send("monitor.custom", {"prompt_id": PROMPT}, "tab")
        await server.send(3, struct.pack(">I", 1) + b"1text", "tab")
        await settle()
        # Exactly ComfyUI's own broadcasts, once each.
        assert [m["type"] for m in monitor.texts()] == ["status", "progress"]
        assert len(monitor.binaries()) == 1

    asyncio.run(main())


def test_the_reconnect_replay_without_prompt_id_is_not_relayed(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        await server.send("executing", {"node": "3"}, "tab")
        await settle()
        assert monitor.frames == []

    asyncio.run(main())


def test_previews_without_ids_are_relayed_as_type_4_with_ids_from_the_context(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        submitter = server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        job = sampling_job(steps=2)
        await publish(server, job, "tab")
        await until(lambda: len(monitor.frames) == len(job))
        assert [f[:4] for f in submitter.binaries()] == [struct.pack(">I", 1)] * 2
        frames = [type4(f) for f in monitor.binaries()]
        assert [image for _, image in frames] == [b"step1:JPEG", b"step2:JPEG"]
        for meta, _ in frames:
            assert meta == {
                "node_id": "1",
                "prompt_id": PROMPT,
                "display_node_id": "1",
                "parent_node_id": None,
                "real_node_id": "1",
                "image_type": "image/jpeg",
            }
        # In the original's order: the preview right after its `progress`.
        kinds = ["bin" if isinstance(f, bytes) else json.loads(f)["type"] for f in monitor.frames]
        assert kinds[5:7] == ["progress", "bin"]

    asyncio.run(main())


def test_previews_with_metadata_keep_their_own_ids(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.connect("tab", {"supports_preview_metadata": True})
        monitor = server.connect("monitor", MONITOR_FLAGS)
        image = ("PNG", FakeImage("x"), None)
        meta = {"node_id": "5.0.0.3", "prompt_id": "p-9", "display_node_id": "5", "parent_node_id": "5", "real_node_id": "5"}
        await server.send(4, (image, meta), "tab")
        await until(lambda: monitor.frames)
        got, body = type4(monitor.frames[0])
        assert got == dict(meta, image_type="image/png")
        assert body == b"x:PNG"

    asyncio.run(main())


def test_a_preview_for_a_sid_with_no_known_job_is_not_relayed(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        server.connect("tab")
        monitor = server.connect("monitor", MONITOR_FLAGS)
        await server.send(2, ("JPEG", FakeImage("x"), None), "tab")
        await settle()
        assert monitor.frames == []

    asyncio.run(main())


def test_a_job_queued_for_a_sid_with_no_socket_is_still_relayed(load_companion):
    async def main():
        server = FakePromptServer()
        load_companion(fake_server_module())
        monitor = server.connect("monitor", MONITOR_FLAGS)
        job = sampling_job(steps=1)
        await publish(server, job, "script-without-socket")
        await until(lambda: len(monitor.frames) == len(job))

    asyncio.run(main())
