//! When a task's healthcheck probes run: docker's schedule (moby `daemon/health.go`).

use std::time::{Duration, Instant};

use shoal_spec::HealthConfig;

/// Between probes when the healthcheck sets no interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Between probes in the start period, until one succeeds, when it sets no start
/// interval (docker 25+).
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);

/// How long after the last probe the next one runs: the start interval while the task
/// is in its start period and has not yet been healthy, else the interval. As docker,
/// a start interval needs a start period (with none, there is no start period), and
/// a task that was healthy once goes at the interval even inside its start period.
///
/// `since_start`: how long the task has run; `health`: its health so far (None
/// before its first probe).
pub(crate) fn next_probe_after(
    h: &HealthConfig,
    since_start: Duration,
    health: Option<&str>,
) -> Duration {
    let or_default = |ns: i64, default: Duration| match u64::try_from(ns) {
        Ok(ns) if ns > 0 => Duration::from_nanos(ns),
        _ => default,
    };
    let start_period = or_default(h.start_period, Duration::ZERO);
    let starting = matches!(health, None | Some("starting"));
    if since_start < start_period && starting {
        or_default(h.start_interval, DEFAULT_START_INTERVAL)
    } else {
        or_default(h.interval, DEFAULT_INTERVAL)
    }
}

/// When a task's next probe is due. As moby's monitor: the first probe waits one
/// interval (the start interval, if the task is in its start period) after the task
/// starts, and each later one waits from the end of the previous probe; the wait is
/// chosen when the previous one ends, by the start period and health at that moment.
pub(crate) struct ProbeSchedule {
    started: Instant,
    next: Instant,
}

impl ProbeSchedule {
    /// The schedule of a task started at `started` whose health is `health`.
    pub(crate) fn new(h: &HealthConfig, started: Instant, health: Option<&str>) -> Self {
        ProbeSchedule {
            started,
            next: started + next_probe_after(h, Duration::ZERO, health),
        }
    }

    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// How long the task had run when `at` came (for a probe started then).
    pub(crate) fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// A probe ended at `ended`, leaving the task's health `health`.
    pub(crate) fn probed(&mut self, h: &HealthConfig, ended: Instant, health: Option<&str>) {
        self.next = ended + next_probe_after(h, self.since_start(ended), health);
    }
}

/// A task's health and failing streak after a probe that began `began` after the task
/// started (moby's `handleProbeResult`): a success makes it healthy; a failure counts,
/// unless the task is still starting (never healthy) and the probe began inside the
/// start period; `retries` counted failures in a row (default 3) make it unhealthy.
pub(crate) fn health_after_probe<'a>(
    h: &HealthConfig,
    health: Option<&'a str>,
    failing_streak: u64,
    ok: bool,
    began: Duration,
) -> (&'a str, u64) {
    let health = health.unwrap_or("starting");
    if ok {
        return ("healthy", 0);
    }
    let start_period = Duration::from_nanos(u64::try_from(h.start_period).unwrap_or(0));
    if health == "starting" && began < start_period {
        return (health, failing_streak);
    }
    let streak = failing_streak + 1;
    let retries = if h.retries > 0 { h.retries } else { 3 };
    if streak >= retries {
        ("unhealthy", streak)
    } else {
        (health, streak)
    }
}

#[cfg(test)]
mod tests {
    use shoal_spec::SECOND_NS;

    use super::*;

