//! The crate's error type: template errors worded as docker words them.

/// A `--format` template that does not parse or fails on a value. Both display as docker
/// prints them: `template parsing error: template: :1: ...` (docker uses that prefix for
/// execution errors too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The template text is invalid (`docker inspect` exits with status 64 for these).
    #[error("template parsing error: {0}")]
    Parse(String),
    /// The template failed while rendering a value.
    #[error("template parsing error: {0}")]
    Execute(String),
}
