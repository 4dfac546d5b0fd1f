//! Base36 ([0-9a-z]) encoding of big-endian integers, as swarmkit writes digests and secrets.

use rand::Rng;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Encodes `bytes` (a big-endian unsigned integer) in base36, left-padded with '0' to at
/// least `width` characters.
pub(crate) fn encode_padded(bytes: &[u8], width: usize) -> String {
    let mut number: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    let mut digits = Vec::new();
    // Schoolbook long division by 36; the numbers here are 32 bytes at most.
    while !number.is_empty() {
        let mut remainder: u32 = 0;
        let mut quotient = Vec::with_capacity(number.len());
        for &byte in &number {
            let acc = (remainder << 8) | u32::from(byte);
            let q = acc / 36;
            remainder = acc % 36;
            if !(quotient.is_empty() && q == 0) {
                quotient.push(q as u8); // acc < 36 * 256, so q < 256
            }
        }
        digits.push(ALPHABET[remainder as usize]);
        number = quotient;
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// Lowercase hex of the number `s` (base36 digits) names, left-padded with '0' to at
/// least `width` characters, as Go's big.Int prints it after `SetString(s, 36)`; None
/// if `s` has a character that is no base36 digit.
pub(crate) fn to_hex_padded(s: &str, width: usize) -> Option<String> {
    // Little-endian base-256 digits, multiplied by 36 and added to, digit by digit.
    let mut bytes: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let d = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())?;
        let mut carry = d as u32;
        for b in bytes.iter_mut() {
            let acc = u32::from(*b) * 36 + carry;
            *b = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let hex: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
    let hex = hex.trim_start_matches('0');
    Some(format!("{hex:0>width$}"))
}

/// True when `s` is made only of lowercase base36 digits.
pub(crate) fn is_base36(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// `len` characters drawn uniformly from the base36 alphabet by the OS-seeded CSPRNG.
pub(crate) fn random(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_values() {
        assert_eq!(encode_padded(&[], 0), "");
        assert_eq!(encode_padded(&[0], 3), "000");
        assert_eq!(encode_padded(&[35], 0), "z");
        assert_eq!(encode_padded(&[36], 0), "10");
        assert_eq!(encode_padded(&[0x01, 0x00], 0), "74"); // 256 = 7*36 + 4
        assert_eq!(encode_padded(&[0xff; 8], 0), "3w5e11264sgsf"); // u64::MAX
        assert_eq!(encode_padded(&[0, 0, 1], 4), "0001");
    }

    /// The hex swarmkit prints of a token's digest: the same number, read back.
    #[test]
    fn base36_to_hex() {
        assert_eq!(to_hex_padded("0", 4).unwrap(), "0000");
        assert_eq!(to_hex_padded("74", 0).unwrap(), "100");
        assert_eq!(
            to_hex_padded("3w5e11264sgsf", 0).unwrap(),
            "ffffffffffffffff"
        );
        let digest = [0xabu8; 32];
        let b36 = encode_padded(&digest, 50);
        assert_eq!(to_hex_padded(&b36, 64).unwrap(), "ab".repeat(32));
        assert_eq!(to_hex_padded("x-y", 4), None);
    }

    #[test]
    fn a_sha256_fits_in_50_digits() {
        assert_eq!(encode_padded(&[0xff; 32], 50).len(), 50);
    }

    #[test]
    fn random_is_base36() {
        let s = random(25);
        assert_eq!(s.len(), 25);
        assert!(is_base36(&s));
        assert!(!is_base36("abcD"));
        assert!(!is_base36("ab-c"));
    }
}
