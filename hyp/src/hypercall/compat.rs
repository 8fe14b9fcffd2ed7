//! The compatibility matrix, on the host: guests built against each frozen version of the ABI
//! (the golden fixture's register images) talk to this hypervisor's real dispatcher and get
//! the documented answers; calls from a newer guest that this hypervisor does not know are
//! NOT_SUPPORTED; another major is refused.

use super::Action;
use super::fake::FakeVm;
use super::fake::dispatch;
use hypercall_abi::layout::{BatchEntry, BatchOp};
use hypercall_abi::{Error, MemPerms, Regs, Version, live_features_in};
use std::string::String;
use std::vec::Vec;

const FIXTURE: &str = include_str!("../../../hypercall-abi/tests/golden/v1.txt");

/// A frozen `call` line of the fixture.
struct Frozen {
    name: String,
    since: Version,
    regs: Regs,
    ret: Option<Vec<u64>>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("fixture hex")
}

fn list(s: &str) -> Vec<u64> {
    let inner = s.trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .filter(|x| !x.is_empty())
        .map(hex)
        .collect()
}

fn frozen_calls() -> Vec<Frozen> {
    let mut section = "";
    let mut out = Vec::new();
    for line in FIXTURE.lines() {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if !section.starts_with("[frozen ") || !line.starts_with("call ") {
            continue;
        }
        let field = |key: &str| {
            line.split(' ')
                .find_map(|w| w.strip_prefix(key))
                .expect("fixture field")
        };
        let since = field("since=").split_once('.').expect("version");
        let mut regs: Regs = [0; 18];
        regs[0] = hex(field("id="));
        for (r, v) in regs[1..].iter_mut().zip(list(field("args="))) {
            *r = v;
        }
        out.push(Frozen {
            name: line.split(' ').nth(1).expect("name").into(),
            since: Version::new(
                since.0.parse().expect("major"),
                since.1.parse().expect("minor"),
            ),
            regs,
            ret: Some(field("ret=")).filter(|r| *r != "-").map(list),
        });
    }
    out
}

const PAGE: u64 = crate::addr::PAGE_SIZE;

/// The VM each fixture answer describes (documented in the fixture's samples): VM index 1, one
/// vCPU, 1 MiB of quota, and whatever the call's arguments need mapped.
fn context_for(name: &str) -> FakeVm {
    // A VM that owns a device (stream 8), whose DMA the SMMU stopped once at 0x5000_0000: an
    // index of its own, the device table being the process's.
    if let "EVENT_DEVICE_ACK" | "EVENT_DEVICE_FAULTS" = name {
        let vm = FakeVm::empty(40, 256);
        crate::vm::device::irq::route(40, 8, None).unwrap();
        crate::vm::device::irq::dma_fault(8, 0x5000_0000);
        return vm;
    }
    let mut vm = FakeVm::empty(1, 256);
    let m = &mut vm.memory;
    match name {
        "CONSOLE_WRITE" => {
            m.map(0x4008_0000, 1, MemPerms::RW).unwrap();
            m.write(0x4008_0000, b"hello, world").unwrap();
        }
        // The VM's event page, read-only until the call.
        "EVENT_SHARED_ACK" => {
            m.map_pinned(0x4008_1000, 1, MemPerms::READ, crate::vm::mem::Pin::Hyp)
                .unwrap();
            vm.events = crate::vm::event::Events::new(0).at_page(0x4008_1000);
        }
        // The buffer the input would go to (none is waiting).
        "CONSOLE_READ" => m.map(0x4008_0000, 1, MemPerms::RW).unwrap(),
        "MEM_PROTECT" | "MEM_QUERY" => m.map(0x5000_0000, 16, MemPerms::RW).unwrap(),
        "CHANNEL_INFO" | "CHANNEL_NOTIFY" => vm.channels.push(crate::vm::channel::ChannelEnd {
            channel: 0,
            ipa: crate::vm::channel::channel_ipa(0),
            frames: std::vec![0x7000_0000],
            peer_vm: 1,
            peer_event: 8,
            sends_on_first: true,
        }),
        "CONSOLE_NOTIFY" => {
            // 32 bytes produced into the output ring.
            m.map(0x4009_0000, 1, MemPerms::RW).unwrap();
            m.write(0x4009_0000 + 192, &[b'x'; 32]).unwrap();
            m.write(0x4009_0000 + 64, &32u32.to_le_bytes()).unwrap();
            vm.console_io.ring_ipa = Some(0x4009_0000);
        }
        "MEM_BATCH" => {
            // 3 pages of quota left when the list of 512 maps runs.
            m.map(0x5100_0000, 1, MemPerms::RW).unwrap();
            m.map(0x6000_0000, 252, MemPerms::RW).unwrap();
            let list: Vec<u8> = (0..512)
                .map(|i| {
                    BatchEntry::new(BatchOp::Map, 0x5200_0000 + i * PAGE, MemPerms::RW)
                        .unwrap()
                        .raw
                })
                .flat_map(u64::to_le_bytes)
                .collect();
            m.write(0x5100_0000, &list).unwrap();
        }
        "BLOCK_INFO" | "BLOCK_SUBMIT" => {
            // A 16 MiB region (0x8000 sectors) and its ring, four requests produced (whatever
            // they hold, each is taken and answered in its status).
            m.map(0x4009_1000, 1, MemPerms::RW).unwrap();
            vm.block_io = Some(crate::vm::block::BlockIo::new(
                0x4009_1000,
                vm.index as usize,
                crate::vm::block::Region {
                    first_sector: 0,
                    sectors: 0x8000,
                },
            ));
        }
        _ => {}
    }
    vm
}

