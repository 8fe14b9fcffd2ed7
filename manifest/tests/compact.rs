//! The compact manifest: encode/decode round trips and hostile input.

use manifest::{
    ChannelSpec, ConsoleKind, DecodeErrorKind, FaultPolicy, Manifest, Problem, VmKind, VmSpec,
    decode, encode,
};
use proptest::prelude::*;

fn vm(name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        kind: VmKind::Pv,
        image: "images/pv-guest".into(),
        initrd: None,
        memory_bytes: 16 << 20,
        vcpus: 1,
        cmdline: "selftest".into(),
        console: ConsoleKind::Pv,
        on_fault: FaultPolicy::Kill,
        disk: None,
        cpus: None,
        devices: Vec::new(),
    }
}

fn sample() -> Manifest {
    let mut beta = vm("beta");
    beta.vcpus = 8;
    beta.cmdline = "fuzz seed=7 count=100  cmdline=x ".into();
    beta.console = ConsoleKind::EmulatedPl011;
    beta.on_fault = FaultPolicy::Inject;
    beta.image = "images/other.elf".into();
    let mut c = vm("c");
    c.devices = vec![manifest::Bdf::new(0, 1, 0), manifest::Bdf::new(0, 2, 3)];
    Manifest {
        vms: vec![vm("alpha"), beta, c],
        channels: vec![ChannelSpec {
            name: "ping".into(),
            a: "alpha".into(),
            b: "beta".into(),
            pages: 4,
        }],
    }
}

#[test]
fn encodes_the_documented_form() {
    let m = Manifest {
        vms: vec![vm("alpha")],
        channels: vec![],
    };
    assert_eq!(
        encode(&m),
        "pvhyp-manifest 1\n\
         vm name=alpha memory=16777216 vcpus=1 console=pv on_fault=kill image=images/pv-guest cmdline=selftest\n"
    );
}

#[test]
fn round_trip() {
    let m = sample();
    assert_eq!(decode(&encode(&m)), Ok(m));
}

#[test]
fn empty_cmdline_round_trips() {
    let mut m = sample();
    m.vms[0].cmdline = String::new();
    assert_eq!(decode(&encode(&m)), Ok(m));
}

#[test]
fn comments_blank_lines_and_key_order() {
    let text = "pvhyp-manifest 1\n# a comment\n\n\
        vm image=i vcpus=2 on_fault=inject console=pv memory=4096 name=x cmdline=shell\n\
        vm name=y memory=8192 vcpus=1 console=pv on_fault=kill image=i cmdline=\n\
        channel pages=1 b=y a=x name=c\n";
    let m = decode(text).unwrap();
    assert_eq!(m.vms.len(), 2);
    // Records without `kind` or `initrd` (every archive before Linux VMs) are PV VMs.
    assert_eq!((m.vms[0].kind, &m.vms[0].initrd), (VmKind::Pv, &None));
    assert_eq!(m.vms[0].vcpus, 2);
    assert_eq!(m.vms[1].cmdline, "");
    assert_eq!(m.channels[0].a, "x");
}

fn kind(text: &str) -> (usize, DecodeErrorKind) {
    let e = decode(text).unwrap_err();
    (e.line, e.kind)
}

