//! Property tests: encode/decode round-trips, and no input panics a decoder.

use hypercall_abi::{
    BootInfo, CALLS, Call, Error, EventSource, MemPerms, PsciCall, Regs, Version, decode_return,
    encode_return,
    event::EVENT_COUNT,
    layout::{BatchEntry, BatchOp},
    mem::PAGE_SIZE,
};
use proptest::prelude::*;

fn perms() -> impl Strategy<Value = MemPerms> {
    (0u64..8).prop_map(MemPerms::from_bits_truncate)
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u16>(), any::<u16>()).prop_map(|(major, minor)| Version { major, minor })
}

fn event() -> impl Strategy<Value = u32> {
    0..EVENT_COUNT
}

fn source() -> impl Strategy<Value = EventSource> {
    prop_oneof![
        Just(EventSource::VirtualTimer),
        Just(EventSource::ConsoleRx),
        Just(EventSource::BlockCompletion),
        Just(EventSource::DeviceInterrupt),
        Just(EventSource::DeviceFault),
        any::<u32>().prop_map(|channel| EventSource::Channel { channel }),
    ]
}

fn psci() -> impl Strategy<Value = PsciCall> {
    let u = any::<u64>;
    prop_oneof![
        Just(PsciCall::Version),
        any::<u32>().prop_map(|function_id| PsciCall::Features { function_id }),
        (u(), u(), u()).prop_map(|(power_state, entry, context_id)| PsciCall::CpuSuspend {
            power_state,
            entry,
            context_id
        }),
        Just(PsciCall::CpuOff),
        (u(), u(), u()).prop_map(|(target_mpidr, entry, context_id)| PsciCall::CpuOn {
            target_mpidr,
            entry,
            context_id
        }),
        (u(), u()).prop_map(|(target_mpidr, lowest_level)| PsciCall::AffinityInfo {
            target_mpidr,
            lowest_level
        }),
        Just(PsciCall::SystemOff),
        Just(PsciCall::SystemReset),
    ]
}

/// Every `Call` variant with arbitrary valid arguments.
fn call() -> impl Strategy<Value = Call> {
    let u = any::<u64>;
    let w = any::<u32>;
    prop_oneof![
        Just(Call::SmcccVersion),
        w().prop_map(|function_id| Call::SmcccArchFeatures { function_id }),
        Just(Call::VendorHypCallUid),
        Just(Call::VendorHypRevision),
        psci().prop_map(Call::Psci),
        version().prop_map(|guest| Call::AbiVersion { guest }),
        Just(Call::AbiFeatures),
        u().prop_map(|status| Call::VmExit { status }),
        Just(Call::VmYield),
        Just(Call::VmInfo),
        (u(), u()).prop_map(|(ipa, len)| Call::ConsoleWrite { ipa, len }),
        (u(), u()).prop_map(|(ipa, len)| Call::ConsoleRead { ipa, len }),
        Just(Call::ConsoleNotify),
        (u(), u(), perms()).prop_map(|(ipa, pages, perms)| Call::MemMap { ipa, pages, perms }),
        (u(), u()).prop_map(|(ipa, pages)| Call::MemUnmap { ipa, pages }),
        (u(), u(), perms()).prop_map(|(ipa, pages, perms)| Call::MemProtect { ipa, pages, perms }),
        u().prop_map(|ipa| Call::MemQuery { ipa }),
        (u(), u()).prop_map(|(list_ipa, count)| Call::MemBatch { list_ipa, count }),
        source().prop_map(|source| Call::EventBind { source }),
        event().prop_map(|event| Call::EventMask { event }),
        event().prop_map(|event| Call::EventUnmask { event }),
        event().prop_map(|event| Call::EventAck { event }),
        (w(), event()).prop_map(|(vcpu, event)| Call::EventSend { vcpu, event }),
        Just(Call::EventSharedAck),
        Just(Call::EventDeviceAck),
        Just(Call::EventDeviceFaults),
        Just(Call::BlockInfo),
        w().prop_map(|producer| Call::BlockSubmit { producer }),
        w().prop_map(|channel| Call::ChannelInfo { channel }),
        w().prop_map(|channel| Call::ChannelNotify { channel }),
    ]
}

