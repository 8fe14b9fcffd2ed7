//! The guest side: a [`Conduit`] carries register images to the hypervisor, and
//! [`Hypervisor`] offers one typed method per call on top of it.

use crate::{
    BatchResult, BlockInfo, Call, ChannelInfo, Error, EventSource, MemPerms, PsciCall, Regs,
    Version, VmInfo, decode_return,
};

/// How a guest reaches the hypervisor: send x0..x17, get x0..x17 back.
pub trait Conduit {
    /// Makes one call.
    fn call(&mut self, regs: &Regs) -> Regs;
}

/// The real conduit: `HVC #0` with the SMCCC 1.2 register convention (x0..x17 in and out).
#[cfg(target_arch = "aarch64")]
#[derive(Copy, Clone, Debug, Default)]
pub struct Hvc;

#[cfg(target_arch = "aarch64")]
impl Conduit for Hvc {
    fn call(&mut self, regs: &Regs) -> Regs {
        let mut args = [0; 17];
        args.copy_from_slice(&regs[1..]);
        smccc::hvc64(regs[0] as u32, args)
    }
}

/// Typed calls over a [`Conduit`]. Vendor calls return `Result`s decoded with
/// [`decode_return`]; PSCI and SMCCC calls return the raw x0 their specifications define.
#[derive(Debug)]
pub struct Hypervisor<C: Conduit> {
    conduit: C,
}

impl<C: Conduit> Hypervisor<C> {
    /// Wraps a conduit.
    pub fn new(conduit: C) -> Self {
        Hypervisor { conduit }
    }

    /// The conduit, e.g. to send a raw register image.
    pub fn conduit_mut(&mut self) -> &mut C {
        &mut self.conduit
    }

    /// Sends a call; the full result registers.
    pub fn call(&mut self, call: &Call) -> Regs {
        self.conduit.call(&call.to_regs())
    }

    /// Sends a vendor call; its decoded result x1..x3.
    fn vendor(&mut self, call: Call) -> Result<[u64; 3], Error> {
        let r = self.call(&call);
        decode_return([r[0], r[1], r[2], r[3]])
    }

    fn vendor_unit(&mut self, call: Call) -> Result<(), Error> {
        self.vendor(call).map(|_| ())
    }

    fn raw_x0(&mut self, call: Call) -> i32 {
        self.call(&call)[0] as i32
    }

    // Standard calls.

    /// `SMCCC_VERSION`: x0 (`0x10002` for 1.2).
    pub fn smccc_version(&mut self) -> u32 {
        self.call(&Call::SmcccVersion)[0] as u32
    }

    /// `SMCCC_ARCH_FEATURES(function_id)`: x0 (0 implemented, -1 not).
    pub fn smccc_arch_features(&mut self, function_id: u32) -> i32 {
        self.raw_x0(Call::SmcccArchFeatures { function_id })
    }

    /// Vendor hyp Call UID: w0..w3 (compare with [`crate::standard::VENDOR_HYP_UID`]).
    pub fn vendor_uid(&mut self) -> [u32; 4] {
        let r = self.call(&Call::VendorHypCallUid);
        [r[0] as u32, r[1] as u32, r[2] as u32, r[3] as u32]
    }

    /// Vendor hyp Revision: (major, minor) from w0, w1.
    pub fn vendor_revision(&mut self) -> (u32, u32) {
        let r = self.call(&Call::VendorHypRevision);
        (r[0] as u32, r[1] as u32)
    }

    // PSCI.

    /// `PSCI_VERSION`: x0 (`0x10001` for 1.1).
    pub fn psci_version(&mut self) -> u32 {
        self.call(&Call::Psci(PsciCall::Version))[0] as u32
    }

    /// `PSCI_FEATURES(function_id)`: x0.
    pub fn psci_features(&mut self, function_id: u32) -> i32 {
        self.raw_x0(Call::Psci(PsciCall::Features { function_id }))
    }

