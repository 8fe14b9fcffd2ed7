//! Text from outside (a manifest's words) quoted in an error line: printable ASCII as it is,
//! every other character escaped, so that no byte of it can move the terminal's cursor.
//! `{:?}` would do the same but brings Unicode's printable and grapheme tables (2 KiB of the
//! hyp's Image) for text that is ASCII whenever it is valid.

use core::fmt;

/// `text` in double quotes, `"` and `\` escaped, every character outside printable ASCII as
/// `\u{..}`.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                ' '..='~' => write!(f, "{c}")?,
                _ => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::Quoted;
    use alloc::string::ToString;

    #[test]
    fn printable_ascii_stays_and_everything_else_is_escaped() {
        assert_eq!(Quoted("vm-1 a_b").to_string(), "\"vm-1 a_b\"");
        assert_eq!(Quoted("a\"b\\c").to_string(), "\"a\\\"b\\\\c\"");
        assert_eq!(
            Quoted("\x1b[2J\u{7f}é\n").to_string(),
            "\"\\u{1b}[2J\\u{7f}\\u{e9}\\u{a}\""
        );
    }
}
