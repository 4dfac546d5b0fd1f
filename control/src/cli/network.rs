//! `shoal network ...`: create, ls, inspect, prune, rm (swarm-scoped overlay networks).

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use serde_json::{json, Value};

use super::task_filter::TaskFilter;
use super::{call, unexpected, CliResult};
use crate::api::{ApiError, ApiReply, ApiRequest, NetworkCreate};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Driver to manage the Network
        #[arg(short, long, default_value = "overlay")]
        driver: String,
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 Gateway for the master subnet
        #[arg(long)]
        gateway: Option<String>,
        /// Enable manual container attachment
        #[arg(long)]
        attachable: bool,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Set metadata on a network
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options (default map[])
        #[arg(short, long = "opt", value_name = "map")]
        opt: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate the output
        #[arg(long)]
        no_trunc: bool,
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
        /// Provide filter values (e.g. "driver=overlay")
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(short, long, help = super::help::INSPECT_FORMAT_HELP)]
        format: Option<String>,
        /// Verbose output for diagnostics
        #[arg(short, long)]
        verbose: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. "until=<timestamp>")
        #[arg(long, value_name = "filter")]
        filter: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// Do not error if the network does not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

fn pairs(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// docker's networkContext: the placeholders of `network ls --format` (`.Label "k"` is
/// the one-argument method `"Label()"`).
fn row(n: &Value, no_trunc: bool) -> Value {
    let id = n["Id"].as_str().unwrap_or("");
    let labels = n["Labels"].as_object().cloned().unwrap_or_default();
    let mut joined: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    joined.sort();
    let flag = |k: &str| n[k].as_bool().unwrap_or(false).to_string();
    json!({
        "ID": if no_trunc { id.to_string() } else { shoal_format::truncate_id(id) },
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n["Scope"],
        "IPv4": flag("EnableIPv4"),
        "IPv6": flag("EnableIPv6"),
        "Internal": flag("Internal"),
        "Labels": joined.join(","),
        "Label()": labels,
        "CreatedAt": super::go_time_string(n["Created"].as_str().unwrap_or("")),
    })
}

/// The keys `network ls -f` takes (moby daemon/network/filter.go).
const NETWORK_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

/// docker's predefined networks (moby daemon/network IsPredefined), which `type=builtin`
/// lists; Shoal has none of them, so every network is `custom`.
const PREDEFINED: &[&str] = &["bridge", "host", "none", "default"];

/// A value of `name` or `id` matches as moby's `filters.Args.Match` does: the whole
/// value, or a Go regular expression found anywhere in it.
fn go_match(filter: &TaskFilter, key: &str, value: &str) -> bool {
    filter.values(key).any(|p| {
        p == value || regex_automata::meta::Regex::new(p).is_ok_and(|re| re.is_match(value))
    })
}

/// The filter of `network ls -f ...`, checked as docker's daemon checks it (moby
/// daemon/network/filter.go): what `dangling` asks for, if it is given.
fn check_network_filter(filter: &TaskFilter) -> Result<Option<bool>, ApiError> {
    filter.check_accepted(NETWORK_FILTERS)?;
    if filter.has("dangling") {
        if filter.count("dangling") > 1 {
            return Err(ApiError::daemon(
                "got more than one value for filter key \"dangling\"",
            ));
        }
        if !filter
            .values("dangling")
            .all(|v| ["0", "false", "1", "true"].contains(&v))
        {
            return Err(ApiError::daemon(
                "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")",
            ));
        }
    }
    if let Some(t) = filter
        .values("type")
        .find(|t| !["builtin", "custom"].contains(t))
    {
        return Err(ApiError::daemon(format!("invalid filter: 'type'='{t}'")));
    }
    Ok(filter
        .values("dangling")
        .next()
        .map(|v| v == "1" || v == "true"))
}

