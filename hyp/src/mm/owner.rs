//! Who owns each frame of RAM: exactly one of the hyp, one VM, a shared object (such as a
//! channel), or nobody (free). The frame allocator records every hand-over here, so a frame
//! freed by someone who does not own it is caught instead of silently reused. The `Owner`
//! type itself is below `arch` and `mm` both (`crate::owner`), as the `Machine` trait names it.

use alloc::vec;
use alloc::vec::Vec;

pub use crate::owner::Owner;

/// A hand-over the map refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnershipError {
    /// The frame is not RAM the map covers.
    NotRam(u64),
    /// The frame belongs to someone else than the one giving it up or taking it.
    WrongOwner {
        frame: u64,
        expected: Owner,
        actual: Owner,
    },
}

/// The owner of every frame in `[first_frame, first_frame + len)`.
pub struct OwnerMap {
    first_frame: u64,
    owners: Vec<u16>,
}

impl OwnerMap {
    /// A map whose frames all start as `initial`'s.
    pub fn new_owned_by(first_frame: u64, frames: usize, initial: Owner) -> Self {
        Self {
            first_frame,
            owners: vec![initial.encode(); frames],
        }
    }

    /// Gives the frames `[first, end)`, all `from`'s, to `to`; refuses (changing nothing) if
    /// any is outside the map or not `from`'s.
    pub fn transfer_range(
        &mut self,
        first: u64,
        end: u64,
        from: Owner,
        to: Owner,
    ) -> Result<(), OwnershipError> {
        let start = first
            .checked_sub(self.first_frame)
            .ok_or(OwnershipError::NotRam(first))? as usize;
        let stop = end.saturating_sub(self.first_frame) as usize;
        let slots = self
            .owners
            .get_mut(start..stop)
            .ok_or(OwnershipError::NotRam(end.saturating_sub(1)))?;
        let (from, to) = (from.encode(), to.encode());
        if let Some(i) = slots.iter().position(|&o| o != from) {
            let frame = first + i as u64;
            return Err(OwnershipError::WrongOwner {
                frame,
                expected: Owner::decode(from),
                actual: Owner::decode(slots[i]),
            });
        }
        slots.fill(to);
        Ok(())
    }

    /// The owner of `frame` (frames outside the map are reported as the hyp's).
    pub fn owner(&self, frame: u64) -> Owner {
        frame
            .checked_sub(self.first_frame)
            .and_then(|i| self.owners.get(i as usize))
            .map_or(Owner::Hyp, |&raw| Owner::decode(raw))
    }

    /// Moves `frame` from `from` to `to`; refuses if `from` does not own it. On every frame
    /// allocated and freed: one compare of the encoded owners, the refusal out of line.
    #[inline(always)]
    pub fn transfer(&mut self, frame: u64, from: Owner, to: Owner) -> Result<(), OwnershipError> {
        let (raw_from, raw_to) = (from.encode(), to.encode());
        let first = self.first_frame;
        match frame
            .checked_sub(first)
            .and_then(|i| self.owners.get_mut(i as usize))
        {
            Some(slot) if *slot == raw_from => {
                *slot = raw_to;
                Ok(())
            }
            found => Err(Self::refusal(frame, from, found.map(|s| *s))),
        }
    }

    #[cold]
    #[inline(never)]
    fn refusal(frame: u64, expected: Owner, found: Option<u16>) -> OwnershipError {
        match found {
            None => OwnershipError::NotRam(frame),
            Some(raw) => OwnershipError::WrongOwner {
                frame,
                expected,
                actual: Owner::decode(raw),
            },
        }
    }

    /// How many frames `owner` holds.
    pub fn count(&self, owner: Owner) -> usize {
        let raw = owner.encode();
        self.owners.iter().filter(|&&o| o == raw).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_change_hands_only_from_their_owner() {
        let mut map = OwnerMap::new_owned_by(0x40000, 16, Owner::Free);
        map.transfer(0x40003, Owner::Free, Owner::Vm(2)).unwrap();
        assert_eq!(map.owner(0x40003), Owner::Vm(2));
        assert_eq!(
            map.transfer(0x40003, Owner::Vm(1), Owner::Free),
            Err(OwnershipError::WrongOwner {
                frame: 0x40003,
                expected: Owner::Vm(1),
                actual: Owner::Vm(2)
            })
        );
        assert_eq!(
            map.transfer(0x40003, Owner::Free, Owner::Hyp),
            Err(OwnershipError::WrongOwner {
                frame: 0x40003,
                expected: Owner::Free,
                actual: Owner::Vm(2)
            })
        );
        map.transfer(0x40003, Owner::Vm(2), Owner::Free).unwrap();
        assert_eq!(map.count(Owner::Free), 16);
    }

    #[test]
    fn ranges_change_hands_whole_or_not_at_all() {
        let mut map = OwnerMap::new_owned_by(0x40000, 8, Owner::Hyp);
        map.transfer_range(0x40002, 0x40006, Owner::Hyp, Owner::Free)
            .unwrap();
        assert_eq!(map.count(Owner::Free), 4);
        assert_eq!(map.owner(0x40001), Owner::Hyp);
        assert_eq!(map.owner(0x40006), Owner::Hyp);
        assert!(
            map.transfer_range(0x40005, 0x40007, Owner::Free, Owner::Vm(1))
                .is_err()
        );
        assert_eq!(map.owner(0x40005), Owner::Free, "nothing changed");
        assert_eq!(
            map.transfer_range(0x40006, 0x40009, Owner::Hyp, Owner::Free),
            Err(OwnershipError::NotRam(0x40008))
        );
    }

    #[test]
    fn frames_outside_ram_are_refused() {
        let mut map = OwnerMap::new_owned_by(0x40000, 4, Owner::Free);
        assert_eq!(
            map.transfer(0x3ffff, Owner::Free, Owner::Hyp),
            Err(OwnershipError::NotRam(0x3ffff))
        );
        assert_eq!(
            map.transfer(0x40004, Owner::Free, Owner::Hyp),
            Err(OwnershipError::NotRam(0x40004))
        );
    }

    #[test]
    fn every_owner_kind_round_trips() {
        for o in [
            Owner::Free,
            Owner::Hyp,
            Owner::Vm(0),
            Owner::Vm(0x3fff),
            Owner::Shared(7),
        ] {
            assert_eq!(Owner::decode(o.encode()), o);
        }
    }
}
