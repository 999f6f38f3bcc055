// The UI's only door to the desktop shell. Nothing outside this folder imports @tauri-apps/*.
export { IpcError, getSnapshot, refreshInstance } from "./commands";
export { EVENTS, onEvent, type Unsubscribe } from "./events";
