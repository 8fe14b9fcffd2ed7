//! `attack [count=N]`: tries everything a guest should not be able to do and reports each try
//! as `attack: blocked: <what> (<how>)`, or `attack: GOT THROUGH: ...`. Exits 0 only if every
//! attack was blocked: `attack: all N attacks blocked`.
//!
//! Needs `on_fault = "inject"`: most attacks end in a stage-2 fault it catches with
//! `fault::probe_fault`. Stage 1 maps the whole IPA space to itself (see `mm::stage1`), so
//! every access reaches stage 2; where stage 1 would refuse first (read-only or non-executable
//! pages of our own), the attack lifts stage 1's protection so only the hypervisor's is left.

mod calls;
mod console;
mod garbage;
mod memory;
mod registers;

use crate::fault::{Fault, ec};
use crate::{hv, println};
use core::fmt::{self, Display};
use hypercall_abi::{BootInfo, Error};

/// Tallies attacks.
pub struct Report {
    blocked: u32,
    through: u32,
}

impl Report {
    pub fn blocked(&mut self, what: impl Display, how: impl Display) {
        self.blocked += 1;
        println!("attack: blocked: {what} ({how})");
    }

    pub fn through(&mut self, what: impl Display, how: impl Display) {
        self.through += 1;
        println!("attack: GOT THROUGH: {what} ({how})");
    }

    /// Blocked if the call returned exactly the documented error.
    pub fn expect_err<T: fmt::Debug>(
        &mut self,
        what: impl Display,
        got: Result<T, Error>,
        want: Error,
    ) {
        match got {
            Err(e) if e == want => self.blocked(what, e.name()),
            Err(e) => self.through(
                what,
                format_args!("{}, documented: {}", e.name(), want.name()),
            ),
            Ok(v) => self.through(what, format_args!("succeeded: {v:?}")),
        }
    }

    /// Blocked if the access faulted.
    pub fn expect_fault(&mut self, what: impl Display, fault: Option<Fault>) {
        match fault {
            Some(f) => self.blocked(what, Described(f)),
            None => self.through(what, "no fault"),
        }
    }
}

/// A fault in words.
pub struct Described(pub Fault);

impl Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fault = self.0;
        let esr = fault.esr & !(1 << 63);
        match fault.class() {
            ec::DATA_ABORT | ec::DATA_ABORT_LOWER => write!(
                f,
                "{} data abort at {:#x}, DFSC {:#04x}",
                if fault.is_write() { "write" } else { "read" },
                fault.far,
                fault.status_code()
            ),
            ec::INSTRUCTION_ABORT | ec::INSTRUCTION_ABORT_LOWER => write!(
                f,
                "instruction abort at {:#x}, IFSC {:#04x}",
                fault.far,
                fault.status_code()
            ),
            ec::UNKNOWN => write!(f, "UNDEFINED, ESR {esr:#x}"),
            class => write!(f, "exception class {class:#x}, ESR {esr:#x}"),
        }
    }
}

pub fn run(info: &BootInfo, args: &str) -> u64 {
    let mut r = Report {
        blocked: 0,
        through: 0,
    };
    let quota_before = hv().vm_info().map_or(0, |i| i.mem_available_bytes);
    memory::run(&mut r, info);
    calls::run(&mut r, info);
    garbage::run(
        &mut r,
        info,
        super::args::number(args, "count").unwrap_or(4000),
    );
    registers::run(&mut r);
    console::run(&mut r, info);
    let quota_after = hv().vm_info().map_or(0, |i| i.mem_available_bytes);
    if quota_after == quota_before {
        r.blocked("leaking quota through refused calls", "quota unchanged");
    } else {
        r.through(
            "leaking quota through refused calls",
            format_args!("{quota_before} bytes before, {quota_after} after"),
        );
    }
    if r.through == 0 {
        println!("attack: all {} attacks blocked", r.blocked);
        0
    } else {
        println!(
            "attack: {} of {} attacks GOT THROUGH",
            r.through,
            r.blocked + r.through
        );
        1
    }
}
