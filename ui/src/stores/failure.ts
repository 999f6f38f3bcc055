// How a failed command reaches components: a plain value with the shell's closed error code,
// so views branch on `code` and never parse message text, and never see an exception class.
import type { ErrorCode } from "../bindings/ErrorCode";
import type { NodeErrorView } from "../bindings/NodeErrorView";
import { IpcError } from "../ipc";

export interface Failure {
  code: ErrorCode;
  message: string;
  /** The refused nodes, for `rejected`. */
  nodeErrors: NodeErrorView[];
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; failure: Failure };

export function toFailure(error: unknown): Failure {
  if (error instanceof IpcError) {
    return { code: error.code, message: error.message, nodeErrors: error.nodeErrors };
  }
  return { code: "internal", message: error instanceof Error ? error.message : String(error), nodeErrors: [] };
}

/** Runs a command and returns its value or its failure; it never throws. */
export async function attempt<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, failure: toFailure(error) };
  }
}

const HEADLINES: Record<ErrorCode, string> = {
  unknown_instance: "No such instance",
  not_connected: "Not connected",
  unreachable: "Server unreachable",
  auth_failed: "Credentials refused",
  invalid_workflow: "Not an API-format workflow",
  ui_format_workflow: "This is an editor workflow, not the API format",
  rejected: "The server refused the workflow",
  invalid_input: "Check the form",
  not_found: "Not found",
  storage: "The app's database failed",
  secrets: "The keyring failed",
  io: "Could not write the file",
  internal: "Something went wrong",
};

/** A short headline for a failure, chosen by its code. */
export function failureHeadline(failure: Failure): string {
  return HEADLINES[failure.code];
}

/** One line for a status strip: "Not connected: connection refused". */
export function failureText(failure: Failure): string {
  return failure.message ? `${HEADLINES[failure.code]}: ${failure.message}` : HEADLINES[failure.code];
}
