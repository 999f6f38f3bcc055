// The UI's only door to the desktop shell. Nothing outside this folder imports @tauri-apps/*.
export {
  IpcError,
  addInstance,
  cancelJob,
  clearQueue,
  getAppSettings,
  getEventLog,
  getHistory,
  getSnapshot,
  listInstances,
  openFolder,
  outputUrl,
  previewUrl,
  refreshInstance,
  removeInstance,
  resubmitJob,
  saveOutput,
  setAppSettings,
  submitWorkflow,
  testConnection,
  updateInstance,
} from "./commands";
export { EVENTS, onEvent, type Unsubscribe } from "./events";
