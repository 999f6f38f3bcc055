"""The messages ComfyUI's worker publishes for one sampling job (the order of §5.1)."""

from conftest import FakeImage

PROMPT = "6f1c1c52-0000-4000-8000-000000000001"


def node_state(node, value, max_value, state, prompt_id=PROMPT):
    return {
        "value": value,
        "max": max_value,
        "state": state,
        "node_id": node,
        "prompt_id": prompt_id,
        "display_node_id": node,
        "parent_node_id": None,
        "real_node_id": node,
    }


def sampling_job(steps=2, metadata_previews=False, prompt_id=PROMPT):
    """(event, data) pairs as the publish loop hands them to send, for the submitter's sid.

    metadata_previews: the submitter negotiated supports_preview_metadata, so previews are
    event 4 with (image, metadata); otherwise UNENCODED_PREVIEW_IMAGE (2) after `progress`."""
    out = [
        ("execution_start", {"prompt_id": prompt_id, "timestamp": 1796615367572}),
        ("execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": 1796615367573}),
        ("progress_state", {"prompt_id": prompt_id, "nodes": {"1": node_state("1", 0, 1, "running", prompt_id)}}),
        ("executing", {"node": "1", "display_node": "1", "prompt_id": prompt_id}),
    ]
    for step in range(1, steps + 1):
        out.append(("progress_state", {"prompt_id": prompt_id, "nodes": {"1": node_state("1", step, steps, "running", prompt_id)}}))
        image = ("JPEG", FakeImage(f"step{step}"), None)
        if metadata_previews:
            meta = {"node_id": "1", "prompt_id": prompt_id, "display_node_id": "1", "parent_node_id": None, "real_node_id": "1"}
            out.append((4, (image, meta)))
        out.append(("progress", {"value": step, "max": steps, "prompt_id": prompt_id, "node": "1"}))
        if not metadata_previews:
            out.append((2, image))
    out += [
        ("progress_state", {"prompt_id": prompt_id, "nodes": {"1": node_state("1", steps, steps, "finished", prompt_id)}}),
        ("executed", {"node": "2", "display_node": "2", "output": {"images": []}, "prompt_id": prompt_id}),
        ("execution_success", {"prompt_id": prompt_id, "timestamp": 1796615369000}),
        ("executing", {"node": None, "prompt_id": prompt_id}),
    ]
    return out


def json_events(job):
    return [data for event, data in job if isinstance(event, str)]
