// Which screen is showing: the overview, one instance's detail, and the settings dialog. Plain UI
// state, no IPC; kept in a store so a card, the submit dialog and the top bar can all steer it.
import { defineStore } from "pinia";
import { ref } from "vue";

export type Screen = { kind: "overview" } | { kind: "detail"; instanceId: number };

export const useViewStore = defineStore("view", () => {
  const screen = ref<Screen>({ kind: "overview" });
  const settingsOpen = ref(false);
  /** The saved instance to edit when settings open, or null for the list. */
  const settingsEditId = ref<number | null>(null);
  /** An instance the overview should scroll to and focus, until its card has done so. */
  const focusRequest = ref<{ name: string; nonce: number } | null>(null);
  /** A job the detail of `instance` should scroll to and highlight, once its row is there. */
  const highlightRequest = ref<{ instance: string; promptId: string; atMs: number } | null>(null);

  function showOverview(): void {
    screen.value = { kind: "overview" };
  }

  function showDetail(instanceId: number): void {
    screen.value = { kind: "detail", instanceId };
  }

  function openSettings(editId: number | null = null): void {
    settingsEditId.value = editId;
    settingsOpen.value = true;
  }

  function closeSettings(): void {
    settingsOpen.value = false;
    settingsEditId.value = null;
  }

  /** The card took the request: it must not fire again when the overview is next shown. */
  function focusHandled(): void {
    focusRequest.value = null;
  }

  /** Goes back to the overview and brings an instance's card into view. */
  function focusInstance(name: string): void {
    showOverview();
    focusRequest.value = { name, nonce: Date.now() };
  }

  /** Asks the detail of an instance to bring one job's row (queue or history) into view. */
  function highlightJob(instance: string, promptId: string): void {
    highlightRequest.value = { instance, promptId, atMs: Date.now() };
  }

  /** The detail found the row (or gave up): the request must not fire again. */
  function highlightHandled(): void {
    highlightRequest.value = null;
  }

  return {
    screen,
    settingsOpen,
    settingsEditId,
    focusRequest,
    highlightRequest,
    showOverview,
    showDetail,
    openSettings,
    closeSettings,
    focusInstance,
    focusHandled,
    highlightJob,
    highlightHandled,
  };
});
