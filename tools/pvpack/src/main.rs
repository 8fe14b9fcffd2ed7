//! `pvpack`: packs a TOML VM manifest and its guest images (PV ELF images; Linux kernels and
//! initramfs) into the cpio (newc) initrd the hypervisor reads. See `docs/MANIFEST.md`.
//!
//! ```text
//! pvpack --manifest FILE --default-image PATH --out FILE.cpio [--mem SIZE]
//! ```

use std::process::ExitCode;

mod args;
mod pack;

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(args::Parsed::Run(args)) => args,
        Ok(args::Parsed::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("pvpack: error: {message}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match pack::run(&args) {
        Ok(summary) => {
            eprintln!("pvpack: {summary}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("pvpack: error: {failure}");
            ExitCode::FAILURE
        }
    }
}
