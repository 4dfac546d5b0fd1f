//! `shoal secret ...` and `shoal config ...`: create, ls, inspect, rm, with docker's
//! flags, tables, pretty formats and messages (docker/cli cli/command/secret and config).

use std::collections::BTreeMap;
use std::io::Read;

use clap::Subcommand;
use serde_json::{json, Value};

use super::task_filter::TaskFilter;
use super::{call, unexpected, CliResult};
use crate::api::{ApiError, ApiReply, ApiRequest};
use crate::secrets::{Data, Kind};

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Create a secret from a file or STDIN as content
    Create {
        /// Secret labels
        #[arg(short, long)]
        label: Vec<String>,
        /// Secret driver
        #[arg(short, long)]
        driver: Option<String>,
        /// Template driver
        #[arg(long)]
        template_driver: Option<String>,
        name: String,
        file: Option<String>,
    },
    /// List secrets
    #[command(alias = "list")]
    Ls {
        /// Only display IDs
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
        /// Filter output based on conditions provided
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
    },
    /// Display detailed information on one or more secrets
    Inspect {
        #[arg(short, long, help = super::help::INSPECT_FORMAT_HELP)]
        format: Option<String>,
        /// Print the information in a human friendly format
        #[arg(long)]
        pretty: bool,
        #[arg(required = true)]
        secrets: Vec<String>,
    },
    /// Remove one or more secrets
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        secrets: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Create a config from a file or STDIN
    Create {
        /// Config labels
        #[arg(short, long)]
        label: Vec<String>,
        /// Template driver
        #[arg(long)]
        template_driver: Option<String>,
        name: String,
        file: String,
    },
    /// List configs
    #[command(alias = "list")]
    Ls {
        /// Only display IDs
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
        /// Filter output based on conditions provided
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
    },
    /// Display detailed information on one or more configs
    Inspect {
        #[arg(short, long, help = super::help::INSPECT_FORMAT_HELP)]
        format: Option<String>,
        /// Print the information in a human friendly format
        #[arg(long)]
        pretty: bool,
        #[arg(required = true)]
        configs: Vec<String>,
    },
    /// Remove one or more configs
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        configs: Vec<String>,
    },
}

pub async fn run_secret(host: &str, cmd: SecretCommand) -> CliResult {
    let kind = Kind::Secret;
    match cmd {
        SecretCommand::Create {
            label,
            driver,
            template_driver,
            name,
            file,
        } => {
            let labels = labels(&label)?;
            refuse_template_driver(template_driver)?;
            if let Some(driver) = driver {
                if file.is_some() {
                    return Err(ApiError::plain(
                        "when using secret driver secret data must be empty",
                    ));
                }
                // Shoal has no secret driver plugins to ask for the data.
                return Err(ApiError::daemon(format!("plugin {driver:?} not found")));
            }
            let data = read_data(kind, file.as_deref().unwrap_or(""))?;
            create(host, kind, name, labels, data).await
        }
        SecretCommand::Ls {
            quiet,
            format,
            filter,
        } => list(host, kind, quiet, format, filter).await,
        SecretCommand::Inspect {
            format,
            pretty,
            secrets,
        } => inspect(host, kind, secrets, format, pretty).await,
        SecretCommand::Rm { secrets } => remove(host, kind, secrets).await,
    }
}

pub async fn run_config(host: &str, cmd: ConfigCommand) -> CliResult {
    let kind = Kind::Config;
    match cmd {
        ConfigCommand::Create {
            label,
            template_driver,
            name,
            file,
        } => {
            let labels = labels(&label)?;
            refuse_template_driver(template_driver)?;
            let data = read_data(kind, &file).map_err(|e| {
                ApiError::plain(format!("error reading content from {file:?}: {e}"))
            })?;
            create(host, kind, name, labels, data).await
        }
        ConfigCommand::Ls {
            quiet,
            format,
            filter,
        } => list(host, kind, quiet, format, filter).await,
        ConfigCommand::Inspect {
            format,
            pretty,
            configs,
        } => inspect(host, kind, configs, format, pretty).await,
        ConfigCommand::Rm { configs } => remove(host, kind, configs).await,
    }
}

