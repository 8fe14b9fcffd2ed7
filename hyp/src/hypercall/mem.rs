//! The `mem` family: a guest asks for its memory page by page instead of owning RAM.
//! Validation and the stage-2 work are in `vm::mem`; this module reads the arguments and the
//! batch list (copied out of guest memory before anything is checked), and turns a page call
//! that is not done yet into a continuation.

use super::{Action, GuestVm, Power, answer};
use crate::addr::Ipa;
use crate::vm::mem::{PageCall, Progress};
use core::mem::MaybeUninit;
use hypercall_abi::layout::{BatchEntry, BatchOp};
use hypercall_abi::mem::{MEM_BATCH_MAX, PAGE_SIZE};
use hypercall_abi::{BatchResult, Error};

/// Whether the calling vCPU may change the VM's memory now: not while another vCPU's page
/// call is under way (a vCPU that is off has given its call up).
#[inline(always)]
fn may_change_memory(vm: &mut impl GuestVm) -> bool {
    match vm.memory().continued_by() {
        Some(owner) if owner != vm.vcpu_index() => {
            if vm.vcpu_power(owner) == Some(Power::On) {
                return false;
            }
            vm.memory_mut().abandon_pending();
            true
        }
        _ => true,
    }
}

/// `MEM_MAP`, `MEM_UNMAP`, `MEM_PROTECT` (x1 = ipa, x2 = pages): the answer, or the rest of
/// the call in x1 and x2 and a continuation. Inlined into its one call site (`dispatch`).
#[inline(always)]
pub fn page_call(vm: &mut impl GuestVm, call: PageCall, ipa: u64, pages: u64) -> Action {
    if !may_change_memory(vm) {
        return Action::Retry;
    }
    let vcpu = vm.vcpu_index();
    match vm.memory_mut().call(vcpu, call, Ipa::new(ipa), pages) {
        Ok(Progress::Done) => {
            // The hot answer in place (`answer` is out of line for the other calls).
            super::set_return(vm.regs(), Ok([0; 3]));
            Action::Resume
        }
        Ok(Progress::Continue { ipa, pages }) => {
            let regs = vm.regs();
            regs[1] = ipa;
            regs[2] = pages;
            Action::Continue
        }
        Ok(Progress::Busy) => Action::Retry,
        Err(e) => answer(vm, Err(e)),
    }
}

/// x1 = the page's permissions, x2 = quota bytes left.
pub fn query(vm: &mut impl GuestVm, ipa: u64) -> Result<[u64; 3], Error> {
    let memory = vm.memory();
    memory
        .query(Ipa::new(ipa))
        .map(|perms| [perms.bits(), memory.quota_left_bytes(), 0])
}

/// Runs up to 512 one-page operations listed in a page of the guest's RAM, in order, stopping
/// at the first that fails. Out of line: its 4 KiB copy of the list stays out of the frame of
/// the exit handling it would be inlined into (a stack probe and two more adjustments on every
/// exit's way).
#[inline(never)]
pub fn batch_call(vm: &mut impl GuestVm, list_ipa: u64, count: u64) -> Action {
    if !may_change_memory(vm) {
        return Action::Retry;
    }
    // A page call of this vCPU's own that it left for this one is given up.
    vm.memory_mut().abandon_pending();
    let result = batch(vm, list_ipa, count);
    answer(vm, result)
}

fn batch(vm: &mut impl GuestVm, list_ipa: u64, count: u64) -> Result<[u64; 3], Error> {
    if count == 0 || count > MEM_BATCH_MAX {
        return Err(Error::InvalidParameters);
    }
    if !list_ipa.is_multiple_of(PAGE_SIZE) {
        return Err(Error::BadAddress);
    }
    // Copy the whole list first: the guest cannot change an entry between its check and use.
    let mut buffer = [const { MaybeUninit::uninit() }; MEM_BATCH_MAX as usize];
    let list = vm
        .memory()
        .read_words(Ipa::new(list_ipa), &mut buffer[..count as usize])?;
    let mut done = 0;
    let mut first_error = None;
    for &raw in list.iter() {
        let entry = BatchEntry { raw };
        let result = entry.decode().and_then(|(op, ipa, perms)| {
            let ipa = Ipa::new(ipa);
            let memory = vm.memory_mut();
            match op {
                BatchOp::Map => memory.map_page_unpublished(ipa, perms),
                BatchOp::Unmap => memory.unmap(ipa, 1),
                BatchOp::Protect => memory.protect(ipa, 1, perms),
            }
        });
        if let Err(e) = result {
            first_error = Some(e);
            break;
        }
        done += 1;
    }
    // The maps' entries, all at once, before the guest runs again.
    vm.memory().publish();
    Ok(BatchResult { done, first_error }.to_values())
}