#[test]
fn refuses_bad_input() {
    let vm_line = "vm name=a memory=4096 vcpus=1 console=pv on_fault=kill image=i cmdline=x";
    let with = |line: &str| format!("pvhyp-manifest 1\n{vm_line}\n{line}\n");
    assert_eq!(kind(""), (1, DecodeErrorKind::MissingHeader));
    assert_eq!(
        kind("pvhyp-manifest 2\n"),
        (1, DecodeErrorKind::UnsupportedVersion("2".into()))
    );
    assert_eq!(
        kind("pvhyp-manifest 1\n"),
        (0, DecodeErrorKind::Invalid(Problem::NoVms))
    );
    assert_eq!(
        kind(&with("disk x=1")),
        (3, DecodeErrorKind::UnknownRecord("disk".into()))
    );
    let cases: &[(&str, DecodeErrorKind)] = &[
        ("vm name=b", DecodeErrorKind::MissingKey("memory")),
        ("vm name=b name=c", DecodeErrorKind::DuplicateKey("name")),
        (
            "vm colour=red",
            DecodeErrorKind::UnknownKey("colour".into()),
        ),
        ("vm name", DecodeErrorKind::NotKeyValue("name".into())),
        (
            &vm_line.replace("=a ", "=hyp "),
            DecodeErrorKind::Invalid(Problem::NameReserved),
        ),
        (
            &vm_line.replace("=a ", "=a.b "),
            DecodeErrorKind::Invalid(Problem::NameBadChar('.')),
        ),
        (
            &vm_line.replace("=a ", &format!("={} ", "n".repeat(32))),
            DecodeErrorKind::Invalid(Problem::NameTooLong),
        ),
        (
            &vm_line.replace("4096", "0"),
            DecodeErrorKind::Invalid(Problem::MemoryZero),
        ),
        (
            &vm_line.replace("4096", "4097"),
            DecodeErrorKind::Invalid(Problem::MemoryNotPageMultiple(4097)),
        ),
        (
            &vm_line.replace("4096", "-4096"),
            DecodeErrorKind::BadNumber("memory"),
        ),
        (
            &vm_line.replace("4096", "99999999999999999999"),
            DecodeErrorKind::BadNumber("memory"),
        ),
        (
            &vm_line.replace("vcpus=1", "vcpus=9"),
            DecodeErrorKind::Invalid(Problem::VcpusOutOfRange(9)),
        ),
        (
            &vm_line.replace("vcpus=1", "vcpus=0"),
            DecodeErrorKind::Invalid(Problem::VcpusOutOfRange(0)),
        ),
        (
            &vm_line.replace("=pv", "=vga"),
            DecodeErrorKind::BadValue("console"),
        ),
        (
            &vm_line.replace("=kill", "=ignore"),
            DecodeErrorKind::BadValue("on_fault"),
        ),
        (
            &vm_line.replace("image=i", "image="),
            DecodeErrorKind::Invalid(Problem::ImageEmpty),
        ),
        (
            &vm_line.replace("=x", &format!("={}", "x".repeat(256))),
            DecodeErrorKind::Invalid(Problem::CmdlineTooLong(256)),
        ),
        (
            &vm_line.replace("=x", "=a\tb"),
            DecodeErrorKind::Invalid(Problem::CmdlineBadChar),
        ),
        (
            &vm_line.replace("=x", "=é"),
            DecodeErrorKind::Invalid(Problem::CmdlineBadChar),
        ),
        (
            vm_line,
            DecodeErrorKind::Invalid(Problem::DuplicateVm("a".into())),
        ),
        (
            "channel name=c a=a b=z pages=1",
            DecodeErrorKind::Invalid(Problem::UnknownEndpoint("z".into())),
        ),
        (
            "channel name=c a=a b=a pages=1",
            DecodeErrorKind::Invalid(Problem::SameEndpoints("a".into())),
        ),
        (
            "channel name=c a=a b=hyp pages=1",
            DecodeErrorKind::Invalid(Problem::NameReserved),
        ),
        (
            "channel name=c a=a b=a pages=0",
            DecodeErrorKind::Invalid(Problem::PagesOutOfRange(0)),
        ),
        (
            "channel name=c a=a b=a pages=257",
            DecodeErrorKind::Invalid(Problem::PagesOutOfRange(257)),
        ),
        (
            "channel name=c a=a b=a",
            DecodeErrorKind::MissingKey("pages"),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(kind(&with(line)), (3, want.clone()), "{line}");
    }
}

#[test]
fn caps_the_number_of_vms() {
    let mut text = String::from("pvhyp-manifest 1\n");
    for i in 0..=manifest::MAX_VMS {
        text += &format!(
            "vm name=v{i} memory=4096 vcpus=1 console=pv on_fault=kill image=i cmdline=\n"
        );
    }
    assert_eq!(
        kind(&text),
        (66, DecodeErrorKind::Invalid(Problem::TooManyVms(65)))
    );
}

fn linux(name: &str) -> VmSpec {
    VmSpec {
        kind: VmKind::Linux,
        image: "images/Image".into(),
        initrd: Some("images/initrd.gz".into()),
        memory_bytes: 256 << 20,
        vcpus: 2,
        cmdline: "console=ttyAMA0 rdinit=/init".into(),
        console: ConsoleKind::EmulatedPl011,
        ..vm(name)
    }
}

#[test]
fn linux_vms_round_trip() {
    let m = Manifest {
        vms: vec![linux("linux"), vm("alpha")],
        channels: vec![],
    };
    let text = encode(&m);
    assert_eq!(
        text,
        "pvhyp-manifest 1\n\
         vm kind=linux name=linux memory=268435456 vcpus=2 console=emulated-pl011 on_fault=kill image=images/Image initrd=images/initrd.gz cmdline=console=ttyAMA0 rdinit=/init\n\
         vm name=alpha memory=16777216 vcpus=1 console=pv on_fault=kill image=images/pv-guest cmdline=selftest\n"
    );
    assert_eq!(decode(&text), Ok(m));
    let mut bare = linux("bare");
    bare.initrd = None;
    bare.cmdline = String::new();
    let m = Manifest {
        vms: vec![bare],
        channels: vec![],
    };
    assert_eq!(decode(&encode(&m)), Ok(m));
}

#[test]
fn refuses_what_the_kind_does_not_take() {
    let linux_line = "vm kind=linux name=l memory=4096 vcpus=1 console=emulated-pl011 on_fault=kill image=i initrd=r cmdline=x";
    let pv_line = "vm name=a memory=4096 vcpus=1 console=pv on_fault=kill image=i cmdline=x";
    let text = |lines: &[&str]| format!("pvhyp-manifest 1\n{}\n", lines.join("\n"));
    assert!(decode(&text(&[linux_line, pv_line])).is_ok());
    let not_for = |key, kind| DecodeErrorKind::Invalid(Problem::KeyNotForKind { key, kind });
    let cases: [(String, DecodeErrorKind); 6] = [
        (
            linux_line.replace("kind=linux", "kind=bsd"),
            DecodeErrorKind::BadValue("kind"),
        ),
        (
            pv_line.replace("image=i", "image=i initrd=r"),
            not_for("initrd", VmKind::Pv),
        ),
        (
            linux_line.replace("image=i", "image=i disk=0+512"),
            not_for("disk", VmKind::Linux),
        ),
        (
            linux_line.replace("console=emulated-pl011", "console=pv"),
            DecodeErrorKind::Invalid(Problem::LinuxConsoleNotEmulated),
        ),
        (
            linux_line.replace("initrd=r", "initrd="),
            DecodeErrorKind::Invalid(Problem::ImageEmpty),
        ),
        (
            linux_line.replace("cmdline=x", "cmdline=x\u{7f}"),
            DecodeErrorKind::Invalid(Problem::BootargsBadChar),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(kind(&text(&[pv_line, &line])), (3, want), "{line}");
    }
    // A channel may not reach a Linux VM, from either end.
    for ch in [
        "channel name=c a=a b=l pages=1",
        "channel name=c a=l b=a pages=1",
    ] {
        assert_eq!(
            kind(&text(&[pv_line, linux_line, ch])),
            (
                4,
                DecodeErrorKind::Invalid(Problem::ChannelToLinux("l".into()))
            )
        );
    }
}

#[test]
fn errors_display_the_line() {
    let e = decode("pvhyp-manifest 1\nvm name=b\n").unwrap_err();
    assert_eq!(e.to_string(), "manifest line 2: missing key memory");
}

fn arb_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,31}".prop_filter("reserved", |n| n != "hyp")
}