/// Shoal stores data as given: templates (docker's `golang` template driver) are not
/// expanded, so asking for one is refused rather than ignored.
fn refuse_template_driver(driver: Option<String>) -> CliResult {
    match driver {
        Some(d) => Err(ApiError::plain(format!(
            "template driver {d:?} is not supported by shoal"
        ))),
        None => Ok(()),
    }
}

/// `--label k=v` / `--label k`, checked as docker's ValidateLabel and kept as
/// ConvertKVStringsToMap keeps them.
pub(crate) fn labels(list: &[String]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        let key = k.trim_start();
        if key.is_empty() {
            return Err(ApiError::plain(format!(
                "invalid argument \"{l}\" for \"-l, --label\" flag: invalid label '{l}': empty name"
            )));
        }
        if key.contains(char::is_whitespace) {
            return Err(ApiError::plain(format!(
                "invalid argument \"{l}\" for \"-l, --label\" flag: label '{key}' contains whitespaces"
            )));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// An I/O error as Go prints an `*os.PathError`: `open x: no such file or directory`.
pub(crate) fn go_path_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    };
    let mut chars = text.chars();
    let text = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    };
    format!("{op} {path}: {text}")
}

/// docker-cli's readSecretData / readConfigData: from stdin (`-`) or a file, at most
/// twice the kind's limit read (the daemon refuses what is too large), never empty.
fn read_data(kind: Kind, file: &str) -> Result<Data, ApiError> {
    let limit = (2 * kind.max_size()) as u64;
    let mut data = Vec::new();
    match file {
        "-" => {
            std::io::stdin()
                .take(limit)
                .read_to_end(&mut data)
                .map_err(|e| ApiError::plain(format!("error reading from STDIN: {e}")))?;
            if data.is_empty() {
                return Err(ApiError::plain("error reading from STDIN: data is empty"));
            }
        }
        "" => return Err(ApiError::plain(format!("{} file is required", kind.word()))),
        path => {
            let f = std::fs::File::open(path).map_err(|e| {
                ApiError::plain(format!(
                    "error reading from {path}: {}",
                    go_path_error("open", path, &e)
                ))
            })?;
            f.take(limit).read_to_end(&mut data).map_err(|e| {
                ApiError::plain(format!(
                    "error reading from {path}: {}",
                    go_path_error("read", path, &e)
                ))
            })?;
            if data.is_empty() {
                return Err(ApiError::plain(format!(
                    "error reading from {path}: data is empty"
                )));
            }
        }
    }
    Ok(Data(data))
}

