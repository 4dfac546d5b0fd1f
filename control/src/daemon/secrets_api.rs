//! The leader's secret and config API: create, list, inspect, remove (refused while a
//! service uses the object). Replies carry a secret's metadata only, never its data.

use chrono::Utc;

use super::{Daemon, Manager};
use crate::api::{ApiError, ApiReply, ApiRequest, ApiResult};
use crate::secrets::{self, Data, Kind, SecretRecord};
use crate::state::{ClusterState, Command};

/// The `-f` keys moby's daemon accepts (daemon/cluster/filters.go): configs have no `names`.
fn accepted_filters(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Secret => &["names", "name", "id", "label"],
        Kind::Config => &["name", "id", "label"],
    }
}

/// A new object, checked as swarmkit's CreateSecret/CreateConfig check it.
pub(crate) fn new_record(
    state: &ClusterState,
    kind: Kind,
    name: &str,
    labels: std::collections::BTreeMap<String, String>,
    data: Data,
) -> Result<SecretRecord, ApiError> {
    secrets::check_name(name).map_err(ApiError::daemon)?;
    secrets::check_data(kind, &data.0).map_err(ApiError::daemon)?;
    if state.objects(kind).values().any(|o| o.name == name) {
        return Err(ApiError::daemon(format!(
            "rpc error: code = AlreadyExists desc = {} {name} already exists",
            kind.word()
        )));
    }
    let now = Utc::now();
    Ok(SecretRecord {
        id: crate::ids::new_id(),
        name: name.to_string(),
        labels,
        data,
        created_at: now,
        updated_at: now,
        version: 0,
    })
}

impl Daemon {
    pub(crate) async fn serve_secret_api(&self, mgr: &Manager, req: ApiRequest) -> ApiResult {
        match req {
            ApiRequest::SecretCreate {
                kind,
                name,
                labels,
                data,
            } => {
                let state = mgr.sm.state();
                let record = new_record(&state, kind, &name, labels, data)?;
                let id = record.id.clone();
                mgr.propose(Command::PutSecret { kind, record }).await?;
                tracing::debug!(kind = kind.word(), name = %name, "created");
                Ok(ApiReply::ServiceCreated { id })
            }
            ApiRequest::SecretList { kind, filters } => {
                if let Some(k) = filters
                    .keys()
                    .find(|k| !accepted_filters(kind).contains(&k.as_str()))
                {
                    return Err(ApiError::daemon(format!("invalid filter '{k}'")));
                }
                let state = mgr.read_state().await?;
                let items = state
                    .objects(kind)
                    .values()
                    .filter(|o| secrets::matches(o, &filters))
                    .map(|o| o.docker_json(kind))
                    .collect();
                Ok(ApiReply::Secrets { items })
            }
            ApiRequest::SecretInspect { kind, references } => {
                let state = mgr.read_state().await?;
                let objects = references
                    .iter()
                    .map(|r| secrets::resolve(&state, kind, r).map(|o| o.docker_json(kind)))
                    .collect();
                Ok(ApiReply::Objects { objects })
            }
            ApiRequest::SecretRemove { kind, reference } => {
                let state = mgr.sm.state();
                let o = secrets::resolve(&state, kind, &reference).map_err(ApiError::daemon)?;
                let users = secrets::users(&state, kind, &o.id);
                if !users.is_empty() {
                    return Err(ApiError::daemon(secrets::in_use_error(
                        kind, &o.name, &users,
                    )));
                }
                mgr.propose(Command::RemoveSecret {
                    kind,
                    id: o.id.clone(),
                })
                .await?;
                Ok(ApiReply::Done)
            }
            other => Err(ApiError::daemon(format!(
                "{} is not a secret request",
                other.kind()
            ))),
        }
    }
}
