// Projects the shell's events onto the list of instances the UI shows, and wraps the commands
// that act on an instance's queue.
//
// Loading: subscribe first, then fetch a snapshot. Events that arrive while the snapshot is in
// flight are held, then replayed if they are newer than the snapshot (each event carries the
// revision it was produced at; the snapshot says which revision it reflects). Nothing is lost and
// nothing older overwrites something newer. `instances-changed` (an instance added, removed or
// re-configured) is answered with a fresh snapshot; loads never overlap, a request made during one
// runs once it is done.
import { defineStore } from "pinia";
import { computed, ref } from "vue";
import type { CancelResult } from "../bindings/CancelResult";
import type { InstanceView } from "../bindings/InstanceView";
import type { JobSummary } from "../bindings/JobSummary";
import { isFinishedState } from "../format";
import {
  EVENTS,
  cancelJob,
  clearQueue as clearQueueCommand,
  getSnapshot,
  onEvent,
  progressShown,
  refreshInstance,
  type Unsubscribe,
} from "../ipc";
import { attempt, failureText, type Failure } from "./failure";

interface HeldChange {
  revision: number;
  apply: () => void;
}

/** A line shown on an instance after an action: what went wrong, or what really happened. */
export interface ActionNote {
  tone: "error" | "info";
  text: string;
  failure?: Failure;
}

export function isFinished(job: JobSummary): boolean {
  return isFinishedState(job.state);
}

/** Running first, then by queue number (unknown last); the same order the shell keeps. */
function jobOrder(a: JobSummary, b: JobSummary): number {
  const running = (j: JobSummary) => (j.state === "running" ? 0 : 1);
  const number = (j: JobSummary) => j.number ?? Number.POSITIVE_INFINITY;
  return running(a) - running(b) || number(a) - number(b);
}

/** A job's preview and node text survive updates that do not carry them. Once a job has shown
 * a frame or streamed text it never loses them, but the shell's progress updates can come
 * without (they are built from the engine's view of the job, which has neither), and one of
 * those must not blank the preview that the previous update set. */
function keepStreamed(previous: JobSummary, update: JobSummary): JobSummary {
  const preview = update.preview ?? previous.preview;
  const nodeText = update.nodeText.length ? update.nodeText : previous.nodeText;
  return preview === update.preview && nodeText === update.nodeText ? update : { ...update, preview, nodeText };
}

const CANCEL_NOTES: Record<CancelResult, ActionNote | null> = {
  interrupted: null,
  removed: null,
  already_finished: { tone: "info", text: "That job had already finished." },
  not_found: { tone: "info", text: "The server no longer knows that job." },
};

