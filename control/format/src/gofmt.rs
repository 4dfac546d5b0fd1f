//! Go's `fmt` printing of template values: `%v` (what `{{.X}}` prints), Sprint, Sprintln, Sprintf.

use std::fmt::Write;

use serde_json::{Map, Value as JsonValue};

use crate::value::{number_kind, Kind, Val};

/// What `{{.X}}` prints: `fmt.Fprint` of the value, `<no value>` for the invalid value.
pub(crate) fn print_value(v: &Val) -> String {
    let mut out = String::new();
    match v {
        Val::Invalid => out.push_str("<no value>"),
        _ => write_arg(&mut out, &Arg::of(v), 'v', &Flags::default()),
    }
    out
}

/// `fmt.Sprint`: operands in `%v`, with a space between two operands when neither is a string.
pub(crate) fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = a.as_str().is_some();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        write_arg(&mut out, &Arg::of(a), 'v', &Flags::default());
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: operands in `%v` separated by spaces, then a newline.
pub(crate) fn sprintln(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_arg(&mut out, &Arg::of(a), 'v', &Flags::default());
    }
    out.push('\n');
    out
}

/// A Go value as `fmt` sees it once it is stored in an `interface{}`.
enum Arg<'v> {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'v str),
    Slice(&'v [JsonValue]),
    Map(&'v Map<String, JsonValue>),
}

impl<'v> Arg<'v> {
    fn of(v: &'v Val) -> Arg<'v> {
        match v {
            Val::Invalid => Arg::Nil,
            Val::Json(j) => Arg::json(j),
            Val::Row(m) => Arg::Map(m),
        }
    }

    fn json(j: &'v JsonValue) -> Arg<'v> {
        match j {
            JsonValue::Null => Arg::Nil,
            JsonValue::Bool(b) => Arg::Bool(*b),
            JsonValue::Number(n) => match number_kind(n) {
                Kind::Int(i) => Arg::Int(i),
                Kind::Uint(u) => Arg::Uint(u),
                Kind::Float(f) => Arg::Float(f),
                _ => Arg::Nil,
            },
            JsonValue::String(s) => Arg::Str(s),
            JsonValue::Array(a) => Arg::Slice(a),
            JsonValue::Object(o) => Arg::Map(o),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Arg::Nil => "<nil>",
            Arg::Bool(_) => "bool",
            Arg::Int(_) => "int",
            Arg::Uint(_) => "uint64",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
            Arg::Slice(_) => "[]interface {}",
            Arg::Map(_) => "map[string]interface {}",
        }
    }
}

/// Flags, width and precision of one `%` directive.
#[derive(Clone, Debug, Default)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` over template values.
pub(crate) fn sprintf(format: &str, args: &[Val]) -> String {
    let args: Vec<Arg<'_>> = args.iter().map(Arg::of).collect();
    let mut out = String::new();
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut f = Flags::default();
        // Flags.
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '#' => f.sharp = true,
                '0' => f.zero = true,
                '+' => f.plus = true,
                '-' => f.minus = true,
                ' ' => f.space = true,
                _ => break,
            }
            chars.next();
        }
        // Argument index, width.
        let mut good_arg_num = true;
        parse_arg_index(
            &mut chars,
            &mut arg_num,
            &mut reordered,
            &mut good_arg_num,
            args.len(),
        );
        if chars.peek().map(|&(_, c)| c) == Some('*') {
            chars.next();
            match args.get(arg_num) {
                Some(Arg::Int(i)) if *i >= 0 => f.wid = Some(*i as usize),
                Some(Arg::Int(i)) => {
                    f.minus = true;
                    f.wid = Some(i.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            arg_num += 1;
        } else if let Some(w) = parse_num(&mut chars) {
            f.wid = Some(w);
        }
        // Precision.
        if chars.peek().map(|&(_, c)| c) == Some('.') {
            chars.next();
            parse_arg_index(
                &mut chars,
                &mut arg_num,
                &mut reordered,
                &mut good_arg_num,
                args.len(),
            );
            if chars.peek().map(|&(_, c)| c) == Some('*') {
                chars.next();
                match args.get(arg_num) {
                    Some(Arg::Int(i)) if *i >= 0 => f.prec = Some(*i as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                arg_num += 1;
            } else {
                f.prec = Some(parse_num(&mut chars).unwrap_or(0));
            }
        }
        if f.minus {
            f.zero = false;
        }
        parse_arg_index(
            &mut chars,
            &mut arg_num,
            &mut reordered,
            &mut good_arg_num,
            args.len(),
        );
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        match verb {
            '%' => out.push('%'),
            _ if !good_arg_num => {
                let _ = write!(out, "%!{verb}(BADINDEX)");
            }
            _ if arg_num >= args.len() => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
            _ => {
                write_arg(&mut out, &args[arg_num], verb, &f);
                arg_num += 1;
            }
        }
    }
    if !reordered && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[arg_num..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match a {
                Arg::Nil => out.push_str("<nil>"),
                a => {
                    out.push_str(a.type_name());
                    out.push('=');
                    write_arg(&mut out, a, 'v', &Flags::default());
                }
            }
        }
        out.push(')');
    }
    out
}

type Chars<'s> = std::iter::Peekable<std::str::CharIndices<'s>>;

fn parse_num(chars: &mut Chars<'_>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(&(_, c)) = chars.peek() {
        let Some(d) = c.to_digit(10) else { break };
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}

/// Parses an explicit `[n]` argument index, as Go's `argNumber`.
fn parse_arg_index(
    chars: &mut Chars<'_>,
    arg_num: &mut usize,
    reordered: &mut bool,
    good: &mut bool,
    nargs: usize,
) {
    if chars.peek().map(|&(_, c)| c) != Some('[') {
        return;
    }
    *reordered = true;
    let mut probe = chars.clone();
    probe.next();
    let n = parse_num(&mut probe);
    if probe.peek().map(|&(_, c)| c) == Some(']') {
        probe.next();
        *chars = probe;
        match n {
            Some(n) if n >= 1 && n <= nargs => *arg_num = n - 1,
            _ => *good = false,
        }
    } else {
        // No closing bracket: Go skips to after the text and reports a bad index.
        *chars = probe;
        *good = false;
    }
}

fn write_arg(out: &mut String, arg: &Arg<'_>, verb: char, f: &Flags) {
    match arg {
        Arg::Nil => match verb {
            'v' | 'T' => pad(out, "<nil>", f),
            _ => bad_verb(out, arg, verb),
        },
        Arg::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, f),
            _ => bad_verb(out, arg, verb),
        },
        Arg::Int(i) => fmt_int(out, arg, i.unsigned_abs(), *i < 0, verb, f),
        Arg::Uint(u) => fmt_int(out, arg, *u, false, verb, f),
        Arg::Float(x) => match verb {
            'v' => fmt_float(out, *x, 'g', None, f),
            'b' | 'g' | 'G' | 'x' | 'X' => fmt_float(out, *x, verb, None, f),
            'f' | 'e' | 'E' => fmt_float(out, *x, verb, Some(6), f),
            'F' => fmt_float(out, *x, 'f', Some(6), f),
            _ => bad_verb(out, arg, verb),
        },
        Arg::Str(s) => fmt_str(out, arg, s, verb, f),
        Arg::Slice(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_elem(out, item, verb, f);
            }
            out.push(']');
        }
        Arg::Map(m) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_str(out, &Arg::Str(k), k, verb, f);
                out.push(':');
                write_elem(out, &m[k], verb, f);
            }
            out.push(']');
        }
    }
}

