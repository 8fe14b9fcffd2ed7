//! Touching memory that is not ours, or ours in a way stage 2 forbids.

use super::Report;
use crate::arch::{self, access, mmu};
use crate::fault::probe_fault;
use crate::hv;
use crate::mm::layout::{FRAMES_BASE, HEAP_BASE, SCRATCH_BASE};
use crate::mm::stage1::{self, Access};
use hypercall_abi::mem::PAGE_SIZE;
use hypercall_abi::{BootInfo, Error, MemPerms};

/// What the DTB of QEMU `virt` shows: RAM from 0x4000_0000, the hypervisor's Image loaded
/// 2 MiB in, its stacks and heap above, the top of 1 GiB of RAM. As IPAs, none is ours.
const HYP_ADDRESSES: [(&str, u64); 4] = [
    ("the hypervisor's image", 0x4020_0000),
    ("the hypervisor's data", 0x4030_0000),
    ("hypervisor RAM", 0x4800_0000),
    ("the hypervisor's stacks (top of RAM)", 0x7FFF_F000),
];

/// MMIO on `virt`.
const DEVICES: [(&str, u64); 8] = [
    ("the flash", 0x0000_0000),
    ("the GIC distributor", 0x0800_0000),
    ("the GIC CPU interface / ITS", 0x0801_0000),
    ("the GIC redistributors", 0x080A_0000),
    ("the UART", 0x0900_0000),
    ("the RTC", 0x0901_0000),
    ("virtio-mmio", 0x0A00_0000),
    ("the PCIe ECAM", 0x40_1000_0000),
];

/// A `ret` instruction.
const RET: u32 = 0xd65f_03c0;

/// A page of the image's .bss (stage 2: read-write, not executable).
#[repr(C, align(4096))]
struct Page([u32; 1024]);
static mut DATA_PAGE: Page = Page([0; 1024]);

/// A value in the image's .rodata.
static RODATA_WORD: u64 = 0x0123_4567_89AB_CDEF;

fn read(ipa: u64) -> Option<crate::fault::Fault> {
    // SAFETY: a read that stage 2 refuses (caught by the probe); no Rust object there.
    probe_fault(|| unsafe {
        access::read_u64(ipa);
    })
}

fn write(ipa: u64, value: u64) -> Option<crate::fault::Fault> {
    // SAFETY: a write that stage 2 refuses (caught by the probe); if it were not, it writes a
    // page that is not ours, or (`write_same`) the value already there.
    probe_fault(|| unsafe { access::write_u64(ipa, value) })
}

/// Writes back the value already at `ipa`: harmless if it got through.
fn write_same(ipa: u64) -> Option<crate::fault::Fault> {
    // SAFETY: reading a page of our own image or boot info, mapped readable.
    let v = unsafe { access::read_u64(ipa) };
    write(ipa, v)
}

fn is_ours(info: &BootInfo, ipa: u64) -> bool {
    (info.image_start..info.image_end).contains(&ipa) || hv().mem_query(ipa).is_ok()
}

pub fn run(r: &mut Report, info: &BootInfo) {
    let boot_info = core::ptr::from_ref(info) as u64;
    for (what, ipa) in HYP_ADDRESSES {
        if is_ours(info, ipa) {
            continue;
        }
        r.expect_fault(format_args!("reading {what} at {ipa:#x}"), read(ipa));
        r.expect_fault(format_args!("writing {what} at {ipa:#x}"), write(ipa, 0));
        r.expect_err(
            format_args!("passing {what} as a console buffer"),
            hv().console_write(ipa, 64),
            Error::BadAddress,
        );
    }
    let others = [
        ("another VM's heap", HEAP_BASE + 0x1000_0000),
        ("another VM's frames", FRAMES_BASE + 0x1000_0000),
        ("another VM's image", info.image_end + 0x10_0000),
    ];
    for (what, ipa) in others {
        if is_ours(info, ipa) {
            continue;
        }
        r.expect_fault(format_args!("reading {what} at {ipa:#x}"), read(ipa));
        r.expect_fault(format_args!("writing {what} at {ipa:#x}"), write(ipa, 0));
    }
    for (what, ipa) in DEVICES {
        if info.flags & 1 != 0 && ipa == info.pl011_ipa {
            continue; // our own emulated UART
        }
        r.expect_fault(format_args!("reading {what} at {ipa:#x}"), read(ipa));
        r.expect_fault(format_args!("writing {what} at {ipa:#x}"), write(ipa, 0));
    }
    own_read_only(r, boot_info);
    input_into_read_only(r, info, boot_info);
    execute(r);
    after_unmap(r);
}

/// Writes our own read-only pages, with stage 1 lifted (so only stage 2 stands in the way).
fn own_read_only(r: &mut Report, boot_info: u64) {
    let rodata = &raw const RODATA_WORD as u64;
    let text = run as *const () as u64 & !(PAGE_SIZE - 1);
    let (ro, rx) = (
        Access {
            write: false,
            exec: false,
        },
        Access {
            write: false,
            exec: true,
        },
    );
    let (rw, rwx) = (
        Access {
            write: true,
            exec: false,
        },
        Access {
            write: true,
            exec: true,
        },
    );
    // The code page may be the one running this: it stays executable while writable.
    for (what, ipa, lift, restore) in [
        ("our own rodata", rodata, rw, ro),
        ("our own code", text, rwx, rx),
        ("the boot-info page", boot_info, rw, ro),
    ] {
        let lifted = stage1::set_access(ipa & !(PAGE_SIZE - 1), lift);
        let how = if lifted {
            ", stage 1 made writable"
        } else {
            ""
        };
        r.expect_fault(
            format_args!("writing {what} at {ipa:#x}{how}"),
            write_same(ipa),
        );
        if lifted {
            stage1::set_access(ipa & !(PAGE_SIZE - 1), restore);
        }
    }
}

