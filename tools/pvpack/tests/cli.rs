//! pvpack end to end: real files in a scratch directory, the binary run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use manifest::cpio;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pvpack-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pvpack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvpack"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A real guest image: the committed 1.4 pv-guest, with `marker` appended (bytes past the
/// last segment, which the ELF rules ignore) so that tests can tell files apart.
fn guest(marker: &[u8]) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/guests/pv-guest-1.4.elf"
    );
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend_from_slice(marker);
    bytes
}

fn read_manifest(archive: &[u8]) -> manifest::Manifest {
    let text = cpio::find(archive, "manifest")
        .unwrap()
        .expect("no manifest member");
    manifest::decode(std::str::from_utf8(text).unwrap()).unwrap()
}

#[test]
fn packs_the_default_example() {
    let dir = Scratch::new("default");
    let image = guest(b"default example");
    let guest = dir.write("build/pv-guest", &image);
    let out = dir.0.join("initrd.cpio");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../manifest/examples/default.toml"
    );
    let run = pvpack(&[
        "--manifest",
        example,
        "--default-image",
        s(&guest),
        "--out",
        s(&out),
        "--mem",
        "1G",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));

    let archive = std::fs::read(&out).unwrap();
    let names: Vec<_> = cpio::entries(&archive)
        .map(|e| e.unwrap().name.to_owned())
        .collect();
    assert_eq!(names, ["manifest", "images/pv-guest"]);
    let m = read_manifest(&archive);
    assert_eq!(m.vms.len(), 2);
    assert!(m.vms.iter().all(|vm| vm.image == "images/pv-guest"));
    assert_eq!(
        cpio::find(&archive, "images/pv-guest"),
        Ok(Some(&image[..]))
    );

    if Command::new("cpio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let list = Command::new("sh")
            .arg("-c")
            .arg(format!("cpio -t < {}", s(&out)))
            .output()
            .unwrap();
        assert!(list.status.success(), "{}", stderr(&list));
        assert_eq!(
            String::from_utf8_lossy(&list.stdout),
            "manifest\nimages/pv-guest\n"
        );
    }
}

