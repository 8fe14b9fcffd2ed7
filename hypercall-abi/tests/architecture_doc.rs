//! `docs/ARCHITECTURE.md` must name only paths and symbols that exist, so it stays true as the
//! code moves. In its inline code (fenced blocks are pictures, not checked):
//! - a word with a `/` (not starting with one: that is a device-tree path) is a path from the
//!   repository root; a `<placeholder>` in it stands for a name still to be chosen, and the
//!   directory before it must exist;
//! - `path/to/file.ext::name` names a definition in that file, and `::Member` after it a
//!   function, constant or variant of that type.

use std::path::{Path, PathBuf};

const DOC: &str = include_str!("../../docs/ARCHITECTURE.md");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the repository")
        .to_path_buf()
}

/// The inline code spans of `text`, outside fenced blocks.
fn code_spans(text: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A reference the doc makes.
#[derive(Debug, PartialEq)]
enum Reference {
    Path(String),
    Symbol { file: String, names: Vec<String> },
}

fn references(text: &str) -> Vec<Reference> {
    code_spans(text)
        .into_iter()
        .filter(|s| !s.contains(char::is_whitespace) && s.contains('/') && !s.starts_with('/'))
        .map(|s| match s.split_once("::") {
            Some((file, names)) => Reference::Symbol {
                file: file.to_string(),
                names: names.split("::").map(str::to_string).collect(),
            },
            None => Reference::Path(s),
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `word` occurs in `line` with no identifier character on either side.
fn has_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

const RUST_ITEMS: &[&str] = &[
    "fn",
    "struct",
    "enum",
    "const",
    "static",
    "trait",
    "type",
    "mod",
    "macro_rules!",
];

/// Whether `source` (a file named `file`) defines `name`; `member` also accepts an enum
/// variant.
fn defines(file: &str, source: &str, name: &str, member: bool) -> bool {
    source.lines().any(|line| {
        let t = line.trim_start();
        if file.ends_with(".S") {
            return t.starts_with(&format!("{name}:"));
        }
        if file.ends_with(".sh") {
            return t.starts_with(&format!("{name}()")) || t.starts_with(&format!("{name}="));
        }
        if RUST_ITEMS
            .iter()
            .any(|kw| has_word(line, &format!("{kw} {name}")))
        {
            return true;
        }
        // A variant: `Name,`, `Name(..)`, `Name { .. }`, `Name = 3,`.
        member
            && t.strip_prefix(name).is_some_and(|rest| {
                rest.is_empty() || [",", "(", " {", " ="].iter().any(|s| rest.starts_with(s))
            })
    })
}

/// What is wrong with one reference, if anything.
fn check(root: &Path, r: &Reference) -> Option<String> {
    match r {
        Reference::Path(p) => {
            let existing = match p.find('<') {
                Some(at) => &p[..p[..at].rfind('/').map_or(0, |slash| slash + 1)],
                None => p.as_str(),
            };
            (!root.join(existing).exists()).then(|| format!("no such path: {p}"))
        }
        Reference::Symbol { file, names } => {
            let Ok(source) = std::fs::read_to_string(root.join(file)) else {
                return Some(format!("no such file: {file}"));
            };
            names.iter().enumerate().find_map(|(i, name)| {
                (!defines(file, &source, name, i > 0))
                    .then(|| format!("{file} does not define {name}"))
            })
        }
    }
}

#[test]
fn every_path_and_symbol_the_doc_names_exists() {
    let root = repo();
    let refs = references(DOC);
    let wrong: Vec<String> = refs.iter().filter_map(|r| check(&root, r)).collect();
    assert!(
        wrong.is_empty(),
        "docs/ARCHITECTURE.md is out of date:\n  {}",
        wrong.join("\n  ")
    );
    // The parser must keep finding what the doc names (an empty list would pass anything).
    let symbols = refs
        .iter()
        .filter(|r| matches!(r, Reference::Symbol { .. }))
        .count();
    assert!(symbols >= 50, "only {symbols} symbols found in the doc");
    assert!(
        refs.len() - symbols >= 30,
        "only {} paths found",
        refs.len() - symbols
    );
}

#[test]
fn the_check_refuses_a_wrong_path_and_a_renamed_symbol() {
    let root = repo();
    let doc = "`hyp/src/vm/exit.rs::handle_sync` `hyp/src/vm/exitt.rs` \
               `hyp/src/vm/exit.rs::handle_synch` `hyp/src/hypercall/mod.rs::Action::Continue` \
               `hyp/src/hypercall/mod.rs::Action::Carry_on` `hyp/src/arch/aarch64/vectors.S::hyp_vectors` \
               `hyp/src/arch/aarch64/vectors.S::hyp_vector` `fuzz/fuzz_targets/<name>.rs` \
               `fuzz/fuzz_target/<name>.rs` `scripts/test.sh::cases` `scripts/test.sh::case` \
               `/chosen/stdout-path` `HVC #0`\n```\n`not/checked.rs`\n```\n";
    let verdicts: Vec<bool> = references(doc)
        .iter()
        .map(|r| check(&root, r).is_none())
        .collect();
    assert_eq!(
        verdicts,
        [
            true, false, false, true, false, true, false, true, false, true, false
        ]
    );
}
