import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { flushPromises } from "@vue/test-utils";
import { EVENTS } from "../ipc";
import { changeView, emitFromShell, mockShell, resetShell } from "../ipc/testing";
import type { Snapshot } from "../bindings/Snapshot";
import { estimate, instance, job, liveJob, server, snapshot, stats, status } from "../test/fixtures";
import { receivedAt, useInstancesStore } from "./instancesStore";

const LOCAL = 1;
const GPU = 2;

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("instances store", () => {
  let snapshotReply: () => Promise<Snapshot> | Snapshot;
  let commands: Array<{ command: string; args: unknown }>;

  beforeEach(() => {
    setActivePinia(createPinia());
    commands = [];
    snapshotReply = () =>
      snapshot(5, [instance("Local", { id: LOCAL, status: status({ state: "unreachable" }) }), instance("gpu", { id: GPU })]);
    mockShell((command, args) => {
      commands.push({ command, args });
      if (command === "get_snapshot") return snapshotReply();
      if (command === "refresh_instance") {
        throw { code: "unknown_instance", message: "no instance with id 9" };
      }
      return null;
    });
  });

  afterEach(() => resetShell());

  it("loads every instance from the snapshot", async () => {
    const store = useInstancesStore();
    await store.start();
    expect(store.loaded).toBe(true);
    expect(store.instances.map((i) => i.name)).toEqual(["Local", "gpu"]);
    expect(store.summary).toEqual({ total: 2, connected: 1, running: 0, pending: 0 });
  });

  it("applies status, server and queue events to the instance they name by id", async () => {
    const store = useInstancesStore();
    await store.start();
    await changeView({ statuses: [{
      revision: 6,
      instance_id: LOCAL,
      status: status({ state: "auth_failed", detail: "auth failed: 401" }),
    }] });
    await changeView({ servers: [{
      revision: 7,
      instance_id: GPU,
      server: server({ version: "0.4.1" }),
    }] });
    await changeView({ queues: [{ revision: 8, instance_id: GPU, queue: { running: 1, pending: 3 } }] });
    await flushPromises();

    const [local, gpu] = store.instances;
    expect(local?.status.detail).toBe("auth failed: 401");
    expect(gpu?.server?.version).toBe("0.4.1");
    expect(gpu?.queue).toEqual({ running: 1, pending: 3 });
  });

  it("ignores events the snapshot already reflects", async () => {
    const store = useInstancesStore();
    await store.start();
    await changeView({ queues: [{ revision: 5, instance_id: GPU, queue: { running: 9, pending: 9 } }] });
    await flushPromises();
    expect(store.instances[1]?.queue).toEqual({ running: 0, pending: 0 });
  });

  it("replays newer events that raced the snapshot and drops older ones", async () => {
    const reply = deferred<Snapshot>();
    snapshotReply = () => reply.promise;
    const store = useInstancesStore();
    const started = store.start();
    await flushPromises();

    await changeView({ queues: [{ revision: 4, instance_id: GPU, queue: { running: 7, pending: 7 } }] });
    await changeView({ queues: [{ revision: 6, instance_id: GPU, queue: { running: 1, pending: 2 } }] });
    await flushPromises();
    expect(store.loaded).toBe(false);

    reply.resolve(snapshot(5, [instance("gpu", { id: GPU })]));
    await started;
    expect(store.instances[0]?.queue).toEqual({ running: 1, pending: 2 });
  });

  it("keeps the jobs in the order the shell sends and moves finished ones to the last job", async () => {
    const store = useInstancesStore();
    await store.start();
    await changeView({ jobs: [{ revision: 6, instance_id: GPU, job: job("b", { state: "pending", number: 2 }), order: ["b"] }] });
    // The running job arrives second; the shell puts it first.
    await changeView({ jobs: [{ revision: 7, instance_id: GPU, job: job("a", { percent: 40 }), order: ["a", "b"] }] });
    await flushPromises();
    expect(store.instances[1]?.jobs.map((j) => j.prompt_id)).toEqual(["a", "b"]);

    await changeView({ jobs: [{
      revision: 8,
      instance_id: GPU,
      job: job("a", { state: "success", elapsed_ms: 12_000 }),
      order: ["b"],
    }] });
    await flushPromises();
    expect(store.instances[1]?.jobs.map((j) => j.prompt_id)).toEqual(["b"]);
    expect(store.instances[1]?.last_job?.state).toBe("success");
  });

  it("follows the shell's order and never sorts the jobs itself", async () => {
    const store = useInstancesStore();
    await store.start();
    // Without an order, a new job joins the end, whatever its state or number.
    await changeView({ jobs: [{ revision: 6, instance_id: GPU, job: job("p2", { state: "pending", number: 2 }) }] });
    await changeView({ jobs: [{ revision: 7, instance_id: GPU, job: job("p1", { state: "pending", number: 1 }) }] });
    await changeView({ jobs: [{ revision: 8, instance_id: GPU, job: job("r", { number: 0 }) }] });
    await flushPromises();
    expect(store.instances[1]?.jobs.map((j) => j.prompt_id)).toEqual(["p2", "p1", "r"]);

    // An order puts them where the shell says; a job it does not name stays at the end.
    await changeView({ jobs: [{ revision: 9, instance_id: GPU, job: job("r", { number: 0 }), order: ["r", "p1"] }] });
    await flushPromises();
    expect(store.instances[1]?.jobs.map((j) => j.prompt_id)).toEqual(["r", "p1", "p2"]);

    // An update without an order (progress) leaves the order alone.
    await changeView({ jobs: [{ revision: 10, instance_id: GPU, job: job("p2", { state: "pending", number: 2, percent: 5 }) }] });
    await flushPromises();
    expect(store.instances[1]?.jobs.map((j) => j.prompt_id)).toEqual(["r", "p1", "p2"]);
    expect(store.instances[1]?.jobs[2]?.percent).toBe(5);
  });

  it("reports a failed refresh by the shell's error code", async () => {
    const store = useInstancesStore();
    await store.start();
    await store.refresh(9);
    expect(commands.at(-1)).toEqual({ command: "refresh_instance", args: { instance_id: 9 } });
    expect(store.notes[9]?.tone).toBe("error");
    expect(store.notes[9]?.failure?.code).toBe("unknown_instance");
    expect(store.notes[9]?.text).toBe("No such instance: no instance with id 9");
  });

  it("shows why loading failed", async () => {
    snapshotReply = () => {
      throw { code: "internal", message: "boom" };
    };
    const store = useInstancesStore();
    await store.start();
    expect(store.loaded).toBe(false);
    expect(store.loadError).toBe("boom");
  });

  it("keeps the snapshot's notices for the banner", async () => {
    snapshotReply = () => snapshot(1, [instance("gpu", { id: GPU })], ["secrets are kept in a file"]);
    const store = useInstancesStore();
    await store.start();
    expect(store.notices).toEqual(["secrets are kept in a file"]);
  });

  it("reloads the snapshot when instances change", async () => {
    const store = useInstancesStore();
    await store.start();
    snapshotReply = () => snapshot(9, [instance("gpu", { id: GPU }), instance("new", { id: 3 })]);
    await emitFromShell(EVENTS.instancesChanged, { revision: 9 });
    await flushPromises();
    expect(store.instances.map((i) => i.name)).toEqual(["gpu", "new"]);
    expect(commands.filter((c) => c.command === "get_snapshot")).toHaveLength(2);
  });

  it("does not reload for an instances change the snapshot already holds", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.instancesChanged, { revision: 5 });
    await flushPromises();
    expect(commands.filter((c) => c.command === "get_snapshot")).toHaveLength(1);
  });

  it("reloads again when instances change while a snapshot is in flight", async () => {
    const first = deferred<Snapshot>();
    snapshotReply = () => first.promise;
    const store = useInstancesStore();
    const started = store.start();
    await flushPromises();
    await emitFromShell(EVENTS.instancesChanged, { revision: 7 });
    snapshotReply = () => snapshot(7, [instance("gpu", { id: GPU }), instance("added", { id: 3 })]);
    first.resolve(snapshot(6, [instance("gpu", { id: GPU })]));
    await started;
    await flushPromises();
    expect(store.instances.map((i) => i.name)).toEqual(["gpu", "added"]);
  });

  it("applies machine stats to the instance they name", async () => {
    const store = useInstancesStore();
    await store.start();
    await changeView({ stats: [{ revision: 6, instance_id: GPU, stats: stats({ vram_free: 1024 }) }] });
    await flushPromises();
    expect(store.byId(GPU)?.stats?.vram_free).toBe(1024);
    expect(store.byId(LOCAL)?.stats).toBeNull();
  });

  it("replaces a job with its latest picture, preview and node text included", async () => {
    const store = useInstancesStore();
    await store.start();
    await changeView({ jobs: [{ revision: 6, instance_id: GPU, job: liveJob("a", { percent: 10 }), order: ["a"] }] });
    await changeView({ jobs: [{
      revision: 7,
      instance_id: GPU,
      job: liveJob("a", { percent: 20, preview: { seq: 3, width: 512, height: 512 }, node_text: [{ node: "9", text: "hello" }] }),
    }] });
    await flushPromises();
    const a = store.byId(GPU)?.jobs[0];
    expect(a?.percent).toBe(20);
    expect(a?.preview?.seq).toBe(3);
    expect(a?.node_text).toEqual([{ node: "9", text: "hello" }]);
  });

  it("notes when each job's picture came, so an estimate's spans count from then", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(1_000_000);
      snapshotReply = () => snapshot(5, [instance("gpu", { id: GPU, jobs: [job("p", { state: "pending", estimate: estimate({ eta_ms: 60_000 }) })] })]);
      const store = useInstancesStore();
      await store.start();
      vi.setSystemTime(1_004_000);
      await changeView({ jobs: [{ revision: 6, instance_id: GPU, job: job("q", { state: "pending", estimate: estimate({ eta_ms: 90_000 }) }) }] });
      await flushPromises();
      vi.setSystemTime(1_009_000);
      const [p, q] = store.byId(GPU)?.jobs ?? [];
      expect(p && receivedAt(p)).toBe(1_000_000);
      expect(q && receivedAt(q)).toBe(1_004_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it("applies every change of a batch to the instance it names, newer than the snapshot only", async () => {
    const store = useInstancesStore();
    await store.start();
    await changeView({
      batch: 3,
      statuses: [
        { revision: 5, instance_id: LOCAL, status: status({ state: "connected" }) },
        { revision: 9, instance_id: GPU, status: status({ state: "reconnecting" }) },
      ],
      queues: [{ revision: 10, instance_id: GPU, queue: { running: 1, pending: 4 } }],
      stats: [{ revision: 11, instance_id: LOCAL, stats: stats({ vram_free: 2048 }) }],
      jobs: [
        { revision: 4, instance_id: LOCAL, job: liveJob("old", { percent: 99 }) },
        { revision: 6, instance_id: GPU, job: liveJob("a", { percent: 10 }) },
        { revision: 7, instance_id: LOCAL, job: liveJob("b", { percent: 30 }) },
        { revision: 8, instance_id: 9, job: liveJob("c", { percent: 50 }) },
      ],
    });
    await flushPromises();
    expect(store.byId(GPU)?.jobs.map((j) => [j.prompt_id, j.percent])).toEqual([["a", 10]]);
    expect(store.byId(LOCAL)?.jobs.map((j) => [j.prompt_id, j.percent])).toEqual([["b", 30]]);
    expect(store.summary.total).toBe(2);
    // Revision 5 is in the snapshot already; the rest is newer.
    expect(store.byId(LOCAL)?.status.state).toBe("unreachable");
    expect(store.byId(GPU)?.status.state).toBe("reconnecting");
    expect(store.byId(GPU)?.queue).toEqual({ running: 1, pending: 4 });
    expect(store.byId(LOCAL)?.stats?.vram_free).toBe(2048);
    // Once painted, the shell hears the batch was shown.
    await new Promise((resolve) => requestAnimationFrame(resolve));
    await flushPromises();
    expect(commands.filter((c) => c.command === "batch_shown")).toEqual([{ command: "batch_shown", args: { batch: 3 } }]);
  });

  it("cancels a job and says when it had already finished", async () => {
    mockShell((command, args) => {
      commands.push({ command, args });
      if (command === "get_snapshot") return snapshotReply();
      if (command === "cancel_job") return "already_finished";
      return null;
    });
    const store = useInstancesStore();
    await store.start();
    const result = await store.cancel(GPU, "p1");
    expect(result).toBe("already_finished");
    expect(commands.at(-1)).toEqual({ command: "cancel_job", args: { instance_id: GPU, prompt_id: "p1" } });
    expect(store.notes[GPU]).toMatchObject({ tone: "info", text: "That job had already finished." });
  });

  it("clears a stale note when a cancel works", async () => {
    mockShell((command) => {
      if (command === "get_snapshot") return snapshotReply();
      if (command === "cancel_job") return "interrupted";
      if (command === "clear_queue") throw { code: "not_connected", message: "gpu is reconnecting", node_errors: [] };
      return null;
    });
    const store = useInstancesStore();
    await store.start();
    expect(await store.clearQueue(GPU)).toBe(false);
    expect(store.notes[GPU]?.failure?.code).toBe("not_connected");
    await store.cancel(GPU, "p1");
    expect(store.notes[GPU]).toBeUndefined();
  });

  it("marks an action busy while it runs so it cannot fire twice", async () => {
    const reply = deferred<string>();
    let calls = 0;
    mockShell((command) => {
      if (command === "get_snapshot") return snapshotReply();
      if (command === "cancel_job") {
        calls += 1;
        return reply.promise;
      }
      return null;
    });
    const store = useInstancesStore();
    await store.start();
    const first = store.cancel(GPU, "p1");
    await flushPromises();
    expect(store.isCancelling(GPU, "p1")).toBe(true);
    expect(await store.cancel(GPU, "p1")).toBeNull();
    reply.resolve("removed");
    expect(await first).toBe("removed");
    expect(calls).toBe(1);
    expect(store.isCancelling(GPU, "p1")).toBe(false);
  });

  it("keeps a running job's preview and node text through progress, as the shell carries them over", async () => {
    const store = useInstancesStore();
    await store.start();
    const preview = { seq: 4, width: 64, height: 64 };
    const text = [{ node: "2", text: "hi" }];
    await changeView({ jobs: [{
      revision: 6,
      instance_id: GPU,
      job: liveJob("a", { percent: 10, preview, node_text: text }),
      order: ["a"],
    }] });
    // The shell's progress update is final: it still carries the preview and the node text.
    await changeView({
      batch: 1,
      jobs: [{ revision: 7, instance_id: GPU, job: liveJob("a", { percent: 12, preview, node_text: text }) }],
    });
    await flushPromises();
    const a = store.byId(GPU)?.jobs[0];
    expect(a?.percent).toBe(12);
    expect(a?.preview?.seq).toBe(4);
    expect(a?.node_text).toEqual([{ node: "2", text: "hi" }]);

    await changeView({ jobs: [{
      revision: 8,
      instance_id: GPU,
      job: liveJob("a", { percent: 15, preview: { seq: 5, width: 64, height: 64 }, node_text: text }),
    }] });
    await flushPromises();
    expect(store.byId(GPU)?.jobs[0]?.preview?.seq).toBe(5);
  });
});
