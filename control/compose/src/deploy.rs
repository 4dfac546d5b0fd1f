//! A service's `deploy:` section: mode, replicas, placement, resources, restart, update.

use serde_json::Value;
use shoal_spec::{
    Constraint, EndpointMode, FailureAction, PlacementPreference, RestartCondition, SpreadOver,
    UpdateOrder,
};

use crate::loader::{duration, labels, origin};
use crate::node::Node;
use crate::types::{DeployConfig, Resources, RestartPolicy, UpdateConfig};
use crate::{units, ComposeError};

pub(crate) fn load_deploy(v: Node<'_>) -> Result<DeployConfig, ComposeError> {
    let mut d = DeployConfig::default();
    if v.is_null() {
        return Ok(d);
    }
    for (key, child) in v.mapping(
        &[
            "mode",
            "endpoint_mode",
            "replicas",
            "labels",
            "rollback_config",
            "update_config",
            "resources",
            "restart_policy",
            "placement",
        ],
        false,
    )? {
        let c = child.node();
        match key {
            "mode" => d.mode = Some((c.string()?, origin(c))),
            "replicas" => d.replicas = Some(c.uint()?),
            "labels" => d.labels = labels(c)?,
            "update_config" => d.update_config = Some(load_update_config(c)?),
            "rollback_config" => d.rollback_config = Some(load_update_config(c)?),
            "resources" => {
                for (which, r) in c.mapping(&["limits", "reservations"], false)? {
                    let r = r.node();
                    if which == "limits" {
                        d.limits = Some(load_resources(r, &["cpus", "memory", "pids"])?);
                    } else {
                        d.reservations =
                            Some(load_resources(r, &["cpus", "memory", "generic_resources"])?);
                    }
                }
            }
            "restart_policy" => d.restart_policy = Some(load_restart_policy(c)?),
            "placement" => load_placement(c, &mut d)?,
            _ => {
                d.endpoint_mode = Some(match c.str()?.to_ascii_lowercase().as_str() {
                    "vip" => EndpointMode::Vip,
                    "dnsrr" => EndpointMode::Dnsrr,
                    other => {
                        return Err(c.invalid(format!(
                            "invalid endpoint mode {other:?}: must be \"vip\" or \"dnsrr\""
                        )))
                    }
                })
            }
        }
    }
    Ok(d)
}

fn load_update_config(v: Node<'_>) -> Result<UpdateConfig, ComposeError> {
    let mut u = UpdateConfig::default();
    for (key, child) in v.mapping(
        &[
            "parallelism",
            "delay",
            "failure_action",
            "monitor",
            "max_failure_ratio",
            "order",
        ],
        false,
    )? {
        let c = child.node();
        match key {
            "parallelism" => u.parallelism = Some(c.uint()?),
            "delay" => u.delay = Some(duration(c)?),
            "monitor" => u.monitor = Some(duration(c)?),
            "max_failure_ratio" => {
                #[allow(clippy::cast_possible_truncation)]
                let ratio = c.number()? as f32;
                u.max_failure_ratio = Some(ratio);
            }
            "failure_action" => {
                u.failure_action = Some(match c.str()? {
                    "pause" => FailureAction::Pause,
                    "continue" => FailureAction::Continue,
                    "rollback" => FailureAction::Rollback,
                    other => {
                        return Err(c.invalid(format!(
                            "invalid failure action {other:?}: must be \"pause\", \"continue\" or \"rollback\""
                        )))
                    }
                })
            }
            _ => {
                u.order = Some(match c.str()? {
                    "stop-first" => UpdateOrder::StopFirst,
                    "start-first" => UpdateOrder::StartFirst,
                    _ => {
                        return Err(c.schema(
                            "must be one of the following: \"start-first\", \"stop-first\"",
                        ))
                    }
                })
            }
        }
    }
    Ok(u)
}

fn load_resources(v: Node<'_>, allowed: &[&str]) -> Result<Resources, ComposeError> {
    let mut r = Resources::default();
    for (key, child) in v.mapping(allowed, false)? {
        let c = child.node();
        match key {
            "cpus" => {
                // The schema says string; a bare number (`cpus: 0.5`) is taken as written.
                let s = c.scalar_string().ok_or_else(|| c.must_be("string"))?;
                r.nano_cpus = Some(units::parse_cpus(&s).map_err(|e| c.invalid(e))?);
            }
            "memory" => {
                r.memory_bytes = Some(match c.value {
                    Value::Number(_) => c.int()?,
                    _ => units::ram_in_bytes(c.str()?).map_err(|e| c.invalid(e))?,
                })
            }
            "pids" => r.pids = Some(c.int()?),
            _ => {
                // generic_resources: [{discrete_resource_spec: {kind, value}}], not modelled.
                for item in c.list()? {
                    let item = item.node();
                    for (_, spec) in item.mapping(&["discrete_resource_spec"], false)? {
                        let spec = spec.node();
                        for (k, val) in spec.mapping(&["kind", "value"], false)? {
                            let val = val.node();
                            if k == "kind" {
                                val.str()?;
                            } else {
                                val.number()?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(r)
}

fn load_restart_policy(v: Node<'_>) -> Result<RestartPolicy, ComposeError> {
    let mut p = RestartPolicy::default();
    for (key, child) in v.mapping(&["condition", "delay", "max_attempts", "window"], false)? {
        let c = child.node();
        match key {
            "condition" => {
                p.condition = Some(match c.str()? {
                    "none" => RestartCondition::None,
                    "on-failure" => RestartCondition::OnFailure,
                    "any" => RestartCondition::Any,
                    other => {
                        return Err(c.invalid(format!(
                            "invalid restart condition {other:?}: must be \"none\", \"on-failure\" or \"any\""
                        )))
                    }
                })
            }
            "delay" => p.delay = Some(duration(c)?),
            "window" => p.window = Some(duration(c)?),
            _ => p.max_attempts = Some(c.uint()?),
        }
    }
    Ok(p)
}

fn load_placement(v: Node<'_>, d: &mut DeployConfig) -> Result<(), ComposeError> {
    for (key, child) in v.mapping(
        &["constraints", "preferences", "max_replicas_per_node"],
        false,
    )? {
        let c = child.node();
        match key {
            "constraints" => {
                for item in c.list()? {
                    let item = item.node();
                    let expr = item.string()?;
                    Constraint::parse(&expr).map_err(|e| item.invalid(e.to_string()))?;
                    d.constraints.push(expr);
                }
            }
            "preferences" => {
                for item in c.list()? {
                    let item = item.node();
                    for (_, spread) in item.mapping(&["spread"], false)? {
                        d.preferences.push(PlacementPreference {
                            spread: SpreadOver {
                                spread_descriptor: spread.node().string()?,
                            },
                        });
                    }
                }
            }
            _ => d.max_replicas_per_node = Some(c.uint()?),
        }
    }
    Ok(())
}
