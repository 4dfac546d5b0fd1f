//! When a task's healthcheck probes run: docker's schedule (moby `daemon/health.go`).

use std::time::Duration;

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
}