/// An element of a slice or map: a nil interface prints `<nil>` whatever the verb.
fn write_elem(out: &mut String, item: &JsonValue, verb: char, f: &Flags) {
    match item {
        JsonValue::Null => pad(out, "<nil>", f),
        item => write_arg(out, &Arg::json(item), verb, f),
    }
}

fn bad_verb(out: &mut String, arg: &Arg<'_>, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match arg {
        Arg::Nil => out.push_str("<nil>"),
        a => {
            out.push_str(a.type_name());
            out.push('=');
            write_arg(out, a, 'v', &Flags::default());
        }
    }
    out.push(')');
}

/// Pads `s` to the width in runes, as Go's `fmt.pad`.
fn pad(out: &mut String, s: &str, f: &Flags) {
    let n = s.chars().count();
    let Some(wid) = f.wid.filter(|&w| w > n) else {
        out.push_str(s);
        return;
    };
    let fill = if f.zero { '0' } else { ' ' };
    if f.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', wid - n));
    } else {
        out.extend(std::iter::repeat_n(fill, wid - n));
        out.push_str(s);
    }
}

fn fmt_str(out: &mut String, arg: &Arg<'_>, s: &str, verb: char, f: &Flags) {
    let s = match f.prec {
        Some(p) => {
            let end = s.char_indices().nth(p).map_or(s.len(), |(i, _)| i);
            &s[..end]
        }
        None => s,
    };
    match verb {
        'v' | 's' => pad(out, s, f),
        'q' => pad(out, &quote(s), f),
        'x' | 'X' => {
            let mut hex = String::new();
            for (i, b) in s.bytes().enumerate() {
                if i > 0 && f.space {
                    hex.push(' ');
                }
                if f.sharp && (i == 0 || f.space) {
                    hex.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(hex, "{b:02x}");
                } else {
                    let _ = write!(hex, "{b:02X}");
                }
            }
            pad(out, &hex, f);
        }
        _ => bad_verb(out, arg, verb),
    }
}