#[cfg(test)]
mod tests {
    use super::super::Power;
    use super::super::fake::{FakeVm, PAGE_IPA, call};
    use super::*;
    use crate::arch::fake::FakeMachine;
    use crate::arch::{CacheOp, TlbOp};
    use crate::owner::Owner;
    use crate::vm::mem::calls::CHUNK_PAGES;
    use hypercall_abi::{Call, MemPerms, Regs};
    use std::vec::Vec;

    fn write_list(vm: &mut FakeVm, entries: &[u64]) {
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        vm.memory.write(PAGE_IPA, &bytes).unwrap();
    }

    fn batch(vm: &mut FakeVm, list_ipa: u64, count: u64) -> Result<BatchResult, Error> {
        call(vm, Call::MemBatch { list_ipa, count }).map(BatchResult::from_values)
    }

    fn entry(op: BatchOp, ipa: u64, perms: MemPerms) -> u64 {
        BatchEntry::new(op, ipa, perms).unwrap().raw
    }

    #[test]
    fn map_query_protect_unmap_through_the_dispatcher() {
        let mut vm = FakeVm::default();
        let ipa = 0x10_0000;
        assert_eq!(
            call(
                &mut vm,
                Call::MemMap {
                    ipa,
                    pages: 4,
                    perms: MemPerms::RW
                }
            ),
            Ok([0; 3])
        );
        assert_eq!(
            call(&mut vm, Call::MemQuery { ipa: ipa + 5 }),
            Ok([MemPerms::RW.bits(), 59 * 4096, 0])
        );
        assert_eq!(
            call(
                &mut vm,
                Call::MemProtect {
                    ipa,
                    pages: 2,
                    perms: MemPerms::READ
                }
            ),
            Ok([0; 3])
        );
        assert_eq!(
            call(&mut vm, Call::MemQuery { ipa }).map(|r| r[0]),
            Ok(MemPerms::READ.bits())
        );
        assert_eq!(call(&mut vm, Call::MemUnmap { ipa, pages: 4 }), Ok([0; 3]));
        assert_eq!(call(&mut vm, Call::MemQuery { ipa }), Err(Error::NotMapped));
        assert_eq!(
            call(&mut vm, Call::MemUnmap { ipa, pages: 1 }),
            Err(Error::NotMapped)
        );
    }

    #[test]
    fn a_full_batch_maps_512_pages() {
        let mut vm = FakeVm::default();
        vm.memory = crate::vm::mem::GuestMemory::new(2, 3, 600 * 4096).unwrap();
        vm.memory.map(PAGE_IPA, 1, MemPerms::RW).unwrap();
        let entries: Vec<u64> = (0..512)
            .map(|i| entry(BatchOp::Map, 0x100_0000 + i * 4096, MemPerms::RW))
            .collect();
        write_list(&mut vm, &entries);
        FakeMachine::take_tlb_ops();
        FakeMachine::take_frame_batches();
        assert_eq!(
            batch(&mut vm, PAGE_IPA, 512),
            Ok(BatchResult {
                done: 512,
                first_error: None
            })
        );
        assert_eq!(vm.memory.pages_used(), 513);
        assert_eq!(
            FakeMachine::take_frame_batches(),
            512 / crate::vm::mem::STASH_FRAMES,
            "the frames come from the pool a stash at a time"
        );
        assert_eq!(
            FakeMachine::frames_of(Owner::Vm(2)) as u64,
            vm.memory.frames_held()
        );
        // New entries need no invalidation, and one barrier publishes them all.
        assert_eq!(FakeMachine::take_tlb_ops(), [TlbOp::DsbIshst]);
    }

