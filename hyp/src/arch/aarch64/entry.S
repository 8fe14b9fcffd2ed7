/*
 * Boot entry: a Linux arm64 Image header, then the code that runs with the MMU off.
 *
 * The bootloader enters at EL2 with x0 = the device tree's physical address and the image at
 * (2 MiB-aligned base + text_offset). Until the MMU is on nothing here assumes a load address:
 * everything is PC-relative. The boot tables map
 *   - the image, at its link address (the last GiB of the 39-bit VA space), with 2 MiB blocks;
 *   - the GiB that holds the image and the GiB that holds the device tree, identity-mapped, so
 *     that the instruction after SCTLR_EL2.M=1 and the DTB stay reachable.
 * Rust replaces these tables with precise ones once it knows the board.
 */

.equ TEXT_OFFSET,       0x80000
.equ BLOCK_2M,          0x200000
.equ BOOT_MAP_BLOCKS,   3               /* the linker script asserts the image fits */
.equ L1_HYP_INDEX,      511             /* HYP_VA_BASE >> 30 */
/* Normal memory, MAIR index 0, inner shareable, access flag, EL2 read/write, block. */
.equ BLOCK_NORMAL,      (1 << 10) | (3 << 8) | (0 << 2) | 1
.equ TABLE_DESC,        3
/* MAIR_EL2: index 0 Normal WB RW-allocate, index 1 Device-nGnRE. */
.equ MAIR_VALUE,        0x04FF
/* TCR_EL2: T0SZ=25 (39-bit VA, level-1 root), WBWA walks, inner shareable, 4 KiB, RES1 bits. */
.equ TCR_BASE,          (1 << 31) | (1 << 23) | (3 << 12) | (1 << 10) | (1 << 8) | 25
/* SCTLR_EL2 RES1 bits (E2H=0) plus M, C, SA, I. */
.equ SCTLR_MMU_ON,      0x30C50830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12)

/* SCTLR_EL2.M on (the translation tables and TCR/MAIR already set), then a clean slate for
 * instruction fetch. */
.macro mmu_on
    ldr     x0, =SCTLR_MMU_ON
    msr     sctlr_el2, x0
    isb
    ic      iallu
    dsb     nsh
    isb
.endm

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry               /* code0 */
    .long   0                           /* code1 */
    .quad   TEXT_OFFSET                 /* text_offset */
    .quad   __image_size                /* image_size, .bss included */
    .quad   0xA                         /* flags: little-endian, 4 KiB pages, base anywhere */
    .quad   0, 0, 0                     /* res2..res4 */
    .ascii  "ARM\x64"                   /* magic */
    .long   0                           /* res5 */

primary_entry:
    mrs     x23, cntpct_el0             /* first: the counter, for bench.sh's boot_to_guest */
    mov     x19, x0                     /* device tree PA */
    adr     x20, _start                 /* where we were loaded */
    mrs     x0, CurrentEL
    cmp     x0, #(2 << 2)
    b.ne    park                        /* not at EL2: nothing we can do, not even print */

    /* Known state: MMU and caches off at EL2, debug exceptions masked. */
    msr     daifset, #0xf
    ldr     x0, =0x30C50830
    msr     sctlr_el2, x0
    isb

    /* Zero the two boot tables (written with the MMU off, so through to memory). */
    adrp    x21, boot_l1
    adrp    x22, boot_l2
    mov     x0, x21
    mov     x1, #(2 * 4096)
