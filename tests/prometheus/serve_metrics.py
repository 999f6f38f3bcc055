#!/usr/bin/env python3
"""A real Prometheus scrapes `comfy-monitor serve --metrics` watching fake-comfyui.

The rig: fake-comfyui (one 0.26 server), a throwaway profile with one saved instance "Studio
GPU", `comfy-monitor serve --metrics 127.0.0.1:0`, and Prometheus scraping it every second with
`honor_labels: true`. Jobs from another client (3 succeed, 1 fails) run on the fake; every value
is then read back through Prometheus's own query API, not from /metrics. Then the fake is
restarted on its port (a reconnect), serve is stopped with SIGTERM, and its journal is read
with `comfy-monitor history --json`.

    serve_metrics.py --bin-dir target/debug [--companion] [--prometheus /usr/bin/prometheus]
                     [--hold]

--companion starts the fake as a server with the comfy-monitor companion, so other clients'
jobs are followed live: node timings, previews and comfyui_companion are checked too.
--hold keeps the rig up after the checks (until Ctrl-C) and prints its URLs, e.g. for a
screenshot of Prometheus's UI.

Python 3 standard library only. Prints PASS/FAIL per check; exits 1 on any failure. Every
child is stopped on the way out, whatever happens.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

INSTANCE = "Studio GPU"
SEL = 'instance="Studio GPU"'
CLIENT_ID = "prometheus-test-script"
STEPS, STEP_DELAY_MS = 10, 80  # 0.8 s a job: the queue is seen pending by a 1 s scrape
DEADLINE = 60.0

children = []  # every process started, stopped in stop_all()
results = []  # (ok, name, detail)


class Abort(Exception):
    """A step the rest depends on failed (already reported)."""


def check(ok, name, detail=""):
    results.append((bool(ok), name, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""), flush=True)
    return bool(ok)


def start(argv, log, env=None):
    out = open(log, "wb")
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    children.append(child)
    return child


def stop(child, grace=10.0):
    """SIGTERM, then SIGKILL after `grace`; returns the exit status."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


def stop_all():
    for child in reversed(children):
        stop(child, 5.0)


def wait_for(what, probe, deadline=DEADLINE, interval=0.2):
    """Calls probe() until it returns something truthy, or raises Abort after `deadline` s."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            last = probe()
            if last:
                return last
        except (OSError, ValueError) as error:  # not up yet
            last = error
        time.sleep(interval)
    check(False, what, f"not within {deadline:.0f} s; last: {last!r}")
    raise Abort(what)


def http(url, data=None, timeout=5.0):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_text(path):
    try:
        with open(path, "rb") as f:
            return re.sub(r"\x1b\[[0-9;]*m", "", f.read().decode(errors="replace"))
    except OSError:
        return ""


class Prom:
    def __init__(self, base):
        self.base = base

    def query(self, expr):
        """The instant vector `expr` evaluates to: [(labels, value)]."""
        answer = json.loads(http(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        if answer.get("status") != "success":
            raise ValueError(f"{expr}: {answer}")
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr):
        """The single value `expr` has, or None when it has no series (or several)."""
        found = self.query(expr)
        return found[0][1] if len(found) == 1 else None


def settle(prom, checks, deadline=DEADLINE):
    """Polls until every (name, expr, predicate) holds at once, then reports each one."""
    end = time.monotonic() + deadline
    while True:
        seen = []
        for name, expr, pred in checks:
            try:
                found = prom.query(expr)
                seen.append((name, expr, pred(found), found))
            except (OSError, ValueError) as error:
                seen.append((name, expr, False, error))
        if all(ok for _, _, ok, _ in seen) or time.monotonic() >= end:
            break
        time.sleep(0.5)
    for name, expr, ok, found in seen:
        check(ok, name, f"{expr} -> {shown(found)}")


def shown(found):
    if isinstance(found, Exception):
        return repr(found)
    if len(found) == 1 and labels_text(found[0][0], terse=True) == "{}":
        return f"{found[0][1]:g}"
    return ", ".join(f"{labels_text(l, terse=True)} {v:g}" for l, v in found) or "no series"


def labels_text(labels, terse=False):
    """Labels as PromQL writes them; terse leaves out the name, job and instance="Studio GPU"."""
    skip = {"__name__", "job"} if terse else {"job"}
    shown = [f'{k}="{v}"' for k, v in sorted(labels.items())
             if k not in skip and not (terse and k == "instance" and v == INSTANCE)]
    return "{" + ",".join(shown) + "}"


def one(pred):
    """A predicate on the single value of a query."""
    return lambda found: len(found) == 1 and pred(found[0][1])


def by(label, expected):
    """The query's series, keyed by `label`, have exactly these values."""
    return lambda found: {l.get(label): v for l, v in found} == expected


