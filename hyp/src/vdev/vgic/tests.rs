//! The vGIC as Linux 6.1's GIC drivers drive it, and as a hostile guest pokes it.

use super::lr::{HCR_EN, HCR_EOICOUNT_SHIFT, HCR_LRENPIE, HCR_UIE, Lr, LrState};
use super::*;
use crate::vdev::layout::{GICD_IPA, GICR_IPA, GICR_STRIDE, INTID_UART, INTID_VIRT_TIMER};

const SGI_FRAME: u64 = 0x1_0000;

fn read(g: &mut VGic, v: usize, ipa: u64, size: u8) -> u64 {
    g.mmio(v, ipa, MmioAccess { size, write: None })
        .expect("the vGIC's")
        .0
}

fn write(g: &mut VGic, v: usize, ipa: u64, size: u8, value: u64) -> VcpuMask {
    let (read_back, kick) = g
        .mmio(
            v,
            ipa,
            MmioAccess {
                size,
                write: Some(value),
            },
        )
        .expect("the vGIC's");
    assert_eq!(read_back, 0, "a write returns nothing");
    kick
}

fn gicr(v: usize, offset: u64) -> u64 {
    GICR_IPA + v as u64 * GICR_STRIDE + offset
}

/// A GICv3 vGIC set up the way Linux's irq-gic-v3 does: distributor on with groups, SPIs in
/// group 1 at priority 0xa0 routed to vCPU 0, each redistributor awake with SGIs enabled.
fn linux_v3(vcpus: usize) -> VGic {
    let mut g = VGic::new(GicModel::V3, vcpus);
    write(&mut g, 0, GICD_IPA, 4, 0);
    for bank in 1..3 {
        write(&mut g, 0, GICD_IPA + 0x80 + 4 * bank, 4, !0);
    }
    for reg in 8..24 {
        write(&mut g, 0, GICD_IPA + 0x400 + 4 * reg, 4, 0xa0a0_a0a0);
    }
    write(&mut g, 0, GICD_IPA, 4, 0x13);
    for i in 32..96 {
        write(&mut g, 0, GICD_IPA + 0x6000 + 8 * i, 8, 0);
    }
    for v in 0..vcpus {
        write(&mut g, v, gicr(v, 0x14), 4, 0);
        write(&mut g, v, gicr(v, SGI_FRAME + 0x80), 4, !0);
        for reg in 0..8 {
            write(
                &mut g,
                v,
                gicr(v, SGI_FRAME + 0x400 + 4 * reg),
                4,
                0xa0a0_a0a0,
            );
        }
        write(&mut g, v, gicr(v, SGI_FRAME + 0x100), 4, 0xffff);
    }
    g
}

/// A GICv2 vGIC as Linux's irq-gic sets it up: everything group 0, SPIs to CPU 0.
fn linux_v2(vcpus: usize) -> VGic {
    let mut g = VGic::new(GicModel::V2, vcpus);
    for reg in 0..24 {
        write(&mut g, 0, GICD_IPA + 0x400 + 4 * reg, 4, 0xa0a0_a0a0);
    }
    for reg in 8..24 {
        write(&mut g, 0, GICD_IPA + 0x800 + 4 * reg, 4, 0x0101_0101);
    }
    write(&mut g, 0, GICD_IPA, 4, 1);
    g
}

/// What the guest sees in its LRs, decoded.
fn lrs(g: &VGic, s: &LrState) -> std::vec::Vec<Lr> {
    s.used()
        .iter()
        .map(|&raw| Lr::decode(raw, g.model()))
        .filter(|lr| lr.pending || lr.active)
        .collect()
}

/// The guest's virtual CPU interface acknowledges (pending -> active) the LR holding `intid`.
fn guest_acks(g: &VGic, s: &mut LrState, intid: u32) {
    guest_sets(g, s, intid, |lr| {
        assert!(lr.pending, "acknowledging what is pending");
        lr.pending = false;
        lr.active = true;
    });
}

/// ... and deactivates it (EOI with EOImode 0).
fn guest_deactivates(g: &VGic, s: &mut LrState, intid: u32) {
    guest_sets(g, s, intid, |lr| lr.active = false);
}

fn guest_sets(g: &VGic, s: &mut LrState, intid: u32, change: impl Fn(&mut Lr)) {
    let model = g.model();
    let n = s
        .used()
        .iter()
        .position(|&raw| {
            let lr = Lr::decode(raw, model);
            lr.vintid == intid && (lr.pending || lr.active)
        })
        .expect("in an LR");
    let mut lr = Lr::decode(s.lrs[n], model);
    change(&mut lr);
    s.lrs[n] = lr.encode(model);
}

