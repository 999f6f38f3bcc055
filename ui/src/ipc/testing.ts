// A fake shell for unit tests: answers commands and delivers events through Tauri's own IPC
// mocks, so stores and components are tested through the real `ipc/` code paths.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type { EventName, EventPayloads } from "../bindings/events";

export type CommandHandler = (command: string, args: unknown) => unknown;

export function mockShell(handler: CommandHandler): void {
  mockIPC((command, args) => handler(command, args), { shouldMockEvents: true });
}

export function emitFromShell<K extends EventName>(name: K, payload: EventPayloads[K]): Promise<void> {
  return emit(name, payload);
}

export function resetShell(): void {
  clearMocks();
}
