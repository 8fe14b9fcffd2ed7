//! Memory patterns and checksums, to see whether anything else wrote our memory.

/// The word at `index` of the pattern for `seed` (a splitmix64 step: every word differs).
pub fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `words` with the pattern for `seed`.
pub fn fill(words: &mut [u64], seed: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = word(seed, i as u64);
    }
}

/// An order-sensitive checksum (FNV-1a over words).
pub fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325, |h, &w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// How many words differ from the pattern for `seed`.
pub fn mismatches(words: &[u64], seed: u64) -> usize {
    words
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w != word(seed, i as u64))
        .count()
}

/// A xorshift64 generator: reproducible pseudo-random register images.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_word_changes_the_checksum() {
        let mut v = vec![0u64; 512];
        fill(&mut v, 7);
        let sum = checksum(&v);
        assert_eq!(mismatches(&v, 7), 0);
        v[300] ^= 1;
        assert_ne!(checksum(&v), sum);
        assert_eq!(mismatches(&v, 7), 1);
        v[300] ^= 1;
        v.swap(1, 2);
        assert_ne!(checksum(&v), sum);
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(word(1, 0), word(2, 0));
        assert_ne!(word(1, 0), word(1, 1));
        let mut r = XorShift(0);
        let (a, b) = (r.next_u64(), r.next_u64());
        assert!(a != 0 && a != b);
    }
}
