"""What goes on the wire: the protocol constants and the type-4 preview frame.

Pure functions and constants only; no ComfyUI import, no I/O.
"""

import io
import json
import struct

VERSION = "0.1.0"
PROTOCOL = 1

# The feature flag a socket sets in its first `feature_flags` message to opt in.
FLAG = "comfy_monitor_relay"

# The key the companion adds to the server's own feature flags (`GET /features` and the socket's
# `feature_flags` reply), so a monitor finds it without probing a route that may not exist.
ADVERTISED = "comfy_monitor_companion"


def advertisement():
    return {"version": VERSION, "protocol": PROTOCOL}

# ComfyUI's binary event numbers (protocol.BinaryEventTypes); fixed on the wire.
PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2
PREVIEW_IMAGE_WITH_METADATA = 4
PREVIEW_EVENTS = frozenset({PREVIEW_IMAGE, UNENCODED_PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA})

RELAYED_JSON = frozenset(
    {
        "execution_start",
        "execution_cached",
        "executing",
        "executed",
        "progress",
        "progress_state",
        "execution_success",
        "execution_error",
        "execution_interrupted",
    }
)

# Shed first when a subscriber's queue is full: the next one supersedes them.
DROPPABLE_JSON = frozenset({"progress", "progress_state"})

META_KEYS = ("node_id", "prompt_id", "display_node_id", "parent_node_id", "real_node_id")


def is_relayed(event):
    """Whether a message ComfyUI sends to one sid is copied to subscribers."""
    if isinstance(event, str):
        return event in RELAYED_JSON
    return event in PREVIEW_EVENTS


def is_droppable(event):
    return event in DROPPABLE_JSON or event in PREVIEW_EVENTS


def opted_in(metadata):
    """Whether one `sockets_metadata[sid]` entry asked for the relay."""
    if not isinstance(metadata, dict):
        return False
    flags = metadata.get("feature_flags")
    return isinstance(flags, dict) and bool(flags.get(FLAG))


def json_text(event, data):
    """The text frame ComfyUI's send_json writes (aiohttp serialises with json.dumps)."""
    return json.dumps({"type": event, "data": data})


def type4_frame(meta, image):
    """A binary PREVIEW_IMAGE_WITH_METADATA frame: event, JSON length, JSON, image."""
    header = json.dumps(meta).encode("utf-8")
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(header)) + header + bytes(image)


def mimetype_of(image_type):
    """The `image_type` of a type-4 frame for a ComfyUI preview tuple's format name."""
    return "image/png" if image_type == "PNG" else "image/jpeg"


def encode_preview(preview):
    """Encodes ComfyUI's preview tuple `(format, PIL image, max_size)`: (mimetype, bytes).

    Sized and compressed as ComfyUI does for its own sockets (fit into max_size, quality 95).
    Pillow is only needed to resize; ComfyUI always ships it.
    """
    image_type, image = preview[0], preview[1]
    max_size = preview[2] if len(preview) > 2 else None
    if max_size is not None:
        from PIL import Image, ImageOps

        image = ImageOps.contain(image, (max_size, max_size), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format=image_type, quality=95, compress_level=1)
    return mimetype_of(image_type), out.getvalue()


def legacy_preview(payload):
    """Splits an encoded type-1 payload (u32 image type, image): (mimetype, image bytes)."""
    (kind,) = struct.unpack(">I", bytes(payload[:4]))
    return ("image/png" if kind == 2 else "image/jpeg"), bytes(payload[4:])
