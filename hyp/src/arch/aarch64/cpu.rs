//! EL2 system-register set-up: what guests may touch, and what traps to the hypervisor.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::arch::asm;

/// CPTR_EL2 (E2H = 0): RES1 bits 13, 12, 9 and 7..0, which also keep SVE (TZ, bit 8) and SME
/// (TSM, bit 12) trapped where the CPU has them. TFP (bit 10) starts clear (context::LazyFp sets
/// it while the loaded vCPU has not used FP/SIMD).
/// TTA (bit 20) traps trace-register access, TAM (bit 30) the activity monitors (RES0 where the
/// CPU has none, so set on every CPU, as KVM does).
const CPTR_EL2_GUESTS: u64 =
    (1 << 30) | (1 << 20) | (1 << 13) | (1 << 12) | (1 << 9) | (1 << 8) | 0xff;

/// Configures this CPU's EL2 for running guests. Called once per CPU before its first guest.
pub fn init_el2(vectors: u64, percpu: u64) {
    VBAR_EL2.set(vectors);
    TPIDR_EL2.set(percpu);

    // Guests run AArch64 EL1 with stage 2 on. Sensitive operations trap: SMC (TSC), WFI (TWI),
    // implementation-defined and auxiliary control registers (TIDCP, TACR), set/way cache
    // maintenance (TSW), reads of the feature ID registers (TID3: the hyp shows a sanitised
    // copy, vm::idregs), the LOR and RAS error-record registers (TLOR, TERR: RES0 on CPUs
    // without them; TERR does not cover DISR_EL1, which AMO sends to VDISR_EL2, switched per
    // vCPU in context.rs). API and APK stay clear: pointer-authentication instructions and keys trap,
    // the keys are not switched per vCPU, and guests are told there is no PAC. Physical
    // interrupts and SErrors come to EL2 (IMO, FMO, AMO). DC (default cacheable) lets a guest
    // run safely with its own MMU still off; TVM traps its translation-register writes so the
    // hyp sees the MMU go on and drops DC then.
    HCR_EL2.write(
        HCR_EL2::RW::EL1IsAarch64
            + HCR_EL2::VM::Enable
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FMO::EnableVirtualFIQ
            + HCR_EL2::IMO::EnableVirtualIRQ
            + HCR_EL2::AMO::SET
            + HCR_EL2::BSU::InnerShareable
            + HCR_EL2::FB::SET
            + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
            + HCR_EL2::TWI::SET
            + HCR_EL2::TIDCP::SET
            + HCR_EL2::TACR::SET
            + HCR_EL2::TSW::SET
            + HCR_EL2::TID3::SET
            + HCR_EL2::TLOR::SET
            + HCR_EL2::TERR::SET
            + HCR_EL2::DC::SET
            + HCR_EL2::TVM::SET,
    );

    // FEAT_HCX: HCRX_EL2 comes out of reset UNKNOWN. Zero leaves the EL1 features it enables
    // (TCR2, SCTLR2, GCS, LS64, MOPS) off or trapped: none of their state is switched, and the
    // ID registers hide all of them.
    const MMFR1_HCX_SHIFT: u64 = 40;
    if (ID_AA64MMFR1_EL1.get() >> MMFR1_HCX_SHIFT) & 0xf != 0 {
        // SAFETY: HCRX_EL2 (s3_4_c1_c2_2) exists on this CPU (ID_AA64MMFR1_EL1.HCX) and only
        // controls what EL1 and EL0 may use.
        unsafe { asm!("msr s3_4_c1_c2_2, xzr", options(nomem, nostack)) };
    }

    // FEAT_FGT: the fine-grained trap registers come out of reset UNKNOWN too. Zero traps none
    // of the registers HCR_EL2 and MDCR_EL2 already govern, and, through their inverted
    // ("n") bits, traps those of the newer features the ID registers hide and whose state is
    // not switched (permission indirection and overlays, GCS, SME's TPIDR2, LS64's ACCDATA,
    // SPE's and BRBE's newer registers): a guest that writes them anyway gets UNDEFINED.
    const MMFR0_FGT_SHIFT: u64 = 56;
    if (ID_AA64MMFR0_EL1.get() >> MMFR0_FGT_SHIFT) & 0xf != 0 {
        // SAFETY: HFGRTR_EL2, HFGWTR_EL2, HFGITR_EL2 (s3_4_c1_c1_{4,5,6}), HDFGRTR_EL2 and
        // HDFGWTR_EL2 (s3_4_c3_c1_{4,5}) exist on this CPU (ID_AA64MMFR0_EL1.FGT) and only
        // control what EL1 and EL0 may use.
        unsafe {
            asm!(
                "msr s3_4_c1_c1_4, xzr",
                "msr s3_4_c1_c1_5, xzr",
                "msr s3_4_c1_c1_6, xzr",
                "msr s3_4_c3_c1_4, xzr",
                "msr s3_4_c3_c1_5, xzr",
                options(nomem, nostack)
            )
        };
    }

    // SAFETY: CPTR_EL2 only controls traps of lower-EL (and EL2) coprocessor accesses; the
    // value keeps FP/SIMD usable and SVE/SME/trace trapped.
    unsafe { asm!("msr cptr_el2, {}", in(reg) CPTR_EL2_GUESTS, options(nomem, nostack)) };

    // No PMU, no statistical profiling (TPMS; its buffer is EL2's with E2PB = 0), no trace
    // filter or buffer (TTRF; E2TB = 0) and no debug registers for guests (TPMS and TTRF are
    // RES0 where the CPU lacks the feature); HPMN keeps the counters the CPU reports.
    let hpmn = MDCR_EL2.read(MDCR_EL2::HPMN);
    MDCR_EL2.write(
        MDCR_EL2::TPM::SET
            + MDCR_EL2::TPMCR::SET
            + MDCR_EL2::TPMS::SET
            + MDCR_EL2::TTRF::SET
            + MDCR_EL2::TDA::SET
            + MDCR_EL2::TDOSA::SET
            + MDCR_EL2::TDRA::SET
            + MDCR_EL2::HPMN.val(hpmn),
    );

    // The physical timer and counter are the hyp's; guests use the virtual ones.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCEN::CLEAR + CNTHCTL_EL2::EL1PCTEN::CLEAR);
    super::timer::init();
    CNTVOFF_EL2.set(0);
    // Guests see the real CPU's MIDR.
    // SAFETY: VPIDR_EL2 only changes what EL1 reads from MIDR_EL1.
    unsafe { asm!("msr vpidr_el2, {}", in(reg) MIDR_EL1.get(), options(nomem, nostack)) };
    barrier::isb(barrier::SY);
}

