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

fn read_manifest(archive: &[u8]) -> manifest::Manifest {
    let text = cpio::find(archive, "manifest")
        .unwrap()
        .expect("no manifest member");
    manifest::decode(std::str::from_utf8(text).unwrap()).unwrap()
}

#[test]
fn packs_the_default_example() {
    let dir = Scratch::new("default");
    let guest = dir.write("build/pv-guest", b"\x7fELF guest");
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
        Ok(Some(&b"\x7fELF guest"[..]))
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
    dir.write("guests/a/g.elf", b"first");
    dir.write("guests/b/g.elf", b"second");
    let default = dir.write("default.elf", b"default");
    let toml = dir.write(
        "conf/vms.toml",
        br#"
[[vm]]
name = "one"
image = "../guests/a/g.elf"
memory = "4K"

[[vm]]
name = "two"
image = "../guests/a/./g.elf"
memory = "4K"

[[vm]]
name = "three"
image = "../guests/b/g.elf"
memory = "4K"

[[vm]]
name = "four"
memory = "4K"
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
        Ok(Some(&b"second"[..]))
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
    let guest = dir.write("g", b"guest");
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

#[test]
fn usage_errors_exit_2() {
    let o = pvpack(&["--manifest", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out is required"));
    assert!(stderr(&o).contains("usage: pvpack"));
    let o = pvpack(&["--help"]);
    assert!(o.status.success());
}
