//! The SMMUv3's in-memory formats (Arm IHI 0070, SMMUv3 architecture): stream table entries,
//! commands, event records, queue indices, and what the ID registers say. Pure values, so
//! they are host-tested; `dev::smmu` writes them to the SMMU's memory and registers.

/// Register offsets (page 0, except the event queue's producer and consumer in page 1).
pub mod reg {
    pub const IDR0: usize = 0x00;
    pub const IDR1: usize = 0x04;
    pub const IDR5: usize = 0x14;
    pub const CR0: usize = 0x20;
    pub const CR0ACK: usize = 0x24;
    pub const CR1: usize = 0x28;
    pub const CR2: usize = 0x2c;
    pub const GBPA: usize = 0x44;
    pub const IRQ_CTRL: usize = 0x50;
    pub const GERROR: usize = 0x60;
    pub const GERRORN: usize = 0x64;
    pub const STRTAB_BASE: usize = 0x80;
    pub const STRTAB_BASE_CFG: usize = 0x88;
    pub const CMDQ_BASE: usize = 0x90;
    pub const CMDQ_PROD: usize = 0x98;
    pub const CMDQ_CONS: usize = 0x9c;
    pub const EVENTQ_BASE: usize = 0xa0;
    pub const EVENTQ_PROD: usize = 0x1_00a8;
    pub const EVENTQ_CONS: usize = 0x1_00ac;
}

/// CR0 (and CR0ACK) enables.
pub mod cr0 {
    pub const SMMUEN: u32 = 1 << 0;
    pub const EVENTQEN: u32 = 1 << 2;
    pub const CMDQEN: u32 = 1 << 3;
}

/// CR1: tables and queues are inner-shareable, write-back cacheable (the hyp's frames are
/// Normal WB memory, and QEMU's SMMU is `dma-coherent`).
pub const CR1_WB_INNER_SHAREABLE: u32 = (3 << 10) | (1 << 8) | (1 << 6) | (3 << 4) | (1 << 2) | 1;
/// CR2: record C_BAD_STREAMID for stream IDs beyond the table (RECINVSID), and private TLB
/// maintenance (PTM): the SMMU ignores the CPUs' broadcast TLBIs; the hyp invalidates it by
/// command, whatever IDR0.BTM says.
pub const CR2_RECINVSID_PTM: u32 = (1 << 1) | (1 << 2);
/// GBPA: ABORT (incoming transactions abort while SMMUEN is 0), and UPDATE (set to write,
/// cleared by the SMMU when done).
pub const GBPA_ABORT: u32 = 1 << 20;
pub const GBPA_UPDATE: u32 = 1 << 31;
/// GERROR.CMDQ_ERR: the command queue stopped on an illegal command.
pub const GERROR_CMDQ_ERR: u32 = 1 << 0;
/// CMDQ_CONS.ERR: why the command queue stopped.
pub const CMDQ_CONS_ERR_SHIFT: u32 = 24;
/// GERROR.EVENTQ_ABT_ERR: an event record could not be written (QEMU's SMMU says so of a full
/// queue, rather than toggling EVENTQ_PROD.OVFLG): events were lost.
pub const GERROR_EVENTQ_ABT_ERR: u32 = 1 << 2;
/// GERROR's error bits: each is active while it differs from GERRORN's; software
/// acknowledges by toggling GERRORN's to match.
const GERROR_ERRORS: [(u32, &str); 8] = [
    (1 << 0, "CMDQ_ERR"),
    (GERROR_EVENTQ_ABT_ERR, "EVENTQ_ABT_ERR"),
    (1 << 3, "PRIQ_ABT_ERR"),
    (1 << 4, "MSI_CMDQ_ABT_ERR"),
    (1 << 5, "MSI_EVENTQ_ABT_ERR"),
    (1 << 6, "MSI_PRIQ_ABT_ERR"),
    (1 << 7, "MSI_GERROR_ABT_ERR"),
    (1 << 8, "SFM_ERR"),
];
/// EVENTQ_PROD.OVFLG and EVENTQ_CONS.OVACKFLG (bit 31): the SMMU toggles OVFLG when it loses
/// events to a full queue; the consumer acknowledges by copying it into OVACKFLG.
pub const EVENTQ_OVERFLOW_FLAG: u32 = 1 << 31;

/// The global errors active in `gerror` against `gerrorn` (a mask of GERROR's error bits).
pub const fn gerror_active(gerror: u32, gerrorn: u32) -> u32 {
    let mut all = 0;
    let mut i = 0;
    while i < GERROR_ERRORS.len() {
        all |= GERROR_ERRORS[i].0;
        i += 1;
    }
    (gerror ^ gerrorn) & all
}

