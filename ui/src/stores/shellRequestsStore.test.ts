import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { EVENTS } from "../ipc";
import { emitFromShell, mockShell, resetShell } from "../ipc/testing";
import { deferred, type Deferred } from "../test/deferred";
import { instance, snapshot } from "../test/fixtures";
import type { Snapshot } from "../bindings/Snapshot";
import { useInstancesStore } from "./instancesStore";
import { useShellRequestsStore } from "./shellRequestsStore";
import { useViewStore } from "./viewStore";

describe("shell requests store", () => {
  let pendingSnapshot: Deferred<Snapshot>;

  beforeEach(() => {
    setActivePinia(createPinia());
    pendingSnapshot = deferred<Snapshot>();
    mockShell((command) => (command === "get_snapshot" ? pendingSnapshot.promise : null));
  });

  afterEach(() => {
    useShellRequestsStore().stop();
    useInstancesStore().stop();
    resetShell();
  });

  it("acts on a Show that came while the instances were still loading, once they are in", async () => {
    const requests = useShellRequestsStore();
    const view = useViewStore();
    await requests.start();
    const loading = useInstancesStore().start();
    await emitFromShell(EVENTS.showRequested, { instance_id: 7, prompt_id: "p-1" });
    expect(view.screen).toEqual({ kind: "overview" });

    pendingSnapshot.resolve(snapshot(1, [instance("gpu", { id: 7 })]));
    await loading;
    await Promise.resolve();
    expect(view.screen).toEqual({ kind: "detail", instanceId: 7 });
    expect(view.highlightRequest).toMatchObject({ instanceId: 7, promptId: "p-1" });
  });

  it("leaves the screen alone for a Show without an instance", async () => {
    const requests = useShellRequestsStore();
    const view = useViewStore();
    pendingSnapshot.resolve(snapshot(1, [instance("gpu", { id: 7 })]));
    await useInstancesStore().start();
    view.showDetail(7);
    await requests.show({ instance_id: null, prompt_id: null });
    expect(view.screen).toEqual({ kind: "detail", instanceId: 7 });
    await requests.show({ instance_id: 8, prompt_id: null });
    expect(view.screen).toEqual({ kind: "overview" });
  });

  it("keeps the latest cancel request until it is answered", async () => {
    const requests = useShellRequestsStore();
    await requests.start();
    await emitFromShell(EVENTS.cancelConfirmationRequested, { instance_id: 7, prompt_id: "a" });
    await emitFromShell(EVENTS.cancelConfirmationRequested, { instance_id: 7, prompt_id: "b" });
    expect(requests.pendingCancel).toEqual({ instance_id: 7, prompt_id: "b" });
    requests.keepJob();
    expect(requests.pendingCancel).toBeNull();
  });
});
