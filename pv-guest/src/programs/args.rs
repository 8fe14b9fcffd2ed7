//! Program arguments: whitespace-separated words, some of them `key=value`.

/// The value of `key=N` among `args` (decimal, or hex with `0x`); `None` if absent or
/// malformed.
pub fn number(args: &str, key: &str) -> Option<u64> {
    let value = args
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?;
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// Whether the word `flag` is among `args`.
pub fn flag(args: &str, flag: &str) -> bool {
    args.split_whitespace().any(|w| w == flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_anywhere() {
        assert_eq!(number("rounds=100", "rounds"), Some(100));
        assert_eq!(number("a=1  rounds=0x20 b", "rounds"), Some(32));
        assert_eq!(number("roundsx=3 rounds=4", "rounds"), Some(4));
        assert_eq!(number("rounds=", "rounds"), None);
        assert_eq!(number("rounds=x", "rounds"), None);
        assert_eq!(number("", "rounds"), None);
    }
}
