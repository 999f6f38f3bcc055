#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the recorded ComfyUI traces (tests/fixtures/comfyui-traces).

Each seed is one real input of the target's kind: a text frame, a binary frame, a preview's
image bytes, an HTTP body of the endpoint the target parses, the `media:` URL of an output file
a server named, or, for `tracker`, one socket's whole session in the tracker harness's raw form (see fuzz/src/lib.rs). Seeds are named by
their content's hash, so running this again adds nothing twice and keeps what libFuzzer found.

usage: fuzz/seed.py TRACES_DIR CORPUS_DIR
"""

import base64
import hashlib
import json
import os
import re
import sys
import urllib.parse
from pathlib import Path

SEP = b"\xfe\xff"  # the tracker harness's record separator (comfy_fuzz::SEP)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class Corpus:
    def __init__(self, root):
        self.root = Path(root)
        self.added = {}

    def add(self, target, data):
        d = self.root / target
        d.mkdir(parents=True, exist_ok=True)
        p = d / hashlib.sha1(data).hexdigest()
        if not p.exists():
            p.write_bytes(data)
            self.added[target] = self.added.get(target, 0) + 1


def endpoint(path):
    path = path.split("?")[0]
    if path.startswith("/api/"):
        path = path[4:]
    return re.sub(r"^/(history|jobs)/.+$", r"/\1/{id}", path)


def seed(traces, corpus):
    c = Corpus(corpus)
    for trace in sorted(Path(traces).rglob("*.jsonl")):
        if trace.name.endswith(".http.jsonl"):
            continue  # the same http lines are in the full trace
        sessions = {}  # socket name -> raw tracker records
        client_ids = {}
        http = []
        for line in trace.read_text().splitlines():
            rec = json.loads(line)
            kind = rec.get("kind")
            who = rec.get("client")
            if kind == "event" and rec.get("event") == "ws_connect":
                m = re.search(r"clientId=([^&]+)", rec.get("url", ""))
                if m:
                    client_ids[who] = m.group(1)
            elif kind == "text":
                frame = compact(rec["json"])
                c.add("decode_text", frame)
                sessions.setdefault(who, []).append((rec["t_ms"], b"T" + frame))
            elif kind == "binary":
                frame = base64.b64decode(rec["b64"])
                c.add("decode_binary", b"\0" + frame)
                if rec.get("event_type") == 3:
                    c.add("decode_binary", b"\1" + frame)
                image = None
                if rec.get("event_type") == 1:
                    image = frame[8:]
                elif rec.get("event_type") == 4 and len(frame) >= 8:
                    n = int.from_bytes(frame[4:8], "big")
                    image = frame[8 + n :]
                if image:
                    c.add("image_size", image)
                sessions.setdefault(who, []).append((rec["t_ms"], b"B" + frame))
            elif kind == "http" and rec.get("method") == "GET":
                body = rec.get("response_json")
                if body is None:
                    continue
                body = compact(body)
                ep = endpoint(rec["path"])
                target = {
                    "/queue": "parse_queue",
                    "/history": "parse_history",
                    "/history/{id}": "parse_history",
                    "/system_stats": "parse_system_stats",
                }.get(ep)
                if target:
                    c.add(target, body)
                if ep == "/jobs":
                    c.add("parse_jobs", b"\0" + body)
                elif ep == "/jobs/{id}":
                    c.add("parse_jobs", b"\1" + body)
                record = {"/queue": b"Q", "/history/{id}": b"H", "/jobs/{id}": b"J"}.get(ep)
                if record:
                    http.append((rec["t_ms"], record + body))
        # The monitor's HTTP reads go, in time order, with the socket that made them (the first one).
        for who, records in sessions.items():
            head = [b"C" + client_ids[who].encode()] if who in client_ids else []
            if who == next(iter(sessions)):
                records = sorted(records + http, key=lambda r: r[0])
            c.add("tracker", b"r" + SEP.join(head + [r for _, r in records]))
    # The media URLs the webview builds, for every output file the traces' servers named.
    for trace in sorted(Path(traces).rglob("*.jsonl")):
        for m in re.finditer(rb'"filename": ?"([^"]*)", ?"subfolder": ?"([^"]*)", ?"type": ?"([^"]*)"', trace.read_bytes()):
            name, sub, kind = (urllib.parse.quote(x.decode(), safe="") for x in m.groups())
            c.add("media_uri", f"/output/1?filename={name}&subfolder={sub}&type={kind}".encode())
            c.add("media_uri", f"output/7?filename={name}&subfolder={sub}&type={kind}&thumb=1".encode())
    c.add("media_uri", b"/preview/12")
    # The files ComfyUI's save nodes wrote, next to the traces.
    for saved in sorted((Path(traces).parent / "saved").glob("save-*")):
        c.add("embedded_prompt", saved.read_bytes())
    return c.added


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    added = seed(sys.argv[1], sys.argv[2])
    print(
        "seeded from the traces: "
        + (", ".join(f"{t} +{n}" for t, n in sorted(added.items())) or "nothing new"),
        file=sys.stderr,
    )
