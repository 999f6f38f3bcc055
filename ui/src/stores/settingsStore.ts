// The saved instances as the settings screen edits them. Secrets only go out: the list says which
// secret slots have a value stored (`secrets_set`), never the values.
import { defineStore } from "pinia";
import { ref } from "vue";
import type { ConnectionCheck } from "../bindings/ConnectionCheck";
import { DEFAULT_NOTIFICATION_PREFS } from "../bindings/defaults";
import type { InstanceId } from "../bindings/InstanceId";
import type { InstanceInput } from "../bindings/InstanceInput";
import type { InstanceSettings } from "../bindings/InstanceSettings";
import type { NotificationPrefs } from "../bindings/NotificationPrefs";
import { addInstance, listInstances, removeInstance, testConnection, updateInstance } from "../ipc";
import { attempt, type Failure, type Outcome } from "./failure";

/** The preview rate a new instance starts with, and the highest the shell accepts. */
export const DEFAULT_PREVIEW_FPS = 15;
export const MAX_PREVIEW_FPS = 120;

/** What a new instance notifies about: a copy of the shell's own defaults (generated from the
 * Rust side, so the two cannot drift apart). */
export function defaultNotifications(): NotificationPrefs {
  return { ...DEFAULT_NOTIFICATION_PREFS };
}

/** The secret slot that holds a custom header's value. */
export function headerSlot(name: string): string {
  return `header:${name.trim().toLowerCase()}`;
}

export const useSettingsStore = defineStore("settings", () => {
  const instances = ref<InstanceSettings[]>([]);
  const loaded = ref(false);
  const failure = ref<Failure | null>(null);

  async function load(): Promise<void> {
    const outcome = await attempt(listInstances);
    if (outcome.ok) {
      instances.value = outcome.value;
      loaded.value = true;
      failure.value = null;
    } else {
      failure.value = outcome.failure;
    }
  }

  function replace(saved: InstanceSettings): void {
    const index = instances.value.findIndex((i) => i.id === saved.id);
    if (index >= 0) instances.value[index] = saved;
    else instances.value.push(saved);
  }

  async function add(input: InstanceInput): Promise<Outcome<InstanceSettings>> {
    const outcome = await attempt(() => addInstance(input));
    if (outcome.ok) replace(outcome.value);
    return outcome;
  }

  async function update(id: InstanceId, input: InstanceInput): Promise<Outcome<InstanceSettings>> {
    const outcome = await attempt(() => updateInstance(id, input));
    if (outcome.ok) replace(outcome.value);
    return outcome;
  }

  async function remove(id: InstanceId): Promise<Outcome<void>> {
    const outcome = await attempt(() => removeInstance(id));
    if (outcome.ok) instances.value = instances.value.filter((i) => i.id !== id);
    return outcome;
  }

  /** Tries the form's settings: `id` lends a saved instance's stored secrets for empty slots. */
  function test(input: InstanceInput, id: InstanceId | null): Promise<Outcome<ConnectionCheck>> {
    return attempt(() => testConnection(input, id));
  }

  return { instances, loaded, failure, load, add, update, remove, test };
});