/// The networks of a checked `network ls -f ...` filter, matched as docker's daemon
/// does. `used` holds the IDs and names of the networks services use (needed only
/// for `dangling`: a dangling network is one no service uses).
fn filter_networks<'a>(
    networks: &'a [Value],
    filter: &TaskFilter,
    used: &BTreeSet<String>,
) -> Vec<&'a Value> {
    let dangling = filter
        .values("dangling")
        .next()
        .map(|v| v == "1" || v == "true");
    networks
        .iter()
        .filter(|n| {
            let name = n["Name"].as_str().unwrap_or("");
            let builtin = PREDEFINED.contains(&name);
            filter.exact("driver", n["Driver"].as_str().unwrap_or(""))
                && (!filter.has("name") || go_match(filter, "name", name))
                && (!filter.has("id") || go_match(filter, "id", n["Id"].as_str().unwrap_or("")))
                && filter.values("label").all(|l| has_label(&n["Labels"], l))
                && filter.exact("scope", n["Scope"].as_str().unwrap_or(""))
                // moby decides by the first value only (of a Go map, so any one).
                && filter
                    .values("type")
                    .next()
                    .is_none_or(|t| (t == "builtin") == builtin)
                && dangling.is_none_or(|d| {
                    let in_use = builtin
                        || used.contains(name)
                        || used.contains(n["Id"].as_str().unwrap_or(""));
                    d != in_use
                })
        })
        .collect()
}

/// The IDs and names of the networks services use: those their tasks attach to, and
/// those they have a VIP on (the ingress network, for published ports).
fn networks_in_use(services: &[Value]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for svc in services {
        let attached = svc["Spec"]["TaskTemplate"]["Networks"].as_array();
        for a in attached.into_iter().flatten() {
            used.extend(a["Target"].as_str().map(str::to_string));
        }
        let vips = svc["Endpoint"]["VirtualIPs"].as_array();
        for v in vips.into_iter().flatten() {
            used.extend(v["NetworkID"].as_str().map(str::to_string));
        }
    }
    used
}

