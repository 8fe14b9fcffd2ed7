//! `shell`: an interactive console on the paravirtual input path. Input arrives as the console
//! event; the shell waits for it in WFI (descheduled by the hypervisor) and reads the bytes
//! with CONSOLE_READ. Commands show what the VM can do through its hypercalls.

/// What a typed line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Help,
    /// This VM: index, vCPUs, quota.
    Vms,
    /// Memory: quota left, what is mapped where.
    Mem,
    /// Map `pages` fresh pages, touch them, unmap them.
    Map {
        pages: u64,
    },
    /// Raise event `event` on our own vCPU and show it pending.
    Send {
        event: u32,
    },
    /// The block device.
    Blk,
    /// The hot paths' costs, measured from this VM (a quick run of `bench`).
    Bench,
    /// End the VM with this status.
    Exit {
        status: u64,
    },
    Empty,
    Unknown(&'a str),
}

/// The help text.
pub const HELP: &str =
    "commands: help | vms | mem | map PAGES | send EVENT | blk | bench | exit [STATUS]";

/// Parses one typed line.
pub fn parse(line: &str) -> Command<'_> {
    let mut words = line.split_whitespace();
    let Some(word) = words.next() else {
        return Command::Empty;
    };
    let number = |w: Option<&str>| w.and_then(|w| w.parse::<u64>().ok());
    match word {
        "help" | "?" => Command::Help,
        "vms" => Command::Vms,
        "mem" => Command::Mem,
        "map" => {
            number(words.next()).map_or(Command::Unknown(line), |pages| Command::Map { pages })
        }
        "send" => number(words.next())
            .and_then(|e| u32::try_from(e).ok())
            .map_or(Command::Unknown(line), |event| Command::Send { event }),
        "blk" => Command::Blk,
        "bench" => Command::Bench,
        "exit" => Command::Exit {
            status: number(words.next()).unwrap_or(0),
        },
        _ => Command::Unknown(line),
    }
}

/// Line editing: printable bytes are kept (and echoed), backspace removes one, CR or LF ends
/// the line.
pub struct LineEditor {
    buf: [u8; 128],
    len: usize,
}

/// What one typed byte did.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    /// Echo this byte.
    Echo(u8),
    /// Erase the last character on the terminal.
    Erase,
    /// The line is complete.
    Line,
    Nothing,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl LineEditor {
    pub fn feed(&mut self, byte: u8) -> Edit {
        match byte {
            b'\r' | b'\n' => Edit::Line,
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                Edit::Erase
            }
            b' '..=b'~' if self.len < self.buf.len() => {
                self.buf[self.len] = byte;
                self.len += 1;
                Edit::Echo(byte)
            }
            _ => Edit::Nothing,
        }
    }

    /// The finished line; the editor starts a new one.
    pub fn take(&mut self) -> &str {
        let n = core::mem::take(&mut self.len);
        core::str::from_utf8(&self.buf[..n]).unwrap_or("")
    }
}

#[cfg(target_os = "none")]
pub use target::run;

#[cfg(target_os = "none")]
mod target {
    use super::{Command, Edit, HELP, LineEditor, parse};
    use crate::console::{self, CONSOLE};
    use crate::{hv, print, println};
    use hypercall_abi::{BootInfo, MemPerms};

    /// Where `map` puts its pages: an IPA window nothing else uses.
    const MAP_IPA: u64 = 0x38_0000_0000;

    /// Waits in WFI until console input is there (the console event says it arrived).
    fn wait_for_input(info: &BootInfo) {
        crate::events::wait(info.console_event, console::has_input);
    }

    pub fn run(info: &BootInfo) -> u64 {
        let _ = hv().event_unmask(info.console_event);
        println!("pv shell on VM {}: {HELP}", info.name());
        let mut editor = LineEditor::default();
        loop {
            print!("{}> ", info.name());
            CONSOLE.lock().flush();
            loop {
                let Some(byte) = console::receive() else {
                    wait_for_input(info);
                    continue;
                };
                match editor.feed(byte) {
                    Edit::Echo(b) => print!("{}", b as char),
                    Edit::Erase => print!("\x08 \x08"),
                    Edit::Line => break,
                    Edit::Nothing => {}
                }
                CONSOLE.lock().flush();
            }
            println!();
            if let Some(status) = execute(info, parse(editor.take())) {
                return status;
            }
        }
    }