/// The physical-address size the CPU supports, as the PS/PARange encoding capped at 48 bits.
pub fn pa_range_capped() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(5)
}

/// Reads one register of the feature ID space (op0 3, op1 0, CRn 0, CRm 1..7) by its encoding;
/// 0 for any other encoding. Unallocated encodings of that space read as zero architecturally.
pub fn read_id_register(reg: (u8, u8, u8, u8, u8)) -> u64 {
    macro_rules! id_space {
        ($($crm:literal: $($op2:literal)*;)*) => {
            match reg {
                $($((3, 0, 0, $crm, $op2) => {
                    let value: u64;
                    // SAFETY: reading an ID register has no side effect.
                    unsafe {
                        asm!(
                            concat!("mrs {}, s3_0_c0_c", stringify!($crm), "_", stringify!($op2)),
                            out(reg) value,
                            options(nomem, nostack)
                        )
                    };
                    value
                })*)*
                _ => 0,
            }
        };
    }
    id_space! {
        1: 0 1 2 3 4 5 6 7;
        2: 0 1 2 3 4 5 6 7;
        3: 0 1 2 3 4 5 6 7;
        4: 0 1 2 3 4 5 6 7;
        5: 0 1 2 3 4 5 6 7;
        6: 0 1 2 3 4 5 6 7;
        7: 0 1 2 3 4 5 6 7;
    }
}

/// Waits for an interrupt or event with nothing else to do.
pub fn wait_forever() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Calls the firmware through SMC with SMCCC register use (PSCI on `virt`).
pub fn smc(function: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    let mut x0 = u64::from(function);
    // SAFETY: an SMCCC call to the secure firmware; it clobbers at most x0..x17 (SMCCC 1.2),
    // which we declare, and touches no memory of ours.
    unsafe {
        asm!(
            "smc #0",
            inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
            out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
            out("x15") _, out("x16") _, out("x17") _,
            options(nomem, nostack)
        );
    }
    x0
}

/// The exception that brought the guest to EL2.
pub fn exit_syndrome() -> (u64, u64, u64) {
    (ESR_EL2.get(), FAR_EL2.get(), HPFAR_EL2.get())
}

/// ESR_ELx.EC of an exception with an unknown reason: what an UNDEFINED instruction reports.
const EC_UNKNOWN: u64 = 0x00;
/// ESR_ELx.IL: the trapped instruction was 32 bits long.
const ESR_IL: u64 = 1 << 25;
/// PSTATE.M for EL1 using SP_EL1, and the DAIF mask, as an exception into EL1 sets them.
const SPSR_EL1H_DAIF_MASKED: u64 = 0x3c5;

/// Makes the running guest take a synchronous exception at EL1, as if its instruction at
/// ELR were UNDEFINED: the guest's own handler decides what happens next.
pub fn inject_undefined(regs: &mut super::context::GuestRegs) {
    inject_sync(regs, (EC_UNKNOWN << 26) | ESR_IL, 0);
}

