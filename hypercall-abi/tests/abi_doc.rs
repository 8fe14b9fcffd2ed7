//! `docs/ABI.md` and the crate must list the same calls, IDs, errors and layouts.

use std::collections::BTreeMap;

use hypercall_abi::{CALLS, Error};

const DOC: &str = include_str!("../../docs/ABI.md");
const FIXTURE: &str = include_str!("golden/v1.txt");

/// The cells of every Markdown table row.
fn rows(text: &str) -> impl Iterator<Item = Vec<String>> + '_ {
    text.lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
}

fn parse_hex(s: &str) -> Option<u32> {
    u32::from_str_radix(&s.strip_prefix("0x")?.replace('_', ""), 16).ok()
}

#[test]
fn doc_lists_every_call_with_its_id() {
    let doc: BTreeMap<String, Vec<String>> = rows(DOC)
        .filter(|r| r.len() == 6 && parse_hex(&r[1]).is_some())
        .map(|r| (r[0].clone(), r))
        .collect();
    for c in CALLS {
        let row = doc
            .get(c.name)
            .unwrap_or_else(|| panic!("docs/ABI.md lacks {}", c.name));
        let since = if c.live {
            c.since.to_string()
        } else {
            "-".into()
        };
        let bit = c.feature_bit().map_or("-".into(), |b| b.to_string());
        let status = if c.live { "live" } else { "provisional" };
        let family = format!("{:?}", c.family).to_lowercase();
        let want = [
            c.name.to_string(),
            format!("{:#x}", c.function_id),
            family,
            since,
            bit,
        ];
        let have = [
            row[0].clone(),
            format!("{:#x}", parse_hex(&row[1]).unwrap()),
            row[2].clone(),
            row[3].clone(),
            row[4].clone(),
        ];
        assert_eq!(have, want, "docs/ABI.md row for {}", c.name);
        assert_eq!(row[5], status, "docs/ABI.md status of {}", c.name);
    }
    assert_eq!(
        doc.len(),
        CALLS.len(),
        "docs/ABI.md lists calls the crate lacks"
    );
}

#[test]
fn doc_lists_every_error_with_its_code() {
    let doc: BTreeMap<String, i64> = rows(DOC)
        .filter(|r| r.len() == 3)
        .filter_map(|r| Some((r[0].clone(), r[1].parse().ok()?)))
        .collect();
    for e in Error::ALL {
        assert_eq!(
            doc.get(e.name()),
            Some(&e.code()),
            "docs/ABI.md error {}",
            e.name()
        );
    }
    assert_eq!(doc.len(), Error::ALL.len());
}

/// `### Name (...)` sections with a `| Offset | Field |` table and a `Size N, align M.` note,
/// as fixture-style `layout` lines.
fn doc_layouts() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for section in DOC.split("\n### ").skip(1) {
        let name = section.split([' ', '\n']).next().unwrap().to_string();
        if !section.contains("| Offset | Field |") {
            continue;
        }
        let size_note = section
            .split("Size ")
            .nth(1)
            .expect("layout section lacks 'Size N'");
        let mut words = size_note
            .split([',', ' ', '.', '\n'])
            .filter(|w| !w.is_empty());
        let size = words.next().unwrap();
        assert_eq!(words.next(), Some("align"), "{name}: 'Size N, align M.'");
        let align = words.next().unwrap();
        let mut line = format!("layout {name} size={size} align={align}");
        for r in rows(section).filter(|r| r[0].parse::<usize>().is_ok()) {
            line += &format!(" {}@{}", r[1], r[0]);
        }
        out.insert(name, line);
    }
    out
}

#[test]
fn doc_layouts_match_the_fixture() {
    let doc = doc_layouts();
    let fixture: Vec<&str> = FIXTURE
        .lines()
        .filter(|l| l.starts_with("layout "))
        .collect();
    for line in &fixture {
        let name = line.split(' ').nth(1).unwrap();
        assert_eq!(
            doc.get(name).map(String::as_str),
            Some(*line),
            "docs/ABI.md layout {name}"
        );
    }
    assert_eq!(
        doc.len(),
        fixture.len(),
        "docs/ABI.md has layouts the fixture lacks"
    );
}
