//! The TOML front end: defaults, every refusal with its line, the examples, the docs.

use manifest::{
    ConsoleKind, FaultPolicy, ManifestError, VmKind, check_fits, parse_toml, parse_toml_with_lines,
};

fn err(text: &str) -> (usize, String) {
    let ManifestError { line, message } = parse_toml(text).unwrap_err();
    (line, message)
}

#[test]
fn defaults() {
    let m = parse_toml("[[vm]]\nname = \"a\"\nmemory = \"16M\"\n").unwrap();
    let vm = &m.vms[0];
    assert_eq!(vm.name, "a");
    assert_eq!(vm.image, "", "empty means the default pv-guest");
    assert_eq!(vm.memory_bytes, 16 << 20);
    assert_eq!(vm.vcpus, 1);
    assert_eq!(vm.cmdline, "selftest");
    assert_eq!(vm.console, ConsoleKind::Pv);
    assert_eq!(vm.on_fault, FaultPolicy::Kill);
    assert!(m.channels.is_empty());
}

#[test]
fn every_key() {
    let text = r#"
[[vm]]
name = "a"
image = "../guests/other.elf"
memory = 8192
vcpus = 8
cmdline = "fuzz seed=1 count=10"
console = "emulated-pl011"
on_fault = "inject"

[[vm]]
name = "b"
memory = "1G"

[[channel]]
name = "c"
between = ["a", "b"]
pages = 256
"#;
    let (m, lines) = parse_toml_with_lines(text).unwrap();
    assert_eq!(m.vms[0].image, "../guests/other.elf");
    assert_eq!(m.vms[0].memory_bytes, 8192);
    assert_eq!(m.vms[0].vcpus, 8);
    assert_eq!(m.vms[0].cmdline, "fuzz seed=1 count=10");
    assert_eq!(m.vms[0].console, ConsoleKind::EmulatedPl011);
    assert_eq!(m.vms[0].on_fault, FaultPolicy::Inject);
    assert_eq!(m.vms[1].memory_bytes, 1 << 30);
    assert_eq!(
        (
            m.channels[0].a.as_str(),
            m.channels[0].b.as_str(),
            m.channels[0].pages
        ),
        ("a", "b", 256)
    );
    assert_eq!(
        (lines.vms[0].name, lines.vms[0].image, lines.vms[0].memory),
        (3, Some(4), 5)
    );
    assert_eq!(lines.channels, [16]);
}

#[test]
fn memory_units() {
    for (value, bytes) in [
        ("\"4K\"", 4096),
        ("\"512K\"", 512 << 10),
        ("\"16M\"", 16 << 20),
        ("\"16MiB\"", 16 << 20),
        ("\"2G\"", 2 << 30),
        ("\"4096\"", 4096),
        ("1_048_576", 1 << 20),
    ] {
        let m = parse_toml(&format!("[[vm]]\nname = \"a\"\nmemory = {value}\n")).unwrap();
        assert_eq!(m.vms[0].memory_bytes, bytes, "{value}");
    }
}

