//! Every v1 call as a typed value: decode from / encode to the register image.

use crate::{
    Error, MemPerms, Regs, Version,
    abi::*,
    block::*,
    catalog::CallInfo,
    channel::*,
    console::*,
    event::{self, *},
    mem::*,
    psci::PsciCall,
    standard::*,
    vm::*,
};

/// One call with its arguments. Each variant's docs name the function ID constant, which
/// documents arguments, results and errors. Everything here is since 1.0.
///
/// Live since 1.0: the standard calls, PSCI, `AbiVersion`, `AbiFeatures`, `VmExit`, `VmYield`,
/// `VmInfo`, `ConsoleWrite`. The rest became live in a later minor, as each variant says (and
/// [`crate::catalog`]): decodable by every 1.x, but a hypervisor older than that minor answers
/// `NOT_SUPPORTED`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// [`SMCCC_VERSION`]. Live.
    SmcccVersion,
    /// [`SMCCC_ARCH_FEATURES`]. Live.
    SmcccArchFeatures {
        /// The Arm Architecture Service function asked about (w1).
        function_id: u32,
    },
    /// [`VENDOR_HYP_CALL_UID`]. Live.
    VendorHypCallUid,
    /// [`VENDOR_HYP_REVISION`]. Live.
    VendorHypRevision,
    /// A PSCI call (`0x84..`/`0xC4..`). Live.
    Psci(PsciCall),
    /// [`ABI_VERSION`]. Live.
    AbiVersion {
        /// The version the guest was built for.
        guest: Version,
    },
    /// [`ABI_FEATURES`]. Live.
    AbiFeatures,
    /// [`VM_EXIT`]. Live.
    VmExit {
        /// Exit status, 0 for success.
        status: u64,
    },
    /// [`VM_YIELD`]. Live.
    VmYield,
    /// [`VM_INFO`]. Live.
    VmInfo,
    /// [`CONSOLE_WRITE`]. Live.
    ConsoleWrite {
        /// IPA of the bytes.
        ipa: u64,
        /// How many.
        len: u64,
    },
    /// [`CONSOLE_NOTIFY`]. Live since 1.2.
    ConsoleNotify,
    /// [`CONSOLE_READ`]. Live since 1.2.
    ConsoleRead {
        /// IPA of the buffer.
        ipa: u64,
        /// Its length.
        len: u64,
    },
    /// [`MEM_MAP`]. Live since 1.1.
    MemMap {
        /// First page's IPA.
        ipa: u64,
        /// Page count.
        pages: u64,
        /// Permissions.
        perms: MemPerms,
    },
    /// [`MEM_UNMAP`]. Live since 1.1.
    MemUnmap {
        /// First page's IPA.
        ipa: u64,
        /// Page count.
        pages: u64,
    },
    /// [`MEM_PROTECT`]. Live since 1.1.
    MemProtect {
        /// First page's IPA.
        ipa: u64,
        /// Page count.
        pages: u64,
        /// New permissions.
        perms: MemPerms,
    },
    /// [`MEM_QUERY`]. Live since 1.1.
    MemQuery {
        /// The page's IPA.
        ipa: u64,
    },
    /// [`MEM_BATCH`]. Live since 1.1.
    MemBatch {
        /// IPA of the page holding the entries.
        list_ipa: u64,
        /// How many entries.
        count: u64,
    },
    /// [`EVENT_BIND`]. Live since 1.2.
    EventBind {
        /// What to deliver.
        source: EventSource,
    },
    /// [`EVENT_MASK`]. Live since 1.2.
    EventMask {
        /// Event number.
        event: u32,
    },
    /// [`EVENT_UNMASK`]. Live since 1.2.
    EventUnmask {
        /// Event number.
        event: u32,
    },
    /// [`EVENT_ACK`]. Live since 1.2.
    EventAck {
        /// Event number.
        event: u32,
    },
    /// [`EVENT_SEND`]. Live since 1.2.
    EventSend {
        /// Target vCPU index in the caller's VM.
        vcpu: u32,
        /// Event number.
        event: u32,
    },
    /// [`EVENT_SHARED_ACK`]. Live since 1.5.
    EventSharedAck,
    /// [`EVENT_DEVICE_ACK`]. Live since 1.6.
    EventDeviceAck,
    /// [`EVENT_DEVICE_FAULTS`]. Live since 1.6.
    EventDeviceFaults,
    /// [`BLOCK_INFO`]. Live since 1.3.
    BlockInfo,
    /// [`BLOCK_SUBMIT`]. Live since 1.3.
    BlockSubmit {
        /// The request ring's new producer index.
        producer: u32,
    },
    /// [`CHANNEL_INFO`]. Live since 1.4.
    ChannelInfo {
        /// Channel number.
        channel: u32,
    },
    /// [`CHANNEL_NOTIFY`]. Live since 1.4.
    ChannelNotify {
        /// Channel number.
        channel: u32,
    },
}

