// Projects the shell's events onto the list of instances the UI shows.
//
// Loading: subscribe first, then fetch a snapshot. Events that arrive while the snapshot is in
// flight are held, then replayed if they are newer than the snapshot (each event carries the
// revision it was produced at; the snapshot says which revision it reflects). Nothing is lost and
// nothing older overwrites something newer.
import { defineStore } from "pinia";
import { computed, ref } from "vue";
import type { InstanceView } from "../bindings/InstanceView";
import type { JobSummary } from "../bindings/JobSummary";
import { EVENTS, IpcError, getSnapshot, onEvent, refreshInstance, type Unsubscribe } from "../ipc";

interface HeldChange {
  revision: number;
  apply: () => void;
}

const FINISHED = new Set<JobSummary["state"]>(["success", "error", "interrupted", "deleted", "lost"]);

export function isFinished(job: JobSummary): boolean {
  return FINISHED.has(job.state);
}

/** Running first, then by queue number (unknown last); the same order the shell keeps. */
function jobOrder(a: JobSummary, b: JobSummary): number {
  const running = (j: JobSummary) => (j.state === "running" ? 0 : 1);
  const number = (j: JobSummary) => j.number ?? Number.POSITIVE_INFINITY;
  return running(a) - running(b) || number(a) - number(b);
}

export const useInstancesStore = defineStore("instances", () => {
  const instances = ref<InstanceView[]>([]);
  const loaded = ref(false);
  const loadError = ref<string | null>(null);
  /** The last failed action per instance name, shown on its card. */
  const actionErrors = ref<Record<string, string>>({});

  let baseline = -1;
  let held: HeldChange[] | null = null;
  let unsubscribers: Unsubscribe[] = [];

  const summary = computed(() => {
    const list = instances.value;
    return {
      total: list.length,
      connected: list.filter((i) => i.status.state === "connected").length,
      running: list.reduce((n, i) => n + i.queue.running, 0),
      pending: list.reduce((n, i) => n + i.queue.pending, 0),
    };
  });

  function find(name: string): InstanceView | undefined {
    return instances.value.find((i) => i.name === name);
  }

  function accept(revision: number, apply: () => void): void {
    if (held) {
      held.push({ revision, apply });
    } else if (revision > baseline) {
      apply();
    }
  }

  function applyJob(instance: InstanceView, job: JobSummary): void {
    const index = instance.jobs.findIndex((j) => j.promptId === job.promptId);
    if (isFinished(job)) {
      if (index >= 0) instance.jobs.splice(index, 1);
      instance.lastJob = job;
      return;
    }
    if (index >= 0) instance.jobs[index] = job;
    else instance.jobs.push(job);
    instance.jobs.sort(jobOrder);
  }

  async function subscribe(): Promise<void> {
    unsubscribers = await Promise.all([
      onEvent(EVENTS.instanceStatusChanged, (p) =>
        accept(p.revision, () => {
          const i = find(p.instance);
          if (i) i.status = p.status;
        }),
      ),
      onEvent(EVENTS.serverInfoChanged, (p) =>
        accept(p.revision, () => {
          const i = find(p.instance);
          if (i) i.server = p.server;
        }),
      ),
      onEvent(EVENTS.queueChanged, (p) =>
        accept(p.revision, () => {
          const i = find(p.instance);
          if (i) i.queue = p.queue;
        }),
      ),
      onEvent(EVENTS.jobUpdated, (p) =>
        accept(p.revision, () => {
          const i = find(p.instance);
          if (i) applyJob(i, p.job);
        }),
      ),
    ]);
  }

  /** Replaces the picture with a fresh snapshot, keeping changes that raced it. */
  async function load(): Promise<void> {
    held ??= [];
    try {
      const snapshot = await getSnapshot();
      instances.value = snapshot.instances;
      baseline = snapshot.revision;
      loaded.value = true;
      loadError.value = null;
    } catch (error) {
      loadError.value = error instanceof Error ? error.message : String(error);
    } finally {
      const changes = held ?? [];
      held = null;
      for (const change of changes) {
        if (change.revision > baseline) change.apply();
      }
    }
  }

  async function start(): Promise<void> {
    if (unsubscribers.length === 0) {
      held ??= [];
      await subscribe();
    }
    await load();
  }

  function stop(): void {
    for (const unsubscribe of unsubscribers) unsubscribe();
    unsubscribers = [];
  }

  async function refresh(name: string): Promise<void> {
    try {
      await refreshInstance(name);
      delete actionErrors.value[name];
    } catch (error) {
      const message = error instanceof IpcError ? `${error.code}: ${error.message}` : String(error);
      actionErrors.value[name] = message;
    }
  }

  return { instances, loaded, loadError, actionErrors, summary, start, stop, load, refresh };
});
