"""The relay: copies of one sid's execution messages for every other opted-in socket.

The publish loop only ever enqueues (`Relay.observe` never awaits). Each subscriber has its own
bounded queue and one sender task; a stalled socket stalls nothing but its own task.
"""

import asyncio
import collections
import struct

from . import wire

# Droppable messages (previews, progress, progress_state) are not queued beyond this.
QUEUE_LIMIT = 256
# Undroppable messages are always queued, up to this; a subscriber this far behind is cut off.
HARD_LIMIT = 1024
# WebSocket close code "try again later", for a subscriber cut off for falling behind.
CLOSE_TRY_AGAIN_LATER = 1013


class Preview:
    """One preview, sent to every subscriber as the same type-4 frame, built once and lazily."""

    def __init__(self, meta, preview=None, image=None, mimetype=None, frame=None):
        self._meta = meta
        self._preview = preview
        self._image = image
        self._mimetype = mimetype
        self._frame = frame
        self._task = None

    async def frame(self):
        if self._frame is not None:
            return self._frame
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._build())
        # Shielded: one subscriber going away must not cancel the others' shared encoding.
        return await asyncio.shield(self._task)

    async def _build(self):
        mimetype, image = self._mimetype, self._image
        if image is None:
            # JPEG encoding takes milliseconds; keep it off the event loop ComfyUI serves from.
            mimetype, image = await asyncio.to_thread(wire.encode_preview, self._preview)
        meta = {key: self._meta.get(key) for key in wire.META_KEYS}
        meta["image_type"] = mimetype
        self._frame = wire.type4_frame(meta, image)
        return self._frame


class Subscriber:
    """One opted-in socket: its queue of copies and the task that sends them."""

    def __init__(self, relay, sid, ws):
        self.relay = relay
        self.sid = sid
        self.ws = ws
        self.items = collections.deque()  # (text or Preview, droppable)
        self.dropped = 0
        self._wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    def offer(self, item, droppable):
        """Queues a copy; False when the subscriber is too far behind to keep."""
        if len(self.items) >= QUEUE_LIMIT:
            if droppable:
                self.dropped += 1
                return True
            self._shed_oldest_droppable()
            if len(self.items) >= HARD_LIMIT:
                return False
        self.items.append((item, droppable))
        self._wakeup.set()
        return True

    def _shed_oldest_droppable(self):
        for index, (_, droppable) in enumerate(self.items):
            if droppable:
                del self.items[index]
                self.dropped += 1
                return

    def stop(self):
        self.items.clear()
        self.task.cancel()

    async def _run(self):
        try:
            while True:
                if not self.items:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                item, _ = self.items.popleft()
                if not self.relay.is_current(self.sid, self.ws):
                    return
                if isinstance(item, str):
                    await self.ws.send_str(item)
                    continue
                try:
                    frame = await item.frame()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.relay.once.exception("preview", "encoding a relayed preview failed")
                    continue
                await self.ws.send_bytes(frame)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError):
            pass  # the socket went away under us; ComfyUI's handler cleans up its tables
        except Exception:
            self.relay.once.exception("sender", "sending a relayed message failed")
        finally:
            self.relay.forget(self)


class Relay:
    """Decides who gets a copy of each message and queues it for them."""

    def __init__(self, server, contexts, once):
        self.server = server
        self.contexts = contexts
        self.once = once
        self.subscribers = {}  # sid -> Subscriber

    def is_current(self, sid, ws):
        return self.server.sockets.get(sid) is ws and not getattr(ws, "closed", False)

    def forget(self, subscriber):
        if self.subscribers.get(subscriber.sid) is subscriber:
            del self.subscribers[subscriber.sid]

    def observe(self, event, data, sid):
        """Called after ComfyUI sent `event` to `sid`: queue copies for the other subscribers."""
        if sid is None or not wire.is_relayed(event):
            return  # broadcasts reach every socket already
        opted = {s for s, meta in tuple(self.server.sockets_metadata.items()) if wire.opted_in(meta)}
        for gone in [s for s, sub in self.subscribers.items() if s not in opted or not self.is_current(s, sub.ws)]:
            self.subscribers.pop(gone).stop()
        targets = opted - {sid}
        if not targets:
            return
        item = self._copy(event, data, sid)
        if item is None:
            return
        droppable = wire.is_droppable(event)
        for target in targets:
            ws = self.server.sockets.get(target)
            if ws is None:
                continue
            subscriber = self.subscribers.get(target)
            if subscriber is None:
                subscriber = self.subscribers[target] = Subscriber(self, target, ws)
            if not subscriber.offer(item, droppable):
                self._cut_off(subscriber)

    def _copy(self, event, data, sid):
        """The text or Preview every subscriber receives for this message, or None."""
        if isinstance(event, str):
            if not isinstance(data, dict) or data.get("prompt_id") is None:
                return None  # the reconnect replay of `executing`: no job to attribute it to
            return wire.json_text(event, data)
        if event == wire.PREVIEW_IMAGE_WITH_METADATA and isinstance(data, (bytes, bytearray)):
            return Preview(None, frame=struct.pack(">I", event) + bytes(data))
        if event == wire.PREVIEW_IMAGE_WITH_METADATA:
            preview, metadata = data
            meta = dict(metadata) if isinstance(metadata, dict) else {}
            if meta.get("prompt_id") is None:
                fallback = self.contexts.preview_meta(sid) or {}
                for key in wire.META_KEYS:
                    if meta.get(key) is None:
                        meta[key] = fallback.get(key)
            if meta.get("prompt_id") is None:
                return None
            return Preview(meta, preview=preview)
        meta = self.contexts.preview_meta(sid)
        if meta is None:
            return None  # no known job for this sid: a copy nobody could attribute
        if event == wire.UNENCODED_PREVIEW_IMAGE:
            return Preview(meta, preview=data)
        if event == wire.PREVIEW_IMAGE and isinstance(data, (bytes, bytearray)):
            mimetype, image = wire.legacy_preview(data)
            return Preview(meta, image=image, mimetype=mimetype)
        return None

    def _cut_off(self, subscriber):
        self.once.warning(
            "cut-off",
            "cut off subscriber %s: %d undelivered messages (it reconnects and reads the state route)",
            subscriber.sid,
            len(subscriber.items),
        )
        self.subscribers.pop(subscriber.sid, None)
        subscriber.stop()
        asyncio.get_running_loop().create_task(self._close(subscriber.ws))

    async def _close(self, ws):
        try:
            await asyncio.wait_for(ws.close(code=CLOSE_TRY_AGAIN_LATER, message=b"comfy-monitor relay: too far behind"), 5)
        except Exception:
            pass  # a stalled peer may not even take the close frame; its socket is left to ComfyUI
