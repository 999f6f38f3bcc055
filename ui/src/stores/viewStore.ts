// Which screen is showing: the overview, one instance's detail, and the settings dialog. Plain UI
// state, no IPC; kept in a store so a card, the submit dialog and the top bar can all steer it.
import { defineStore } from "pinia";
import { ref } from "vue";
import type { InstanceId } from "../bindings/InstanceId";
import type { PromptId } from "../bindings/PromptId";

export type Screen = { kind: "overview" } | { kind: "detail"; instanceId: InstanceId } | { kind: "gallery" };

export const useViewStore = defineStore("view", () => {
  const screen = ref<Screen>({ kind: "overview" });
  const settingsOpen = ref(false);
  /** The saved instance to edit when settings open, or null for the list. */
  const settingsEditId = ref<InstanceId | null>(null);
  /** An instance the overview should scroll to and focus, until its card has done so. */
  const focusRequest = ref<{ instanceId: InstanceId; nonce: number } | null>(null);
  /** A job the detail of `instanceId` should scroll to and highlight, once its row is there. */
  const highlightRequest = ref<{ instanceId: InstanceId; promptId: PromptId; atMs: number } | null>(null);

  function showOverview(): void {
    screen.value = { kind: "overview" };
  }

  function showDetail(instanceId: InstanceId): void {
    screen.value = { kind: "detail", instanceId };
  }

  function showGallery(): void {
    screen.value = { kind: "gallery" };
  }

  function openSettings(editId: InstanceId | null = null): void {
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
  function focusInstance(instanceId: InstanceId): void {
    showOverview();
    focusRequest.value = { instanceId, nonce: Date.now() };
  }

  /** Asks the detail of an instance to bring one job's row (queue or history) into view. */
  function highlightJob(instanceId: InstanceId, promptId: PromptId): void {
    highlightRequest.value = { instanceId, promptId, atMs: Date.now() };
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
    showGallery,
    openSettings,
    closeSettings,
    focusInstance,
    focusHandled,
    highlightJob,
    highlightHandled,
  };
});
