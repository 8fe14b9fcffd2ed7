/*
 * Guest entry at EL1h, MMU off, x0 = the boot-info page's IPA (all we know about our memory),
 * x1 = how many times this VM restarted (PSCI SYSTEM_RESET).
 * Enable FP/SIMD (the compiler uses it), install the vectors, take the stack, run Rust.
 */
/* What every vCPU does first: FP/SIMD usable (no CPACR_EL1.FPEN traps), our vectors. */
.macro cpu_setup
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb
    adrp    x1, guest_vectors
    add     x1, x1, :lo12:guest_vectors
    msr     vbar_el1, x1
.endm

.section .text.entry, "ax"
.global _start
_start:
    mov     x19, x0
    mov     x20, x1
    cpu_setup
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  adrp    x1, GUEST_STACK
    add     x1, x1, :lo12:GUEST_STACK
    add     sp, x1, #{STACK_SIZE}
    mov     x0, x19
    mov     x1, x20
    bl      guest_main
3:  wfi
    b       3b

/*
 * A secondary vCPU, started by PSCI CPU_ON: EL1h, MMU off, x0 = the context ID, which
 * pv-guest sets to the vCPU's index (1..MAX_VCPUS-1). FP/SIMD on, the vectors, its own stack,
 * then secondary_main(index). Any other index stops here.
 */
.global secondary_entry
secondary_entry:
    mov     x19, x0
    cpu_setup
    cbz     x19, 5f
    cmp     x19, #{MAX_VCPUS}
    b.hs    5f
    adrp    x1, SECONDARY_STACKS
    add     x1, x1, :lo12:SECONDARY_STACKS
    mov     x2, #{SECONDARY_STACK_SIZE}
    madd    x1, x19, x2, x1             /* the end of stack index-1 */
    mov     sp, x1
    mov     x0, x19
    bl      secondary_main
5:  wfi
    b       5b

/*
 * Every exception saves the interrupted context (x0..x30, ELR, SPSR) in an ExceptionFrame on
 * the stack and calls guest_exception(slot, frame, esr, far), which may change the frame (the
 * resume address); then the frame is restored and the exception returns.
 */
.macro vector slot
.balign 0x80
    sub     sp, sp, #{FRAME_SIZE}
    stp     x0, x1, [sp, #0]
    mov     x0, #\slot
    b       exception_common
.endm

.text
.balign 2048
guest_vectors:
    vector 0
    vector 1
    vector 2
    vector 3
    vector 4
    vector 5
    vector 6
    vector 7
    vector 8
    vector 9
    vector 10
    vector 11
    vector 12
    vector 13
    vector 14
    vector 15

exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    str     x30, [sp, #240]
    str     x1, [sp, #{FRAME_ELR}]
    str     x2, [sp, #{FRAME_SPSR}]
    mov     x1, sp
    mrs     x2, esr_el1
    mrs     x3, far_el1
    bl      guest_exception
    ldr     x1, [sp, #{FRAME_ELR}]
    ldr     x2, [sp, #{FRAME_SPSR}]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldr     x30, [sp, #240]
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{FRAME_SIZE}
    eret