#[test]
fn linux_finds_a_gicv3_distributor_and_its_redistributors() {
    let mut g = VGic::new(GicModel::V3, 2);
    assert_eq!(
        read(&mut g, 0, GICD_IPA + 0xffe8, 4) & 0xf0,
        0x30,
        "ArchRev 3"
    );
    let typer = read(&mut g, 0, GICD_IPA + 4, 4);
    assert_eq!(typer & 0x1f, 2, "96 INTIDs");
    assert_eq!((typer >> 19) & 0x1f, 9, "10 ID bits");
    assert_eq!(typer & (1 << 17 | 1 << 16), 0, "no LPIs, no MBIS");
    write(&mut g, 0, GICD_IPA, 4, 0x13);
    let ctlr = read(&mut g, 0, GICD_IPA, 4);
    assert_eq!(ctlr, 0x53, "groups on, ARE and DS fixed, RWP 0");
    // Linux walks the frames until Last, matching affinities.
    for v in 0..2 {
        assert_eq!(read(&mut g, v, gicr(v, 0xffe8), 4) & 0xf0, 0x30);
        let t = read(&mut g, 0, gicr(v, 8), 8);
        assert_eq!(t >> 32, v as u64, "affinity 0.0.0.{v}");
        assert_eq!((t >> 8) & 0xffff, v as u64, "Processor_Number");
        assert_eq!(t & (1 << 4) != 0, v == 1, "Last only on the last frame");
        assert_eq!(read(&mut g, 0, gicr(v, 0xc), 4), t >> 32, "upper half");
        assert_eq!(
            read(&mut g, 0, gicr(v, 8), 4),
            t & 0xffff_ffff,
            "lower half"
        );
    }
    assert!(
        g.mmio(
            0,
            gicr(2, 8),
            MmioAccess {
                size: 8,
                write: None
            }
        )
        .is_none()
    );
    // WAKER: asleep at reset; ProcessorSleep cleared, ChildrenAsleep follows.
    assert_eq!(read(&mut g, 1, gicr(1, 0x14), 4), 0b110);
    write(&mut g, 1, gicr(1, 0x14), 4, 0);
    assert_eq!(read(&mut g, 1, gicr(1, 0x14), 4), 0);
    assert_eq!(
        read(&mut g, 0, gicr(0, 0x14), 4),
        0b110,
        "each frame its own"
    );
}

#[test]
fn registers_read_back_what_linux_wrote() {
    let mut g = linux_v3(2);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x84, 4), 0xffff_ffff, "IGROUPR1");
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x420, 4), 0xa0a0_a0a0);
    // A byte priority write (Linux's irq_set_priority path) and the 5 bits kept.
    write(&mut g, 0, GICD_IPA + 0x421, 1, 0x67);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x421, 1), 0x60);
    // 64-bit IROUTER, and by halves; only valid bits kept.
    write(&mut g, 0, GICD_IPA + 0x6000 + 8 * 40, 8, !0);
    assert_eq!(
        read(&mut g, 0, GICD_IPA + 0x6000 + 8 * 40, 8),
        0xff_80ff_ffff
    );
    write(&mut g, 0, GICD_IPA + 0x6000 + 8 * 40, 4, 1);
    assert_eq!(
        read(&mut g, 0, GICD_IPA + 0x6000 + 8 * 40, 8),
        0xff_0000_0001
    );
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x6000 + 8 * 40 + 4, 4), 0xff);
    // ICFGR: SPI 33 edge (bits 3:2 of ICFGR2), SGIs fixed edge in the redistributor.
    write(&mut g, 0, GICD_IPA + 0xc08, 4, 0b1000);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0xc08, 4), 0b1000);
    write(&mut g, 1, gicr(1, SGI_FRAME + 0xc00), 4, 0);
    assert_eq!(read(&mut g, 1, gicr(1, SGI_FRAME + 0xc00), 4), 0xaaaa_aaaa);
    write(&mut g, 1, gicr(1, SGI_FRAME + 0xc04), 4, 0x0080_0000);
    assert_eq!(
        read(&mut g, 1, gicr(1, SGI_FRAME + 0xc04), 4),
        0x0080_0000,
        "PPI 27 edge"
    );
    assert_eq!(read(&mut g, 0, gicr(0, SGI_FRAME + 0xc04), 4), 0, "banked");
    // Enables read back through both the set and the clear register.
    write(&mut g, 0, GICD_IPA + 0x104, 4, 1 << 1);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x184, 4), 1 << 1);
    write(&mut g, 0, GICD_IPA + 0x184, 4, 1 << 1);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x104, 4), 0);
    // With affinity routing the distributor's private banks are RAZ/WI.
    write(&mut g, 0, GICD_IPA + 0x100, 4, !0);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x100, 4), 0);
    assert_eq!(read(&mut g, 0, gicr(0, SGI_FRAME + 0x100), 4), 0xffff);
}