/// The GERRORN value that acknowledges the errors `active` (as `gerror_active` gave them).
pub const fn gerror_acknowledge(gerrorn: u32, active: u32) -> u32 {
    gerrorn ^ active
}

/// The names of the errors in `active`, in bit order.
pub fn gerror_names(active: u32) -> impl Iterator<Item = &'static str> {
    GERROR_ERRORS
        .iter()
        .filter(move |(bit, _)| active & bit != 0)
        .map(|(_, name)| *name)
}

/// CMDQ_CONS.ERR's name (the reason the command at CMDQ_CONS was refused).
pub fn cmdq_error_name(code: u32) -> &'static str {
    match code {
        0 => "CERROR_NONE",
        1 => "CERROR_ILL (an illegal command)",
        2 => "CERROR_ABT (an abort fetching the command)",
        3 => "CERROR_ATC_INV_SYNC",
        _ => "an unknown error",
    }
}

/// The event queue has overflowed since the consumer last acknowledged (producer and consumer
/// register values).
pub const fn eventq_overflowed(prod: u32, cons: u32) -> bool {
    (prod ^ cons) & EVENTQ_OVERFLOW_FLAG != 0
}

/// The EVENTQ_CONS value for consumer `index` that acknowledges the overflow flag of `prod`
/// (a producer register value).
pub const fn eventq_cons(index: QueueIndex, prod: u32) -> u32 {
    index.raw | prod & EVENTQ_OVERFLOW_FLAG
}
/// The base registers' read/write-allocate hint (bit 62).
pub const BASE_ALLOCATE: u64 = 1 << 62;

/// Bytes of one stream table entry, command and event record.
pub const STE_BYTES: usize = 64;
pub const COMMAND_BYTES: usize = 16;
pub const EVENT_BYTES: usize = 32;

/// What IDR0, IDR1 and IDR5 say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub stage2: bool,
    pub stage1: bool,
    /// Two-level stream tables supported (IDR0.ST_LEVEL = 0b01).
    pub two_level_stream_table: bool,
    /// The SMMU can take part in broadcast TLB maintenance (IDR0.BTM).
    pub broadcast_tlb: bool,
    pub vmid16: bool,
    /// Stream ID bits (IDR1.SIDSIZE).
    pub sid_bits: u32,
    /// log2 of the largest command and event queues (IDR1.CMDQS, EVENTQS).
    pub cmdq_max_log2: u32,
    pub eventq_max_log2: u32,
    /// Output address size in bits (IDR5.OAS), and its field value.
    pub oas_bits: u32,
    pub oas_field: u32,
    pub granule_4k: bool,
}

/// The PS/OAS encoding: 0 = 32 bits, 1 = 36, 2 = 40, 3 = 42, 4 = 44, 5 = 48, 6 = 52.
const ADDRESS_SIZES: [u32; 7] = [32, 36, 40, 42, 44, 48, 52];

impl Features {
    pub fn decode(idr0: u32, idr1: u32, idr5: u32) -> Self {
        let oas_field = (idr5 & 7).min(6);
        Self {
            stage2: idr0 & 1 != 0,
            stage1: idr0 & 2 != 0,
            two_level_stream_table: (idr0 >> 27) & 3 == 1,
            broadcast_tlb: idr0 & (1 << 5) != 0,
            vmid16: idr0 & (1 << 18) != 0,
            sid_bits: idr1 & 0x3f,
            cmdq_max_log2: (idr1 >> 21) & 0x1f,
            eventq_max_log2: (idr1 >> 16) & 0x1f,
            oas_bits: ADDRESS_SIZES[oas_field as usize],
            oas_field,
            granule_4k: idr5 & (1 << 4) != 0,
        }
    }
}

/// STE word 0: valid, and the Config field (bits 3:1).
const STE_VALID: u64 = 1;
const STE_CONFIG_SHIFT: u32 = 1;
/// Config: every transaction aborts (no event).
const CONFIG_ABORT: u64 = 0b000;
/// Config: stage-2 translation only.
const CONFIG_S2_TRANSLATE: u64 = 0b110;
/// STE word 1 SHCFG (bits 45:44) = 0b01: the incoming shareability.
const STE1_SHCFG_INCOMING: u64 = 1 << 44;