/// Register images whose w0 is a known ID, so decoding reaches the argument checks.
fn known_id_regs() -> impl Strategy<Value = Regs> {
    (0..CALLS.len(), any::<u32>(), any::<Regs>()).prop_map(|(i, high, mut regs)| {
        regs[0] = u64::from(high) << 32 | u64::from(CALLS[i].function_id);
        regs
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn call_round_trips(call in call()) {
        let regs = call.to_regs();
        prop_assert_eq!(regs[0], u64::from(call.function_id()));
        prop_assert!(regs[4..].iter().all(|&r| r == 0));
        prop_assert_eq!(Call::try_from(&regs), Ok(call));
    }

    #[test]
    fn arbitrary_regs_never_panic(regs in any::<Regs>()) {
        let _ = Call::try_from(&regs);
    }

    #[test]
    fn known_ids_decode_or_reject_arguments(regs in known_id_regs()) {
        match Call::try_from(&regs) {
            Ok(call) => {
                // Re-encoding keeps the call (SMC32 PSCI forms come back as SMC64).
                prop_assert_eq!(Call::try_from(&call.to_regs()), Ok(call));
                // Only w0 is the function ID.
                let mut low = regs;
                low[0] &= 0xFFFF_FFFF;
                prop_assert_eq!(Call::try_from(&low), Ok(call));
            }
            Err(e) => prop_assert_eq!(e, Error::InvalidParameters),
        }
    }

    #[test]
    fn unknown_ids_are_not_supported(regs in any::<Regs>()) {
        let id = regs[0] as u32;
        if CALLS.iter().all(|c| c.function_id != id) {
            prop_assert_eq!(Call::try_from(&regs), Err(Error::NotSupported));
        }
    }

    #[test]
    fn error_codes_decode_without_panic(code in any::<i64>()) {
        let e = Error::from_code(code);
        prop_assert!(e == Error::Unknown || e.code() == code);
    }

    #[test]
    fn returns_round_trip(v in any::<[u64; 3]>(), i in 0..Error::ALL.len()) {
        prop_assert_eq!(decode_return(encode_return(Ok(v))), Ok(v));
        let e = Error::ALL[i];
        prop_assert_eq!(decode_return(encode_return(Err(e))), Err(e));
    }

    #[test]
    fn any_return_decodes(x in any::<[u64; 4]>()) {
        let _ = decode_return(x);
    }

    #[test]
    fn batch_entries_round_trip(page in 0u64..(1 << 40), op in 0..3u8, p in perms()) {
        let op = [BatchOp::Map, BatchOp::Unmap, BatchOp::Protect][usize::from(op)];
        let p = if op == BatchOp::Unmap { MemPerms::empty() } else { p };
        let ipa = page * PAGE_SIZE;
        let entry = BatchEntry::new(op, ipa, p).unwrap();
        prop_assert_eq!(entry.decode(), Ok((op, ipa, p)));
    }

    #[test]
    fn any_batch_entry_decodes(raw in any::<u64>()) {
        let _ = BatchEntry { raw }.decode();
    }

    #[test]
    fn boot_info_strings_never_panic(
        name in any::<[u8; 32]>(),
        name_len in any::<u32>(),
        cmdline in proptest::collection::vec(any::<u8>(), 256),
        cmdline_len in any::<u32>(),
    ) {
        let mut info = BootInfo::new(Version::CURRENT);
        info.name = name;
        info.name_len = name_len;
        info.cmdline.copy_from_slice(&cmdline);
        info.cmdline_len = cmdline_len;
        prop_assert!(info.name().len() <= 32);
        prop_assert!(info.cmdline().len() <= 256);
    }

    #[test]
    fn version_round_trips(v in version()) {
        prop_assert_eq!(Version::from_u64(v.to_u64()), Some(v));
    }

    #[test]
    fn versions_with_high_bits_are_rejected(v in any::<u64>()) {
        prop_assert_eq!(Version::from_u64(v).is_some(), v >> 32 == 0);
    }
}

#[test]
fn every_error_round_trips() {
    for e in Error::ALL {
        assert_eq!(Error::from_code(e.code()), e);
        assert!(e.code() < 0);
    }
    assert_eq!(Error::from_code(0), Error::Unknown);
    assert_eq!(Error::from_code(-10), Error::Unknown);
    assert_eq!(Error::NotSupported.code(), -1);
    assert_eq!(Error::InvalidParameters.code(), -2);
}