#[test]
fn a_level_spi_is_presented_again_while_its_line_stays_high() {
    let mut g = linux_v3(2);
    // The UART's SPI, level (the reset config), routed to vCPU 1, enabled.
    let uart = INTID_UART;
    write(&mut g, 0, GICD_IPA + 0x6000 + 8 * u64::from(uart), 8, 1);
    assert_eq!(g.set_line(uart, true), VcpuMask::NONE, "not enabled yet");
    assert!(!g.has_pending(1));
    assert_eq!(
        write(&mut g, 0, GICD_IPA + 0x104, 4, 1 << (uart - 32)),
        VcpuMask::of(1)
    );
    assert!(g.has_pending(1) && !g.has_pending(0));
    let mut s = LrState::new(4);
    g.load(1, &mut s);
    assert_eq!(s.hcr, HCR_EN);
    let l = lrs(&g, &s);
    assert_eq!(l.len(), 1);
    assert!(l[0].vintid == uart && l[0].pending && l[0].eoi && l[0].group1 && !l[0].hw);
    assert_eq!(l[0].priority, 0xa0);
    guest_acks(&g, &mut s, uart);
    guest_deactivates(&g, &mut s, uart);
    assert_eq!(g.save(1, &s), VcpuMask::NONE, "what is left is its own");
    // Still high: back in the LRs.
    g.load(1, &mut s);
    assert!(lrs(&g, &s)[0].pending);
    guest_acks(&g, &mut s, uart);
    let _ = g.save(1, &s);
    g.set_line(uart, false);
    g.load(1, &mut s);
    let l = lrs(&g, &s);
    assert!(
        l.len() == 1 && l[0].active && !l[0].pending,
        "active until deactivated"
    );
    guest_deactivates(&g, &mut s, uart);
    let _ = g.save(1, &s);
    g.load(1, &mut s);
    assert!(lrs(&g, &s).is_empty());
    assert!(!g.has_pending(1));
}

#[test]
fn sgis_through_icc_sgi1r_reach_the_named_vcpus_only() {
    let mut g = linux_v3(4);
    // SGI 3 to vCPUs 1 and 2 (TargetList 0b0110).
    let kick = g.write_sgi1r(0, 3 << 24 | 0b0110);
    assert_eq!(kick, VcpuMask(0b0110));
    assert!(!g.has_pending(0) && g.has_pending(1) && g.has_pending(2) && !g.has_pending(3));
    // IRM: all but the sender.
    assert_eq!(g.write_sgi1r(2, 1 << 40 | 5 << 24), VcpuMask(0b1011));
    // Other affinities, range selectors or vCPUs beyond the VM name nobody.
    assert_eq!(g.write_sgi1r(0, 1 << 16 | 1), VcpuMask::NONE, "Aff1 = 1");
    assert_eq!(g.write_sgi1r(0, 1 << 32 | 1), VcpuMask::NONE, "Aff2 = 1");
    assert_eq!(g.write_sgi1r(0, 1 << 48 | 1), VcpuMask::NONE, "Aff3 = 1");
    assert_eq!(g.write_sgi1r(0, 1 << 44 | 1), VcpuMask::NONE, "RS = 1");
    assert_eq!(g.write_sgi1r(0, 0xfff0), VcpuMask::NONE, "vCPUs 4..15");
    assert_eq!(g.write_sgi1r(9, 1), VcpuMask::NONE, "no such sender");
    let mut s = LrState::new(4);
    g.load(1, &mut s);
    let ids: std::vec::Vec<u32> = lrs(&g, &s).iter().map(|l| l.vintid).collect();
    assert_eq!(ids, [3, 5]);
}

#[test]
fn only_the_sgi_registers_send_sgis() {
    use crate::arch::aarch64::esr::{ICC_ASGI1R_EL1, ICC_SGI0R_EL1, ICC_SGI1R_EL1, SCTLR_EL1};
    let mut g = linux_v3(2);
    for reg in [ICC_SGI1R_EL1, ICC_ASGI1R_EL1, ICC_SGI0R_EL1] {
        assert_eq!(g.write_sgi_register(0, reg, 0b10), Some(VcpuMask::of(1)));
    }
    assert_eq!(g.write_sgi_register(0, SCTLR_EL1, 0b10), None);
    assert_eq!(g.write_sgi_register(0, (3, 0, 12, 11, 4), 0b10), None);
    let mut v2 = linux_v2(2);
    assert_eq!(
        v2.write_sgi_register(0, ICC_SGI1R_EL1, 0b10),
        None,
        "no such register"
    );
}

