// Generated from src-tauri/shell/events.rs by the bindings test. Do not edit.
import type { InstanceStatusChanged } from "./InstanceStatusChanged";
import type { ServerInfoChanged } from "./ServerInfoChanged";
import type { QueueChanged } from "./QueueChanged";
import type { JobUpdated } from "./JobUpdated";
import type { JobsProgressed } from "./JobsProgressed";
import type { InstancesChanged } from "./InstancesChanged";
import type { StatsChanged } from "./StatsChanged";
import type { EventLogged } from "./EventLogged";
import type { ShowRequested } from "./ShowRequested";
import type { CancelConfirmationRequested } from "./CancelConfirmationRequested";

export const EVENTS = {
  instanceStatusChanged: "instance-status-changed",
  serverInfoChanged: "server-info-changed",
  queueChanged: "queue-changed",
  jobUpdated: "job-updated",
  jobsProgressed: "jobs-progressed",
  instancesChanged: "instances-changed",
  statsChanged: "stats-changed",
  eventLogged: "event-logged",
  showRequested: "show-requested",
  cancelConfirmationRequested: "cancel-confirmation-requested",
} as const;

export type EventName = (typeof EVENTS)[keyof typeof EVENTS];

export interface EventPayloads {
  "instance-status-changed": InstanceStatusChanged;
  "server-info-changed": ServerInfoChanged;
  "queue-changed": QueueChanged;
  "job-updated": JobUpdated;
  "jobs-progressed": JobsProgressed;
  "instances-changed": InstancesChanged;
  "stats-changed": StatsChanged;
  "event-logged": EventLogged;
  "show-requested": ShowRequested;
  "cancel-confirmation-requested": CancelConfirmationRequested;
}
