// Each instance's finished jobs, from the app's journal, by instance id. Loaded when an instance's detail opens;
// refetched when one of that instance's jobs reaches a terminal state (a short delay gathers a
// burst of endings into one read, and lets the journal write land first).
import { defineStore } from "pinia";
import { ref } from "vue";
import type { HistoryEntry } from "../bindings/HistoryEntry";
import type { InstanceId } from "../bindings/InstanceId";
import type { OutputFile } from "../bindings/OutputFile";
import type { PromptId } from "../bindings/PromptId";
import type { SavedOutput } from "../bindings/SavedOutput";
import type { SubmitResult } from "../bindings/SubmitResult";
import type { WorkflowSummary } from "../bindings/WorkflowSummary";
import { isTerminal } from "../format";
import { EVENTS, getHistory, getJobSummary, onEvent, openFolder, resubmitJob, saveOutput, type Again, type Unsubscribe } from "../ipc";
import { attempt, type Failure, type Outcome } from "./failure";

export const PAGE = 50;
/** How long after a job ends the history is read again. */
export const REFETCH_DELAY_MS = 300;

export interface InstanceHistory {
  entries: HistoryEntry[];
  loading: boolean;
  failure: Failure | null;
  /** More entries may exist past the ones loaded. */
  more: boolean;
}

export const useHistoryStore = defineStore("history", () => {
  const byInstance = ref<Record<InstanceId, InstanceHistory>>({});
  let unsubscribe: Unsubscribe | null = null;
  const timers = new Map<InstanceId, ReturnType<typeof setTimeout>>();
  /** The newest read per instance wins: an older answer that arrives late is dropped. */
  const generation = new Map<InstanceId, number>();

  function slot(instance: InstanceId): InstanceHistory {
    if (!byInstance.value[instance]) {
      byInstance.value[instance] = { entries: [], loading: false, failure: null, more: false };
    }
    // Read back through the store so writes go through the reactive proxy.
    return byInstance.value[instance] as InstanceHistory;
  }

  /** Reads the newest page (or as many entries as are shown, if more were loaded). */
  async function load(instance: InstanceId): Promise<void> {
    const h = slot(instance);
    const limit = Math.max(PAGE, h.entries.length);
    const gen = (generation.get(instance) ?? 0) + 1;
    generation.set(instance, gen);
    h.loading = true;
    const outcome = await attempt(() => getHistory(instance, limit, 0));
    if (generation.get(instance) !== gen) return;
    const current = slot(instance);
    current.loading = false;
    if (outcome.ok) {
      current.entries = outcome.value;
      current.more = outcome.value.length === limit;
      current.failure = null;
    } else {
      current.failure = outcome.failure;
    }
  }

  /** Appends the next page. */
  async function loadMore(instance: InstanceId): Promise<void> {
    const h = slot(instance);
    if (h.loading) return;
    h.loading = true;
    const outcome = await attempt(() => getHistory(instance, PAGE, h.entries.length));
    h.loading = false;
    if (outcome.ok) {
      const known = new Set(h.entries.map((e) => e.prompt_id));
      h.entries.push(...outcome.value.filter((e) => !known.has(e.prompt_id)));
      h.more = outcome.value.length === PAGE;
      h.failure = null;
    } else {
      h.failure = outcome.failure;
    }
  }

  function scheduleRefetch(instance: InstanceId): void {
    if (!byInstance.value[instance]) return; // never shown: nothing to keep fresh
    const pending = timers.get(instance);
    if (pending !== undefined) clearTimeout(pending);
    timers.set(
      instance,
      setTimeout(() => {
        timers.delete(instance);
        void load(instance);
      }, REFETCH_DELAY_MS),
    );
  }

  async function start(): Promise<void> {
    if (unsubscribe) return;
    unsubscribe = await onEvent(EVENTS.viewChanged, (batch) => {
      for (const p of batch.jobs) if (isTerminal(p.job.state)) scheduleRefetch(p.instance_id);
    });
  }

  function stop(): void {
    unsubscribe?.();
    unsubscribe = null;
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
  }

  /** What one of this app's jobs was (its workflow does not change: asked once per job). */
  const summaries = new Map<PromptId, Promise<Outcome<WorkflowSummary>>>();
  function summary(instance: InstanceId, promptId: PromptId): Promise<Outcome<WorkflowSummary>> {
    let known = summaries.get(promptId);
    if (!known) {
      known = attempt(() => getJobSummary(instance, promptId));
      summaries.set(promptId, known);
      void known.then((o) => {
        if (!o.ok) summaries.delete(promptId);
      });
    }
    return known;
  }

  function resubmit(instance: InstanceId, promptId: PromptId, again?: Again): Promise<Outcome<SubmitResult[]>> {
    return attempt(() => resubmitJob(instance, promptId, again));
  }

  /** Downloads an output; with its job's prompt id the journal remembers where it went. */
  function save(instance: InstanceId, output: OutputFile, promptId: PromptId | null = null): Promise<Outcome<SavedOutput>> {
    return attempt(() => saveOutput(instance, output, promptId));
  }

  function showFolder(folder: string): Promise<Outcome<void>> {
    return attempt(() => openFolder(folder));
  }

  return { byInstance, load, loadMore, start, stop, resubmit, summary, save, showFolder };
});
