//! Locks with a level, so that the lock order written in `vm::sched` is checked, not only
//! written: a CPU may take a lock only while every lock it holds has a lower level. Debug
//! builds keep what each CPU holds (a bit per level, in its PerCpu) and stop the hyp at the
//! first lock taken out of order, before it can deadlock; release builds only lock.

/// A lock's place in the order: lower levels are taken first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Level {
    /// A VM's state (one VM at a time: two VMs are never locked together).
    Vm = 0,
    /// The run queue.
    RunQueue = 1,
}

/// A lock taken out of order: `level` while the CPU held `held` (a bit per level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderViolation {
    pub level: Level,
    pub held: u32,
}

/// What a CPU holding `held` holds once it takes a lock of `level`.
pub fn take(held: u32, level: Level) -> Result<u32, OrderViolation> {
    let bit = 1u32 << level as u32;
    // A bit at or above the new level is a lock of that level or a later one.
    if held >= bit {
        return Err(OrderViolation { level, held });
    }
    Ok(held | bit)
}

/// What a CPU holding `held` holds once it releases its lock of `level`.
pub fn release(held: u32, level: Level) -> u32 {
    held & !(1u32 << level as u32)
}

#[cfg(target_os = "none")]
pub use ordered::{Ordered, OrderedGuard};

#[cfg(target_os = "none")]
mod ordered {
    use super::Level;
    use core::ops::{Deref, DerefMut};
    use spin::{Mutex, MutexGuard};

    /// A spin lock at a level of the order.
    pub struct Ordered<T> {
        level: Level,
        lock: Mutex<T>,
    }

    /// Holds an [`Ordered`] lock; releasing it is dropping it.
    pub struct OrderedGuard<'a, T> {
        level: Level,
        guard: MutexGuard<'a, T>,
    }

    impl<T> Ordered<T> {
        pub const fn new(level: Level, value: T) -> Self {
            Self {
                level,
                lock: Mutex::new(value),
            }
        }

        /// Takes the lock (checked against what this CPU holds first, in debug builds).
        pub fn lock(&self) -> OrderedGuard<'_, T> {
            if cfg!(debug_assertions) {
                crate::percpu::lock_taken(self.level);
            }
            // Uncontended, one compare-and-swap as before; the counting only when it fails.
            let guard = match self.lock.try_lock() {
                Some(guard) => guard,
                None => self.wait(),
            };
            OrderedGuard {
                level: self.level,
                guard,
            }
        }

        /// Spins until the lock is free and takes it, counting the spins in this CPU's
        /// `lock_waits` (the `hyp>` console's `stats`).
        #[cold]
        #[inline(never)]
        fn wait(&self) -> MutexGuard<'_, T> {
            let mut spins = 0u64;
            loop {
                while self.lock.is_locked() {
                    spins += 1;
                    core::hint::spin_loop();
                }
                if let Some(guard) = self.lock.try_lock() {
                    crate::percpu::add_lock_waits(spins.max(1));
                    return guard;
                }
            }
        }
    }

    impl<T> Drop for OrderedGuard<'_, T> {
        fn drop(&mut self) {
            if cfg!(debug_assertions) {
                crate::percpu::lock_released(self.level);
            }
        }
    }

    impl<T> Deref for OrderedGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.guard
        }
    }

    impl<T> DerefMut for OrderedGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.guard
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_then_the_run_queue_is_in_order() {
        let held = take(0, Level::Vm).unwrap();
        let held = take(held, Level::RunQueue).unwrap();
        let held = release(held, Level::RunQueue);
        assert_eq!(release(held, Level::Vm), 0);
    }

    #[test]
    fn the_run_queue_then_a_vm_is_refused() {
        let held = take(0, Level::RunQueue).unwrap();
        assert_eq!(
            take(held, Level::Vm),
            Err(OrderViolation {
                level: Level::Vm,
                held: 0b10
            })
        );
    }

    #[test]
    fn two_vms_at_once_are_refused() {
        let held = take(0, Level::Vm).unwrap();
        assert!(take(held, Level::Vm).is_err());
        assert!(take(release(held, Level::Vm), Level::Vm).is_ok());
    }
}
