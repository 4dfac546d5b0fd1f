//! Output exactly as the docker CLI prints it: `--format` Go templates, aligned tables, inspect JSON.
//!
//! The template engine is a port of Go's text/template (lexer, parser and executor keep Go's
//! semantics and error wording) rather than gtmpl: docker's output depends on details gtmpl
//! does differently, such as printing slices as `[a b]`, ranging over maps in key order, and
//! `len` of maps.
//!
//! Data is `serde_json::Value`. Objects behave like Go's `map[string]interface{}`: a missing
//! key prints `<no value>`, `range` visits keys in sorted order, `{{.}}` prints
//! `map[k:v ...]`, and `{{json .X}}` keeps the input key order (docker's typed structs
//! marshal in field order) without HTML escaping, as docker's `json` function does.

mod error;
mod gofmt;
mod gojson;
mod inspect;
mod list;
mod tabwriter;
mod template;
mod units;
mod value;
mod width;

use serde_json::Value as JsonValue;

pub use error::FormatError;
pub use units::{ellipsis, human_duration, pretty_print, truncate_id};

use template::{FuncSet, Template};
use value::Val;

/// Evaluates a docker `--format` Go template over a JSON value.
///
/// The literal sequences `\t` and `\n` in `template` become a tab and a newline, as docker's
/// list formatter does. Functions: Go's builtins (`and or not len index slice print printf
/// println eq ne lt le gt ge html js urlquery call`) and docker's (`json split join title
/// lower upper pad truncate`). Values print as Go prints them: strings raw, integers without
/// `.0`, floats as `%v`, `[a b c]` for arrays, `map[k1:v1 k2:v2]` (sorted) for objects, and
/// `<no value>` for a missing key.
pub fn render_template(template: &str, value: &JsonValue) -> Result<String, FormatError> {
    let text = template.replace("\\t", "\t").replace("\\n", "\n");
    let tmpl = Template::parse(&text)?;
    let mut out = String::new();
    tmpl.execute(&Val::Json(value.clone()), FuncSet::Basic, &mut out)?;
    Ok(out)
}

/// docker's list output (`node ls`, `service ls`, `service ps`, ...).
///
/// `format` is the user's `--format`: `None` or `"table"` print `default_table` (the
/// command's template without the `table ` prefix) as a table; `"table TMPL"` prints TMPL as
/// a table; `"json"` prints each row as one compact JSON object with sorted keys and HTML
/// escaping (`"*:8080-\u003e80/tcp"`); any other text is a template printed once per row with
/// no header and no alignment. The template is trimmed of spaces and `\t`/`\n` are expanded.
///
/// A table's header row is the template rendered over `headers` (placeholder name to header
/// text, e.g. `("ManagerStatus", "MANAGER STATUS")`), where docker's header functions leave
/// their argument unchanged and names not listed print `<no value>`. Columns are aligned like
/// Go's tabwriter (minwidth 10, padding 3): each cell is padded to max(10, widest + 3); the
/// cell after a line's last tab is not padded. With no rows a table prints only its header.
///
/// Rows are objects of placeholder values (strings, or a bool for node `Self`). Referring to
/// a placeholder a row lacks is an error, as calling a missing method is in docker.
pub fn render_list(
    format: Option<&str>,
    default_table: &str,
    headers: &[(&str, &str)],
    rows: &[JsonValue],
) -> Result<String, FormatError> {
    list::render(format, default_table, headers, rows)
}

/// docker's inspect output.
///
/// With `format` `None` (or `""`): a JSON array of the values, indented 4 spaces like Go's
/// `json.MarshalIndent` (`"Key": value`, empty `{}` and `[]` inline, `<>&` escaped as Go
/// does for the typed objects swarm commands print), then `\n`; no values print `[]\n`.
/// With `"json"`: the same array compact on one line. Otherwise each value is rendered with
/// the template (no `\t`/`\n` expansion: docker inspect does none) and followed by `\n`.
///
/// The first failing value's error is returned; [`render_inspect_partial`] gives docker's
/// full behaviour (print the values that rendered, then report every error).
pub fn render_inspect(values: &[JsonValue], format: Option<&str>) -> Result<String, FormatError> {
    let (out, errors) = render_inspect_partial(values, format)?;
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Like [`render_inspect`], but a value that fails to render does not stop the others:
/// returns the output of those that rendered (a lone `\n` if none did, as docker prints)
/// and the errors of those that failed, in order. Only an unparsable template is an `Err`.
pub fn render_inspect_partial(
    values: &[JsonValue],
    format: Option<&str>,
) -> Result<(String, Vec<FormatError>), FormatError> {
    inspect::render(values, format)
}
