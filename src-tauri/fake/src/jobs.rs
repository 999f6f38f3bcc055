//! The 0.26 jobs API: `GET /api/jobs`, `GET /api/jobs/{id}`, `POST /api/jobs/{id}/cancel` and
//! `POST /api/jobs/cancel`, a normalized view over the same queue and history.
//!
//! Parameter checks and their error texts, the light/full job objects and the sort (by creation
//! time, stable, newest first by default) follow the recorded 0.26.0 server. This module reads
//! and changes the state only through `State`'s queue operations.

use crate::json::J;
use crate::obj;
use crate::state::{is_canonical_uuid, HistoryEntry, QueueItem, Reply, State};

const STATUSES: [&str; 5] = ["pending", "in_progress", "completed", "failed", "cancelled"];
const MEDIA_KEYS: [&str; 5] = ["images", "video", "audio", "gifs", "3d"];

fn bad(message: impl Into<String>) -> Reply {
    Reply::Json(400, obj! { "error" => message.into() })
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn history_status(entry: &HistoryEntry) -> &'static str {
    match (entry.status_str, entry.last_message_type()) {
        ("success", _) => "completed",
        (_, Some("execution_interrupted")) => "cancelled",
        _ => "failed",
    }
}

fn workflow_id(item: &QueueItem) -> Option<String> {
    item.extra_data
        .get("extra_pnginfo")
        .and_then(|p| p.get("workflow"))
        .and_then(|w| w.get("id"))
        .and_then(J::as_str)
        .map(str::to_string)
}

fn outputs_count(outputs: &J) -> usize {
    outputs
        .as_object()
        .map(|nodes| {
            nodes
                .iter()
                .flat_map(|(_, out)| out.as_object().cloned().unwrap_or_default())
                .filter(|(key, _)| key != "animated")
                .map(|(_, items)| items.as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

fn preview_output(outputs: &J) -> Option<J> {
    let nodes = outputs.as_object()?;
    let media = || {
        nodes.iter().flat_map(|(node, out)| {
            out.as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|(key, _)| MEDIA_KEYS.contains(&key.as_str()))
                .flat_map(move |(key, items)| {
                    let node = node.clone();
                    items
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |item| (node.clone(), key.clone(), item))
                })
        })
    };
    let pick = media()
        .find(|(_, _, item)| item.get("type").and_then(J::as_str) == Some("output"))
        .or_else(|| media().next());
    if let Some((node, key, mut item)) = pick {
        item.set("nodeId", node);
        item.set("mediaType", key);
        return Some(item);
    }
    nodes.iter().find_map(|(node, out)| {
        let text = out.get("text")?.as_array()?.first()?.as_str()?;
        Some(obj! { "content" => text, "nodeId" => node.as_str(), "mediaType" => "text" })
    })
}

/// The light job object of lists (and of single queued/running jobs).
fn light(status: &str, item: &QueueItem, entry: Option<&HistoryEntry>) -> J {
    let mut job = obj! {
        "id" => item.prompt_id.as_str(),
        "status" => status,
        "priority" => item.number.clone(),
    };
    if let Some(t) = item.create_time() {
        job.set("create_time", t);
    }
    if let Some(entry) = entry {
        if let Some(t) = entry.message_timestamp("execution_start") {
            job.set("execution_start_time", t);
        }
        let end = entry
            .messages
            .iter()
            .rev()
            .find(|(k, _)| {
                matches!(
                    k.as_str(),
                    "execution_success" | "execution_error" | "execution_interrupted"
                )
            })
            .and_then(|(_, v)| v.get("timestamp"))
            .and_then(J::as_i64);
        if let Some(t) = end {
            job.set("execution_end_time", t);
        }
        if status == "failed" {
            if let Some((_, err)) = entry.messages.iter().find(|(k, _)| k == "execution_error") {
                job.set("execution_error", err.clone());
            }
        }
        job.set("outputs_count", outputs_count(&entry.outputs));
        if let Some(preview) = preview_output(&entry.outputs) {
            job.set("preview_output", preview);
        }
    } else {
        job.set("outputs_count", 0i64);
    }
    if let Some(id) = workflow_id(item) {
        job.set("workflow_id", id);
    }
    job
}

struct Listed<'a> {
    status: &'static str,
    item: &'a QueueItem,
    entry: Option<&'a HistoryEntry>,
}

impl Listed<'_> {
    fn duration(&self) -> i64 {
        self.entry
            .and_then(|e| {
                let start = e.message_timestamp("execution_start")?;
                let end = e.messages.last()?.1.get("timestamp")?.as_i64()?;
                Some(end - start)
            })
            .unwrap_or(0)
    }
}