fn fmt_int(out: &mut String, arg: &Arg<'_>, u: u64, negative: bool, verb: char, f: &Flags) {
    let (base, upper) = match verb {
        'v' | 'd' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = char::from_u32(u32::try_from(u).unwrap_or(0xFFFD)).unwrap_or('\u{FFFD}');
            pad(out, c.encode_utf8(&mut [0; 4]), f);
            return;
        }
        'q' => {
            let c = char::from_u32(u32::try_from(u).unwrap_or(0xFFFD)).unwrap_or('\u{FFFD}');
            pad(out, &quote_rune(c), f);
            return;
        }
        'U' => {
            let mut s = format!("U+{u:04X}");
            if f.sharp {
                if let Some(c) = char::from_u32(u32::try_from(u).unwrap_or(0xFFFD)) {
                    if is_print(c) {
                        let _ = write!(s, " '{c}'");
                    }
                }
            }
            pad(out, &s, f);
            return;
        }
        _ => {
            bad_verb(out, arg, verb);
            return;
        }
    };
    if f.prec == Some(0) && u == 0 {
        // Precision 0 and value 0 print nothing but padding.
        let mut g = f.clone();
        g.zero = false;
        pad(out, "", &g);
        return;
    }
    let mut digits = match base {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        16 if upper => format!("{u:X}"),
        16 => format!("{u:x}"),
        _ => u.to_string(),
    };
    let min_digits = match f.prec {
        Some(p) => p,
        None if f.zero && !f.minus && f.wid.is_some() => {
            let w = f.wid.unwrap_or(0);
            if negative || f.plus || f.space {
                w.saturating_sub(1)
            } else {
                w
            }
        }
        None => 0,
    };
    if digits.len() < min_digits {
        digits = "0".repeat(min_digits - digits.len()) + &digits;
    }
    let mut prefix = String::new();
    if negative {
        prefix.push('-');
    } else if f.plus {
        prefix.push('+');
    } else if f.space {
        prefix.push(' ');
    }
    if f.sharp {
        match base {
            2 => prefix.push_str("0b"),
            8 if !digits.starts_with('0') => prefix.push('0'),
            16 => prefix.push_str(if upper { "0X" } else { "0x" }),
            _ => {}
        }
    }
    if verb == 'O' {
        prefix.push_str("0o");
    }
    let mut g = f.clone();
    g.zero = false;
    pad(out, &(prefix + &digits), &g);
}

