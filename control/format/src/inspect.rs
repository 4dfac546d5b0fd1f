//! docker's `inspect` output: indented JSON array, compact JSON, or a template per object.

use serde_json::Value as JsonValue;

use crate::gojson::{self, Style};
use crate::template::{FuncSet, Template};
use crate::value::Val;
use crate::FormatError;

/// `json.MarshalIndent` of the typed objects swarm commands inspect: struct key order, HTML escaped.
const MARSHAL: Style = Style {
    html: true,
    sort_keys: false,
};

/// See [`crate::render_inspect_partial`].
pub(crate) fn render(
    values: &[JsonValue],
    format: Option<&str>,
) -> Result<(String, Vec<FormatError>), FormatError> {
    match format.unwrap_or("") {
        "" => {
            if values.is_empty() {
                return Ok(("[]\n".into(), Vec::new()));
            }
            let array = JsonValue::Array(values.to_vec());
            Ok((gojson::indented(&array, MARSHAL, "    ") + "\n", Vec::new()))
        }
        "json" => {
            let array = JsonValue::Array(values.to_vec());
            Ok((gojson::compact(&array, MARSHAL) + "\n", Vec::new()))
        }
        text => {
            let tmpl = Template::parse(text)?;
            let mut out = String::new();
            let mut errors = Vec::new();
            for v in values {
                let mut one = String::new();
                match tmpl.execute(&Val::Json(v.clone()), FuncSet::Basic, &mut one) {
                    Ok(()) => {
                        out.push_str(&one);
                        out.push('\n');
                    }
                    Err(e) => errors.push(e),
                }
            }
            if out.is_empty() {
                out.push('\n');
            }
            Ok((out, errors))
        }
    }
}