    /// `CPU_SUSPEND` (SMC64): x0.
    pub fn psci_cpu_suspend(&mut self, power_state: u64, entry: u64, context_id: u64) -> i32 {
        self.raw_x0(Call::Psci(PsciCall::CpuSuspend {
            power_state,
            entry,
            context_id,
        }))
    }

    /// `CPU_OFF`: returns (x0) only if refused.
    pub fn psci_cpu_off(&mut self) -> i32 {
        self.raw_x0(Call::Psci(PsciCall::CpuOff))
    }

    /// `CPU_ON` (SMC64): x0.
    pub fn psci_cpu_on(&mut self, target_mpidr: u64, entry: u64, context_id: u64) -> i32 {
        self.raw_x0(Call::Psci(PsciCall::CpuOn {
            target_mpidr,
            entry,
            context_id,
        }))
    }

    /// `AFFINITY_INFO` (SMC64): x0 (0 ON, 1 OFF, 2 ON_PENDING, or an error).
    pub fn psci_affinity_info(&mut self, target_mpidr: u64, lowest_level: u64) -> i32 {
        self.raw_x0(Call::Psci(PsciCall::AffinityInfo {
            target_mpidr,
            lowest_level,
        }))
    }

    /// `SYSTEM_OFF`: returns (x0) only if refused.
    pub fn psci_system_off(&mut self) -> i32 {
        self.raw_x0(Call::Psci(PsciCall::SystemOff))
    }

    /// `SYSTEM_RESET`: returns (x0) only if refused.
    pub fn psci_system_reset(&mut self) -> i32 {
        self.raw_x0(Call::Psci(PsciCall::SystemReset))
    }

    // abi

    /// `ABI_VERSION` stating [`Version::CURRENT`]: the hypervisor's version.
    pub fn abi_version(&mut self) -> Result<Version, Error> {
        self.abi_version_for(Version::CURRENT)
    }

    /// `ABI_VERSION` stating `guest` (tests use it to try a wrong major).
    pub fn abi_version_for(&mut self, guest: Version) -> Result<Version, Error> {
        let [v, _, _] = self.vendor(Call::AbiVersion { guest })?;
        Version::from_u64(v).ok_or(Error::Unknown)
    }

    /// `ABI_FEATURES`: the live-call bitmap (see [`crate::abi::feature_bit`]).
    pub fn abi_features(&mut self) -> Result<u64, Error> {
        self.vendor(Call::AbiFeatures).map(|[bits, _, _]| bits)
    }

    // vm

    /// `VM_EXIT`: returns only if the hypervisor refused, with why.
    pub fn vm_exit(&mut self, status: u64) -> Error {
        match self.vendor(Call::VmExit { status }) {
            Ok(_) => Error::Unknown,
            Err(e) => e,
        }
    }

    /// `VM_YIELD`.
    pub fn vm_yield(&mut self) -> Result<(), Error> {
        self.vendor_unit(Call::VmYield)
    }

    /// `VM_INFO`.
    pub fn vm_info(&mut self) -> Result<VmInfo, Error> {
        self.vendor(Call::VmInfo).map(VmInfo::from_values)
    }

    // console

    /// `CONSOLE_WRITE`: bytes consumed (may be fewer than `len`).
    pub fn console_write(&mut self, ipa: u64, len: u64) -> Result<u64, Error> {
        self.vendor(Call::ConsoleWrite { ipa, len }).map(|v| v[0])
    }

    /// `CONSOLE_NOTIFY`: bytes the hypervisor took from the output ring.
    pub fn console_notify(&mut self) -> Result<u64, Error> {
        self.vendor(Call::ConsoleNotify).map(|v| v[0])
    }

    /// `CONSOLE_READ`: bytes read.
    pub fn console_read(&mut self, ipa: u64, len: u64) -> Result<u64, Error> {
        self.vendor(Call::ConsoleRead { ipa, len }).map(|v| v[0])
    }

    // mem (live since 1.1)

