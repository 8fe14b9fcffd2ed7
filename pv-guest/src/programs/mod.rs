//! The programs a VM's command line can name. Each returns the VM's exit status.
//!
//! A command line is `[nommu] PROGRAM [ARGS]`: `nommu` leaves the stage-1 MMU off (for
//! debugging a hypervisor without the MMU-enable trap); by default it is on for every program.

pub mod args;
#[cfg(target_os = "none")]
mod attack;
mod bench;
#[cfg(target_os = "none")]
mod blk;
#[cfg(target_os = "none")]
mod channel;
#[cfg(target_os = "none")]
mod checks;
#[cfg(target_os = "none")]
mod crash;
#[cfg(target_os = "none")]
mod dma;
#[cfg(target_os = "none")]
mod exhaust;
#[cfg(target_os = "none")]
mod fill;
#[cfg(target_os = "none")]
mod fpsimd;
pub mod fuzz;
#[cfg(target_os = "none")]
mod hog;
#[cfg(target_os = "none")]
mod icv;
#[cfg(target_os = "none")]
mod memtest;
pub mod pattern;
#[cfg(target_os = "none")]
mod power;
#[cfg(target_os = "none")]
mod selftest;
pub mod shell;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
mod smp_kick;
#[cfg(target_os = "none")]
mod smp_stress;
#[cfg(target_os = "none")]
mod timer;
#[cfg(target_os = "none")]
mod victim;

/// A parsed command line: the boot flags, the program and its arguments.
pub struct Command<'a> {
    pub program: &'a str,
    pub args: &'a str,
    /// Turn the stage-1 MMU on (no `nommu`).
    pub mmu: bool,
}

/// Splits a command line into the boot flags, the program name and the rest.
pub fn parse(cmdline: &str) -> Command<'_> {
    let mut rest = cmdline.trim();
    let mut mmu = true;
    while let Some(after) = rest.strip_prefix("nommu") {
        if !after.is_empty() && !after.starts_with(char::is_whitespace) {
            break; // a program whose name starts with "nommu"
        }
        mmu = false;
        rest = after.trim_start();
    }
    let (program, args) = match rest.split_once(char::is_whitespace) {
        Some((program, args)) => (program, args.trim()),
        None => (rest, ""),
    };
    Command { program, args, mmu }
}

/// The status `exit N` asks for; a malformed N is itself a failure (status 2).
pub fn exit_status(args: &str) -> u64 {
    args.parse().unwrap_or(2)
}

/// The rest of each of `lines`' lines (64 bytes with its newline).
pub const LINES_FILLER: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH";

/// Status for an unknown program name.
pub const STATUS_UNKNOWN_PROGRAM: u64 = 127;

/// An IPA no VM is given unless it maps it (far above the image, below 2^39): touching it is
/// a stage-2 fault.
pub const UNMAPPED_IPA: u64 = 0x7E_0000_0000;

