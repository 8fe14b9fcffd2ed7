//! The guest proper: registers, the two vCPUs, the measures.
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

global_asm!(include_str!("entry.S"));

/// The platform of a Linux VM (hyp/src/vdev/layout.rs and vdev/pl011.rs).
const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080a_0000;
const GICR_STRIDE: usize = 0x2_0000;
/// GICv2: the CPU interface (the board's GICV, not trapped) and the distributor's SGIR.
const GICC: usize = 0x0801_0000;
const GICC_CTLR: usize = 0x0;
const GICC_PMR: usize = 0x4;
const GICC_IAR: usize = 0xc;
const GICC_EOIR: usize = 0x10;
const GICD_ISENABLER0: usize = 0x100;
const GICD_ICENABLER0: usize = 0x180;
const GICD_SGIR: usize = 0xf00;
/// GICD_PIDR2: ArchRev in bits 7:4 says the GIC's version.
const GICD_PIDR2: usize = 0xffe8;
const UART: usize = 0x0900_0000;
const GICD_TYPER: usize = 0x4;

const INTID_VTIMER: u64 = 27;
/// vCPU 0 pings vCPU 1 with this SGI; vCPU 1 answers with [`SGI_PONG`].
const SGI_PING: u64 = 1;
const SGI_PONG: u64 = 2;

const PSCI_CPU_ON: u64 = 0xc400_0003;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// Operations a batch, batches a measure: one counter tick is 16 instructions, so a batch of
/// 1000 resolves a figure to 0.016 instructions.
const OPS: u64 = 1000;
const BATCHES: usize = 9;
/// How far ahead of now the timer is set, in ticks: well past the two writes that arm it.
const TIMER_LEAD_TICKS: u64 = 32;

/// The platform's GIC is a GICv2 (set once by vCPU 0 before vCPU 1 starts).
static GIC_V2: AtomicU64 = AtomicU64::new(0);

fn gic_v2() -> bool {
    GIC_V2.load(SeqCst) != 0
}

/// What the handlers tell the measuring loops (one writer each: plain loads and stores).
static PING_AT: AtomicU64 = AtomicU64::new(0);
static PONGS: AtomicU64 = AtomicU64::new(0);
static TIMER_AT: AtomicU64 = AtomicU64::new(0);
static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);
/// A RAM word the overhead loop reads in place of GICD_TYPER.
static RAM_WORD: AtomicU64 = AtomicU64::new(0);

fn counter() -> u64 {
    let v: u64;
    // SAFETY: reads the virtual counter; the ISB keeps it from being read early.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v) };
    v
}

fn frequency() -> u64 {
    let v: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v) };
    v.max(1)
}

fn cpu_index() -> u64 {
    let v: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v) };
    v & 0xff
}

fn mmio_read(addr: usize) -> u32 {
    // SAFETY: `addr` is a register of the platform, mapped as device memory.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn mmio_write(addr: usize, v: u32) {
    // SAFETY: as in `mmio_read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// SGI `intid` to the vCPU with Aff0 `cpu` (Aff1-3 are 0): GICv3's ICC_SGI1R_EL1, GICv2's
/// GICD_SGIR (its CPU target list).
fn send_sgi(intid: u64, cpu: u64) {
    if gic_v2() {
        mmio_write(GICD + GICD_SGIR, ((1 << (16 + cpu)) | intid) as u32);
        return;
    }
    let v = (intid << 24) | (1 << cpu);
    // SAFETY: writes the SGI register of the GICv3 CPU interface.
    unsafe { asm!("msr s3_0_c12_c11_5, {}", "isb", in(reg) v) };
}

fn hvc(function: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let mut x0 = function;
    // SAFETY: an SMCCC call to the hypervisor; it clobbers at most x0-x17.
    unsafe {
        asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _,
             inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
             out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
             out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _)
    };
    x0
}

fn print(s: &str) {
    for b in s.bytes() {
        mmio_write(UART, u32::from(b));
    }
}

fn print_u64(mut v: u64) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        mmio_write(UART, u32::from(d));
    }
}

