//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of a
//! prime size M in which each backend owns about M/N slots, computed only from
//! the backends' names, so every node builds the same table, and a change of one
//! backend moves few other flows.

/// FNV-1a with a seed: stable across runs, machines and Rust versions.
fn hash(name: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // A final avalanche, so names differing in their last byte spread out.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// The table for `names` (any order; duplicates count once): entry i is the
/// index, in the sorted deduplicated names, of the backend owning slot i.
/// `size` must be a prime larger than the number of backends; empty when there
/// are no names.
pub fn table(names: &[&str], size: u32) -> Vec<u32> {
    let mut names: Vec<&str> = names.to_vec();
    names.sort_unstable();
    names.dedup();
    let n = names.len();
    let m = size as u64;
    if n == 0 || m == 0 {
        return Vec::new();
    }
    let perms: Vec<(u64, u64)> = names
        .iter()
        .map(|name| {
            let offset = hash(name, 0x5ad0_0001) % m;
            let skip = if m > 1 {
                hash(name, 0x5ad0_0002) % (m - 1) + 1
            } else {
                1
            };
            (offset, skip)
        })
        .collect();
    // Each backend walks its permutation offset, offset + skip, ... (mod m):
    // `pos` is where it stands, advanced by one addition (skip < m), no division.
    let mut pos: Vec<u64> = perms.iter().map(|&(offset, _)| offset).collect();
    let mut entry = vec![u32::MAX; size as usize];
    let mut filled = 0u64;
    let advance = |p: &mut u64, skip: u64| {
        *p += skip;
        if *p >= m {
            *p -= m;
        }
    };
    'fill: loop {
        for i in 0..n {
            let skip = perms[i].1;
            while entry[pos[i] as usize] != u32::MAX {
                advance(&mut pos[i], skip);
            }
            entry[pos[i] as usize] = i as u32;
            advance(&mut pos[i], skip);
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
    }
    entry
}

/// Whether `n` is prime (table sizes must be).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while (d as u64) * (d as u64) <= n as u64 {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's population, verbatim (slot = (offset + j * skip) mod M):
    /// the table every node must agree on, whatever the implementation.
    fn reference(names: &[&str], size: u32) -> Vec<u32> {
        let mut names: Vec<&str> = names.to_vec();
        names.sort_unstable();
        names.dedup();
        let m = u64::from(size);
        let perms: Vec<(u64, u64)> = names
            .iter()
            .map(|n| (hash(n, 0x5ad0_0001) % m, hash(n, 0x5ad0_0002) % (m - 1) + 1))
            .collect();
        let mut next = vec![0u64; names.len()];
        let mut entry = vec![u32::MAX; size as usize];
        let mut filled = 0;
        while filled < m {
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                let mut c = (offset + next[i] * skip) % m;
                while entry[c as usize] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % m;
                }
                entry[c as usize] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break;
                }
            }
        }
        entry
    }

    #[test]
    fn same_table_as_the_papers_population() {
        for (n, size) in [(1, 7), (3, 13), (10, 16381), (37, 65537), (100, 16381)] {
            let owned: Vec<String> = (0..n).map(|i| format!("task{i}")).collect();
            let names: Vec<&str> = owned.iter().map(String::as_str).collect();
            assert_eq!(
                table(&names, size),
                reference(&names, size),
                "{n} backends, M={size}"
            );
        }
    }

    fn shares(t: &[u32], n: usize) -> Vec<usize> {
        let mut s = vec![0; n];
        for &b in t {
            s[b as usize] += 1;
        }
        s
    }

    #[test]
    fn every_slot_is_owned_and_shares_are_even() {
        let names: Vec<String> = (0..10).map(|i| format!("task{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let t = table(&refs, 16381);
        assert_eq!(t.len(), 16381);
        let s = shares(&t, 10);
        // Maglev's fill gives each backend floor or ceil of M/N slots.
        assert!(s.iter().all(|&c| c == 1638 || c == 1639), "{s:?}");
    }

    #[test]
    fn same_names_same_table_in_any_order() {
        let a = table(&["b", "a", "c"], 251);
        let b = table(&["c", "b", "a", "a"], 251);
        assert_eq!(a, b);
    }

    #[test]
    fn removing_one_backend_moves_few_other_slots() {
        let names: Vec<String> = (0..10).map(|i| format!("task{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let before = table(&refs, 16381);
        let after = table(&refs[1..], 16381);
        // Slots owned by a surviving backend before: how many changed owner?
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != 0 && refs[**b as usize] != refs[1 + **a as usize])
            .count();
        let surviving = before.iter().filter(|b| **b != 0).count();
        assert!(
            (moved as f64) < 0.05 * surviving as f64,
            "{moved} of {surviving} slots moved"
        );
    }

    #[test]
    fn empty_and_primes() {
        assert!(table(&[], 251).is_empty());
        assert_eq!(table(&["x"], 7), vec![0; 7]);
        assert!(is_prime(16381) && is_prime(251) && !is_prime(16383) && !is_prime(1));
    }
}
