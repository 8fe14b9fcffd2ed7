// The arm64 Image header (booting.rst), the entries of both vCPUs, a 1 GiB-block identity map
// (devices below RAM, RAM cacheable: Rust code needs unaligned accesses), the EL1 vectors.

    .section .text.head, "ax"
    .global _start
_start:
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0                       // text_offset
    .quad   __image_size            // image_size
    .quad   0x2                     // flags: 4 KiB pages
    .quad   0, 0, 0                 // res2-4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

primary_entry:
    mov     x19, x0                 // the DTB
    bl      el1_setup
    adrp    x1, stack0_top
    add     x1, x1, :lo12:stack0_top
    mov     sp, x1
    mov     x0, x19
    bl      primary_main
1:  wfe
    b       1b

    .global secondary_entry
secondary_entry:
    bl      el1_setup
    adrp    x1, stack1_top
    add     x1, x1, :lo12:stack1_top
    mov     sp, x1
    bl      secondary_main
1:  wfe
    b       1b

el1_setup:
    mov     x0, #(3 << 20)          // CPACR_EL1.FPEN: Rust may use the SIMD registers
    msr     cpacr_el1, x0
    adrp    x0, vectors
    add     x0, x0, :lo12:vectors
    msr     vbar_el1, x0
    ldr     x0, =0xff00             // MAIR: attr0 Device-nGnRnE, attr1 Normal write-back
    msr     mair_el1, x0
    ldr     x0, =0x803520           // TCR: T0SZ 32, inner/outer WB, inner shareable, EPD1
    msr     tcr_el1, x0
    adrp    x0, level1
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mrs     x0, sctlr_el1
    orr     x0, x0, #(1 << 0)       // M
    orr     x0, x0, #(1 << 2)       // C
    orr     x0, x0, #(1 << 12)      // I
    bic     x0, x0, #(1 << 1)       // A
    msr     sctlr_el1, x0
    isb
    ret

// Only an IRQ at EL1 with SP_EL1 is expected; anything else stops the vCPU where GDB sees it.
    .balign 2048
vectors:
    .rept 5
    .balign 128
    b       .
    .endr
    .balign 128                     // 0x280: IRQ, current EL, SP_ELx
    b       irq_entry
    .rept 10
    .balign 128
    b       .
    .endr

irq_entry:
    sub     sp, sp, #(22 * 8)
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    str     x30, [sp, #160]
    bl      irq_handler
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x29, [sp, #144]
    ldr     x30, [sp, #160]
    add     sp, sp, #(22 * 8)
    eret

    .section .data
    .balign 4096
level1:
    .quad   0x0000000000000401      // 0-1 GiB: devices (attr0, AF)
    .quad   0x0000000040000705      // 1-2 GiB: RAM (attr1, inner shareable, AF)
    .quad   0, 0

    .section .bss
    .balign 16
    .space  16384
stack0_top:
    .space  16384
stack1_top:
