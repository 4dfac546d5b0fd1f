//! Convergence progress after `service create/update/scale/rollback` (docker's
//! cli/command/service/progress, drawn as moby's jsonmessage draws it): polls every 200 ms
//! until the service converges, pauses or is interrupted.
//!
//! On a terminal every line (`overall progress`, one per slot or node, `verify`) is
//! redrawn in place; without one, bar lines are dropped and every other update prints on
//! its own line, as docker's do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{call, unexpected};
use crate::api::{ApiError, ApiReply, ApiRequest};

const POLL: Duration = Duration::from_millis(200);
const MAX_PROGRESS: i64 = 9;
const MAX_PROGRESS_BARS: u64 = 20;
/// The longest state name a bar line shows (`allocated`, `preparing`).
const LONGEST_STATE: usize = 9;

/// docker's `numberedStates`; 0 for the states progress ignores.
fn numbered(state: &str) -> i64 {
    match state {
        "new" => 1,
        "allocated" => 2,
        "pending" => 3,
        "assigned" => 4,
        "accepted" => 5,
        "preparing" => 6,
        "ready" => 7,
        "starting" => 8,
        "running" => 9,
        "complete" => 10,
        "shutdown" => 11,
        "failed" => 12,
        "rejected" => 13,
        _ => 0,
    }
}

fn terminal(state: &str) -> bool {
    numbered(state) > numbered("running")
}

/// jsonmessage's progress bar: `[` + `=`×p + `>` + spaces to 50 + `] `, p = percent/2; only
/// on a terminal wider than 110 columns.
fn bar(current: i64, total: i64, width: u16) -> String {
    if total <= 0 || width <= 110 {
        return String::new();
    }
    let p = (((current as f64 / total as f64) * 100.0) as i64 / 2).clamp(0, 50) as usize;
    format!("[{}>{}] ", "=".repeat(p), " ".repeat(50 - p))
}

/// moby's `RenderTUIProgress` with units: nothing before any progress, the count alone
/// without a total, else the bar (on a terminal wider than 110 columns) and
/// `current/total units` (`current units` past the total).
fn counts(current: i64, total: i64, units: &str, width: u16) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{current} {units}");
    }
    let numbers = if current > total {
        format!("{current} {units}")
    } else {
        format!("{current}/{total} {units}")
    };
    format!("{}{numbers}", bar(current, total, width))
}

/// moby's jsonmessage display of a progress stream: lines with an ID are kept in place on a
/// terminal (erase, `\r`, cursor up and down); without a terminal, bars are dropped and
/// everything else prints on its own line.
pub struct Screen<W: Write> {
    out: W,
    tty: bool,
    width: u16,
    ids: HashMap<String, usize>,
}

impl Screen<Box<dyn Write>> {
    /// The CLI's stdout as docker's progress writes it: kept in place on a terminal (its
    /// width), one line per update on a pipe, nothing at all when `quiet`.
    pub fn stdout(quiet: bool) -> Self {
        let stdout = std::io::stdout();
        let tty = !quiet && stdout.is_terminal();
        let out: Box<dyn Write> = if quiet {
            Box::new(std::io::sink())
        } else {
            Box::new(stdout)
        };
        let width = if tty { super::terminal_width() } else { 200 };
        Screen::new(out, tty, width)
    }
}

impl<W: Write> Screen<W> {
    pub fn new(out: W, tty: bool, width: u16) -> Self {
        Screen {
            out,
            tty,
            width,
            ids: HashMap::new(),
        }
    }

    /// `progress.Progress{ID, Action, Current, Total}` (docker's `WriteProgress`), with
    /// `HideCounts`: the bar alone.
    fn progress(&mut self, id: &str, action: &str, current: i64, total: i64) {
        self.progress_units(id, action, current, total, None);
    }

