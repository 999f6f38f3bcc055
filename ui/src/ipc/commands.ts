// Typed wrappers over the shell's commands. Errors come back as `IpcError` with the shell's
// closed error code, so callers branch on `code`, never on message text. Arguments go out as the
// shell names them (`snake_case`, like every wire format of the app); instances are named by id.
import { convertFileSrc, invoke, type InvokeArgs } from "@tauri-apps/api/core";
import type { AppSettings } from "../bindings/AppSettings";
import type { CancelOutcome } from "../bindings/CancelOutcome";
import type { CommandError } from "../bindings/CommandError";
import type { ConnectionCheck } from "../bindings/ConnectionCheck";
import type { ErrorCode } from "../bindings/ErrorCode";
import type { GalleryItem } from "../bindings/GalleryItem";
import type { GalleryQuery } from "../bindings/GalleryQuery";
import type { HistoryEntry } from "../bindings/HistoryEntry";
import type { InstanceId } from "../bindings/InstanceId";
import type { InstanceInput } from "../bindings/InstanceInput";
import type { InstanceSettings } from "../bindings/InstanceSettings";
import type { LogEntry } from "../bindings/LogEntry";
import type { NodeErrorView } from "../bindings/NodeErrorView";
import type { OutputFile } from "../bindings/OutputFile";
import type { PreviewMethod } from "../bindings/PreviewMethod";
import type { PromptId } from "../bindings/PromptId";
import type { RenderingInUse } from "../bindings/RenderingInUse";
import type { SavedOutput } from "../bindings/SavedOutput";
import type { SavingStatus } from "../bindings/SavingStatus";
import type { Snapshot } from "../bindings/Snapshot";
import type { SubmitResult } from "../bindings/SubmitResult";
import type { WorkflowSummary } from "../bindings/WorkflowSummary";

export class IpcError extends Error {
  readonly code: ErrorCode;
  /** Per-node validation errors, for `rejected`. */
  readonly nodeErrors: NodeErrorView[];

  constructor(code: ErrorCode, message: string, nodeErrors: NodeErrorView[] = []) {
    super(message);
    this.name = "IpcError";
    this.code = code;
    this.nodeErrors = nodeErrors;
  }
}

function isCommandError(value: unknown): value is CommandError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as CommandError).code === "string" &&
    typeof (value as CommandError).message === "string"
  );
}

async function call<T>(command: string, args?: InvokeArgs): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    if (isCommandError(error)) {
      throw new IpcError(error.code, error.message, Array.isArray(error.node_errors) ? error.node_errors : []);
    }
    throw new IpcError("internal", error instanceof Error ? error.message : String(error));
  }
}

/** The current picture of every instance. */
export function getSnapshot(): Promise<Snapshot> {
  return call<Snapshot>("get_snapshot");
}

/** Tells the shell a batch of changes is on screen, so it may send the next one. */
export function batchShown(batch: number): Promise<void> {
  return call<void>("batch_shown", { batch });
}

/** Tells the shell whether the page is on screen: while it is not, nothing that only changes
 * what it paints is sent, and it is told to reload its picture when it is on screen again. */
export function viewVisibility(visible: boolean): Promise<void> {
  return call<void>("view_visibility", { visible });
}

/** Asks an instance to re-read its queue now. */
export function refreshInstance(instanceId: InstanceId): Promise<void> {
  return call<void>("refresh_instance", { instance_id: instanceId });
}

/** Every saved instance, for the settings screen. */
export function listInstances(): Promise<InstanceSettings[]> {
  return call<InstanceSettings[]>("list_instances");
}

/** Saves a new instance and starts monitoring it. */
export function addInstance(input: InstanceInput): Promise<InstanceSettings> {
  return call<InstanceSettings>("add_instance", { input });
}

/** Saves an edited instance; its monitoring restarts with the new settings. */
export function updateInstance(id: InstanceId, input: InstanceInput): Promise<InstanceSettings> {
  return call<InstanceSettings>("update_instance", { id, input });
}

/** Forgets an instance with its secrets and history. */
export function removeInstance(id: InstanceId): Promise<void> {
  return call<void>("remove_instance", { id });
}

/** Tries settings before saving: HTTP first, then the socket, with the same auth. `id` lends
 * the stored secrets of a saved instance for slots the form leaves empty. */
export function testConnection(input: InstanceInput, id: InstanceId | null): Promise<ConnectionCheck> {
  return call<ConnectionCheck>("test_connection", { input, id });
}

/** Queues an API-format workflow (the file's text) on an instance, with the previews it asks
 * for ("default": the server's own setting). */
export function submitWorkflow(
  instanceId: InstanceId,
  workflow: string,
  preview: PreviewMethod = "default",
  newSeed = false,
  fileName: string | null = null,
): Promise<SubmitResult> {
  return call<SubmitResult>("submit_workflow", { instance_id: instanceId, workflow, preview, new_seed: newSeed, file_name: fileName });
}

/** The prompt a file holds, as JSON text: the one ComfyUI embedded in an output it saved (PNG,
 * WebP, FLAC, MP4), or a workflow as JSON. The bytes go to the shell as they are. */
