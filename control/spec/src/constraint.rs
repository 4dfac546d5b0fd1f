//! Placement constraints (`node.hostname == vm2`, `node.labels.os != windows`), parsed and
//! matched as swarmkit's `manager/constraint` does, so compose loading, the daemon and the
//! scheduler agree on what is valid and what it selects.

use std::fmt;
use std::net::IpAddr;

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
    /// `node.ip`: the node's address, compared with an address or a CIDR network.
    Ip,
    Role,
    Os,
    Arch,
    /// `node.labels.<name>`
    Label(String),
    /// `engine.labels.<name>`: Shoal nodes have no engine labels, so it looks at "".
    EngineLabel(String),
    /// A key swarmkit accepts but no node has (`node.foo`): matches no node.
    Other(String),
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

const NODE_LABEL_PREFIX: &str = "node.labels.";
const ENGINE_LABEL_PREFIX: &str = "engine.labels.";

impl Constraint {
    /// Parse one expression as swarmkit's `constraint.Parse`: the first of `==` and `!=`
    /// found splits it; the key must match `^(?i)[a-z_][a-z0-9\-_.]+$` and the value
    /// `^(?i)[a-z0-9:\-_\s\.\*\(\)\?\+\[\]\\\^\$\|\/]+$`, both trimmed; any such key is
    /// valid, those no node has match nothing. The errors are swarmkit's words.
    pub fn parse(expr: &str) -> Result<Constraint, ConstraintError> {
        let (lhs, op, rhs) = if let Some((l, r)) = expr.split_once("==") {
            (l, Op::Eq, r)
        } else if let Some((l, r)) = expr.split_once("!=") {
            (l, Op::Ne, r)
        } else {
            return Err(ConstraintError(
                "constraint expected one operator from ==, !=".into(),
            ));
        };
        let key = lhs.trim();
        if !valid_key(key) {
            return Err(ConstraintError(format!("key '{key}' is invalid")));
        }
        let value = rhs.trim();
        if !valid_value(value) {
            return Err(ConstraintError(format!("value '{value}' is invalid")));
        }
        Ok(Constraint {
            key: classify(key),
            op,
            value: value.to_string(),
        })
    }

    pub fn parse_all(exprs: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
        exprs.iter().map(|e| Constraint::parse(e)).collect()
    }

    /// Does a node with these facts satisfy the constraint? swarmkit's `NodeMatches`: values
    /// compare case-insensitively (label names do not), a label the node lacks is "".
    pub fn matches(&self, node: &NodeFacts<'_>) -> bool {
        let actual = match &self.key {
            Key::NodeId => node.id,
            Key::Hostname => node.hostname,
            Key::Ip => return self.matches_ip(node.addr),
            Key::Role => node.role,
            Key::Os => node.os,
            Key::Arch => node.arch,
            Key::Label(l) => node.labels.get(l.as_str()).map_or("", String::as_str),
            Key::EngineLabel(_) => "",
            Key::Other(_) => return false,
        };
        let equal = go_equal_fold(actual, &self.value);
        match self.op {
            Op::Eq => equal,
            Op::Ne => !equal,
        }
    }

    /// `node.ip`: the value is an address (equal or not) or a CIDR network (within or not);
    /// anything else, or a node address that does not parse, is equal to nothing. A value
    /// that is neither address nor network matches no node, whatever the operator.
    fn matches_ip(&self, addr: &str) -> bool {
        let node = addr.parse::<IpAddr>().ok().map(|a| a.to_canonical());
        let hit = if let Ok(ip) = self.value.parse::<IpAddr>() {
            node == Some(ip.to_canonical())
        } else if let Some(net) = Cidr::parse(&self.value) {
            node.is_some_and(|n| net.contains(n))
        } else {
            return false;
        };
        match self.op {
            Op::Eq => hit,
            Op::Ne => !hit,
        }
    }
}

/// What a key names, its fixed names compared as Go's `strings.EqualFold` does.
fn classify(key: &str) -> Key {
    let fixed = [
        ("node.id", Key::NodeId),
        ("node.hostname", Key::Hostname),
        ("node.ip", Key::Ip),
        ("node.role", Key::Role),
        ("node.platform.os", Key::Os),
        ("node.platform.arch", Key::Arch),
    ];
    if let Some((_, k)) = fixed.into_iter().find(|(name, _)| go_equal_fold(key, name)) {
        return k;
    }
    for (prefix, make) in [
        (NODE_LABEL_PREFIX, Key::Label as fn(String) -> Key),
        (ENGINE_LABEL_PREFIX, Key::EngineLabel),
    ] {
        // swarmkit slices the prefix by bytes; a key of only ASCII there has it whole.
        if key.len() > prefix.len() {
            if let Some(head) = key.get(..prefix.len()) {
                if go_equal_fold(head, prefix) {
                    return make(key[prefix.len()..].to_string());
                }
            }
        }
    }
    Key::Other(key.to_string())
}

