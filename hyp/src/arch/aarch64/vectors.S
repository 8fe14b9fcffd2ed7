/*
 * EL2 exception vectors and the guest entry and exit.
 *
 * The register contract. `guest_enter` (and `guest_resume`) is an AAPCS64 function called by
 * Rust (exception.rs): it pushes the caller's callee-saved registers x19..x30 on the EL2 stack,
 * loads the vCPU's general registers from its block (PerCpu::regs, from TPIDR_EL2) and erets.
 * A guest exit comes back on that same stack (an exception from EL1 uses SP_EL2, which the
 * guest cannot touch): the vector saves the guest's x0..x30 into the block, pops the caller's
 * registers and returns from guest_enter with x0 = the exit's kind (EXIT_*) and x1 = the block.
 * ELR_EL2 and SPSR_EL2 are left in the CPU: Rust copies them into the block when it decodes the
 * exit for the general path (exception::RawExit::decode), and `guest_resume` erets with them
 * untouched after a call answered in place. So the hyp's own registers never hold guest values
 * when Rust runs, and nothing but the block does. Offsets come from Rust (core::mem::offset_of!)
 * as const operands, so the layout is written down once.
 */

.macro save_guest kind
    stp     x0, x1, [sp, #-16]!
    save_guest_after_x0_x1 \kind
.endm

/* Everything but x0/x1, which the vector already pushed on the EL2 stack; guest_exit next. */
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
    stp     x20, x21, [x1, #(20 * 8)]
    stp     x22, x23, [x1, #(22 * 8)]
    stp     x24, x25, [x1, #(24 * 8)]
    stp     x26, x27, [x1, #(26 * 8)]
    stp     x28, x29, [x1, #(28 * 8)]
    str     x30, [x1, #(30 * 8)]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x1, #0]
    mov     x0, #\kind
.endm

.macro hyp_fault kind
    /* An exception taken from EL2 itself is a hypervisor bug: report and stop. */
    mov     x0, #\kind
    mrs     x1, esr_el2
    mrs     x2, far_el2
    mrs     x3, elr_el2
    bl      handle_hyp_fault
1:  wfe
    b       1b
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
    hyp_fault 0
.balign 0x80
    hyp_fault 1
.balign 0x80
    hyp_fault 2
.balign 0x80
    hyp_fault 3
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
guest_sync_slow:
    save_guest_after_x0_x1 {EXIT_SYNC}
    /* fall through */

/* The end of every exit: back into guest_enter's caller, as AAPCS64 wants it. */
guest_exit:
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    ret

.macro push_callee_saved
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
.endm

/*
 * (kind, regs) guest_enter(void): enters the vCPU PerCpu::regs points at, ELR_EL2
 * and SPSR_EL2 from its block; returns at its next exit the vectors do not answer themselves.
 */
.global guest_enter
guest_enter:
    push_callee_saved
    mrs     x0, tpidr_el2
    ldr     x0, [x0, #{PERCPU_REGS}]
    ldp     x1, x2, [x0, #{REGS_ELR}]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    b       1f

/*
 * (kind, regs) guest_resume(regs): as guest_enter, for the vCPU whose block is `regs`
 * and which just exited, with ELR_EL2 and SPSR_EL2 as that exit left them.
 */
.global guest_resume
guest_resume:
    push_callee_saved
1:  ldp     x2, x3, [x0, #(2 * 8)]
    ldp     x4, x5, [x0, #(4 * 8)]
    ldp     x6, x7, [x0, #(6 * 8)]
    ldp     x8, x9, [x0, #(8 * 8)]
    ldp     x10, x11, [x0, #(10 * 8)]
    ldp     x12, x13, [x0, #(12 * 8)]
    ldp     x14, x15, [x0, #(14 * 8)]
    ldp     x16, x17, [x0, #(16 * 8)]
    ldp     x18, x19, [x0, #(18 * 8)]
    ldp     x20, x21, [x0, #(20 * 8)]
    ldp     x22, x23, [x0, #(22 * 8)]
    ldp     x24, x25, [x0, #(24 * 8)]
    ldp     x26, x27, [x0, #(26 * 8)]
    ldp     x28, x29, [x0, #(28 * 8)]
    ldr     x30, [x0, #(30 * 8)]
    ldp     x0, x1, [x0, #0]
    eret