#[test]
fn refusals_name_the_line() {
    let vm = |extra: &str| format!("# c\n[[vm]]\nname = \"a\"\nmemory = \"16M\"\n{extra}\n");
    let cases: &[(String, usize, &str)] = &[
        (vm("colour = \"red\""), 5, "unknown key `colour`"),
        (vm("[disk]\nsize = 1"), 5, "unknown key `disk`"),
        (vm("vcpus = 9"), 5, "vcpus 9 is outside 1..=8"),
        (vm("vcpus = 0"), 5, "vcpus 0 is outside 1..=8"),
        (vm("vcpus = \"2\""), 5, "expected an integer"),
        (
            vm("console = \"vga\""),
            5,
            "unknown value `vga`, expected `pv` or `emulated-pl011`",
        ),
        (vm("on_fault = \"ignore\""), 5, "unknown value `ignore`"),
        (
            vm(&format!("cmdline = \"{}\"", "x".repeat(256))),
            5,
            "cmdline is 256 bytes, more than 255",
        ),
        (
            vm("cmdline = \"a\\nb\""),
            5,
            "cmdline must be printable ASCII",
        ),
        (vm("image = \"\""), 5, "image is empty"),
        (vm("memory = \"1M\""), 5, "duplicate key"),
        (
            vm("[[vm]]\nname = \"a\"\nmemory = \"1M\""),
            6,
            "duplicate VM name \"a\" (first used on line 3)",
        ),
        (
            vm("[[vm]]\nname = \"hyp\"\nmemory = \"1M\""),
            6,
            "name \"hyp\" is reserved",
        ),
        (
            vm("[[vm]]\nname = \"a b\"\nmemory = \"1M\""),
            6,
            "name contains ' '",
        ),
        (
            vm("[[vm]]\nname = \"\"\nmemory = \"1M\""),
            6,
            "name is empty",
        ),
        (
            vm(&format!(
                "[[vm]]\nname = \"{}\"\nmemory = \"1M\"",
                "n".repeat(32)
            )),
            6,
            "longer than 31",
        ),
        (
            vm("[[vm]]\nname = \"b\"\nmemory = \"4097\""),
            7,
            "not a multiple of the 4096-byte page size",
        ),
        (
            vm("[[vm]]\nname = \"b\"\nmemory = 0"),
            7,
            "memory must be greater than 0",
        ),
        (
            vm("[[vm]]\nname = \"b\"\nmemory = -4096"),
            7,
            "memory -4096 is negative",
        ),
        (
            vm("[[vm]]\nname = \"b\"\nmemory = \"16Q\""),
            7,
            "is not a size",
        ),
        (
            vm("[[vm]]\nname = \"b\"\nmemory = \"16 M\""),
            7,
            "is not a size",
        ),
        (
            vm("[[vm]]\nname = \"b\"\nmemory = \"99999999999T\""),
            7,
            "is not a size",
        ),
        (
            vm("[[vm]]\nname = \"b\"\nmemory = \"512G\""),
            7,
            "more than the limit",
        ),
        (
            vm("[[vm]]\nname = \"b\""),
            5,
            "missing required key `memory`",
        ),
        (
            "[vm]\nname = \"b\"\nmemory = \"1M\"\n".into(),
            1,
            "write [[vm]] and [[channel]]",
        ),
        (
            vm("[[channel]]\nname = \"c\"\nbetween = [\"a\"]"),
            7,
            "between must list exactly two VM names, not 1",
        ),
        (
            vm("[[channel]]\nname = \"c\"\nbetween = [\"a\", \"z\"]"),
            7,
            "channel end \"z\" is not a VM",
        ),
        (
            vm("[[channel]]\nname = \"c\"\nbetween = [\"a\", \"a\"]"),
            7,
            "channel connects VM \"a\" to itself",
        ),
        (
            vm("[[channel]]\nname = \"c\"\nbetween = [\"a\", \"a\"]\npages = 0"),
            8,
            "pages 0 is outside 1..=256",
        ),
        (
            vm("[[channel]]\nname = \"c\"\nbetween = [\"a\", \"a\"]\nmode = 1"),
            8,
            "unknown key `mode`",
        ),
        (
            vm("[[channel]]\nbetween = [\"a\", \"a\"]"),
            5,
            "missing required key `name`",
        ),
        (vm("name2 = [1"), 5, ""),
        (
            "title = \"x\"\n".into(),
            1,
            "unknown key `title`, expected `vm` or `channel`",
        ),
        ("".into(), 0, "the manifest has no VM"),
    ];
    for (text, line, needle) in cases {
        let (got_line, message) = err(text);
        assert_eq!(got_line, *line, "{text}\n=> {message}");
        assert!(message.contains(needle), "{text}\n=> {message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn display_is_line_colon_reason() {
    let e = parse_toml("[[vm]]\nname = \"a\"\nmemory = 1\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3: memory 1 bytes is not a multiple of the 4096-byte page size"
    );
}

#[test]
fn fits() {
    let text = "[[vm]]\nname = \"a\"\nmemory = \"16M\"\n[[vm]]\nname = \"b\"\nmemory = \"32M\"\n\
                [[channel]]\nname = \"c\"\nbetween = [\"a\", \"b\"]\npages = 2\n";
    let (m, lines) = parse_toml_with_lines(text).unwrap();
    assert_eq!(check_fits(&m, (48 << 20) + 8192), Ok(()));
    let e = check_fits(&m, 40 << 20).unwrap_err();
    assert_eq!(e.line, 0);
    assert_eq!(
        e.to_string(),
        "VM \"b\" does not fit in memory: quotas up to it total 50331648 bytes (48M), \
         only 41943040 bytes (40M) are free"
    );
    assert_eq!(lines.check_fits(&m, 40 << 20).unwrap_err().line, 6);
    let e = lines.check_fits(&m, 48 << 20).unwrap_err();
    assert_eq!(e.line, 8);
    assert!(e.message.starts_with("channel \"c\" does not fit"), "{e}");
}

fn examples() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_parses() {
    let files = examples();
    assert!(files.len() >= 2);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let m = parse_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(manifest::validate(&m), Ok(()));
    }
}

#[test]
fn default_example_is_alpha_and_beta() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/default.toml");
    let m = parse_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    let names: Vec<_> = m
        .vms
        .iter()
        .map(|v| (v.name.as_str(), v.cmdline.as_str(), v.memory_bytes))
        .collect();
    assert_eq!(
        names,
        [
            ("alpha", "selftest", 16 << 20),
            ("beta", "selftest", 16 << 20)
        ]
    );
}