#[test]
fn an_sgi_sent_again_while_the_first_is_handled_is_not_lost() {
    let mut g = linux_v3(2);
    let mut s = LrState::new(4);
    g.write_sgi1r(0, 1 << 24 | 0b10);
    g.load(1, &mut s);
    guest_acks(&g, &mut s, 1);
    // Sent again while the guest handles the first (its LR is active).
    assert_eq!(g.write_sgi1r(0, 1 << 24 | 0b10), VcpuMask::of(1));
    let _ = g.save(1, &s);
    g.load(1, &mut s);
    let l = lrs(&g, &s);
    assert!(l.len() == 1 && l[0].pending && l[0].active, "{l:?}");
    guest_deactivates(&g, &mut s, 1);
    guest_acks(&g, &mut s, 1);
    guest_deactivates(&g, &mut s, 1);
    let _ = g.save(1, &s);
    g.load(1, &mut s);
    assert!(lrs(&g, &s).is_empty(), "delivered twice, once each");
}

#[test]
fn the_highest_priorities_fill_the_lrs_and_underflow_brings_the_rest() {
    let mut g = linux_v3(1);
    write(&mut g, 0, GICD_IPA + 0x104, 4, !0);
    write(&mut g, 0, GICD_IPA + 0x108, 4, !0);
    let prio = [0xe0u8, 0x20, 0x80, 0x40, 0x60, 0x10];
    for (n, p) in prio.iter().enumerate() {
        write(
            &mut g,
            0,
            GICD_IPA + 0x400 + 40 + n as u64,
            1,
            u64::from(*p),
        );
        g.raise(0, 40 + n as u32);
    }
    let mut s = LrState::new(4);
    g.load(0, &mut s);
    assert_eq!(s.hcr, HCR_EN | HCR_UIE, "two wait");
    let ids: std::vec::Vec<u32> = lrs(&g, &s).iter().map(|l| l.vintid).collect();
    assert_eq!(ids, [45, 41, 43, 44]);
    for id in ids {
        guest_acks(&g, &mut s, id);
        guest_deactivates(&g, &mut s, id);
    }
    let _ = g.save(0, &s);
    g.load(0, &mut s);
    assert_eq!(s.hcr, HCR_EN);
    let ids: std::vec::Vec<u32> = lrs(&g, &s).iter().map(|l| l.vintid).collect();
    assert_eq!(ids, [42, 40]);
}

#[test]
fn an_active_interrupt_keeps_its_lr_over_pending_ones() {
    let mut g = linux_v3(1);
    write(&mut g, 0, GICD_IPA + 0x104, 4, !0);
    write(&mut g, 0, GICD_IPA + 0x400 + 40, 1, 0xf0);
    g.raise(0, 40);
    let mut s = LrState::new(1);
    g.load(0, &mut s);
    guest_acks(&g, &mut s, 40);
    let _ = g.save(0, &s);
    // A more urgent one arrives; the active one stays in the only LR.
    write(&mut g, 0, GICD_IPA + 0x400 + 41, 1, 0x10);
    g.raise(0, 41);
    g.load(0, &mut s);
    let l = lrs(&g, &s);
    assert!(l.len() == 1 && l[0].vintid == 40 && l[0].active);
    assert_eq!(s.hcr, HCR_EN | HCR_UIE);
}

#[test]
fn an_eoi_of_an_active_interrupt_in_no_lr_is_counted_and_taken() {
    let mut g = linux_v3(1);
    write(&mut g, 0, GICD_IPA + 0x104, 4, !0);
    write(&mut g, 0, GICD_IPA + 0x300 + 4, 4, 0b11 << 8);
    // Two active (ISACTIVER), one LR.
    let mut s = LrState::new(1);
    g.load(0, &mut s);
    assert_eq!(s.hcr, HCR_EN | HCR_UIE | HCR_LRENPIE);
    assert_eq!(lrs(&g, &s)[0].vintid, 40);
    // The guest EOIs the one in no LR: EOIcount 1.
    s.hcr |= 1 << HCR_EOICOUNT_SHIFT;
    let _ = g.save(0, &s);
    assert_eq!(
        read(&mut g, 0, GICD_IPA + 0x304, 4),
        1 << 8,
        "41 deactivated, 40 not"
    );
}

