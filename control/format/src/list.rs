//! docker's list output (`ls`, `ps`): table, bare template or JSON lines, from formatter.Context.

use serde_json::{Map, Value as JsonValue};

use crate::tabwriter;
use crate::template::{FuncSet, Template};
use crate::value::Val;
use crate::FormatError;

/// See [`crate::render_list`].
pub(crate) fn render(
    format: Option<&str>,
    default_table: &str,
    headers: &[(&str, &str)],
    rows: &[JsonValue],
) -> Result<String, FormatError> {
    // Each command's NewFormat turns "table" into its default; formatter.preFormat then
    // strips the "table" prefix and maps "json" to `{{json .}}`.
    let (is_table, text) = match format {
        None | Some("table") => (true, default_table),
        Some("json") => (false, "{{json .}}"),
        Some(f) if f.starts_with("table") => (true, &f["table".len()..]),
        Some(f) => (false, f),
    };
    let text = text
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let tmpl = Template::parse(&text)?;

    let mut body = String::new();
    for row in rows {
        let row = match row {
            JsonValue::Object(m) => Val::Row(m.clone()),
            other => Val::Json(other.clone()),
        };
        tmpl.execute(&row, FuncSet::Basic, &mut body)?;
        body.push('\n');
    }
    if !is_table {
        return Ok(body);
    }
    // The header row is the same template over the header texts, with docker's
    // HeaderFunctions; docker ignores its errors and keeps what was written.
    let header_map: Map<String, JsonValue> = headers
        .iter()
        .map(|(k, v)| ((*k).to_string(), JsonValue::String((*v).to_string())))
        .collect();
    let mut table = String::new();
    let _ = tmpl.execute(
        &Val::Json(JsonValue::Object(header_map)),
        FuncSet::Header,
        &mut table,
    );
    table.push('\n');
    table.push_str(&body);
    Ok(tabwriter::align(&table))
}
