//! From a TOML manifest to an archive: parse and check, resolve and read the images, name them
//! inside the archive, check the memory fits, write.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use manifest::linux_image::{self, DTB_MAX_BYTES};
use manifest::{
    ARCHIVE_IMAGES_DIR, ARCHIVE_MANIFEST, HYP_ALLOWANCE_BYTES, ManifestError, PAGE_SIZE, Size,
    SourceLines, VmKind,
};

use crate::args::Args;

/// Why packing failed: which file, which line (0: none), what.
#[derive(Debug)]
pub struct Failure {
    pub file: Option<PathBuf>,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Failure {
    /// `FILE:LINE: reason`, `FILE: reason` or `reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), 0) => write!(f, "{}: {}", file.display(), self.message),
            (Some(file), line) => write!(f, "{}:{line}: {}", file.display(), self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// Packs `args.manifest` into `args.out`; returns a one-line summary.
pub fn run(args: &Args) -> Result<String, Failure> {
    let in_manifest = |line: usize, message: String| Failure {
        file: Some(args.manifest.clone()),
        line,
        message,
    };
    let from_error = |e: ManifestError| in_manifest(e.line, e.message);

    let text = fs::read_to_string(&args.manifest).map_err(|e| Failure {
        file: Some(args.manifest.clone()),
        line: 0,
        message: e.to_string(),
    })?;
    let (mut m, lines) = manifest::parse_toml_with_lines(&text).map_err(from_error)?;

    let base = args.manifest.parent().unwrap_or(Path::new("."));
    let mut images = Images::default();
    for (vm, vm_lines) in m.vms.iter_mut().zip(&lines.vms) {
        // What the errors call the image: as the manifest wrote it, or the default.
        let (name, what) = if vm.image.is_empty() {
            let Some(path) = &args.default_image else {
                let message = format!(
                    "VM \"{}\" has no image key and no --default-image was given",
                    vm.name
                );
                return Err(in_manifest(vm_lines.name, message));
            };
            let what = format!("default image {}", path.display());
            let name = images.add(path).map_err(|e| Failure {
                file: None,
                line: 0,
                message: format!("{what}: {e}"),
            })?;
            (name, what)
        } else {
            let path = base.join(&vm.image);
            let what = format!("image {:?} ({})", vm.image, path.display());
            let name = images.add(&path).map_err(|e| {
                in_manifest(
                    vm_lines.image.unwrap_or(vm_lines.name),
                    format!("{what}: {e}"),
                )
            })?;
            (name, what)
        };
        // A Linux VM's initramfs, read as its image is.
        let initrd = match &vm.initrd {
            Some(initrd) => {
                let path = base.join(initrd);
                let what = format!("initrd {initrd:?} ({})", path.display());
                let name = images.add(&path).map_err(|e| {
                    in_manifest(
                        vm_lines.initrd.unwrap_or(vm_lines.name),
                        format!("VM \"{}\": {what}: {e}", vm.name),
                    )
                })?;
                Some(name)
            }
            None => None,
        };
        if args.check_images {
            let image = images.data(&name);
            match vm.kind {
                VmKind::Pv => check_image(vm, vm_lines, &what, image),
                VmKind::Linux => {
                    let initrd_len = initrd.as_deref().map(|n| images.data(n).len() as u64);
                    check_linux_image(vm, vm_lines, &what, image, initrd_len)
                }
            }
            .map_err(from_error)?;
        }
        vm.image = name;
        vm.initrd = initrd;
    }

    let compact = manifest::encode(&m);
    // The hyp will run exactly this check; failing it here would be a bug in pvpack.
    manifest::decode(&compact).map_err(|e| {
        in_manifest(
            0,
            format!("internal error: the packed manifest is refused: {e}"),
        )
    })?;
    let mut members: Vec<(&str, &[u8])> = vec![(ARCHIVE_MANIFEST, compact.as_bytes())];
    members.extend(
        images
            .members
            .iter()
            .map(|(name, data)| (name.as_str(), data.as_slice())),
    );
    let archive = manifest::cpio::write_newc(&members);

    if let Some(mem) = args.mem {
        check_mem(&m, &lines, mem, archive.len() as u64).map_err(from_error)?;
    }

    fs::write(&args.out, &archive).map_err(|e| Failure {
        file: Some(args.out.clone()),
        line: 0,
        message: format!("cannot write: {e}"),
    })?;
    Ok(format!(
        "wrote {} ({} bytes): {} VM(s), {} channel(s), {} image(s), quotas {}",
        args.out.display(),
        archive.len(),
        m.vms.len(),
        m.channels.len(),
        images.members.len(),
        Size(m.total_bytes()),
    ))
}

/// The VMs (and channels) must fit in `mem` minus [`HYP_ALLOWANCE_BYTES`] minus the archive,
/// which stays in RAM while the hyp loads from it.
fn check_mem(
    m: &manifest::Manifest,
    lines: &SourceLines,
    mem: u64,
    archive_len: u64,
) -> Result<(), ManifestError> {
    let archive = archive_len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let reserved = HYP_ALLOWANCE_BYTES + archive;
    let Some(free) = mem.checked_sub(reserved).filter(|&f| f > 0) else {
        let message = format!(
            "--mem {} leaves nothing for VMs after {} for the hypervisor and {} for the archive",
            Size(mem),
            Size(HYP_ALLOWANCE_BYTES),
            Size(archive),
        );
        return Err(ManifestError { line: 0, message });
    };
    lines.check_fits(m, free).map_err(|e| ManifestError {
        message: format!(
            "{} (--mem {} minus {} for the hypervisor and {} for the archive)",
            e.message,
            Size(mem),
            Size(HYP_ALLOWANCE_BYTES),
            Size(archive)
        ),
        ..e
    })
}

/// Refuses at pack time what the hyp's loader would refuse at boot (the same rules:
/// `manifest::elf`): an image that is not an AArch64 ELF64 executable or whose segments leave
/// the guest's IPA space (on the `image` line, or the `name` line for the default image), and
/// one that with the pages the hyp maps for the VM does not fit its quota (the `memory` line).
fn check_image(
    vm: &manifest::VmSpec,
    lines: &manifest::VmLines,
    what: &str,
    data: &[u8],
) -> Result<(), ManifestError> {
    let image =
        manifest::elf::parse(data, manifest::elf::GUEST_IPA_LIMIT).map_err(|e| ManifestError {
            line: lines.image.unwrap_or(lines.name),
            message: format!("VM \"{}\": {what}: {e}", vm.name),
        })?;
    let (image_pages, hyp_pages) = (image.pages(), vm.hyp_pages());
    let needed = (image_pages + hyp_pages) * PAGE_SIZE;
    if needed > vm.memory_bytes {
        let message = format!(
            "VM \"{}\": {what}: needs {image_pages} pages and the hypervisor maps {hyp_pages} \
             more for the VM ({} in all), more than its memory quota ({})",
            vm.name,
            Size(needed),
            Size(vm.memory_bytes),
        );
        return Err(ManifestError {
            line: lines.memory,
            message,
        });
    }
    Ok(())
}

/// Refuses at pack time the Linux kernel the hyp would refuse at boot (the same rules:
/// `manifest::linux_image`): a file that is not a little-endian arm64 Image with a usable
/// header (on the `image` line), and a kernel, initramfs and device tree that do not fit the
/// VM's memory as the hyp lays them out (the `memory` line). The device tree is counted at the
/// largest booting.rst allows, so the hyp's own, smaller, always fits.
fn check_linux_image(
    vm: &manifest::VmSpec,
    lines: &manifest::VmLines,
    what: &str,
    data: &[u8],
    initrd_len: Option<u64>,
) -> Result<(), ManifestError> {
    let image = linux_image::parse(data).map_err(|e| ManifestError {
        line: lines.image.unwrap_or(lines.name),
        message: format!("VM \"{}\": {what}: {e}", vm.name),
    })?;
    let len = data.len() as u64;
    linux_image::linux_layout(vm.memory_bytes, &image, len, initrd_len, DTB_MAX_BYTES).map_err(
        |e| ManifestError {
            line: lines.memory,
            message: format!("VM \"{}\": {e}", vm.name),
        },
    )?;
    Ok(())
}

/// The images going into the archive, each file once, under a unique `images/<name>`.
#[derive(Default)]
struct Images {
    /// Archive name and contents, in the order first used.
    members: Vec<(String, Vec<u8>)>,
    /// Canonical path of each file read, to its archive name.
    by_path: HashMap<PathBuf, String>,
}

impl Images {
    /// The contents of the member `name` (one `add` returned).
    fn data(&self, name: &str) -> &[u8] {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, data)| data.as_slice())
    }

    /// Reads `path` (unless already read) and returns its name inside the archive.
    fn add(&mut self, path: &Path) -> Result<String, String> {
        let canonical = fs::canonicalize(path).map_err(|e| e.to_string())?;
        if let Some(name) = self.by_path.get(&canonical) {
            return Ok(name.clone());
        }
        let data = fs::read(&canonical).map_err(|e| e.to_string())?;
        if data.is_empty() {
            return Err("the file is empty".into());
        }
        let base = archive_basename(&canonical);
        let mut name = format!("{ARCHIVE_IMAGES_DIR}{base}");
        for n in 2.. {
            if !self.members.iter().any(|(taken, _)| *taken == name) {
                break;
            }
            name = format!("{ARCHIVE_IMAGES_DIR}{base}-{n}");
        }
        self.by_path.insert(canonical, name.clone());
        self.members.push((name.clone(), data));
        Ok(name)
    }
}

/// The file's name with every character outside `[A-Za-z0-9._-]` replaced by `_`, at most 64
/// bytes, so the archive name is a valid compact-manifest token.
fn archive_basename(path: &Path) -> String {
    let raw = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "image".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames_are_tokens() {
        assert_eq!(
            archive_basename(Path::new("/a/b/pv-guest.elf")),
            "pv-guest.elf"
        );
        assert_eq!(archive_basename(Path::new("/a/my guest ü")), "my_guest__");
        assert_eq!(archive_basename(Path::new("/")), "image");
    }
}
