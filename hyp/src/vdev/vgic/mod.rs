//! The virtual GIC of a Linux VM: an emulated distributor (and, on GICv3, redistributors) at
//! the addresses of `vdev::layout`, and the bookkeeping that puts its interrupts into the list
//! registers of the CPU's virtual CPU interface, which the guest uses directly (GICv3: the ICV_*
//! system registers, reached because HCR_EL2.IMO/FMO are set; GICv2: the board's GICV frames,
//! mapped where the guest's GICC is). Pure logic, tested on the host; `arch::aarch64::vgic`
//! moves `LrState` in and out of the CPU, `hw` (target only) ties it to the physical GIC.
//!
//! # The model
//! One `VGic` per Linux VM, kept under the VM's lock. It models INTIDs 0..`INTIDS`: per vCPU the
//! SGIs and PPIs (banked), shared the `SPIS` SPIs (the UART's is `layout::INTID_UART`). No LPIs,
//! no ITS. The distributor is GICv3 with a single security state (GICD_CTLR.DS = 1, ARE = 1),
//! as KVM shows it, or GICv2 without security extensions: group 0 and group 1 are both the
//! guest's. Every offset, width and value a guest gives is checked: what is not a register is
//! read as zero and ignores writes, and a guest can only name its own vCPUs and the SPIs
//! modelled.
//!
//! Between `load` and `save` the list registers own what they hold: an edge interrupt's pending
//! state and every active state. An interrupt raised meanwhile is latched in the model and
//! reaches the LRs at the next `load`; this is why every function that changes what a vCPU
//! should see returns a `VcpuMask`: the caller kicks those vCPUs (`dev::gic::kick`), and a kicked
//! (or the current) vCPU that stays on its CPU calls `hw::sync` before it re-enters.
//!
//! # What the Linux VM calls (helper linuxvm wires these)
//! - At build: `VGic::new(model, vcpus)` (`hw::model()` says which model the board has) and,
//!   per vCPU, `LrState::new(hw::list_registers())`, kept with the vCPU.
//! - Guest entry and exit (vm/sched.rs load/unload, target): `hw::switch_in(&mut vgic, v,
//!   &mut lr_state)` before the vCPU's EL1 state (CNTV_CTL) is restored (so its timer's line is
//!   not seen before the in-flight state is back), `hw::switch_out(...)` after the vCPU's timer
//!   is stopped (`cpu::set_cntv_ctl(0)`), kicking the mask it returns. A PV vCPU calls neither:
//!   the interface stays off (ICH_HCR_EL2.En = 0, `dev::gic` sets it so on every CPU).
//! - A vCPU that stays loaded across an exit: if a returned mask named it, or the exit was the
//!   maintenance interrupt, `hw::sync(&mut vgic, v, &mut lr_state)` before re-entering.
//! - Stage-2 data abort in `[GICD_IPA, +GICD_SIZE)` or (GICv3) `[GICR_IPA, +vcpus *
//!   GICR_STRIDE)`: `vgic.mmio(v, ipa, MmioAccess { size, write })`: `None` if not the vGIC's;
//!   else the value for a read's register, and vCPUs to kick.
//! - A trapped MSR (`esr::SysRegAccess`, not a read): `vgic.write_sgi_register(v, access.reg,
//!   value)`: `Some(kick)` if it was ICC_SGI1R_EL1 (or ICC_ASGI1R_EL1, ICC_SGI0R_EL1: with one
//!   security state they send the same SGIs), then skip the instruction and kick the mask.
//!   A read of them is UNDEFINED (write-only registers).
//! - Physical interrupts on a CPU running a Linux vCPU (vm/exit.rs take_interrupts): the
//!   virtual timer (INTID 27): `vgic.raise_hw(v, layout::INTID_VIRT_TIMER)` and
//!   `dev::gic::end_forwarded(acked)` (not `end`: the guest's deactivation through the
//!   hardware LR deactivates it), no CNTV_CTL masking; the maintenance interrupt
//!   (`hw::is_maintenance(intid)`, INTID 25): `hw::sync`, then `dev::gic::end`. On a CPU
//!   running a PV vCPU both keep today's handling (the interface is off: no maintenance).
//! - GICv2 stage 2: `dev::gic::gicv_base()` (8 KiB, Device memory) at `layout::GICC_IPA`.
//! - A Linux vCPU's deadline passed while it was not loaded (poll_timers): `raise_hw(v, 27)`.
//! - The emulated UART's interrupt line: `set_line(layout::INTID_UART, high)`.
//! - A WFI: the vCPU waits unless `has_pending(v)` (after `hw::sync` or `switch_out`: an
//!   interrupt the guest has in its LRs counts once saved, or as pending in the LRs `sync`
//!   loaded again).

