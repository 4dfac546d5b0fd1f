//! Go value syntaxes docker relies on: durations, memory sizes, CPUs and shell words.

// time.ParseDuration, units.RAMInBytes, opts.ParseCPUs and shlex.Split.

/// Go's `time.ParseDuration`: `"10s"`, `"1m30s"`, `"1.5h"`, `"500ms"`, `"0"` to nanoseconds.
pub fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &b[..int_len] {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        // (\.[0-9]*)?
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let digits = s.bytes().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for c in s[..digits].bytes() {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                {
                    Some(v) if v < LIMIT => {
                        frac = v;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            frac_len = digits;
            s = &s[digits..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let unit_name = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u64 = match unit_name {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {unit_name:?} in duration {orig:?}"
                ))
            }
        };
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut v = whole * unit;
        if frac > 0 {
            // Go truncates the float product the same way.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let extra = (frac as f64 * (unit as f64 / scale)) as u64;
            v = v
                .checked_add(extra)
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if neg {
        // -(1<<63) is representable.
        return Ok((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// docker's `units.RAMInBytes`: `"512M"`, `"1g"`, `"100m"`, `"1.5GiB"`, `"1024"`, binary units,
/// case-insensitive, optional `b`/`ib` suffix.
pub(crate) fn ram_in_bytes(size: &str) -> Result<i64, String> {
    let Some(sep) = size.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(format!("invalid size: '{size}'"));
    };
    let (num, suffix) = if size.as_bytes()[sep] == b' ' {
        (&size[..sep], &size[sep + 1..])
    } else {
        (&size[..=sep], &size[sep + 1..])
    };
    let value: f64 = parse_go_float(num)
        .ok_or_else(|| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    if value < 0.0 {
        return Err(format!("invalid size: '{size}'"));
    }
    let bad_suffix = || format!("invalid suffix: '{}'", suffix.to_ascii_lowercase());
    #[allow(clippy::cast_possible_truncation)]
    let bytes = |v: f64| v as i64;
    if suffix.is_empty() {
        return Ok(bytes(value));
    }
    if suffix.len() > 3 {
        return Err(bad_suffix());
    }
    let sfx = suffix.to_ascii_lowercase();
    let sb = sfx.as_bytes();
    if sb[0] == b'b' {
        return if sb.len() > 1 {
            Err(bad_suffix())
        } else {
            Ok(bytes(value))
        };
    }
    let mul: f64 = match sb[0] {
        b'k' => 1024.0,
        b'm' => 1024.0 * 1024.0,
        b'g' => 1024.0 * 1024.0 * 1024.0,
        b't' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        b'p' => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad_suffix()),
    };
    match sb.len() {
        2 if sb[1] != b'b' => return Err(bad_suffix()),
        3 if &sb[1..] != b"ib" => return Err(bad_suffix()),
        _ => {}
    }
    Ok(bytes(value * mul))
}

/// The decimal forms Go's `strconv.ParseFloat` accepts for sizes (digits, a point, an exponent).
fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let ok = !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// docker's `opts.ParseCPUs`: a rational number of CPUs (`"0.5"`, `"2"`, `"1/4"`, `"5e-1"`) to
/// nano-CPUs, which must come out whole.
pub(crate) fn parse_cpus(value: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {value} as a rational number");
    let (num, den) = match value.split_once('/') {
        Some((n, d)) => {
            let n = parse_decimal(n).ok_or_else(not_rational)?;
            let d = parse_decimal(d).ok_or_else(not_rational)?;
            // Both sides of a fraction are integers in big.Rat's syntax.
            if n.1 != 0 || d.1 != 0 || d.0 == 0 {
                return Err(not_rational());
            }
            (n.0, d.0)
        }
        None => {
            let (mantissa, scale) = parse_decimal(value).ok_or_else(not_rational)?;
            if scale <= 0 {
                let factor = 10i128
                    .checked_pow(u32::try_from(-scale).map_err(|_| not_rational())?)
                    .ok_or_else(|| "value is too large".to_string())?;
                (
                    mantissa
                        .checked_mul(factor)
                        .ok_or_else(|| "value is too large".to_string())?,
                    1,
                )
            } else {
                let den = 10i128
                    .checked_pow(u32::try_from(scale).map_err(|_| not_rational())?)
                    .ok_or_else(|| "value is too precise".to_string())?;
                (mantissa, den)
            }
        }
    };
    let nano = num
        .checked_mul(1_000_000_000)
        .ok_or_else(|| "value is too large".to_string())?;
    if nano % den != 0 {
        return Err("value is too precise".to_string());
    }
    if nano < 0 {
        return Err(format!("invalid cpus {value:?}: must not be negative"));
    }
    i64::try_from(nano / den).map_err(|_| "value is too large".to_string())
}

/// `[+-]digits[.digits][e[+-]digits]` as (mantissa, decimal places): "0.25" is (25, 2), "5e3"
/// is (5, -3).
fn parse_decimal(s: &str) -> Option<(i128, i32)> {
    let (body, neg) = match s.strip_prefix('-') {
        Some(rest) => (rest, true),
        None => (s.strip_prefix('+').unwrap_or(s), false),
    };
    let (digits_part, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = digits_part.split_once('.').unwrap_or((digits_part, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut mantissa: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    let scale = i32::try_from(frac.len()).ok()?.checked_sub(exp)?;
    Some((if neg { -mantissa } else { mantissa }, scale))
}

/// `shlex.Split` as docker uses it for `command:` and `entrypoint:` strings: words split on
/// whitespace, `'...'` literal, `"..."` with backslash escapes, `\` escapes outside quotes, and
/// `#` at the start of a word starting a comment.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum State {
        Start,
        Word,
        Escaping,
        Single,
        Double,
        DoubleEscaping,
        Comment,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut state = State::Start;
    for c in s.chars() {
        let space = matches!(c, ' ' | '\t' | '\r' | '\n');
        state = match state {
            State::Start => match c {
                _ if space => State::Start,
                '"' => State::Double,
                '\'' => State::Single,
                '\\' => State::Escaping,
                '#' => State::Comment,
                _ => {
                    word.push(c);
                    State::Word
                }
            },
            State::Word => match c {
                _ if space => {
                    words.push(std::mem::take(&mut word));
                    State::Start
                }
                '"' => State::Double,
                '\'' => State::Single,
                '\\' => State::Escaping,
                _ => {
                    word.push(c);
                    State::Word
                }
            },
            State::Escaping => {
                word.push(c);
                State::Word
            }
            State::Single => match c {
                '\'' => State::Word,
                _ => {
                    word.push(c);
                    State::Single
                }
            },
            State::Double => match c {
                '"' => State::Word,
                '\\' => State::DoubleEscaping,
                _ => {
                    word.push(c);
                    State::Double
                }
            },
            State::DoubleEscaping => {
                word.push(c);
                State::Double
            }
            State::Comment => {
                if c == '\n' {
                    State::Start
                } else {
                    State::Comment
                }
            }
        };
    }
    match state {
        State::Escaping | State::DoubleEscaping => {
            Err("EOF found after escape character".to_string())
        }
        State::Single | State::Double => Err("EOF found when expecting closing quote".to_string()),
        State::Word => {
            words.push(word);
            Ok(words)
        }
        State::Start | State::Comment => Ok(words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn durations_parse_as_go() {
        assert_eq!(parse_duration("10s"), Ok(10 * S));
        assert_eq!(parse_duration("1m30s"), Ok(90 * S));
        assert_eq!(parse_duration("500ms"), Ok(S / 2));
        assert_eq!(parse_duration("1h"), Ok(3600 * S));
        assert_eq!(parse_duration("1.5h"), Ok(5400 * S));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("2us"), Ok(2000));
        assert_eq!(parse_duration(".5s"), Ok(S / 2));
        assert_eq!(parse_duration("-1s"), Ok(-S));
        assert_eq!(
            parse_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            parse_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        for bad in [
            "",
            "s",
            "x1s",
            ".s",
            "1s2",
            "99999999999999999999h",
            "3000000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_units_are_binary() {
        assert_eq!(ram_in_bytes("512M"), Ok(512 << 20));
        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("100m"), Ok(100 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("64kb"), Ok(64 << 10));
        assert_eq!(ram_in_bytes("1024"), Ok(1024));
        assert_eq!(ram_in_bytes("10 MB"), Ok(10 << 20));
        assert_eq!(ram_in_bytes("20b"), Ok(20));
        assert_eq!(ram_in_bytes("1x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(ram_in_bytes("1mbx"), Err("invalid suffix: 'mbx'".into()));
        assert_eq!(ram_in_bytes("lots"), Err("invalid size: 'lots'".into()));
        assert!(ram_in_bytes("-1m").is_err());
    }

    #[test]
    fn cpus_to_nano_cpus() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.001"), Ok(1_000_000));
        assert_eq!(parse_cpus("1/4"), Ok(250_000_000));
        assert_eq!(parse_cpus("5e-1"), Ok(500_000_000));
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert_eq!(
            parse_cpus("half"),
            Err("failed to parse half as a rational number".into())
        );
    }

    #[test]
    fn shell_words() {
        let split = |s: &str| shell_split(s).unwrap();
        assert_eq!(
            split("--default-authentication-plugin=mysql_native_password"),
            ["--default-authentication-plugin=mysql_native_password"]
        );
        assert_eq!(
            split(r#"sh -c "echo 'hi there'" a\ b"#),
            ["sh", "-c", "echo 'hi there'", "a b"]
        );
        assert_eq!(
            split("bundle exec  thin\t-p 3000"),
            ["bundle", "exec", "thin", "-p", "3000"]
        );
        assert_eq!(split(r#"a "" b"#), ["a", "", "b"]);
        assert_eq!(split("run # a comment"), ["run"]);
        assert_eq!(split("a#b"), ["a#b"]);
        assert!(shell_split("echo 'oops").is_err());
        assert!(shell_split("echo \\").is_err());
    }
}
