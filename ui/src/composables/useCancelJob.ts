// Cancel (or Remove) from the window: this app's jobs go at once, in one click; a job another
// client queued is asked about first, in the dialog the tray's cancel uses, because whoever
// queued it loses the run.
import type { InstanceId } from "../bindings/InstanceId";
import type { JobOrigin } from "../bindings/JobOrigin";
import type { PromptId } from "../bindings/PromptId";
import { useInstancesStore } from "../stores/instancesStore";
import { useShellRequestsStore } from "../stores/shellRequestsStore";

export function useCancelJob(): (instanceId: InstanceId, job: { prompt_id: PromptId; origin: JobOrigin }) => void {
  const instances = useInstancesStore();
  const requests = useShellRequestsStore();
  return (instanceId, job) => {
    if (job.origin === "self") void instances.cancel(instanceId, job.prompt_id);
    else requests.askCancel({ instance_id: instanceId, prompt_id: job.prompt_id });
  };
}
