//! Disk regions: the `disk` key of a `[[vm]]`, its rules, and its compact form.

use manifest::{DecodeErrorKind, DiskRegion, ManifestError, Problem, decode, encode, parse_toml};

fn err(text: &str) -> (usize, String) {
    let ManifestError { line, message } = parse_toml(text).unwrap_err();
    (line, message)
}

const TWO: &str = r#"
[[vm]]
name = "a"
memory = "16M"
disk = { offset = 0, size = "1M" }

[[vm]]
name = "b"
memory = "16M"
disk = { offset = "1M", size = "4M" }

[[vm]]
name = "c"
memory = "16M"
"#;

#[test]
fn regions_parse_and_survive_the_compact_form() {
    let m = parse_toml(TWO).unwrap();
    assert_eq!(
        m.vms[0].disk,
        Some(DiskRegion {
            offset: 0,
            size: 1 << 20
        })
    );
    assert_eq!(
        m.vms[1].disk,
        Some(DiskRegion {
            offset: 1 << 20,
            size: 4 << 20
        })
    );
    assert_eq!(m.vms[2].disk, None);
    let mut packed = m.clone();
    for vm in &mut packed.vms {
        vm.image = "images/pv-guest".into();
    }
    let text = encode(&packed);
    assert!(
        text.contains(" disk=1048576+4194304 cmdline=selftest\n"),
        "{text}"
    );
    assert_eq!(decode(&text).unwrap(), packed);
}

#[test]
fn overlapping_regions_are_refused_on_the_later_line() {
    let text = TWO.replace("offset = \"1M\"", "offset = \"512K\"");
    let (line, message) = err(&text);
    assert_eq!(line, 10);
    assert_eq!(
        message,
        "disk region overlaps the disk region of VM \"a\" (line 5)"
    );
}

#[test]
fn bad_regions_are_refused_with_their_line() {
    let vm = |disk: &str| format!("[[vm]]\nname = \"a\"\nmemory = \"16M\"\ndisk = {disk}\n");
    for (disk, want) in [
        (
            "{ offset = 0, size = 0 }",
            "disk size must be greater than 0",
        ),
        (
            "{ offset = 100, size = 512 }",
            "not a multiple of the 512-byte sector",
        ),
        (
            "{ offset = 0, size = 1000 }",
            "not a multiple of the 512-byte sector",
        ),
        ("{ offset = \"1T\", size = 512 }", "beyond the limit"),
        (
            "{ offset = 0, size = \"1x\" }",
            "disk offset or size \"1x\" is not a size",
        ),
        (
            "{ offset = 0, size = -512 }",
            "disk offset or size -512 is negative",
        ),
        ("{ size = \"1M\" }", "missing required key `offset`"),
        ("{ offset = 0, size = 512, ro = true }", "unknown key `ro`"),
        ("\"1M\"", "invalid type"),
    ] {
        let (line, message) = err(&vm(disk));
        assert_eq!(line, 4, "{disk}: {message}");
        assert!(message.contains(want), "{disk}: {message}");
    }
}

#[test]
fn the_compact_form_checks_regions_again() {
    let line = |disk: &str| {
        format!(
            "pvhyp-manifest 1\nvm name=a memory=4096 vcpus=1 console=pv on_fault=kill image=i {disk}cmdline=x\n"
        )
    };
    assert_eq!(decode(&line("")).unwrap().vms[0].disk, None);
    let kind = |disk: &str| decode(&line(disk)).unwrap_err().kind;
    assert_eq!(kind("disk=512 "), DecodeErrorKind::BadValue("disk"));
    assert_eq!(kind("disk=x+512 "), DecodeErrorKind::BadNumber("disk"));
    assert_eq!(
        kind("disk=0+0 "),
        DecodeErrorKind::Invalid(Problem::DiskSizeZero)
    );
    assert_eq!(
        kind("disk=0+512 disk=0+512 "),
        DecodeErrorKind::DuplicateKey("disk")
    );
    let two = "pvhyp-manifest 1\n\
        vm name=a memory=4096 vcpus=1 console=pv on_fault=kill image=i disk=0+1024 cmdline=\n\
        vm name=b memory=4096 vcpus=1 console=pv on_fault=kill image=i disk=512+512 cmdline=\n";
    let e = decode(two).unwrap_err();
    assert_eq!(
        (e.line, e.kind),
        (
            3,
            DecodeErrorKind::Invalid(Problem::DiskOverlap("a".into()))
        )
    );
}
