// A fake shell for unit tests and the dev-only mock: answers commands and delivers events through
// Tauri's own IPC mocks, so stores and components are exercised through the real `ipc/` code paths.
import { clearMocks, mockConvertFileSrc, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type { EventName, EventPayloads } from "../bindings/events";
import { EVENTS } from "../bindings/events";
import type { ViewChanged } from "../bindings/ViewChanged";

export type CommandHandler = (command: string, args: unknown) => unknown;

/** Answers every command with `handler`; media URLs look as they do on Linux (`media://localhost/`). */
export function mockShell(handler: CommandHandler): void {
  mockIPC((command, args) => handler(command, args), { shouldMockEvents: true });
  mockConvertFileSrc("linux");
}

/** Serves `media:` URLs from another base instead (the dev server has no `media:` scheme). */
export function mockMediaBase(base: string): void {
  const internals = (window as unknown as { __TAURI_INTERNALS__: Record<string, unknown> }).__TAURI_INTERNALS__;
  internals.convertFileSrc = (path: string, protocol = "asset") => `${base}${protocol}/${encodeURIComponent(path)}`;
}

export function emitFromShell<K extends EventName>(name: K, payload: EventPayloads[K]): Promise<void> {
  return emit(name, payload);
}

/** Sends changes of the picture as the shell does: in a `view-changed` batch (numbered 0, which
 * the shell never waits for, unless told otherwise). */
export function changeView(changes: Partial<ViewChanged>): Promise<void> {
  return emitFromShell(EVENTS.viewChanged, { batch: 0, statuses: [], servers: [], queues: [], stats: [], jobs: [], ...changes });
}

export function resetShell(): void {
  clearMocks();
}
