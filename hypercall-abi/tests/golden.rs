//! The golden fixture `tests/golden/v1.txt` freezes the ABI: every live call's register images,
//! every live layout, constant and error code. Provisional entries sit in their own section
//! and may change until they go live.
//!
//! A live entry never changes. Making calls live in a new minor 1.N: move their lines into a
//! new `[frozen 1.N]` section (with `since` 1.N in the catalog) and record that section's hash
//! in `FROZEN_HASHES`; sections already recorded stay byte-for-byte the same.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::mem::{align_of, offset_of, size_of};

use common::{hex_list, samples};
use hypercall_abi::{
    BOOT_INFO_MAGIC, BootInfo, CALLS, Call, DeviceInfo, Error, Version, abi, block, console,
    event::{EVENT_COUNT, EVENT_NONE},
    layout::{BatchEntry, BlockDesc, ChannelDesc, EventPage, RING_MAGIC, RingHeader},
    mem, psci, standard,
};

const FIXTURE: &str = include_str!("golden/v1.txt");

/// FNV-1a of each frozen section's normalized lines. Never edit an existing entry.
const FROZEN_HASHES: &[(&str, u64)] = &[
    ("frozen 1.0", 0xec71e4dad7e48c),
    ("frozen 1.1", 0xedf66f45705f1562),
    ("frozen 1.2", 0x22e190e66d7e574b),
    ("frozen 1.3", 0x7fd0e83aba44e965),
    ("frozen 1.4", 0xef1c30a09157a2a1),
    ("frozen 1.5", 0xbe4a760e7ee74896),
    ("frozen 1.6", 0xc8f5d1d7ea4a7608),
];

const PROVISIONAL: &str = "provisional";

fn frozen(v: Version) -> String {
    format!("frozen {v}")
}

macro_rules! layout_line {
    ($ty:ty { $($field:ident),* $(,)? }) => {{
        let mut line = format!(
            "layout {} size={} align={}",
            stringify!($ty),
            size_of::<$ty>(),
            align_of::<$ty>()
        );
        $(line += &format!(" {}@{}", stringify!($field), offset_of!($ty, $field));)*
        line
    }};
}

