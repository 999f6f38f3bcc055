import { afterEach, describe, expect, it, vi } from "vitest";
import { enableAutoUnmount, mount } from "@vue/test-utils";
import InstanceCard from "./InstanceCard.vue";
import { instance, job, status } from "../test/fixtures";

enableAutoUnmount(afterEach);

describe("InstanceCard", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("shows a connected instance with its version, queue and running job", () => {
    const wrapper = mount(InstanceCard, {
      props: {
        instance: instance("gpu", {
          queue: { running: 1, pending: 3 },
          jobs: [job("a", { percent: 42, node: "3", nodeType: "KSampler", nodeValue: 12, nodeMax: 20 })],
        }),
      },
    });
    expect(wrapper.attributes("data-state")).toBe("connected");
    expect(wrapper.get('[data-test="state"]').text()).toBe("Connected");
    expect(wrapper.get('[data-test="version"]').text()).toBe("ComfyUI 0.3.60");
    expect(wrapper.get('[data-test="running"]').text()).toBe("1");
    expect(wrapper.get('[data-test="pending"]').text()).toBe("3");
    expect(wrapper.get('[data-test="job-percent"]').text()).toBe("42%");
    expect(wrapper.text()).toContain("KSampler #3");
    expect(wrapper.text()).toContain("step 12/20");
  });

  it("explains a connection problem and counts down to the next try", async () => {
    vi.useFakeTimers();
    vi.setSystemTime(100_000);
    const wrapper = mount(InstanceCard, {
      props: {
        instance: instance("Local", {
          server: null,
          status: status({
            state: "unreachable",
            detail: "connection refused",
            retryInMs: 60_000,
            changedAtMs: 100_000,
          }),
        }),
      },
    });
    expect(wrapper.get('[data-test="state"]').text()).toBe("Unreachable");
    expect(wrapper.get('[data-test="detail"]').text()).toBe("connection refused · retrying in 60 s");
    expect(wrapper.find('[data-test="running-job"]').exists()).toBe(false);

    await vi.advanceTimersByTimeAsync(15_000);
    expect(wrapper.get('[data-test="detail"]').text()).toBe("connection refused · retrying in 45 s");
  });

  it("asks the store to refresh through an event", async () => {
    const wrapper = mount(InstanceCard, { props: { instance: instance("gpu") } });
    await wrapper.get("button.refresh").trigger("click");
    expect(wrapper.emitted("refresh")).toEqual([["gpu"]]);
  });
});
