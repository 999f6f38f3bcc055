// The gallery: every instance's outputs from the journal, newest first, filtered by instance,
// outcome, date and words; and where saving outputs stands. The first page is read again when a
// job ends or a file is saved (a short delay gathers a burst into one read).
import { defineStore } from "pinia";
import { computed, reactive, ref } from "vue";
import type { GalleryItem } from "../bindings/GalleryItem";
import type { GalleryQuery } from "../bindings/GalleryQuery";
import type { InstanceId } from "../bindings/InstanceId";
import type { JobState } from "../bindings/JobState";
import type { SavingStatus } from "../bindings/SavingStatus";
import { isTerminal } from "../format";
import { EVENTS, getGallery, onEvent, openJobFolder, savingStatus, type Unsubscribe } from "../ipc";
import { attempt, type Failure, type Outcome } from "./failure";

export const GALLERY_PAGE = 60;
/** How long after a job ends or a file is saved the gallery is read again. */
export const GALLERY_REFETCH_MS = 500;

export type OutcomeFilter = "all" | "success" | "failed";

const STATES: Record<OutcomeFilter, JobState[]> = {
  all: [],
  success: ["success"],
  // Files a job wrote before it failed, was interrupted or was lost.
  failed: ["error", "interrupted", "lost", "deleted"],
};

export interface GalleryFilter {
  instanceId: InstanceId | null;
  outcome: OutcomeFilter;
  /** `YYYY-MM-DD` from a date input, or "". */
  from: string;
  to: string;
  text: string;
}

/** Local midnight of a `YYYY-MM-DD` date, in ms; `days` later for an end bound. */
function dayStart(date: string, days = 0): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return undefined;
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + days).getTime();
}

export function queryOf(filter: GalleryFilter, before: number | null, limit = GALLERY_PAGE): GalleryQuery {
  const q: GalleryQuery = { states: STATES[filter.outcome], limit };
  if (filter.instanceId !== null) q.instance_id = filter.instanceId;
  const since = dayStart(filter.from);
  if (since !== undefined) q.since_ms = since;
  // The "to" day is included whole.
  const until = dayStart(filter.to, 1);
  if (until !== undefined) q.until_ms = until;
  if (filter.text.trim()) q.text = filter.text.trim();
  if (before !== null) q.before = before;
  return q;
}

export const useGalleryStore = defineStore("gallery", () => {
  const items = ref<GalleryItem[]>([]);
  const loading = ref(false);
  const loaded = ref(false);
  const more = ref(false);
  const failure = ref<Failure | null>(null);
  const filter = reactive<GalleryFilter>({ instanceId: null, outcome: "all", from: "", to: "", text: "" });
  const saving = ref<SavingStatus>({ waiting: 0, saving: 0, failed: 0, last_error: null });
  /** Whether the gallery is on screen: only then is it kept fresh. */
  const shown = ref(false);
  let generation = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const unsubscribes: Unsubscribe[] = [];

  /** Reads the first page (or as many files as are shown) with the filter as it stands. */
  async function load(): Promise<void> {
    const gen = ++generation;
    loading.value = true;
    const limit = Math.max(GALLERY_PAGE, items.value.length);
    const outcome = await attempt(() => getGallery(queryOf(filter, null, limit)));
    if (gen !== generation) return;
    loading.value = false;
    loaded.value = true;
    if (outcome.ok) {
      items.value = outcome.value;
      more.value = outcome.value.length === limit;
      failure.value = null;
    } else {
      failure.value = outcome.failure;
    }
  }

  /** A new filter: starts again from the newest file. */
  function applyFilter(): Promise<void> {
    items.value = [];
    return load();
  }

  async function loadMore(): Promise<void> {
    const last = items.value.at(-1);
    if (loading.value || !last) return;
    const gen = generation;
    loading.value = true;
    const outcome = await attempt(() => getGallery(queryOf(filter, last.id)));
    if (gen !== generation) return;
    loading.value = false;
    if (outcome.ok) {
      const known = new Set(items.value.map((i) => i.id));
      items.value.push(...outcome.value.filter((i) => !known.has(i.id)));
      more.value = outcome.value.length === GALLERY_PAGE;
      failure.value = null;
    } else {
      failure.value = outcome.failure;
    }
  }

  function scheduleRefetch(): void {
    if (!shown.value) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void load();
    }, GALLERY_REFETCH_MS);
  }

  async function start(): Promise<void> {
    if (unsubscribes.length) return;
    unsubscribes.push(
      await onEvent(EVENTS.savingStatus, (status) => {
        const saved = status.waiting < saving.value.waiting || status.failed !== saving.value.failed;
        saving.value = status;
        if (saved) scheduleRefetch();
      }),
      await onEvent(EVENTS.viewChanged, (batch) => {
        if (batch.jobs.some((p) => isTerminal(p.job.state))) scheduleRefetch();
      }),
    );
    const now = await attempt(savingStatus);
    if (now.ok && now.value) saving.value = now.value;
  }

  function stop(): void {
    for (const u of unsubscribes.splice(0)) u();
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function show(on: boolean): void {
    shown.value = on;
    if (on) void load();
  }

  function openFolder(item: GalleryItem): Promise<Outcome<void>> {
    return attempt(() => openJobFolder(item.instance_id, item.prompt_id));
  }

  const filtered = computed(
    () => filter.instanceId !== null || filter.outcome !== "all" || filter.from !== "" || filter.to !== "" || filter.text.trim() !== "",
  );

  return { items, loading, loaded, more, failure, filter, filtered, saving, shown, load, applyFilter, loadMore, start, stop, show, openFolder };
});