#[test]
fn every_frozen_call_gets_its_documented_answer() {
    let calls = frozen_calls();
    assert!(calls.len() >= 20, "the fixture's frozen calls were found");
    for c in calls.iter() {
        let mut vm = context_for(&c.name);
        let mut regs = c.regs;
        let action = dispatch(&mut vm, &mut regs);
        let Some(ret) = &c.ret else {
            assert_ne!(
                action,
                Action::Resume,
                "{} does not return to the guest",
                c.name
            );
            continue;
        };
        let got = &regs[..ret.len()];
        match c.name.as_str() {
            // Answers that name the hypervisor's own version: a newer minor of the same major.
            "ABI_VERSION" => {
                assert_eq!(got[0], 0, "{}", c.name);
                let v = Version::from_u64(got[1]).unwrap();
                assert!(v.major == c.since.major && v >= c.since, "{}: {v}", c.name);
            }
            "VENDOR_HYP_REVISION" => assert!(got[0] == ret[0] && got[1] >= ret[1], "{}", c.name),
            "ABI_FEATURES" => {
                assert_eq!(got[0], 0);
                assert_eq!(
                    got[1] & live_features_in(c.since),
                    live_features_in(c.since),
                    "a superset"
                );
            }
            _ => assert_eq!(got, &ret[..], "{} (frozen since {})", c.name, c.since),
        }
    }
}

/// The fixture's `[standard answers]`: (name, registers sent, x0 expected).
fn standard_answers() -> Vec<(String, Regs, u64)> {
    let mut in_section = false;
    let mut out = Vec::new();
    for line in FIXTURE.lines() {
        if line.starts_with('[') {
            in_section = line == "[standard answers]";
            continue;
        }
        let Some(rest) = line.strip_prefix("answer ").filter(|_| in_section) else {
            continue;
        };
        let field = |key: &str| {
            rest.split(' ')
                .find_map(|w| w.strip_prefix(key))
                .expect("fixture field")
        };
        let mut regs: Regs = [0; 18];
        regs[0] = hex(field("id="));
        for (r, v) in regs[1..].iter_mut().zip(list(field("args="))) {
            *r = v;
        }
        let name = rest.split(' ').next().expect("name").into();
        out.push((name, regs, list(field("ret="))[0]));
    }
    out
}

#[test]
fn linux_boot_probes_get_the_answers_the_specifications_give() {
    let answers = standard_answers();
    assert!(
        answers.len() >= 10,
        "the fixture's standard answers were found"
    );
    for (name, sent, want) in answers {
        let mut vm = FakeVm::default();
        let mut regs = sent;
        assert_eq!(dispatch(&mut vm, &mut regs), Action::Resume, "{name}");
        assert_eq!(regs[0], want, "{name} {:#x?}", &sent[..2]);
        assert_eq!(regs[4..], sent[4..], "{name}: x4.. changed");
    }
}

#[test]
fn calls_of_a_newer_guest_are_not_supported() {
    let mut vm = FakeVm::default();
    // IDs a later minor may define in each of our families, and beyond them.
    for id in [
        0xC600_0002u64,
        0xC600_0013,
        0xC600_0035,
        0xC600_0048,
        0xC600_0070,
        0xC600_FF00,
    ] {
        let mut regs: Regs = [0; 18];
        regs[0] = id;
        dispatch(&mut vm, &mut regs);
        assert_eq!(regs[0] as i64, Error::NotSupported.code(), "{id:#x}");
    }
}