/// A valid STE that aborts every transaction of its stream.
pub const fn ste_abort() -> [u64; 8] {
    [
        STE_VALID | CONFIG_ABORT << STE_CONFIG_SHIFT,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
}

/// The stage-2 translation regime an STE points at, shaped as the CPUs' VTCR_EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Regime {
    pub vmid: u16,
    /// The root table's physical address (4 KiB aligned).
    pub root: u64,
    /// Input address bits (T0SZ = 64 - this).
    pub ipa_bits: u32,
    /// The level the walk starts at, 0..=2 (4 KiB granule).
    pub root_level: u32,
    /// Output size, as the PS/OAS field encodes it (at most the SMMU's OAS).
    pub ps_field: u32,
}

/// A stage-2 STE (Config 0b110) for `regime`: VMID, T0SZ, SL0, 4 KiB granule, inner-shareable
/// write-back walks, AArch64 tables, stall off and S2R = 1, so that each fault is recorded
/// in the event queue and the transaction terminated with an abort.
pub fn ste_stage2(regime: &Stage2Regime) -> [u64; 8] {
    // SL0 for a 4 KiB granule: 0 = start at level 2, 1 = level 1, 2 = level 0.
    let sl0 = u64::from(2 - regime.root_level.min(2));
    let word2 = u64::from(regime.vmid)
        | u64::from(64 - regime.ipa_bits) << 32
        | sl0 << 38
        | 1 << 40 // S2IR0: write-back, write-allocate
        | 1 << 42 // S2OR0
        | 3 << 44 // S2SH0: inner shareable
        // S2TG (bits 47:46) = 0b00: 4 KiB.
        | u64::from(regime.ps_field) << 48
        | 1 << 51 // S2AA64
        | 1 << 58; // S2R
    [
        STE_VALID | CONFIG_S2_TRANSLATE << STE_CONFIG_SHIFT,
        STE1_SHCFG_INCOMING,
        word2,
        regime.root & 0x000f_ffff_ffff_fff0,
        0,
        0,
        0,
        0,
    ]
}

/// STRTAB_BASE_CFG for a linear table of 2^`log2_entries` STEs.
pub const fn strtab_cfg_linear(log2_entries: u32) -> u32 {
    log2_entries
}

/// A queue base register: the allocate hint, the address, the log2 of its entries.
pub const fn queue_base(pa: u64, log2_entries: u32) -> u64 {
    BASE_ALLOCATE | (pa & 0x000f_ffff_ffff_ffe0) | log2_entries as u64
}

/// The commands the hyp issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Forget every cached configuration (STE, CD).
    CfgiAll,
    /// Forget the cached STE of this stream.
    CfgiSte { sid: u32 },
    /// Forget every non-secure, non-hyp TLB entry.
    TlbiNsnhAll,
    /// Forget every stage-1 and stage-2 TLB entry of this VMID.
    TlbiS12Vmall { vmid: u16 },
    /// Forget the stage-2 entries for this IPA of this VMID (non-leaf: walk caches too).
    TlbiS2Ipa { vmid: u16, ipa: u64 },
    /// Completes once every earlier command has (no interrupt, no MSI: the hyp polls
    /// CMDQ_CONS).
    Sync,
}

impl Command {
    const CFGI_STE: u64 = 0x03;
    const CFGI_ALL: u64 = 0x04;
    const TLBI_S12_VMALL: u64 = 0x28;
    const TLBI_S2_IPA: u64 = 0x2a;
    const TLBI_NSNH_ALL: u64 = 0x30;
    const SYNC: u64 = 0x46;

    /// Its two little-endian words.
    pub fn encode(self) -> [u64; 2] {
        match self {
            // Range = 31: every stream ID.
            Self::CfgiAll => [Self::CFGI_ALL, 31],
            // Leaf = 1: only the STE (no L1 descriptor, linear table).
            Self::CfgiSte { sid } => [Self::CFGI_STE | u64::from(sid) << 32, 1],
            Self::TlbiNsnhAll => [Self::TLBI_NSNH_ALL, 0],
            Self::TlbiS12Vmall { vmid } => [Self::TLBI_S12_VMALL | u64::from(vmid) << 32, 0],
            Self::TlbiS2Ipa { vmid, ipa } => [
                Self::TLBI_S2_IPA | u64::from(vmid) << 32,
                ipa & 0x000f_ffff_ffff_f000,
            ],
            // CS = 0b00 (SIG_NONE).
            Self::Sync => [Self::SYNC, 0],
        }
    }
}

/// A decoded event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The event type (`F_TRANSLATION` 0x10, `F_PERMISSION` 0x13, ...).
    pub kind: u8,
    pub sid: u32,
    /// The input address of the faulting transaction (an IPA: stage 2 only).
    pub address: u64,
    /// The transaction was a read (RnW).
    pub read: bool,
}

