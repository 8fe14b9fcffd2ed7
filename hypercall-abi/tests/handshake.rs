//! Version negotiation, and the guest wrapper over a fake conduit that plays a 1.0 hypervisor.

mod common;

use hypercall_abi::{
    Call, Conduit, Error, Hypervisor, MemPerms, PsciCall, Regs, Version, VmInfo, decode_return,
    encode_return, live_features_in, negotiate, psci, standard,
};

#[test]
fn same_major_any_minor_is_accepted() {
    let v = |major, minor| Version::new(major, minor);
    assert_eq!(negotiate(v(1, 0), v(1, 0)), Ok(v(1, 0)));
    assert_eq!(negotiate(v(1, 0), v(1, 3)), Ok(v(1, 0)));
    assert_eq!(negotiate(v(1, 3), v(1, 0)), Ok(v(1, 3)));
    assert_eq!(negotiate(v(1, 0), v(2, 0)), Err(Error::VersionMismatch));
    assert_eq!(negotiate(v(2, 0), v(1, 0)), Err(Error::VersionMismatch));
    assert_eq!(negotiate(v(1, 0), v(0, 9)), Err(Error::VersionMismatch));
}

#[test]
fn version_encoding() {
    assert_eq!(Version::CURRENT, Version::new(1, 6));
    assert_eq!(Version::new(1, 3).to_u64(), 0x1_0003);
    assert_eq!(Version::from_u64(0x2_0001), Some(Version::new(2, 1)));
    assert_eq!(Version::from_u64(1 << 32), None);
    assert!(Version::new(1, 0).is_compatible_with(Version::new(1, 9)));
    assert!(!Version::new(1, 0).is_compatible_with(Version::new(2, 0)));
}

/// A model of a 1.0 hypervisor's dispatcher built only from this crate, as the real one is.
struct FakeHyp {
    version: Version,
    calls: Vec<Regs>,
    exited: Option<u64>,
}

impl FakeHyp {
    fn new(major: u16, minor: u16) -> FakeHyp {
        FakeHyp {
            version: Version::new(major, minor),
            calls: Vec::new(),
            exited: None,
        }
    }
}

impl Conduit for FakeHyp {
    fn call(&mut self, regs: &Regs) -> Regs {
        self.calls.push(*regs);
        let mut out = [0; 18];
        let ret: Vec<u64> = match Call::try_from(regs) {
            Err(e) => encode_return(Err(e)).to_vec(),
            // Calls made live after this hypervisor's minor are unknown to it.
            Ok(call) if !call.is_live() || call.since() > self.version => {
                encode_return(Err(Error::NotSupported)).to_vec()
            }
            Ok(call) => match call {
                Call::SmcccVersion => vec![standard::SMCCC_VERSION_1_2.into()],
                Call::SmcccArchFeatures { function_id } => {
                    vec![i64::from(standard::arch_features(function_id)) as u64]
                }
                Call::VendorHypCallUid => standard::VENDOR_HYP_UID.map(u64::from).to_vec(),
                Call::VendorHypRevision => standard::revision_regs(self.version).to_vec(),
                Call::Psci(PsciCall::Version) => vec![psci::PSCI_VERSION_1_1.into()],
                Call::Psci(PsciCall::Features { function_id }) => {
                    vec![i64::from(psci::features(function_id)) as u64]
                }
                Call::Psci(PsciCall::CpuOn { target_mpidr, .. }) => {
                    let code = if target_mpidr == 0 {
                        psci::psci_error::ALREADY_ON
                    } else {
                        psci::psci_error::INVALID_PARAMETERS
                    };
                    vec![i64::from(code) as u64]
                }
                Call::Psci(_) => vec![0],
                Call::AbiVersion { guest } => {
                    encode_return(negotiate(self.version, guest).map(|v| [v.to_u64(), 0, 0]))
                        .to_vec()
                }
                Call::AbiFeatures => {
                    encode_return(Ok([live_features_in(self.version), 0, 0])).to_vec()
                }
                Call::VmExit { status } => {
                    self.exited = Some(status);
                    encode_return(Err(Error::Denied)).to_vec()
                }
                Call::VmInfo => encode_return(Ok(VmInfo {
                    vm_index: 2,
                    vcpu_count: 1,
                    mem_available_bytes: 4096,
                }
                .to_values()))
                .to_vec(),
                Call::ConsoleWrite { len, .. } => encode_return(Ok([len.min(8), 0, 0])).to_vec(),
                _ => encode_return(Ok([0; 3])).to_vec(),
            },
        };
        out[..ret.len()].copy_from_slice(&ret);
        out
    }
}

