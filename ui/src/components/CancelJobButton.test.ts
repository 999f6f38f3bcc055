// The one Cancel / Remove button: the same behaviour on a card (text or square icon), in the
// detail and on a queue row.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enableAutoUnmount, flushPromises, mount } from "@vue/test-utils";
import { createPinia, setActivePinia } from "pinia";
import CancelJobButton from "./CancelJobButton.vue";
import type { JobSummary } from "../bindings/JobSummary";
import { mockShell, resetShell } from "../ipc/testing";
import { useShellRequestsStore } from "../stores/shellRequestsStore";
import { instance, job, liveJob } from "../test/fixtures";

enableAutoUnmount(afterEach);

describe("CancelJobButton", () => {
  let calls: Array<{ command: string; args: unknown }>;
  let answer: (outcome: string) => void;

  beforeEach(() => {
    setActivePinia(createPinia());
    calls = [];
    answer = () => {};
    mockShell((command, args) => {
      calls.push({ command, args });
      return command === "cancel_job" ? new Promise<string>((resolve) => (answer = resolve)) : null;
    });
  });

  afterEach(() => resetShell());

  const gpu = instance("gpu", { id: 4 });

  function mountButton(j: JobSummary, props: { place?: "panel" | "row"; icon?: boolean } = {}) {
    return mount(CancelJobButton, { props: { instance: gpu, job: j, ...props } });
  }

  it("cancels a running job on a card, and says so until the server answers", async () => {
    const w = mountButton(liveJob("a"));
    expect(w.attributes("data-testid")).toBe("cancel-job");
    expect(w.attributes("aria-label")).toBe("Cancel the running job on gpu");
    expect(w.text()).toBe("Cancel");
    await w.trigger("click");
    expect(calls).toEqual([{ command: "cancel_job", args: { instance_id: 4, prompt_id: "a" } }]);
    expect(w.text()).toBe("Cancelling…");
    expect(w.attributes("data-cancelling")).toBe("true");
    expect(w.attributes("disabled")).toBeDefined();
    answer("interrupted");
    await flushPromises();
    expect(w.text()).toBe("Cancel");
    expect(w.attributes("data-cancelling")).toBeUndefined();
    expect(w.attributes("disabled")).toBeUndefined();
  });

  it("is a square stop button on compact cards, labelled by what it does", async () => {
    const w = mountButton(liveJob("a"), { icon: true });
    expect(w.classes()).toContain("icon-only");
    expect(w.find("svg").exists()).toBe(true);
    expect(w.text()).toBe("");
    expect(w.attributes("title")).toBe("Cancel this job");
    expect(w.attributes("aria-label")).toBe("Cancel the running job on gpu");
    await w.trigger("click");
    expect(w.attributes("title")).toBe("Cancelling…");
    expect(w.attributes("aria-label")).toBe("Cancelling the running job on gpu");
    expect(w.attributes("data-cancelling")).toBe("true");
  });

  it("removes the next pending job from a card", () => {
    const w = mountButton(job("p", { state: "pending", origin: "self" }));
    expect(w.text()).toBe("Remove");
    expect(w.attributes("aria-label")).toBe("Remove the next job from the queue of gpu");
  });

  it("is a queue row's delete, labelled by the job", async () => {
    const running = mountButton(liveJob("abcdef123456"), { place: "row" });
    expect(running.attributes("data-testid")).toBe("delete-job");
    expect(running.attributes("aria-label")).toBe("Cancel job abcdef12");
    expect(running.text()).toBe("Cancel");
    const pending = mountButton(job("fedcba654321", { state: "pending", origin: "self" }), { place: "row" });
    expect(pending.attributes("aria-label")).toBe("Remove job fedcba65");
    expect(pending.text()).toBe("Remove");
    await pending.trigger("click");
    expect(pending.attributes("disabled")).toBeDefined();
    expect(pending.attributes("data-cancelling")).toBe("true");
  });

  it("asks before cancelling another client's job", async () => {
    const w = mountButton(job("theirs", { origin: "anonymous" }));
    await w.trigger("click");
    expect(calls).toEqual([]);
    expect(useShellRequestsStore().pendingCancel).toEqual({ instance_id: 4, prompt_id: "theirs" });
  });
});
