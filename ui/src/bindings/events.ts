// Generated from src-tauri/shell/events.rs by the bindings test. Do not edit.
import type { ViewChanged } from "./ViewChanged";
import type { InstancesChanged } from "./InstancesChanged";
import type { EventLogged } from "./EventLogged";
import type { ShowRequested } from "./ShowRequested";
import type { CancelConfirmationRequested } from "./CancelConfirmationRequested";
import type { SavingStatus } from "./SavingStatus";

export const EVENTS = {
  viewChanged: "view-changed",
  instancesChanged: "instances-changed",
  eventLogged: "event-logged",
  showRequested: "show-requested",
  cancelConfirmationRequested: "cancel-confirmation-requested",
  savingStatus: "saving-changed",
} as const;

export type EventName = (typeof EVENTS)[keyof typeof EVENTS];

export interface EventPayloads {
  "view-changed": ViewChanged;
  "instances-changed": InstancesChanged;
  "event-logged": EventLogged;
  "show-requested": ShowRequested;
  "cancel-confirmation-requested": CancelConfirmationRequested;
  "saving-changed": SavingStatus;
}
