//! Hypercall decoding (`hypercall_abi`): every register a guest passes is hostile. A decoded
//! call re-encodes to registers that decode to the same call, reads no register its catalog
//! entry does not name, and every result encoding round-trips.

#![no_main]

use arbitrary::Arbitrary;
use hypercall_abi::layout::{BatchEntry, BlockDesc};
use hypercall_abi::psci::PSCI_FUNCTION_IDS;
use hypercall_abi::{
    BatchResult, CALLS, Call, CallInfo, Error, EventSource, Regs, decode_return, encode_return,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum FunctionId {
    /// One of the ABI's function IDs, by index into the catalog.
    Known(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    id: FunctionId,
    /// x0's upper half, which is not part of the function ID.
    x0_high: u32,
    args: [u64; 17],
    /// Values for the registers the call does not read.
    noise: [u64; 17],
    result: [u64; 4],
    batch_entry: u64,
    block_slot: [u8; BlockDesc::SIZE],
}

fuzz_target!(|input: Input| {
    let id = match input.id {
        FunctionId::Known(i) => CALLS[usize::from(i) % CALLS.len()].function_id,
        FunctionId::Raw(id) => id,
    };
    let mut regs: Regs = [0; 18];
    regs[0] = u64::from(input.x0_high) << 32 | u64::from(id);
    regs[1..].copy_from_slice(&input.args);
    let decoded = Call::try_from(&regs);
    match CallInfo::find(id) {
        None => assert_eq!(
            decoded,
            Err(Error::NotSupported),
            "{id:#x} is not in the catalog"
        ),
        Some(info) => {
            assert_ne!(
                decoded,
                Err(Error::NotSupported),
                "{} did not decode",
                info.name
            );
            // The registers past the call's arguments are not read; for an SMC32 call,
            // neither are the upper halves of its arguments.
            let smc32 = id & (1 << 30) == 0;
            let mut noisy = regs;
            for (i, reg) in noisy.iter_mut().enumerate().skip(1) {
                if i > usize::from(info.args) {
                    *reg = input.noise[i - 1];
                } else if smc32 {
                    *reg = *reg as u32 as u64 | input.noise[i - 1] << 32;
                }
            }
            assert_eq!(
                Call::try_from(&noisy),
                decoded,
                "{} read past its arguments",
                info.name
            );
        }
    }
    if let Ok(call) = decoded {
        let again = call.to_regs();
        assert_eq!(
            Call::try_from(&again),
            Ok(call),
            "{call:?} does not round-trip"
        );
        // The encoding is the SMC64 form where one exists, with every unused register 0.
        let info = call.info();
        assert_eq!(again[0], u64::from(call.function_id()));
        assert!(
            again[1 + usize::from(info.args)..].iter().all(|&r| r == 0),
            "{again:x?}"
        );
        assert!(id == call.function_id() || PSCI_FUNCTION_IDS.contains(&id));
        let _ = (call.name(), call.is_live(), call.since());
    }

    // Results: what the hyp encodes decodes to itself; what a guest decodes re-encodes to the
    // registers it came from, unless the code is one this version does not know.
    let result = decode_return(input.result);
    assert_eq!(decode_return(encode_return(result)), result);
    match result {
        Ok(_) => assert_eq!(encode_return(result), input.result),
        Err(Error::Unknown) => {}
        Err(e) => assert_eq!(e.code(), input.result[0] as i64),
    }
    let batch = BatchResult::from_values([input.result[1], input.result[2], input.result[3]]);
    assert_eq!(BatchResult::from_values(batch.to_values()), batch);

    // A MEM_BATCH entry from the guest's list page.
    let entry = BatchEntry {
        raw: input.batch_entry,
    };
    if let Ok((op, ipa, perms)) = entry.decode() {
        assert_eq!(BatchEntry::new(op, ipa, perms), Ok(entry));
    }
    // A block request slot from the guest's ring.
    let slot = BlockDesc::from_bytes(&input.block_slot);
    assert_eq!(slot.to_bytes(), input.block_slot);
    // An EVENT_BIND source.
    if let Ok(source) = EventSource::from_regs(input.args[0], input.args[1]) {
        assert_eq!(source.to_regs(), [input.args[0], input.args[1]]);
    }
});