impl Call {
    /// The function ID (w0) this call encodes to; for PSCI the SMC64 form where one exists.
    pub fn function_id(&self) -> u32 {
        match self {
            Call::SmcccVersion => SMCCC_VERSION,
            Call::SmcccArchFeatures { .. } => SMCCC_ARCH_FEATURES,
            Call::VendorHypCallUid => VENDOR_HYP_CALL_UID,
            Call::VendorHypRevision => VENDOR_HYP_REVISION,
            Call::Psci(p) => p.function_id(),
            Call::AbiVersion { .. } => ABI_VERSION,
            Call::AbiFeatures => ABI_FEATURES,
            Call::VmExit { .. } => VM_EXIT,
            Call::VmYield => VM_YIELD,
            Call::VmInfo => VM_INFO,
            Call::ConsoleWrite { .. } => CONSOLE_WRITE,
            Call::ConsoleRead { .. } => CONSOLE_READ,
            Call::ConsoleNotify => CONSOLE_NOTIFY,
            Call::MemMap { .. } => MEM_MAP,
            Call::MemUnmap { .. } => MEM_UNMAP,
            Call::MemProtect { .. } => MEM_PROTECT,
            Call::MemQuery { .. } => MEM_QUERY,
            Call::MemBatch { .. } => MEM_BATCH,
            Call::EventBind { .. } => EVENT_BIND,
            Call::EventMask { .. } => EVENT_MASK,
            Call::EventUnmask { .. } => EVENT_UNMASK,
            Call::EventAck { .. } => EVENT_ACK,
            Call::EventSend { .. } => EVENT_SEND,
            Call::EventSharedAck => EVENT_SHARED_ACK,
            Call::EventDeviceAck => EVENT_DEVICE_ACK,
            Call::EventDeviceFaults => EVENT_DEVICE_FAULTS,
            Call::BlockInfo => BLOCK_INFO,
            Call::BlockSubmit { .. } => BLOCK_SUBMIT,
            Call::ChannelInfo { .. } => CHANNEL_INFO,
            Call::ChannelNotify { .. } => CHANNEL_NOTIFY,
        }
    }

