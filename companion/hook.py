"""Installs the companion into ComfyUI's running PromptServer, or into nothing at all.

The only ComfyUI surfaces touched: `PromptServer.instance.send` (wrapped), its `sockets` and
`sockets_metadata` (read), `prompt_queue` (read) and `routes` (one GET route added). Anything
missing or shaped differently: log "inactive" once and change nothing.
"""

import inspect

from . import wire
from .context import Contexts
from .guard import LOG, Once
from .relay import Relay
from . import state

# Set on the PromptServer instance, so a second copy of the package does not hook twice (two
# identical routes would stop ComfyUI's start-up).
MARKER = "_comfy_monitor_companion"


class Companion:
    def __init__(self, server):
        self.server = server
        self.once = Once()
        self.contexts = Contexts(lambda prompt_id: state.graph_of(server, prompt_id))
        self.relay = Relay(server, self.contexts, self.once)

    def observe(self, event, data, sid):
        if isinstance(event, str) and event in wire.RELAYED_JSON:
            self.contexts.observe(event, data, sid)
        self.relay.observe(event, data, sid)


def _problem(server_module):
    server_class = getattr(server_module, "PromptServer", None)
    instance = getattr(server_class, "instance", None)
    if instance is None:
        return None, "no server.PromptServer.instance"
    if getattr(instance, MARKER, None) is not None:
        return None, "another copy of the companion is already installed"
    if not inspect.iscoroutinefunction(getattr(instance, "send", None)):
        return None, "PromptServer.send is not an async method"
    for name in ("sockets", "sockets_metadata"):
        if not isinstance(getattr(instance, name, None), dict):
            return None, f"PromptServer.{name} is not a dict (ComfyUI older than 0.3.45?)"
    if not callable(getattr(getattr(instance, "routes", None), "get", None)):
        return None, "PromptServer.routes has no get()"
    return instance, None


def _advertise():
    """Adds the companion to the server's feature flags (ComfyUI keeps them in
    `comfy_api.feature_flags.SERVER_FEATURE_FLAGS` and copies that dict on every answer)."""
    try:
        from comfy_api import feature_flags

        flags = feature_flags.SERVER_FEATURE_FLAGS
        if not isinstance(flags, dict):
            raise TypeError("SERVER_FEATURE_FLAGS is not a dict")
        flags[wire.ADVERTISED] = wire.advertisement()
    except Exception as error:
        LOG.warning(
            "comfy-monitor companion: not listed in the server's feature flags (%s); monitors "
            "will not find it, but relaying works for sockets that opt in",
            error,
        )


def install(server_module=None):
    """Hooks the running server; returns the Companion, or None when inactive."""
    try:
        if server_module is None:
            import server as server_module
        instance, problem = _problem(server_module)
    except Exception as error:
        instance, problem = None, f"{type(error).__name__}: {error}"
    if problem is not None:
        LOG.warning("comfy-monitor companion inactive: %s", problem)
        return None
    companion = Companion(instance)
    try:
        instance.routes.get(state.PATH)(state.route(instance, companion.contexts, companion.once))
    except Exception as error:
        LOG.warning("comfy-monitor companion inactive: registering %s failed: %s", state.PATH, error)
        return None
    original = instance.send

    async def send(event, data, sid=None, *args, **kwargs):
        try:
            return await original(event, data, sid, *args, **kwargs)
        finally:
            try:
                companion.observe(event, data, sid)
            except Exception:
                companion.once.exception("relay", "relaying a message failed")

    send.__wrapped__ = original
    instance.send = send
    setattr(instance, MARKER, companion)
    _advertise()
    LOG.info(
        "comfy-monitor companion %s active (protocol %d): relays to sockets with %r, GET %s",
        wire.VERSION,
        wire.PROTOCOL,
        wire.FLAG,
        state.PATH,
    )
    return companion