def sampler(seed):
    return {
        "1": {"class_type": "MonitorTestSampler",
              "inputs": {"steps": STEPS, "step_delay_ms": STEP_DELAY_MS, "preview_size": 32, "seed": seed}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "prom"}},
    }


def failing(seed):
    return {
        "1": {"class_type": "MonitorTestFail",
              "inputs": {"steps": 4, "fail_after": 2, "step_delay_ms": 5, "preview_size": 32, "seed": seed}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "fail"}},
    }


def start_fake(bins, tmp, companion, port=0, log="fake.log"):
    argv = [f"{bins}/fake-comfyui", "--json", "--version", "0.26", "--port", str(port)]
    if companion:
        argv.append("--companion")
    child = start(argv, f"{tmp}/{log}")

    def announced():
        if child.poll() is not None:
            raise Abort(f"fake-comfyui exited ({child.returncode}): {log_text(f'{tmp}/{log}')}")
        for line in log_text(f"{tmp}/{log}").splitlines():
            if line.startswith("{"):
                return json.loads(line)
        return None

    return child, wait_for("fake-comfyui announces its server", announced, 15)


def run(args, tmp):
    bins = args.bin_dir
    env = dict(os.environ, COMFY_MONITOR_SECRETS="file", NO_COLOR="1")
    env.pop("COMFY_MONITOR_DB", None)
    db = f"{tmp}/p.db"
    cli = [f"{bins}/comfy-monitor", "--db", db]

    # 1. The fake.
    fake, server = start_fake(bins, tmp, args.companion)
    url, fake_port = server["url"], server["port"]
    print(f"fake-comfyui {server.get('version')} at {url}{' with the companion' if args.companion else ''}")

    # 2. The profile: "Studio GPU" only (a new profile has "Local", which is not running here).
    for argv in (["instances", "add", "--name", INSTANCE, "--url", url], ["instances", "remove", "Local"]):
        done = subprocess.run(cli + argv, env=env, capture_output=True, text=True, timeout=30)
        if not check(done.returncode == 0, "comfy-monitor " + " ".join(argv[:2]), (done.stdout + done.stderr).strip()):
            raise Abort(argv[0])

    # 3. serve, on a port of its choosing, read back from its log.
    serve_log = f"{tmp}/serve.log"
    serve = start(cli + ["serve", "--metrics", "127.0.0.1:0"], serve_log, env)

    def metrics_addr():
        if serve.poll() is not None:
            raise Abort(f"serve exited ({serve.returncode}): {log_text(serve_log)}")
        m = re.search(r"metrics at http://([0-9.]+:[0-9]+)/metrics", log_text(serve_log))
        return m and m.group(1)

    target = wait_for("serve announces its metrics address", metrics_addr, 20)
    wait_for("serve answers /metrics", lambda: "comfyui_up{" in http(f"http://{target}/metrics"), 20)
    check(True, f"serve answers http://{target}/metrics")

    # 4. Prometheus, scraping serve every second, keeping its labels.
    with open(f"{tmp}/prometheus.yml", "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: comfy-monitor\n"
            "    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
    prom = None
    for _ in range(3):  # the free port may be taken in between: try another
        prom_port = free_port()
        child = start([args.prometheus, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/tsdb",
                       f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], f"{tmp}/prometheus.log")
        base = f"http://127.0.0.1:{prom_port}"

        def ready():
            if child.poll() is not None:
                return "exited"
            return "ready" if http(f"{base}/-/ready", timeout=2).strip() else None

        if wait_for("Prometheus is ready", ready, 30) == "ready":
            prom = Prom(base)
            break
    if prom is None:
        check(False, "Prometheus starts", log_text(f"{tmp}/prometheus.log")[-2000:])
        raise Abort("prometheus")
    check(True, f"Prometheus {base} is ready")

    def target_up():
        targets = json.loads(http(f"{base}/api/v1/targets"))["data"]["activeTargets"]
        return targets and targets[0]["health"] == "up" and targets[0]
    t = wait_for("Prometheus scrapes serve", target_up, 20)
    check(True, "Prometheus scrapes serve", f"{t['scrapeUrl']} health={t['health']}")
    settle(prom, [("comfyui_up is 1 before any job", f"comfyui_up{{{SEL}}}", one(lambda v: v == 1))], 20)

    # 5. Jobs from another client: 3 succeed, 1 fails, queued at once.
    workflows = [sampler(1), failing(2), sampler(3), sampler(4)]
    prompt_ids = []
    for w in workflows:
        answer = json.loads(http(f"{url}/prompt", {"prompt": w, "client_id": CLIENT_ID}))
        prompt_ids.append(answer["prompt_id"])
    print(f"queued {len(prompt_ids)} jobs as {CLIENT_ID}: {', '.join(prompt_ids)}")
    expected_states = dict(zip(prompt_ids, ["success", "error", "success", "success"]))

    # 6. What Prometheus has, once the jobs are over.
    checks = [
        ("comfyui_up is 1", f"comfyui_up{{{SEL}}}", one(lambda v: v == 1)),
        ("jobs finished by outcome: 3 success, 1 error, no other",
         f"comfyui_jobs_finished_total{{{SEL}}}",
         by("outcome", {"success": 3, "error": 1, "interrupted": 0, "deleted": 0, "lost": 0})),
        ("queue empty: pending 0", f"comfyui_queue_pending{{{SEL}}}", one(lambda v: v == 0)),
        ("queue empty: running 0", f"comfyui_queue_running{{{SEL}}}", one(lambda v: v == 0)),
        ("the queue was seen pending while the jobs ran",
         f"max_over_time(comfyui_queue_pending{{{SEL}}}[5m])", one(lambda v: v >= 1)),
        ("a job was seen running", f"max_over_time(comfyui_queue_running{{{SEL}}}[5m])", one(lambda v: v == 1)),
        ("job durations counted by outcome", f"comfyui_job_duration_seconds_count{{{SEL}}}",
         by("outcome", {"success": 3, "error": 1})),
        ("job duration sum ~ 3 x 0.8 s", f'comfyui_job_duration_seconds_sum{{{SEL},outcome="success"}}',
         one(lambda v: 3 * STEPS * STEP_DELAY_MS / 1000 <= v < 10)),
        ("job duration buckets: all 3 in le=1", f'comfyui_job_duration_seconds_bucket{{{SEL},outcome="success",le=~"1|\\\\+Inf"}}',
         by("le", {"1": 3, "+Inf": 3})),
        ("job duration median (histogram_quantile) in (0, 1]",
         f'histogram_quantile(0.5, comfyui_job_duration_seconds_bucket{{{SEL},outcome="success"}})',
         one(lambda v: 0 < v <= 1)),
        ("queue wait counted for the 4 jobs", f"comfyui_queue_wait_seconds_count{{{SEL}}}", one(lambda v: v == 4)),
        ("queue wait sum > 1.6 s (3 jobs waited behind 0.8 s jobs)", f"comfyui_queue_wait_seconds_sum{{{SEL}}}",
         one(lambda v: v >= 1.6)),
        ("GPU memory total, with a device label", f"comfyui_gpu_memory_total_bytes{{{SEL}}}",
         lambda found: len(found) >= 1 and all(l.get("device") and v > 0 for l, v in found)),
        ("GPU memory used <= total",
         f"comfyui_gpu_memory_used_bytes{{{SEL}}} <= on(instance,device) comfyui_gpu_memory_total_bytes",
         lambda found: len(found) >= 1),
        ("no reconnect yet", f"comfyui_reconnects_total{{{SEL}}}", one(lambda v: v == 0)),
        ("companion gauge", f"comfyui_companion{{{SEL}}}", one(lambda v: v == (1 if args.companion else 0))),
        ("webhook counters (none configured: all 0)", "comfy_monitor_webhooks_total",
         by("result", {"delivered": 0, "failed": 0, "retried": 0, "dropped": 0})),
        ("honor_labels: no exported_instance label", '{__name__=~"comfyui_.*|comfy_monitor_.*",exported_instance!=""}',
         lambda found: found == []),
        ("every comfyui_* series has instance=\"Studio GPU\"", f'{{__name__=~"comfyui_.*",{SEL.replace("=", "!=")}}}',
         lambda found: found == []),
    ]
    if args.companion:
        checks += [
            ("node durations by class (followed live through the companion)",
             f"comfyui_node_duration_seconds_count{{{SEL}}}",
             lambda found: {l.get("class_type"): v for l, v in found}.get("MonitorTestSampler") == 3),
            ("previews counted", f"comfyui_previews_total{{{SEL}}}", one(lambda v: v > 0)),
        ]
    settle(prom, checks)

    expected_names = {
        "comfyui_up", "comfyui_queue_pending", "comfyui_queue_running", "comfyui_jobs_finished_total",
        "comfyui_job_duration_seconds_bucket", "comfyui_job_duration_seconds_sum",
        "comfyui_job_duration_seconds_count", "comfyui_queue_wait_seconds_bucket",
        "comfyui_queue_wait_seconds_sum", "comfyui_queue_wait_seconds_count", "comfyui_previews_total",
        "comfyui_companion", "comfyui_reconnects_total", "comfyui_gpu_memory_used_bytes",
        "comfyui_gpu_memory_total_bytes", "comfy_monitor_webhooks_total",
    }
    if args.companion:
        expected_names |= {f"comfyui_node_duration_seconds_{s}" for s in ("bucket", "sum", "count")}
    every = prom.query('{__name__=~"comfyui_.*|comfy_monitor_.*"}')
    names = {l["__name__"] for l, _ in every}
    check(expected_names <= names, "every documented series is in Prometheus",
          f"missing: {sorted(expected_names - names)}" if expected_names - names else f"{len(names)} names")
    leaks = [labels_text(l) for l, _ in every if any(p in str(v) for v in l.values() for p in prompt_ids)]
    check(not leaks, f"no label value holds a prompt id ({len(every)} series looked at)", "; ".join(leaks[:3]))

    # promtool's linter (naming, HELP/TYPE, histogram and counter conventions) on serve's scrape.
    promtool = os.path.join(os.path.dirname(args.prometheus), "promtool")
    if os.access(promtool, os.X_OK):
        lint = subprocess.run([promtool, "check", "metrics"], input=http(f"http://{target}/metrics"),
                              capture_output=True, text=True, timeout=30)
        check(lint.returncode == 0 and not lint.stdout.strip(), "promtool check metrics finds nothing",
              (lint.stdout + lint.stderr).strip())

    # 6b. A restart of the server, on the same port: down, back, one reconnect, nothing lost.
    stop(fake)
    settle(prom, [("comfyui_up goes to 0 when the server stops", f"comfyui_up{{{SEL}}}", one(lambda v: v == 0))], 30)
    fake, _ = start_fake(bins, tmp, args.companion, fake_port, "fake-restarted.log")
    settle(prom, [
        ("comfyui_up is 1 again after the restart", f"comfyui_up{{{SEL}}}", one(lambda v: v == 1)),
        ("the reconnect is counted", f"comfyui_reconnects_total{{{SEL}}}", one(lambda v: v == 1)),
        ("finished jobs unchanged, none lost", f"comfyui_jobs_finished_total{{{SEL}}}",
         by("outcome", {"success": 3, "error": 1, "interrupted": 0, "deleted": 0, "lost": 0})),
    ], 45)

    if args.hold:
        print(f"\nholding the rig: Prometheus {base}/graph?g0.expr=comfyui_jobs_finished_total&g0.tab=1"
              f"\n  serve http://{target}/metrics, fake {url}; Ctrl-C (or SIGTERM) to go on", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass

    # 7. SIGTERM: serve exits 0 in time, with the jobs journalled.
    serve.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        code = serve.wait(15)
    except subprocess.TimeoutExpired:
        code = None
    check(code == 0, "serve exits 0 on SIGTERM within 15 s", f"exit {code} after {time.monotonic() - t0:.2f} s")
    done = subprocess.run(cli + ["history", "--json", "--instance", INSTANCE], env=env,
                          capture_output=True, text=True, timeout=30)
    journal = {}
    for line in done.stdout.splitlines():
        if line.strip():
            job = json.loads(line)
            journal[job["prompt_id"]] = job["state"]
    check(done.returncode == 0 and journal == expected_states, "history --json lists the 4 jobs with their outcomes",
          f"exit {done.returncode}: {journal}{done.stderr.strip()}")

    # The log: nothing above INFO in a clean run.
    noisy = [l for l in log_text(serve_log).splitlines() if re.search(r"\b(WARN|ERROR)\b", l)]
    check(not noisy, "serve logged no warning or error", " | ".join(noisy[:5]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True, help="where comfy-monitor and fake-comfyui are")
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--companion", action="store_true", help="the fake has the comfy-monitor companion")
    ap.add_argument("--hold", action="store_true", help="keep the rig up after the checks, until Ctrl-C")
    args = ap.parse_args()
    for binary in (f"{args.bin_dir}/comfy-monitor", f"{args.bin_dir}/fake-comfyui", args.prometheus):
        if not os.access(binary, os.X_OK):
            sys.exit(f"FAIL  {binary} is missing (build the binaries / apt-get install prometheus)")

    def terminated(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    tmp = tempfile.mkdtemp(prefix="comfy-prometheus-")
    print(f"== Prometheus scrapes comfy-monitor serve{' (fake with companion)' if args.companion else ''}; files in {tmp}")
    try:
        run(args, tmp)
    except Abort:
        pass
    except KeyboardInterrupt as stopped:
        check(False, "not interrupted", str(stopped) or "Ctrl-C")
    finally:
        stop_all()
    failed = [name for ok, name, _ in results if not ok]
    if failed:
        for name in ("serve.log", "prometheus.log", "fake.log", "fake-restarted.log"):
            text = log_text(f"{tmp}/{name}").strip()
            if text:
                print(f"--- {name} (last lines)\n" + "\n".join(text.splitlines()[-15:]))
        print(f"FAILED: {len(failed)} of {len(results)} checks; files kept in {tmp}")
        return 1
    subprocess.run(["rm", "-rf", tmp])
    print(f"PASSED: {len(results)} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
