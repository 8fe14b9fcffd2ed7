/*
 * EL2 exception vectors and the guest entry and exit.
 *
 * The register contract. `guest_enter` and `guest_resume` are entered from an `asm!` block
 * (exception.rs) by `bl`, with the guest's x20..x28 as its operands: they push the caller's
 * x19, x29 and x30 on the EL2 stack, load the vCPU's registers from its block (PerCpu::regs,
 * from TPIDR_EL2) and eret. A guest exit comes back on that same stack (an exception from EL1
 * uses SP_EL2, which the guest cannot touch): the vector saves the guest's caller-saved
 * registers x0..x18 and x30, and x19 and x29 (which the caller keeps for itself), into the
 * block, pops the caller's three and returns with x0 = the exit's kind (EXIT_*), x1 = the block
 * and x20..x28 still the guest's: the asm block's outputs, which the compiler keeps (or spills)
 * as the run loop's own values. The general path writes them into the block
 * (exception::RawExit::complete_block) with ELR_EL2 and SPSR_EL2, which stay in the CPU until
 * then; `guest_enter` loads all of x0..x30 and ELR/SPSR from the block, `guest_resume` (after a
 * call answered in place, by the run loop or by vm::exit) only what the vector saved, ELR_EL2
 * and SPSR_EL2 untouched. Offsets come
 * from Rust (core::mem::offset_of!) as const operands, so the layout is written down once.
 */

