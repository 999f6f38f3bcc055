"""`GET /comfy_monitor/v1/state`: the running job at once, for a monitor that connects mid-job.

Read-only; the running job comes from ComfyUI's queue, the details from the execution context.
"""

from . import wire
from .context import node_map

PATH = "/comfy_monitor/v1/state"


def running_items(server):
    """ComfyUI's running queue items, or None when this server does not expose them."""
    queue = getattr(server, "prompt_queue", None)
    running = getattr(queue, "currently_running", None)
    if not isinstance(running, dict):
        return None
    # One C-level copy; the worker thread only adds and pops whole entries.
    return tuple(running.values())


def graph_of(server, prompt_id):
    """The API graph of a running (or just finished) job, or None."""
    for item in running_items(server) or ():
        if len(item) > 2 and item[1] == prompt_id:
            return item[2]
    history = getattr(getattr(server, "prompt_queue", None), "history", None)
    entry = history.get(prompt_id) if isinstance(history, dict) else None
    prompt = entry.get("prompt") if isinstance(entry, dict) else None
    if isinstance(prompt, (list, tuple)) and len(prompt) > 2:
        return prompt[2]
    return None


def snapshot(server, contexts, comfyui):
    return {
        "companion": wire.VERSION,
        "protocol": wire.PROTOCOL,
        "comfyui": comfyui,
        "running": _running(server, contexts),
    }


def _running(server, contexts):
    items = running_items(server)
    if items is None:
        # No queue to ask: the latest job whose start the companion saw and whose end it did not.
        jobs = sorted(contexts.by_sid.values(), key=lambda job: job.started_at or 0)
        return _describe(jobs[-1], None) if jobs else None
    if not items:
        return None
    item = items[0]
    prompt_id = item[1]
    extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
    job = contexts.job_by_prompt(prompt_id)
    if job is not None:
        return _describe(job, item[2] if len(item) > 2 else None)
    progress = contexts.loose[1] if contexts.loose and contexts.loose[0] == prompt_id else {}
    return {
        "prompt_id": prompt_id,
        "client_id": extra.get("client_id"),
        "started_at": None,
        "node": None,
        "nodes": node_map(item[2] if len(item) > 2 else None),
        "progress_state": progress,
    }


def _describe(job, graph):
    return {
        "prompt_id": job.prompt_id,
        "client_id": job.client_id,
        "started_at": job.started_at,
        "node": job.node,
        "nodes": job.nodes if job.nodes else node_map(graph),
        "progress_state": job.progress_state,
    }


def route(server, contexts, once):
    """The aiohttp handler of the state route."""

    async def comfy_monitor_state(request):
        from aiohttp import web

        try:
            body = snapshot(server, contexts, _comfyui_version())
        except Exception:
            once.exception("state", "the state route failed")
            return web.json_response({"error": "comfy-monitor companion: state unavailable"}, status=500)
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    return comfy_monitor_state


def _comfyui_version():
    try:
        import comfyui_version

        return str(comfyui_version.__version__)
    except Exception:
        return None
