// Projects the shell's events onto the list of instances the UI shows, and wraps the commands
// that act on an instance's queue. Every event and command names an instance by its id.
//
// Loading: subscribe first, then fetch a snapshot. Events that arrive while the snapshot is in
// flight are held, then replayed if they are newer than the snapshot (each event carries the
// revision it was produced at; the snapshot says which revision it reflects). Nothing is lost and
// nothing older overwrites something newer. `instances-changed` (an instance added, removed or
// re-configured) is answered with a fresh snapshot; loads never overlap, a request made during one
// runs once it is done.
//
// Jobs: the shell's overview is the one job-list projection (src-tauri/shell/overview.rs). Each
// job summary it sends is final, its preview and node text included, so a job's copy here is
// simply replaced; and the shell decides the order of an instance's unfinished jobs, sending it
// with the update that changed it. The UI folds nothing and sorts nothing itself.
import { defineStore } from "pinia";
import { computed, ref, toRaw } from "vue";
import type { CancelOutcome } from "../bindings/CancelOutcome";
import type { InstanceId } from "../bindings/InstanceId";
import type { InstanceView } from "../bindings/InstanceView";
import type { JobSummary } from "../bindings/JobSummary";
import type { PromptId } from "../bindings/PromptId";
import { isTerminal, isUp } from "../format";
import {
  EVENTS,
  cancelJob,
  clearQueue as clearQueueCommand,
  getSnapshot,
  onEvent,
  openInComfyui,
  batchShown,
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

/** The jobs in the shell's order. Jobs the order does not name (which should not happen) keep
 * their places relative to each other, after the named ones. */
function inOrder(jobs: JobSummary[], order: PromptId[]): JobSummary[] {
  const rank = new Map(order.map((id, i) => [id, i]));
  const place = (j: JobSummary) => rank.get(j.prompt_id) ?? order.length;
  // Array.prototype.sort is stable: ties keep their current order.
  return [...jobs].sort((a, b) => place(a) - place(b));
}

/** When each job picture came, by the object the shell sent. A job's estimate counts its spans
 * from when the engine sent it, and is sent again only when the moment it points at moves, so
 * the view needs this to tell when a job is due (see the estimates in `format.ts`). */
const arrivals = new WeakMap<JobSummary, number>();

function arrived(job: JobSummary, at: number): void {
  arrivals.set(toRaw(job), at);
}

/** When this job's picture came (for one that came some other way, when it was first asked). */
export function receivedAt(job: JobSummary): number {
  const raw = toRaw(job);
  const at = arrivals.get(raw);
  if (at !== undefined) return at;
  const now = Date.now();
  arrivals.set(raw, now);
  return now;
}

const CANCEL_NOTES: Record<CancelOutcome, ActionNote | null> = {
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
  /** The last action's note per instance id, shown on its card and detail. */
  const notes = ref<Record<InstanceId, ActionNote>>({});
  /** Actions in flight, by `<instance id>:<action>` or `<instance id>:<prompt id>`, so buttons
   * cannot fire twice. */
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
      connected: list.filter((i) => isUp(i.status.state)).length,
      running: list.reduce((n, i) => n + i.queue.running, 0),
      pending: list.reduce((n, i) => n + i.queue.pending, 0),
    };
  });

  function byId(id: InstanceId): InstanceView | undefined {
    return instances.value.find((i) => i.id === id);
  }

  function accept(revision: number, apply: () => void): void {
    if (held) {
      held.push({ revision, apply });
    } else if (revision > baseline) {
      apply();
    }
  }

  /** A job's new picture, as the shell sent it: it replaces the old one, or joins the list; an
   * ended job leaves the list and becomes the last job. With an order, the list follows it. */
  function applyJob(instance: InstanceView, job: JobSummary, order: PromptId[] | undefined): void {
    arrived(job, Date.now());
    const index = instance.jobs.findIndex((j) => j.prompt_id === job.prompt_id);
    if (isTerminal(job.state)) {
      if (index >= 0) instance.jobs.splice(index, 1);
      instance.last_job = job;
    } else if (index >= 0) {
      instance.jobs[index] = job;
    } else {
      instance.jobs.push(job);
    }
    if (order) instance.jobs = inOrder(instance.jobs, order);
  }

  /** Applies each change to the instance it names, if the snapshot does not already have it. */
  function applyEach<C extends { revision: number; instance_id: InstanceId }>(
    changes: C[],
    apply: (instance: InstanceView, change: C) => void,
  ): void {
    for (const change of changes) {
      accept(change.revision, () => {
        const i = byId(change.instance_id);
        if (i) apply(i, change);
      });
    }
  }

  async function subscribe(): Promise<void> {
    unsubscribers = await Promise.all([
      // Every change of the picture, batched per display frame for all instances: one event,
      // one render. The shell sends the next batch once this one is painted, so a busy page
      // gets fuller batches, not a backlog.
      onEvent(EVENTS.viewChanged, (batch) => {
        applyEach(batch.statuses, (i, p) => (i.status = p.status));
        applyEach(batch.servers, (i, p) => (i.server = p.server));
        applyEach(batch.queues, (i, p) => (i.queue = p.queue));
        applyEach(batch.stats, (i, p) => (i.stats = p.stats));
        applyEach(batch.jobs, (i, p) => applyJob(i, p.job, p.order));
        requestAnimationFrame(() => void batchShown(batch.batch).catch(() => undefined));
      }),
      onEvent(EVENTS.instancesChanged, (p) => accept(p.revision, () => void load())),
    ]);
  }

  async function loadOnce(): Promise<void> {
    held ??= [];
    try {
      const snapshot = await getSnapshot();
      const at = Date.now();
      for (const i of snapshot.instances) for (const job of i.jobs) arrived(job, at);
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

  function note(id: InstanceId, value: ActionNote | null): void {
    if (value) notes.value[id] = value;
    else delete notes.value[id];
  }

  function dismissNote(id: InstanceId): void {
    note(id, null);
  }

  async function run<T>(key: string, id: InstanceId, action: () => Promise<T>): Promise<T | null> {
    if (busy.value[key]) return null;
    busy.value[key] = true;
    try {
      const outcome = await attempt(action);
      if (outcome.ok) {
        note(id, null);
        return outcome.value;
      }
      note(id, { tone: "error", text: failureText(outcome.failure), failure: outcome.failure });
      return null;
    } finally {
      delete busy.value[key];
    }
  }

  /** Asks an instance to re-read its queue now. */
  async function refresh(id: InstanceId): Promise<void> {
    await run(`${id}:refresh`, id, () => refreshInstance(id));
  }

  /** Opens the instance's ComfyUI web page in the default browser. */
  async function openPage(id: InstanceId): Promise<void> {
    await run(`${id}:open`, id, () => openInComfyui(id));
  }

  /** Cancels one job (interrupts it if running, removes it if pending) and says what happened. */
  async function cancel(id: InstanceId, promptId: PromptId): Promise<CancelOutcome | null> {
    const result = await run(`${id}:${promptId}`, id, () => cancelJob(id, promptId));
    if (result) note(id, CANCEL_NOTES[result]);
    return result;
  }

  /** Removes every pending job of an instance; the running one is left alone. */
  async function clearQueue(id: InstanceId): Promise<boolean> {
    const done = await run(`${id}:clear`, id, async () => {
      await clearQueueCommand(id);
      return true;
    });
    return done === true;
  }

  /** A cancel of this job is in flight. */
  function isCancelling(id: InstanceId, promptId: PromptId): boolean {
    return busy.value[`${id}:${promptId}`] === true;
  }

  /** Clearing this instance's queue is in flight. */
  function isClearing(id: InstanceId): boolean {
    return busy.value[`${id}:clear`] === true;
  }

  return {
    instances,
    notices,
    loaded,
    loadError,
    notes,
    summary,
    byId,
    start,
    stop,
    load,
    refresh,
    openPage,
    cancel,
    clearQueue,
    isCancelling,
    isClearing,
    dismissNote,
  };
});