#![forbid(unsafe_code)]
#![allow(dead_code, reason = "the Linux VM (helper linuxvm) is its caller")]

#[cfg(target_os = "none")]
pub mod hw;
pub mod lr;
mod regs;

pub use regs::FixedRegs;

use alloc::vec::Vec;
use lr::{HCR_EN, HCR_LRENPIE, HCR_UIE, Lr, LrState, MAX_LRS};

/// The SPIs modelled: INTIDs 32..32 + SPIS (GICD_TYPER.ITLinesNumber 2).
pub const SPIS: usize = 64;
/// The first SPI.
pub const FIRST_SPI: u32 = 32;
/// INTIDs modelled: SGIs, PPIs and the SPIs.
pub const INTIDS: u32 = FIRST_SPI + SPIS as u32;
/// Most vCPUs a vGIC serves (GICv2's limit, and `manifest::MAX_VCPUS`).
pub const MAX_VCPUS: usize = 8;
const SGIS: u32 = 16;
/// The priority bits the distributor keeps (the top 5, as the virtual CPU interfaces have).
const PRIORITY_MASK: u8 = 0xf8;

/// Which GIC the guest sees (the board's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicModel {
    V2,
    V3,
}

/// A set of vCPUs (bit n: vCPU n) that got something new to take: the caller kicks them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuMask(pub u8);

impl VcpuMask {
    pub const NONE: Self = Self(0);

    /// Only vCPU `v` (none if `v` is not a vCPU a vGIC can have).
    pub fn of(v: usize) -> Self {
        Self(if v < MAX_VCPUS { 1 << v } else { 0 })
    }

    pub fn contains(self, v: usize) -> bool {
        v < MAX_VCPUS && self.0 & (1 << v) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The vCPUs in it, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_VCPUS).filter(move |&v| self.contains(v))
    }
}

impl core::ops::BitOr for VcpuMask {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl core::ops::BitOrAssign for VcpuMask {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

/// A trapped access to the vGIC's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// Bytes: 1, 2, 4 or 8 (any other is read as zero and ignored).
    pub size: u8,
    /// The value of a store (its low `size` bytes count), `None` for a load.
    pub write: Option<u64>,
}

/// What one list register holds, as the model loaded it.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    intid: u32,
    /// GICv2 SGIs: the sender.
    source: u8,
}

/// A vCPU's banked interrupts (SGIs 0..15, PPIs 16..31, bit n: INTID n) and its LRs' contents.
#[derive(Clone, Debug)]
struct Private {
    enabled: u32,
    /// Latched pending state (GICv2 SGIs use `sgi_sources` instead).
    pending: u32,
    active: u32,
    group1: u32,
    /// ICFGR: edge-triggered (SGIs always).
    edge: u32,
    /// Hardware-mapped (`raise_hw`): delivered through an LR with HW = 1, pINTID = INTID.
    hw: u32,
    priority: [u8; 32],
    /// GICv2: per SGI, the vCPUs it is pending from (bit n: vCPU n).
    sgi_sources: [u8; SGIS as usize],
    /// GICv2: per active SGI, the vCPU it came from.
    sgi_active_source: [u8; SGIS as usize],
    /// GICR_WAKER.ProcessorSleep.
    asleep: bool,
    /// What `load` put in the LRs (`slots[..loaded]`), and the values, until `save`.
    slots: [Slot; MAX_LRS],
    loaded: usize,
    last: [u64; MAX_LRS],
    last_count: usize,
}

impl Private {
    fn new(model: GicModel) -> Self {
        Self {
            // GICv2's SGIs are always enabled (GICD_ISENABLER0[15:0] read as one, as the
            // GIC-400's).
            enabled: if model == GicModel::V2 { 0xffff } else { 0 },
            pending: 0,
            active: 0,
            group1: 0,
            edge: 0xffff,
            hw: 0,
            priority: [0; 32],
            sgi_sources: [0; SGIS as usize],
            sgi_active_source: [0; SGIS as usize],
            asleep: true,
            slots: [Slot::default(); MAX_LRS],
            loaded: 0,
            last: [0; MAX_LRS],
            last_count: 0,
        }
    }
}