    /// Runs one command; Some(status) to end the VM.
    fn execute(info: &BootInfo, command: Command) -> Option<u64> {
        let mut hv = hv();
        match command {
            Command::Help => println!("{HELP}"),
            Command::Vms => match hv.vm_info() {
                Ok(i) => println!(
                    "VM {} \"{}\": index {}, {} vCPU, {} KiB of {} KiB quota left, cmdline \"{}\"",
                    info.vm_index,
                    info.name(),
                    i.vm_index,
                    i.vcpu_count,
                    i.mem_available_bytes >> 10,
                    info.mem_quota_bytes >> 10,
                    info.cmdline()
                ),
                Err(e) => println!("vm.info: {e}"),
            },
            Command::Mem => {
                for (what, ipa) in [("image", info.image_start), ("boot info", info.image_end)] {
                    match hv.mem_query(ipa) {
                        Ok((perms, left)) => {
                            println!(
                                "{what} at {ipa:#x}: {perms:?}; quota left {} KiB",
                                left >> 10
                            )
                        }
                        Err(e) => println!("{what} at {ipa:#x}: {e}"),
                    }
                }
            }
            Command::Map { pages } => match hv.mem_map(MAP_IPA, pages, MemPerms::RW) {
                Ok(()) => {
                    // SAFETY: the pages were just mapped read-write at this IPA (VA = IPA).
                    let first = unsafe { core::ptr::read_volatile(MAP_IPA as *const u64) };
                    let unmapped = hv.mem_unmap(MAP_IPA, pages);
                    println!(
                        "mapped {pages} zeroed pages at {MAP_IPA:#x} (first word {first:#x}), unmapped: {unmapped:?}"
                    );
                }
                Err(e) => println!("mem.map of {pages} pages: {e}"),
            },
            Command::Send { event } => {
                let sent = hv.event_send(0, event);
                println!("event.send {event}: {sent:?}");
                let _ = hv.event_ack(event);
            }
            Command::Bench => {
                // Wall-clock nanoseconds: deterministic instruction counts need QEMU's -icount
                // (scripts/bench.sh).
                let status = super::super::bench::run("shell quick wall");
                println!(
                    "bench finished with status {status} (scripts/bench.sh counts instructions)"
                );
            }
            Command::Blk => match hv.block_info() {
                Ok(b) => println!(
                    "block device: {} sectors of {} bytes, flags {:#x}",
                    b.sectors, b.sector_size, b.flags
                ),
                Err(e) => println!("no block device: {e}"),
            },
            Command::Exit { status } => return Some(status),
            Command::Empty => {}
            Command::Unknown(line) => println!("unknown command \"{line}\"; {HELP}"),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_refuses_bad_arguments() {
        assert_eq!(parse(" map 16 "), Command::Map { pages: 16 });
        assert_eq!(parse("map x"), Command::Unknown("map x"));
        assert_eq!(parse("send 300"), Command::Send { event: 300 });
        assert_eq!(
            parse("send 99999999999"),
            Command::Unknown("send 99999999999")
        );
        assert_eq!(parse("exit"), Command::Exit { status: 0 });
        assert_eq!(parse("exit 4"), Command::Exit { status: 4 });
        assert_eq!(parse(""), Command::Empty);
        assert_eq!(parse("?"), Command::Help);
    }

    #[test]
    fn edits_a_line() {
        let mut e = LineEditor::default();
        for b in b"vmx" {
            e.feed(*b);
        }
        assert_eq!(e.feed(0x7f), Edit::Erase);
        assert_eq!(e.feed(b's'), Edit::Echo(b's'));
        assert_eq!(e.feed(0x1b), Edit::Nothing);
        assert_eq!(e.feed(b'\r'), Edit::Line);
        assert_eq!(e.take(), "vms");
        assert_eq!(e.take(), "");
    }
}
