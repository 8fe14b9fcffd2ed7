/*
 * memcpy, memmove and memset for the hypervisor, in place of compiler_builtins' generic ones.
 *
 * Those copy a source that is not 8-byte aligned a byte at a time, reassembling each word with
 * shifts (22 instructions per 8 bytes), and a guest image comes out of the initrd's cpio
 * archive only 4-byte aligned: loading pv-guest's 275 KiB cost 0.76 M instructions. These
 * move 64 bytes per loop with unaligned LDP/STP, which the hyp's memory allows: every Rust
 * access is to Normal memory (device registers are read and written volatile, never through
 * these) and SCTLR_EL2.A is clear (entry.S). Leaf functions: only x0..x11 are used.
 *
 * memmove matters as much: every general hypercall copies the caller's 18 argument registers
 * (144 bytes) out of and back into its saved context, and the generic memmove took 98
 * instructions for the copy back.
 */

.text
.global memcpy
.type memcpy, %function
/* x0 = destination, x1 = source, x2 = length; returns the destination. */
memcpy:
    mov     x3, x0
    cmp     x2, #64
    b.lo    2f
1:  ldp     x4, x5, [x1]
    ldp     x6, x7, [x1, #16]
    ldp     x8, x9, [x1, #32]
    ldp     x10, x11, [x1, #48]
    add     x1, x1, #64
    sub     x2, x2, #64
    stp     x4, x5, [x3]
    stp     x6, x7, [x3, #16]
    stp     x8, x9, [x3, #32]
    stp     x10, x11, [x3, #48]
    add     x3, x3, #64
    cmp     x2, #64
    b.hs    1b
2:  cmp     x2, #16
    b.lo    3f
7:  ldp     x4, x5, [x1], #16
    stp     x4, x5, [x3], #16
    sub     x2, x2, #16
    cmp     x2, #16
    b.hs    7b
3:  tbz     x2, #3, 4f
    ldr     x4, [x1], #8
    str     x4, [x3], #8
4:  ands    x2, x2, #7
    b.eq    6f
5:  ldrb    w4, [x1], #1
    strb    w4, [x3], #1
    subs    x2, x2, #1
    b.ne    5b
6:  ret
.size memcpy, . - memcpy

.global memmove
.type memmove, %function
/* As memcpy, for regions that may overlap: forwards (memcpy reads every byte before it writes
 * over it when the destination is below the source, or the regions are apart), else backwards
 * from the end, 16 bytes a step while 16 are left. */
memmove:
    sub     x4, x0, x1
    cmp     x4, x2
    b.hs    memcpy                      /* unsigned: dst < src, or dst >= src + len */
    add     x1, x1, x2
    add     x3, x0, x2
    cmp     x2, #16
    b.lo    2f
1:  ldp     x4, x5, [x1, #-16]!
    stp     x4, x5, [x3, #-16]!
    sub     x2, x2, #16
    cmp     x2, #16
    b.hs    1b
2:  cbz     x2, 4f
3:  ldrb    w4, [x1, #-1]!
    strb    w4, [x3, #-1]!
    subs    x2, x2, #1
    b.ne    3b
4:  ret
.size memmove, . - memmove

.global memset
.type memset, %function
/* x0 = destination, w1 = the byte, x2 = length; returns the destination. Zeroing 256 bytes or
 * more (the heap's zeroed allocations: the frame owner map is 512 KiB on 1 GiB) goes by DC ZVA
 * where the CPU's block is 64 bytes (the Cortex-A72's) and the instruction allowed. */
memset:
    mov     x3, x0
    ands    x1, x1, #0xff
    b.ne    7f
    cmp     x2, #256
    b.lo    7f
    mrs     x4, dczid_el0
    and     x4, x4, #0x1f               /* DZP and BS: 4 is "allowed, 16 words" */
    cmp     x4, #4
    b.ne    7f
    /* 64 unaligned bytes, then on from the next 64-byte boundary. */
    stp     xzr, xzr, [x3]
    stp     xzr, xzr, [x3, #16]
    stp     xzr, xzr, [x3, #32]
    stp     xzr, xzr, [x3, #48]
    add     x4, x3, #64
    and     x4, x4, #~63
    sub     x5, x4, x3
    sub     x2, x2, x5
    mov     x3, x4
8:  dc      zva, x3
    add     x3, x3, #64
    sub     x2, x2, #64
    cmp     x2, #64
    b.hs    8b
    b       2f
7:  orr     x1, x1, x1, lsl #8
    orr     x1, x1, x1, lsl #16
    orr     x1, x1, x1, lsl #32
    cmp     x2, #64
    b.lo    2f
1:  stp     x1, x1, [x3]
    stp     x1, x1, [x3, #16]
    stp     x1, x1, [x3, #32]
    stp     x1, x1, [x3, #48]
    add     x3, x3, #64
    sub     x2, x2, #64
    cmp     x2, #64
    b.hs    1b
2:  cmp     x2, #8
    b.lo    4f
3:  str     x1, [x3], #8
    sub     x2, x2, #8
    cmp     x2, #8
    b.hs    3b
4:  cbz     x2, 6f
5:  strb    w1, [x3], #1
    subs    x2, x2, #1
    b.ne    5b
6:  ret
.size memset, . - memset
