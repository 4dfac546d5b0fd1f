//! Template functions: Go's builtins and docker's (cli templates/templates.go), with their signatures.

use serde_json::{Map, Value as JsonValue};

use crate::gofmt::{print_value, sprint, sprintf, sprintln};
use crate::gojson::{self, Style};
use crate::value::{json_kind, Kind, Val};

/// A parameter type, which decides how arguments are checked and converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Param {
    /// `interface{}`: anything; the invalid value arrives as nil.
    Any,
    /// `reflect.Value`: anything, the invalid value included.
    Value,
    Str,
    Int,
    StrSlice,
}

impl Param {
    pub(super) fn go_name(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Value => "reflect.Value",
            Param::Str => "string",
            Param::Int => "int",
            Param::StrSlice => "[]string",
        }
    }

    pub(super) fn can_be_nil(self) -> bool {
        matches!(self, Param::Any | Param::Value | Param::StrSlice)
    }
}

pub(super) type Impl = fn(&[Val]) -> Result<Val, String>;

/// A callable function: fixed parameters, an optional variadic tail, the implementation.
pub(super) struct Func {
    pub fixed: &'static [Param],
    pub variadic: Option<Param>,
    pub call: Impl,
}

/// Which set of docker functions is installed: rows use the real ones; the table header is
/// rendered with docker's `HeaderFunctions`, which return their first argument unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FuncSet {
    Basic,
    Header,
}

const fn f(fixed: &'static [Param], variadic: Option<Param>, call: Impl) -> Func {
    Func {
        fixed,
        variadic,
        call,
    }
}

use Param::{Any, Int, Str, StrSlice, Value};

/// Names the parser accepts.
pub(super) fn is_defined(name: &str) -> bool {
    lookup(name, FuncSet::Basic).is_some()
}

pub(super) fn lookup(name: &str, set: FuncSet) -> Option<Func> {
    if set == FuncSet::Header {
        let header = match name {
            "json" | "title" | "lower" | "upper" => Some(f(&[Str], None, first)),
            "split" | "join" => Some(f(&[Str, Str], None, first)),
            "truncate" => Some(f(&[Str, Int], None, first)),
            _ => None,
        };
        if header.is_some() {
            return header;
        }
    }
    Some(match name {
        // Go builtins; "and" and "or" are short-circuited by the executor.
        "and" | "or" => f(&[Value], Some(Value), first),
        "not" => f(&[Value], None, not),
        "call" => f(&[Value], Some(Value), call),
        "html" => f(&[], Some(Any), html),
        "js" => f(&[], Some(Any), js),
        "urlquery" => f(&[], Some(Any), urlquery),
        "index" => f(&[Value], Some(Value), index),
        "slice" => f(&[Value], Some(Value), slice),
        "len" => f(&[Value], None, len),
        "print" => f(&[], Some(Any), |a| Ok(Val::string(sprint(a)))),
        "println" => f(&[], Some(Any), |a| Ok(Val::string(sprintln(a)))),
        "printf" => f(&[Str], Some(Any), printf),
        "eq" => f(&[Value], Some(Value), eq),
        "ne" => f(&[Value, Value], None, ne),
        "lt" => f(&[Value, Value], None, lt),
        "le" => f(&[Value, Value], None, le),
        "gt" => f(&[Value, Value], None, gt),
        "ge" => f(&[Value, Value], None, ge),
        // docker's basicFunctions.
        "json" => f(&[Any], None, json),
        "split" => f(&[Str, Str], None, split),
        "join" => f(&[StrSlice, Str], None, join),
        "title" => f(&[Str], None, title),
        "lower" => f(&[Str], None, |a| Ok(Val::string(s(&a[0]).to_lowercase()))),
        "upper" => f(&[Str], None, |a| Ok(Val::string(s(&a[0]).to_uppercase()))),
        "pad" => f(&[Str, Int, Int], None, pad),
        "truncate" => f(&[Str, Int], None, truncate),
        _ => return None,
    })
}

/// A `string` argument; the executor has checked the type.
fn s(v: &Val) -> &str {
    v.as_str().unwrap_or_default()
}

/// An `int` argument; the executor has checked the type.
fn int(v: &Val) -> i64 {
    match v.kind() {
        Kind::Int(i) => i,
        _ => 0,
    }
}

fn first(a: &[Val]) -> Result<Val, String> {
    Ok(a[0].clone())
}

fn not(a: &[Val]) -> Result<Val, String> {
    Ok(Val::bool(!a[0].is_true()))
}

fn call(a: &[Val]) -> Result<Val, String> {
    match &a[0] {
        Val::Invalid => Err("call of nil".into()),
        v => Err(format!("non-function of type {}", v.type_name())),
    }
}