#[cfg(target_os = "none")]
pub fn run(info: &hypercall_abi::BootInfo, cmd: &Command) -> u64 {
    use crate::println;
    match cmd.program {
        "selftest" => selftest::run(info, cmd),
        "smp" => smp::run(info, cmd.args),
        "bench" => bench::run(cmd.args),
        "fpsimd" => fpsimd::run(info, cmd.args),
        "memtest" => memtest::run(info),
        "exhaust" => exhaust::run(cmd.args),
        "fill" => fill::run(cmd.args),
        "attack" => attack::run(info, cmd.args),
        "fuzz" => fuzz::run(info, cmd.args),
        "victim" => victim::run(info, cmd.args),
        "hog" => hog::run(cmd.args),
        "shell" => shell::run(info),
        "timer" => timer::run(info, cmd.args),
        "icv" => icv::run(info, cmd.args),
        "blk" => blk::run(cmd.args),
        "dma" => dma::run(info, cmd.args),
        "ping" => channel::ping(cmd.args),
        "pong" => channel::pong(cmd.args),
        "snoop" => channel::snoop(info),
        "reset" => power::reset(),
        "cpuoff" => power::cpu_off(),
        "off" => power::system_off(),
        "hello" => {
            println!(
                "hello from VM {} ({} KiB quota)",
                info.name(),
                info.mem_quota_bytes >> 10
            );
            0
        }
        // `lines count=N`: N numbered 64-byte lines as fast as it can (the console queue's
        // test: every line must come out once, whole, in order).
        "lines" => {
            let count = args::number(cmd.args, "count").unwrap_or(100);
            for i in 0..count {
                println!("lines: {i:05}/{count:05} {LINES_FILLER}");
            }
            println!("lines: all {count} written");
            0
        }
        "exit" => {
            let status = exit_status(cmd.args);
            println!("exiting with status {status} as asked");
            status
        }
        // Touches an IPA it never mapped: with on_fault = "kill" the hypervisor ends the VM;
        // with "inject" our exception handler reports the unexpected abort and exits 99.
        // `crash hostile-fp` and `crash shared-fp` fault with a forged frame pointer (into its
        // stack, into a shared page): the hyp's backtrace stops.
        "crash" => {
            println!("crash: touching IPA {UNMAPPED_IPA:#x}, which this VM never mapped");
            let v = match cmd.args.trim() {
                "hostile-fp" => crash::read_with_hostile_frame_pointer(UNMAPPED_IPA),
                "shared-fp" => crash::read_with_frame_pointer_in_shared_page(UNMAPPED_IPA),
                _ => crash::read_three_calls_deep(UNMAPPED_IPA),
            };
            println!("crash: read {v:#x}: the access did not fault (the IPA is mapped?)");
            1
        }
        // Never ends and never yields: what the scheduler and the run timeout must survive.
        // `spin yield` yields in its loop instead, forever: two such VMs on one CPU only ever
        // switch to each other, and the hyp must still look at typed input.
        "spin" if cmd.args.trim() == "yield" => {
            println!("spinning forever, yielding");
            let mut hv = crate::hv();
            loop {
                let _ = hv.vm_yield();
            }
        }
        "spin" => {
            println!("spinning forever");
            loop {
                core::hint::spin_loop();
            }
        }
        other => {
            println!(
                "unknown program \"{other}\" (try shell, selftest, memtest, attack, victim, fuzz, \
                 hog, fpsimd, timer, icv, hello, lines, exit N, crash, spin)"
            );
            STATUS_UNKNOWN_PROGRAM
        }
    }
}

/// A secondary vCPU's part of the program the command line names (it powers off after).
#[cfg(target_os = "none")]
pub fn secondary(index: usize) {
    let info = crate::boot_info();
    let cmd = parse(info.cmdline());
    match cmd.program {
        "selftest" => selftest::secondary(info, &cmd, index),
        "smp" if cmd.args.split_whitespace().next() == Some("stress") => {
            smp_stress::secondary(index)
        }
        "smp" => smp::secondary(index),
        "reset" | "off" => power::spin_forever(),
        "fuzz" => fuzz::secondary(index),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_program_and_arguments() {
        let c = parse("  fpsimd  rounds=100 ");
        assert_eq!((c.program, c.args, c.mmu), ("fpsimd", "rounds=100", true));
        let c = parse("selftest");
        assert_eq!((c.program, c.args), ("selftest", ""));
    }

    #[test]
    fn nommu_is_a_leading_flag() {
        let c = parse("nommu memtest x=1");
        assert_eq!((c.program, c.args, c.mmu), ("memtest", "x=1", false));
        let c = parse("nommu");
        assert_eq!((c.program, c.mmu), ("", false));
        let c = parse("nommux");
        assert_eq!((c.program, c.mmu), ("nommux", true));
        let c = parse("hello nommu");
        assert_eq!((c.program, c.args, c.mmu), ("hello", "nommu", true));
    }

    #[test]
    fn exit_status_is_strict() {
        assert_eq!(exit_status("3"), 3);
        assert_eq!(exit_status("x"), 2);
        assert_eq!(exit_status(""), 2);
    }
}
