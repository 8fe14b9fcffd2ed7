//! The newc reader and writer: round trips, hostile input, and GNU cpio interop.

use std::io::Write;
use std::process::{Command, Stdio};

use manifest::cpio::{self, CpioError, Entry};
use proptest::prelude::*;

fn all(archive: &[u8]) -> Result<Vec<Entry<'_>>, CpioError> {
    cpio::entries(archive).collect()
}

#[test]
fn round_trip() {
    let files: [(&str, &[u8]); 4] = [
        ("manifest", b"pvhyp-manifest 1\n"),
        ("images/a", b"x"),
        ("images/empty", b""),
        ("images/five", b"12345"),
    ];
    let archive = cpio::write_newc(&files);
    assert_eq!(archive.len() % 4, 0);
    let read = all(&archive).unwrap();
    assert_eq!(read.len(), files.len());
    for (entry, (name, data)) in read.iter().zip(files) {
        assert_eq!(entry.name, name);
        assert_eq!(entry.data, data);
        assert_eq!(entry.mode, 0o100_644);
        assert!(entry.is_file());
    }
    assert_eq!(cpio::find(&archive, "images/five"), Ok(Some(&b"12345"[..])));
    assert_eq!(cpio::find(&archive, "images/none"), Ok(None));
}

#[test]
fn layout_is_newc() {
    let archive = cpio::write_newc(&[("ab", b"xyz")]);
    // Header, then "ab\0" padded: 110 + 3 = 113 -> 116; data 3 -> 4; then the trailer.
    assert_eq!(&archive[..6], b"070701");
    assert_eq!(&archive[6..14], b"00000001", "ino");
    assert_eq!(&archive[14..22], b"000081a4", "mode 0100644");
    assert_eq!(&archive[54..62], b"00000003", "filesize");
    assert_eq!(&archive[94..102], b"00000003", "namesize with NUL");
    assert_eq!(&archive[110..116], b"ab\0\0\0\0");
    assert_eq!(&archive[116..120], b"xyz\0");
    assert_eq!(&archive[120..126], b"070701");
    assert_eq!(&archive[230..241], b"TRAILER!!!\0");
    assert_eq!(archive.len(), 120 + 110 + 11 + 3);
}

#[test]
fn empty_archive_is_just_a_trailer() {
    let archive = cpio::write_newc(&[]);
    assert_eq!(all(&archive), Ok(vec![]));
}

#[test]
fn errors() {
    let good = cpio::write_newc(&[("file", b"data")]);
    assert_eq!(all(b""), Err(CpioError::MissingTrailer));
    assert_eq!(all(b"070701"), Err(CpioError::Truncated { offset: 0 }));
    let mut bad_magic = good.clone();
    bad_magic[0] = b'1';
    assert_eq!(all(&bad_magic), Err(CpioError::BadMagic { offset: 0 }));
    let mut bad_hex = good.clone();
    bad_hex[60] = b'g'; // inside filesize
    assert_eq!(
        all(&bad_hex),
        Err(CpioError::BadField {
            offset: 0,
            field: "filesize"
        })
    );
    let mut huge = good.clone();
    huge[54..62].copy_from_slice(b"ffffffff");
    assert_eq!(all(&huge), Err(CpioError::Truncated { offset: 0 }));
    let mut no_nul = good.clone();
    no_nul[94..102].copy_from_slice(b"00000004");
    assert_eq!(all(&no_nul), Err(CpioError::BadName { offset: 0 }));
    let mut zero_name = good.clone();
    zero_name[94..102].copy_from_slice(b"00000000");
    assert_eq!(all(&zero_name), Err(CpioError::BadName { offset: 0 }));
    // Cut off before the trailer: the file reads, then the end is reported.
    let cut = &good[..good.len() - 124];
    assert_eq!(cpio::entries(cut).count(), 2);
    assert_eq!(
        cpio::entries(cut).last(),
        Some(Err(CpioError::MissingTrailer))
    );
    // find reports errors met before the name.
    assert_eq!(
        cpio::find(&bad_magic, "file"),
        Err(CpioError::BadMagic { offset: 0 })
    );
}