#[test]
fn a_guest_of_another_major_is_refused() {
    let mut vm = FakeVm::default();
    for major in [0, 2, 9] {
        let mut regs = hypercall_abi::Call::AbiVersion {
            guest: Version::new(major, 0),
        }
        .to_regs();
        dispatch(&mut vm, &mut regs);
        assert_eq!(regs[0] as i64, Error::VersionMismatch.code());
    }
}

/// Whether the guest sees the call's answer (the rest end or restart the VM or the vCPU).
fn returns_to_the_guest(action: &Action) -> bool {
    !matches!(
        action,
        Action::Exit(_) | Action::Kill(_) | Action::Reset | Action::CpuOff
    )
}

/// A register value the guest left, recognisable when it comes back.
fn sentinel(i: usize) -> u64 {
    0xA5A5_5A5A_0000_0000 | i as u64
}

#[test]
fn every_call_keeps_the_registers_it_does_not_answer_in() {
    let calls = frozen_calls();
    for c in hypercall_abi::CALLS {
        assert!(
            calls.iter().any(|f| f.name == c.name),
            "{} has a frozen fixture line",
            c.name
        );
    }
    for c in calls.iter() {
        let Some(ret) = &c.ret else { continue };
        let info = hypercall_abi::CallInfo::find(c.regs[0] as u32).expect("a known call");
        let mut vm = context_for(&c.name);
        let mut regs = c.regs;
        for (i, r) in regs.iter_mut().enumerate().skip(1 + usize::from(info.args)) {
            *r = sentinel(i);
        }
        let sent = regs;
        let action = dispatch(&mut vm, &mut regs);
        assert!(returns_to_the_guest(&action), "{}", c.name);
        // docs/ABI.md: a call changes only its result registers (x0..x3 for vendor calls,
        // what the specification defines for standard ones).
        for i in ret.len()..regs.len() {
            assert_eq!(regs[i], sent[i], "{}: x{i} changed", c.name);
        }
    }
}

#[test]
fn random_arguments_never_leak_or_clobber_registers() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let unknown = [0xC600_00FFu32, 0x8400_00EE, 0x1234_5678, 0xC600_FF00];
    let ids = hypercall_abi::CALLS
        .iter()
        .map(|c| c.function_id)
        .chain(unknown);
    for id in ids {
        for round in 0..500 {
            let mut vm = FakeVm::default();
            let mut regs: Regs = core::array::from_fn(|_| next());
            // Small values half of the time, so calls get past their argument checks.
            if round % 2 == 0 {
                for r in regs[1..4].iter_mut() {
                    *r &= 0xff;
                }
            }
            regs[0] = (regs[0] & !0xffff_ffff) | u64::from(id);
            let sent = regs;
            let action = dispatch(&mut vm, &mut regs);
            if !returns_to_the_guest(&action) {
                continue;
            }
            assert_eq!(regs[4..], sent[4..], "{id:#x}: x4..x17 changed");
            let vendor = id >> 24 == 0xC6;
            if (vendor || unknown.contains(&id)) && regs[0] != 0 {
                // A refused call answers its error and nothing else.
                assert_eq!(regs[1..4], [0; 3], "{id:#x}: an error with values");
            }
        }
    }
}

#[test]
fn a_guest_sees_the_revision_it_was_built_for() {
    let revision = |vm: &mut FakeVm| {
        let mut regs = hypercall_abi::Call::VendorHypRevision.to_regs();
        dispatch(vm, &mut regs);
        (regs[0], regs[1])
    };
    let handshake = |vm: &mut FakeVm, major, minor| {
        let mut regs = hypercall_abi::Call::AbiVersion {
            guest: Version::new(major, minor),
        }
        .to_regs();
        dispatch(vm, &mut regs);
    };
    let current = (
        u64::from(Version::CURRENT.major),
        u64::from(Version::CURRENT.minor),
    );
    let mut vm = FakeVm::default();
    assert_eq!(revision(&mut vm), current, "no handshake: ours");
    // A refused major is not a handshake.
    handshake(&mut vm, 2, 0);
    // The released 1.4 guest: its boot handshake, then its selftest's newer-minor probe.
    handshake(&mut vm, 1, 4);
    handshake(&mut vm, 1, 5);
    assert_eq!(revision(&mut vm), (1, 4));
    let mut newer = FakeVm::default();
    handshake(&mut newer, 1, Version::CURRENT.minor + 1);
    assert_eq!(revision(&mut newer), current, "never above ours");
}
