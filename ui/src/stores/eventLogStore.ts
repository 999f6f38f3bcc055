// Each instance's event log (connection changes, custom and unknown server events), by id: the latest
// lines from the journal, then every `event-logged` appended. Lines that arrive while the journal
// read is in flight are merged by id, so none is lost or shown twice. The log is bounded.
import { defineStore } from "pinia";
import { ref } from "vue";
import type { InstanceId } from "../bindings/InstanceId";
import type { LogEntry } from "../bindings/LogEntry";
import { EVENTS, getEventLog, onEvent, type Unsubscribe } from "../ipc";
import { attempt, type Failure } from "./failure";

/** Lines kept per instance; older ones fall off the top. */
export const MAX_LOG_LINES = 500;
const INITIAL_LINES = 200;

export interface InstanceLog {
  entries: LogEntry[];
  loading: boolean;
  failure: Failure | null;
}

function byTime(a: LogEntry, b: LogEntry): number {
  return a.ts - b.ts || a.id - b.id;
}

function merge(into: LogEntry[], more: LogEntry[]): LogEntry[] {
  const seen = new Set(into.map((e) => e.id));
  const merged = into.concat(more.filter((e) => !seen.has(e.id)));
  merged.sort(byTime);
  return merged.length > MAX_LOG_LINES ? merged.slice(merged.length - MAX_LOG_LINES) : merged;
}

export const useEventLogStore = defineStore("eventLog", () => {
  const byInstance = ref<Record<InstanceId, InstanceLog>>({});
  let unsubscribe: Unsubscribe | null = null;

  function slot(instance: InstanceId): InstanceLog {
    if (!byInstance.value[instance]) {
      byInstance.value[instance] = { entries: [], loading: false, failure: null };
    }
    return byInstance.value[instance] as InstanceLog;
  }

  async function load(instance: InstanceId): Promise<void> {
    const log = slot(instance);
    log.loading = true;
    const outcome = await attempt(() => getEventLog(instance, INITIAL_LINES));
    log.loading = false;
    if (outcome.ok) {
      // Lines appended during the read are kept; the read's own copies are not doubled.
      log.entries = merge(outcome.value, log.entries);
      log.failure = null;
    } else {
      log.failure = outcome.failure;
    }
  }

  async function start(): Promise<void> {
    if (unsubscribe) return;
    unsubscribe = await onEvent(EVENTS.eventLogged, (p) => {
      // Only logs someone looked at are kept live; the rest are read when first shown.
      const log = byInstance.value[p.instance_id];
      if (log) log.entries = merge(log.entries, [p.entry]);
    });
  }

  function stop(): void {
    unsubscribe?.();
    unsubscribe = null;
  }

  return { byInstance, load, start, stop };
});