fn hyp() -> Hypervisor<FakeHyp> {
    Hypervisor::new(FakeHyp::new(1, 0))
}

#[test]
fn standard_queries() {
    let mut h = hyp();
    assert_eq!(h.smccc_version(), 0x1_0002);
    assert_eq!(h.smccc_arch_features(standard::SMCCC_VERSION), 0);
    assert_eq!(h.smccc_arch_features(0x8000_8000), -1);
    assert_eq!(h.vendor_uid(), standard::VENDOR_HYP_UID);
    assert_eq!(h.vendor_revision(), (1, 0));
    assert_eq!(h.psci_version(), 0x1_0001);
    assert_eq!(h.psci_features(psci::PSCI_CPU_ON_64), 0);
    assert_eq!(h.psci_features(psci::PSCI_CPU_ON_32), 0);
    assert_eq!(h.psci_features(0x8400_0005), -1);
    assert_eq!(h.psci_cpu_on(0, 0x4008_0000, 0), -4);
    assert_eq!(h.psci_cpu_on(1, 0x4008_0000, 0), -2);
    assert_eq!(h.psci_affinity_info(0, 0), 0);
    assert_eq!(h.psci_cpu_suspend(0, 0, 0), 0);
    // What went over the wire is the SMC64 form.
    let last = h.conduit_mut().calls.last().copied().unwrap();
    assert_eq!(last[0], u64::from(psci::PSCI_CPU_SUSPEND_64));
}

#[test]
fn vendor_calls() {
    let mut h = hyp();
    assert_eq!(h.abi_version(), Ok(Version::new(1, 0)));
    assert_eq!(
        h.abi_version_for(Version::new(1, 3)),
        Ok(Version::new(1, 0))
    );
    assert_eq!(
        h.abi_version_for(Version::new(2, 0)),
        Err(Error::VersionMismatch)
    );
    assert_eq!(h.abi_features(), Ok(0x1_0703));
    assert_eq!(h.vm_yield(), Ok(()));
    assert_eq!(h.vm_info().map(|i| (i.vm_index, i.vcpu_count)), Ok((2, 1)));
    assert_eq!(h.console_write(0x4000_0000, 100), Ok(8));
    // Live only since 1.1, or still provisional: a 1.0 hypervisor does not know them.
    assert_eq!(
        h.mem_map(0x5000_0000, 1, MemPerms::RW),
        Err(Error::NotSupported)
    );
    assert_eq!(h.event_ack(3), Err(Error::NotSupported));
    assert_eq!(h.vm_exit(3), Error::Denied);
    assert_eq!(h.conduit_mut().exited, Some(3));
}

#[test]
fn compatibility_matrix() {
    // A 1.0 guest's fixture encodings against a 1.0 hypervisor get the fixture's answers.
    let mut fake = FakeHyp::new(1, 0);
    let in_1_0 = |c: &Call| c.is_live() && c.since() <= Version::new(1, 0);
    for s in common::samples().iter().filter(|s| in_1_0(&s.call)) {
        let Some(ret) = &s.ret else { continue };
        let out = fake.call(&s.regs);
        if matches!(s.call, Call::VmInfo | Call::ConsoleWrite { .. }) {
            continue; // answers depend on the VM
        }
        assert_eq!(&out[..ret.len()], &ret[..], "{}", s.name);
    }
    // A newer guest's unknown call reaches an older hypervisor as NOT_SUPPORTED.
    let mut regs = [0; 18];
    regs[0] = 0xC600_00FF;
    assert_eq!(
        decode_return(fake.call(&regs)[..4].try_into().unwrap()),
        Err(Error::NotSupported)
    );
    // The old guest's calls still work on a 1.7 hypervisor; another major is refused.
    let mut newer = Hypervisor::new(FakeHyp::new(1, 7));
    assert_eq!(newer.abi_version(), Ok(Version::new(1, 7)));
    let mut other = Hypervisor::new(FakeHyp::new(2, 0));
    assert_eq!(other.abi_version(), Err(Error::VersionMismatch));
}