/// A letter of `(?i)[a-z]` in Go's regexp, whose case folding adds the Kelvin sign (to
/// `k`) and the long s (to `s`).
fn folded_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '\u{212A}' || c == '\u{17F}'
}

/// `^(?i)[a-z_][a-z0-9\-_.]+$`
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest: Vec<char> = chars.collect();
    (folded_letter(first) || first == '_')
        && !rest.is_empty()
        && rest
            .iter()
            .all(|&c| folded_letter(c) || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// `^(?i)[a-z0-9:\-_\s\.\*\(\)\?\+\[\]\\\^\$\|\/]+$` (Go's `\s` is `[\t\n\f\r ]`).
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            folded_letter(c)
                || c.is_ascii_digit()
                || matches!(
                    c,
                    ':' | '-'
                        | '_'
                        | '\t'
                        | '\n'
                        | '\u{c}'
                        | '\r'
                        | ' '
                        | '.'
                        | '*'
                        | '('
                        | ')'
                        | '?'
                        | '+'
                        | '['
                        | ']'
                        | '\\'
                        | '^'
                        | '$'
                        | '|'
                        | '/'
                )
        })
}

/// Go's `strings.EqualFold`: equal under simple Unicode case folding, rune by rune (a
/// rune whose case mapping is more than one rune folds only to itself).
fn go_equal_fold(a: &str, b: &str) -> bool {
    fn one(mut m: impl Iterator<Item = char>) -> Option<char> {
        match (m.next(), m.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }
    let fold_eq = |x: char, y: char| {
        let lower = |c: char| one(c.to_lowercase());
        let upper = |c: char| one(c.to_uppercase());
        x == y
            || (lower(x).is_some() && lower(x) == lower(y))
            || (upper(x).is_some() && upper(x) == upper(y))
    };
    a.chars().count() == b.chars().count() && a.chars().zip(b.chars()).all(|(x, y)| fold_eq(x, y))
}

/// A CIDR network as Go's `net.ParseCIDR` reads it and `IPNet.Contains` tests it: an
/// IPv4-mapped IPv6 network holds IPv4 addresses.
struct Cidr {
    addr: IpAddr,
    bits: u32,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, mask) = s.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        if mask.is_empty() || !mask.bytes().all(|b| b.is_ascii_digit()) || mask.len() > 8 {
            return None;
        }
        let bits: u32 = mask.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return None;
        }
        Some(match addr.to_canonical() {
            IpAddr::V4(v4) if addr.is_ipv6() => Cidr {
                addr: IpAddr::V4(v4),
                bits: bits.saturating_sub(96),
            },
            a => Cidr { addr: a, bits },
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What constraints look at on a node.
pub struct NodeFacts<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    /// The node's address as the managers see it (docker's `Status.Addr`).
    pub addr: &'a str,
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
            addr: "10.77.0.12",
            role: "worker",
            os: "linux",
            arch: "x86_64",
            labels,
        }
    }

    fn on(expr: &str, n: &NodeFacts<'_>) -> bool {
        Constraint::parse(expr).unwrap().matches(n)
    }

    #[test]
    fn tutorial_constraints() {
        let labels: crate::Labels = [("os".to_string(), "linux".to_string())].into();
        let n = facts(&labels);
        assert!(on("node.hostname == vm2", &n));
        assert!(on("node.labels.os == linux", &n));
        assert!(!on("node.hostname == vm1", &n));
        assert!(on("node.hostname!=vm1", &n));
        assert!(on("node.role == worker", &n));
        // A missing label never equals, always differs.
        assert!(!on("node.labels.zone == a", &n));
        assert!(on("node.labels.zone != a", &n));
    }

    /// swarmkit compares every value case-insensitively, labels' values too; label
    /// names and the other keys' names as they are (names) or in any case (keys).
    #[test]
    fn values_compare_in_any_case() {
        let labels: crate::Labels = [("os".to_string(), "linux".to_string())].into();
        let n = facts(&labels);
        assert!(on("node.labels.os == LINUX", &n));
        assert!(on("NODE.HOSTNAME == VM2", &n));
        assert!(on("Node.Labels.os == linux", &n));
        assert!(!on("node.labels.OS == linux", &n));
        assert!(on("node.role == WORKER", &n));
    }

    /// `engine.labels.*`: Shoal nodes have none, so it matches as docker's does on a node
    /// without the label; `node.ip` takes an address or a CIDR network.
    #[test]
    fn engine_labels_and_node_ip() {
        let labels = crate::Labels::new();
        let n = facts(&labels);
        assert!(!on("engine.labels.x == y", &n));
        assert!(on("engine.labels.x != y", &n));
        assert!(on("node.ip == 10.77.0.12", &n));
        assert!(!on("node.ip != 10.77.0.12", &n));
        assert!(!on("node.ip == 10.77.0.11", &n));
        assert!(on("node.ip == 10.77.0.0/16", &n));
        assert!(on("node.ip == 10.77.0.12/32", &n));
        assert!(!on("node.ip == 10.77.1.0/24", &n));
        assert!(on("node.ip != 10.77.1.0/24", &n));
        assert!(on("node.ip == ::ffff:10.77.0.12", &n));
        assert!(on("node.ip == ::ffff:10.77.0.0/112", &n));
        assert!(!on("node.ip == 2001:db8::/32", &n));
        // Neither an address nor a network: no node, whatever the operator.
        assert!(!on("node.ip == nope", &n));
        assert!(!on("node.ip != nope", &n));
        assert!(!on("node.ip != 10.77.0.0/33", &n));
        let v6 = NodeFacts {
            addr: "2001:db8::2",
            ..facts(&labels)
        };
        assert!(on("node.ip == 2001:db8::2", &v6));
        assert!(on("node.ip == 2001:db8::/32", &v6));
        assert!(!on("node.ip == 10.0.0.0/8", &v6));
        let unknown = NodeFacts {
            addr: "",
            ..facts(&labels)
        };
        assert!(!on("node.ip == 10.77.0.12", &unknown));
        assert!(on("node.ip != 10.77.0.12", &unknown));
    }

    /// Keys swarmkit's parser takes but no node has are valid, and match no node.
    #[test]
    fn unknown_keys_are_valid_and_match_nothing() {
        let labels = crate::Labels::new();
        let n = facts(&labels);
        for expr in [
            "node.foo == x",
            "node.foo != x",
            "node.labels. == x",
            "foo==bar",
        ] {
            let c = Constraint::parse(expr).unwrap();
            assert!(matches!(c.key, Key::Other(_)), "{expr}");
            assert!(!c.matches(&n), "{expr}");
        }
    }

    /// Bad expressions get swarmkit's words.
    #[test]
    fn bad_constraints_are_swarmkits_errors() {
        for (bad, why) in [
            (
                "node.hostname = vm1",
                "constraint expected one operator from ==, !=",
            ),
            ("node.hostname ==", "value '' is invalid"),
            ("a == b", "key 'a' is invalid"),
            ("ab == b == c", "value 'b == c' is invalid"),
            ("a != b == c", "key 'a != b' is invalid"),
            (" == x", "key '' is invalid"),
            ("n == x", "key 'n' is invalid"),
            ("1node == x", "key '1node' is invalid"),
            ("node.labels.a b == x", "key 'node.labels.a b' is invalid"),
            ("node.hostname == vm<1>", "value 'vm<1>' is invalid"),
            ("node.hostname == vm,1", "value 'vm,1' is invalid"),
        ] {
            assert_eq!(
                Constraint::parse(bad).unwrap_err().to_string(),
                why,
                "{bad}"
            );
        }
        // What the patterns allow: regexp characters, spaces inside, IPv6 and CIDR.
        for ok in [
            "node.hostname == vm 1",
            "node.labels.x == a*b?(c)+[d]\\^$|/:-_.",
            "_x == 1",
            "node.ip == 2001:db8::/32",
        ] {
            assert!(Constraint::parse(ok).is_ok(), "{ok}");
        }
    }

    /// Go's EqualFold folds beyond ASCII: the Kelvin sign is a `k`, a long s an `s`.
    #[test]
    fn equal_fold_is_gos() {
        assert!(go_equal_fold("kelvin", "\u{212A}ELVIN"));
        assert!(go_equal_fold("node.hostname", "node.ho\u{17F}tname"));
        assert!(go_equal_fold("ΣΑΣ", "σας"));
        assert!(!go_equal_fold("i", "\u{130}"));
        assert!(!go_equal_fold("ab", "a"));
    }
}