/// What the crate says, as (section, line).
fn expected() -> Vec<(String, String)> {
    let v1_0 = frozen(Version::new(1, 0));
    let mut out = Vec::new();
    for s in samples() {
        let info = CALLS.iter().find(|c| c.name == s.name).unwrap();
        let section = if info.live {
            frozen(info.since)
        } else {
            PROVISIONAL.into()
        };
        let bit = info.feature_bit().map_or("-".into(), |b| b.to_string());
        let args = hex_list(&s.regs[1..=usize::from(info.args)]);
        let ret = s.ret.as_deref().map_or("-".into(), hex_list);
        let since = if info.live {
            info.since.to_string()
        } else {
            "-".into()
        };
        let line = format!(
            "call {} id={:#010x} since={since} bit={bit} args={args} ret={ret}",
            s.name, info.function_id
        );
        out.push((section, line));
    }
    for e in Error::ALL {
        out.push((
            v1_0.clone(),
            format!("error {} code={}", e.name(), e.code()),
        ));
    }
    let v1_1 = frozen(Version::new(1, 1));
    let v1_2 = frozen(Version::new(1, 2));
    let v1_3 = frozen(Version::new(1, 3));
    let consts: [(&str, String, bool); 15] = [
        ("BOOT_INFO_MAGIC", format!("{BOOT_INFO_MAGIC:#x}"), true),
        (
            "VENDOR_HYP_BASE",
            format!("{:#x}", abi::VENDOR_HYP_BASE),
            true,
        ),
        (
            "VENDOR_HYP_UID",
            hex_list(&standard::VENDOR_HYP_UID.map(u64::from)),
            true,
        ),
        (
            "SMCCC_VERSION_1_2",
            format!("{:#x}", standard::SMCCC_VERSION_1_2),
            true,
        ),
        (
            "PSCI_VERSION_1_1",
            format!("{:#x}", psci::PSCI_VERSION_1_1),
            true,
        ),
        (
            "CONSOLE_CHUNK_MAX",
            console::CONSOLE_CHUNK_MAX.to_string(),
            true,
        ),
        ("EVENT_NONE", format!("{EVENT_NONE:#x}"), true),
        ("PAGE_SIZE", mem::PAGE_SIZE.to_string(), true),
        ("MEM_BATCH_MAX", mem::MEM_BATCH_MAX.to_string(), true),
        ("EVENT_COUNT", EVENT_COUNT.to_string(), true),
        ("RING_MAGIC", format!("{RING_MAGIC:#x}"), true),
        (
            "CONSOLE_RING_ENTRIES",
            console::CONSOLE_RING_ENTRIES.to_string(),
            true,
        ),
        (
            "BLOCK_RING_ENTRIES",
            block::BLOCK_RING_ENTRIES.to_string(),
            true,
        ),
        (
            "BLOCK_SECTOR_SIZE",
            block::BLOCK_SECTOR_SIZE.to_string(),
            true,
        ),
        (
            "BLOCK_TRANSFER_MAX",
            block::BLOCK_TRANSFER_MAX.to_string(),
            true,
        ),
    ];
    for (name, value, live) in consts {
        let section = match (live, name) {
            (true, "PAGE_SIZE" | "MEM_BATCH_MAX") => v1_1.clone(),
            (true, "EVENT_COUNT" | "RING_MAGIC" | "CONSOLE_RING_ENTRIES") => v1_2.clone(),
            (true, "BLOCK_RING_ENTRIES" | "BLOCK_SECTOR_SIZE" | "BLOCK_TRANSFER_MAX") => {
                v1_3.clone()
            }
            (true, _) => v1_0.clone(),
            (false, _) => PROVISIONAL.into(),
        };
        out.push((section, format!("const {name}={value}")));
    }
    out.push((
        v1_0.clone(),
        layout_line!(BootInfo {
            magic,
            abi_version,
            vm_index,
            vcpu_count,
            mem_quota_bytes,
            image_start,
            image_end,
            ipa_bits,
            flags,
            name_len,
            cmdline_len,
            name,
            cmdline,
            event_page_ipa,
            console_ring_ipa,
            block_ring_ipa,
            pl011_ipa,
            timer_event,
            console_event,
            block_event,
            channel_count,
            reserved,
        }),
    ));
    let v1_6 = frozen(Version::new(1, 6));
    out.push((
        v1_6.clone(),
        format!(
            "const BOOT_INFO_DEVICE_OFFSET={}",
            offset_of!(BootInfo, device)
        ),
    ));
    out.push((
        v1_6,
        layout_line!(DeviceInfo {
            pci_id,
            requester_id,
            bar_ipa,
            bar_size,
            virtio_common,
            virtio_notify,
            virtio_notify_multiplier,
            virtio_isr,
            virtio_device,
            event,
        }),
    ));
    out.push((v1_1.clone(), layout_line!(BatchEntry { raw })));
    out.push((
        v1_2.clone(),
        layout_line!(EventPage {
            pending,
            masked,
            reserved
        }),
    ));
    out.push((
        v1_2.clone(),
        layout_line!(RingHeader {
            magic,
            entries,
            entry_size,
            flags,
            reserved0,
            producer,
            reserved1,
            consumer,
            reserved2,
        }),
    ));
    out.push((
        v1_3.clone(),
        layout_line!(BlockDesc {
            op,
            status,
            sector,
            buf_ipa,
            len,
            reserved
        }),
    ));
    out.push((
        frozen(Version::new(1, 4)),
        layout_line!(ChannelDesc { len, flags, data }),
    ));
    for (name, id, args, ret) in standard_answers() {
        out.push((
            STANDARD_ANSWERS.into(),
            format!(
                "answer {name} id={id:#010x} args={} ret={}",
                hex_list(&args),
                hex_list(&[ret as u64])
            ),
        ));
    }
    out
}

/// The section of the standard calls an unmodified Linux makes as it boots (drivers/firmware/
/// psci, smccc; arch/arm64/kernel/proton-pack.c), with the answers their specifications give a
/// hypervisor that implements none of the optional calls. They follow the Arm specifications,
/// not our ABI's versions, so they are checked, not frozen.
const STANDARD_ANSWERS: &str = "standard answers";