    /// `MEM_MAP`.
    pub fn mem_map(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<(), Error> {
        self.vendor_unit(Call::MemMap { ipa, pages, perms })
    }

    /// `MEM_UNMAP`.
    pub fn mem_unmap(&mut self, ipa: u64, pages: u64) -> Result<(), Error> {
        self.vendor_unit(Call::MemUnmap { ipa, pages })
    }

    /// `MEM_PROTECT`.
    pub fn mem_protect(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<(), Error> {
        self.vendor_unit(Call::MemProtect { ipa, pages, perms })
    }

    /// `MEM_QUERY`: the page's permissions (unknown bits from a newer hypervisor dropped) and
    /// the VM's quota left in bytes.
    pub fn mem_query(&mut self, ipa: u64) -> Result<(MemPerms, u64), Error> {
        self.vendor(Call::MemQuery { ipa })
            .map(|v| (MemPerms::from_bits_truncate(v[0]), v[1]))
    }

    /// `MEM_BATCH`.
    pub fn mem_batch(&mut self, list_ipa: u64, count: u64) -> Result<BatchResult, Error> {
        self.vendor(Call::MemBatch { list_ipa, count })
            .map(BatchResult::from_values)
    }

    // event (live since 1.2)

    /// `EVENT_BIND`: the event number now delivering `source`.
    pub fn event_bind(&mut self, source: EventSource) -> Result<u32, Error> {
        self.vendor(Call::EventBind { source }).map(|v| v[0] as u32)
    }

    /// `EVENT_MASK`.
    pub fn event_mask(&mut self, event: u32) -> Result<(), Error> {
        self.vendor_unit(Call::EventMask { event })
    }

    /// `EVENT_UNMASK`.
    pub fn event_unmask(&mut self, event: u32) -> Result<(), Error> {
        self.vendor_unit(Call::EventUnmask { event })
    }

    /// `EVENT_ACK`.
    pub fn event_ack(&mut self, event: u32) -> Result<(), Error> {
        self.vendor_unit(Call::EventAck { event })
    }

    /// `EVENT_SEND`.
    pub fn event_send(&mut self, vcpu: u32, event: u32) -> Result<(), Error> {
        self.vendor_unit(Call::EventSend { vcpu, event })
    }

    /// `EVENT_SHARED_ACK` (live since 1.5).
    pub fn event_shared_ack(&mut self) -> Result<(), Error> {
        self.vendor_unit(Call::EventSharedAck)
    }

    /// `EVENT_DEVICE_ACK` (live since 1.6).
    pub fn event_device_ack(&mut self) -> Result<(), Error> {
        self.vendor_unit(Call::EventDeviceAck)
    }

    /// `EVENT_DEVICE_FAULTS` (live since 1.6): (DMAs the SMMU stopped, the last one's IPA).
    pub fn event_device_faults(&mut self) -> Result<(u64, u64), Error> {
        self.vendor(Call::EventDeviceFaults)
            .map(|[count, ipa, _]| (count, ipa))
    }

    // block (live since 1.3)

    /// `BLOCK_INFO`.
    pub fn block_info(&mut self) -> Result<BlockInfo, Error> {
        self.vendor(Call::BlockInfo).map(BlockInfo::from_values)
    }

    /// `BLOCK_SUBMIT`: the descriptors taken.
    pub fn block_submit(&mut self, producer: u32) -> Result<u32, Error> {
        self.vendor(Call::BlockSubmit { producer })
            .map(|[taken, _, _]| taken as u32)
    }

    // channel (live since 1.4)

    /// `CHANNEL_INFO`.
    pub fn channel_info(&mut self, channel: u32) -> Result<ChannelInfo, Error> {
        self.vendor(Call::ChannelInfo { channel })
            .map(ChannelInfo::from_values)
    }

    /// `CHANNEL_NOTIFY`.
    pub fn channel_notify(&mut self, channel: u32) -> Result<(), Error> {
        self.vendor_unit(Call::ChannelNotify { channel })
    }
}