#[test]
fn the_virtual_timer_goes_through_a_hardware_lr() {
    let mut g = linux_v3(2);
    let t = INTID_VIRT_TIMER;
    write(&mut g, 1, gicr(1, SGI_FRAME + 0x100), 4, 1 << t);
    assert_eq!(g.raise_hw(1, t), VcpuMask::of(1));
    let mut s = LrState::new(4);
    g.load(1, &mut s);
    let l = lrs(&g, &s);
    assert!(l.len() == 1 && l[0].hw && l[0].pintid == t && l[0].pending && !l[0].eoi);
    guest_acks(&g, &mut s, t);
    let _ = g.save(1, &s);
    assert!(!g.has_pending(1));
    // Its deadline passing while it is away and still active: nothing new.
    assert_eq!(g.raise_hw(1, t), VcpuMask::NONE);
    g.load(1, &mut s);
    let l = lrs(&g, &s);
    assert!(l.len() == 1 && l[0].active && !l[0].pending);
    // Deactivated by the guest (and so the physical one): the timer fires again, loaded.
    guest_deactivates(&g, &mut s, t);
    assert_eq!(g.raise_hw(1, t), VcpuMask::of(1));
    let _ = g.save(1, &s);
    g.load(1, &mut s);
    assert!(lrs(&g, &s)[0].pending);
    // Out-of-range vCPUs and INTIDs that are not PPIs are refused.
    assert_eq!(g.raise_hw(2, t), VcpuMask::NONE);
    assert_eq!(g.raise_hw(0, 3), VcpuMask::NONE);
    assert_eq!(g.raise_hw(0, 40), VcpuMask::NONE);
}

#[test]
fn a_wfi_after_a_sync_sees_the_sgi_the_lrs_hold_pending() {
    // vCPU 0 masks IRQs; the SGI arrives (its kick's exit syncs it into an LR, pending); vCPU
    // 0 executes WFI: the WFI's exit syncs again (save, then load) and asks `has_pending`.
    let mut g = linux_v3(2);
    let mut s = LrState::new(4);
    g.load(0, &mut s);
    assert!(!g.has_pending(0));
    assert_eq!(g.write_sgi1r(1, 2 << 24 | 0b01), VcpuMask::of(0));
    let _ = g.save(0, &s);
    g.load(0, &mut s);
    let _ = g.save(0, &s);
    g.load(0, &mut s);
    assert!(lrs(&g, &s)[0].pending);
    assert!(
        g.has_pending(0),
        "the WFI would wait for an SGI already delivered"
    );
    guest_acks(&g, &mut s, 2);
    guest_deactivates(&g, &mut s, 2);
    let _ = g.save(0, &s);
    g.load(0, &mut s);
    assert!(!g.has_pending(0));
}

#[test]
fn a_second_load_without_save_loses_nothing() {
    let mut g = linux_v3(1);
    g.write_sgi1r(0, 2 << 24 | 1);
    let mut s = LrState::new(4);
    g.load(0, &mut s);
    g.load(0, &mut s);
    assert_eq!(lrs(&g, &s).len(), 1);
    assert!(lrs(&g, &s)[0].pending);
}

#[test]
fn an_active_spi_stays_with_its_vcpu_until_deactivated() {
    let mut g = linux_v3(2);
    write(&mut g, 0, GICD_IPA + 0x108, 4, 1);
    g.raise(0, 64);
    let (mut s0, mut s1) = (LrState::new(4), LrState::new(4));
    g.load(0, &mut s0);
    guest_acks(&g, &mut s0, 64);
    let _ = g.save(0, &s0);
    // Routed to vCPU 1 and raised again while vCPU 0 still handles it.
    write(&mut g, 0, GICD_IPA + 0x6000 + 8 * 64, 8, 1);
    assert_eq!(g.raise(0, 64), VcpuMask::of(0));
    g.load(1, &mut s1);
    assert!(lrs(&g, &s1).is_empty(), "not in two vCPUs at once");
    let _ = g.save(1, &s1);
    g.load(0, &mut s0);
    let l = lrs(&g, &s0);
    assert!(l[0].active && l[0].pending);
    // Deactivated and taken again (pending -> active -> done) on vCPU 0.
    guest_deactivates(&g, &mut s0, 64);
    let kick = g.save(0, &s0);
    assert_eq!(
        kick,
        VcpuMask::of(1),
        "released: its route takes the pending edge"
    );
    g.load(1, &mut s1);
    assert!(lrs(&g, &s1)[0].pending);
}

