//! The `console` family: a guest's bytes, copied out of its memory, become its console lines.

use super::GuestVm;
use hypercall_abi::Error;
use hypercall_abi::console::CONSOLE_CHUNK_MAX;

/// Writes up to CONSOLE_CHUNK_MAX bytes from guest memory at `ipa`; returns how many.
pub fn write(vm: &mut impl GuestVm, ipa: u64, len: u64) -> Result<[u64; 3], Error> {
    let n = len.min(CONSOLE_CHUNK_MAX) as usize;
    let mut buf = [0u8; CONSOLE_CHUNK_MAX as usize];
    // Copy first, then use: the guest cannot change the bytes after the check.
    vm.memory().read(ipa, &mut buf[..n])?;
    vm.console_output(&buf[..n]);
    Ok([n as u64, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeVm, PAGE_IPA};
    use super::*;

    #[test]
    fn copies_bytes_from_guest_memory() {
        let mut vm = FakeVm::default();
        vm.memory.write(PAGE_IPA, b"hello").unwrap();
        assert_eq!(write(&mut vm, PAGE_IPA, 5), Ok([5, 0, 0]));
        assert_eq!(vm.console, b"hello");
    }

    #[test]
    fn refuses_unmapped_and_wrapping_buffers() {
        let mut vm = FakeVm::default();
        assert_eq!(write(&mut vm, 0x9000, 4), Err(Error::BadAddress));
        assert_eq!(write(&mut vm, PAGE_IPA + 4090, 10), Err(Error::BadAddress));
        assert_eq!(write(&mut vm, u64::MAX - 2, 10), Err(Error::BadAddress));
        assert!(vm.console.is_empty());
    }

    #[test]
    fn caps_a_huge_length_at_one_chunk() {
        let mut vm = FakeVm::default();
        assert_eq!(write(&mut vm, PAGE_IPA, u64::MAX), Ok([4096, 0, 0]));
    }
}