export const useInstancesStore = defineStore("instances", () => {
  const instances = ref<InstanceView[]>([]);
  /** App-level warnings from the snapshot (secrets fallback file, database trouble). */
  const notices = ref<string[]>([]);
  const loaded = ref(false);
  const loadError = ref<string | null>(null);
  /** The last action's note per instance name, shown on its card and detail. */
  const notes = ref<Record<string, ActionNote>>({});
  /** Actions in flight, by `instance` or `instance:promptId`, so buttons cannot fire twice. */
  const busy = ref<Record<string, true>>({});

  let baseline = -1;
  let held: HeldChange[] | null = null;
  let unsubscribers: Unsubscribe[] = [];
  let loading: Promise<void> | null = null;
  let loadAgain = false;

  const summary = computed(() => {
    const list = instances.value;
    return {
      total: list.length,
      connected: list.filter((i) => i.status.state === "connected").length,
      running: list.reduce((n, i) => n + i.queue.running, 0),
      pending: list.reduce((n, i) => n + i.queue.pending, 0),
    };
  });

  function byName(name: string): InstanceView | undefined {
    return instances.value.find((i) => i.name === name);
  }

  function byId(id: number): InstanceView | undefined {
    return instances.value.find((i) => i.id === id);
  }

  function accept(revision: number, apply: () => void): void {
    if (held) {
      held.push({ revision, apply });
    } else if (revision > baseline) {
      apply();
    }
  }

  function applyJob(instance: InstanceView, update: JobSummary): void {
    const index = instance.jobs.findIndex((j) => j.promptId === update.promptId);
    const job = index >= 0 ? keepStreamed(instance.jobs[index] as JobSummary, update) : update;
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
          const i = byName(p.instance);
          if (i) i.status = p.status;
        }),
      ),
      onEvent(EVENTS.serverInfoChanged, (p) =>
        accept(p.revision, () => {
          const i = byName(p.instance);
          if (i) i.server = p.server;
        }),
      ),
      onEvent(EVENTS.queueChanged, (p) =>
        accept(p.revision, () => {
          const i = byName(p.instance);
          if (i) i.queue = p.queue;
        }),
      ),
      onEvent(EVENTS.statsChanged, (p) =>
        accept(p.revision, () => {
          const i = byName(p.instance);
          if (i) i.stats = p.stats;
        }),
      ),
      onEvent(EVENTS.jobUpdated, (p) =>
        accept(p.revision, () => {
          const i = byName(p.instance);
          if (i) applyJob(i, p.job);
        }),
      ),
      // Running jobs' progress, batched per display frame: one event, one render. The shell
      // sends the next batch once this one is painted, so a busy page gets fuller batches, not
      // a backlog.
      onEvent(EVENTS.jobsProgressed, (batch) => {
        for (const p of batch.updates) {
          accept(p.revision, () => {
            const i = byName(p.instance);
            if (i) applyJob(i, p.job);
          });
        }
        requestAnimationFrame(() => void progressShown(batch.batch).catch(() => undefined));
      }),
      onEvent(EVENTS.instancesChanged, (p) => accept(p.revision, () => void load())),
    ]);
  }

  async function loadOnce(): Promise<void> {
    held ??= [];
    try {
      const snapshot = await getSnapshot();
      instances.value = snapshot.instances;
      notices.value = snapshot.notices;
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

  /** Replaces the picture with a fresh snapshot, keeping changes that raced it. */
  function load(): Promise<void> {
    if (loading) {
      loadAgain = true;
      return loading;
    }
    loading = (async () => {
      do {
        loadAgain = false;
        await loadOnce();
      } while (loadAgain);
    })().finally(() => {
      loading = null;
    });
    return loading;
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

  function note(name: string, value: ActionNote | null): void {
    if (value) notes.value[name] = value;
    else delete notes.value[name];
  }

  function dismissNote(name: string): void {
    note(name, null);
  }

  async function run<T>(key: string, name: string, action: () => Promise<T>): Promise<T | null> {
    if (busy.value[key]) return null;
    busy.value[key] = true;
    try {
      const outcome = await attempt(action);
      if (outcome.ok) {
        note(name, null);
        return outcome.value;
      }
      note(name, { tone: "error", text: failureText(outcome.failure), failure: outcome.failure });
      return null;
    } finally {
      delete busy.value[key];
    }
  }

  /** Asks an instance to re-read its queue now. */
  async function refresh(name: string): Promise<void> {
    await run(`${name}:refresh`, name, () => refreshInstance(name));
  }

  /** Cancels one job (interrupts it if running, removes it if pending) and says what happened. */
  async function cancel(name: string, promptId: string): Promise<CancelResult | null> {
    const result = await run(`${name}:${promptId}`, name, () => cancelJob(name, promptId));
    if (result) note(name, CANCEL_NOTES[result]);
    return result;
  }

  /** Removes every pending job of an instance; the running one is left alone. */
  async function clearQueue(name: string): Promise<boolean> {
    const done = await run(`${name}:clear`, name, async () => {
      await clearQueueCommand(name);
      return true;
    });
    return done === true;
  }

  function isBusy(key: string): boolean {
    return busy.value[key] === true;
  }

  return {
    instances,
    notices,
    loaded,
    loadError,
    notes,
    summary,
    byName,
    byId,
    start,
    stop,
    load,
    refresh,
    cancel,
    clearQueue,
    isBusy,
    dismissNote,
  };
});