#[test]
fn group_and_distributor_enables_gate_delivery() {
    let mut g = VGic::new(GicModel::V3, 1);
    write(&mut g, 0, GICD_IPA + 0x104, 4, 1 << 8);
    write(&mut g, 0, GICD_IPA + 0x84, 4, 1 << 8);
    assert_eq!(g.raise(0, 40), VcpuMask::NONE, "distributor off");
    assert!(!g.has_pending(0));
    write(&mut g, 0, GICD_IPA, 4, 1);
    assert!(!g.has_pending(0), "group 1 still off");
    assert_eq!(write(&mut g, 0, GICD_IPA, 4, 2), VcpuMask::of(0));
    assert!(g.has_pending(0));
    // Routed beyond the VM's vCPUs: pending, delivered nowhere.
    write(&mut g, 0, GICD_IPA + 0x6000 + 8 * 40, 8, 5);
    assert!(!g.has_pending(0));
}

#[test]
fn gicv2_sgis_carry_their_sender_one_at_a_time() {
    let mut g = linux_v2(4);
    assert_eq!(
        read(&mut g, 0, GICD_IPA + 0xffe8, 4) & 0xf0,
        0x20,
        "ArchRev 2"
    );
    assert_eq!((read(&mut g, 0, GICD_IPA + 4, 4) >> 5) & 7, 3, "CPUNumber");
    assert_eq!(
        read(&mut g, 0, GICD_IPA + 0x100, 4) & 0xffff,
        0xffff,
        "SGIs enabled"
    );
    // SGI 2 to CPU 1 from CPUs 0 and 3 (a list), then to all but CPU 2 (filter 1).
    assert_eq!(
        write(&mut g, 0, GICD_IPA + 0xf00, 4, 0b10 << 16 | 2),
        VcpuMask::of(1)
    );
    write(&mut g, 3, GICD_IPA + 0xf00, 4, 0b10 << 16 | 2);
    assert_eq!(
        write(&mut g, 2, GICD_IPA + 0xf00, 4, 1 << 24 | 7),
        VcpuMask(0b1011)
    );
    // Filter 2: to itself; filter 3 is reserved.
    assert_eq!(
        write(&mut g, 2, GICD_IPA + 0xf00, 4, 2 << 24 | 7),
        VcpuMask::of(2)
    );
    assert_eq!(
        write(&mut g, 2, GICD_IPA + 0xf00, 4, 3 << 24 | 7),
        VcpuMask::NONE
    );
    // SPENDSGIR of CPU 1 shows the senders of SGI 2 (byte 2 of the first register).
    assert_eq!(read(&mut g, 1, GICD_IPA + 0xf20, 4), 0b1001 << 16);
    assert_eq!(read(&mut g, 1, GICD_IPA + 0xf22, 1), 0b1001);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0xf20, 4), 0, "banked");
    let mut s = LrState::new(4);
    g.load(1, &mut s);
    let l = lrs(&g, &s);
    // One LR for SGI 2 (sender 0, EOI to bring sender 3 in), one for SGI 7 (sender 2).
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(l[0].vintid == 2 && l[0].source == 0 && l[0].eoi && !l[0].group1);
    assert!(l[1].vintid == 7 && l[1].source == 2 && !l[1].eoi);
    assert_eq!(
        read(&mut g, 1, GICD_IPA + 0xf22, 1),
        0b1000,
        "sender 0 is in an LR"
    );
    guest_acks(&g, &mut s, 2);
    guest_deactivates(&g, &mut s, 2);
    let _ = g.save(1, &s);
    g.load(1, &mut s);
    let l = lrs(&g, &s);
    assert!(l.iter().any(|l| l.vintid == 2 && l.source == 3 && !l.eoi));
    // CPENDSGIR clears a sender.
    let _ = g.save(1, &s);
    write(&mut g, 1, GICD_IPA + 0xf10, 4, 0xff << 16);
    write(&mut g, 1, GICD_IPA + 0xf17, 1, 0xff);
    g.load(1, &mut s);
    assert!(lrs(&g, &s).iter().all(|l| l.vintid != 2 && l.vintid != 7));
}

#[test]
fn gicv2_targets_are_banked_for_private_interrupts_and_route_spis() {
    let mut g = linux_v2(2);
    assert_eq!(read(&mut g, 1, GICD_IPA + 0x800, 4), 0x0202_0202);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x81f, 1), 0x01);
    write(&mut g, 0, GICD_IPA + 0x800, 4, 0xffff_ffff);
    assert_eq!(
        read(&mut g, 0, GICD_IPA + 0x800, 4),
        0x0101_0101,
        "read-only"
    );
    // SPI 33 to CPU 1 only (bits for CPUs beyond the VM dropped).
    write(&mut g, 0, GICD_IPA + 0x821, 1, 0xfe);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x821, 1), 0x02);
    write(&mut g, 0, GICD_IPA + 0x104, 4, 1 << 1);
    assert_eq!(g.set_line(33, true), VcpuMask::of(1));
    let mut s = LrState::new(4);
    g.load(1, &mut s);
    let l = lrs(&g, &s);
    assert!(l.len() == 1 && l[0].vintid == 33 && l[0].priority == 0xa0);
    // ISPENDR0 cannot make a GICv2 SGI pending.
    let _ = g.save(1, &s);
    write(&mut g, 0, GICD_IPA + 0x200, 4, 0xffff);
    assert!(!g.has_pending(0));
}

