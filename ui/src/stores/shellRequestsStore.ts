// What the desktop shell asks of the window, outside any command the UI made:
// - `show-requested`: a notification's "Show" was clicked (the shell has already raised the
//   window). The instance's detail opens and, with a prompt id, that job's row is highlighted.
//   An instance the UI does not know leaves it on the overview.
// - `cancel-confirmation-requested`: the tray's "Cancel current job" hit a job another client
//   queued. The UI asks first; only a yes cancels, through the instances store. A Cancel or
//   Remove clicked in the window on another client's job asks the same way (`askCancel`).
import { defineStore } from "pinia";
import { ref, watch } from "vue";
import type { CancelConfirmationRequested } from "../bindings/CancelConfirmationRequested";
import type { ShowRequested } from "../bindings/ShowRequested";
import { EVENTS, onEvent, type Unsubscribe } from "../ipc";
import { useInstancesStore } from "./instancesStore";
import { useViewStore } from "./viewStore";

export const useShellRequestsStore = defineStore("shellRequests", () => {
  const instances = useInstancesStore();
  const view = useViewStore();

  /** The other client's job the tray (or a click in the window) wants cancelled, until the
   * user answers. */
  const pendingCancel = ref<CancelConfirmationRequested | null>(null);

  let unsubscribers: Unsubscribe[] = [];
  /** Counts show requests, so only the latest one acts once the instances are loaded. */
  let showSeq = 0;

  /** Resolves once the first snapshot is in (a click can come while the app is still starting). */
  function whenLoaded(): Promise<void> {
    if (instances.loaded) return Promise.resolve();
    return new Promise((resolve) => {
      const stopWatching = watch(
        () => instances.loaded,
        (loaded) => {
          if (!loaded) return;
          stopWatching();
          resolve();
        },
      );
    });
  }

  async function show(request: ShowRequested): Promise<void> {
    const seq = ++showSeq;
    if (request.instance_id === null) return;
    await whenLoaded();
    if (seq !== showSeq) return;
    const target = instances.byId(request.instance_id);
    if (!target) {
      view.showOverview();
      return;
    }
    view.showDetail(target.id);
    if (request.prompt_id) view.highlightJob(target.id, request.prompt_id);
  }

  function askCancel(request: CancelConfirmationRequested): void {
    pendingCancel.value = request;
  }

  /** Yes: cancels the job the tray pointed at; the outcome shows as the instance's note. */
  async function confirmCancel(): Promise<void> {
    const request = pendingCancel.value;
    pendingCancel.value = null;
    if (request) await instances.cancel(request.instance_id, request.prompt_id);
  }

  /** No: the job is left alone. */
  function keepJob(): void {
    pendingCancel.value = null;
  }

  let starting: Promise<void> | null = null;

  function start(): Promise<void> {
    if (starting) return starting;
    const current: Promise<void> = Promise.all([
      onEvent(EVENTS.showRequested, (p) => void show(p)),
      onEvent(EVENTS.cancelConfirmationRequested, askCancel),
    ]).then((list) => {
      // Stopped while subscribing: let go at once.
      if (starting !== current) for (const unsubscribe of list) unsubscribe();
      else unsubscribers = list;
    });
    starting = current;
    return current;
  }

  function stop(): void {
    for (const unsubscribe of unsubscribers) unsubscribe();
    unsubscribers = [];
    starting = null;
  }

  return { pendingCancel, start, stop, show, askCancel, confirmCancel, keepJob };
});
