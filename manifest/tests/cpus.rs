//! CPU pins: the `cpus` key of a `[[vm]]`, its rules, and its compact form.

use manifest::{CpuSet, DecodeErrorKind, ManifestError, Problem, decode, encode, parse_toml};

fn err(text: &str) -> (usize, String) {
    let ManifestError { line, message } = parse_toml(text).unwrap_err();
    (line, message)
}

const PINNED: &str = r#"
[[vm]]
name = "a"
memory = "16M"
cpus = [2, 0]

[[vm]]
name = "b"
memory = "16M"
"#;

#[test]
fn pins_parse_and_survive_the_compact_form() {
    let m = parse_toml(PINNED).unwrap();
    let set = m.vms[0].cpus.unwrap();
    assert_eq!(set.iter().collect::<Vec<_>>(), [0, 2]);
    assert!(set.contains(0) && set.contains(2) && !set.contains(1) && !set.contains(99));
    assert_eq!(m.vms[1].cpus, None, "no key: any CPU");
    let mut packed = m.clone();
    for vm in &mut packed.vms {
        vm.image = "images/pv-guest".into();
    }
    let text = encode(&packed);
    assert!(text.contains(" cpus=0,2 cmdline=selftest\n"), "{text}");
    assert_eq!(text.matches(" cpus=").count(), 1, "{text}");
    assert_eq!(decode(&text).unwrap(), packed);
}

#[test]
fn bad_pins_are_refused_on_their_line() {
    let vm = |cpus: &str| format!("[[vm]]\nname = \"a\"\nmemory = \"16M\"\n\ncpus = {cpus}\n");
    let cases = [
        ("[]", "cpus is empty"),
        ("[8]", "cpus: CPU 8 is outside 0..8"),
        ("[-1]", "cpus: CPU -1 is outside 0..8"),
        ("[1, 3, 1]", "cpus: CPU 1 is given twice"),
        ("[\"1\"]", "invalid type"),
        ("2", "invalid type"),
    ];
    for (cpus, needle) in cases {
        let (line, message) = err(&vm(cpus));
        assert_eq!(line, 5, "{cpus} => {message}");
        assert!(message.contains(needle), "{cpus} => {message}");
    }
}

#[test]
fn bad_compact_pins_are_refused() {
    let line = |cpus: &str| {
        format!(
            "pvhyp-manifest 1\nvm name=a memory=4096 vcpus=1 console=pv on_fault=kill \
             image=images/x cpus={cpus} cmdline=selftest\n"
        )
    };
    let kind = |cpus: &str| decode(&line(cpus)).unwrap_err();
    assert_eq!(
        kind("0,9").kind,
        DecodeErrorKind::Invalid(Problem::CpuOutOfRange(9))
    );
    assert_eq!(
        kind("3,3").kind,
        DecodeErrorKind::Invalid(Problem::CpuDuplicate(3))
    );
    assert_eq!(kind("").kind, DecodeErrorKind::Invalid(Problem::CpusEmpty));
    assert_eq!(kind("1,,2").kind, DecodeErrorKind::BadNumber("cpus"));
    assert_eq!(kind("-1").kind, DecodeErrorKind::BadNumber("cpus"));
    assert!(
        decode(&line("7,1")).unwrap().vms[0]
            .cpus
            .unwrap()
            .contains(7)
    );
    assert_eq!(
        CpuSet::from_indices([]).unwrap_err(),
        Problem::CpusEmpty,
        "an empty set is refused"
    );
}