    /// The argument registers x1..x3 (no v1 call takes more).
    fn args(&self) -> [u64; 3] {
        match *self {
            Call::SmcccArchFeatures { function_id } => [function_id.into(), 0, 0],
            Call::Psci(p) => p.args(),
            Call::AbiVersion { guest } => [guest.to_u64(), 0, 0],
            Call::VmExit { status } => [status, 0, 0],
            Call::ConsoleWrite { ipa, len } | Call::ConsoleRead { ipa, len } => [ipa, len, 0],
            Call::MemMap { ipa, pages, perms } | Call::MemProtect { ipa, pages, perms } => {
                [ipa, pages, perms.bits()]
            }
            Call::MemUnmap { ipa, pages } => [ipa, pages, 0],
            Call::MemQuery { ipa } => [ipa, 0, 0],
            Call::MemBatch { list_ipa, count } => [list_ipa, count, 0],
            Call::EventBind { source } => {
                let [kind, index] = source.to_regs();
                [kind, index, 0]
            }
            Call::EventMask { event } | Call::EventUnmask { event } | Call::EventAck { event } => {
                [event.into(), 0, 0]
            }
            Call::EventSend { vcpu, event } => [vcpu.into(), event.into(), 0],
            Call::BlockSubmit { producer } => [producer.into(), 0, 0],
            Call::ChannelInfo { channel } | Call::ChannelNotify { channel } => {
                [channel.into(), 0, 0]
            }
            Call::SmcccVersion
            | Call::VendorHypCallUid
            | Call::VendorHypRevision
            | Call::AbiFeatures
            | Call::VmYield
            | Call::VmInfo
            | Call::ConsoleNotify
            | Call::EventSharedAck
            | Call::EventDeviceAck
            | Call::EventDeviceFaults
            | Call::BlockInfo => [0; 3],
        }
    }

    /// The register image: x0 = function ID, x1.. = arguments, the rest 0.
    pub fn to_regs(&self) -> Regs {
        let mut regs = [0; 18];
        regs[0] = self.function_id().into();
        regs[1..4].copy_from_slice(&self.args());
        regs
    }

    /// The catalog entry of [`Call::function_id`].
    pub fn info(&self) -> &'static CallInfo {
        match CallInfo::find(self.function_id()) {
            Some(info) => info,
            // Every variant's ID is in the catalog (a unit test checks it).
            None => unreachable!("call missing from the catalog"),
        }
    }

    /// The catalog name, e.g. `CONSOLE_WRITE`.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// Whether the call is live in this crate's version (`false`: provisional, a hypervisor
    /// built from this crate answers `NOT_SUPPORTED`).
    pub fn is_live(&self) -> bool {
        let id = self.function_id();
        Call::vendor_is_live(id).unwrap_or_else(|| self.info().live)
    }

    /// Whether the vendor call with function ID `id` is live in this crate's version (as
    /// [`Call::is_live`] of the call decoded from it: a vendor call's ID is its own); `None`
    /// for an ID outside the vendor calls' feature bits. The hot path of every hypercall: a bit
    /// test, neither the call's ID encoded again nor a catalog search.
    #[inline]
    pub const fn vendor_is_live(id: u32) -> Option<bool> {
        const LIVE: u64 = crate::abi::live_features();
        match crate::abi::feature_bit(id) {
            Some(bit) => Some(LIVE & (1 << bit) != 0),
            None => None,
        }
    }

    /// Whether every vendor call this crate defines is live in its version: then whether a
    /// vendor ID's call is live is whether a call has that ID, which the decode's jump finds
    /// anyway, and a dispatch may leave out [`Call::vendor_is_live`]'s test.
    pub const ALL_VENDOR_CALLS_LIVE: bool =
        crate::abi::live_features() == crate::abi::defined_features();

    /// The version that introduced the call.
    pub fn since(&self) -> Version {
        self.info().since
    }
}

/// A vendor-call argument typed `u32`: bits 63:32 are reserved.
fn u32_arg(x: u64) -> Result<u32, Error> {
    u32::try_from(x).map_err(|_| Error::InvalidParameters)
}

impl TryFrom<&Regs> for Call {
    type Error = Error;

