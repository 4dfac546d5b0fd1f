//! Placement constraints (`node.hostname == vm2`, `node.labels.os != windows`), parsed once
//! so compose loading, the CLI and the scheduler agree on what is valid.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
}

/// What a constraint looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    NodeId,
    Hostname,
    Role,
    Os,
    Arch,
    /// `node.labels.<name>`
    Label(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub key: Key,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintError(pub String);

impl fmt::Display for ConstraintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConstraintError {}

impl Constraint {
    /// Parse one expression, as swarmkit's constraint parser does (`==` or `!=`, keys
    /// case-insensitive, values compared case-insensitively except labels' values).
    pub fn parse(expr: &str) -> Result<Constraint, ConstraintError> {
        let (lhs, op, rhs) = if let Some((l, r)) = expr.split_once("==") {
            (l, Op::Eq, r)
        } else if let Some((l, r)) = expr.split_once("!=") {
            (l, Op::Ne, r)
        } else {
            return Err(ConstraintError(format!(
                "invalid constraint {expr:?}: expected an expression with == or !="
            )));
        };
        let lhs = lhs.trim();
        let value = rhs.trim();
        if value.is_empty() {
            return Err(ConstraintError(format!(
                "invalid constraint {expr:?}: empty value"
            )));
        }
        if value.contains("==") || value.contains("!=") {
            return Err(ConstraintError(format!(
                "invalid constraint {expr:?}: more than one operator"
            )));
        }
        let lower = lhs.to_ascii_lowercase();
        let key = match lower.as_str() {
            "node.id" => Key::NodeId,
            "node.hostname" => Key::Hostname,
            "node.role" => Key::Role,
            "node.platform.os" => Key::Os,
            "node.platform.arch" => Key::Arch,
            _ => match lhs.get(..12) {
                Some(p) if p.eq_ignore_ascii_case("node.labels.") && lhs.len() > 12 => {
                    Key::Label(lhs[12..].to_string())
                }
                _ => {
                    return Err(ConstraintError(format!(
                        "invalid constraint {expr:?}: unknown key {lhs:?} (use node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>)"
                    )))
                }
            },
        };
        Ok(Constraint {
            key,
            op,
            value: value.to_string(),
        })
    }

    pub fn parse_all(exprs: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
        exprs.iter().map(|e| Constraint::parse(e)).collect()
    }

    /// Does a node with these facts satisfy the constraint? `label` looks up a node label.
    pub fn matches(&self, node: &NodeFacts<'_>) -> bool {
        let (actual, case_insensitive) = match &self.key {
            Key::NodeId => (Some(node.id), true),
            Key::Hostname => (Some(node.hostname), true),
            Key::Role => (Some(node.role), true),
            Key::Os => (Some(node.os), true),
            Key::Arch => (Some(node.arch), true),
            Key::Label(l) => (node.labels.get(l.as_str()).map(String::as_str), false),
        };
        let equal = match actual {
            Some(a) if case_insensitive => a.eq_ignore_ascii_case(&self.value),
            Some(a) => a == self.value,
            None => false,
        };
        match self.op {
            Op::Eq => equal,
            Op::Ne => !equal,
        }
    }
}

/// What constraints look at on a node.
pub struct NodeFacts<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub role: &'a str,
    pub os: &'a str,
    pub arch: &'a str,
    pub labels: &'a crate::Labels,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(labels: &crate::Labels) -> NodeFacts<'_> {
        NodeFacts {
            id: "abc",
            hostname: "vm2",
            role: "worker",
            os: "linux",
            arch: "x86_64",
            labels,
        }
    }

    #[test]
    fn tutorial_constraints() {
        let labels: crate::Labels = [("os".to_string(), "linux".to_string())].into();
        let n = facts(&labels);
        assert!(Constraint::parse("node.hostname == vm2")
            .unwrap()
            .matches(&n));
        assert!(Constraint::parse("node.labels.os == linux")
            .unwrap()
            .matches(&n));
        assert!(!Constraint::parse("node.hostname == vm1")
            .unwrap()
            .matches(&n));
        assert!(Constraint::parse("node.hostname!=vm1").unwrap().matches(&n));
        assert!(Constraint::parse("node.role == worker")
            .unwrap()
            .matches(&n));
        // A missing label never equals, always differs.
        assert!(!Constraint::parse("node.labels.zone == a")
            .unwrap()
            .matches(&n));
        assert!(Constraint::parse("node.labels.zone != a")
            .unwrap()
            .matches(&n));
    }

    #[test]
    fn bad_constraints_are_errors() {
        for bad in [
            "node.hostname = vm1",
            "node.nope == x",
            "node.hostname ==",
            "node.labels. == x",
            "a == b == c",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad}");
        }
    }
}