impl Event {
    pub fn decode(words: [u64; 4]) -> Self {
        Self {
            kind: words[0] as u8,
            sid: (words[0] >> 32) as u32,
            address: words[2],
            read: words[1] & (1 << 35) != 0,
        }
    }

    /// The architecture's name of the event type.
    pub fn name(&self) -> &'static str {
        match self.kind {
            0x01 => "F_UUT",
            0x02 => "C_BAD_STREAMID",
            0x03 => "F_STE_FETCH",
            0x04 => "C_BAD_STE",
            0x06 => "F_STREAM_DISABLED",
            0x10 => "F_TRANSLATION",
            0x11 => "F_ADDR_SIZE",
            0x12 => "F_ACCESS",
            0x13 => "F_PERMISSION",
            0x20 => "F_TLB_CONFLICT",
            0x21 => "F_CFG_CONFLICT",
            _ => "an event",
        }
    }
}

/// A queue's producer or consumer index: `log2` bits of slot, then the wrap bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueIndex {
    pub raw: u32,
    pub log2: u32,
}

impl QueueIndex {
    pub fn new(raw: u32, log2: u32) -> Self {
        Self {
            raw: raw & ((2 << log2) - 1),
            log2,
        }
    }

    pub fn slot(self) -> usize {
        (self.raw & ((1 << self.log2) - 1)) as usize
    }

    fn wrap(self) -> u32 {
        self.raw >> self.log2 & 1
    }

    pub fn next(self) -> Self {
        Self::new(self.raw + 1, self.log2)
    }

    /// Producer `self` and consumer `cons` of one queue: nothing to read.
    pub fn is_empty_with(self, cons: QueueIndex) -> bool {
        self.raw == cons.raw
    }