fn standard_answers() -> Vec<(&'static str, u32, Vec<u64>, i64)> {
    use psci::{PSCI_FEATURES, PSCI_VERSION};
    use standard::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
    let not_supported = Error::NotSupported.code();
    let psci_features = |id: u32| {
        (
            "PSCI_FEATURES",
            PSCI_FEATURES,
            vec![u64::from(id)],
            i64::from(psci::features(id)),
        )
    };
    let arch_features = |id: u32| {
        (
            "SMCCC_ARCH_FEATURES",
            SMCCC_ARCH_FEATURES,
            vec![u64::from(id)],
            i64::from(standard::arch_features(id)),
        )
    };
    vec![
        (
            "PSCI_VERSION",
            PSCI_VERSION,
            vec![],
            i64::from(psci::PSCI_VERSION_1_1),
        ),
        psci_features(SMCCC_VERSION),
        psci_features(psci::PSCI_CPU_SUSPEND_64),
        psci_features(smccc::psci::PSCI_SYSTEM_SUSPEND_64),
        psci_features(smccc::psci::PSCI_SYSTEM_RESET2_64),
        (
            "PSCI_MIGRATE_INFO_TYPE",
            smccc::psci::PSCI_MIGRATE_INFO_TYPE,
            vec![],
            not_supported,
        ),
        (
            "SMCCC_VERSION",
            SMCCC_VERSION,
            vec![],
            i64::from(standard::SMCCC_VERSION_1_2),
        ),
        arch_features(standard::SMCCC_ARCH_WORKAROUND_1),
        arch_features(standard::SMCCC_ARCH_WORKAROUND_2),
        arch_features(standard::SMCCC_ARCH_WORKAROUND_3),
        arch_features(standard::SMCCC_ARCH_SOC_ID),
        (
            "TRNG_VERSION",
            standard::TRNG_VERSION,
            vec![],
            not_supported,
        ),
    ]
}

#[test]
fn linux_probes_get_the_answers_the_specifications_give() {
    let answer = |name: &str, arg: u32| {
        standard_answers()
            .into_iter()
            .find(|(n, _, args, _)| *n == name && args.first() == Some(&u64::from(arg)))
            .map(|(.., ret)| ret)
    };
    // Without this Linux never asks SMCCC_VERSION and logs "SMC Calling Convention v1.0".
    assert_eq!(answer("PSCI_FEATURES", standard::SMCCC_VERSION), Some(0));
    // Not mitigated by us: a promise (0) or "unaffected" (1) would mislead Linux.
    for workaround in [
        standard::SMCCC_ARCH_WORKAROUND_1,
        standard::SMCCC_ARCH_WORKAROUND_2,
        standard::SMCCC_ARCH_WORKAROUND_3,
    ] {
        assert_eq!(answer("SMCCC_ARCH_FEATURES", workaround), Some(-1));
    }
}

/// The fixture's sections: `[name]` headers, `#` comments, blank lines ignored.
fn parse(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut sections = BTreeMap::<String, Vec<String>>::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
        } else {
            let name = current.clone().expect("fixture line before any [section]");
            sections.get_mut(&name).unwrap().push(line.to_string());
        }
    }
    sections
}

