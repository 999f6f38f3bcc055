"""The execution context: what each submitting sid's running job is doing.

Fed with every message ComfyUI sends, it keeps per submitting sid the running prompt id, its
latest node and its graph's node map, and the latest `progress_state` of each running job. The
relay takes the ids of id-less previews from it; the state route reads it. Runs on the event
loop only (ComfyUI's publish loop), so it needs no lock.
"""

import time


def now_ms():
    return int(time.time() * 1000)


class Job:
    """One running job as seen through its messages."""

    __slots__ = ("prompt_id", "client_id", "started_at", "node", "preview_node", "nodes", "progress_state")

    def __init__(self, prompt_id, client_id, started_at=None, nodes=None):
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.started_at = started_at
        self.node = None  # of the latest `executing`
        self.preview_node = None  # of the latest `executing` or `progress`
        self.nodes = nodes
        self.progress_state = {}


def node_map(graph):
    """`{id: {"class_type", "title"?}}` of an API-format graph; `{}` for anything else."""
    nodes = {}
    if not isinstance(graph, dict):
        return nodes
    for node_id, node in graph.items():
        if not isinstance(node, dict):
            continue
        entry = {"class_type": node.get("class_type")}
        meta = node.get("_meta")
        if isinstance(meta, dict) and meta.get("title") is not None:
            entry["title"] = meta["title"]
        nodes[str(node_id)] = entry
    return nodes


class Contexts:
    """Execution contexts keyed by submitting sid, plus jobs queued without a client id."""

    def __init__(self, graph_of):
        # graph_of(prompt_id) -> the API graph of a running (or just finished) job, or None.
        self._graph_of = graph_of
        self.by_sid = {}
        # progress_state broadcast for a job queued without client_id: (prompt_id, nodes).
        self.loose = None

    def observe(self, event, data, sid):
        if not isinstance(event, str) or not isinstance(data, dict):
            return
        prompt_id = data.get("prompt_id")
        if sid is None:
            if event == "progress_state" and prompt_id is not None:
                nodes = data.get("nodes")
                self.loose = (prompt_id, nodes if isinstance(nodes, dict) else {})
            return
        if prompt_id is None:
            # The reconnect replay of `executing` carries no prompt id: nothing to learn.
            return
        if event == "execution_start":
            started = data.get("timestamp")
            self.by_sid[sid] = Job(
                prompt_id,
                sid,
                started if isinstance(started, (int, float)) else now_ms(),
                node_map(self._graph_of(prompt_id)),
            )
            return
        if event == "executing" and data.get("node") is None:
            job = self.by_sid.get(sid)
            if job is not None and job.prompt_id == prompt_id:
                del self.by_sid[sid]
            return
        job = self._job(sid, prompt_id)
        if event == "executing":
            job.node = data.get("node")
            job.preview_node = job.node
        elif event == "progress":
            if data.get("node") is not None:
                job.preview_node = data["node"]
        elif event == "progress_state":
            nodes = data.get("nodes")
            job.progress_state = nodes if isinstance(nodes, dict) else {}

    def _job(self, sid, prompt_id):
        job = self.by_sid.get(sid)
        if job is None or job.prompt_id != prompt_id:
            # The start was missed (or a new job began without one): learn it from here on.
            job = Job(prompt_id, sid)
            self.by_sid[sid] = job
        return job

    def job_by_prompt(self, prompt_id):
        for job in self.by_sid.values():
            if job.prompt_id == prompt_id:
                return job
        return None

    def preview_meta(self, sid):
        """The type-4 metadata for an id-less preview sent to sid, or None if no job is known."""
        job = self.by_sid.get(sid)
        if job is None:
            return None
        node = job.preview_node
        entry = job.progress_state.get(node) if node is not None else None
        if not isinstance(entry, dict):
            entry = {}
        return {
            "node_id": node,
            "prompt_id": job.prompt_id,
            "display_node_id": entry.get("display_node_id", node),
            "parent_node_id": entry.get("parent_node_id"),
            "real_node_id": entry.get("real_node_id", node),
        }
