//! Keys that seal data at rest: the Raft store's data encryption key (DEK) and the
//! swarm's unlock key (the key encryption key, KEK, under autolock).
//!
//! As swarmkit's `manager/encryption`: a 32-byte random key, shown to users as
//! `SWMKEY-1-<base64, no padding>`. Sealing is ChaCha20-Poly1305 with a random 96-bit
//! nonce per message (ring): `nonce || ciphertext || tag`. A wrong key or altered bytes
//! fail to open; nothing is ever returned unauthenticated.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// The prefix of a human-readable unlock key (swarmkit's `humanReadablePrefix`).
pub const UNLOCK_KEY_PREFIX: &str = "SWMKEY-1-";
/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes a sealed message adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// A 256-bit sealing key. Its Debug output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; KEY_LEN]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// A sealed message did not open: the key is not the one it was sealed with, or the
/// bytes were changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the data cannot be decrypted with this key (a wrong key, or damaged data)")]
pub struct OpenFailed;

/// An unlock key that is not one (swarmkit's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key string")]
pub struct BadKeyString;

impl SealKey {
    /// A new random key.
    pub fn generate() -> SealKey {
        let mut k = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut k)
            .expect("the system's random source failed");
        SealKey(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SealKey> {
        Some(SealKey(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// `SWMKEY-1-...`, as `docker swarm unlock-key` prints it.
    pub fn to_unlock_key(&self) -> String {
        format!(
            "{UNLOCK_KEY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0)
        )
    }

    /// Parse what a user typed at `swarm unlock` (surrounding whitespace ignored).
    pub fn parse_unlock_key(s: &str) -> Result<SealKey, BadKeyString> {
        let rest = s
            .trim()
            .strip_prefix(UNLOCK_KEY_PREFIX)
            .ok_or(BadKeyString)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(rest)
            .map_err(|_| BadKeyString)?;
        SealKey::from_bytes(&bytes).ok_or(BadKeyString)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &self.0).expect("a 32-byte ChaCha20 key"),
        )
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source failed");
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .aead()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut out[NONCE_LEN..],
            )
            .expect("sealing fails only on absurd lengths");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The plaintext of what `seal` made with this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenFailed> {
        if sealed.len() < OVERHEAD {
            return Err(OpenFailed);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenFailed)?;
        let mut buf = body.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| OpenFailed)?;
        let n = plain.len();
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_unaltered() {
        let k = SealKey::generate();
        let sealed = k.seal(b"top secret");
        assert_eq!(sealed.len(), b"top secret".len() + OVERHEAD);
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        assert_eq!(k.open(&sealed).unwrap(), b"top secret");
        // A fresh nonce each time: the same plaintext seals differently.
        assert_ne!(k.seal(b"top secret"), sealed);
        assert_eq!(SealKey::generate().open(&sealed), Err(OpenFailed));
        let mut bad = sealed.clone();
        bad[NONCE_LEN + 2] ^= 1;
        assert_eq!(k.open(&bad), Err(OpenFailed));
        assert_eq!(k.open(&sealed[..5]), Err(OpenFailed));
        assert_eq!(k.open(&k.seal(b"")).unwrap(), b"");
    }

    #[test]
    fn unlock_keys_read_as_swarmkit_writes_them() {
        let k = SealKey::generate();
        let s = k.to_unlock_key();
        assert!(s.starts_with("SWMKEY-1-"));
        assert_eq!(s.len(), 9 + 43, "{s}");
        assert_eq!(SealKey::parse_unlock_key(&format!("  {s}\n")).unwrap(), k);
        for bad in [
            "",
            "SWMKEY-1-",
            "SWMKEY-2-abc",
            "hello",
            &s[..s.len() - 2],
            &format!("{s}=="),
        ] {
            assert_eq!(SealKey::parse_unlock_key(bad), Err(BadKeyString), "{bad}");
        }
        assert_eq!(format!("{k:?}"), "SealKey(..)");
    }
}