    /// `progress.Progress{ID, Action, Current, Total, Units}`: the bar, then (with units)
    /// `current/total units`, as moby's `RenderTUIProgress` draws it.
    pub(crate) fn progress_units(
        &mut self,
        id: &str,
        action: &str,
        current: i64,
        total: i64,
        units: Option<&str>,
    ) {
        let mut diff = 0;
        if !id.is_empty() {
            let line = match self.ids.get(id) {
                Some(&l) => l,
                None => {
                    let l = self.ids.len();
                    self.ids.insert(id.to_string(), l);
                    if self.tty {
                        let _ = self.out.write_all(b"\n");
                    }
                    l
                }
            };
            diff = self.ids.len() - line;
            if self.tty && diff > 0 {
                let _ = write!(self.out, "\x1b[{diff}A");
            }
        }
        if self.tty {
            let _ = self.out.write_all(b"\x1b[2K\r");
        } else if current > 0 || total > 0 {
            return;
        }
        if !id.is_empty() {
            let _ = write!(self.out, "{id}: ");
        }
        if self.tty {
            let render = match units {
                None => bar(current, total, self.width),
                Some(units) => counts(current, total, units, self.width),
            };
            let _ = write!(self.out, "{action} {render}\r");
            if diff > 0 {
                let _ = write!(self.out, "\x1b[{diff}B");
            }
        } else {
            let _ = writeln!(self.out, "{action}");
        }
    }

    /// `progress.Message`: a plain status line, which also ends the in-place history.
    pub(crate) fn message(&mut self, id: &str, message: &str) {
        self.ids.clear();
        if !id.is_empty() {
            let _ = write!(self.out, "{id}: ");
        }
        let _ = writeln!(self.out, "{message}");
    }

