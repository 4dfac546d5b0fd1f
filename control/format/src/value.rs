//! Runtime values of a template execution, modelled on what Go's reflection sees in docker.

use serde_json::{Map, Number, Value as JsonValue};

/// Type name docker reports for a list row (a formatter sub-context) in error messages.
pub(crate) const ROW_TYPE: &str = "*formatter.SubContext";

/// A value flowing through a template.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    /// Go's zero `reflect.Value`: a missing map key, or a nil interface once a pipeline
    /// stage has dug into it. Prints as `<no value>`.
    Invalid,
    /// Decoded JSON. `Null` is a nil `interface{}` held by a map or slice.
    Json(JsonValue),
    /// A docker list row. Its fields are methods in docker, so a missing one is an error,
    /// and `json` marshals it like `json.Marshal` of a map: sorted keys, HTML escaped.
    Row(Map<String, JsonValue>),
}

/// The basic kinds Go's comparison functions distinguish.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind<'v> {
    Invalid,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'v str),
    /// Anything else: nil interfaces, slices, maps, rows.
    Other,
}

impl Val {
    pub(crate) fn int(i: i64) -> Val {
        Val::Json(JsonValue::Number(i.into()))
    }

    pub(crate) fn string(s: impl Into<String>) -> Val {
        Val::Json(JsonValue::String(s.into()))
    }

    pub(crate) fn bool(b: bool) -> Val {
        Val::Json(JsonValue::Bool(b))
    }

    /// Go's `reflect.ValueOf(v.Interface())` after a pipeline stage: a nil interface
    /// becomes the invalid value.
    pub(crate) fn dig(self) -> Val {
        match self {
            Val::Json(JsonValue::Null) => Val::Invalid,
            v => v,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Json(JsonValue::String(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> Kind<'_> {
        match self {
            Val::Invalid => Kind::Invalid,
            Val::Json(v) => json_kind(v),
            Val::Row(_) => Kind::Other,
        }
    }

    /// The Go type name docker's templates would report for this value.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Invalid => "<nil>",
            Val::Json(v) => json_type_name(v),
            Val::Row(_) => ROW_TYPE,
        }
    }

    /// Go's `isTrue`: the value is not the zero value of its type.
    pub(crate) fn is_true(&self) -> bool {
        match self {
            Val::Invalid => false,
            Val::Row(_) => true,
            Val::Json(v) => match v {
                JsonValue::Null => false,
                JsonValue::Bool(b) => *b,
                JsonValue::Number(n) => number_is_nonzero(n),
                JsonValue::String(s) => !s.is_empty(),
                JsonValue::Array(a) => !a.is_empty(),
                JsonValue::Object(o) => !o.is_empty(),
            },
        }
    }
}

pub(crate) fn json_kind(v: &JsonValue) -> Kind<'_> {
    match v {
        JsonValue::Bool(b) => Kind::Bool(*b),
        JsonValue::Number(n) => number_kind(n),
        JsonValue::String(s) => Kind::Str(s),
        JsonValue::Null | JsonValue::Array(_) | JsonValue::Object(_) => Kind::Other,
    }
}

pub(crate) fn number_kind(n: &Number) -> Kind<'static> {
    if let Some(i) = n.as_i64() {
        Kind::Int(i)
    } else if let Some(u) = n.as_u64() {
        Kind::Uint(u)
    } else {
        Kind::Float(n.as_f64().unwrap_or(0.0))
    }
}

fn number_is_nonzero(n: &Number) -> bool {
    match number_kind(n) {
        Kind::Int(i) => i != 0,
        Kind::Uint(u) => u != 0,
        Kind::Float(f) => f != 0.0,
        _ => true,
    }
}

pub(crate) fn json_type_name(v: &JsonValue) -> &'static str {
    match v {
        JsonValue::Null => "interface {}",
        JsonValue::Bool(_) => "bool",
        JsonValue::Number(n) => match number_kind(n) {
            Kind::Int(_) => "int",
            Kind::Uint(_) => "uint64",
            _ => "float64",
        },
        JsonValue::String(_) => "string",
        JsonValue::Array(_) => "[]interface {}",
        JsonValue::Object(_) => "map[string]interface {}",
    }
}

/// A float as a JSON value; Go templates only produce finite floats.
pub(crate) fn float_val(f: f64) -> Val {
    Number::from_f64(f).map_or(Val::Invalid, |n| Val::Json(JsonValue::Number(n)))
}
