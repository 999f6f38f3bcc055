import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { flushPromises } from "@vue/test-utils";
import { EVENTS } from "../ipc";
import { emitFromShell, mockShell, resetShell } from "../ipc/testing";
import type { Snapshot } from "../bindings/Snapshot";
import { instance, job, snapshot, status } from "../test/fixtures";
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

  it("reports a failed refresh with the shell's error code", async () => {
    const store = useInstancesStore();
    await store.start();
    await store.refresh("nope");
    expect(commands.at(-1)).toEqual({ command: "refresh_instance", args: { instance: "nope" } });
    expect(store.actionErrors.nope).toBe("unknown_instance: no instance named `nope`");
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
});