/// This vCPU's redistributor and CPU interface: SGIs and PPIs in group 1 and enabled,
/// priorities unmasked, IRQs unmasked.
fn gic_cpu_init(cpu: u64) {
    if gic_v2() {
        // GICD_ISENABLER0 is banked: each vCPU enables its own SGIs and PPIs.
        mmio_write(
            GICD + GICD_ISENABLER0,
            (1 << SGI_PING) | (1 << SGI_PONG) | (1 << INTID_VTIMER),
        );
        mmio_write(GICC + GICC_PMR, 0xff);
        mmio_write(GICC + GICC_CTLR, 1); // enabled, EOImode 0
        // SAFETY: unmasks IRQs: the vector table is installed (entry.S).
        unsafe { asm!("msr daifclr, #2") };
        return;
    }
    let rd = GICR + cpu as usize * GICR_STRIDE;
    mmio_write(rd + 0x14, 0); // GICR_WAKER: awake
    for _ in 0..1000 {
        if mmio_read(rd + 0x14) & 0b100 == 0 {
            break;
        }
    }
    let sgi = rd + 0x1_0000;
    mmio_write(sgi + 0x80, u32::MAX); // GICR_IGROUPR0: group 1
    mmio_write(
        sgi + 0x100, // GICR_ISENABLER0
        (1 << SGI_PING) | (1 << SGI_PONG) | (1 << INTID_VTIMER),
    );
    // SAFETY: ICC_SRE_EL1.SRE, ICC_PMR_EL1 = 0xff, ICC_IGRPEN1_EL1 = 1, then IRQs unmasked:
    // the vector table is installed (entry.S).
    unsafe {
        asm!(
            "mrs {t}, s3_0_c12_c12_5", "orr {t}, {t}, #1", "msr s3_0_c12_c12_5, {t}", "isb",
            "mov {t}, #0xff", "msr s3_0_c4_c6_0, {t}",
            "mov {t}, #1", "msr s3_0_c12_c12_7, {t}", "isb",
            "msr daifclr, #2",
            t = out(reg) _,
        )
    };
}

/// Waits (WFI, so that on one physical CPU the other vCPU runs) until PONGS passes `seen`.
fn wait_pong(seen: u64) {
    loop {
        // SAFETY: masks IRQs so that a pong between the check and the WFI still wakes it.
        unsafe { asm!("msr daifset, #2") };
        if PONGS.load(SeqCst) != seen {
            // SAFETY: unmasks IRQs again.
            unsafe { asm!("msr daifclr, #2", "isb") };
            return;
        }
        // SAFETY: waits for an interrupt, then takes it.
        unsafe { asm!("wfi", "msr daifclr, #2", "isb") };
    }
}

/// Called by entry.S's IRQ vector.
#[unsafe(no_mangle)]
extern "C" fn irq_handler() {
    let v2 = gic_v2();
    let iar: u64 = if v2 {
        u64::from(mmio_read(GICC + GICC_IAR))
    } else {
        let iar;
        // SAFETY: ICC_IAR1_EL1 acknowledges the interrupt.
        unsafe { asm!("mrs {}, s3_0_c12_c12_0", out(reg) iar) };
        iar
    };
    let at = counter();
    let intid = if v2 { iar & 0x3ff } else { iar & 0xff_ffff };
    match intid {
        INTID_VTIMER => {
            // SAFETY: disables the virtual timer: the interrupt goes down.
            unsafe { asm!("msr cntv_ctl_el0, xzr", "isb") };
            TIMER_AT.store(at, SeqCst);
            TIMER_FIRED.store(TIMER_FIRED.load(SeqCst) + 1, SeqCst);
        }
        SGI_PING => {
            PING_AT.store(at, SeqCst);
            send_sgi(SGI_PONG, 0);
        }
        SGI_PONG => PONGS.store(PONGS.load(SeqCst) + 1, SeqCst),
        1020.. => return,
        _ => {}
    }
    if v2 {
        mmio_write(GICC + GICC_EOIR, iar as u32);
    } else {
        // SAFETY: ICC_EOIR1_EL1 ends it (EOImode 0: priority drop and deactivation).
        unsafe { asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) iar) };
    }
}

/// Ticks as nanoseconds of the virtual clock (instructions under `-icount shift=0`), per op.
fn per_op(ticks: u64, freq: u64) -> u64 {
    ((u128::from(ticks) * 1_000_000_000 / u128::from(freq) + u128::from(OPS / 2)) / u128::from(OPS))
        as u64
}

fn report(name: &str, mut batches: [u64; BATCHES]) {
    batches.sort_unstable();
    print("bench: name=");
    print(name);
    print(" unit=instructions iterations=");
    print_u64(OPS);
    print(" min=");
    print_u64(batches[0]);
    print(" median=");
    print_u64(batches[BATCHES / 2]);
    print("\n");
}

fn timed_reads(addr: usize) -> u64 {
    let start = counter();
    for _ in 0..OPS {
        mmio_read(addr);
    }
    counter() - start
}

fn gicd_read(freq: u64) -> [u64; BATCHES] {
    let mut out = [0; BATCHES];
    for b in out.iter_mut() {
        let trapped = timed_reads(GICD + GICD_TYPER);
        let overhead = timed_reads(RAM_WORD.as_ptr() as usize);
        *b = per_op(trapped.saturating_sub(overhead), freq);
    }
    out
}

fn virtual_ipi(freq: u64) -> [u64; BATCHES] {
    let mut out = [0; BATCHES];
    for b in out.iter_mut() {
        let mut ticks = 0;
        for _ in 0..OPS {
            let seen = PONGS.load(SeqCst);
            let sent = counter();
            send_sgi(SGI_PING, 1);
            wait_pong(seen);
            ticks += PING_AT.load(SeqCst).saturating_sub(sent);
        }
        *b = per_op(ticks, freq);
    }
    out
}

