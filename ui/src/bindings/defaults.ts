// Generated from the Rust side's defaults and limits by the bindings test. Do not edit.
import type { NotificationPrefs } from "./NotificationPrefs";

export const DEFAULT_NOTIFICATION_PREFS: NotificationPrefs = {
  "job_done": true,
  "job_failed": true,
  "job_interrupted_by_other": false,
  "queue_drained": true,
  "disconnected": true,
  "auth_rejected": true,
  "other_clients_jobs": false,
  "sound_job_done": false,
  "sound_job_failed": false,
  "sound_disconnected": false
};

/** The largest file read whole for the prompt it holds. */
export const MAX_PROMPT_FILE_BYTES = 268435456;
