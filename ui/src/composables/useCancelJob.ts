// Cancel (or Remove) from the window: this app's jobs go at once, in one click; a job another
// client queued is asked about first, in the dialog the tray's cancel uses, because whoever
// queued it loses the run.
import type { JobOriginView } from "../bindings/JobOriginView";
import { useInstancesStore } from "../stores/instancesStore";
import { useShellRequestsStore } from "../stores/shellRequestsStore";

export function useCancelJob(): (instance: string, job: { promptId: string; origin: JobOriginView }) => void {
  const instances = useInstancesStore();
  const requests = useShellRequestsStore();
  return (instance, job) => {
    if (job.origin === "self") void instances.cancel(instance, job.promptId);
    else requests.askCancel({ instance, promptId: job.promptId });
  };
}