fn fmt_float(out: &mut String, x: f64, verb: char, default_prec: Option<usize>, f: &Flags) {
    let prec = f.prec.or(default_prec);
    if x.is_nan() || x.is_infinite() {
        let s = if x.is_nan() {
            if f.plus {
                "+NaN"
            } else if f.space {
                " NaN"
            } else {
                "NaN"
            }
        } else if x < 0.0 {
            "-Inf"
        } else if f.plus {
            "+Inf"
        } else if f.space {
            " Inf"
        } else {
            "+Inf"
        };
        let mut g = f.clone();
        g.zero = false;
        pad(out, s, &g);
        return;
    }
    let verb = match verb {
        'b' | 'x' | 'X' => 'g',
        v => v,
    };
    let num = format_float(x.abs(), verb, prec);
    let sign = if x.is_sign_negative() {
        Some('-')
    } else if f.plus {
        Some('+')
    } else if f.space {
        Some(' ')
    } else {
        None
    };
    match sign {
        Some(sign) => {
            let len = num.len() + 1;
            if f.zero && !f.minus && f.wid.is_some_and(|w| w > len) {
                out.push(sign);
                out.extend(std::iter::repeat_n('0', f.wid.unwrap_or(0) - len));
                out.push_str(&num);
            } else {
                pad(out, &format!("{sign}{num}"), f);
            }
        }
        None => pad(out, &num, f),
    }
}

/// Decimal digits of a non-negative float: `0.d1d2d3... x 10^dp`, without trailing zeros.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

impl Digits {
    /// From Rust's `{:e}` rendering, which is exactly rounded like Go's strconv.
    fn parse(e: &str) -> Digits {
        let (mant, exp) = e.split_once('e').unwrap_or((e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Digits { d, dp: 0 };
        }
        Digits { d, dp: exp + 1 }
    }

    fn shortest(x: f64) -> Digits {
        Digits::parse(&format!("{x:e}"))
    }

    fn rounded(x: f64, sig: usize) -> Digits {
        Digits::parse(&format!("{:.*e}", sig.saturating_sub(1), x))
    }

    fn nd(&self) -> i32 {
        self.d.len() as i32
    }

    /// Go's `fmtE` with `prec` digits after the point.
    fn fmt_e(&self, prec: i32, upper: bool) -> String {
        let mut s = String::new();
        s.push(self.d.first().map_or('0', |&c| c as char));
        if prec > 0 {
            s.push('.');
            for i in 1..=prec {
                s.push(self.d.get(i as usize).map_or('0', |&c| c as char));
            }
        }
        s.push(if upper { 'E' } else { 'e' });
        let exp = if self.d.is_empty() { 0 } else { self.dp - 1 };
        s.push(if exp < 0 { '-' } else { '+' });
        let exp = exp.unsigned_abs();
        if exp < 10 {
            s.push('0');
        }
        let _ = write!(s, "{exp}");
        s
    }

    /// Go's `fmtF` with `prec` digits after the point.
    fn fmt_f(&self, prec: i32) -> String {
        let mut s = String::new();
        if self.dp > 0 {
            for i in 0..self.dp {
                s.push(self.d.get(i as usize).map_or('0', |&c| c as char));
            }
        } else {
            s.push('0');
        }
        if prec > 0 {
            s.push('.');
            for i in 1..=prec {
                let j = self.dp + i - 1;
                let c = if j >= 0 {
                    self.d.get(j as usize).copied()
                } else {
                    None
                };
                s.push(c.map_or('0', |c| c as char));
            }
        }
        s
    }

    /// Go's `%g` decision between `%e` and `%f`.
    fn fmt_g(&self, prec: i32, shortest: bool, upper: bool) -> String {
        let mut eprec = prec;
        if eprec > self.nd() && self.nd() >= self.dp {
            eprec = self.nd();
        }
        if shortest {
            eprec = 6;
        }
        let exp = self.dp - 1;
        if exp < -4 || exp >= eprec {
            let p = prec.min(self.nd());
            return self.fmt_e((p - 1).max(0), upper);
        }
        let p = if prec > self.dp { self.nd() } else { prec };
        self.fmt_f((p - self.dp).max(0))
    }
}

/// strconv.FormatFloat of a non-negative float with verb e/E/f/g/G and optional precision.
fn format_float(x: f64, verb: char, prec: Option<usize>) -> String {
    match (verb, prec) {
        ('f', Some(p)) => format!("{x:.p$}"),
        ('e' | 'E', Some(p)) => Digits::rounded(x, p + 1).fmt_e(p as i32, verb == 'E'),
        ('e' | 'E', None) => {
            let d = Digits::shortest(x);
            d.fmt_e((d.nd() - 1).max(0), verb == 'E')
        }
        ('f', None) => {
            let d = Digits::shortest(x);
            d.fmt_f((d.nd() - d.dp).max(0))
        }
        (_, Some(p)) => {
            let p = p.max(1);
            Digits::rounded(x, p).fmt_g(p as i32, false, verb == 'G')
        }
        (_, None) => {
            let d = Digits::shortest(x);
            d.fmt_g(d.nd(), true, verb == 'G')
        }
    }
}

/// A float as Go's `%v` prints it (`1e+06`, `0.5`, `3`).
#[cfg(test)]
fn go_float(x: f64) -> String {
    let mut out = String::new();
    fmt_float(&mut out, x, 'g', None, &Flags::default());
    out
}

/// Go's `unicode.IsPrint`, approximately: graphic characters and the ASCII space.
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xD800..=0xDFFF | 0xE000..=0xF8FF
        | 0xE0000..=0xE007F | 0xF0000..=0x10FFFF)
}