/// The shared interrupts (bit n: INTID 32 + n).
#[derive(Clone, Debug)]
struct Spis {
    enabled: u64,
    /// Latched pending state: an edge, or a GICD_ISPENDR write.
    pending: u64,
    /// A level-sensitive interrupt's input (`set_line`).
    line: u64,
    active: u64,
    group1: u64,
    edge: u64,
    priority: [u8; SPIS],
    /// GICv3: GICD_IROUTER, valid bits only.
    irouter: [u64; SPIS],
    /// GICv2: GICD_ITARGETSR, valid vCPUs only.
    targets: [u8; SPIS],
    /// The vCPU (+ 1; 0: none) whose LRs hold it, or that holds it active: it goes nowhere
    /// else until that vCPU has deactivated it.
    owner: [u8; SPIS],
}

/// A Linux VM's virtual GIC.
#[derive(Clone, Debug)]
pub struct VGic {
    model: GicModel,
    vcpus: Vec<Private>,
    /// GICD_CTLR's group enables (bit 0: group 0, bit 1: group 1).
    ctlr: u32,
    spi: Spis,
}

/// GICD_CTLR: EnableGrp0, EnableGrp1 (v2 without security, v3 with DS = 1).
const CTLR_GRP0: u32 = 1 << 0;
const CTLR_GRP1: u32 = 1 << 1;

impl VGic {
    /// A vGIC of `model` for `vcpus` vCPUs (clamped to 1..=MAX_VCPUS), at its reset state.
    pub fn new(model: GicModel, vcpus: usize) -> Self {
        Self {
            model,
            vcpus: (0..vcpus.clamp(1, MAX_VCPUS))
                .map(|_| Private::new(model))
                .collect(),
            ctlr: 0,
            spi: Spis {
                enabled: 0,
                pending: 0,
                line: 0,
                active: 0,
                group1: 0,
                edge: 0,
                priority: [0; SPIS],
                irouter: [0; SPIS],
                targets: [0; SPIS],
                owner: [0; SPIS],
            },
        }
    }

    pub fn model(&self) -> GicModel {
        self.model
    }

    /// How many vCPUs it serves.
    pub fn vcpus(&self) -> usize {
        self.vcpus.len()
    }

    fn all_vcpus(&self) -> u8 {
        ((1u16 << self.vcpus.len()) - 1) as u8
    }

    /// The guest wrote ICC_SGI1R_EL1 (GICv3): SGI INTID to the vCPUs TargetList names in its
    /// affinity (Aff1..3 must be 0, RS selects 16 at a time), or with IRM = 1 to all but itself.
    pub fn write_sgi1r(&mut self, vcpu: usize, value: u64) -> VcpuMask {
        if vcpu >= self.vcpus.len() {
            return VcpuMask::NONE;
        }
        let intid = ((value >> 24) & 0xf) as u32;
        let targets = if value & (1 << 40) != 0 {
            self.all_vcpus() & !(1 << vcpu)
        } else {
            let aff123 = (value >> 16) & 0xff | (value >> 32) & 0xff_00ff;
            let rs = (value >> 44) & 0xf;
            if aff123 != 0 || rs != 0 {
                // vCPUs' affinities are 0.0.0.index, index < 16.
                0
            } else {
                (value & 0xffff) as u8 & self.all_vcpus()
            }
        };
        self.send_sgi(vcpu, intid, targets)
    }

    /// A trapped MSR of the guest (`esr::SysRegAccess`) to one of GICv3's SGI registers:
    /// ICC_SGI1R_EL1, and ICC_ASGI1R_EL1 and ICC_SGI0R_EL1, which with a single security state
    /// send the same SGIs (as KVM does). `None` if `reg` is none of them (or the model is GICv2,
    /// where they do not exist).
    pub fn write_sgi_register(
        &mut self,
        vcpu: usize,
        reg: (u8, u8, u8, u8, u8),
        value: u64,
    ) -> Option<VcpuMask> {
        use crate::arch::aarch64::esr::{ICC_ASGI1R_EL1, ICC_SGI0R_EL1, ICC_SGI1R_EL1};
        let sgi_register = reg == ICC_SGI1R_EL1 || reg == ICC_ASGI1R_EL1 || reg == ICC_SGI0R_EL1;
        (sgi_register && self.model == GicModel::V3).then(|| self.write_sgi1r(vcpu, value))
    }