fn all_jobs(s: &State) -> Vec<Listed<'_>> {
    let mut jobs = Vec::new();
    if let Some(running) = &s.running {
        jobs.push(Listed {
            status: "in_progress",
            item: &running.item,
            entry: None,
        });
    }
    for item in s.pending_heap_order() {
        jobs.push(Listed {
            status: "pending",
            item,
            entry: None,
        });
    }
    for entry in &s.history {
        jobs.push(Listed {
            status: history_status(entry),
            item: &entry.item,
            entry: Some(entry),
        });
    }
    jobs
}

/// `GET /api/jobs`.
pub fn list(s: &State, query: &[(String, String)]) -> Reply {
    let wanted: Option<Vec<String>> = match param(query, "status") {
        Some(raw) => {
            let values: Vec<String> = raw
                .split(',')
                .map(|v| v.trim().to_lowercase())
                .filter(|v| !v.is_empty())
                .collect();
            let invalid: Vec<&String> = values
                .iter()
                .filter(|v| !STATUSES.contains(&v.as_str()))
                .collect();
            if !invalid.is_empty() {
                let invalid: Vec<&str> = invalid.iter().map(|v| v.as_str()).collect();
                return bad(format!(
                    "Invalid status value(s): {}. Valid values: {}",
                    invalid.join(", "),
                    STATUSES.join(", ")
                ));
            }
            Some(values)
        }
        None => None,
    };
    let by_duration = match param(query, "sort_by").unwrap_or("created_at") {
        "created_at" => false,
        "execution_duration" => true,
        _ => return bad("sort_by must be 'created_at' or 'execution_duration'"),
    };
    let descending = match param(query, "sort_order")
        .unwrap_or("desc")
        .to_lowercase()
        .as_str()
    {
        "desc" => true,
        "asc" => false,
        _ => return bad("sort_order must be 'asc' or 'desc'"),
    };
    let limit = match param(query, "limit") {
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => return bad("limit must be a positive integer"),
            Err(_) => return bad("limit must be an integer"),
        },
        None => None,
    };
    let offset = match param(query, "offset") {
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) => n.max(0) as usize,
            Err(_) => return bad("offset must be an integer"),
        },
        None => 0,
    };
    let workflow = param(query, "workflow_id");

    let mut jobs: Vec<Listed<'_>> = all_jobs(s)
        .into_iter()
        .filter(|j| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|v| v == j.status))
        })
        .filter(|j| workflow.is_none_or(|w| workflow_id(j.item).as_deref() == Some(w)))
        .collect();
    let key = |j: &Listed<'_>| {
        if by_duration {
            j.duration()
        } else {
            j.item.create_time().unwrap_or(0)
        }
    };
    if descending {
        jobs.sort_by_key(|j| std::cmp::Reverse(key(j)));
    } else {
        jobs.sort_by_key(|j| key(j));
    }
    let total = jobs.len();
    let page: Vec<J> = jobs
        .iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|j| light(j.status, j.item, j.entry))
        .collect();
    let has_more = offset + page.len() < total;
    Reply::Json(
        200,
        obj! {
            "jobs" => J::Arr(page),
            "pagination" => obj! {
                "offset" => offset,
                "limit" => limit,
                "total" => total,
                "has_more" => has_more,
            },
        },
    )
}

/// `GET /api/jobs/{id}`.
pub fn one(s: &State, id: &str) -> Reply {
    let Some(job) = all_jobs(s).into_iter().find(|j| j.item.prompt_id == id) else {
        return Reply::Json(404, obj! { "error" => "Job not found" });
    };
    let mut out = light(job.status, job.item, job.entry);
    if let Some(entry) = job.entry {
        out.set("outputs", entry.outputs.clone());
        out.set("execution_status", entry.status_json());
        out.set(
            "workflow",
            obj! { "prompt" => entry.item.prompt.clone(), "extra_data" => entry.item.extra_data.clone() },
        );
    }
    Reply::Json(200, out)
}

/// `POST /api/jobs/{id}/cancel`: always 200.
pub fn cancel_one(s: &mut State, id: &str) -> Reply {
    let cancelled = s.cancel_job(id);
    Reply::Json(200, obj! { "cancelled" => cancelled })
}

/// `POST /api/jobs/cancel` with `{"job_ids": [...]}`.
pub fn cancel_many(s: &mut State, body: &[u8]) -> Reply {
    let Ok(json) = J::parse_slice(body) else {
        return bad("Request body must be valid JSON");
    };
    let Some(ids) = json.get("job_ids").and_then(J::as_array) else {
        return bad("job_ids must be a list");
    };
    let invalid: Vec<J> = ids
        .iter()
        .filter(|id| !id.as_str().is_some_and(is_canonical_uuid))
        .map(|id| J::from(id.python_str()))
        .collect();
    if !invalid.is_empty() {
        return Reply::Json(
            400,
            obj! { "error" => "job_ids contains invalid id(s)", "invalid_ids" => J::Arr(invalid) },
        );
    }
    let mut cancelled = false;
    for id in ids.iter().filter_map(J::as_str) {
        cancelled |= s.cancel_job(id);
    }
    Reply::Json(200, obj! { "cancelled" => cancelled })
}
