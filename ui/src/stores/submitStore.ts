// Queuing a workflow: the submit dialog's open state and draft (so a file dropped anywhere on the
// window can open it), and the submit itself with its failure kept by code.
import { defineStore } from "pinia";
import { ref } from "vue";
import type { InstanceId } from "../bindings/InstanceId";
import type { PreviewMethod } from "../bindings/PreviewMethod";
import type { SubmitResult } from "../bindings/SubmitResult";
import { submitWorkflow } from "../ipc";
import { workflowText } from "../promptFile";
import { attempt, type Failure } from "./failure";

export interface Draft {
  text: string;
  /** The file it came from, if any. */
  fileName: string | null;
  /** The instance to preselect. */
  instance: InstanceId | null;
  /** Why the file picked or dropped gave no workflow. */
  readFailure: string | null;
}

export interface Submitted {
  instance: InstanceId;
  result: SubmitResult;
}

export const useSubmitStore = defineStore("submit", () => {
  const open = ref(false);
  const draft = ref<Draft>({ text: "", fileName: null, instance: null, readFailure: null });
  const submitting = ref(false);
  const failure = ref<Failure | null>(null);
  /** The last accepted submit; its `node_errors` are outputs the server dropped. */
  const submitted = ref<Submitted | null>(null);
  /** The previews asked of the server; kept from one submit to the next while the app runs. */
  const preview = ref<PreviewMethod>("default");
  /** Whether every seed input is drawn anew (the same seeds are answered from ComfyUI's cache). */
  const newSeed = ref(false);

  function openDialog(start: Partial<Draft> = {}): void {
    draft.value = {
      text: start.text ?? "",
      fileName: start.fileName ?? null,
      instance: start.instance ?? null,
      readFailure: start.readFailure ?? null,
    };
    failure.value = null;
    submitted.value = null;
    open.value = true;
  }

  /** Opens the dialog on a picked or dropped file: the workflow it gives (a saved output gives
   * the prompt ComfyUI embedded in it), or why it gives none. */
  async function openWithFile(file: File, instance: InstanceId | null = null): Promise<void> {
    try {
      openDialog({ text: await workflowText(file), fileName: file.name, instance });
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      openDialog({ instance, readFailure: `${file.name}: ${why.charAt(0).toUpperCase()}${why.slice(1)}` });
    }
  }

  function closeDialog(): void {
    open.value = false;
    failure.value = null;
  }

  /** Queues the workflow text on an instance (`fileName`, the file it came from, names the job in
   * notifications); the result or the failure stays for the dialog. */
  async function submit(instance: InstanceId, text: string, fileName: string | null = null): Promise<Submitted | null> {
    if (submitting.value) return null;
    submitting.value = true;
    failure.value = null;
    submitted.value = null;
    try {
      const outcome = await attempt(() => submitWorkflow(instance, text, preview.value, newSeed.value, fileName));
      if (!outcome.ok) {
        failure.value = outcome.failure;
        return null;
      }
      submitted.value = { instance, result: outcome.value };
      return submitted.value;
    } finally {
      submitting.value = false;
    }
  }

  return { open, draft, submitting, failure, submitted, preview, newSeed, openDialog, openWithFile, closeDialog, submit };
});
