//! The programs a VM's command line can name. Each returns the VM's exit status.

#[cfg(target_os = "none")]
mod fpsimd;
#[cfg(target_os = "none")]
mod selftest;

/// A parsed command line: the program and its arguments.
pub struct Command<'a> {
    pub program: &'a str,
    pub args: &'a str,
}

/// Splits a command line into the program name and the rest.
pub fn parse(cmdline: &str) -> Command<'_> {
    let cmdline = cmdline.trim();
    match cmdline.split_once(char::is_whitespace) {
        Some((program, args)) => Command {
            program,
            args: args.trim(),
        },
        None => Command {
            program: cmdline,
            args: "",
        },
    }
}

/// The status `exit N` asks for; a malformed N is itself a failure (status 2).
pub fn exit_status(args: &str) -> u64 {
    args.parse().unwrap_or(2)
}

/// Status for an unknown program name.
pub const STATUS_UNKNOWN_PROGRAM: u64 = 127;

#[cfg(target_os = "none")]
pub fn run(info: &hypercall_abi::BootInfo) -> u64 {
    use crate::println;
    let cmd = parse(info.cmdline());
    match cmd.program {
        "selftest" => selftest::run(info),
        "fpsimd" => fpsimd::run(info, cmd.args),
        "hello" => {
            println!(
                "hello from VM {} ({} KiB quota)",
                info.name(),
                info.mem_quota_bytes >> 10
            );
            0
        }
        "exit" => {
            let status = exit_status(cmd.args);
            println!("exiting with status {status} as asked");
            status
        }
        // Never ends and never yields: what the scheduler and the run timeout must survive.
        "spin" => {
            println!("spinning forever");
            loop {
                core::hint::spin_loop();
            }
        }
        other => {
            println!("unknown program \"{other}\" (try selftest, fpsimd, hello, exit N, spin)");
            STATUS_UNKNOWN_PROGRAM
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_program_and_arguments() {
        let c = parse("  fpsimd  rounds=100 ");
        assert_eq!((c.program, c.args), ("fpsimd", "rounds=100"));
        let c = parse("selftest");
        assert_eq!((c.program, c.args), ("selftest", ""));
    }

    #[test]
    fn exit_status_is_strict() {
        assert_eq!(exit_status("3"), 3);
        assert_eq!(exit_status("x"), 2);
        assert_eq!(exit_status(""), 2);
    }
}