    /// SGI `intid` from `source` to each vCPU in `targets` (valid ones).
    fn send_sgi(&mut self, source: usize, intid: u32, targets: u8) -> VcpuMask {
        let mut kick = VcpuMask::NONE;
        let model = self.model;
        for t in VcpuMask(targets & self.all_vcpus()).iter() {
            let p = &mut self.vcpus[t];
            match model {
                GicModel::V3 => p.pending |= 1 << intid,
                GicModel::V2 => p.sgi_sources[intid as usize] |= 1 << source,
            }
            kick |= self.kick_if_deliverable(t, intid);
        }
        kick
    }

    /// A PPI (16..31) of `vcpu`, or an SPI (routed by GICD_IROUTER / ITARGETSR), made pending
    /// as an edge. Anything else is ignored.
    pub fn raise(&mut self, vcpu: usize, intid: u32) -> VcpuMask {
        match intid {
            SGIS..FIRST_SPI if vcpu < self.vcpus.len() => {
                self.vcpus[vcpu].pending |= 1 << intid;
                self.kick_if_deliverable(vcpu, intid)
            }
            FIRST_SPI..INTIDS => {
                self.spi.pending |= 1 << (intid - FIRST_SPI);
                self.kick_if_deliverable(0, intid)
            }
            _ => VcpuMask::NONE,
        }
    }

    /// A level-sensitive SPI's input (the UART's) goes high or low.
    pub fn set_line(&mut self, intid: u32, high: bool) -> VcpuMask {
        if !(FIRST_SPI..INTIDS).contains(&intid) {
            return VcpuMask::NONE;
        }
        let bit = 1u64 << (intid - FIRST_SPI);
        if high {
            self.spi.line |= bit;
            self.kick_if_deliverable(0, intid)
        } else {
            self.spi.line &= !bit;
            VcpuMask::NONE
        }
    }

    /// A hardware-mapped PPI of `vcpu` (its virtual timer, INTID 27) fired, or its deadline
    /// passed while it was not loaded: pending, delivered through a hardware LR (pINTID =
    /// `intid`) so the guest's deactivation deactivates the physical interrupt. While it is
    /// active in a vCPU not loaded nothing changes (its deactivation lets the physical one
    /// fire again if the timer still asserts it).
    pub fn raise_hw(&mut self, vcpu: usize, intid: u32) -> VcpuMask {
        if vcpu >= self.vcpus.len() || !(SGIS..FIRST_SPI).contains(&intid) {
            return VcpuMask::NONE;
        }
        let bit = 1 << intid;
        let p = &mut self.vcpus[vcpu];
        p.hw |= bit;
        // Loaded, the physical interrupt fired, so the guest has deactivated the last one
        // (while one is in flight the physical one stays active: `hw::switch_in`).
        if p.loaded == 0 && p.active & bit != 0 {
            return VcpuMask::NONE;
        }
        p.pending |= bit;
        self.kick_if_deliverable(vcpu, intid)
    }

    /// The hardware-mapped PPIs of `vcpu` (bit n: INTID n; its virtual timer's, once it fired).
    pub fn hw_ppis(&self, vcpu: usize) -> u32 {
        self.vcpus.get(vcpu).map_or(0, |p| p.hw)
    }

    /// Whether `vcpu` has an interrupt it would take: pending, enabled, its group enabled (what
    /// a WFI waits for). Interrupts in its LRs count once saved (`hw::switch_out`) or as the
    /// last `load` put them there (`hw::sync` saves and loads again: an interrupt it moved
    /// back into an LR pending is no longer pending in the model, yet the guest has not taken
    /// it; a WFI that missed it would wait for an interrupt already delivered). Between a
    /// `load` and the next `save` the guest may have taken one meanwhile: then a needless kick
    /// at worst.
    pub fn has_pending(&self, vcpu: usize) -> bool {
        if vcpu >= self.vcpus.len() {
            return false;
        }
        let p = &self.vcpus[vcpu];
        if self.private_pending(vcpu) & p.enabled & self.group_enabled(u64::from(p.group1)) as u32
            != 0
        {
            return true;
        }
        let model = self.model;
        if p.last[..p.loaded]
            .iter()
            .any(|&raw| Lr::decode(raw, model).pending)
        {
            return true;
        }
        let spis = self.spi_pending() & self.spi.enabled & self.group_enabled(self.spi.group1);
        bits64(spis).any(|i| self.spi_target(i) == Some(vcpu))
    }

