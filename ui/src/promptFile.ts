// What a picked or dropped file gives the submit dialog: a workflow saved as JSON, as it is, or
// the prompt ComfyUI embedded in an output it saved (PNG, WebP, FLAC, MP4), read by the shell.
import { MAX_PROMPT_FILE_BYTES } from "./bindings/defaults";
import { readPrompt } from "./ipc";

/** What the file pickers offer. */
export const PROMPT_FILE_TYPES = ".json,application/json,.png,image/png,.webp,image/webp,.flac,audio/flac,.mp4,video/mp4";

function isJson(file: File): boolean {
  return /\.json$/i.test(file.name) || file.type === "application/json";
}

/** The workflow text the file gives; an error says why there is none. */
export async function workflowText(file: File): Promise<string> {
  if (isJson(file)) return file.text();
  if (file.size > MAX_PROMPT_FILE_BYTES) {
    throw new Error(
      `${file.name} is larger than ${MAX_PROMPT_FILE_BYTES / 2 ** 20} MiB; queue it with \`comfy-monitor submit\`, which reads only a video's metadata`,
    );
  }
  return readPrompt(new Uint8Array(await file.arrayBuffer()));
}
