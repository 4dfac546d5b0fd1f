//! The loader's one error type; every message starts with the compose file and names the place.

use std::io;
use std::path::PathBuf;

/// Why a set of compose files cannot be deployed. Paths use docker's dotted form with list
/// indexes in brackets: `services.web.ports[0]`.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("specify a Compose file (with --compose-file)")]
    NoFiles,
    /// Not YAML; `message` ends with the line and column, as the YAML parser reports them.
    #[error("{file}: {message}")]
    Syntax {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A problem with the file as a whole (top level not a mapping, version).
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// A schema violation, worded as docker's schema check: `services.web Additional property
    /// foo is not allowed`, `services.web.image must be a string`.
    #[error("{file}: {path} {message}")]
    Schema {
        file: String,
        path: String,
        message: String,
    },
    /// A value of the right type that means nothing valid: `services.web.ports[0]: invalid
    /// port "80:x"`, `services.web.networks: undefined network "x"`.
    #[error("{file}: {path}: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },
    /// Keys docker refuses outright (`mem_limit`, `extends`, ...); `options` holds one
    /// `key: hint` per key, sorted, separated by blank lines, as docker prints them.
    #[error("{file}: compose file contains unsupported options:\n\n{options}\n")]
    Forbidden { file: String, options: String },
    /// A `$` that starts no valid `${VAR}` form, or a `${VAR?message}` whose variable is unset.
    #[error(
        "{file}: invalid interpolation format for {path}: {template:?}; you may need to escape any $ with another $"
    )]
    Interpolation {
        file: String,
        path: String,
        template: String,
    },
    /// `${VAR}` put into a field that must be a number or boolean, with a value that is not.
    #[error(
        "{file}: error while interpolating {path}: failed to cast to expected type: {message}"
    )]
    Cast {
        file: String,
        path: String,
        message: String,
    },
    #[error("{file}: {path}: cannot read env file {}: {source}", env_file.display())]
    EnvFile {
        file: String,
        path: String,
        env_file: PathBuf,
        #[source]
        source: io::Error,
    },
}