    fn check(interval: i64, start_period: i64, start_interval: i64) -> HealthConfig {
        HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: interval * SECOND_NS,
            start_period: start_period * SECOND_NS,
            start_interval: start_interval * SECOND_NS,
            ..Default::default()
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// In the start period, until a probe succeeds, probes run every start interval;
    /// after the start period, or once healthy, every interval.
    #[test]
    fn start_interval_applies_in_the_start_period_until_healthy() {
        let h = check(300, 60, 2);
        assert_eq!(next_probe_after(&h, S(0), None), S(2));
        assert_eq!(next_probe_after(&h, S(10), Some("starting")), S(2));
        assert_eq!(next_probe_after(&h, S(10), Some("healthy")), S(300));
        assert_eq!(next_probe_after(&h, S(10), Some("unhealthy")), S(300));
        assert_eq!(next_probe_after(&h, S(60), Some("starting")), S(300));
        assert_eq!(next_probe_after(&h, S(61), None), S(300));
    }

    /// docker's defaults: 30s between probes, 5s in a start period without a start
    /// interval; without a start period the start interval does nothing.
    #[test]
    fn defaults_follow_docker() {
        assert_eq!(next_probe_after(&check(0, 0, 0), S(0), None), S(30));
        assert_eq!(next_probe_after(&check(0, 60, 0), S(1), None), S(5));
        assert_eq!(next_probe_after(&check(10, 0, 1), S(0), None), S(10));
        // Negative values (refused by the manager) read as unset, never as huge.
        assert_eq!(next_probe_after(&check(-1, 60, -1), S(1), None), S(5));
    }

    /// As moby: the first probe waits one interval after the task starts, not none.
    #[test]
    fn first_probe_waits_one_interval() {
        let t0 = Instant::now();
        let s = ProbeSchedule::new(&check(30, 0, 0), t0, Some("starting"));
        assert!(!s.due(t0));
        assert!(!s.due(t0 + S(29)));
        assert!(s.due(t0 + S(30)));
        // In a start period: one start interval.
        let s = ProbeSchedule::new(&check(30, 60, 2), t0, Some("starting"));
        assert!(!s.due(t0 + Duration::from_millis(1999)));
        assert!(s.due(t0 + S(2)));
        // A task adopted healthy goes at the interval, start period or not.
        let s = ProbeSchedule::new(&check(30, 60, 2), t0, Some("healthy"));
        assert!(!s.due(t0 + S(2)));
    }

    /// The wait runs from the end of the previous probe, and is chosen when that probe
    /// ends: a start interval chosen inside the start period holds even if the period
    /// ends before it is over.
    #[test]
    fn next_probe_waits_from_the_end_of_the_last() {
        let t0 = Instant::now();
        let h = check(30, 3, 2);
        let mut s = ProbeSchedule::new(&h, t0, None);
        assert!(s.due(t0 + S(2)));
        // A probe that took 0.5s, failed, in the start period.
        s.probed(&h, t0 + Duration::from_millis(2500), Some("starting"));
        assert!(!s.due(t0 + Duration::from_millis(4499)));
        assert!(s.due(t0 + Duration::from_millis(4500)));
        // Past the start period: the interval, from the probe's end.
        s.probed(&h, t0 + S(5), Some("starting"));
        assert!(!s.due(t0 + S(34)));
        assert!(s.due(t0 + S(35)));
        // Healthy inside the start period: the interval.
        let mut s = ProbeSchedule::new(&h, t0, None);
        s.probed(&h, t0 + S(2), Some("healthy"));
        assert!(!s.due(t0 + S(4)));
        assert!(s.due(t0 + S(32)));
    }

    /// moby's handleProbeResult: failures of a starting task in the start period do not
    /// count (by when the probe began); a success ends the start period's grace.
    #[test]
    fn start_period_failures_do_not_count_until_healthy() {
        let mut h = check(30, 10, 1);
        h.retries = 2;
        // Starting, in the start period: nothing counts.
        assert_eq!(
            health_after_probe(&h, None, 0, false, S(9)),
            ("starting", 0)
        );
        // A probe that began at 9.9s counts as in the start period even if it ends later.
        assert_eq!(
            health_after_probe(&h, Some("starting"), 0, false, Duration::from_millis(9900)),
            ("starting", 0)
        );
        // After it, failures count; `retries` of them make it unhealthy.
        assert_eq!(
            health_after_probe(&h, Some("starting"), 0, false, S(10)),
            ("starting", 1)
        );
        assert_eq!(
            health_after_probe(&h, Some("starting"), 1, false, S(11)),
            ("unhealthy", 2)
        );
        // Healthy once: every failure counts, even in the start period.
        assert_eq!(
            health_after_probe(&h, Some("healthy"), 0, false, S(2)),
            ("healthy", 1)
        );
        assert_eq!(
            health_after_probe(&h, Some("healthy"), 1, false, S(3)),
            ("unhealthy", 2)
        );
        // A success resets the streak.
        assert_eq!(
            health_after_probe(&h, Some("healthy"), 1, true, S(3)),
            ("healthy", 0)
        );
        // Default retries: 3.
        h.retries = 0;
        assert_eq!(
            health_after_probe(&h, Some("healthy"), 1, false, S(20)),
            ("healthy", 2)
        );
        assert_eq!(
            health_after_probe(&h, Some("healthy"), 2, false, S(20)),
            ("unhealthy", 3)
        );
    }
}
