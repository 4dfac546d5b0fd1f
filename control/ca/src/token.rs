//! Join tokens, `SWMTKN-1-<CA digest>-<secret>`: pin the cluster CA and prove a node may join.

use std::fmt;

use thiserror::Error;

use crate::base36;

/// First part of every token.
pub const TOKEN_PREFIX: &str = "SWMTKN";
/// The only token version we issue and accept (swarmkit's v2 marks FIPS clusters).
const TOKEN_VERSION: &str = "1";
/// Length of the base36 CA digest part.
pub const DIGEST_LEN: usize = 50;
/// Length of the base36 secret part.
pub const SECRET_LEN: usize = 25;

/// Why a string is not a join token. Every message starts with "invalid join token", as
/// Docker's does, so users recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error(
        "invalid join token: expected SWMTKN-1-<digest>-<secret>, got {0} dash-separated parts"
    )]
    Parts(usize),
    #[error("invalid join token: must start with \"{TOKEN_PREFIX}-\"")]
    Prefix,
    #[error("invalid join token: unsupported version {0:?} (expected \"1\")")]
    Version(String),
    #[error("invalid join token: CA digest must be {DIGEST_LEN} characters, got {0}")]
    DigestLength(usize),
    #[error("invalid join token: secret must be {SECRET_LEN} characters, got {0}")]
    SecretLength(usize),
    #[error("invalid join token: {0} contains characters outside [0-9a-z]")]
    NotBase36(&'static str),
}

/// A parsed join token. `Display` writes it back as `SWMTKN-1-{ca_digest}-{secret}`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// [`crate::ca_digest`] of the cluster's root certificate.
    pub ca_digest: String,
    /// The role-specific secret a manager checks with [`JoinToken::matches_secret`].
    pub secret: String,
}

impl JoinToken {
    /// A token for the CA with digest `ca_digest` and a fresh random secret
    /// (25 base36 characters, about 129 bits).
    pub fn generate(ca_digest: &str) -> Self {
        Self {
            ca_digest: ca_digest.to_string(),
            secret: base36::random(SECRET_LEN),
        }
    }

    /// Parses `SWMTKN-1-<50 base36>-<25 base36>`; surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        if parts.first() != Some(&TOKEN_PREFIX) {
            return Err(TokenError::Prefix);
        }
        let [_, version, digest, secret] = parts[..] else {
            return Err(TokenError::Parts(parts.len()));
        };
        if version != TOKEN_VERSION {
            return Err(TokenError::Version(version.to_string()));
        }
        if digest.len() != DIGEST_LEN {
            return Err(TokenError::DigestLength(digest.len()));
        }
        if !base36::is_base36(digest) {
            return Err(TokenError::NotBase36("CA digest"));
        }
        if secret.len() != SECRET_LEN {
            return Err(TokenError::SecretLength(secret.len()));
        }
        if !base36::is_base36(secret) {
            return Err(TokenError::NotBase36("secret"));
        }
        Ok(Self {
            ca_digest: digest.to_string(),
            secret: secret.to_string(),
        })
    }

    /// Whether `secret` equals this token's secret, in time independent of where they
    /// differ (the length is not secret: it is fixed).
    pub fn matches_secret(&self, secret: &str) -> bool {
        constant_time_eq(self.secret.as_bytes(), secret.as_bytes())
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}-{TOKEN_VERSION}-{}-{}",
            self.ca_digest, self.secret
        )
    }
}

impl fmt::Debug for JoinToken {
    // The secret is a credential: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> String {
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd".to_string()
    }

    #[test]
    fn round_trip() {
        let token = JoinToken::generate(&digest());
        let text = token.to_string();
        assert_eq!(text.len(), "SWMTKN-1-".len() + DIGEST_LEN + 1 + SECRET_LEN);
        assert!(text.starts_with(&format!("SWMTKN-1-{}-", digest())));
        let parsed = JoinToken::parse(&text).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(JoinToken::parse(&format!("  {text}\n")).unwrap(), token);
    }

    #[test]
    fn generated_tokens_differ() {
        let a = JoinToken::generate(&digest());
        let b = JoinToken::generate(&digest());
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), SECRET_LEN);
        assert!(base36::is_base36(&a.secret));
    }

    #[test]
    fn parse_rejects_malformed_tokens() {
        let d = digest();
        let s = "abcdefghijklmnopqrstuvwxy";
        let cases: Vec<(String, TokenError)> = vec![
            (format!("SWMTKX-1-{d}-{s}"), TokenError::Prefix),
            (String::new(), TokenError::Prefix),
            (format!("SWMTKN-2-{d}-{s}"), TokenError::Version("2".into())),
            (
                format!("SWMTKN-1-{}-{s}", &d[1..]),
                TokenError::DigestLength(49),
            ),
            (
                format!("SWMTKN-1-{}A-{s}", &d[1..]),
                TokenError::NotBase36("CA digest"),
            ),
            (format!("SWMTKN-1-{d}"), TokenError::Parts(3)),
            (format!("SWMTKN-1-{d}-"), TokenError::SecretLength(0)),
            (format!("SWMTKN-1-{d}-{s}z"), TokenError::SecretLength(26)),
            (
                format!("SWMTKN-1-{d}-{}!", &s[1..]),
                TokenError::NotBase36("secret"),
            ),
            (format!("SWMTKN-1-{d}-{s}-x"), TokenError::Parts(5)),
        ];
        for (input, want) in cases {
            let got = JoinToken::parse(&input);
            assert_eq!(got, Err(want), "{input:?}");
            let msg = got.unwrap_err().to_string();
            assert!(msg.starts_with("invalid join token"), "{msg}");
        }
    }

    #[test]
    fn secret_comparison() {
        let token = JoinToken::generate(&digest());
        assert!(token.matches_secret(&token.secret.clone()));
        let mut other = token.secret.clone().into_bytes();
        other[24] = if other[24] == b'a' { b'b' } else { b'a' };
        assert!(!token.matches_secret(std::str::from_utf8(&other).unwrap()));
        assert!(!token.matches_secret(""));
        assert!(!token.matches_secret(&token.secret[..24]));
    }

    #[test]
    fn debug_hides_the_secret() {
        let token = JoinToken::generate(&digest());
        assert!(!format!("{token:?}").contains(&token.secret));
    }
}