    /// The list registers for `vcpu` before it runs: its active interrupts, then its pending
    /// ones, highest priority first; underflow maintenance (HCR_UIE) when more wait than fit.
    /// `state.count` must be set; the guest's part of `state` is untouched. A `load` without
    /// `save` since the last one first takes the last load back as if the guest did nothing.
    pub fn load(&mut self, vcpu: usize, state: &mut LrState) {
        if vcpu >= self.vcpus.len() {
            return;
        }
        if self.vcpus[vcpu].loaded > 0 {
            let mut previous = state.clone();
            let p = &self.vcpus[vcpu];
            previous.lrs = p.last;
            previous.count = p.last_count;
            previous.hcr = 0;
            let _ = self.save(vcpu, &previous);
        }
        let count = state.used().len();
        // (key, intid): active first, then by priority, then by INTID.
        let mut best: [(u16, u32); MAX_LRS] = [(u16::MAX, 0); MAX_LRS];
        let mut found = 0usize;
        let mut waiting = 0usize;
        let mut active_waiting = false;
        let mut consider = |key: u16, intid: u32, active: bool| {
            waiting += 1;
            let mut at = found.min(count);
            while at > 0 && best[at - 1] > (key, intid) {
                at -= 1;
            }
            if at < count {
                if found == count && best[count - 1].0 < ACTIVE_KEYS {
                    // An active interrupt falls out of the LRs.
                    active_waiting = true;
                }
                best.copy_within(at..count - 1, at + 1);
                best[at] = (key, intid);
                found = (found + 1).min(count);
            } else if active {
                active_waiting = true;
            }
        };
        let p = &self.vcpus[vcpu];
        let private = (self.private_pending(vcpu)
            & p.enabled
            & self.group_enabled(u64::from(p.group1)) as u32)
            | p.active;
        for intid in bits32(private) {
            let active = p.active & (1 << intid) != 0;
            consider(key(active, p.priority[intid as usize]), intid, active);
        }
        let spis = (self.spi_pending() & self.spi.enabled & self.group_enabled(self.spi.group1))
            | self.spi.active;
        for i in bits64(spis) {
            if self.spi_target(i) == Some(vcpu) {
                let active = self.spi.active & (1 << i) != 0;
                consider(
                    key(active, self.spi.priority[i]),
                    FIRST_SPI + i as u32,
                    active,
                );
            }
        }
        // An active interrupt that found no LR displaces nothing: a pending one would be
        // chosen over it only if it were active too, so `best` has only active ones then.
        let mut hcr = HCR_EN;
        if waiting > found {
            hcr |= HCR_UIE;
        }
        if active_waiting {
            hcr |= HCR_LRENPIE;
        }
        for (n, &(_, intid)) in best[..found].iter().enumerate() {
            let (lr, source) = self.take_into_lr(vcpu, intid);
            state.lrs[n] = lr.encode(self.model);
            self.vcpus[vcpu].slots[n] = Slot { intid, source };
        }
        for lr in &mut state.lrs[found..] {
            *lr = 0;
        }
        state.hcr = hcr;
        let p = &mut self.vcpus[vcpu];
        p.loaded = found;
        p.last = state.lrs;
        p.last_count = found;
    }

    /// Builds the LR of `intid` for `vcpu` and hands the state it carries to the LR.
    fn take_into_lr(&mut self, vcpu: usize, intid: u32) -> (Lr, u8) {
        let model = self.model;
        if intid < FIRST_SPI {
            let p = &mut self.vcpus[vcpu];
            let bit = 1 << intid;
            let active = p.active & bit != 0;
            let mut lr = Lr {
                vintid: intid,
                priority: p.priority[intid as usize],
                group1: p.group1 & bit != 0,
                active,
                ..Lr::default()
            };
            if model == GicModel::V2 && intid < SGIS {
                let sources = p.sgi_sources[intid as usize];
                let source = if active {
                    p.sgi_active_source[intid as usize]
                } else {
                    sources.trailing_zeros() as u8
                };
                lr.source = source;
                lr.pending = sources & (1 << source) != 0;
                p.sgi_sources[intid as usize] &= !(1 << source);
                // More senders wait: the guest's deactivation brings the next one in.
                lr.eoi = p.sgi_sources[intid as usize] != 0;
                return (lr, source);
            }
            lr.pending = p.pending & bit != 0;
            if p.hw & bit != 0 {
                lr.hw = true;
                lr.pintid = intid;
                if lr.active {
                    // The architecture forbids pending and active: the pending edge waits.
                    return (lr, 0);
                }
            }
            p.pending &= !bit;
            return (lr, 0);
        }
        let i = (intid - FIRST_SPI) as usize;
        let bit = 1u64 << i;
        let s = &mut self.spi;
        let edge = s.edge & bit != 0;
        let lr = Lr {
            vintid: intid,
            priority: s.priority[i],
            group1: s.group1 & bit != 0,
            active: s.active & bit != 0,
            pending: (s.pending | if edge { 0 } else { s.line }) & bit != 0,
            // A level interrupt still high after the guest deactivates it is pending again.
            eoi: !edge,
            ..Lr::default()
        };
        if edge {
            s.pending &= !bit;
        }
        s.owner[i] = vcpu as u8 + 1;
        (lr, 0)
    }

