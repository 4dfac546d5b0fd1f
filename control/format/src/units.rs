//! Docker's small text helpers: go-units `HumanDuration`, `PrettyPrint`, `Ellipsis`, `TruncateID`.

use std::time::Duration;

use crate::width::char_width;

/// go-units `HumanDuration`. With s, m, h the whole seconds, whole minutes and hours
/// rounded half up (`int(d.Hours() + 0.5)`):
///
/// | condition            | output               |
/// |----------------------|----------------------|
/// | s < 1                | `Less than a second` |
/// | s == 1               | `1 second`           |
/// | s < 60               | `N seconds`          |
/// | m == 1               | `About a minute`     |
/// | m < 60               | `N minutes`          |
/// | h == 1               | `About an hour`      |
/// | h < 48               | `N hours`            |
/// | h < 24*7*2 (14 days) | `N days` (h/24)      |
/// | h < 24*30*2 (60 days)| `N weeks` (h/24/7)   |
/// | h < 24*365*2 (2 yrs) | `N months` (h/24/30) |
/// | otherwise            | `N years` (whole hours/24/365) |
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours_f = d.as_secs_f64() / 3600.0;
    let hours = (hours_f + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (hours_f as u64) / 24 / 365)
    }
}

/// docker's `PrettyPrint` of a string: first letter upper case, the rest lower case.
/// Like docker's `capitalizeFirst`, a one-character string is lower-cased.
pub fn pretty_print(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), s.len()) {
        (None, _) => String::new(),
        (Some(_), 1) => s.to_lowercase(),
        (Some(first), _) => first
            .to_uppercase()
            .chain(chars.as_str().to_lowercase().chars())
            .collect(),
    }
}

/// docker's `formatter.Ellipsis`: cuts `s` to `max_chars` display cells, the last being `…`.
pub fn ellipsis(s: &str, max_chars: usize) -> String {
    if max_chars == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if max_chars == 1 {
        return chars.first().map(char::to_string).unwrap_or_default();
    }
    let widths: Vec<usize> = chars.iter().map(|&c| char_width(c)).collect();
    if widths.iter().sum::<usize>() <= max_chars {
        return s.to_string();
    }
    let mut total = 0;
    let mut keep = 0;
    for w in widths {
        if total + w > max_chars - 1 {
            break;
        }
        total += w;
        keep += 1;
    }
    if keep == 0 {
        // docker finds no cut point when the first character is already too wide.
        return s.to_string();
    }
    chars[..keep].iter().collect::<String>() + "…"
}

/// moby `stringid.TruncateID`: drops an `algo:` prefix and keeps 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hd(secs: u64) -> String {
        human_duration(Duration::from_secs(secs))
    }

    #[test]
    fn human_duration_boundaries() {
        assert_eq!(
            human_duration(Duration::from_millis(999)),
            "Less than a second"
        );
        assert_eq!(hd(1), "1 second");
        assert_eq!(hd(2), "2 seconds");
        assert_eq!(hd(59), "59 seconds");
        assert_eq!(hd(60), "About a minute");
        assert_eq!(hd(119), "About a minute");
        assert_eq!(hd(120), "2 minutes");
        assert_eq!(hd(59 * 60 + 59), "59 minutes");
        assert_eq!(hd(3600), "About an hour");
        assert_eq!(hd(3600 + 29 * 60 + 59), "About an hour");
        assert_eq!(hd(3600 + 30 * 60), "2 hours");
        assert_eq!(hd(47 * 3600 + 29 * 60), "47 hours");
        assert_eq!(hd(47 * 3600 + 30 * 60), "2 days");
        assert_eq!(hd(14 * 86400 - 1800), "2 weeks");
        assert_eq!(hd(14 * 86400 - 1801), "13 days");
        assert_eq!(hd(60 * 86400 - 1801), "8 weeks");
        assert_eq!(hd(60 * 86400), "2 months");
        assert_eq!(hd(730 * 86400 - 1801), "24 months");
        assert_eq!(hd(730 * 86400), "2 years");
        assert_eq!(hd(5 * 365 * 86400), "5 years");
    }

    #[test]
    fn pretty_print_like_docker() {
        assert_eq!(pretty_print("running"), "Running");
        assert_eq!(pretty_print("RUNNING"), "Running");
        assert_eq!(pretty_print("X"), "x");
        assert_eq!(pretty_print(""), "");
    }

    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(
            ellipsis(
                "no suitable node (scheduling constraints not satisfied)",
                30
            ),
            "no suitable node (scheduling …"
        );
        assert_eq!(ellipsis("short", 30), "short");
        assert_eq!(ellipsis("abcdef", 6), "abcdef");
        assert_eq!(ellipsis("abcdefg", 6), "abcde…");
        assert_eq!(ellipsis("日本語の文字", 5), "日本…");
        assert_eq!(ellipsis("abc", 1), "a");
        assert_eq!(ellipsis("abc", 0), "");
    }

    #[test]
    fn truncate_id_like_moby() {
        assert_eq!(truncate_id("rb1bpfv8r8atppvsv7tcopkjp"), "rb1bpfv8r8at");
        assert_eq!(truncate_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(truncate_id("short"), "short");
    }
}
