//! pv-guest: a small paravirtualized kernel for EL1.
//!
//! It never probes hardware and assumes nothing about its memory: it reads the boot-info page
//! the hypervisor hands it in x0, states its ABI version, and does all I/O by hypercall. Its
//! command line names the program it runs; the program's result is the VM's exit status.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

#[cfg(target_os = "none")]
extern crate alloc;

mod arch;
mod console;
mod drivers;
mod events;
mod fault;
mod mm;
mod programs;

#[cfg(target_os = "none")]
use hypercall_abi::{BootInfo, Hvc, Hypervisor};

/// The hypervisor, through the HVC conduit.
#[cfg(target_os = "none")]
pub fn hv() -> Hypervisor<Hvc> {
    Hypervisor::new(Hvc)
}

/// Ends this VM with `status`.
#[cfg(target_os = "none")]
pub fn exit(status: u64) -> ! {
    console::CONSOLE.lock().flush();
    let refused = hv().vm_exit(status);
    // Only reached if the hypervisor refused to end us: say so, then stop for good.
    println!("vm_exit refused: {refused}");
    loop {
        aarch64_wfi();
    }
}

#[cfg(target_os = "none")]
fn aarch64_wfi() {
    // SAFETY: WFI only waits; the hypervisor traps it and runs others.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
}

/// The boot-info page's IPA, for code that runs outside `guest_main`'s call tree (vectors).
static BOOT_INFO: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many times this VM restarted itself (x1 at entry).
static RESTARTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many times this VM restarted itself with PSCI SYSTEM_RESET.
pub fn restarts() -> u64 {
    RESTARTS.load(core::sync::atomic::Ordering::SeqCst)
}

/// The boot-info page the hypervisor gave us.
#[cfg(target_os = "none")]
pub fn boot_info() -> &'static BootInfo {
    let ipa = BOOT_INFO.load(core::sync::atomic::Ordering::SeqCst);
    // SAFETY: set once in guest_main before anything can call this; the page stays mapped
    // read-only for the VM's life and BootInfo is plain integers.
    unsafe { &*(ipa as *const BootInfo) }
}

/// Exit status when the boot-info page is not one we understand.
const STATUS_BAD_BOOT_INFO: u64 = 90;
/// Exit status when the hypervisor refuses our ABI version.
const STATUS_VERSION_REFUSED: u64 = 91;
/// Exit status when the stage-1 map cannot be built.
const STATUS_NO_MMU: u64 = 92;

#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn guest_main(boot_info_ipa: u64, restarts: u64) -> ! {
    // SAFETY: the hypervisor maps the boot-info page at this IPA for our whole life; the MMU is
    // off, so the IPA is the address (and once it is on, stage 1 maps this page to itself);
    // BootInfo is plain integers, valid for any bytes.
    let info: &'static BootInfo = unsafe { &*(boot_info_ipa as *const BootInfo) };
    BOOT_INFO.store(boot_info_ipa, core::sync::atomic::Ordering::SeqCst);
    RESTARTS.store(restarts, core::sync::atomic::Ordering::SeqCst);
    if !info.is_valid() {
        println!("boot info at {boot_info_ipa:#x} is not valid");
        exit(STATUS_BAD_BOOT_INFO);
    }
    console::init(info);
    match hv().abi_version() {
        Ok(v) => println!(
            "ABI {}.{} (hypervisor), built for {}.{}; running \"{}\"",
            v.major,
            v.minor,
            hypercall_abi::Version::CURRENT.major,
            hypercall_abi::Version::CURRENT.minor,
            info.cmdline()
        ),
        Err(e) => {
            println!(
                "the hypervisor refused ABI {:?}: {e}",
                hypercall_abi::Version::CURRENT
            );
            exit(STATUS_VERSION_REFUSED);
        }
    }
    events::init(info);
    let cmd = programs::parse(info.cmdline());
    if let Err(e) = mm::init(info, boot_info_ipa, cmd.mmu) {
        println!("cannot build the stage-1 map: {e}");
        exit(STATUS_NO_MMU);
    }
    exit(programs::run(info, &cmd))
}

/// A secondary vCPU (PSCI CPU_ON, from `secondary_entry`): the MMU on with vCPU 0's tables,
/// then its part of the program; it powers itself off when done.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: u64) -> ! {
    mm::stage1::enable_secondary();
    programs::secondary(index as usize);
    let refused = hv().psci_cpu_off();
    println!("vCPU {index}: CPU_OFF refused: {refused}");
    loop {
        aarch64_wfi();
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {info}");
    exit(101)
}

/// On the build machine this crate only hosts its unit tests.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "pv-guest runs at EL1 under pvhyp: build it with scripts/build.sh and boot it with scripts/run.sh"
    );
    std::process::exit(2);
}