1:  stp     xzr, xzr, [x0], #16
    subs    x1, x1, #16
    b.ne    1b

    /* L1[511] -> L2: the image at its link address, 2 MiB blocks from the load base. */
    orr     x0, x22, #TABLE_DESC
    str     x0, [x21, #(L1_HYP_INDEX * 8)]
    sub     x0, x20, #TEXT_OFFSET       /* 2 MiB-aligned load base */
    ldr     x1, =BLOCK_NORMAL
    orr     x0, x0, x1
    mov     x1, x22
    mov     x2, #BOOT_MAP_BLOCKS
2:  str     x0, [x1], #8
    add     x0, x0, #BLOCK_2M
    subs    x2, x2, #1
    b.ne    2b

    /* Identity 1 GiB blocks for the image's GiB and the device tree's GiB. */
    ldr     x1, =BLOCK_NORMAL
    lsr     x2, x20, #30
    lsl     x0, x2, #30
    orr     x0, x0, x1
    str     x0, [x21, x2, lsl #3]
    lsr     x2, x19, #30
    lsl     x0, x2, #30
    orr     x0, x0, x1
    str     x0, [x21, x2, lsl #3]

    /* Drop any stale cache lines over the tables so the walker sees what we wrote. */
    dsb     sy
    mov     x0, x21
    add     x1, x21, #(2 * 4096)
3:  dc      ivac, x0
    add     x0, x0, #64
    cmp     x0, x1
    b.lo    3b
    dsb     sy

    ldr     x0, =MAIR_VALUE
    msr     mair_el2, x0
    /* PS = the CPU's physical address size, capped at 48 bits (4 KiB granule). */
    mrs     x1, id_aa64mmfr0_el1
    and     x1, x1, #0xf
    cmp     x1, #5
    mov     x2, #5
    csel    x1, x1, x2, ls
    ldr     x0, =TCR_BASE
    orr     x0, x0, x1, lsl #16
    msr     tcr_el2, x0
    msr     ttbr0_el2, x21
    tlbi    alle2
    dsb     ish
    isb
    mmu_on

    ldr     x0, =high_entry             /* absolute: the link address */
    br      x0

high_entry:
    /* Now at the link address with caches on: zero .bss, then take CPU 0's stack. .bss is
     * whole pages (hyp.ld), so whole DC ZVA blocks (at most 2 KiB): one instruction zeroes
     * 64 bytes on the Cortex-A72 where STP zeroes 16 (.bss is 900 KiB). STP where DC ZVA is
     * prohibited. */
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
    mrs     x3, dczid_el0
    tbnz    x3, #4, 6f                  /* DZP: DC ZVA prohibited */
    and     x3, x3, #0xf                /* BS: log2 of the block size in words */
    mov     x2, #4
    lsl     x2, x2, x3
4:  cmp     x0, x1
    b.hs    5f
    dc      zva, x0
    add     x0, x0, x2
    b       4b
6:  cmp     x0, x1
    b.hs    5f
    stp     xzr, xzr, [x0], #16
    b       6b
5:  adrp    x0, HYP_STACKS
    add     x0, x0, :lo12:HYP_STACKS
    ldr     x1, ={STACK_SLOT}
    add     sp, x0, x1
    mov     x0, x19
    mov     x1, x20
    mov     x2, x23                     /* the counter at entry */
    bl      hyp_main
park:
    wfe
    b       park

/*
 * Secondary CPUs start here (PSCI CPU_ON on `virt`, the spin table on the Pi), at EL2 with the
 * MMU and caches off, at this code's physical address. CPU 0 has published its EL2 translation
 * registers and every logical CPU's MPIDR in SECONDARY_BOOT (smp.rs) and cleaned them to the
 * point of coherency. The final tables do not map the image at its physical address, so the MMU
 * goes on with the boot tables first (they identity-map the image's GiB; nothing changed them
 * since CPU 0 used them), and the final tables are loaded once at the link address.
 */
.global secondary_entry
secondary_entry:
    mrs     x0, CurrentEL
    cmp     x0, #(2 << 2)
    b.ne    secondary_stuck
    msr     daifset, #0xf
    ldr     x0, =0x30C50830
    msr     sctlr_el2, x0
    isb

    /* Which logical CPU this is: its MPIDR affinity in the published list (slot 0: CPU 0). */
    adrp    x1, SECONDARY_BOOT
    add     x1, x1, :lo12:SECONDARY_BOOT
    mrs     x2, mpidr_el1
    ldr     x3, =0xff00ffffff
    and     x2, x2, x3
    add     x5, x1, #{SB_MPIDR}
    mov     x4, #1
1:  cmp     x4, #{MAX_CPUS}
    b.hs    secondary_stuck             /* not one the hyp released */
    ldr     x3, [x5, x4, lsl #3]
    cmp     x3, x2
    b.eq    2f
    add     x4, x4, #1
    b       1b

2:  ldr     x0, [x1, #{SB_MAIR}]
    msr     mair_el2, x0
    ldr     x0, [x1, #{SB_TCR}]
    msr     tcr_el2, x0
    ldr     x21, [x1, #{SB_TTBR0}]
    adrp    x0, boot_l1
    msr     ttbr0_el2, x0
    isb
    tlbi    alle2
    dsb     nsh
    isb
    mmu_on
    ldr     x0, =secondary_high         /* absolute: the link address */
    br      x0

secondary_high:
    msr     ttbr0_el2, x21              /* CPU 0's final tables */
    isb
    tlbi    alle2
    dsb     nsh
    isb
    adrp    x0, HYP_STACKS
    add     x0, x0, :lo12:HYP_STACKS
    ldr     x1, ={STACK_SLOT}
    madd    x0, x4, x1, x0
    add     sp, x0, x1
    mov     x0, x4
    bl      secondary_main
secondary_stuck:
    wfe
    b       secondary_stuck

/*
 * spin_table_release(x0 = a CPU's cpu-release-addr, x1 = the physical address it jumps to).
 * The CPU polls that word with its MMU and caches off, so the store is cleaned to the point of
 * coherency before the event (SEV) wakes it from WFE (Linux's booting.rst, spin-table).
 */
.global spin_table_release
spin_table_release:
    str     x1, [x0]
    dc      civac, x0
    dsb     sy
    sev
    ret

.section .boot_tables, "aw", %nobits
.balign 4096
boot_l1: .space 4096
boot_l2: .space 4096