fn vtimer(freq: u64) -> [u64; BATCHES] {
    let mut out = [0; BATCHES];
    for b in out.iter_mut() {
        let mut ticks = 0;
        for _ in 0..OPS {
            let seen = TIMER_FIRED.load(SeqCst);
            let expiry = counter() + TIMER_LEAD_TICKS;
            // SAFETY: arms the virtual timer (enabled, unmasked) at `expiry`.
            unsafe {
                asm!("msr cntv_cval_el0, {}", "mov {t}, #1", "msr cntv_ctl_el0, {t}", "isb",
                     in(reg) expiry, t = out(reg) _)
            };
            while TIMER_FIRED.load(SeqCst) == seen {
                core::hint::spin_loop();
            }
            ticks += TIMER_AT.load(SeqCst).saturating_sub(expiry);
        }
        *b = per_op(ticks, freq);
    }
    out
}

unsafe extern "C" {
    fn secondary_entry();
}

/// The bootargs word of the hostile mode (`stuck_vtimer`).
const STUCK_VTIMER: &[u8] = b"stuck-vtimer";

/// Whether the device tree at `dtb` holds `word` (its bootargs are the only text a test's
/// manifest puts there): the tree's bytes searched as they are, no parse.
fn tree_holds(dtb: u64, word: &[u8]) -> bool {
    // SAFETY: the hyp put the tree at `dtb` in this VM's RAM, identity-mapped; its header's
    // big-endian totalsize (at 4) bounds it, capped at the 64 KiB the platform gives it.
    let tree = unsafe {
        let size = u32::from_be(core::ptr::read_volatile((dtb + 4) as *const u32));
        core::slice::from_raw_parts(dtb as *const u8, (size as usize).min(0x1_0000))
    };
    tree.windows(word.len()).any(|w| w == word)
}

/// A hostile Linux VM: its virtual timer fires while its IRQs are masked (the hyp forwards the
/// physical interrupt, left active for the guest's deactivation, pending in a hardware LR),
/// then it disables that interrupt and powers off. The physical timer interrupt of its CPU
/// must not stay active for the vCPUs loaded there after it (tests/manifests/stuck-vtimer.toml).
fn stuck_vtimer(freq: u64) -> ! {
    // SAFETY: masks IRQs, then arms the virtual timer (enabled, unmasked) to fire now.
    unsafe {
        asm!("msr daifset, #2", "mrs {t}, cntvct_el0", "msr cntv_cval_el0, {t}",
             "mov {t}, #1", "msr cntv_ctl_el0, {t}", "isb", t = out(reg) _)
    };
    // Fired (CNTV_CTL.ISTATUS), and a millisecond for the hyp to take the physical interrupt.
    loop {
        let ctl: u64;
        // SAFETY: reads the timer's control.
        unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) ctl) };
        if ctl & 0b100 != 0 {
            break;
        }
    }
    let until = counter() + freq / 1000;
    while counter() < until {
        core::hint::spin_loop();
    }
    let disable = if gic_v2() {
        GICD + GICD_ICENABLER0
    } else {
        GICR + 0x1_0000 + GICD_ICENABLER0
    };
    mmio_write(disable, 1 << INTID_VTIMER);
    print("bench-guest: stuck-vtimer: its timer interrupt pending, disabled; powering off\n");
    hvc(PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        // SAFETY: parks the vCPU should SYSTEM_OFF return.
        unsafe { asm!("wfi") };
    }
}

#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb: u64) -> ! {
    let v2 = (mmio_read(GICD + GICD_PIDR2) >> 4) & 0xf == 2;
    GIC_V2.store(u64::from(v2), SeqCst);
    print(if v2 {
        "bench-guest: on the Linux VM platform, GICv2\n"
    } else {
        "bench-guest: on the Linux VM platform, GICv3\n"
    });
    let freq = frequency();
    // GICD_CTLR: GICv3 ARE and group 1; GICv2 enabled.
    mmio_write(GICD, if v2 { 1 } else { 0x12 });
    gic_cpu_init(0);
    if tree_holds(dtb, STUCK_VTIMER) {
        stuck_vtimer(freq);
    }
    report("gicd_read_trap", gicd_read(freq));
    report("vtimer_to_handler", vtimer(freq));
    let seen = PONGS.load(SeqCst);
    let on = hvc(
        PSCI_CPU_ON,
        1,
        secondary_entry as *const () as usize as u64,
        0,
    );
    if on == 0 {
        wait_pong(seen);
        report("virtual_ipi", virtual_ipi(freq));
    } else {
        print("bench: name=virtual_ipi unavailable=PSCI CPU_ON of vCPU 1 refused\n");
    }
    hvc(PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        // SAFETY: parks the vCPU should SYSTEM_OFF return.
        unsafe { asm!("wfi") };
    }
}

#[unsafe(no_mangle)]
extern "C" fn secondary_main() -> ! {
    gic_cpu_init(cpu_index());
    send_sgi(SGI_PONG, 0);
    loop {
        // SAFETY: waits for the next ping; the handler answers it.
        unsafe { asm!("wfi") };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    print("bench: failed: bench-guest panicked\n");
    hvc(PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}