/// Delivers a synchronous exception with syndrome `esr` (and `far`) to the running guest's
/// EL1 vector table. The guest's EL1 registers are live on this CPU, so they are written here.
pub fn inject_sync(regs: &mut super::context::GuestRegs, esr: u64, far: u64) {
    let from_mode = regs.spsr & 0xf;
    // Vector offset: current EL with SP_EL0 (EL1t), current EL with SP_ELx (EL1h), lower EL.
    let offset = match from_mode {
        0b0100 => 0x000,
        0b0101 => 0x200,
        _ => 0x400,
    };
    ESR_EL1.set(esr);
    FAR_EL1.set(far);
    ELR_EL1.set(regs.elr);
    SPSR_EL1.set(regs.spsr);
    // VBAR_EL1[10:0] are RES0, so this never carries; wrapping says it cannot panic.
    regs.elr = VBAR_EL1.get().wrapping_add(offset);
    regs.spsr = SPSR_EL1H_DAIF_MASKED;
}

/// HCR_EL2.DC: stage 1 off behaves as Normal cacheable memory.
pub const HCR_DC: u64 = 1 << 12;
/// HCR_EL2.VI: a virtual IRQ is pending for the guest.
pub const HCR_VI: u64 = 1 << 7;
/// HCR_EL2.TVM: writes to the EL1 translation registers trap.
pub const HCR_TVM: u64 = 1 << 26;

/// The HCR_EL2 in force (a new vCPU starts with the value `init_el2` set).
pub fn hcr() -> u64 {
    HCR_EL2.get()
}

/// Loads a vCPU's HCR_EL2.
pub fn set_hcr(value: u64) {
    HCR_EL2.set(value);
    barrier::isb(barrier::SY);
}

/// Performs a guest's trapped write (HCR_EL2.TVM) to one of the EL1 registers it owns; false
/// if `reg` is not one of them. The vCPU is current, so its registers are live.
pub fn write_vm_register(reg: (u8, u8, u8, u8, u8), value: u64) -> bool {
    match reg {
        (3, 0, 1, 0, 0) => SCTLR_EL1.set(value),
        (3, 0, 2, 0, 0) => TTBR0_EL1.set(value),
        (3, 0, 2, 0, 1) => TTBR1_EL1.set(value),
        (3, 0, 2, 0, 2) => TCR_EL1.set(value),
        (3, 0, 5, 1, 0) => AFSR0_EL1.set(value),
        (3, 0, 5, 1, 1) => AFSR1_EL1.set(value),
        (3, 0, 5, 2, 0) => ESR_EL1.set(value),
        (3, 0, 6, 0, 0) => FAR_EL1.set(value),
        (3, 0, 10, 2, 0) => MAIR_EL1.set(value),
        (3, 0, 10, 3, 0) => AMAIR_EL1.set(value),
        (3, 0, 13, 0, 1) => CONTEXTIDR_EL1.set(value),
        _ => return false,
    }
    true
}

/// The live virtual timer control of the running vCPU.
pub fn cntv_ctl() -> u64 {
    CNTV_CTL_EL0.get()
}

/// Sets the running vCPU's virtual timer control.
pub fn set_cntv_ctl(value: u64) {
    CNTV_CTL_EL0.set(value);
}

/// Zeroes the 4 KiB frame at `pa` (identity-mapped Normal memory) with `DC ZVA`, a cache line
/// a instruction, where the CPU allows it; else with ordinary stores.
pub fn zero_page(pa: u64) {
    const PAGE: u64 = crate::addr::PAGE_SIZE;
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effect.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
    let prohibited = dczid & (1 << 4) != 0;
    let block = 4u64 << (dczid & 0xf);
    if prohibited || block > PAGE {
        // SAFETY: the caller owns the identity-mapped frame.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE as usize) };
        return;
    }
    let mut at = pa;
    // Four blocks a step (a page holds a whole number of them): every frame freed runs this.
    while at < pa + PAGE && 4 * block <= PAGE {
        // SAFETY: DC ZVA zeroes one naturally aligned block; the four are inside the frame.
        unsafe {
            asm!(
                "dc zva, {a}",
                "add {a}, {a}, {b}",
                "dc zva, {a}",
                "add {a}, {a}, {b}",
                "dc zva, {a}",
                "add {a}, {a}, {b}",
                "dc zva, {a}",
                "add {a}, {a}, {b}",
                a = inout(reg) at,
                b = in(reg) block,
                options(nostack)
            )
        };
    }
    while at < pa + PAGE {
        // SAFETY: DC ZVA zeroes one naturally aligned block inside the caller's frame.
        unsafe { asm!("dc zva, {}", in(reg) at, options(nostack)) };
        at += block;
    }
}

/// The 8 bytes at `bytes` as a little-endian word, in one load: the target is built with strict
/// alignment (an unaligned word access split into eight byte loads and shifts), while the hyp's
/// memory allows unaligned loads (Normal memory, SCTLR_EL2.A clear: mem.S). For the console's
/// scan for line ends, 8 bytes a step.
#[inline(always)]
pub fn load_le_u64(bytes: &[u8; 8]) -> u64 {
    let word: u64;
    // SAFETY: `bytes` is 8 readable bytes of Normal memory, and SCTLR_EL2.A is clear.
    unsafe {
        asm!("ldr {}, [{}]", out(reg) word, in(reg) bytes.as_ptr(),
            options(nostack, readonly, preserves_flags))
    };
    word
}
