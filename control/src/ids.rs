//! Random identifiers in swarmkit's shape: 25 lowercase base36 characters.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A fresh object ID (node, service, task...), 25 base36 characters like swarmkit's.
pub fn new_id() -> String {
    let mut rng = rand::thread_rng();
    (0..25)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A fresh Raft member ID. Never 0, so "unset" can't be confused with a member.
pub fn new_raft_id() -> u64 {
    rand::thread_rng().gen_range(1..u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_25_base36_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 25);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
        assert_ne!(new_raft_id(), 0);
    }
}
