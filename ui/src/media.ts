// Image URLs for views. They point at the app's own `media:` scheme (the shell fetches from
// ComfyUI with the instance's credentials); building one is pure, no command is invoked.
import type { InstanceId } from "./bindings/InstanceId";
import type { OutputFile } from "./bindings/OutputFile";
import { outputUrl, previewUrl } from "./ipc";

export function previewSrc(instanceId: InstanceId, seq: number): string {
  return previewUrl(instanceId, seq);
}

export function outputSrc(instanceId: InstanceId, output: OutputFile, thumb = false): string {
  return outputUrl(instanceId, output, thumb);
}

const IMAGE_EXTENSIONS = new Set(["png", "jpg", "jpeg", "webp", "gif", "bmp", "avif"]);

/** Whether an output can be shown as an image (videos, audio and models cannot). */
export function isImage(output: OutputFile): boolean {
  const ext = output.filename.toLowerCase().split(".").pop() ?? "";
  return IMAGE_EXTENSIONS.has(ext);
}

/** "PNG", "MP4": a file's kind for a tile that has no thumbnail. */
export function extensionOf(output: OutputFile): string {
  const parts = output.filename.split(".");
  return parts.length > 1 ? (parts.pop() ?? "").toUpperCase() : "FILE";
}
