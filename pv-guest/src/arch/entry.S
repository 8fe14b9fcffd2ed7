/*
 * Guest entry at EL1h, MMU off, x0 = the boot-info page's IPA (all we know about our memory).
 * Enable FP/SIMD (the compiler uses it), install the vectors, take the stack, run Rust.
 */
.section .text.entry, "ax"
.global _start
_start:
    mov     x19, x0
    mov     x1, #(3 << 20)              /* CPACR_EL1.FPEN: no FP/SIMD traps */
    msr     cpacr_el1, x1
    isb
    adrp    x1, guest_vectors
    add     x1, x1, :lo12:guest_vectors
    msr     vbar_el1, x1
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
    bl      guest_main
3:  wfi
    b       3b

/* Every exception reports its vector slot and registers to Rust. */
.macro vector slot
.balign 0x80
    sub     sp, sp, #16
    stp     x0, x1, [sp]
    mov     x0, #\slot
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      guest_exception
    ldp     x0, x1, [sp]
    add     sp, sp, #16
    eret
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
