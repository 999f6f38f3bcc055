// Subscriptions to the shell's events. Names and payload types are generated from the Rust side
// (bindings/events.ts), so a renamed event fails to compile here instead of going silent.
import { listen } from "@tauri-apps/api/event";
import { EVENTS, type EventName, type EventPayloads } from "../bindings/events";

export { EVENTS };
export type { EventName, EventPayloads };

export type Unsubscribe = () => void;

export async function onEvent<K extends EventName>(
  name: K,
  handler: (payload: EventPayloads[K]) => void,
): Promise<Unsubscribe> {
  return listen<EventPayloads[K]>(name, (event) => handler(event.payload));
}
