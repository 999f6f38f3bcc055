// The app's own preferences (not an instance's): start hidden in the tray, launch at login, notify
// only while the window is not focused. Each change is saved at once; what the shell answers is
// what the UI shows, and a refused change goes back to the saved value with its failure.
import { defineStore } from "pinia";
import { ref } from "vue";
import type { AppSettings } from "../bindings/AppSettings";
import { getAppSettings, setAppSettings } from "../ipc";
import { attempt, type Failure } from "./failure";

export const usePreferencesStore = defineStore("preferences", () => {
  /** As the shell last reported them; null until loaded. */
  const settings = ref<AppSettings | null>(null);
  const failure = ref<Failure | null>(null);
  /** A save is in flight: the checkboxes wait, so two saves never race. */
  const saving = ref(false);

  async function load(): Promise<void> {
    const outcome = await attempt(getAppSettings);
    if (outcome.ok) {
      settings.value = outcome.value;
      failure.value = null;
    } else {
      failure.value = outcome.failure;
    }
  }

  /** Saves one or more changed preferences on top of the loaded ones. */
  async function update(change: Partial<AppSettings>): Promise<boolean> {
    const saved = settings.value;
    if (!saved || saving.value) return false;
    const wanted: AppSettings = { ...saved, ...change };
    settings.value = wanted;
    saving.value = true;
    try {
      const outcome = await attempt(() => setAppSettings(wanted));
      if (outcome.ok) {
        settings.value = outcome.value;
        failure.value = null;
        return true;
      }
      settings.value = saved;
      failure.value = outcome.failure;
      return false;
    } finally {
      saving.value = false;
    }
  }

  return { settings, failure, saving, load, update };
});
