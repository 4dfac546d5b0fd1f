//! Convergence progress after `service create/update/scale/rollback` (docker's
//! cli/command/service/progress): prints changes until the service converges or fails.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{call, unexpected};
use crate::api::{ApiError, ApiReply, ApiRequest};

const POLL: Duration = Duration::from_millis(200);

fn bar(step: u32) -> String {
    let k = (step * 100 / 9 / 2).min(50) as usize;
    let mut b = "=".repeat(k.saturating_sub(1));
    if k > 0 {
        b.push('>');
    }
    format!("[{:<50}]", b)
}

fn step(state: &str) -> u32 {
    match state {
        "new" => 1,
        "allocated" => 2,
        "pending" => 3,
        "assigned" => 4,
        "accepted" => 5,
        "preparing" => 6,
        "ready" => 7,
        "starting" => 8,
        _ => 9,
    }
}

/// Wait until the service `id` converges; print docker's progress lines. Errors (exit 1)
/// when an update pauses or rolls back.
pub async fn wait(host: &str, id: &str, rollback: bool) -> Result<(), ApiError> {
    let tty = std::io::stdout().is_terminal();
    let mut printed: BTreeMap<String, String> = BTreeMap::new();
    let mut last_overall = String::new();
    let mut stable_since: Option<Instant> = None;
    let mut announced_rollback = false;
    let mut out = std::io::stdout();
    loop {
        let svc = match call(
            host,
            ApiRequest::ServiceInspect {
                references: vec![id.to_string()],
            },
        )
        .await?
        {
            ApiReply::Objects { mut objects } => objects
                .pop()
                .unwrap_or(Err(String::new()))
                .map_err(ApiError::daemon)?,
            other => return Err(unexpected(other)),
        };
        let (tasks, _names) = match call(
            host,
            ApiRequest::TaskList {
                services: vec![id.to_string()],
                nodes: vec![],
                stack: None,
            },
        )
        .await?
        {
            ApiReply::Tasks { tasks, node_names } => (tasks, node_names),
            other => return Err(unexpected(other)),
        };
        let sid = svc["ID"].as_str().unwrap_or(id).to_string();
        let template = &svc["Spec"]["TaskTemplate"];
        let status = svc["UpdateStatus"]["State"].as_str().unwrap_or("");
        let message = svc["UpdateStatus"]["Message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if status == "paused" {
            return Err(ApiError::plain(format!("service update paused: {message}")));
        }
        if status == "rollback_paused" {
            return Err(ApiError::plain(format!(
                "service rollback paused: {message}"
            )));
        }
        if status == "rollback_started" && !rollback && !announced_rollback {
            announced_rollback = true;
            let _ = writeln!(out, "rollback: {message}");
        }
        let same_spec = |t: &Value| {
            let mut a = t["Spec"].clone();
            let mut b = template.clone();
            for v in [&mut a, &mut b] {
                if let Some(o) = v.as_object_mut() {
                    o.remove("Runtime");
                    o.remove("ForceUpdate");
                    o.remove("RestartPolicy");
                    o.remove("Resources");
                    if let Some(cs) = o.get_mut("ContainerSpec").and_then(|c| c.as_object_mut()) {
                        cs.remove("StopGracePeriod");
                    }
                }
            }
            a == b
        };
        let active: Vec<&Value> = tasks
            .iter()
            .filter(|t| {
                matches!(
                    t["DesiredState"].as_str(),
                    Some("running") | Some("ready") | Some("accepted")
                )
            })
            .collect();
        let global = svc["Spec"]["Mode"].get("Global").is_some();
        let desired = if global {
            active.len() as u64
        } else {
            svc["Spec"]["Mode"]["Replicated"]["Replicas"]
                .as_u64()
                .unwrap_or(0)
        };
        // Per slot (or node), the newest active task.
        let mut slots: BTreeMap<String, &Value> = BTreeMap::new();
        for t in &active {
            let key = match t["Slot"].as_u64() {
                Some(s) => format!("{s}"),
                None => shoal_format::truncate_id(t["NodeID"].as_str().unwrap_or("")),
            };
            let newer = slots
                .get(&key)
                .is_none_or(|cur| t["CreatedAt"].as_str() > cur["CreatedAt"].as_str());
            if newer {
                slots.insert(key, t);
            }
        }
        let running = slots
            .values()
            .filter(|t| {
                t["Status"]["State"].as_str() == Some("running")
                    && same_spec(t)
                    && t.get("Health")
                        .and_then(|h| h.as_str())
                        .is_none_or(|h| h == "healthy")
            })
            .count() as u64;
        let overall = if status == "rollback_started" {
            format!("overall progress: rolling back update: {running} out of {desired} tasks")
        } else {
            format!("overall progress: {running} out of {desired} tasks")
        };
        if overall != last_overall {
            let _ = writeln!(out, "{overall}");
            last_overall = overall;
        }
        if desired <= 20 || global {
            for (key, t) in &slots {
                let label = if global {
                    key.clone()
                } else {
                    format!("{key}/{desired}")
                };
                let err = t["Status"]["Err"].as_str().unwrap_or("");
                let line = if !err.is_empty() {
                    format!(
                        "{label}: {}",
                        shoal_format::ellipsis(&err.replace('\n', " "), 75)
                    )
                } else {
                    let st = t["Status"]["State"].as_str().unwrap_or("");
                    if tty {
                        format!("{label}: {:<9} {} ", st, bar(step(st)))
                    } else {
                        format!("{label}: {st}")
                    }
                };
                if printed.get(key) != Some(&line) {
                    let _ = writeln!(out, "{line}");
                    printed.insert(key.clone(), line);
                }
            }
        }
        let converged = running == desired
            && !matches!(status, "updating" | "rollback_started")
            && active.len() as u64 == slots.len() as u64;
        if converged {
            let monitor = svc["Spec"]["UpdateConfig"]["Monitor"]
                .as_i64()
                .unwrap_or(5_000_000_000)
                .max(0) as u64;
            let monitor = Duration::from_nanos(monitor);
            let since = *stable_since.get_or_insert_with(Instant::now);
            let left = monitor.saturating_sub(since.elapsed());
            if left.is_zero() {
                if status == "rollback_completed" && !rollback && announced_rollback {
                    let _ = writeln!(out, "verify: Service {sid} converged");
                    return Err(ApiError::plain(format!("service rolled back: {message}")));
                }
                let _ = writeln!(out, "verify: Service {sid} converged");
                return Ok(());
            }
            let line = format!(
                "verify: Waiting {} seconds to verify that tasks are stable...",
                left.as_secs() + 1
            );
            if printed.get("verify") != Some(&line) {
                let _ = writeln!(out, "{line}");
                printed.insert("verify".into(), line);
            }
        } else if stable_since.take().is_some() {
            let _ = writeln!(out, "verify: Detected task failure");
        }
        let _ = out.flush();
        tokio::time::sleep(POLL).await;
    }
}
