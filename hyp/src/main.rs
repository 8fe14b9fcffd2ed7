//! pvhyp: a paravirtualizing microhypervisor for AArch64, running at EL2.
//!
//! Boot, top to bottom: the entry code (arch/aarch64/entry.S) has turned the MMU on and called
//! `hyp_main` with the device tree. We learn the board from it, take over the MMU with precise
//! tables, hand free RAM to the frame allocator, read the VM manifest from the initrd, build
//! the VMs, and run them on every CPU until all have ended; then print the summary and power
//! off. The other CPUs start in `secondary_main` once CPU 0 has set up the EL2 tables and the GIC.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

// First: its macros (`info!`, ...) are in scope in every module declared after it.
#[macro_use]
mod logger;

mod addr;
mod arch;
mod bench;
mod board;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod dev;
mod disk;
mod echo;
mod hypercall;
mod mm;
mod monitor;
mod owner;
#[cfg(target_os = "none")]
mod percpu;
#[cfg(target_os = "none")]
mod power;
mod trace;
mod vdev;
mod vm;

#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn hyp_main(dtb_pa: usize, image_pa: usize, boot_counter: u64) -> ! {
    bench::record_boot_counter(boot_counter);
    let board = boot::read_device_tree(dtb_pa);
    boot::take_over_mmu(&board, image_pa);
    boot::start_console(&board);
    boot::describe(&board);
    trace::set_enabled(trace::requested(board.bootargs));
    if trace::enabled() {
        info!(
            "exit tracing on ({}): the last {} exits of each CPU",
            trace::BOOTARG,
            trace::RING_LEN
        );
    }
    boot::init_power(&board);
    boot::init_cpu(&board);
    if crash_test_requested(board.bootargs) {
        dev::console::with_lock_held(arch::aarch64::exception::fault_for_test);
    }
    #[cfg(debug_assertions)]
    match overflow_test_cpu(board.bootargs) {
        Some(Ok(0)) => {
            arch::aarch64::exception::overflow_for_test(0);
        }
        Some(Ok(cpu)) if cpu < board.cpus().len().min(percpu::MAX_CPUS) => {
            OVERFLOW_TEST_CPU.store(cpu, core::sync::atomic::Ordering::Relaxed)
        }
        Some(Ok(cpu)) => {
            warn!(
                "{STACK_OVERFLOW_TEST_BOOTARG}={cpu}: this board runs no CPU {cpu}; no overflow test"
            )
        }
        Some(Err(word)) => {
            warn!(
                "{word}: not a CPU number (want {STACK_OVERFLOW_TEST_BOOTARG}=N); no overflow test"
            )
        }
        None => {}
    }
    boot::init_interrupts(&board);
    boot::start_secondaries(&board, image_pa);
    boot::init_memory(&board, image_pa);
    dev::smmu::init(&board);
    dev::pci::init(&board);
    dev::smmu::drain_events(|r| dev::smmu::log_fault(r, None));
    let mut vms = boot::load_vms(&board);
    vm::device::assign_at_boot(&mut vms);
    if dev::dma_probe::requested(board.bootargs) {
        dev::dma_probe::run(&board, &vms);
    }
    boot::init_disk(&board, &mut vms);
    vm::sched::run(vms)
}

/// Where every other CPU arrives (entry.S `secondary_entry`, MMU on, on its own stack): it sets
/// itself up, then runs guests as the scheduler gives it work.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: usize) -> ! {
    boot::init_secondary(index);
    // Written by the boot CPU before it started this one (PSCI CPU_ON or the spin table's
    // release orders the two).
    #[cfg(debug_assertions)]
    if OVERFLOW_TEST_CPU.load(core::sync::atomic::Ordering::Relaxed) == index {
        arch::aarch64::exception::overflow_for_test(0);
    }
    vm::sched::run_secondary()
}

/// The bootarg that makes the hyp fault at boot with the console lock held, to test that its
/// crash report still prints (scripts/test.sh).
const CRASH_TEST_BOOTARG: &str = "pvhyp.crash-test";

/// The bootarg that makes a debug hyp overflow its stack at boot, to test the guard below it
/// (scripts/test.sh): on the boot CPU, or as `pvhyp.stack-overflow-test=N` on CPU N as it
/// starts.
#[cfg(debug_assertions)]
const STACK_OVERFLOW_TEST_BOOTARG: &str = "pvhyp.stack-overflow-test";

/// The secondary CPU that overflows its stack as it starts (`usize::MAX`: none).
#[cfg(debug_assertions)]
static OVERFLOW_TEST_CPU: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(usize::MAX);

/// The CPU [`STACK_OVERFLOW_TEST_BOOTARG`] names, if `bootargs` has it (0 without `=N`); the
/// word itself when what follows `=` is not a number.
#[cfg(debug_assertions)]
fn overflow_test_cpu(bootargs: Option<&str>) -> Option<Result<usize, &str>> {
    bootargs?.split_ascii_whitespace().find_map(|w| {
        let rest = w.strip_prefix(STACK_OVERFLOW_TEST_BOOTARG)?;
        match rest.strip_prefix('=') {
            None if rest.is_empty() => Some(Ok(0)),
            Some(cpu) => Some(cpu.parse().map_err(|_| w)),
            None => None,
        }
    })
}

fn crash_test_requested(bootargs: Option<&str>) -> bool {
    bootarg(bootargs, CRASH_TEST_BOOTARG)
}

fn bootarg(bootargs: Option<&str>, word: &str) -> bool {
    bootargs.is_some_and(|args| args.split_ascii_whitespace().any(|w| w == word))
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // Not the logger: the console lock may be held, by this CPU even.
    let mut emit = dev::console::emergency_println;
    emit(format_args!("hyp: panic: {info}"));
    vm::crash::report_hyp_panic(
        arch::aarch64::translate::frame_pointer(),
        arch::aarch64::translate::read_hyp_stack_word,
        &mut emit,
    );
    power::halt_after_failure()
}

/// On the build machine this crate only hosts its unit tests.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the hypervisor runs at EL2 on AArch64: build it with scripts/build.sh and boot it with scripts/run.sh"
    );
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stack_overflow_test_names_its_cpu_by_the_whole_word() {
        use super::overflow_test_cpu as cpu;
        assert_eq!(cpu(Some("pvhyp.stack-overflow-test")), Some(Ok(0)));
        assert_eq!(cpu(Some("a pvhyp.stack-overflow-test=3 b")), Some(Ok(3)));
        // Named but not a number: the word, for the warning.
        assert_eq!(
            cpu(Some("pvhyp.stack-overflow-test=x")),
            Some(Err("pvhyp.stack-overflow-test=x"))
        );
        for none in [
            None,
            Some(""),
            Some("pvhyp.stack-overflow-tests"),
            Some("xpvhyp.stack-overflow-test"),
        ] {
            assert_eq!(cpu(none), None, "{none:?}");
        }
    }
}