/// Every ```toml block in docs/MANIFEST.md that is marked as a full manifest parses; blocks
/// marked `toml,refused` must be refused. Keeps the reference in step with the parser.
#[test]
fn docs_examples() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/MANIFEST.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut checked = 0;
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("\n```toml") {
        let after = &rest[start + 8..];
        let (tag, body) = after.split_once('\n').unwrap();
        let end = body.find("\n```").unwrap();
        let block = &body[..end + 1];
        match tag {
            "" => {
                parse_toml(block).unwrap_or_else(|e| panic!("docs block fails: {e}\n{block}"));
                checked += 1;
            }
            ",refused" => {
                assert!(
                    parse_toml(block).is_err(),
                    "docs block should be refused:\n{block}"
                );
                checked += 1;
            }
            _ => {}
        }
        rest = &body[end..];
    }
    assert!(checked >= 2, "docs/MANIFEST.md lost its examples");
}

#[test]
fn linux_vms() {
    let text = r#"
[[vm]]
name = "linux"
kind = "linux"
image = "Image"
initrd = "initrd.gz"
bootargs = "console=ttyAMA0 rdinit=/init"
memory = "256M"
vcpus = 2
on_fault = "inject"
cpus = [0, 1]

[[vm]]
name = "bare"
kind = "linux"
image = "Image"
memory = "64M"

[[vm]]
name = "pv"
kind = "pv"
memory = "16M"
"#;
    let (m, lines) = parse_toml_with_lines(text).unwrap();
    let vm = &m.vms[0];
    assert_eq!(vm.kind, VmKind::Linux);
    assert_eq!(vm.image, "Image");
    assert_eq!(vm.initrd.as_deref(), Some("initrd.gz"));
    assert_eq!(
        vm.cmdline, "console=ttyAMA0 rdinit=/init",
        "bootargs go in cmdline"
    );
    assert_eq!(vm.console, ConsoleKind::EmulatedPl011);
    assert_eq!((vm.memory_bytes, vm.vcpus), (256 << 20, 2));
    assert_eq!(vm.on_fault, FaultPolicy::Inject);
    assert_eq!(vm.hyp_pages(), 0);
    assert_eq!(
        (lines.vms[0].image, lines.vms[0].initrd),
        (Some(5), Some(6))
    );
    let bare = &m.vms[1];
    assert_eq!((bare.initrd.as_deref(), bare.cmdline.as_str()), (None, ""));
    assert_eq!(m.vms[2].kind, VmKind::Pv);
    assert_eq!(m.vms[2].cmdline, "selftest");
    assert_eq!(lines.vms[2].initrd, None);
}