    /// Producer `self` and consumer `cons`: no slot free.
    pub fn is_full_with(self, cons: QueueIndex) -> bool {
        self.slot() == cons.slot() && self.wrap() != cons.wrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abort_ste_is_valid_with_config_zero() {
        let ste = ste_abort();
        assert_eq!(ste[0], 1);
        assert!(ste[1..].iter().all(|&w| w == 0));
    }

    #[test]
    fn a_stage2_ste_matches_the_cpus_regime() {
        let ste = ste_stage2(&Stage2Regime {
            vmid: 3,
            root: 0x4123_4000,
            ipa_bits: 39,
            root_level: 1,
            ps_field: 2,
        });
        assert_eq!(ste[0], 0b1101, "V = 1, Config = 0b110");
        assert_eq!(ste[2] & 0xffff, 3, "S2VMID");
        assert_eq!(ste[2] >> 32 & 0x3f, 25, "S2T0SZ");
        assert_eq!(ste[2] >> 38 & 3, 1, "S2SL0: level 1");
        assert_eq!(ste[2] >> 46 & 3, 0, "S2TG: 4 KiB");
        assert_eq!(ste[2] >> 48 & 7, 2, "S2PS: 40 bits");
        assert_eq!(ste[2] >> 51 & 1, 1, "S2AA64");
        assert_eq!(ste[2] >> 58 & 1, 1, "S2R");
        assert_eq!(ste[2] >> 57 & 1, 0, "S2S: no stall");
        assert_eq!(ste[3], 0x4123_4000, "S2TTB");
    }

    #[test]
    fn commands_encode_opcode_and_operands() {
        assert_eq!(Command::CfgiSte { sid: 8 }.encode(), [0x8_0000_0003, 1]);
        assert_eq!(Command::CfgiAll.encode(), [0x04, 31]);
        assert_eq!(Command::TlbiNsnhAll.encode(), [0x30, 0]);
        assert_eq!(
            Command::TlbiS12Vmall { vmid: 5 }.encode(),
            [0x5_0000_0028, 0]
        );
        assert_eq!(
            Command::TlbiS2Ipa {
                vmid: 2,
                ipa: 0x4000_1234
            }
            .encode(),
            [0x2_0000_002a, 0x4000_1000]
        );
        assert_eq!(Command::Sync.encode(), [0x46, 0]);
    }

    #[test]
    fn ids_decode_qemus_smmu() {
        // Stage 1 and 2, BTM, 2-level tables, 16-bit VMIDs; 16-bit stream IDs, 128-entry queues;
        // 44-bit OAS and the 4 KiB granule.
        let f = Features::decode(0x0804_1c3f, 0x00e7_0010, 0x0000_0074);
        assert!(f.stage2 && f.stage1 && f.two_level_stream_table && f.vmid16);
        assert_eq!(f.sid_bits, 16);
        assert_eq!(f.cmdq_max_log2, 7);
        assert_eq!(f.eventq_max_log2, 7);
        assert_eq!((f.oas_bits, f.oas_field), (44, 4));
        assert!(f.granule_4k);
    }

    #[test]
    fn queue_indices_wrap_and_tell_full_from_empty() {
        let log2 = 2;
        let cons = QueueIndex::new(0, log2);
        let mut prod = cons;
        assert!(prod.is_empty_with(cons));
        for _ in 0..4 {
            assert!(!prod.is_full_with(cons));
            prod = prod.next();
        }
        assert!(prod.is_full_with(cons));
        assert_eq!(prod.slot(), 0);
        assert_eq!(prod.raw, 0b100);
        assert_eq!(prod.next().next().next().next().raw, 0, "wraps back");
    }

    #[test]
    fn a_translation_fault_event_names_stream_and_address() {
        let e = Event::decode([0x8_0000_0010, 0, 0x7000_0000, 0x7000_0000]);
        assert_eq!((e.kind, e.sid, e.address), (0x10, 8, 0x7000_0000));
        assert_eq!(e.name(), "F_TRANSLATION");
    }

    /// The registers a consumer of the event queue and of GERROR sees, as the SMMU sets them.
    struct FakeSmmu {
        gerror: u32,
        gerrorn: u32,
        eventq_prod: u32,
        eventq_cons: u32,
    }

    impl FakeSmmu {
        /// The SMMU loses an event to a full queue.
        fn lose_event(&mut self) {
            self.eventq_prod ^= EVENTQ_OVERFLOW_FLAG;
        }

        /// The consumer's pass: the overflow it saw, the errors it acknowledged.
        fn consume(&mut self, log2: u32) -> (bool, u32) {
            let overflowed = eventq_overflowed(self.eventq_prod, self.eventq_cons);
            let mut cons = QueueIndex::new(self.eventq_cons, log2);
            while !QueueIndex::new(self.eventq_prod, log2).is_empty_with(cons) {
                cons = cons.next();
            }
            self.eventq_cons = eventq_cons(cons, self.eventq_prod);
            let active = gerror_active(self.gerror, self.gerrorn);
            self.gerrorn = gerror_acknowledge(self.gerrorn, active);
            (overflowed, active)
        }
    }

    #[test]
    fn an_overflow_is_seen_once_and_acknowledged_each_toggle() {
        let log2 = 2;
        let mut smmu = FakeSmmu {
            gerror: 0,
            gerrorn: 0,
            eventq_prod: 0,
            eventq_cons: 0,
        };
        assert_eq!(smmu.consume(log2), (false, 0));
        // A full queue (4 records, wrap bit set), and events lost.
        smmu.eventq_prod = 0b100;
        smmu.lose_event();
        assert_eq!(smmu.consume(log2), (true, 0));
        assert_eq!(
            smmu.eventq_cons,
            EVENTQ_OVERFLOW_FLAG | 0b100,
            "drained, flag copied"
        );
        assert_eq!(
            smmu.consume(log2),
            (false, 0),
            "acknowledged: not seen again"
        );
        // The flag toggles back on the next overflow: seen again.
        smmu.eventq_prod = smmu.eventq_prod & EVENTQ_OVERFLOW_FLAG | 1;
        smmu.lose_event();
        assert_eq!(smmu.eventq_prod, 1);
        assert_eq!(smmu.consume(log2), (true, 0));
        assert_eq!(smmu.eventq_cons, 1);
        assert_eq!(smmu.consume(log2), (false, 0));
    }

    #[test]
    fn global_errors_are_active_until_gerrorn_matches() {
        let mut smmu = FakeSmmu {
            gerror: 0,
            gerrorn: 0,
            eventq_prod: 0,
            eventq_cons: 0,
        };
        // A command error and an event queue abort; bits GERROR does not define are ignored.
        smmu.gerror ^= GERROR_CMDQ_ERR | 1 << 2 | 1 << 30;
        let (_, active) = smmu.consume(0);
        assert_eq!(active, GERROR_CMDQ_ERR | 1 << 2);
        assert_eq!(
            gerror_names(active).collect::<std::vec::Vec<_>>(),
            ["CMDQ_ERR", "EVENTQ_ABT_ERR"]
        );
        assert_eq!(smmu.consume(0), (false, 0), "acknowledged");
        // The same error again toggles GERROR back: active again.
        smmu.gerror ^= GERROR_CMDQ_ERR;
        assert_eq!(smmu.consume(0), (false, GERROR_CMDQ_ERR));
        assert_eq!(smmu.consume(0), (false, 0));
        assert_eq!(cmdq_error_name(1), "CERROR_ILL (an illegal command)");
    }
}