    #[test]
    fn the_frames_at_hand_stay_within_the_quota_and_go_back_with_the_vm() {
        let mut vm = FakeVm::default();
        vm.memory = crate::vm::mem::GuestMemory::new(2, 3, 40 * 4096).unwrap();
        vm.memory.map(PAGE_IPA, 1, MemPerms::RW).unwrap();
        let base = 0x100_0000;
        // Three maps, then one of a page already mapped: the batch stops there.
        let mut entries: Vec<u64> = (0..3)
            .map(|i| entry(BatchOp::Map, base + i * 4096, MemPerms::RW))
            .collect();
        entries.push(entry(BatchOp::Map, base, MemPerms::RW));
        write_list(&mut vm, &entries);
        assert_eq!(
            batch(&mut vm, PAGE_IPA, entries.len() as u64),
            Ok(BatchResult {
                done: 3,
                first_error: Some(Error::AlreadyMapped)
            })
        );
        assert_eq!(vm.memory.pages_used(), 4);
        let held = vm.memory.frames_held();
        assert_eq!(FakeMachine::frames_of(Owner::Vm(2)) as u64, held);
        assert!(held > 4, "frames at hand for the next maps");
        // The whole quota in one-page maps: never a frame beyond it, the last map refused.
        let entries: Vec<u64> = (0..37)
            .map(|i| entry(BatchOp::Map, 0x200_0000 + i * 4096, MemPerms::RW))
            .collect();
        write_list(&mut vm, &entries);
        assert_eq!(
            batch(&mut vm, PAGE_IPA, 37),
            Ok(BatchResult {
                done: 36,
                first_error: Some(Error::OutOfMemory)
            })
        );
        assert_eq!(FakeMachine::frames_of(Owner::Vm(2)), 40);
        assert_eq!(vm.memory.frames_held(), 40);
        // Unmapped frames are scrubbed into the stash while it has room, the rest to the pool.
        FakeMachine::take_cache_ops();
        let unmap = Call::MemUnmap {
            ipa: 0x200_0000,
            pages: 20,
        };
        assert_eq!(call(&mut vm, unmap), Ok([0; 3]));
        let scrubs = FakeMachine::take_cache_ops();
        assert_eq!(scrubs.len(), 2 * crate::vm::mem::STASH_FRAMES);
        assert!(
            matches!(scrubs[..2], [CacheOp::Zero { pa }, CacheOp::CleanToPoc { pa: clean }] if pa == clean)
        );
        assert_eq!(vm.memory.frames_held(), 40 - 20 + 16);
        assert_eq!(FakeMachine::frames_of(Owner::Vm(2)), 36);
        // A map of several pages gives the stash back first.
        let map = Call::MemMap {
            ipa: 0x300_0000,
            pages: 2,
            perms: MemPerms::RW,
        };
        assert_eq!(call(&mut vm, map), Ok([0; 3]));
        assert_eq!(vm.memory.frames_held(), vm.memory.pages_used());
        assert_eq!(
            FakeMachine::frames_of(Owner::Vm(2)) as u64,
            vm.memory.pages_used()
        );
        vm.memory
            .map(0x300_0000 + 2 * 4096, 1, MemPerms::RW)
            .unwrap();
        assert!(vm.memory.frames_held() > vm.memory.pages_used());
        vm.memory.clear();
        assert_eq!(FakeMachine::frames_of(Owner::Vm(2)), 0);
    }

    #[test]
    fn a_batch_stops_at_its_first_bad_entry() {
        let mut vm = FakeVm::default();
        let base = 0x20_0000;
        let reserved_bits = entry(BatchOp::Map, base + 4096, MemPerms::RW) | 1 << 7;
        write_list(
            &mut vm,
            &[
                entry(BatchOp::Map, base, MemPerms::RW),
                reserved_bits,
                entry(BatchOp::Map, base + 8192, MemPerms::RW),
            ],
        );
        assert_eq!(
            batch(&mut vm, PAGE_IPA, 3),
            Ok(BatchResult {
                done: 1,
                first_error: Some(Error::InvalidParameters)
            })
        );
        assert_eq!(vm.memory.query(base + 8192), Err(Error::NotMapped));
        write_list(
            &mut vm,
            &[
                entry(BatchOp::Unmap, base, MemPerms::empty()),
                entry(BatchOp::Unmap, base, MemPerms::empty()),
            ],
        );
        assert_eq!(
            batch(&mut vm, PAGE_IPA, 2),
            Ok(BatchResult {
                done: 1,
                first_error: Some(Error::NotMapped)
            })
        );
    }