    pub(crate) fn flush(&mut self) {
        let _ = self.out.flush();
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

/// A task's state as docker's progress sees it: a running task whose healthcheck has not
/// passed yet is still `starting` (docker reports it running only once healthy).
fn task_state(t: &Value) -> &str {
    let st = s(t, &["Status", "State"]);
    match t.get("Health").and_then(Value::as_str) {
        Some(h) if st == "running" && h != "healthy" => "starting",
        _ => st,
    }
}

fn truncate_error(err: &str) -> String {
    shoal_format::ellipsis(&err.replace('\n', " "), 75)
}

fn overall<W: Write>(screen: &mut Screen<W>, n: u64, m: u64, rollback: bool) {
    let action = if rollback {
        format!("rolling back update: {n} out of {m} tasks")
    } else {
        format!("{n} out of {m} tasks")
    };
    screen.progress("overall progress", &action, 0, 0);
}

fn task_progress<W: Write>(screen: &mut Screen<W>, label: &str, t: &Value) {
    let err = s(t, &["Status", "Err"]);
    if !err.is_empty() {
        screen.progress(label, &truncate_error(err), 0, 0);
        return;
    }
    let st = task_state(t);
    if !terminal(s(t, &["DesiredState"])) && !terminal(st) {
        screen.progress(
            label,
            &format!("{st:<LONGEST_STATE$}"),
            numbered(st),
            MAX_PROGRESS,
        );
    }
}

/// Of several tasks in one slot (or on one node), the one with the lowest desired state,
/// then the lowest observed state.
fn prefer(existing: &Value, t: &Value) -> bool {
    let (ed, td) = (
        numbered(s(existing, &["DesiredState"])),
        numbered(s(t, &["DesiredState"])),
    );
    !(ed < td || (ed == td && numbered(task_state(existing)) <= numbered(task_state(t))))
}

/// docker's replicated and global progress updaters.
#[derive(Default)]
struct Updater {
    global: bool,
    slot_map: BTreeMap<u64, u64>,
    initialized: bool,
    done: bool,
}

impl Updater {
    fn update<W: Write>(
        &mut self,
        screen: &mut Screen<W>,
        svc: &Value,
        tasks: &[Value],
        active_nodes: &HashSet<String>,
        rollback: bool,
    ) -> bool {
        if self.global {
            self.update_global(screen, tasks, active_nodes, rollback)
        } else {
            self.update_replicated(screen, svc, tasks, active_nodes, rollback)
        }
    }

    fn update_replicated<W: Write>(
        &mut self,
        screen: &mut Screen<W>,
        svc: &Value,
        tasks: &[Value],
        active_nodes: &HashSet<String>,
        rollback: bool,
    ) -> bool {
        let replicas = svc["Spec"]["Mode"]["Replicated"]["Replicas"]
            .as_u64()
            .unwrap_or(0);
        if !self.initialized {
            overall(screen, 0, replicas, rollback);
            if replicas <= MAX_PROGRESS_BARS {
                for i in 1..=replicas {
                    screen.progress(&format!("{i}/{replicas}"), " ", 0, 0);
                }
            }
            self.initialized = true;
        }
        let mut by_slot: BTreeMap<u64, &Value> = BTreeMap::new();
        for t in tasks {
            if numbered(s(t, &["DesiredState"])) == 0 || numbered(task_state(t)) == 0 {
                continue;
            }
            let slot = t["Slot"].as_u64().unwrap_or(0);
            if by_slot.get(&slot).is_some_and(|e| !prefer(e, t)) {
                continue;
            }
            let node = s(t, &["NodeID"]);
            if !node.is_empty() && !active_nodes.contains(node) {
                continue;
            }
            by_slot.insert(slot, t);
        }
        if self.done && by_slot.values().any(|t| task_state(t) != "running") {
            self.done = false;
        }
        let mut running = 0;
        for (slot, t) in &by_slot {
            let next = self.slot_map.len() as u64 + 1;
            let mapped = *self.slot_map.entry(*slot).or_insert(next);
            if !terminal(s(t, &["DesiredState"])) && task_state(t) == "running" {
                running += 1;
            }
            if !self.done && replicas <= MAX_PROGRESS_BARS && mapped <= replicas {
                task_progress(screen, &format!("{mapped}/{replicas}"), t);
            }
        }
        if !self.done {
            overall(screen, running, replicas, rollback);
            if running == replicas {
                self.done = true;
            }
        }
        running == replicas
    }

    fn update_global<W: Write>(
        &mut self,
        screen: &mut Screen<W>,
        tasks: &[Value],
        active_nodes: &HashSet<String>,
        rollback: bool,
    ) -> bool {
        let mut by_node: BTreeMap<&str, &Value> = BTreeMap::new();
        for t in tasks {
            if numbered(s(t, &["DesiredState"])) == 0 || numbered(task_state(t)) == 0 {
                continue;
            }
            let node = s(t, &["NodeID"]);
            if by_node.get(node).is_some_and(|e| !prefer(e, t)) {
                continue;
            }
            by_node.insert(node, t);
        }
        let count = by_node.len() as u64;
        if !self.initialized {
            if count == 0 {
                screen.progress("overall progress", "waiting for new tasks", 0, 0);
                return false;
            }
            overall(screen, 0, count, rollback);
            self.initialized = true;
        }
        if self.done && by_node.values().any(|t| task_state(t) != "running") {
            self.done = false;
        }
        let mut running = 0;
        for (node, t) in &by_node {
            if !active_nodes.contains(*node) {
                continue;
            }
            if !terminal(s(t, &["DesiredState"])) && task_state(t) == "running" {
                running += 1;
            }
            if !self.done && count <= MAX_PROGRESS_BARS {
                task_progress(screen, &shoal_format::truncate_id(node), t);
            }
        }
        if !self.done {
            overall(screen, running, count, rollback);
            if running == count {
                self.done = true;
            }
        }
        running == count
    }
}

/// The state of one wait: docker's `ServiceProgress` loop, one poll at a time.
pub struct Progress<W: Write> {
    screen: Screen<W>,
    /// The service as the user named it (docker prints what it was given).
    service: String,
    updater: Option<Updater>,
    converged: bool,
    converged_at: Option<Instant>,
    monitor: Duration,
    rollback: bool,
    message: Option<String>,
}

/// What one poll decided.
enum Poll {
    /// Keep polling; fetch the tasks and nodes and call `tasks`.
    Continue,
    Done(Result<(), ApiError>),
}

impl<W: Write> Progress<W> {
    pub fn new(screen: Screen<W>, service: &str) -> Self {
        Progress {
            screen,
            service: service.to_string(),
            updater: None,
            converged: false,
            converged_at: None,
            monitor: Duration::from_secs(5),
            rollback: false,
            message: None,
        }
    }

    /// The first half of a poll: the service just inspected.
    fn service(&mut self, svc: &Value, now: Instant) -> Poll {
        if let Some(m) = svc["Spec"]["UpdateConfig"]["Monitor"]
            .as_i64()
            .filter(|&m| m != 0)
        {
            self.monitor = Duration::from_nanos(m.max(0) as u64);
        }
        if self.updater.is_none() {
            self.updater = Some(Updater {
                global: svc["Spec"]["Mode"].get("Global").is_some(),
                ..Default::default()
            });
        }
        let message = s(svc, &["UpdateStatus", "Message"]);
        match s(svc, &["UpdateStatus", "State"]) {
            "updating" => self.rollback = false,
            "completed" if !self.converged => return Poll::Done(Ok(())),
            "paused" => {
                return Poll::Done(Err(ApiError::plain(format!(
                    "service update paused: {message}"
                ))))
            }
            "rollback_started" => {
                if !self.rollback && !message.is_empty() {
                    self.screen.progress("rollback", message, 0, 0);
                }
                self.rollback = true;
            }
            "rollback_paused" => {
                return Poll::Done(Err(ApiError::plain(format!(
                    "service rollback paused: {message}"
                ))))
            }
            "rollback_completed" => {
                if !self.converged {
                    self.message = Some(message.to_string());
                }
                self.rollback = true;
            }
            _ => {}
        }
        if self.converged
            && self
                .converged_at
                .is_some_and(|at| now.duration_since(at) >= self.monitor)
        {
            let action = format!("Service {} converged", self.service);
            self.screen.progress("verify", &action, 0, 0);
            if let Some(m) = self.message.take() {
                self.screen.message("rollback", &m);
            }
            return Poll::Done(Ok(()));
        }
        Poll::Continue
    }

    /// The second half: the service's up-to-date tasks and the nodes not down.
    fn tasks(
        &mut self,
        svc: &Value,
        tasks: &[Value],
        active_nodes: &HashSet<String>,
        now: Instant,
    ) {
        let updater = self.updater.get_or_insert_with(Updater::default);
        self.converged = updater.update(&mut self.screen, svc, tasks, active_nodes, self.rollback);
        if self.converged {
            let at = *self.converged_at.get_or_insert(now);
            let since = now.duration_since(at);
            if since <= self.monitor {
                // docker prints wait/time.Second+1 with some time always gone since it
                // converged: the whole seconds left, rounded up (5, not 6, for 5 s).
                let wait = self.monitor - since;
                let action = format!(
                    "Waiting {} seconds to verify that tasks are stable...",
                    wait.as_nanos().div_ceil(1_000_000_000).max(1)
                );
                self.screen.progress("verify", &action, 0, 0);
            }
        } else {
            if self.converged_at.is_some() {
                self.screen
                    .progress("verify", "Detected task failure", 0, 0);
            }
            self.converged_at = None;
        }
        self.screen.flush();
    }

    /// Ctrl-C: the wait ends, the operation goes on.
    fn interrupted(&mut self) {
        if !self.converged {
            self.screen
                .message("", "Operation continuing in background.");
            let m = format!("Use `shoal service ps {}` to check progress.", self.service);
            self.screen.message("", &m);
        }
        self.screen.flush();
    }
}

/// Wait until the service `service` (as the user named it) converges, drawing docker's
/// progress on stdout (nothing with `quiet`). Errors (exit 1) when an update or rollback
/// pauses.
pub async fn wait(host: &str, service: &str, quiet: bool) -> Result<(), ApiError> {
    let mut p = Progress::new(Screen::stdout(quiet), service);
    loop {
        let svc = match call(
            host,
            ApiRequest::ServiceInspect {
                references: vec![service.to_string()],
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
        if let Poll::Done(r) = p.service(&svc, Instant::now()) {
            p.screen.flush();
            return r;
        }
        let id = s(&svc, &["ID"]).to_string();
        let tasks = match call(
            host,
            ApiRequest::TaskList {
                services: vec![id],
                nodes: vec![],
                stack: None,
                up_to_date: true,
            },
        )
        .await?
        {
            ApiReply::Tasks { tasks, .. } => tasks,
            other => return Err(unexpected(other)),
        };
        let active_nodes: HashSet<String> = match call(host, ApiRequest::NodeList).await? {
            ApiReply::Nodes { nodes, .. } => nodes
                .iter()
                .filter(|n| s(n, &["Status", "State"]) != "down")
                .map(|n| s(n, &["ID"]).to_string())
                .collect(),
            other => return Err(unexpected(other)),
        };
        p.tasks(&svc, &tasks, &active_nodes, Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => {
                p.interrupted();
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(replicas: u64, update: Option<(&str, &str)>) -> Value {
        let mut v = json!({
            "ID": "svcid",
            "Spec": {"Mode": {"Replicated": {"Replicas": replicas}},
                     "UpdateConfig": {"Monitor": 1_000_000_000i64}},
        });
        if let Some((state, message)) = update {
            v["UpdateStatus"] = json!({"State": state, "Message": message});
        }
        v
    }

    fn task(slot: u64, state: &str) -> Value {
        json!({"Slot": slot, "NodeID": "n1", "DesiredState": "running",
               "Status": {"State": state}})
    }

    fn nodes() -> HashSet<String> {
        ["n1".to_string()].into()
    }

    /// Runs polls of (service, tasks) at the given offsets; returns the output and
    /// whether (and how) the wait ended.
    fn run(
        tty: bool,
        name: &str,
        polls: &[(u64, Value, Vec<Value>)],
    ) -> (String, Option<Result<(), String>>) {
        let mut p = Progress::new(Screen::new(Vec::new(), tty, 200), name);
        let t0 = Instant::now();
        let mut end = None;
        for (ms, s, tasks) in polls {
            let now = t0 + Duration::from_millis(*ms);
            if let Poll::Done(r) = p.service(s, now) {
                end = Some(r.map_err(|e| e.to_string()));
                break;
            }
            p.tasks(s, tasks, &nodes(), now);
        }
        let out = String::from_utf8(p.screen.into_inner()).unwrap();
        (out, end)
    }

    #[test]
    fn running_bar_is_fifty_wide_with_the_arrow() {
        let b = bar(9, 9, 200);
        assert_eq!(b, format!("[{}>] ", "=".repeat(50)));
        assert_eq!(bar(1, 9, 200), format!("[=====>{}] ", " ".repeat(45)));
        assert_eq!(bar(9, 9, 110), "");
    }

    #[test]
    fn terminal_lines_are_redrawn_in_place() {
        let mut s = Screen::new(Vec::new(), true, 200);
        s.progress("overall progress", "0 out of 1 tasks", 0, 0);
        s.progress("1/1", " ", 0, 0);
        s.progress("overall progress", "1 out of 1 tasks", 0, 0);
        s.progress("1/1", "running  ", 9, 9);
        let out = String::from_utf8(s.into_inner()).unwrap();
        let bar = format!("[{}>] ", "=".repeat(50));
        assert_eq!(
            out,
            format!(
                "\n\x1b[1A\x1b[2K\roverall progress: 0 out of 1 tasks \r\x1b[1B\
                 \n\x1b[1A\x1b[2K\r1/1:   \r\x1b[1B\
                 \x1b[2A\x1b[2K\roverall progress: 1 out of 1 tasks \r\x1b[2B\
                 \x1b[1A\x1b[2K\r1/1: running   {bar}\r\x1b[1B"
            )
        );
    }

    /// What a terminal would show at the end: the last text drawn on each line.
    fn final_screen(raw: &str) -> Vec<String> {
        let mut lines: Vec<String> = vec![String::new()];
        let mut row = 0usize;
        let mut rest = raw;
        while let Some(c) = rest.chars().next() {
            if let Some(r) = rest.strip_prefix("\x1b[") {
                let end = r.find(|c: char| c.is_ascii_alphabetic()).unwrap();
                let n: usize = r[..end].parse().unwrap_or(0);
                match &r[end..end + 1] {
                    "A" => row -= n,
                    "B" => row += n,
                    "K" => lines[row].clear(),
                    _ => {}
                }
                rest = &r[end + 1..];
                continue;
            }
            match c {
                '\n' => {
                    row += 1;
                    if lines.len() <= row {
                        lines.push(String::new());
                    }
                }
                '\r' => {}
                c => lines[row].push(c),
            }
            rest = &rest[c.len_utf8()..];
        }
        lines
    }

    #[test]
    fn create_on_a_terminal_ends_with_docker_final_screen() {
        let s = svc(2, None);
        let (out, end) = run(
            true,
            "svcid",
            &[
                (0, s.clone(), vec![task(1, "pending"), task(2, "assigned")]),
                (200, s.clone(), vec![task(1, "running"), task(2, "running")]),
                (700, s.clone(), vec![task(1, "running"), task(2, "running")]),
                (1300, s.clone(), vec![]),
            ],
        );
        assert_eq!(end, Some(Ok(())));
        let bar = format!("[{}>] ", "=".repeat(50));
        assert_eq!(
            final_screen(&out),
            vec![
                "overall progress: 2 out of 2 tasks ".to_string(),
                format!("1/2: running   {bar}"),
                format!("2/2: running   {bar}"),
                "verify: Service svcid converged ".to_string(),
                String::new(),
            ]
        );
    }

    #[test]
    fn without_a_terminal_bars_drop_and_updates_repeat() {
        let s = svc(1, None);
        let mut failing = task(1, "pending");
        failing["Status"]["Err"] =
            json!("no suitable node (scheduling constraints not satisfied on 5 nodes)");
        let (out, end) = run(
            false,
            "web",
            &[
                (0, s.clone(), vec![failing.clone()]),
                (200, s.clone(), vec![task(1, "running")]),
                (400, s.clone(), vec![task(1, "running")]),
                (1300, s.clone(), vec![]),
            ],
        );
        assert_eq!(end, Some(Ok(())));
        assert_eq!(
            out,
            "overall progress: 0 out of 1 tasks\n\
             1/1:  \n\
             1/1: no suitable node (scheduling constraints not satisfied on 5 nodes)\n\
             overall progress: 0 out of 1 tasks\n\
             overall progress: 1 out of 1 tasks\n\
             verify: Waiting 1 seconds to verify that tasks are stable...\n\
             verify: Waiting 1 seconds to verify that tasks are stable...\n\
             verify: Service web converged\n"
        );
    }

    #[test]
    fn manual_rollback_says_so_and_counts_as_rolling_back() {
        let s = svc(1, Some(("rollback_started", "manually requested rollback")));
        let (out, end) = run(
            false,
            "web",
            &[
                (0, s.clone(), vec![]),
                (200, s.clone(), vec![task(1, "running")]),
            ],
        );
        assert_eq!(end, None);
        assert_eq!(
            out,
            "rollback: manually requested rollback\n\
             overall progress: rolling back update: 0 out of 1 tasks\n\
             1/1:  \n\
             overall progress: rolling back update: 0 out of 1 tasks\n\
             overall progress: rolling back update: 1 out of 1 tasks\n\
             verify: Waiting 1 seconds to verify that tasks are stable...\n"
        );
    }

    #[test]
    fn a_paused_update_ends_the_wait_with_docker_error() {
        let s = svc(
            1,
            Some((
                "paused",
                "update paused due to failure or early termination of task t1",
            )),
        );
        let (_, end) = run(false, "web", &[(0, s, vec![])]);
        assert_eq!(
            end,
            Some(Err(
                "service update paused: update paused due to failure or early termination of task t1"
                    .to_string()
            ))
        );
    }

    #[test]
    fn lowest_desired_state_wins_a_slot() {
        let s = svc(1, None);
        let mut old = task(1, "running");
        old["DesiredState"] = json!("shutdown");
        let (out, _) = run(false, "web", &[(0, s, vec![old, task(1, "starting")])]);
        assert_eq!(
            out,
            "overall progress: 0 out of 1 tasks\n1/1:  \noverall progress: 0 out of 1 tasks\n"
        );
    }
}
