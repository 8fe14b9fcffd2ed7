//! `log` backend: every line says it comes from the hyp, its level and its module.
//!
//! The hyp's own `info!`, `warn!`, `error!`, `debug!` and `trace!` are these macros, not the
//! `log` crate's: a `log::Record` carries the call site's file and line, which no line prints,
//! and each of the ~300 call sites kept them in .rodata and set them up in .text. Dependency
//! crates still log through the `log` facade, to the same writer.

// The build machine compiles only the modules its tests need, which use few of them.
#![cfg_attr(not(target_os = "none"), allow(unused_macros))]

#[cfg(target_os = "none")]
use log::{LevelFilter, Log, Metadata, Record};

/// `info!(...)` etc.: the `log` crate's level filters (static and run-time) and line, without the
/// call site's file and line.
macro_rules! log_at {
    ($level:ident, $($arg:tt)+) => {
        if log::Level::$level <= log::STATIC_MAX_LEVEL {
            $crate::logger::write(log::Level::$level, module_path!(), format_args!($($arg)+));
        }
    };
}

macro_rules! info {
    ($($arg:tt)+) => { log_at!(Info, $($arg)+) };
}

macro_rules! warn {
    ($($arg:tt)+) => { log_at!(Warn, $($arg)+) };
}

macro_rules! error {
    ($($arg:tt)+) => { log_at!(Error, $($arg)+) };
}

macro_rules! debug {
    ($($arg:tt)+) => { log_at!(Debug, $($arg)+) };
}

/// Writes one line if `level` passes the run-time filter (nothing before `init`). Out of line:
/// the filter's check is here once, not at every call site.
#[inline(never)]
pub fn write(level: log::Level, module: &str, args: core::fmt::Arguments) {
    if level > log::max_level() {
        return;
    }
    #[cfg(target_os = "none")]
    {
        let module = module.strip_prefix("hyp::").unwrap_or(module);
        crate::dev::console::write_fmt(format_args!("hyp: {level:<5} [{module}] {args}\n"));
    }
    #[cfg(not(target_os = "none"))]
    let _ = (module, args);
}

/// A signed number printed as its sign and a u64: the hyp's few signed figures (a leak count,
/// a firmware's error code) without i64's (or i32's) Display in the Image.
pub struct Signed(pub i64);

impl core::fmt::Display for Signed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 < 0 {
            f.write_str("-")?;
        }
        write!(f, "{}", self.0.unsigned_abs())
    }
}

#[cfg(target_os = "none")]
struct HypLogger;

#[cfg(target_os = "none")]
impl Log for HypLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        write(
            record.level(),
            record.module_path().unwrap_or("?"),
            *record.args(),
        );
    }

    fn flush(&self) {}
}

#[cfg(target_os = "none")]
static LOGGER: HypLogger = HypLogger;

/// Routes `log` macros to the console.
#[cfg(target_os = "none")]
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if cfg!(debug_assertions) {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}

#[cfg(test)]
mod tests {
    use super::Signed;
    use alloc::string::ToString;

    #[test]
    fn a_signed_figure_prints_as_its_sign_and_magnitude() {
        assert_eq!(Signed(0).to_string(), "0");
        assert_eq!(Signed(42).to_string(), "42");
        assert_eq!(Signed(-7).to_string(), "-7");
        assert_eq!(Signed(i64::MIN).to_string(), "-9223372036854775808");
    }
}
