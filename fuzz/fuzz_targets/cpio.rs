//! The cpio newc reader (`manifest::cpio`): the initrd the hyp finds its manifest and guest
//! images in. Seeds: the GNU cpio fixture of the manifest tests and pvpack's archives.

#![no_main]

use libfuzzer_sys::fuzz_target;
use manifest::cpio::{self, CpioError, Entry, MODE_FILE, TRAILER};
use pvhyp_fuzz::is_within;

/// The smallest member: a 110-byte header and a name of at least one byte plus its NUL.
const MIN_MEMBER: usize = 112;

fuzz_target!(|archive: &[u8]| {
    let mut members = Vec::new();
    let mut error = None;
    for entry in cpio::entries(archive) {
        match entry {
            Ok(entry) => members.push(entry),
            Err(e) => {
                assert!(error.is_none(), "the iterator goes on after an error");
                error = Some(e);
            }
        }
        // Each member consumes its header, so the walk ends within the archive.
        assert!(members.len() <= archive.len() / MIN_MEMBER);
    }
    for m in &members {
        assert!(is_within(archive, m.name.as_bytes()) && is_within(archive, m.data));
        assert!(!m.name.is_empty() && !m.name.contains('\0') && m.name != TRAILER);
    }

    // `find` is the first regular file of that name (a stored "./" ignored), or the error
    // of a member before it.
    let names = ["manifest", "images/pv-guest"]
        .into_iter()
        .chain(members.first().map(|m| m.name));
    for name in names {
        let stored = |m: &&Entry<'_>| m.name.strip_prefix("./").unwrap_or(m.name) == name;
        let want = match members.iter().find(|m| stored(m) && m.is_file()) {
            Some(m) => Ok(Some(m.data)),
            None => error.map_or(Ok(None), Err),
        };
        let got = cpio::find(archive, name);
        assert_eq!(got, want, "find({name:?})");
        if let Ok(Some(data)) = got {
            assert!(is_within(archive, data));
        }
    }

    // A well-formed archive's members written again read back the same.
    if error.is_none() {
        let files: Vec<(&str, &[u8])> = members.iter().map(|m| (m.name, m.data)).collect();
        let written = cpio::write_newc(&files);
        let again: Result<Vec<Entry<'_>>, CpioError> = cpio::entries(&written).collect();
        let again = again.expect("write_newc output reads back");
        assert_eq!(again.len(), members.len());
        for (a, m) in again.iter().zip(&members) {
            assert_eq!((a.name, a.data, a.mode), (m.name, m.data, MODE_FILE));
        }
    }
});