/// Asks the hypervisor to write console input where we may not write: our rodata, the
/// boot-info page, the event page. Blocked if refused with `BAD_ADDRESS` (waiting input or
/// not) and the bytes are unchanged (but in the event page, which the hypervisor itself
/// updates as events are raised).
fn input_into_read_only(r: &mut Report, info: &BootInfo, boot_info: u64) {
    const LEN: usize = 64;
    let rodata = &raw const RODATA_WORD as u64 & !(LEN as u64 - 1);
    // The event page is ours to write once we acknowledge in it (ABI 1.5).
    let event_page = if crate::events::acks_shared() {
        0
    } else {
        info.event_page_ipa
    };
    let targets = [
        ("our own rodata", rodata, true),
        ("the boot-info page", boot_info, true),
        ("the event page", event_page, false),
    ];
    for (what, ipa, stable) in targets {
        if ipa == 0 {
            continue;
        }
        let snapshot = |at: u64| {
            let mut bytes = [0u8; LEN];
            for (i, b) in bytes.iter_mut().enumerate() {
                // SAFETY: a page of ours, mapped readable; LEN-aligned, so inside the page.
                *b = unsafe { core::ptr::read_volatile((at + i as u64) as *const u8) };
            }
            bytes
        };
        let before = snapshot(ipa);
        let got = hv().console_read(ipa, LEN as u64);
        let what = format_args!("console input written into {what} at {ipa:#x}");
        match got {
            _ if stable && snapshot(ipa) != before => r.through(what, "its bytes changed"),
            Err(Error::BadAddress) => r.blocked(what, "BAD_ADDRESS, unchanged"),
            Err(e) => r.through(what, format_args!("{}, documented: BAD_ADDRESS", e.name())),
            Ok(n) => r.through(what, format_args!("succeeded: {n} bytes")),
        }
    }
}

/// Runs a `ret` written to a page stage 2 maps without EXEC.
fn try_execute(r: &mut Report, what: &str, va: u64) {
    let lifted = stage1::set_access(
        va,
        Access {
            write: true,
            exec: true,
        },
    );
    // SAFETY: `va` is a page of ours, mapped RW, that nothing else uses.
    unsafe { core::ptr::write_volatile(va as *mut u32, RET) };
    if mmu::is_enabled() {
        mmu::sync_icache(va);
    }
    // SAFETY: the page holds a lone `ret`, which returns at once if it runs at all.
    let f = probe_fault(|| unsafe { arch::call(va) });
    let how = if lifted {
        ", stage 1 made executable"
    } else {
        ""
    };
    match f {
        Some(f) if f.is_instruction_abort() => r.blocked(
            format_args!("executing {what} at {va:#x}{how}"),
            super::Described(f),
        ),
        other => r.through(
            format_args!("executing {what} at {va:#x}{how}"),
            format_args!("{:?}", other),
        ),
    }
    stage1::set_access(
        va,
        Access {
            write: true,
            exec: false,
        },
    );
}

fn execute(r: &mut Report) {
    let mut hv = hv();
    let page = SCRATCH_BASE;
    match hv.mem_map(page, 1, MemPerms::RW) {
        Ok(()) => {
            try_execute(r, "a page mapped RW (no EXEC)", page);
            let _ = hv.mem_unmap(page, 1);
        }
        Err(e) => r.through(
            "executing a page mapped RW",
            format_args!("mem.map failed: {e}"),
        ),
    }
    try_execute(r, "our own .bss", &raw mut DATA_PAGE as u64);
    // SAFETY: calling an unmapped IPA: the fetch faults (caught by the probe).
    let f = probe_fault(|| unsafe { arch::call(page) });
    r.expect_fault(format_args!("executing an unmapped IPA {page:#x}"), f);
}

fn after_unmap(r: &mut Report) {
    let mut hv = hv();
    let page = SCRATCH_BASE + PAGE_SIZE;
    if let Err(e) = hv.mem_map(page, 1, MemPerms::RW) {
        r.through(
            "touching a page after unmapping it",
            format_args!("mem.map failed: {e}"),
        );
        return;
    }
    let _ = write(page, 0x5EC2E7);
    let _ = hv.mem_unmap(page, 1);
    r.expect_fault("reading a page after unmapping it", read(page));
    r.expect_fault("writing a page after unmapping it", write(page, 1));
    if hv.mem_map(page, 1, MemPerms::RW).is_ok() {
        // SAFETY: the page was just mapped RW for us.
        let v = unsafe { core::ptr::read_volatile(page as *const u64) };
        if v == 0 {
            r.blocked(
                "reading an unmapped frame's old contents",
                "remapped page reads zero",
            );
        } else {
            r.through(
                "reading an unmapped frame's old contents",
                format_args!("read {v:#x}"),
            );
        }
        let _ = hv.mem_unmap(page, 1);
    }
}
