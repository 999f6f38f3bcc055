import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { flushPromises } from "@vue/test-utils";
import { EVENTS } from "../ipc";
import { emitFromShell, mockShell, resetShell } from "../ipc/testing";
import type { LogEntry } from "../bindings/LogEntry";
import { logEntry } from "../test/fixtures";
import { MAX_LOG_LINES, useEventLogStore } from "./eventLogStore";

const GPU = 2;

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("event log store", () => {
  let reply: () => Promise<LogEntry[]> | LogEntry[];

  beforeEach(() => {
    setActivePinia(createPinia());
    reply = () => [logEntry(1), logEntry(2)];
    mockShell((command, args) => {
      if (command === "get_event_log") {
        expect(args).toEqual({ instance_id: GPU, limit: 200 });
        return reply();
      }
      return null;
    });
  });

  afterEach(() => resetShell());

  it("loads an instance's log and appends logged events", async () => {
    const store = useEventLogStore();
    await store.start();
    await store.load(GPU);
    await emitFromShell(EVENTS.eventLogged, { instance_id: GPU, entry: logEntry(3, { kind: "server_event", detail: "crystools.monitor" }) });
    await flushPromises();
    expect(store.byInstance[GPU]?.entries.map((e) => e.id)).toEqual([1, 2, 3]);
  });

  it("keeps lines logged while the read was in flight, without doubles", async () => {
    const read = deferred<LogEntry[]>();
    reply = () => read.promise;
    const store = useEventLogStore();
    await store.start();
    const loading = store.load(GPU);
    await flushPromises();
    await emitFromShell(EVENTS.eventLogged, { instance_id: GPU, entry: logEntry(2) });
    await emitFromShell(EVENTS.eventLogged, { instance_id: GPU, entry: logEntry(3) });
    read.resolve([logEntry(1), logEntry(2)]);
    await loading;
    expect(store.byInstance[GPU]?.entries.map((e) => e.id)).toEqual([1, 2, 3]);
  });

  it("ignores lines for logs nobody opened", async () => {
    const store = useEventLogStore();
    await store.start();
    await emitFromShell(EVENTS.eventLogged, { instance_id: 9, entry: logEntry(9) });
    await flushPromises();
    expect(store.byInstance[9]).toBeUndefined();
  });

  it("drops the oldest lines past its bound", async () => {
    reply = () => Array.from({ length: MAX_LOG_LINES }, (_, i) => logEntry(i + 1));
    const store = useEventLogStore();
    await store.start();
    await store.load(GPU);
    await emitFromShell(EVENTS.eventLogged, { instance_id: GPU, entry: logEntry(MAX_LOG_LINES + 1) });
    await flushPromises();
    const ids = store.byInstance[GPU]?.entries.map((e) => e.id) ?? [];
    expect(ids).toHaveLength(MAX_LOG_LINES);
    expect(ids[0]).toBe(2);
    expect(ids.at(-1)).toBe(MAX_LOG_LINES + 1);
  });
});