#[test]
fn resolves_relative_images_once_each() {
    let dir = Scratch::new("relative");
    dir.write("guests/a/g.elf", &guest(b"first"));
    let second = guest(b"second");
    dir.write("guests/b/g.elf", &second);
    let default = dir.write("default.elf", &guest(b"default"));
    let toml = dir.write(
        "conf/vms.toml",
        br#"
[[vm]]
name = "one"
image = "../guests/a/g.elf"
memory = "1M"

[[vm]]
name = "two"
image = "../guests/a/./g.elf"
memory = "1M"

[[vm]]
name = "three"
image = "../guests/b/g.elf"
memory = "1M"

[[vm]]
name = "four"
memory = "1M"
"#,
    );
    let out = dir.0.join("out.cpio");
    let run = pvpack(&[
        "--manifest",
        s(&toml),
        "--default-image",
        s(&default),
        "--out",
        s(&out),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let archive = std::fs::read(&out).unwrap();
    let m = read_manifest(&archive);
    let images: Vec<_> = m.vms.iter().map(|vm| vm.image.as_str()).collect();
    assert_eq!(
        images,
        [
            "images/g.elf",
            "images/g.elf",
            "images/g.elf-2",
            "images/default.elf"
        ]
    );
    assert_eq!(cpio::entries(&archive).count(), 4);
    assert_eq!(
        cpio::find(&archive, "images/g.elf-2"),
        Ok(Some(&second[..]))
    );
}

fn expect_error(out: &Output, want: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("pvpack: error: "), "{err}");
    assert!(err.contains(want), "want {want:?} in {err}");
}

#[test]
fn errors_name_file_and_line() {
    let dir = Scratch::new("errors");
    let guest = dir.write("g", &guest(b""));
    let out = dir.0.join("out.cpio");
    let run = |text: &str, extra: &[&str]| {
        let toml = dir.write("m.toml", text.as_bytes());
        let mut args = vec![
            "--manifest",
            s(&toml),
            "--default-image",
            s(&guest),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        (pvpack(&args), s(&toml).to_owned())
    };

    let (o, file) = run("[[vm]]\nname = \"a\"\nmemory = \"16M\"\nbogus = 1\n", &[]);
    expect_error(&o, &format!("{file}:4: unknown key `bogus`"));

    let (o, file) = run(
        "[[vm]]\nname = \"a\"\nimage = \"nope.elf\"\nmemory = \"16M\"\n",
        &[],
    );
    expect_error(&o, &format!("{file}:3: image \"nope.elf\""));

    let (o, file) = run(
        "[[vm]]\nname = \"a\"\nmemory = \"16M\"\n[[vm]]\nname = \"b\"\nmemory = \"1G\"\n",
        &["--mem", "512M"],
    );
    expect_error(&o, &format!("{file}:6: VM \"b\" does not fit in memory"));

    let (o, file) = run(
        "[[vm]]\nname = \"a\"\nmemory = \"16M\"\n",
        &["--mem", "16M"],
    );
    expect_error(&o, &format!("{file}: --mem 16M leaves nothing for VMs"));

    let (o, _) = run(
        "[[vm]]\nname = \"a\"\nmemory = \"16M\"\n",
        &["--mem", "64M"],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let toml = dir.write("m.toml", b"[[vm]]\nname = \"a\"\nmemory = \"16M\"\n");
    let o = pvpack(&["--manifest", s(&toml), "--out", s(&out)]);
    expect_error(
        &o,
        &format!(
            "{}:2: VM \"a\" has no image key and no --default-image",
            s(&toml)
        ),
    );

    let o = pvpack(&[
        "--manifest",
        s(&dir.0.join("missing.toml")),
        "--out",
        s(&out),
    ]);
    expect_error(&o, "missing.toml: ");
}

/// The guest fixture with `patch` applied at byte offsets.
fn patched(patches: &[(usize, &[u8])]) -> Vec<u8> {
    let mut bytes = guest(b"");
    for &(at, data) in patches {
        bytes[at..at + data.len()].copy_from_slice(data);
    }
    bytes
}

#[test]
fn refuses_images_the_hypervisor_would_refuse() {
    let dir = Scratch::new("images");
    let out = dir.0.join("out.cpio");
    let good = dir.write("good.elf", &guest(b""));
    // One VM with the image under test, a good one after it.
    let pack = |image: &[u8], memory: &str, extra: &[&str]| {
        let bad = dir.write("bad.elf", image);
        let text = format!(
            "[[vm]]\nname = \"a\"\nimage = \"bad.elf\"\nmemory = \"{memory}\"\n\n\
             [[vm]]\nname = \"b\"\nmemory = \"16M\"\n"
        );
        let toml = dir.write("m.toml", text.as_bytes());
        let mut args = vec![
            "--manifest",
            s(&toml),
            "--default-image",
            s(&good),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let prefix = format!(
            "{}:3: VM \"a\": image \"bad.elf\" ({}): ",
            s(&toml),
            s(&bad)
        );
        (pvpack(&args), prefix, s(&toml).to_owned())
    };
    let refusals: [(Vec<u8>, &str); 5] = [
        (b"MZ not an elf".to_vec(), "not an ELF file"),
        (
            patched(&[(4, &[1])]),
            "an ELF file, but not ELF64 little-endian",
        ),
        (
            patched(&[(5, &[2])]),
            "an ELF file, but not ELF64 little-endian",
        ),
        (
            patched(&[(18, &62u16.to_le_bytes())]),
            "an ELF64 file for machine 62, not AArch64 (e_machine 183)",
        ),
        // The first program header's p_vaddr, moved to the end of the 39-bit IPA space.
        (
            patched(&[(64 + 16, &((1u64 << 39) - 0x1000).to_le_bytes())]),
            "a loadable segment (0x7ffffff000..0x80000184ec) lies outside the guest's 39-bit IPA space",
        ),
    ];
    for (image, reason) in refusals {
        let (o, prefix, _) = pack(&image, "16M", &[]);
        expect_error(&o, &format!("{prefix}{reason}"));
        // The escape hatch for tests of the hyp's own refusal packs it anyway.
        let (o, _, _) = pack(&image, "16M", &["--no-image-check"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }

    // The fixture maps 83 pages, and the hyp 3 more (boot info, event page, console ring).
    let (o, _, file) = pack(&guest(b""), "340K", &[]);
    expect_error(
        &o,
        &format!(
            "{file}:4: VM \"a\": image \"bad.elf\" ({}): needs 83 pages and the hypervisor \
             maps 3 more for the VM (344K in all), more than its memory quota (340K)",
            s(&dir.0.join("bad.elf"))
        ),
    );
    let (o, _, _) = pack(&guest(b""), "344K", &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // The default image is checked too, for each VM that uses it (its `name` line).
    let not_elf = dir.write("not-elf", b"#!/bin/sh\n");
    let toml = dir.write("d.toml", b"[[vm]]\nname = \"d\"\nmemory = \"16M\"\n");
    let o = pvpack(&[
        "--manifest",
        s(&toml),
        "--default-image",
        s(&not_elf),
        "--out",
        s(&out),
    ]);
    expect_error(
        &o,
        &format!(
            "{}:2: VM \"d\": default image {}: not an ELF file",
            s(&toml),
            s(&not_elf)
        ),
    );
}

#[test]
fn usage_errors_exit_2() {
    let o = pvpack(&["--manifest", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out is required"));
    assert!(stderr(&o).contains("usage: pvpack"));
    let o = pvpack(&["--help"]);
    assert!(o.status.success());
}

/// A fake arm64 Image: the 64-byte header of booting.rst (`text_offset`, `image_size`, flags
/// 0xa: little-endian, 4K pages, anywhere) and `body` zero bytes after it.
fn arm64_image(text_offset: u64, image_size: u64, flags: u64, body: usize) -> Vec<u8> {
    let mut image = vec![0u8; 64 + body];
    image[8..16].copy_from_slice(&text_offset.to_le_bytes());
    image[16..24].copy_from_slice(&image_size.to_le_bytes());
    image[24..32].copy_from_slice(&flags.to_le_bytes());
    image[0x38..0x3c].copy_from_slice(b"ARM\x64");
    image
}

const LINUX_VM: &str = r#"[[vm]]
name = "l"
kind = "linux"
image = "Image"
memory = "MEMORY"
vcpus = 2
INITRD
bootargs = "console=ttyAMA0 rdinit=/init"

[[vm]]
name = "p"
memory = "16M"
"#;

/// The manifest of a Linux VM (its `image` line 4, `memory` line 5, `initrd` line 7) beside a
/// PV one.
fn linux_manifest(memory: &str, initrd: Option<&str>) -> String {
    let initrd = initrd.map_or(String::new(), |i| format!("initrd = \"{i}\""));
    LINUX_VM
        .replace("MEMORY", memory)
        .replace("INITRD", &initrd)
}

#[test]
fn packs_a_linux_vm_beside_a_pv_one() {
    let dir = Scratch::new("linux");
    let kernel = arm64_image(0, 2 << 20, 0xa, 4096);
    dir.write("Image", &kernel);
    dir.write("initrd.gz", b"\x1f\x8b an initramfs");
    let default = dir.write("g", &guest(b""));
    let toml = dir.write(
        "m.toml",
        linux_manifest("64M", Some("initrd.gz")).as_bytes(),
    );
    let out = dir.0.join("out.cpio");
    let run = pvpack(&[
        "--manifest",
        s(&toml),
        "--default-image",
        s(&default),
        "--out",
        s(&out),
        "--mem",
        "128M",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let archive = std::fs::read(&out).unwrap();
    let names: Vec<_> = cpio::entries(&archive)
        .map(|e| e.unwrap().name.to_owned())
        .collect();
    assert_eq!(
        names,
        ["manifest", "images/Image", "images/initrd.gz", "images/g"]
    );
    assert_eq!(cpio::find(&archive, "images/Image"), Ok(Some(&kernel[..])));
    let m = read_manifest(&archive);
    let l = &m.vms[0];
    assert_eq!(l.kind, manifest::VmKind::Linux);
    assert_eq!(l.image, "images/Image");
    assert_eq!(l.initrd.as_deref(), Some("images/initrd.gz"));
    assert_eq!(l.cmdline, "console=ttyAMA0 rdinit=/init");
    assert_eq!(l.console, manifest::ConsoleKind::EmulatedPl011);
    assert_eq!(m.vms[1].kind, manifest::VmKind::Pv);
    assert_eq!(m.vms[1].image, "images/g");
}

#[test]
fn refuses_linux_vms_the_hypervisor_would_refuse() {
    let dir = Scratch::new("linux-bad");
    let out = dir.0.join("out.cpio");
    let default = dir.write("g", &guest(b""));
    dir.write("initrd.gz", &[0x1f; 3 << 20]);
    let pack = |kernel: &[u8], memory: &str, initrd: Option<&str>, extra: &[&str]| {
        let image = dir.write("Image", kernel);
        let toml = dir.write("m.toml", linux_manifest(memory, initrd).as_bytes());
        let mut args = vec![
            "--manifest",
            s(&toml),
            "--default-image",
            s(&default),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let file = s(&toml).to_owned();
        let image_prefix = format!("{file}:4: VM \"l\": image \"Image\" ({}): ", s(&image));
        (pvpack(&args), file, image_prefix)
    };
    let good = arm64_image(0, 2 << 20, 0xa, 0);

    let refusals: [(Vec<u8>, &str); 4] = [
        (guest(b""), "not an arm64 Image: no ARM\\x64 magic at 0x38"),
        (
            good[..63].to_vec(),
            "not an arm64 Image: 63 bytes, shorter than the 64-byte header",
        ),
        (arm64_image(0, 2 << 20, 0xb, 0), "a big-endian kernel"),
        (
            arm64_image(0, 0, 0xa, 0),
            "image_size 0 in the arm64 Image header",
        ),
    ];
    for (kernel, reason) in refusals {
        let (o, _, prefix) = pack(&kernel, "64M", None, &[]);
        expect_error(&o, &format!("{prefix}{reason}"));
        let (o, _, _) = pack(&kernel, "64M", None, &["--no-image-check"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }

    // 2 MiB of kernel, then the device tree's 2 MiB slot: 4M fits, not with a 3 MiB initrd
    // (which needs 2M + 3M, rounded up to 6M, + 2M).
    let (o, _, _) = pack(&good, "4M", None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, file, _) = pack(&good, "4M", Some("initrd.gz"), &[]);
    expect_error(
        &o,
        &format!(
            "{file}:5: VM \"l\": memory too small: needs 8388608 bytes (8M) (the kernel up to \
             0x200000, text_offset + image_size; the initrd, 3145728 bytes; the device tree's \
             2 MiB aligned slot of 2M at the top), the VM has 4194304 bytes (4M)"
        ),
    );
    let (o, _, _) = pack(&good, "8M", Some("initrd.gz"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A text_offset far beyond the memory.
    let (o, file, _) = pack(&arm64_image(1 << 40, 4096, 0xa, 0), "64M", None, &[]);
    expect_error(&o, &format!("{file}:5: VM \"l\": memory too small: needs "));

    let (o, file, _) = pack(&good, "64M", Some("nope.gz"), &[]);
    expect_error(
        &o,
        &format!(
            "{file}:7: VM \"l\": initrd \"nope.gz\" ({}): No such file or directory",
            s(&dir.0.join("nope.gz"))
        ),
    );
}