export function readPrompt(bytes: Uint8Array): Promise<string> {
  return call<string>("read_prompt", bytes);
}

/** Opens the instance's ComfyUI web page in the default browser. */
export function openInComfyui(instanceId: InstanceId): Promise<void> {
  return call<void>("open_in_comfyui", { instance_id: instanceId });
}

/** What one of this app's jobs was, read from the workflow the journal kept. */
export function getJobSummary(instanceId: InstanceId, promptId: PromptId): Promise<WorkflowSummary> {
  return call<WorkflowSummary>("get_job_summary", { instance_id: instanceId, prompt_id: promptId });
}

/** How a job is queued again: with every seed drawn anew or not, and how many copies. */
export interface Again {
  newSeed: boolean;
  count: number;
}

/** Queues again one of this app's jobs from the workflow kept in the journal; one result per
 * copy queued. */
export function resubmitJob(instanceId: InstanceId, promptId: PromptId, again: Again = { newSeed: false, count: 1 }): Promise<SubmitResult[]> {
  return call<SubmitResult[]>("resubmit_job", { instance_id: instanceId, prompt_id: promptId, new_seed: again.newSeed, count: again.count });
}

/** Cancels one job: removed when pending, interrupted when running. */
export function cancelJob(instanceId: InstanceId, promptId: PromptId): Promise<CancelOutcome> {
  return call<CancelOutcome>("cancel_job", { instance_id: instanceId, prompt_id: promptId });
}

/** Removes every pending job of an instance. */
export function clearQueue(instanceId: InstanceId): Promise<void> {
  return call<void>("clear_queue", { instance_id: instanceId });
}

/** Jobs from the journal, newest first. */
export function getHistory(instanceId: InstanceId, limit = 50, offset = 0): Promise<HistoryEntry[]> {
  return call<HistoryEntry[]>("get_history", { instance_id: instanceId, limit, offset });
}

/** The latest lines of an instance's event log, oldest first. */
export function getEventLog(instanceId: InstanceId, limit = 200): Promise<LogEntry[]> {
  return call<LogEntry[]>("get_event_log", { instance_id: instanceId, limit });
}

/** Downloads an output into the outputs folder; with the job's prompt id the journal records
 * where it went. */
export function saveOutput(instanceId: InstanceId, output: OutputFile, promptId: PromptId | null = null): Promise<SavedOutput> {
  return call<SavedOutput>("save_output", { instance_id: instanceId, output, prompt_id: promptId });
}

/** Opens a folder of saved outputs in the file manager. */
export function openFolder(folder: string): Promise<void> {
  return call<void>("open_folder", { folder });
}

/** Where saving outputs stands now. */
export function savingStatus(): Promise<SavingStatus> {
  return call<SavingStatus>("saving_status");
}

/** The folder suggested for an instance's outputs (`~/Pictures/ComfyUI/<name>`). */
export function defaultOutputFolder(name: string): Promise<string | null> {
  return call<string | null>("default_output_folder", { name });
}

/** A page of the gallery: every instance's outputs, newest first. */
export function getGallery(query: GalleryQuery): Promise<GalleryItem[]> {
  return call<GalleryItem[]>("gallery", { query });
}

/** Opens the folder a job's outputs were saved to. */
export function openJobFolder(instanceId: InstanceId, promptId: PromptId): Promise<void> {
  return call<void>("open_job_folder", { instance_id: instanceId, prompt_id: promptId });
}

/** Opens an instance's outputs folder. */
export function openInstanceFolder(instanceId: InstanceId): Promise<void> {
  return call<void>("open_instance_folder", { instance_id: instanceId });
}

/** The app's own preferences: start hidden, launch at login, notify only when unfocused, rendering. */
export function getAppSettings(): Promise<AppSettings> {
  return call<AppSettings>("get_app_settings");
}

/** Saves the app's preferences and returns them as the shell now holds them. */
export function setAppSettings(settings: AppSettings): Promise<AppSettings> {
  return call<AppSettings>("set_app_settings", { settings });
}

/** How this launch draws the window, and what decided it. */
export function getRendering(): Promise<RenderingInUse> {
  return call<RenderingInUse>("get_rendering");
}

/** Quits and starts the app again; monitoring resumes as after any start. */
export function restartApp(): Promise<void> {
  return call<void>("restart_app");
}

// Images come from the app's own `media:` scheme (see src-tauri/shell/media.rs); the webview
// never talks to ComfyUI.
function mediaBase(): string {
  // `media://localhost/` on Linux and macOS, `http://media.localhost/` on Windows.
  return convertFileSrc("", "media");
}

/** The latest preview frame of an instance; `seq` changes the URL so the image reloads. */
export function previewUrl(instanceId: InstanceId, seq: number): string {
  return `${mediaBase()}preview/${instanceId}?seq=${seq}`;
}

/** An output file of an instance, full size or as a small thumbnail. */
export function outputUrl(instanceId: InstanceId, output: OutputFile, thumb = false): string {
  const q = new URLSearchParams({ filename: output.filename, subfolder: output.subfolder, type: output.type });
  if (thumb) q.set("thumb", "1");
  return `${mediaBase()}output/${instanceId}?${q.toString()}`;
}