async fn create(
    host: &str,
    kind: Kind,
    name: String,
    labels: BTreeMap<String, String>,
    data: Data,
) -> CliResult {
    let req = ApiRequest::SecretCreate {
        kind,
        name,
        labels,
        data,
    };
    match call(host, req).await? {
        ApiReply::ServiceCreated { id } => {
            println!("{id}");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// docker's secretContext / configContext: the placeholders of `ls --format`.
fn row(o: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
    let ago = |t: &Value| {
        chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap_or(""))
            .map(|t| {
                let d = (now - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .unwrap_or_default();
                format!("{} ago", shoal_format::human_duration(d))
            })
            .unwrap_or_default()
    };
    let labels = o["Spec"]["Labels"].as_object().cloned().unwrap_or_default();
    let mut joined: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    joined.sort();
    json!({
        "ID": o["ID"],
        "Name": o["Spec"]["Name"],
        "Driver": "",
        "CreatedAt": ago(&o["CreatedAt"]),
        "UpdatedAt": ago(&o["UpdatedAt"]),
        "Labels": joined.join(","),
        "Label()": labels,
    })
}

/// The table of `ls`: docker's default columns and headers.
fn table(kind: Kind) -> (&'static str, &'static [(&'static str, &'static str)]) {
    const HEADERS: &[(&str, &str)] = &[
        ("ID", "ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("CreatedAt", "CREATED"),
        ("UpdatedAt", "UPDATED"),
        ("Labels", "LABELS"),
    ];
    match kind {
        Kind::Secret => (
            "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
            HEADERS,
        ),
        Kind::Config => (
            "{{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
            HEADERS,
        ),
    }
}

fn render_ls(
    kind: Kind,
    items: &[Value],
    quiet: bool,
    format: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, ApiError> {
    let mut rows: Vec<Value> = items.iter().map(|o| row(o, now)).collect();
    rows.sort_by(|a, b| {
        super::node::natural_cmp(
            a["Name"].as_str().unwrap_or(""),
            b["Name"].as_str().unwrap_or(""),
        )
    });
    // docker's `-q` prints IDs unless a --format is given.
    let format = match format {
        None if quiet => Some("{{.ID}}".to_string()),
        f => f,
    };
    let (default_table, headers) = table(kind);
    shoal_format::render_list(format.as_deref(), default_table, headers, &rows)
        .map_err(|e| ApiError::plain(e.to_string()))
}

async fn list(
    host: &str,
    kind: Kind,
    quiet: bool,
    format: Option<String>,
    filter: Vec<String>,
) -> CliResult {
    // Parsed as docker's flag parser does; the daemon checks the keys.
    let filters = TaskFilter::parse(&filter)?.to_map();
    let items = match call(host, ApiRequest::SecretList { kind, filters }).await? {
        ApiReply::Secrets { items } => items,
        other => return Err(unexpected(other)),
    };
    print!(
        "{}",
        render_ls(kind, &items, quiet, format, chrono::Utc::now())?
    );
    Ok(())
}

/// docker's `--pretty` templates (secretInspectPrettyTemplate, configInspectPrettyTemplate),
/// each object followed by a newline.
fn pretty(kind: Kind, o: &Value) -> String {
    let time = |k: &str| super::go_time_string(o[k].as_str().unwrap_or(""));
    let mut labels = String::new();
    if let Some(map) = o["Spec"]["Labels"].as_object().filter(|m| !m.is_empty()) {
        labels.push_str("\nLabels:");
        for (k, v) in map {
            let v = v.as_str().unwrap_or("");
            labels.push_str(&format!("\n - {k}"));
            if !v.is_empty() {
                labels.push_str(&format!("={v}"));
            }
        }
    }
    let id = o["ID"].as_str().unwrap_or("");
    let name = o["Spec"]["Name"].as_str().unwrap_or("");
    match kind {
        Kind::Secret => format!(
            "ID:              {id}\nName:              {name}{labels}\nDriver:            \nCreated at:        {}\nUpdated at:        {}\n",
            time("CreatedAt"),
            time("UpdatedAt")
        ),
        Kind::Config => {
            use base64::Engine;
            let data = base64::engine::general_purpose::STANDARD
                .decode(o["Spec"]["Data"].as_str().unwrap_or(""))
                .unwrap_or_default();
            format!(
                "ID:\t\t\t{id}\nName:\t\t\t{name}{labels}\nCreated at:            \t{}\nUpdated at:            \t{}\nData:\n{}\n",
                time("CreatedAt"),
                time("UpdatedAt"),
                String::from_utf8_lossy(&data)
            )
        }
    }
}

async fn inspect(
    host: &str,
    kind: Kind,
    references: Vec<String>,
    format: Option<String>,
    pretty_flag: bool,
) -> CliResult {
    let format = if pretty_flag {
        Some("pretty".to_string())
    } else {
        format
    };
    if let Some(f) = &format {
        if f.starts_with("pretty") && f != "pretty" {
            return Err(ApiError::plain(
                "cannot supply extra formatting options to the pretty template",
            ));
        }
    }
    let req = ApiRequest::SecretInspect {
        kind,
        references: references.clone(),
    };
    let objects = match call(host, req).await? {
        ApiReply::Objects { objects } => objects,
        other => return Err(unexpected(other)),
    };
    if format.as_deref() == Some("pretty") {
        // docker's pretty output stops at the first object not found.
        for (r, o) in references.iter().zip(objects) {
            match o {
                Ok(o) => print!("{}", pretty(kind, &o)),
                Err(e) => {
                    let _ = r;
                    return Err(ApiError::daemon(e));
                }
            }
        }
        return Ok(());
    }
    let (values, missing) = super::split_found(&references, objects);
    let text = shoal_format::render_inspect(&values, format.as_deref())
        .map_err(|e| ApiError::plain(e.to_string()))?;
    print!("{text}");
    super::missing_error(&missing, |_, e| format!("Error response from daemon: {e}"))
}

/// docker's `rm`: each name printed as it goes; the errors, one per line, at the end.
async fn remove(host: &str, kind: Kind, references: Vec<String>) -> CliResult {
    let mut errors = Vec::new();
    for r in references {
        match call(
            host,
            ApiRequest::SecretRemove {
                kind,
                reference: r.clone(),
            },
        )
        .await
        {
            Ok(_) => println!("{r}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::plain(errors.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: &str, name: &str, labels: Value, data: Option<&str>) -> Value {
        let mut spec = json!({"Name": name, "Labels": labels});
        if let Some(d) = data {
            spec["Data"] = json!(d);
        }
        json!({"ID": id, "Version": {"Index": 12},
               "CreatedAt": "2026-11-27T06:32:29.65Z", "UpdatedAt": "2026-11-27T06:32:29.65Z",
               "Spec": spec})
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-11-27T08:32:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    /// `secret ls` and `config ls`: docker's columns, natural name order, full IDs.
    #[test]
    fn ls_tables_are_docker_s() {
        let items = [
            object("id10", "db10", json!({}), None),
            object("id2", "db2", json!({"a": "b"}), None),
        ];
        assert_eq!(
            render_ls(Kind::Secret, &items, false, None, now()).unwrap(),
            "ID        NAME      DRIVER    CREATED       UPDATED\n\
             id2       db2                 2 hours ago   2 hours ago\n\
             id10      db10                2 hours ago   2 hours ago\n"
        );
        assert_eq!(
            render_ls(Kind::Config, &items, false, None, now()).unwrap(),
            "ID        NAME      CREATED       UPDATED\n\
             id2       db2       2 hours ago   2 hours ago\n\
             id10      db10      2 hours ago   2 hours ago\n"
        );
        assert_eq!(
            render_ls(Kind::Secret, &items, true, None, now()).unwrap(),
            "id2\nid10\n"
        );
        assert_eq!(
            render_ls(
                Kind::Secret,
                &items,
                false,
                Some("{{.Name}} {{.Labels}} {{.Label \"a\"}}".into()),
                now()
            )
            .unwrap(),
            "db2 a=b b\ndb10  \n"
        );
    }

    /// `--pretty`: docker's templates; a config's shows its data, a secret's never.
    #[test]
    fn pretty_is_docker_s() {
        let s = object("sid", "db_pass", json!({"env": "dev", "x": ""}), None);
        assert_eq!(
            pretty(Kind::Secret, &s),
            "ID:              sid\nName:              db_pass\nLabels:\n - env=dev\n - x\nDriver:            \nCreated at:        2026-11-27 06:32:29.65 +0000 UTC\nUpdated at:        2026-11-27 06:32:29.65 +0000 UTC\n"
        );
        let c = object("cid", "app.conf", json!({}), Some("cG9ydD04MAo="));
        assert_eq!(
            pretty(Kind::Config, &c),
            "ID:\t\t\tcid\nName:\t\t\tapp.conf\nCreated at:            \t2026-11-27 06:32:29.65 +0000 UTC\nUpdated at:            \t2026-11-27 06:32:29.65 +0000 UTC\nData:\nport=80\n\n"
        );
    }

    #[test]
    fn labels_and_files_as_docker_cli_reads_them() {
        let l = labels(&["a=b".into(), "c".into(), "d=e=f".into()]).unwrap();
        assert_eq!(l.get("c").map(String::as_str), Some(""));
        assert_eq!(l.get("d").map(String::as_str), Some("e=f"));
        assert_eq!(
            labels(&["=x".into()]).unwrap_err().message,
            "invalid argument \"=x\" for \"-l, --label\" flag: invalid label '=x': empty name"
        );
        assert_eq!(
            read_data(Kind::Secret, "").unwrap_err().message,
            "secret file is required"
        );
        assert_eq!(
            read_data(Kind::Secret, "/nonexistent/x")
                .unwrap_err()
                .message,
            "error reading from /nonexistent/x: open /nonexistent/x: no such file or directory"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let p = empty.display().to_string();
        assert_eq!(
            read_data(Kind::Config, &p).unwrap_err().message,
            format!("error reading from {p}: data is empty")
        );
    }
}
