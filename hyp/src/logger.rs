//! `log` backend: every line says it comes from the hyp, its level and its module.

use log::{LevelFilter, Log, Metadata, Record};

struct HypLogger;

impl Log for HypLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let module = record.module_path().unwrap_or("?");
        let module = module.strip_prefix("hyp::").unwrap_or(module);
        crate::dev::console::write_fmt(format_args!(
            "hyp: {:<5} [{}] {}\n",
            record.level(),
            module,
            record.args()
        ));
    }

    fn flush(&self) {}
}

static LOGGER: HypLogger = HypLogger;

/// Routes `log` macros to the console.
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if cfg!(debug_assertions) {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}
