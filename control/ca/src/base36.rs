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