/// Go's `evalArgs`: the lone string argument, or `fmt.Sprint` of the arguments where a
/// missing value has become the string `<no value>`.
fn eval_args(a: &[Val]) -> String {
    if let [v] = a {
        if let Some(s) = v.as_str() {
            return s.to_string();
        }
    }
    let printable: Vec<Val> = a
        .iter()
        .map(|v| {
            if *v == Val::Invalid {
                Val::string("<no value>")
            } else {
                v.clone()
            }
        })
        .collect();
    sprint(&printable)
}

fn html(a: &[Val]) -> Result<Val, String> {
    let s = eval_args(a);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Ok(Val::string(out))
}

fn js(a: &[Val]) -> Result<Val, String> {
    let s = eval_args(a);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if !c.is_ascii() && !crate::gofmt::is_print(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    Ok(Val::string(out))
}

fn urlquery(a: &[Val]) -> Result<Val, String> {
    let s = eval_args(a);
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(Val::string(out))
}

/// Go's `indexArg`: an integer index within `0..=cap`.
fn index_arg(index: &Val, cap: usize) -> Result<usize, String> {
    let x: i128 = match index.kind() {
        Kind::Int(i) => i as i128,
        Kind::Uint(u) => u as i128,
        Kind::Invalid => return Err("cannot index slice/array with nil".into()),
        _ => {
            return Err(format!(
                "cannot index slice/array with type {}",
                index.type_name()
            ))
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(a: &[Val]) -> Result<Val, String> {
    let mut item = a[0].clone().dig();
    if item == Val::Invalid {
        return Err("index of untyped nil".into());
    }
    for index in &a[1..] {
        let index = index.clone().dig();
        item = match item {
            Val::Invalid | Val::Json(JsonValue::Null) => return Err("index of nil pointer".into()),
            Val::Json(JsonValue::Array(items)) => {
                let x = index_arg(&index, items.len())?;
                match items.into_iter().nth(x) {
                    Some(v) => Val::Json(v),
                    None => return Err(format!("index out of range: {x}")),
                }
            }
            Val::Json(JsonValue::String(s)) => {
                let x = index_arg(&index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(&b) => Val::int(b as i64),
                    None => return Err(format!("index out of range: {x}")),
                }
            }
            Val::Json(JsonValue::Object(m)) => match &index {
                Val::Json(JsonValue::String(k)) => m
                    .get(k)
                    .cloned()
                    .map_or(Val::Json(JsonValue::Null), Val::Json),
                Val::Invalid => m
                    .get("")
                    .cloned()
                    .map_or(Val::Json(JsonValue::Null), Val::Json),
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ))
                }
            },
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(a: &[Val]) -> Result<Val, String> {
    let item = a[0].clone().dig();
    let indexes = &a[1..];
    if item == Val::Invalid {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match &item {
        Val::Json(JsonValue::String(s)) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Val::Json(JsonValue::Array(v)) => v.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Val::Json(JsonValue::String(s)) => {
            Val::string(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]))
        }
        Val::Json(JsonValue::Array(v)) => Val::Json(JsonValue::Array(v[idx[0]..idx[1]].to_vec())),
        _ => Val::Invalid,
    })
}

fn len(a: &[Val]) -> Result<Val, String> {
    let n = match &a[0] {
        Val::Invalid => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        Val::Json(JsonValue::Null) => return Err("len of nil pointer".into()),
        Val::Json(JsonValue::String(s)) => s.len(),
        Val::Json(JsonValue::Array(v)) => v.len(),
        Val::Json(JsonValue::Object(m)) => m.len(),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Val::int(n as i64))
}

fn printf(a: &[Val]) -> Result<Val, String> {
    Ok(Val::string(sprintf(s(&a[0]), &a[1..])))
}

const ERR_BAD_COMPARISON_TYPE: &str = "invalid type for comparison";
const ERR_BAD_COMPARISON: &str = "incompatible types for comparison";

/// Go's `eq` for one pair.
fn eq_pair(a: &Val, b: &Val) -> Result<bool, String> {
    let (a, b) = (a.clone().dig(), b.clone().dig());
    Ok(match (a.kind(), b.kind()) {
        (Kind::Bool(x), Kind::Bool(y)) => x == y,
        (Kind::Int(x), Kind::Int(y)) => x == y,
        (Kind::Uint(x), Kind::Uint(y)) => x == y,
        (Kind::Int(x), Kind::Uint(y)) | (Kind::Uint(y), Kind::Int(x)) => x >= 0 && x as u64 == y,
        (Kind::Float(x), Kind::Float(y)) => x == y,
        (Kind::Str(x), Kind::Str(y)) => x == y,
        (Kind::Invalid, Kind::Invalid) => true,
        (Kind::Invalid, Kind::Other) | (Kind::Other, Kind::Invalid) => false,
        (Kind::Invalid, _) | (_, Kind::Invalid) => false,
        (Kind::Other, Kind::Other) => {
            return Err(format!(
                "non-comparable type {}: {}",
                print_value(&b),
                b.type_name()
            ));
        }
        _ => return Err(ERR_BAD_COMPARISON.into()),
    })
}

fn eq(a: &[Val]) -> Result<Val, String> {
    if a.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for b in &a[1..] {
        if eq_pair(&a[0], b)? {
            return Ok(Val::bool(true));
        }
    }
    Ok(Val::bool(false))
}

fn ne(a: &[Val]) -> Result<Val, String> {
    Ok(Val::bool(!eq_pair(&a[0], &a[1])?))
}

fn lt_pair(a: &Val, b: &Val) -> Result<bool, String> {
    let (a, b) = (a.clone().dig(), b.clone().dig());
    Ok(match (a.kind(), b.kind()) {
        (Kind::Invalid | Kind::Other, _) | (_, Kind::Invalid | Kind::Other) => {
            return Err(ERR_BAD_COMPARISON_TYPE.into());
        }
        (Kind::Int(x), Kind::Int(y)) => x < y,
        (Kind::Uint(x), Kind::Uint(y)) => x < y,
        (Kind::Int(x), Kind::Uint(y)) => x < 0 || (x as u64) < y,
        (Kind::Uint(x), Kind::Int(y)) => y >= 0 && x < y as u64,
        (Kind::Float(x), Kind::Float(y)) => x < y,
        (Kind::Str(x), Kind::Str(y)) => x < y,
        (Kind::Bool(_), Kind::Bool(_)) => return Err(ERR_BAD_COMPARISON_TYPE.into()),
        _ => return Err(ERR_BAD_COMPARISON.into()),
    })
}

fn lt(a: &[Val]) -> Result<Val, String> {
    Ok(Val::bool(lt_pair(&a[0], &a[1])?))
}

fn le(a: &[Val]) -> Result<Val, String> {
    Ok(Val::bool(lt_pair(&a[0], &a[1])? || eq_pair(&a[0], &a[1])?))
}

fn gt(a: &[Val]) -> Result<Val, String> {
    let le = lt_pair(&a[0], &a[1])? || eq_pair(&a[0], &a[1])?;
    Ok(Val::bool(!le))
}

fn ge(a: &[Val]) -> Result<Val, String> {
    Ok(Val::bool(!lt_pair(&a[0], &a[1])?))
}

/// docker's `json`: `json.Encoder` with HTML escaping off, minus the trailing newline.
/// A list row marshals through its `MarshalJSON` (a sorted, HTML-escaped map).
fn json_text(v: &Val) -> String {
    match v {
        Val::Invalid => "null".into(),
        Val::Json(j) => gojson::compact(
            j,
            Style {
                html: false,
                sort_keys: false,
            },
        ),
        Val::Row(m) => row_json(m),
    }
}

/// `json.Marshal` of a docker list row.
fn row_json(m: &Map<String, JsonValue>) -> String {
    // Methods that take an argument (`"Label()"`) are not marshalled, as in docker.
    let fields: Map<String, JsonValue> = m
        .iter()
        .filter(|(k, _)| !k.ends_with("()"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    gojson::compact(
        &JsonValue::Object(fields),
        Style {
            html: true,
            sort_keys: true,
        },
    )
}

fn json(a: &[Val]) -> Result<Val, String> {
    Ok(Val::string(json_text(&a[0])))
}

fn split(a: &[Val]) -> Result<Val, String> {
    let (text, sep) = (s(&a[0]), s(&a[1]));
    let parts: Vec<JsonValue> = if sep.is_empty() {
        text.chars()
            .map(|c| JsonValue::String(c.to_string()))
            .collect()
    } else {
        text.split(sep)
            .map(|p| JsonValue::String(p.to_string()))
            .collect()
    };
    Ok(Val::Json(JsonValue::Array(parts)))
}

fn join(a: &[Val]) -> Result<Val, String> {
    let elems: Vec<&str> = match &a[0] {
        Val::Json(JsonValue::Array(v)) => v.iter().filter_map(JsonValue::as_str).collect(),
        _ => Vec::new(),
    };
    Ok(Val::string(elems.join(s(&a[1]))))
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn title(a: &[Val]) -> Result<Val, String> {
    fn is_separator(c: char) -> bool {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        if c.is_alphabetic() || c.is_numeric() {
            return false;
        }
        c.is_whitespace()
    }
    let mut out = String::new();
    let mut prev = ' ';
    for c in s(&a[0]).chars() {
        if is_separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    Ok(Val::string(out))
}

fn pad(a: &[Val]) -> Result<Val, String> {
    let (source, prefix, suffix) = (s(&a[0]), int(&a[1]), int(&a[2]));
    if source.is_empty() {
        return Ok(Val::string(""));
    }
    if prefix < 0 || suffix < 0 {
        return Err("strings: negative Repeat count".into());
    }
    Ok(Val::string(format!(
        "{}{source}{}",
        " ".repeat(prefix as usize),
        " ".repeat(suffix as usize)
    )))
}

fn truncate(a: &[Val]) -> Result<Val, String> {
    let (source, length) = (s(&a[0]), int(&a[1]));
    if (source.len() as i64) < length {
        return Ok(Val::string(source));
    }
    if length < 0 {
        return Err(format!(
            "runtime error: slice bounds out of range [:{length}]"
        ));
    }
    let mut end = length as usize;
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Val::string(&source[..end]))
}

/// Kind check used by the executor for `int` parameters.
pub(super) fn is_int(v: &Val) -> bool {
    matches!(v, Val::Json(j) if matches!(json_kind(j), Kind::Int(_)))
}

/// Kind check used by the executor for `[]string` parameters.
pub(super) fn is_str_slice(v: &Val) -> bool {
    matches!(v, Val::Json(JsonValue::Array(items)) if items.iter().all(JsonValue::is_string))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(name: &str, args: &[Val]) -> Result<Val, String> {
        (lookup(name, FuncSet::Basic).unwrap().call)(args)
    }

    #[test]
    fn docker_functions() {
        assert_eq!(
            call("split", &[Val::string("a,b"), Val::string(",")]),
            Ok(Val::Json(json!(["a", "b"])))
        );
        assert_eq!(
            call("join", &[Val::Json(json!(["a", "b"])), Val::string("-")]),
            Ok(Val::string("a-b"))
        );
        assert_eq!(
            call("title", &[Val::string("hello wORLD foo_bar")]),
            Ok(Val::string("Hello WORLD Foo_bar"))
        );
        assert_eq!(
            call("pad", &[Val::string("x"), Val::int(2), Val::int(1)]),
            Ok(Val::string("  x "))
        );
        assert_eq!(
            call("pad", &[Val::string(""), Val::int(2), Val::int(1)]),
            Ok(Val::string(""))
        );
        assert_eq!(
            call("truncate", &[Val::string("abcdef"), Val::int(3)]),
            Ok(Val::string("abc"))
        );
        assert_eq!(
            call("truncate", &[Val::string("ab"), Val::int(3)]),
            Ok(Val::string("ab"))
        );
        assert_eq!(
            call("json", &[Val::Json(json!({"b": "<", "a": 1}))]),
            Ok(Val::string(r#"{"b":"<","a":1}"#))
        );
        assert_eq!(call("json", &[Val::Invalid]), Ok(Val::string("null")));
    }

    #[test]
    fn comparisons() {
        assert_eq!(
            call(
                "eq",
                &[Val::string("a"), Val::string("b"), Val::string("a")]
            ),
            Ok(Val::bool(true))
        );
        assert_eq!(
            call("eq", &[Val::Invalid, Val::string("a")]),
            Ok(Val::bool(false))
        );
        assert_eq!(
            call("eq", &[Val::int(1), Val::string("a")]),
            Err(ERR_BAD_COMPARISON.into())
        );
        assert_eq!(call("lt", &[Val::int(1), Val::int(2)]), Ok(Val::bool(true)));
        assert_eq!(
            call("ge", &[Val::string("b"), Val::string("a")]),
            Ok(Val::bool(true))
        );
        assert_eq!(
            call("gt", &[Val::bool(true), Val::bool(false)]),
            Err(ERR_BAD_COMPARISON_TYPE.into())
        );
    }

    #[test]
    fn index_slice_len() {
        let v = Val::Json(json!({"a": [10, 20, 30]}));
        assert_eq!(
            call("index", &[v.clone(), Val::string("a"), Val::int(1)]),
            Ok(Val::int(20))
        );
        assert_eq!(
            call("index", &[v.clone(), Val::string("zz")]),
            Ok(Val::Json(JsonValue::Null))
        );
        assert_eq!(
            call("index", &[Val::Json(json!([1])), Val::int(1)]),
            Err("index out of range: 1".into())
        );
        assert_eq!(
            call("slice", &[Val::string("abcdef"), Val::int(1), Val::int(3)]),
            Ok(Val::string("bc"))
        );
        assert_eq!(call("len", &[v]), Ok(Val::int(1)));
        assert_eq!(
            call("urlquery", &[Val::string("a b&c")]),
            Ok(Val::string("a+b%26c"))
        );
        assert_eq!(
            call("html", &[Val::string("<a href='x'>")]),
            Ok(Val::string("&lt;a href=&#39;x&#39;&gt;"))
        );
    }
}