#[test]
fn crc_variant_checks_the_sum() {
    let mut archive = cpio::write_newc(&[("f", b"\x01\x02")]);
    archive[5] = b'2';
    archive[102..110].copy_from_slice(b"00000003");
    assert_eq!(cpio::find(&archive, "f"), Ok(Some(&b"\x01\x02"[..])));
    archive[102..110].copy_from_slice(b"00000004");
    assert_eq!(
        cpio::find(&archive, "f"),
        Err(CpioError::BadChecksum { offset: 0 })
    );
}

/// Made with `cpio -o -H newc --reproducible --owner=0:0` (GNU cpio 2.13) from the files
/// `manifest`, `images/guest` ("abc"), `empty`, the directory `images`, `images/ten`.
const GNU_FIXTURE: &[u8] = include_bytes!("fixtures/gnu-newc.cpio");

#[test]
fn reads_gnu_cpio_fixture() {
    let entries = all(GNU_FIXTURE).unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        ["manifest", "images/guest", "empty", "images", "images/ten"]
    );
    assert!(!entries[3].is_file());
    assert_eq!(
        cpio::find(GNU_FIXTURE, "images/guest"),
        Ok(Some(&b"abc"[..]))
    );
    assert_eq!(
        cpio::find(GNU_FIXTURE, "images/ten"),
        Ok(Some(&b"0123456789"[..]))
    );
    assert_eq!(cpio::find(GNU_FIXTURE, "empty"), Ok(Some(&b""[..])));
    assert_eq!(
        cpio::find(GNU_FIXTURE, "images"),
        Ok(None),
        "a directory is not a file"
    );
    let text = std::str::from_utf8(cpio::find(GNU_FIXTURE, "manifest").unwrap().unwrap());
    assert!(manifest::decode(text.unwrap()).is_ok());
}

fn have_cpio() -> bool {
    let found = Command::new("cpio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("GNU cpio not installed: skipping the live interop check");
    }
    found
}

fn run_cpio(args: &[&str], dir: &std::path::Path, stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("manifest-cpio-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn gnu_cpio_lists_and_extracts_our_output() {
    if !have_cpio() {
        return;
    }
    let data: Vec<u8> = (0..=255).cycle().take(5000).collect();
    let archive = cpio::write_newc(&[("manifest", b"m\n"), ("images/big", &data), ("z", b"")]);
    let dir = scratch_dir("ours");
    let out = run_cpio(&["-t", "-H", "newc"], &dir, &archive);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "manifest\nimages/big\nz\n"
    );
    let out = run_cpio(&["-i", "-d", "-H", "newc"], &dir, &archive);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.join("images/big")).unwrap(), data);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reads_live_gnu_cpio_output() {
    if !have_cpio() {
        return;
    }
    let dir = scratch_dir("gnu");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let data: Vec<u8> = (0..=255).rev().cycle().take(777).collect();
    std::fs::write(dir.join("images/odd"), &data).unwrap();
    std::fs::write(dir.join("manifest"), b"hello").unwrap();
    let out = run_cpio(
        &["-o", "-H", "newc"],
        &dir,
        b"images\nimages/odd\nmanifest\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cpio::find(&out.stdout, "images/odd"), Ok(Some(&data[..])));
    assert_eq!(cpio::find(&out.stdout, "manifest"), Ok(Some(&b"hello"[..])));
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for entry in cpio::entries(&bytes) {
            let _ = entry;
        }
        let _ = cpio::find(&bytes, "manifest");
    }

    #[test]
    fn corrupted_archives_never_panic(
        at in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut archive = cpio::write_newc(&[("manifest", b"abc"), ("images/x", &[7; 33])]);
        for (index, byte) in at {
            let i = index.index(archive.len());
            archive[i] = byte;
        }
        let end = cut.index(archive.len() + 1);
        for entry in cpio::entries(&archive[..end]) {
            let _ = entry;
        }
        let _ = cpio::find(&archive[..end], "images/x");
    }

    #[test]
    fn round_trips(files in proptest::collection::vec(
        ("[a-z/._-]{1,40}", proptest::collection::vec(any::<u8>(), 0..100)), 0..6)
    ) {
        let borrowed: Vec<(&str, &[u8])> =
            files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let archive = cpio::write_newc(&borrowed);
        let read = all(&archive).unwrap();
        prop_assert_eq!(read.len(), files.len());
        for (entry, (name, data)) in read.iter().zip(&files) {
            prop_assert_eq!(entry.name, name.as_str());
            prop_assert_eq!(entry.data, data.as_slice());
        }
    }
}