fn escape_rune(out: &mut String, c: char, quote: char) {
    match c {
        _ if c == quote || c == '\\' => {
            out.push('\\');
            out.push(c);
        }
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ if is_print(c) => out.push(c),
        _ if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        _ => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_rune(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune`.
fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_rune(&mut out, c, '\'');
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn j(v: JsonValue) -> Val {
        Val::Json(v)
    }

    #[test]
    fn prints_like_go_fprint() {
        assert_eq!(print_value(&j(json!("a b"))), "a b");
        assert_eq!(print_value(&j(json!(3))), "3");
        assert_eq!(print_value(&j(json!(-3))), "-3");
        assert_eq!(print_value(&j(json!(1.5))), "1.5");
        assert_eq!(print_value(&j(json!(true))), "true");
        assert_eq!(print_value(&Val::Invalid), "<no value>");
        assert_eq!(print_value(&j(json!(["a", "b c", null]))), "[a b c <nil>]");
        assert_eq!(
            print_value(&j(json!({"b": 1, "a": {"y": [], "x": {}}}))),
            "map[a:map[x:map[] y:[]] b:1]"
        );
    }

    #[test]
    fn floats_print_like_go_v() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.5), "1.2345675e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(2.0), "2");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(-2.5), "-2.5");
    }

    #[test]
    fn sprintf_verbs() {
        let s = |f: &str, a: &[Val]| sprintf(f, a);
        assert_eq!(s("%s-%d", &[Val::string("x"), Val::int(42)]), "x-42");
        assert_eq!(
            s("%5s|%-5s|", &[Val::string("ab"), Val::string("cd")]),
            "   ab|cd   |"
        );
        assert_eq!(
            s(
                "%05d %x %X %o %b",
                &[
                    Val::int(-42),
                    Val::int(255),
                    Val::int(255),
                    Val::int(8),
                    Val::int(5)
                ]
            ),
            "-0042 ff FF 10 101"
        );
        assert_eq!(
            s(
                "%.2f %e %g %.3g",
                &[
                    j(json!(1.23456)),
                    j(json!(1234.5)),
                    j(json!(1e21)),
                    j(json!(2.0))
                ]
            ),
            "1.23 1.234500e+03 1e+21 2"
        );
        assert_eq!(
            s(
                "%q %v %t",
                &[Val::string("a\"b\n"), j(json!([1, 2])), Val::bool(true)]
            ),
            "\"a\\\"b\\n\" [1 2] true"
        );
        assert_eq!(s("%d", &[Val::string("x")]), "%!d(string=x)");
        assert_eq!(s("%d %d", &[Val::int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            s("%d", &[Val::int(1), Val::string("x")]),
            "1%!(EXTRA string=x)"
        );
        assert_eq!(
            s("%v %s", &[Val::Invalid, Val::Invalid]),
            "<nil> %!s(<nil>)"
        );
        assert_eq!(s("100%%", &[]), "100%");
        assert_eq!(
            s("%[2]s %[1]s", &[Val::string("a"), Val::string("b")]),
            "b a"
        );
        assert_eq!(s("%q", &[j(json!(["a", "b"]))]), "[\"a\" \"b\"]");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&[Val::string("a"), Val::int(1), Val::int(2), Val::string("b")]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[Val::string("a"), Val::int(1)]), "a 1\n");
    }
}
