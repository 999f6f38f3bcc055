import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { flushPromises } from "@vue/test-utils";
import { EVENTS } from "../ipc";
import { emitFromShell, mockShell, resetShell } from "../ipc/testing";
import type { Snapshot } from "../bindings/Snapshot";
import { instance, job, liveJob, snapshot, stats, status } from "../test/fixtures";
import { useInstancesStore } from "./instancesStore";

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
    snapshotReply = () => snapshot(5, [instance("Local", { status: status({ state: "unreachable" }) }), instance("gpu")]);
    mockShell((command, args) => {
      commands.push({ command, args });
      if (command === "get_snapshot") return snapshotReply();
      if (command === "refresh_instance") {
        throw { code: "unknown_instance", message: "no instance named `nope`" };
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

  it("applies status, server and queue events to the named instance", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.instanceStatusChanged, {
      revision: 6,
      instance: "Local",
      status: status({ state: "auth_failed", detail: "auth failed: 401" }),
    });
    await emitFromShell(EVENTS.serverInfoChanged, {
      revision: 7,
      instance: "gpu",
      server: { version: "0.4.1", jobsApi: true, featureFlags: true },
    });
    await emitFromShell(EVENTS.queueChanged, { revision: 8, instance: "gpu", queue: { running: 1, pending: 3 } });
    await flushPromises();

    const [local, gpu] = store.instances;
    expect(local?.status.detail).toBe("auth failed: 401");
    expect(gpu?.server?.version).toBe("0.4.1");
    expect(gpu?.queue).toEqual({ running: 1, pending: 3 });
  });

  it("ignores events the snapshot already reflects", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.queueChanged, { revision: 5, instance: "gpu", queue: { running: 9, pending: 9 } });
    await flushPromises();
    expect(store.instances[1]?.queue).toEqual({ running: 0, pending: 0 });
  });

  it("replays newer events that raced the snapshot and drops older ones", async () => {
    const reply = deferred<Snapshot>();
    snapshotReply = () => reply.promise;
    const store = useInstancesStore();
    const started = store.start();
    await flushPromises();

    await emitFromShell(EVENTS.queueChanged, { revision: 4, instance: "gpu", queue: { running: 7, pending: 7 } });
    await emitFromShell(EVENTS.queueChanged, { revision: 6, instance: "gpu", queue: { running: 1, pending: 2 } });
    await flushPromises();
    expect(store.loaded).toBe(false);

    reply.resolve(snapshot(5, [instance("gpu")]));
    await started;
    expect(store.instances[0]?.queue).toEqual({ running: 1, pending: 2 });
  });

  it("keeps running jobs first and moves finished ones to the last job", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.jobUpdated, { revision: 6, instance: "gpu", job: job("b", { state: "pending", number: 2 }) });
    await emitFromShell(EVENTS.jobUpdated, { revision: 7, instance: "gpu", job: job("a", { percent: 40 }) });
    await flushPromises();
    expect(store.instances[1]?.jobs.map((j) => j.promptId)).toEqual(["a", "b"]);

    await emitFromShell(EVENTS.jobUpdated, {
      revision: 8,
      instance: "gpu",
      job: job("a", { state: "success", elapsedMs: 12_000 }),
    });
    await flushPromises();
    expect(store.instances[1]?.jobs.map((j) => j.promptId)).toEqual(["b"]);
    expect(store.instances[1]?.lastJob?.state).toBe("success");
  });

  it("reports a failed refresh by the shell's error code", async () => {
    const store = useInstancesStore();
    await store.start();
    await store.refresh("nope");
    expect(commands.at(-1)).toEqual({ command: "refresh_instance", args: { instance: "nope" } });
    expect(store.notes.nope?.tone).toBe("error");
    expect(store.notes.nope?.failure?.code).toBe("unknown_instance");
    expect(store.notes.nope?.text).toBe("No such instance: no instance named `nope`");
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
    snapshotReply = () => snapshot(1, [instance("gpu")], ["secrets are kept in a file"]);
    const store = useInstancesStore();
    await store.start();
    expect(store.notices).toEqual(["secrets are kept in a file"]);
  });

  it("reloads the snapshot when instances change", async () => {
    const store = useInstancesStore();
    await store.start();
    snapshotReply = () => snapshot(9, [instance("gpu"), instance("new")]);
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
    snapshotReply = () => snapshot(7, [instance("gpu"), instance("added")]);
    first.resolve(snapshot(6, [instance("gpu")]));
    await started;
    await flushPromises();
    expect(store.instances.map((i) => i.name)).toEqual(["gpu", "added"]);
  });

  it("applies machine stats to the named instance", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.statsChanged, { revision: 6, instance: "gpu", stats: stats({ vramFree: 1024 }) });
    await flushPromises();
    expect(store.byName("gpu")?.stats?.vramFree).toBe(1024);
    expect(store.byName("Local")?.stats).toBeNull();
  });

  it("replaces a job with its latest picture, preview and node text included", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.jobUpdated, { revision: 6, instance: "gpu", job: liveJob("a", { percent: 10 }) });
    await emitFromShell(EVENTS.jobUpdated, {
      revision: 7,
      instance: "gpu",
      job: liveJob("a", { percent: 20, preview: { seq: 3, width: 512, height: 512 }, nodeText: [{ node: "9", text: "hello" }] }),
    });
    await flushPromises();
    const a = store.byName("gpu")?.jobs[0];
    expect(a?.percent).toBe(20);
    expect(a?.preview?.seq).toBe(3);
    expect(a?.nodeText).toEqual([{ node: "9", text: "hello" }]);
  });

  it("applies a batch of progress to every instance it names, newer than the snapshot only", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.jobsProgressed, {
      batch: 3,
      updates: [
        { revision: 4, instance: "Local", job: liveJob("old", { percent: 99 }) },
        { revision: 6, instance: "gpu", job: liveJob("a", { percent: 10 }) },
        { revision: 7, instance: "Local", job: liveJob("b", { percent: 30 }) },
        { revision: 8, instance: "nope", job: liveJob("c", { percent: 50 }) },
      ],
    });
    await flushPromises();
    expect(store.byName("gpu")?.jobs.map((j) => [j.promptId, j.percent])).toEqual([["a", 10]]);
    expect(store.byName("Local")?.jobs.map((j) => [j.promptId, j.percent])).toEqual([["b", 30]]);
    expect(store.summary.total).toBe(2);
    // Once painted, the shell hears the batch was shown.
    await new Promise((resolve) => requestAnimationFrame(resolve));
    await flushPromises();
    expect(commands.filter((c) => c.command === "progress_shown")).toEqual([{ command: "progress_shown", args: { batch: 3 } }]);
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
    const result = await store.cancel("gpu", "p1");
    expect(result).toBe("already_finished");
    expect(commands.at(-1)).toEqual({ command: "cancel_job", args: { instance: "gpu", promptId: "p1" } });
    expect(store.notes.gpu).toMatchObject({ tone: "info", text: "That job had already finished." });
  });

  it("clears a stale note when a cancel works", async () => {
    mockShell((command) => {
      if (command === "get_snapshot") return snapshotReply();
      if (command === "cancel_job") return "interrupted";
      if (command === "clear_queue") throw { code: "not_connected", message: "gpu is reconnecting", nodeErrors: [] };
      return null;
    });
    const store = useInstancesStore();
    await store.start();
    expect(await store.clearQueue("gpu")).toBe(false);
    expect(store.notes.gpu?.failure?.code).toBe("not_connected");
    await store.cancel("gpu", "p1");
    expect(store.notes.gpu).toBeUndefined();
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
    const first = store.cancel("gpu", "p1");
    await flushPromises();
    expect(store.isBusy("gpu:p1")).toBe(true);
    expect(await store.cancel("gpu", "p1")).toBeNull();
    reply.resolve("removed");
    expect(await first).toBe("removed");
    expect(calls).toBe(1);
    expect(store.isBusy("gpu:p1")).toBe(false);
  });

  it("keeps a running job's preview and node text when a progress update comes without them", async () => {
    const store = useInstancesStore();
    await store.start();
    await emitFromShell(EVENTS.jobUpdated, {
      revision: 6,
      instance: "gpu",
      job: liveJob("a", { percent: 10, preview: { seq: 4, width: 64, height: 64 }, nodeText: [{ node: "2", text: "hi" }] }),
    });
    await emitFromShell(EVENTS.jobUpdated, { revision: 7, instance: "gpu", job: liveJob("a", { percent: 12 }) });
    await flushPromises();
    const a = store.byName("gpu")?.jobs[0];
    expect(a?.percent).toBe(12);
    expect(a?.preview?.seq).toBe(4);
    expect(a?.nodeText).toEqual([{ node: "2", text: "hi" }]);

    await emitFromShell(EVENTS.jobUpdated, { revision: 8, instance: "gpu", job: liveJob("a", { percent: 15, preview: { seq: 5, width: 64, height: 64 } }) });
    await flushPromises();
    expect(store.byName("gpu")?.jobs[0]?.preview?.seq).toBe(5);
  });
});