    /// Decodes a register image. Only the low 32 bits of x0 are the function ID.
    /// Unknown ID: `NOT_SUPPORTED`. Malformed argument (unknown perm bits, reserved bits set, a
    /// bad version encoding, an event number out of range): `INVALID_PARAMETERS`. Argument
    /// registers a call does not use are ignored. Never panics.
    fn try_from(x: &Regs) -> Result<Call, Error> {
        let id = x[0] as u32;
        // Ours first, by one test: a vendor call (all but the SMCCC queries and PSCI) is then
        // one jump on its feature bit, not a search through the standard IDs.
        if id & 0xFFFF_FF00 == VENDOR_HYP_BASE {
            return decode_vendor([x[0], x[1], x[2], x[3]], AsDecoded);
        }
        Ok(match id {
            SMCCC_VERSION => Call::SmcccVersion,
            SMCCC_ARCH_FEATURES => Call::SmcccArchFeatures {
                function_id: x[1] as u32,
            },
            VENDOR_HYP_CALL_UID => Call::VendorHypCallUid,
            VENDOR_HYP_REVISION => Call::VendorHypRevision,
            _ => Call::Psci(PsciCall::decode(id, x).ok_or(Error::NotSupported)?),
        })
    }
}

/// The feature bit ([`feature_bit`]) of each vendor call, as a pattern: a match on the bits,
/// which run 0..56 with no wide gaps, compiles to one jump table even where code is optimised
/// for size, where one on the IDs (0x00..0x61, sparse) is a chain of compares 5 deep.
mod bit {
    macro_rules! bits {
        ($($id:ident),* $(,)?) => {
            $(
                pub const $id: u32 = match crate::abi::feature_bit(super::$id) {
                    Some(bit) => bit,
                    None => panic!("not a vendor call"),
                };
            )*
        };
    }
    bits!(
        ABI_VERSION,
        ABI_FEATURES,
        VM_EXIT,
        VM_YIELD,
        VM_INFO,
        CONSOLE_WRITE,
        CONSOLE_NOTIFY,
        CONSOLE_READ,
        MEM_MAP,
        MEM_UNMAP,
        MEM_PROTECT,
        MEM_QUERY,
        MEM_BATCH,
        EVENT_BIND,
        EVENT_MASK,
        EVENT_UNMASK,
        EVENT_ACK,
        EVENT_SEND,
        EVENT_SHARED_ACK,
        EVENT_DEVICE_ACK,
        EVENT_DEVICE_FAULTS,
        BLOCK_INFO,
        BLOCK_SUBMIT,
        CHANNEL_INFO,
        CHANNEL_NOTIFY,
    );
}

/// What takes a decoded vendor call from [`Call::decode_vendor_into`].
pub trait ServeVendor {
    /// What serving a call, or refusing it, gives.
    type Out;
    /// Serves `call`, just built by one arm of the decode's jump. A hypervisor marks it
    /// `#[inline(always)]`: the compiler then threads each arm into this function's own case
    /// of that call (a closure, being large, was left out of line).
    fn serve(self, call: Call) -> Self::Out;
    /// Refuses a call that does not decode: `NOT_SUPPORTED` for an unknown ID, or its
    /// argument's error.
    fn refuse(self, error: Error) -> Self::Out;
}

/// The decode itself: the call as a value.
struct AsDecoded;

impl ServeVendor for AsDecoded {
    type Out = Result<Call, Error>;

    #[inline(always)]
    fn serve(self, call: Call) -> Self::Out {
        Ok(call)
    }

    #[inline(always)]
    fn refuse(self, error: Error) -> Self::Out {
        Err(error)
    }
}

impl Call {
    /// Decodes the vendor call in `x`, a call's x0..x3 (every vendor call's arguments are in
    /// x1..x3; only x0's low 32 bits are its function ID), and hands it to `to` right after
    /// the jump on its feature bit that decoded it; refused `NOT_SUPPORTED` for an ID no vendor
    /// call has (a standard call's among them), or with an argument's error as
    /// [`Call::try_from`] says. For a hypervisor's dispatch: with [`ServeVendor::serve`] inlined
    /// (and its own match on the call), the compiler threads each arm of the jump into that
    /// call's case, so that a call goes from its function ID to its handler in one jump, its
    /// arguments in registers, no `Call` built in memory and matched again, and no answer
    /// wrapped in a `Result` and copied out of it (`refuse` answers the errors). That is an
    /// optimisation, not a guarantee: `scripts/bench.sh`'s hot-path figures are its check.
    #[inline(always)]
    pub fn decode_vendor_into<S: ServeVendor>(x: [u64; 4], to: S) -> S::Out {
        decode_vendor(x, to)
    }
}