#[test]
fn gicv2_has_no_redistributors_and_gicc_is_not_emulated() {
    let mut g = VGic::new(GicModel::V2, 2);
    let get = MmioAccess {
        size: 4,
        write: None,
    };
    assert!(g.mmio(0, GICR_IPA, get).is_none());
    assert!(g.mmio(0, crate::vdev::layout::GICC_IPA, get).is_none());
    assert!(g.mmio(0, GICD_IPA - 4, get).is_none());
    assert!(
        g.mmio(0, GICD_IPA + crate::vdev::layout::GICD_SIZE, get)
            .is_none()
    );
}

#[test]
fn hostile_accesses_are_read_as_zero_and_ignored() {
    let mut g = linux_v3(2);
    let before = g.clone();
    // Misaligned, wrong widths, and reserved offsets: nothing read, nothing changed.
    for (offset, size) in [
        (0x0, 1u8),
        (0x0, 2),
        (0x0, 8),
        (0x2, 4),
        (0x104, 2),
        (0x104, 8),
        (0x105, 4),
        (0x6000 + 8 * 40 + 2, 4),
        (0x6000 + 8 * 40, 2),
        (0x6000 + 8 * 40 + 4, 8),
        (0x421, 2),
        (0x422, 4),
        (0xf00, 4),
        (0x800, 4),
        (0x10, 4),
        (0xfffc, 4),
        (0xffff, 1),
    ] {
        assert_eq!(
            write(&mut g, 0, GICD_IPA + offset, size, !0),
            VcpuMask::NONE,
            "{offset:#x}/{size}"
        );
    }
    // Reads of the same are zero (0x0/4 aside, which is a real register).
    for (offset, size) in [
        (0x2, 4u8),
        (0x104, 2),
        (0x6000 + 8 * 3, 8),
        (0x8000, 8),
        (0xfffe, 2),
    ] {
        assert_eq!(
            read(&mut g, 0, GICD_IPA + offset, size),
            0,
            "{offset:#x}/{size}"
        );
    }
    // IROUTER of private INTIDs, read-only registers written.
    write(&mut g, 0, GICD_IPA + 0x6000, 8, 7);
    assert_eq!(read(&mut g, 0, GICD_IPA + 0x6000, 8), 0);
    write(&mut g, 0, GICD_IPA + 4, 4, 0);
    write(&mut g, 0, gicr(1, 8), 8, 0);
    write(&mut g, 0, gicr(1, 0xffe8), 4, 0);
    assert_eq!(
        g.mmio(
            0,
            gicr(1, 8),
            MmioAccess {
                size: 8,
                write: None
            }
        )
        .unwrap()
        .0 >> 32,
        1
    );
    assert_eq!(
        format!("{:?}", g),
        format!("{:?}", before),
        "nothing changed"
    );
    // A vCPU the VM does not have.
    assert_eq!(
        g.mmio(
            7,
            GICD_IPA,
            MmioAccess {
                size: 4,
                write: None
            }
        ),
        Some((0, VcpuMask::NONE))
    );
    assert_eq!(g.raise(9, 20), VcpuMask::NONE);
    assert!(!g.has_pending(9));
    let mut s = LrState::new(4);
    g.load(9, &mut s);
    assert_eq!(g.save(9, &s), VcpuMask::NONE);
    // INTIDs beyond the model.
    assert_eq!(g.raise(0, 96), VcpuMask::NONE);
    assert_eq!(g.raise(0, u32::MAX), VcpuMask::NONE);
    assert_eq!(g.set_line(1020, true), VcpuMask::NONE);
    assert_eq!(g.raise(0, 5), VcpuMask::NONE, "SGIs come from guests");
}

