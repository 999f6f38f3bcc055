// The app's own preferences (not an instance's): start hidden in the tray, launch at login, notify
// only while the window is not focused, how the window is drawn. Each change is saved at once;
// what the shell answers is what the UI shows, and a refused change goes back to the saved value
// with its failure. The rendering this launch started with is read beside them: a changed mode
// holds from the next start.
import { defineStore } from "pinia";
import { ref } from "vue";
import type { AppSettings } from "../bindings/AppSettings";
import type { RenderingInUse } from "../bindings/RenderingInUse";
import { getAppSettings, getRendering, restartApp, setAppSettings } from "../ipc";
import { attempt, type Failure } from "./failure";

export const usePreferencesStore = defineStore("preferences", () => {
  /** As the shell last reported them; null until loaded. */
  const settings = ref<AppSettings | null>(null);
  /** How this launch draws the window; null until loaded. */
  const rendering = ref<RenderingInUse | null>(null);
  const failure = ref<Failure | null>(null);
  /** A save is in flight: the checkboxes wait, so two saves never race. */
  const saving = ref(false);

  async function load(): Promise<void> {
    const [outcome, inUse] = await Promise.all([attempt(getAppSettings), attempt(getRendering)]);
    if (inUse.ok) rendering.value = inUse.value;
    if (outcome.ok) {
      settings.value = outcome.value;
      failure.value = inUse.ok ? null : inUse.failure;
    } else {
      failure.value = outcome.failure;
    }
  }

  /** Starts the app again, so a changed rendering mode takes hold. */
  async function restart(): Promise<void> {
    const outcome = await attempt(restartApp);
    if (!outcome.ok) failure.value = outcome.failure;
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

  return { settings, rendering, failure, saving, load, update, restart };
});