fn fnv1a(lines: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lines.join("\n").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[test]
fn fixture_matches_the_crate() {
    let fixture = parse(FIXTURE);
    let mut want = BTreeMap::<String, BTreeSet<String>>::new();
    for (section, line) in expected() {
        want.entry(section).or_default().insert(line);
    }
    let names: BTreeSet<&String> = fixture.keys().chain(want.keys()).collect();
    let mut problems = Vec::new();
    for name in names {
        let have: BTreeSet<String> = fixture.get(name).into_iter().flatten().cloned().collect();
        let empty = BTreeSet::new();
        let need = want.get(name).unwrap_or(&empty);
        for l in need.difference(&have) {
            problems.push(format!("crate says, fixture lacks [{name}]: {l}"));
        }
        for l in have.difference(need) {
            problems.push(format!("fixture says, crate differs [{name}]: {l}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the ABI and tests/golden/v1.txt disagree (a live entry must never change):\n{}",
        problems.join("\n")
    );
}

#[test]
fn frozen_sections_never_change() {
    let fixture = parse(FIXTURE);
    for (name, lines) in fixture.iter().filter(|(n, _)| n.starts_with("frozen ")) {
        let hash = fnv1a(lines);
        match FROZEN_HASHES.iter().find(|(n, _)| n == name) {
            Some((_, h)) => assert_eq!(
                *h, hash,
                "[{name}] of tests/golden/v1.txt changed (hash now {hash:#x}): frozen entries never change"
            ),
            None => panic!("new frozen section [{name}]: record ({name:?}, {hash:#x})"),
        }
    }
    for (name, _) in FROZEN_HASHES {
        assert!(
            fixture.contains_key(*name),
            "frozen section [{name}] removed"
        );
    }
}

#[test]
fn every_catalog_entry_has_a_sample_and_decodes_to_it() {
    let samples = samples();
    for info in CALLS {
        let s = samples.iter().find(|s| s.name == info.name);
        let s = s.unwrap_or_else(|| panic!("{} has no sample/fixture entry", info.name));
        assert_eq!(Call::try_from(&s.regs), Ok(s.call), "{}", info.name);
        assert!(s.regs[1 + usize::from(info.args)..].iter().all(|&r| r == 0));
        // The typed value encodes to the catalog's ID (the SMC64 one for PSCI pairs).
        let encoded = s.call.function_id();
        assert!(encoded == info.function_id || info.name.ends_with("_32"));
        assert_eq!(s.call.is_live(), info.live, "{}", info.name);
    }
    assert_eq!(samples.len(), CALLS.len());
}

#[test]
fn catalog_ids_are_unique_and_vendor_bits_distinct() {
    let ids: BTreeSet<u32> = CALLS.iter().map(|c| c.function_id).collect();
    assert_eq!(ids.len(), CALLS.len());
    let bits: Vec<u32> = CALLS.iter().filter_map(|c| c.feature_bit()).collect();
    let unique: BTreeSet<u32> = bits.iter().copied().collect();
    assert_eq!(bits.len(), unique.len());
    for c in CALLS
        .iter()
        .filter(|c| c.function_id & 0xFF00_0000 == abi::VENDOR_HYP_BASE)
    {
        assert!(c.feature_bit().is_some(), "{} has no feature bit", c.name);
    }
}

/// Every vendor ID no call has is `NOT_SUPPORTED`, whatever its arguments: the holes of the
/// decode's jump on the feature bit, and the IDs outside the 8 families of 8 calls.
#[test]
fn every_vendor_id_without_a_call_is_not_supported() {
    for n in 0..=0xffu32 {
        let id = abi::vendor_id(n);
        if CALLS.iter().any(|c| c.function_id == id) {
            continue;
        }
        for args in [0, 1, u64::MAX] {
            let mut regs = [args; 18];
            regs[0] = u64::from(id);
            assert_eq!(Call::try_from(&regs), Err(Error::NotSupported), "{id:#x}");
        }
    }
}

#[test]
#[ignore = "prints the lines the fixture should hold; for writing new entries"]
fn print_fixture() {
    let mut by = BTreeMap::<String, Vec<String>>::new();
    for (s, l) in expected() {
        by.entry(s).or_default().push(l);
    }
    for (s, lines) in by {
        println!("[{s}]");
        for l in lines {
            println!("{l}");
        }
        println!();
    }
}

/// What a dispatch that leaves out the live bits' test relies on (`Call::ALL_VENDOR_CALLS_LIVE`):
/// it says so exactly when every vendor ID a call has is live, and then a vendor ID is live
/// exactly when a call has it.
#[test]
fn all_vendor_calls_live_says_what_vendor_is_live_would() {
    let all_live = CALLS
        .iter()
        .filter(|c| abi::feature_bit(c.function_id).is_some())
        .all(|c| Call::vendor_is_live(c.function_id) == Some(true));
    assert_eq!(Call::ALL_VENDOR_CALLS_LIVE, all_live);
    if Call::ALL_VENDOR_CALLS_LIVE {
        for n in 0..=0xffu32 {
            let id = abi::vendor_id(n);
            let has_call = CALLS.iter().any(|c| c.function_id == id);
            let with_bit = abi::feature_bit(id).is_some();
            assert_eq!(
                Call::vendor_is_live(id) == Some(true),
                with_bit && has_call,
                "{id:#x}"
            );
        }
    }
}
