// Queuing a workflow: the submit dialog's open state and draft (so a file dropped anywhere on the
// window can open it), and the submit itself with its failure kept by code.
import { defineStore } from "pinia";
import { ref } from "vue";
import type { InstanceId } from "../bindings/InstanceId";
import type { PreviewMethod } from "../bindings/PreviewMethod";
import type { SubmitResult } from "../bindings/SubmitResult";
import { submitWorkflow } from "../ipc";
import { attempt, type Failure } from "./failure";

export interface Draft {
  text: string;
  /** The file it came from, if any. */
  fileName: string | null;
  /** The instance to preselect. */
  instance: InstanceId | null;
}

export interface Submitted {
  instance: InstanceId;
  result: SubmitResult;
}

export const useSubmitStore = defineStore("submit", () => {
  const open = ref(false);
  const draft = ref<Draft>({ text: "", fileName: null, instance: null });
  const submitting = ref(false);
  const failure = ref<Failure | null>(null);
  /** The last accepted submit; its `node_errors` are outputs the server dropped. */
  const submitted = ref<Submitted | null>(null);
  /** The previews asked of the server; kept from one submit to the next while the app runs. */
  const preview = ref<PreviewMethod>("default");

  function openDialog(start: Partial<Draft> = {}): void {
    draft.value = { text: start.text ?? "", fileName: start.fileName ?? null, instance: start.instance ?? null };
    failure.value = null;
    submitted.value = null;
    open.value = true;
  }

  function closeDialog(): void {
    open.value = false;
    failure.value = null;
  }

  /** Queues the workflow text on an instance; the result or the failure stays for the dialog. */
  async function submit(instance: InstanceId, text: string): Promise<Submitted | null> {
    if (submitting.value) return null;
    submitting.value = true;
    failure.value = null;
    submitted.value = null;
    try {
      const outcome = await attempt(() => submitWorkflow(instance, text, preview.value));
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

  return { open, draft, submitting, failure, submitted, preview, openDialog, closeDialog, submit };
});