    /// Folds back what the guest did to its LRs (acknowledged, EOId, deactivated) after
    /// `vcpu` left the CPU or before its LRs are rebuilt. Returns the other vCPUs that may take
    /// an SPI this vCPU gave up (a kick; what is left for `vcpu` itself `has_pending` says).
    pub fn save(&mut self, vcpu: usize, state: &LrState) -> VcpuMask {
        if vcpu >= self.vcpus.len() {
            return VcpuMask::NONE;
        }
        let model = self.model;
        let loaded = self.vcpus[vcpu].loaded.min(state.used().len());
        let mut kick = VcpuMask::NONE;
        for n in 0..loaded {
            let slot = self.vcpus[vcpu].slots[n];
            let lr = Lr::decode(state.lrs[n], model);
            kick |= self.fold(vcpu, slot, lr.pending, lr.active);
        }
        for n in 0..state.eoi_count() {
            let _ = n;
            self.deactivate_outside_lrs(vcpu, loaded);
        }
        self.vcpus[vcpu].loaded = 0;
        VcpuMask(kick.0 & !VcpuMask::of(vcpu).0)
    }

    /// One LR's state back into the model.
    fn fold(&mut self, vcpu: usize, slot: Slot, pending: bool, active: bool) -> VcpuMask {
        let intid = slot.intid;
        if intid < FIRST_SPI {
            let p = &mut self.vcpus[vcpu];
            let bit = 1 << intid;
            if self.model == GicModel::V2 && intid < SGIS {
                if pending {
                    p.sgi_sources[intid as usize] |= 1 << slot.source;
                }
                p.sgi_active_source[intid as usize] = slot.source;
            } else if pending {
                p.pending |= bit;
            }
            if active {
                p.active |= bit;
            } else {
                p.active &= !bit;
            }
            return VcpuMask::NONE;
        }
        let i = (intid - FIRST_SPI) as usize;
        let bit = 1u64 << i;
        let s = &mut self.spi;
        if s.edge & bit != 0 {
            if pending {
                s.pending |= bit;
            }
        } else if !pending {
            // A level interrupt taken: a GICD_ISPENDR latch is consumed.
            s.pending &= !bit;
        }
        if active {
            s.active |= bit;
        } else {
            s.active &= !bit;
            s.owner[i] = 0;
            // Released: wherever it is routed may take it now.
            return self.kick_if_deliverable(vcpu, intid);
        }
        VcpuMask::NONE
    }

    /// An EOI of an interrupt in no LR (EOIcount): the highest-priority active one of `vcpu`
    /// not among `slots[..loaded]` is deactivated.
    fn deactivate_outside_lrs(&mut self, vcpu: usize, loaded: usize) {
        let p = &self.vcpus[vcpu];
        let in_lrs = |intid: u32| p.slots[..loaded].iter().any(|s| s.intid == intid);
        let mut best: Option<(u8, u32)> = None;
        for intid in bits32(p.active) {
            let prio = p.priority[intid as usize];
            if !in_lrs(intid) && best.is_none_or(|b| (prio, intid) < b) {
                best = Some((prio, intid));
            }
        }
        for i in bits64(self.spi.active) {
            let intid = FIRST_SPI + i as u32;
            let prio = self.spi.priority[i];
            if self.spi_target(i) == Some(vcpu)
                && !in_lrs(intid)
                && best.is_none_or(|b| (prio, intid) < b)
            {
                best = Some((prio, intid));
            }
        }
        match best {
            Some((_, intid)) if intid < FIRST_SPI => self.vcpus[vcpu].active &= !(1 << intid),
            Some((_, intid)) => {
                let i = (intid - FIRST_SPI) as usize;
                self.spi.active &= !(1 << i);
                self.spi.owner[i] = 0;
            }
            None => {}
        }
    }