/// docker's `network rm`: removing the ingress network asks first (a "y" answer goes
/// on, anything else skips it); with `--force` a network that does not exist is no
/// error.
async fn remove(host: &str, networks: Vec<String>, force: bool) -> CliResult {
    let mut failed = false;
    for name in networks {
        let ingress = match call(
            host,
            ApiRequest::NetworkInspect {
                references: vec![name.clone()],
            },
        )
        .await
        {
            Ok(ApiReply::Objects { objects }) => objects
                .first()
                .and_then(|o| o.as_ref().ok())
                .is_some_and(|n| n["Ingress"].as_bool() == Some(true)),
            _ => false,
        };
        if ingress && !confirm(INGRESS_WARNING) {
            continue;
        }
        match call(
            host,
            ApiRequest::NetworkRemove {
                reference: name.clone(),
            },
        )
        .await
        {
            Ok(_) => println!("{name}"),
            Err(e) if force && is_not_found(&e) => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    super::any_failed(failed)
}

/// The keys `network prune --filter` takes (moby daemon/network/filter.go pruneFilters).
const PRUNE_FILTERS: &[&str] = &["label", "label!", "until"];

const PRUNE_WARNING: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?";

/// docker's `network prune`: after a "y" (or with `--force`), every network no service
/// uses, but the ingress network and the predefined ones, that the filter matches is
/// removed; the removed ones are listed by name under `Deleted Networks:`. A "no" ends
/// it quietly with status 0, as docker treats a cancelled prompt.
async fn prune(host: &str, filter: Vec<String>, force: bool) -> CliResult {
    let filter = TaskFilter::parse(&filter)?;
    if !force && !confirm(PRUNE_WARNING) {
        return Ok(());
    }
    filter.check_accepted(PRUNE_FILTERS)?;
    let until = match filter.count("until") {
        0 => None,
        1 => Some(
            filter
                .values("until")
                .map(|v| parse_until(v, chrono::Utc::now()))
                .next()
                .unwrap_or_else(|| Err(String::new()))
                .map_err(ApiError::daemon)?,
        ),
        _ => return Err(ApiError::daemon("more than one until filter specified")),
    };
    let networks = match call(host, ApiRequest::NetworkList).await? {
        ApiReply::Networks { networks } => networks,
        other => return Err(unexpected(other)),
    };
    let list = ApiRequest::ServiceList {
        references: vec![],
        stack: None,
    };
    let used = match call(host, list).await? {
        ApiReply::Services { services } => {
            let services: Vec<Value> = services.into_iter().map(|(s, _, _)| s).collect();
            networks_in_use(&services)
        }
        other => return Err(unexpected(other)),
    };
    let mut deleted = Vec::new();
    for n in prunable(&networks, &filter, &used, until) {
        let name = n["Name"].as_str().unwrap_or("").to_string();
        let reference = n["Id"].as_str().unwrap_or(&name).to_string();
        // A network in use by now, or one that cannot go, is left as it is (moby logs
        // it and goes on).
        if call(host, ApiRequest::NetworkRemove { reference })
            .await
            .is_ok()
        {
            deleted.push(name);
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Networks:\n{}\n", deleted.join("\n"));
    }
    Ok(())
}

/// One value of a `label` filter as moby's MatchKVList takes it for networks: `name`
/// (the network has the label) or `name=value` (with exactly that value, also empty).
fn has_label(labels: &Value, filter_value: &str) -> bool {
    let (k, v) = match filter_value.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (filter_value, None),
    };
    labels
        .get(k)
        .and_then(Value::as_str)
        .is_some_and(|have| v.is_none_or(|v| v == have))
}

/// The networks `network prune` removes: not the ingress network, not a predefined one,
/// none a service uses, and only those the filter's labels and `until` match.
fn prunable<'a>(
    networks: &'a [Value],
    filter: &TaskFilter,
    used: &BTreeSet<String>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Vec<&'a Value> {
    networks
        .iter()
        .filter(|n| {
            let name = n["Name"].as_str().unwrap_or("");
            let id = n["Id"].as_str().unwrap_or("");
            let labels = &n["Labels"];
            let created = chrono::DateTime::parse_from_rfc3339(n["Created"].as_str().unwrap_or(""))
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok();
            // moby's MatchKVList: `label!` refuses only a network with every one.
            let unwanted =
                filter.has("label!") && filter.values("label!").all(|l| has_label(labels, l));
            n["Ingress"].as_bool() != Some(true)
                && !PREDEFINED.contains(&name)
                && !used.contains(name)
                && !used.contains(id)
                && filter.values("label").all(|l| has_label(labels, l))
                && !unwanted
                && until.is_none_or(|u| created.is_some_and(|c| c <= u))
        })
        .collect()
}

/// moby's timestamp.Parse for `until`: a Go duration before `now`, an RFC 3339 time or
/// date (UTC where no zone is given, as this machine's), or Unix seconds.
fn parse_until(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    if value.trim().is_empty() {
        return Err("failed to parse value as time or duration: value is empty".into());
    }
    if value != "0" {
        if let Ok(ns) = shoal_compose::parse_duration(value) {
            return Ok(now - chrono::Duration::nanoseconds(ns));
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    if value.contains('-') {
        return Err(format!(
            "parsing time {value:?}: cannot parse {value:?} as a time"
        ));
    }
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs.parse().map_err(|_| {
        format!(
            "failed to parse value as time or duration: invalid seconds {secs:?}: invalid syntax"
        )
    })?;
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().unwrap_or(0);
    Utc.timestamp_opt(secs, nanos)
        .single()
        .ok_or_else(|| format!("failed to parse value as time or duration: {value:?}"))
}

const INGRESS_WARNING: &str = "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same shoal engine version. Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.\nAre you sure you want to continue?";

/// docker's prompt: the question and ` [y/N] ` on stdout, then one line of stdin; only
/// `y` or `Y` (spaces around it ignored) says yes, and so does nothing else, EOF included.
fn confirm(question: &str) -> bool {
    use std::io::Write;
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    answer.trim().eq_ignore_ascii_case("y")
}

fn is_not_found(e: &ApiError) -> bool {
    e.message.starts_with("network ") && e.message.ends_with(" not found")
}

pub async fn run(host: &str, cmd: NetworkCommand) -> CliResult {
    match cmd {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            attachable,
            internal,
            label,
            opt,
            name,
        } => {
            let req = NetworkCreate {
                name,
                driver,
                subnet,
                gateway,
                attachable,
                internal,
                labels: pairs(&label),
                options: pairs(&opt),
            };
            match call(host, ApiRequest::NetworkCreate(req)).await? {
                ApiReply::ServiceCreated { id } => {
                    println!("{id}");
                    Ok(())
                }
                other => Err(unexpected(other)),
            }
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            format,
            filter,
        } => {
            let filter = TaskFilter::parse(&filter)?;
            let dangling = check_network_filter(&filter)?;
            let networks = match call(host, ApiRequest::NetworkList).await? {
                ApiReply::Networks { networks } => networks,
                other => return Err(unexpected(other)),
            };
            let used = match dangling {
                None => BTreeSet::new(),
                Some(_) => {
                    let list = ApiRequest::ServiceList {
                        references: vec![],
                        stack: None,
                    };
                    match call(host, list).await? {
                        ApiReply::Services { services } => {
                            let services: Vec<Value> =
                                services.into_iter().map(|(s, _, _)| s).collect();
                            networks_in_use(&services)
                        }
                        other => return Err(unexpected(other)),
                    }
                }
            };
            let mut rows: Vec<Value> = filter_networks(&networks, &filter, &used)
                .into_iter()
                .map(|n| row(n, no_trunc))
                .collect();
            rows.sort_by(|a, b| {
                super::node::natural_cmp(
                    a["Name"].as_str().unwrap_or(""),
                    b["Name"].as_str().unwrap_or(""),
                )
            });
            let format = if quiet {
                Some("{{.ID}}".to_string())
            } else {
                format
            };
            let text = shoal_format::render_list(
                format.as_deref(),
                "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
                &[
                    ("ID", "NETWORK ID"),
                    ("Name", "NAME"),
                    ("Driver", "DRIVER"),
                    ("Scope", "SCOPE"),
                    ("IPv4", "IPV4"),
                    ("IPv6", "IPV6"),
                    ("Internal", "INTERNAL"),
                    ("Labels", "LABELS"),
                    ("CreatedAt", "CREATED AT"),
                ],
                &rows,
            )
            .map_err(|e| ApiError::plain(e.to_string()))?;
            print!("{text}");
            Ok(())
        }
        NetworkCommand::Inspect {
            format,
            verbose,
            networks,
        } => {
            let references = networks.clone();
            let req = if verbose {
                ApiRequest::NetworkInspectVerbose { references }
            } else {
                ApiRequest::NetworkInspect { references }
            };
            let objects = match call(host, req).await? {
                ApiReply::Objects { objects } => objects,
                other => return Err(unexpected(other)),
            };
            let (values, missing) = super::split_found(&networks, objects);
            let text = shoal_format::render_inspect(&values, format.as_deref())
                .map_err(|e| ApiError::plain(e.to_string()))?;
            print!("{text}");
            super::missing_error(&missing, |_, e| format!("Error response from daemon: {e}"))
        }
        NetworkCommand::Prune { force, filter } => prune(host, filter, force).await,
        NetworkCommand::Rm { force, networks } => remove(host, networks, force).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `network prune` takes only unused custom networks, never ingress, and docker's
    /// `label`, `label!` and `until` decide among them.
    #[test]
    fn network_prune_takes_only_unused_custom_networks() {
        let net = |id: &str, name: &str, created: &str, labels: Value| {
            json!({"Name": name, "Id": id, "Ingress": name == "ingress",
                   "Created": created, "Labels": labels})
        };
        let networks = [
            net("i1", "ingress", "2026-01-01T00:00:00Z", json!({})),
            net("u1", "used", "2026-01-01T00:00:00Z", json!({})),
            net("o1", "old", "2026-01-01T00:00:00Z", json!({"keep": "yes"})),
            net("n1", "new", "2026-06-01T00:00:00Z", json!({"team": "a"})),
            net("b1", "bridge", "2026-01-01T00:00:00Z", json!({})),
        ];
        let used: BTreeSet<String> = ["u1".to_string()].into();
        let names = |f: &[&str], until: Option<&str>| -> Vec<String> {
            let owned: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            let filter = TaskFilter::parse(&owned).unwrap();
            let now = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc);
            let until = until.map(|u| parse_until(u, now).unwrap());
            prunable(&networks, &filter, &used, until)
                .iter()
                .map(|n| n["Name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&[], None), ["old", "new"]);
        assert_eq!(names(&["label=team=a"], None), ["new"]);
        assert_eq!(names(&["label!=keep"], None), ["new"]);
        assert_eq!(names(&[], Some("2026-03-01")), ["old"]);
        assert_eq!(names(&[], Some("721h")), ["old"]);
        assert_eq!(names(&[], Some("1790000000")), ["old", "new"]);
        assert!(parse_until("", chrono::Utc::now()).is_err());
        assert!(parse_until("soon", chrono::Utc::now()).is_err());
    }

    fn ls(format: &str) -> String {
        let n = json!({
            "Name": "webapp_default", "Id": "k9wp2m4n6q8rabcdefghijklm",
            "Created": "2026-11-27T06:32:29.65Z", "Scope": "swarm", "Driver": "overlay",
            "EnableIPv4": true, "EnableIPv6": false, "Internal": false,
            "Labels": {"com.docker.stack.namespace": "webapp", "a": "b"},
        });
        shoal_format::render_list(Some(format), "", &[], &[row(&n, false)]).unwrap()
    }

    /// `network ls -f`: docker's keys, values and messages, and its matching.
    #[test]
    fn network_ls_filters_as_docker_does() {
        let net = |id: &str, name: &str, labels: Value| {
            json!({"Name": name, "Id": id, "Scope": "swarm", "Driver": "overlay",
                   "Ingress": name == "ingress", "Labels": labels})
        };
        let networks = [
            net("i1", "ingress", json!({})),
            net(
                "w1",
                "webapp_default",
                json!({"com.docker.stack.namespace": "webapp"}),
            ),
            net("b1", "backend", json!({"tier": "db", "x": ""})),
        ];
        let used: BTreeSet<String> = ["i1".to_string(), "webapp_default".to_string()].into();
        let names = |args: &[&str]| -> Result<Vec<String>, String> {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let filter = TaskFilter::parse(&args).map_err(|e| e.to_string())?;
            check_network_filter(&filter).map_err(|e| e.to_string())?;
            Ok(filter_networks(&networks, &filter, &used)
                .iter()
                .map(|n| n["Name"].as_str().unwrap().to_string())
                .collect())
        };
        let all = ["ingress", "webapp_default", "backend"];
        let none = Vec::<String>::new();
        assert_eq!(names(&[]).unwrap(), all);
        assert_eq!(names(&["driver=overlay"]).unwrap(), all);
        assert_eq!(names(&["driver=bridge"]).unwrap(), none);
        assert_eq!(names(&["scope=swarm"]).unwrap(), all);
        assert_eq!(names(&["scope=local"]).unwrap(), none);
        assert_eq!(names(&["type=custom"]).unwrap(), all);
        assert_eq!(names(&["type=builtin"]).unwrap(), none);
        // name and id: the whole value, or a regular expression found in it.
        assert_eq!(names(&["name=backend"]).unwrap(), ["backend"]);
        assert_eq!(names(&["name=web"]).unwrap(), ["webapp_default"]);
        assert_eq!(names(&["name=^(in|back)"]).unwrap(), ["ingress", "backend"]);
        assert_eq!(
            names(&["name=ingress", "name=backend"]).unwrap(),
            ["ingress", "backend"]
        );
        assert_eq!(names(&["id=w"]).unwrap(), ["webapp_default"]);
        assert_eq!(names(&["label=tier"]).unwrap(), ["backend"]);
        assert_eq!(names(&["label=tier=db", "label=x"]).unwrap(), ["backend"]);
        assert_eq!(names(&["label=tier=web"]).unwrap(), none);
        assert_eq!(names(&["dangling=true"]).unwrap(), ["backend"]);
        assert_eq!(
            names(&["dangling=0"]).unwrap(),
            ["ingress", "webapp_default"]
        );
        assert_eq!(
            names(&["bogus=1"]).unwrap_err(),
            "Error response from daemon: invalid filter 'bogus'"
        );
        assert_eq!(
            names(&["type=other"]).unwrap_err(),
            "Error response from daemon: invalid filter: 'type'='other'"
        );
        assert_eq!(
            names(&["dangling=yes"]).unwrap_err(),
            r#"Error response from daemon: invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")"#
        );
        assert_eq!(
            names(&["dangling=true", "dangling=false"]).unwrap_err(),
            r#"Error response from daemon: got more than one value for filter key "dangling""#
        );
    }

    /// docker's network ls placeholders, `.Label "k"` included, and its json keys.
    #[test]
    fn ls_placeholders_are_docker_s() {
        assert_eq!(
            ls(r#"{{.IPv4}} {{.IPv6}} {{.Internal}} {{.Label "com.docker.stack.namespace"}} {{.Label "x"}}|{{.Labels}}|{{.CreatedAt}}"#),
            "true false false webapp |a=b,com.docker.stack.namespace=webapp|2026-11-27 06:32:29.65 +0000 UTC\n"
        );
        assert_eq!(
            ls("json"),
            r#"{"CreatedAt":"2026-11-27 06:32:29.65 +0000 UTC","Driver":"overlay","ID":"k9wp2m4n6q8r","IPv4":"true","IPv6":"false","Internal":"false","Labels":"a=b,com.docker.stack.namespace=webapp","Name":"webapp_default","Scope":"swarm"}"#.to_string() + "\n"
        );
    }
}
