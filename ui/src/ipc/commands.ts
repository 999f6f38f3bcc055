// Typed wrappers over the shell's commands. Errors come back as `IpcError` with the shell's
// closed error code, so callers branch on `code`, never on message text.
import { invoke, type InvokeArgs } from "@tauri-apps/api/core";
import type { CommandError } from "../bindings/CommandError";
import type { ErrorCode } from "../bindings/ErrorCode";
import type { Snapshot } from "../bindings/Snapshot";

export class IpcError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "IpcError";
    this.code = code;
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
    if (isCommandError(error)) throw new IpcError(error.code, error.message);
    throw new IpcError("internal", error instanceof Error ? error.message : String(error));
  }
}

/** The current picture of every instance. */
export function getSnapshot(): Promise<Snapshot> {
  return call<Snapshot>("get_snapshot");
}

/** Asks an instance to re-read its queue now. */
export function refreshInstance(instance: string): Promise<void> {
  return call<void>("refresh_instance", { instance });
}