    /// Private interrupts of `vcpu` pending (latched, or a GICv2 SGI from some sender).
    fn private_pending(&self, vcpu: usize) -> u32 {
        let p = &self.vcpus[vcpu];
        let mut pending = p.pending;
        if self.model == GicModel::V2 {
            pending &= !0xffff;
            for (sgi, &sources) in p.sgi_sources.iter().enumerate() {
                if sources != 0 {
                    pending |= 1 << sgi;
                }
            }
        }
        pending
    }

    /// SPIs pending: latched, or a level-sensitive input high.
    fn spi_pending(&self) -> u64 {
        self.spi.pending | (self.spi.line & !self.spi.edge)
    }

    /// The interrupts (a bit each, `group1` their group bits) whose group is enabled.
    fn group_enabled(&self, group1: u64) -> u64 {
        let g1 = if self.ctlr & CTLR_GRP1 != 0 {
            group1
        } else {
            0
        };
        let g0 = if self.ctlr & CTLR_GRP0 != 0 {
            !group1
        } else {
            0
        };
        g1 | g0
    }

    /// The vCPU SPI `i` (INTID 32 + i) goes to: the one holding it, else its route; `None` if
    /// routed to no vCPU of this VM.
    fn spi_target(&self, i: usize) -> Option<usize> {
        if self.spi.owner[i] != 0 {
            return Some(usize::from(self.spi.owner[i]) - 1);
        }
        let target = match self.model {
            GicModel::V3 => {
                let route = self.spi.irouter[i];
                if route & regs::IROUTER_IRM != 0 {
                    0
                } else if route & !0xff == 0 {
                    route as usize
                } else {
                    return None;
                }
            }
            GicModel::V2 => {
                let t = self.spi.targets[i];
                if t == 0 {
                    return None;
                }
                t.trailing_zeros() as usize
            }
        };
        (target < self.vcpus.len()).then_some(target)
    }

    /// The vCPU to kick if `intid` (of `vcpu` if private) is now deliverable.
    fn kick_if_deliverable(&self, vcpu: usize, intid: u32) -> VcpuMask {
        if intid < FIRST_SPI {
            if vcpu >= self.vcpus.len() {
                return VcpuMask::NONE;
            }
            let p = &self.vcpus[vcpu];
            let bit = 1 << intid;
            let ready = self.private_pending(vcpu)
                & p.enabled
                & self.group_enabled(u64::from(p.group1)) as u32;
            return if ready & bit != 0 {
                VcpuMask::of(vcpu)
            } else {
                VcpuMask::NONE
            };
        }
        let i = (intid - FIRST_SPI) as usize;
        if i >= SPIS {
            return VcpuMask::NONE;
        }
        let bit = 1u64 << i;
        let ready = self.spi_pending() & self.spi.enabled & self.group_enabled(self.spi.group1);
        match self.spi_target(i) {
            Some(t) if ready & bit != 0 => VcpuMask::of(t),
            _ => VcpuMask::NONE,
        }
    }

    /// Every vCPU with something deliverable (after a change of the distributor's enables).
    fn kick_all_pending(&self) -> VcpuMask {
        let mut kick = VcpuMask::NONE;
        for v in 0..self.vcpus.len() {
            if self.has_pending(v) {
                kick |= VcpuMask::of(v);
            }
        }
        kick
    }
}

/// Keys below this are active interrupts'.
const ACTIVE_KEYS: u16 = 0x100;

/// The LR ordering key: active before pending, then lower priority value first.
fn key(active: bool, priority: u8) -> u16 {
    (u16::from(!active) << 8) | u16::from(priority)
}

/// The set bits of `bits`, lowest first.
fn bits32(mut bits: u32) -> impl Iterator<Item = u32> {
    core::iter::from_fn(move || {
        (bits != 0).then(|| {
            let b = bits.trailing_zeros();
            bits &= bits - 1;
            b
        })
    })
}

fn bits64(mut bits: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        (bits != 0).then(|| {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            b
        })
    })
}

#[cfg(test)]
mod tests;