.macro save_guest kind
    stp     x0, x1, [sp, #-16]!
    save_guest_after_x0_x1 \kind
.endm

/* What the vector saves, but x0/x1, which it already pushed on the EL2 stack; guest_exit next. */
.macro save_guest_after_x0_x1 kind
    mrs     x1, tpidr_el2
    ldr     x1, [x1, #{PERCPU_REGS}]
    stp     x2, x3, [x1, #(2 * 8)]
    stp     x4, x5, [x1, #(4 * 8)]
    stp     x6, x7, [x1, #(6 * 8)]
    stp     x8, x9, [x1, #(8 * 8)]
    stp     x10, x11, [x1, #(10 * 8)]
    stp     x12, x13, [x1, #(12 * 8)]
    stp     x14, x15, [x1, #(14 * 8)]
    stp     x16, x17, [x1, #(16 * 8)]
    stp     x18, x19, [x1, #(18 * 8)]
    stp     x29, x30, [x1, #(29 * 8)]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x1, #0]
    mov     x0, #\kind
.endm

.macro hyp_fault kind
    /*
     * An exception taken from EL2 itself is a hypervisor bug: report and stop, with x0..x30
     * as they were (saved below the stack pointer, for the crash report).
     */
    sub     sp, sp, #(32 * 8)
    hyp_fault_framed \kind
.endm

/* hyp_fault with its frame taken already. */
.macro hyp_fault_framed kind
    stp     x0, x1, [sp]
    add     x0, sp, #(32 * 8)
    str     x0, [sp, #(31 * 8)]
    adr     x0, handle_hyp_fault
    mov     x1, #\kind
    b       hyp_fault_save
.endm

/*
 * hyp_fault for an exception taken from EL2 on SP_EL2, which may be a stack overflow: SP in the
 * unmapped lower half of its CPU's percpu::Stack, where the frame's first store would fault
 * again, and again. So nothing is stored before the frame is known to be in a stack's upper
 * half (bit STACK_SHIFT set: the Stack is aligned to its size), tested with x0 and SP alone
 * (SP + x0 - x0, as Linux's arm64 entry does). On an overflow the frame goes to this CPU's
 * emergency stack, its slot found from SP, the interrupted x0 held in SP_EL0 meanwhile (the
 * loaded guest's, lost: the hyp stops). An exception on the emergency stack counts as an
 * overflow too (exception.rs stops its recursion).
 */
.macro hyp_fault_el2h kind
    sub     sp, sp, #(32 * 8)
    add     sp, sp, x0                  /* sp = frame + x0 */
    sub     x0, sp, x0                  /* x0 = frame */
    tbz     x0, #{STACK_SHIFT}, 1f
    sub     x0, sp, x0                  /* x0 = the interrupted x0 */
    sub     sp, sp, x0                  /* sp = frame */
    hyp_fault_framed \kind
1:  sub     x0, sp, x0                  /* x0 = the interrupted x0 */
    msr     sp_el0, x0
    sub     x0, sp, x0                  /* x0 = frame */
    and     sp, x0, #~({STACK_SLOT} - 1)
    add     sp, sp, #{EMERGENCY_TOP}
    sub     sp, sp, #(32 * 8)
    add     x0, x0, #(32 * 8)           /* the interrupted SP */
    str     x0, [sp, #(31 * 8)]
    mrs     x0, sp_el0
    stp     x0, x1, [sp]
    adr     x0, handle_hyp_stack_overflow
    mov     x1, #\kind
    b       hyp_fault_save
.endm

.section .vectors, "ax"
.balign 2048
.global hyp_vectors
hyp_vectors:
/* Current EL with SP_EL0: never used by the hyp. */
.balign 0x80
    hyp_fault 0
.balign 0x80
    hyp_fault 1
.balign 0x80
    hyp_fault 2
.balign 0x80
    hyp_fault 3
/* Current EL with SP_ELx. */
.balign 0x80
    hyp_fault_el2h 0
.balign 0x80
    hyp_fault_el2h 1
.balign 0x80
    hyp_fault_el2h 2
.balign 0x80
    hyp_fault_el2h 3
/* Lower EL, AArch64: the guests. */
.balign 0x80
    /*
     * The null-hypercall fast path: `HVC #0` with w0 = SMCCC_VERSION is answered here, before
     * anything is saved (as KVM answers its SMCCC workaround calls in its vectors). Everything
     * else takes the general path; the function ID is tested first, so that every other call
     * leaves after four instructions. Only x0/x1 are touched and x1 is restored.
     */
    stp     x0, x1, [sp, #-16]!
    movz    w1, #{SMCCC_VERSION_HIGH}, lsl #16
    cmp     w0, w1
    b.ne    1f
    mrs     x1, esr_el2
    lsr     x1, x1, #24
    cmp     x1, #{ESR_HVC_HIGH}          /* EC = HVC64, IL, ISS[24] = 0 */
    b.ne    1f
    mrs     x1, esr_el2
    tst     x1, #0xffffff               /* the rest of the ISS: the immediate is 0 */
    b.ne    1f
    movz    x0, #{SMCCC_1_2_LOW}
    movk    x0, #{SMCCC_1_2_HIGH}, lsl #16
    ldr     x1, [sp, #8]
    add     sp, sp, #16
    eret
1:  b       guest_sync_slow
.balign 0x80
    save_guest {EXIT_IRQ}
    b       guest_exit
.balign 0x80
    save_guest {EXIT_FIQ}
    b       guest_exit
.balign 0x80
    save_guest {EXIT_SERROR}
    b       guest_exit
/* Lower EL, AArch32: guests cannot run AArch32 (HCR_EL2.RW=1); report if it ever happens. */
.balign 0x80
    hyp_fault 4
.balign 0x80
    hyp_fault 4
.balign 0x80
    hyp_fault 4
.balign 0x80
    hyp_fault 4

.text
/*
 * The rest of hyp_fault: x0 = the Rust handler, x1 = the kind, the frame at SP with the
 * interrupted x0 and x1 in it and the interrupted SP in its last word.
 */
hyp_fault_save:
    stp     x2, x3, [sp, #(2 * 8)]
    stp     x4, x5, [sp, #(4 * 8)]
    stp     x6, x7, [sp, #(6 * 8)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(10 * 8)]
    stp     x12, x13, [sp, #(12 * 8)]
    stp     x14, x15, [sp, #(14 * 8)]
    stp     x16, x17, [sp, #(16 * 8)]
    stp     x18, x19, [sp, #(18 * 8)]
    stp     x20, x21, [sp, #(20 * 8)]
    stp     x22, x23, [sp, #(22 * 8)]
    stp     x24, x25, [sp, #(24 * 8)]
    stp     x26, x27, [sp, #(26 * 8)]
    stp     x28, x29, [sp, #(28 * 8)]
    str     x30, [sp, #(30 * 8)]
    mov     x6, x0
    mov     x0, x1
    mrs     x1, esr_el2
    mrs     x2, far_el2
    mrs     x3, elr_el2
    mov     x4, sp
    ldr     x5, [sp, #(31 * 8)]
    blr     x6
1:  wfe
    b       1b

guest_sync_slow:
    save_guest_after_x0_x1 {EXIT_SYNC}
    /* fall through */

/* The end of every exit: back into the entry's caller, its x19, x29 and x30 as they were. */
guest_exit:
    ldr     x19, [sp], #16
    ldp     x29, x30, [sp], #16
    ret

/*
 * guest_enter: enters the vCPU PerCpu::regs points at, all of x0..x30, ELR_EL2 and SPSR_EL2
 * from its block; returns at its next exit the vectors do not answer themselves.
 */
.global guest_enter
guest_enter:
    stp     x29, x30, [sp, #-16]!
    str     x19, [sp, #-16]!
    mrs     x0, tpidr_el2
    ldr     x0, [x0, #{PERCPU_REGS}]
    ldp     x1, x2, [x0, #{REGS_ELR}]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x20, x21, [x0, #(20 * 8)]
    ldp     x22, x23, [x0, #(22 * 8)]
    ldp     x24, x25, [x0, #(24 * 8)]
    ldp     x26, x27, [x0, #(26 * 8)]
    ldr     x28, [x0, #(28 * 8)]
    b       1f

/*
 * guest_resume(regs): as guest_enter, for the vCPU whose block is `regs` and which just exited:
 * x20..x28 are already the guest's, ELR_EL2 and SPSR_EL2 as that exit left them.
 */
.global guest_resume
guest_resume:
    stp     x29, x30, [sp, #-16]!
    str     x19, [sp, #-16]!
1:  ldp     x2, x3, [x0, #(2 * 8)]
    ldp     x4, x5, [x0, #(4 * 8)]
    ldp     x6, x7, [x0, #(6 * 8)]
    ldp     x8, x9, [x0, #(8 * 8)]
    ldp     x10, x11, [x0, #(10 * 8)]
    ldp     x12, x13, [x0, #(12 * 8)]
    ldp     x14, x15, [x0, #(14 * 8)]
    ldp     x16, x17, [x0, #(16 * 8)]
    ldp     x18, x19, [x0, #(18 * 8)]
    ldp     x29, x30, [x0, #(29 * 8)]
    ldp     x0, x1, [x0, #0]
    eret