#[test]
fn linux_refusals_name_the_line() {
    let linux = "[[vm]]\nname = \"l\"\nkind = \"linux\"\nimage = \"Image\"\nmemory = \"64M\"\n";
    let pv = "[[vm]]\nname = \"p\"\nmemory = \"16M\"\n";
    let cases: &[(String, usize, &str)] = &[
        (
            format!("{linux}cmdline = \"shell\"\n"),
            6,
            "cmdline is not a key of a kind = \"linux\" VM: a Linux kernel's command line is `bootargs`",
        ),
        (
            format!("{linux}console = \"pv\"\n"),
            6,
            "console is not a key of a kind = \"linux\" VM: a Linux VM's console is always its emulated UART (ttyAMA0)",
        ),
        (
            format!("{linux}disk = {{ offset = 0, size = \"1M\" }}\n"),
            6,
            "disk is not a key of a kind = \"linux\" VM: disk regions are for PV guests only",
        ),
        (
            format!("{pv}bootargs = \"quiet\"\n"),
            4,
            "bootargs is not a key of a kind = \"pv\" VM: a PV guest's command line is `cmdline`",
        ),
        (
            format!("{pv}kind = \"pv\"\ninitrd = \"r.gz\"\n"),
            5,
            "initrd is not a key of a kind = \"pv\" VM: only Linux VMs take an initramfs",
        ),
        (
            "[[vm]]\nname = \"l\"\nkind = \"linux\"\nmemory = \"64M\"\n".into(),
            3,
            "a kind = \"linux\" VM needs an image key: a raw arm64 Image (there is no default)",
        ),
        (
            format!("{linux}initrd = \"\"\n"),
            6,
            "initrd is empty; leave the key out for no initramfs",
        ),
        (
            format!("{linux}bootargs = \"{}\"\n", "x".repeat(256)),
            6,
            "bootargs is 256 bytes, more than 255",
        ),
        (
            format!("{linux}bootargs = \"a\\tb\"\n"),
            6,
            "bootargs must be printable ASCII",
        ),
        (
            "[[vm]]\nname = \"l\"\nkind = \"windows\"\n".into(),
            3,
            "unknown value `windows`, expected `pv` or `linux`",
        ),
        (
            format!("{pv}{linux}[[channel]]\nname = \"c\"\nbetween = [\"p\", \"l\"]\n"),
            11,
            "channel end \"l\" is a kind = \"linux\" VM: channels join PV guests only",
        ),
    ];
    for (text, line, message) in cases {
        let (got_line, got) = err(text);
        assert_eq!(got_line, *line, "{text}\n{got}");
        assert!(
            got.contains(message),
            "{text}\nwant {message:?}\ngot  {got:?}"
        );
    }
    // Two keys of the other kind: the first in the text is named.
    let (line, message) = err(&format!(
        "{linux}disk = {{ offset = 0, size = \"1M\" }}\ncmdline = \"x\"\n"
    ));
    assert_eq!(line, 6);
    assert!(message.starts_with("disk is not a key"), "{message}");
}

#[test]
fn devices_are_pci_addresses_on_pv_vms() {
    let m =
        parse_toml("[[vm]]\nname = \"a\"\nmemory = \"16M\"\ndevices = [\"00:01.0\"]\n").unwrap();
    assert_eq!(m.vms[0].devices, [manifest::Bdf::new(0, 1, 0)]);
    let (line, message) = err("[[vm]]\nname = \"a\"\nmemory = \"16M\"\ndevices = [\"0:1.0\"]\n");
    assert_eq!(line, 4);
    assert!(
        message.contains("\"0:1.0\" is not a PCI address"),
        "{message}"
    );
    let (line, message) = err(
        "[[vm]]\nname = \"l\"\nkind = \"linux\"\nimage = \"Image\"\nmemory = \"64M\"\ndevices = [\"00:01.0\"]\n",
    );
    assert_eq!(line, 6);
    assert!(
        message.contains("devices are assigned to PV guests only"),
        "{message}"
    );
}

#[test]
fn a_device_is_assigned_once_and_its_owner_may_have_channels() {
    let (line, message) = err(
        "[[vm]]\nname = \"a\"\nmemory = \"16M\"\ndevices = [\"00:01.0\"]\n\
         [[vm]]\nname = \"b\"\nmemory = \"16M\"\ndevices = [\"00:01.0\"]\n",
    );
    assert_eq!(line, 8);
    assert_eq!(message, "device 00:01.0 is already assigned to VM a");
    let (_, message) =
        err("[[vm]]\nname = \"a\"\nmemory = \"16M\"\ndevices = [\"00:01.0\", \"00:01.0\"]\n");
    assert_eq!(message, "device 00:01.0 is already assigned to VM a");
    // Its device translates with a DMA table of its RAM only: a device owner may have channels.
    let m = parse_toml(
        "[[vm]]\nname = \"a\"\nmemory = \"16M\"\ndevices = [\"00:01.0\"]\n\
         [[vm]]\nname = \"b\"\nmemory = \"16M\"\n\
         [[channel]]\nname = \"c\"\nbetween = [\"a\", \"b\"]\n",
    )
    .unwrap();
    assert_eq!((m.channels.len(), m.vms[0].devices.len()), (1, 1));
}