fn arb_vm() -> impl Strategy<Value = VmSpec> {
    (
        arb_name(),
        "[!-~]{1,60}",
        1u64..=(1 << 20),
        1u32..=8,
        "[ -~]{0,255}",
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(
            |(name, image, pages, vcpus, cmdline, pl011, inject, cpus)| VmSpec {
                name,
                kind: VmKind::Pv,
                image,
                initrd: None,
                memory_bytes: pages * 4096,
                vcpus,
                cmdline,
                console: if pl011 {
                    ConsoleKind::EmulatedPl011
                } else {
                    ConsoleKind::Pv
                },
                on_fault: if inject {
                    FaultPolicy::Inject
                } else {
                    FaultPolicy::Kill
                },
                disk: None,
                // 0: not pinned; otherwise the CPUs of the mask.
                cpus: manifest::CpuSet::from_indices(
                    (0..8).filter(|i| cpus & (1 << i) != 0).map(i64::from),
                )
                .ok(),
                devices: Vec::new(),
            },
        )
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    proptest::collection::vec(arb_vm(), 2..6)
        .prop_map(|mut vms| {
            for (i, vm) in vms.iter_mut().enumerate() {
                vm.name = format!("{}{i}", &vm.name[..vm.name.len().min(29)]);
            }
            vms
        })
        .prop_flat_map(|vms| {
            let n = vms.len();
            let channels = proptest::collection::vec((0..n, 1..n, 1u32..=256), 0..4);
            (Just(vms), channels)
        })
        .prop_map(|(vms, ends)| {
            let channels = ends
                .into_iter()
                .enumerate()
                .map(|(i, (a, offset, pages))| ChannelSpec {
                    name: format!("ch{i}"),
                    a: vms[a].name.clone(),
                    b: vms[(a + offset) % vms.len()].name.clone(),
                    pages,
                })
                .collect();
            Manifest { vms, channels }
        })
}

proptest! {
    #[test]
    fn valid_manifests_round_trip(m in arb_manifest()) {
        prop_assert_eq!(manifest::validate(&m), Ok(()));
        prop_assert_eq!(decode(&encode(&m)), Ok(m));
    }

    #[test]
    fn linux_manifests_round_trip(
        vms in proptest::collection::vec((arb_vm(), proptest::option::of("[!-~]{1,60}")), 1..4),
    ) {
        let vms = vms
            .into_iter()
            .map(|(vm, initrd)| VmSpec {
                kind: VmKind::Linux,
                initrd,
                console: ConsoleKind::EmulatedPl011,
                ..vm
            })
            .collect::<Vec<_>>();
        let mut m = Manifest { vms, channels: vec![] };
        for (i, vm) in m.vms.iter_mut().enumerate() {
            vm.name = format!("l{i}");
        }
        prop_assert_eq!(manifest::validate(&m), Ok(()));
        prop_assert_eq!(decode(&encode(&m)), Ok(m));
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let _ = decode(&text);
    }

    #[test]
    fn near_valid_text_never_panics(text in "pvhyp-manifest 1\n((vm|channel)( [a-z_]{1,9}=[ -~]{0,12}){0,9}\n){0,4}") {
        let _ = decode(&text);
    }

    #[test]
    fn mutated_encodings_never_panic(m in arb_manifest(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&m).into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(text) = std::str::from_utf8(&bytes)
            && let Ok(decoded) = decode(text)
        {
            prop_assert_eq!(manifest::validate(&decoded), Ok(()));
        }
    }
}