    #[test]
    fn bad_batch_lists_are_refused_whole() {
        let mut vm = FakeVm::default();
        assert_eq!(batch(&mut vm, PAGE_IPA, 0), Err(Error::InvalidParameters));
        assert_eq!(batch(&mut vm, PAGE_IPA, 513), Err(Error::InvalidParameters));
        assert_eq!(batch(&mut vm, PAGE_IPA + 8, 1), Err(Error::BadAddress));
        assert_eq!(batch(&mut vm, 0x9000, 1), Err(Error::BadAddress));
        // A full page of zero entries is read whole; its first entry (a map without READ)
        // stops the batch there.
        assert_eq!(
            batch(&mut vm, PAGE_IPA, 512),
            Ok(BatchResult {
                done: 0,
                first_error: Some(Error::InvalidParameters)
            })
        );
    }

    /// Dispatches `regs` as vCPU `vcpu` until the call is answered; the continuations taken,
    /// each checked: x1/x2 say what is left, every other register is the caller's.
    fn issue(vm: &mut FakeVm, vcpu: usize, regs: &mut Regs) -> u64 {
        let original = *regs;
        let mut continues = 0;
        loop {
            vm.caller = vcpu;
            match super::super::fake::dispatch(vm, regs) {
                Action::Resume => return continues,
                Action::Continue => {
                    continues += 1;
                    let done = continues * CHUNK_PAGES;
                    assert_eq!(regs[1], original[1] + done * PAGE_SIZE);
                    assert_eq!(regs[2], original[2] - done);
                    assert_eq!(regs[0], original[0]);
                    assert_eq!(regs[3..], original[3..]);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_large_page_call_continues_and_answers_as_one_call() {
        let mut vm = FakeVm::empty(2, 2000);
        vm.vcpus.push((Power::On, 0, 0));
        let base = 0x100_0000;
        let mut regs = Call::MemMap {
            ipa: base,
            pages: 1300,
            perms: MemPerms::RW,
        }
        .to_regs();
        let mut one_shot = Call::MemMap {
            ipa: 0x8000_0000,
            pages: 512,
            perms: MemPerms::RW,
        }
        .to_regs();
        assert_eq!(issue(&mut vm, 0, &mut one_shot), 0);
        assert_eq!(issue(&mut vm, 0, &mut regs), 2);
        assert_eq!(
            regs[..4],
            one_shot[..4],
            "the same answer as a call done at once"
        );
        assert_eq!(
            hypercall_abi::decode_return([regs[0], regs[1], regs[2], regs[3]]),
            Ok([0; 3])
        );
        assert_eq!(vm.memory.pages_used(), 1812);
        let mut unmap = Call::MemUnmap {
            ipa: base,
            pages: 1300,
        }
        .to_regs();
        assert_eq!(issue(&mut vm, 0, &mut unmap), 2);
        assert_eq!(unmap[0], 0);
        assert_eq!(vm.memory.pages_used(), 512);
    }

    #[test]
    fn another_vcpu_waits_for_a_call_under_way_unless_its_caller_is_off() {
        let mut vm = FakeVm::empty(2, 2000);
        vm.vcpus.push((Power::On, 0, 0));
        let mut regs = Call::MemMap {
            ipa: 0x100_0000,
            pages: 1300,
            perms: MemPerms::RW,
        }
        .to_regs();
        assert_eq!(
            super::super::fake::dispatch(&mut vm, &mut regs),
            Action::Continue
        );
        // vCPU 1 maps a page of the range still to do: retried later, without progress.
        vm.caller = 1;
        let mut theirs = Call::MemMap {
            ipa: 0x100_0000 + 1000 * PAGE_SIZE,
            pages: 1,
            perms: MemPerms::RW,
        }
        .to_regs();
        let before = theirs;
        assert_eq!(
            super::super::fake::dispatch(&mut vm, &mut theirs),
            Action::Retry
        );
        assert_eq!(theirs, before, "its call is issued again as it was");
        let mut list = Call::MemBatch {
            list_ipa: PAGE_IPA,
            count: 1,
        }
        .to_regs();
        assert_eq!(
            super::super::fake::dispatch(&mut vm, &mut list),
            Action::Retry
        );
        // vCPU 0 powers off: its call is given up, vCPU 1's goes ahead.
        vm.vcpus[0].0 = Power::Off;
        assert_eq!(
            super::super::fake::dispatch(&mut vm, &mut theirs),
            Action::Resume
        );
        assert_eq!(theirs[0], 0);
        assert_eq!(vm.memory.pages_used(), 513);
    }
}