#[test]
fn any_access_anywhere_never_panics() {
    // A deterministic scramble over both models' whole windows, every width, and LR states a
    // guest could leave (any bits, any count).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for model in [GicModel::V2, GicModel::V3] {
        let mut g = VGic::new(model, 3);
        let mut s = LrState::new(4);
        for _ in 0..20_000 {
            let r = next();
            let ipa = match r % 3 {
                0 => GICD_IPA + (next() % 0x1_0000),
                1 => GICR_IPA + (next() % (4 * GICR_STRIDE)),
                _ => GICD_IPA + (next() % 0x10) * 0x100 + (next() % 0x100),
            };
            let size = [1u8, 2, 3, 4, 8, 0, 16][(next() % 7) as usize];
            let write = (next() % 2 == 0).then(&mut next);
            let v = (next() % 4) as usize;
            let _ = g.mmio(v, ipa, MmioAccess { size, write });
            match next() % 8 {
                0 => {
                    g.write_sgi1r(v, next());
                }
                1 => {
                    g.raise(v, (next() % 128) as u32);
                }
                2 => {
                    g.set_line((next() % 128) as u32, next() % 2 == 0);
                }
                3 => {
                    g.raise_hw(v, (next() % 40) as u32);
                }
                4 => g.load(v, &mut s),
                5 => {
                    for lr in &mut s.lrs {
                        if next() % 3 == 0 {
                            *lr ^= next();
                        }
                    }
                    s.hcr = next() as u32;
                    s.count = (next() % 40) as usize;
                    let _ = g.save(v, &s);
                    s.count = 4;
                }
                _ => {
                    let _ = g.has_pending(v);
                }
            }
        }
    }
}

#[test]
fn only_reads_of_pending_and_active_state_need_the_list_registers_folded_back() {
    let g = linux_v3(2);
    // The distributor's and each redistributor's IS/ICPENDR and IS/ICACTIVER.
    for ipa in [
        GICD_IPA + 0x200,
        GICD_IPA + 0x284,
        GICD_IPA + 0x37c,
        gicr(0, SGI_FRAME + 0x200),
        gicr(1, SGI_FRAME + 0x380),
    ] {
        assert!(g.read_sees_list_registers(ipa), "{ipa:#x}");
    }
    // What only the hyp changes: the ID registers, enables, priorities, routes, a
    // redistributor's RD frame; and what is not the vGIC's (a vCPU it does not have).
    for ipa in [
        GICD_IPA,
        GICD_IPA + 0x4,
        GICD_IPA + 0x1fc,
        GICD_IPA + 0x400,
        GICD_IPA + 0x6100,
        GICD_IPA + 0xffe8,
        GICD_IPA + 0xf10,
        gicr(0, 0x200),
        gicr(1, 0x14),
        gicr(1, SGI_FRAME + 0x100),
        gicr(2, SGI_FRAME + 0x200),
        0,
        u64::MAX,
    ] {
        assert!(!g.read_sees_list_registers(ipa), "{ipa:#x}");
    }
    // GICv2's SGI pending registers show the LRs' state too.
    let g2 = linux_v2(2);
    assert!(g2.read_sees_list_registers(GICD_IPA + 0xf10));
    assert!(g2.read_sees_list_registers(GICD_IPA + 0xf2c));
    assert!(!g2.read_sees_list_registers(GICD_IPA + 0xf30));
    assert!(!g2.read_sees_list_registers(gicr(0, SGI_FRAME + 0x200)));
}

#[test]
fn the_fixed_registers_read_as_the_vgic_does_and_survive_their_encoding() {
    use super::FixedRegs;
    for (mut g, ipas) in [
        (
            linux_v3(3),
            std::vec![
                GICD_IPA + 4,
                GICD_IPA + 8,
                GICD_IPA + 0xffe8,
                gicr(0, 4),
                gicr(1, 8),
                gicr(2, 8),
                gicr(2, 0xc),
                gicr(2, 0xffe8),
            ],
        ),
        (
            linux_v2(2),
            std::vec![GICD_IPA + 4, GICD_IPA + 8, GICD_IPA + 0xffe8],
        ),
    ] {
        let fixed = FixedRegs::decode(g.fixed().encode()).expect("encoded");
        assert_eq!(fixed, g.fixed());
        for ipa in ipas {
            let size = 4;
            let value = fixed.read(ipa, size).expect("fixed");
            assert_ne!(value, 0, "{ipa:#x}");
            assert_eq!(value, read(&mut g, 0, ipa, size), "{ipa:#x}");
        }
        // Registers that change, or are not there.
        for ipa in [GICD_IPA, GICD_IPA + 0x100, gicr(0, 0x14), gicr(3, 8)] {
            assert_eq!(fixed.read(ipa, 4), None, "{ipa:#x}");
        }
    }
    assert_eq!(FixedRegs::decode(0), None);
    assert_eq!(FixedRegs::decode(1 << 63), None, "no vCPUs");
}
