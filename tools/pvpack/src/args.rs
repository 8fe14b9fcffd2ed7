//! The command line, parsed by hand: a handful of options, no subcommands.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: pvpack --manifest FILE --default-image PATH --out FILE.cpio [--mem SIZE] [--no-image-check]

  --manifest FILE       the TOML manifest (docs/MANIFEST.md)
  --default-image PATH  the guest image of every VM without an `image` key (the built pv-guest)
  --out FILE.cpio       the archive to write (cpio newc), for the hypervisor's initrd
  --mem SIZE            the machine's RAM (bytes, or with a unit: 512M, 1G); refuses VMs that
                        do not fit in it minus 16M for the hypervisor and minus the archive
  --no-image-check      pack images the hypervisor will refuse (a PV image not an AArch64
                        ELF64 executable, segments outside the IPA space, larger than the
                        VM's quota; a Linux kernel not an arm64 Image, or that with its
                        initrd does not fit the VM's memory): for tests of the hypervisor's
                        own refusal only
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub manifest: PathBuf,
    pub default_image: Option<PathBuf>,
    pub out: PathBuf,
    pub mem: Option<u64>,
    /// Skip the image checks (tests of the hyp's own refusal).
    pub check_images: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Args),
    Help,
}

/// Parses the arguments after the program name; `--opt VALUE` and `--opt=VALUE` both work.
pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let (mut manifest, mut default_image, mut out, mut mem) = (None, None, None, None);
    let mut check_images = true;
    while let Some(arg) = argv.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        if arg == "--no-image-check" {
            check_images = false;
            continue;
        }
        let (option, inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let slot = match option.as_str() {
            "--manifest" => &mut manifest,
            "--default-image" => &mut default_image,
            "--out" => &mut out,
            "--mem" => &mut mem,
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = match inline.or_else(|| argv.next()) {
            Some(v) if !v.is_empty() => v,
            _ => return Err(format!("{option} needs a value")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("{option} given twice"));
        }
    }
    let mem = match mem {
        None => None,
        Some(text) => Some(manifest::parse_size(&text).ok_or_else(|| {
            format!("--mem {text:?} is not a size (bytes, or digits with K, M, G or T)")
        })?),
    };
    Ok(Parsed::Run(Args {
        manifest: manifest.ok_or("--manifest is required")?.into(),
        default_image: default_image.map(PathBuf::from),
        out: out.ok_or("--out is required")?.into(),
        mem,
        check_images,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<Parsed, String> {
        parse(args.split_whitespace().map(String::from))
    }

    #[test]
    fn both_spellings() {
        let want = Parsed::Run(Args {
            manifest: "m.toml".into(),
            default_image: Some("g.elf".into()),
            out: "o.cpio".into(),
            mem: Some(1 << 30),
            check_images: true,
        });
        assert_eq!(
            parse_str("--manifest m.toml --default-image g.elf --out o.cpio --mem 1G"),
            Ok(want)
        );
        let Ok(Parsed::Run(a)) = parse_str("--out=o --manifest=m --mem=4096") else {
            panic!()
        };
        assert_eq!((a.mem, a.default_image), (Some(4096), None));
        let Ok(Parsed::Run(a)) = parse_str("--no-image-check --out o --manifest m") else {
            panic!()
        };
        assert!(!a.check_images);
    }

    #[test]
    fn refusals() {
        assert!(
            parse_str("--manifest m")
                .unwrap_err()
                .contains("--out is required")
        );
        assert!(
            parse_str("--out o")
                .unwrap_err()
                .contains("--manifest is required")
        );
        assert!(
            parse_str("--out o --out p")
                .unwrap_err()
                .contains("given twice")
        );
        assert!(parse_str("--out").unwrap_err().contains("needs a value"));
        assert!(
            parse_str("--verbose")
                .unwrap_err()
                .contains("unknown argument")
        );
        assert!(
            parse_str("--out o --manifest m --mem 1X")
                .unwrap_err()
                .contains("not a size")
        );
        assert_eq!(parse_str("--out o -h"), Ok(Parsed::Help));
    }
}