/// [`Call::try_from`] of a vendor call (x0..x3; x0's low 32 bits `VENDOR_HYP_BASE | n`), handed
/// to `to`: refused `NOT_SUPPORTED` for an `n` no call has.
#[inline(always)]
fn decode_vendor<S: ServeVendor>(x: [u64; 4], to: S) -> S::Out {
    /// An argument, or the call refused with its error.
    macro_rules! arg {
        ($decoded:expr) => {
            match $decoded {
                Ok(value) => value,
                Err(e) => return to.refuse(e),
            }
        };
    }
    let Some(feature) = feature_bit(x[0] as u32) else {
        return to.refuse(Error::NotSupported);
    };
    let call = match feature {
        bit::ABI_VERSION => Call::AbiVersion {
            guest: arg!(Version::from_u64(x[1]).ok_or(Error::InvalidParameters)),
        },
        bit::ABI_FEATURES => Call::AbiFeatures,
        bit::VM_EXIT => Call::VmExit { status: x[1] },
        bit::VM_YIELD => Call::VmYield,
        bit::VM_INFO => Call::VmInfo,
        bit::CONSOLE_WRITE => Call::ConsoleWrite {
            ipa: x[1],
            len: x[2],
        },
        bit::CONSOLE_NOTIFY => Call::ConsoleNotify,
        bit::CONSOLE_READ => Call::ConsoleRead {
            ipa: x[1],
            len: x[2],
        },
        bit::MEM_MAP => Call::MemMap {
            ipa: x[1],
            pages: x[2],
            perms: arg!(MemPerms::decode(x[3])),
        },
        bit::MEM_UNMAP => Call::MemUnmap {
            ipa: x[1],
            pages: x[2],
        },
        bit::MEM_PROTECT => Call::MemProtect {
            ipa: x[1],
            pages: x[2],
            perms: arg!(MemPerms::decode(x[3])),
        },
        bit::MEM_QUERY => Call::MemQuery { ipa: x[1] },
        bit::MEM_BATCH => Call::MemBatch {
            list_ipa: x[1],
            count: x[2],
        },
        bit::EVENT_BIND => Call::EventBind {
            source: arg!(EventSource::from_regs(x[1], x[2])),
        },
        bit::EVENT_MASK => Call::EventMask {
            event: arg!(event::decode_event(x[1])),
        },
        bit::EVENT_UNMASK => Call::EventUnmask {
            event: arg!(event::decode_event(x[1])),
        },
        bit::EVENT_ACK => Call::EventAck {
            event: arg!(event::decode_event(x[1])),
        },
        bit::EVENT_SEND => Call::EventSend {
            vcpu: arg!(u32_arg(x[1])),
            event: arg!(event::decode_event(x[2])),
        },
        bit::EVENT_SHARED_ACK => Call::EventSharedAck,
        bit::EVENT_DEVICE_ACK => Call::EventDeviceAck,
        bit::EVENT_DEVICE_FAULTS => Call::EventDeviceFaults,
        bit::BLOCK_INFO => Call::BlockInfo,
        bit::BLOCK_SUBMIT => Call::BlockSubmit {
            producer: arg!(u32_arg(x[1])),
        },
        bit::CHANNEL_INFO => Call::ChannelInfo {
            channel: arg!(u32_arg(x[1])),
        },
        bit::CHANNEL_NOTIFY => Call::ChannelNotify {
            channel: arg!(u32_arg(x[1])),
        },
        _ => return to.refuse(Error::NotSupported),
    };
    to.serve(call)
}

impl TryFrom<Regs> for Call {
    type Error = Error;

    /// As `TryFrom<&Regs>`.
    fn try_from(x: Regs) -> Result<Call, Error> {
        Call::try_from(&x)
    }
}
