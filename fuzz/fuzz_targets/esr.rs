//! Exception syndrome decoding (`hyp/src/arch/aarch64/esr.rs`): ESR_EL2, FAR_EL2 and HPFAR_EL2
//! are what a guest's exception leaves behind, so every value must decode.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pvhyp_fuzz::esr::{Class, DataAccess, Syndrome, SysRegAccess, injected_abort_syndrome};

#[derive(Arbitrary, Debug)]
struct Input {
    esr: u64,
    far: u64,
    hpfar: u64,
    from_el1: bool,
}

/// The exception class of each named class (the architecture's EC values).
fn ec_of(class: Class) -> Option<u8> {
    Some(match class {
        Class::Unknown => 0x00,
        Class::WfiWfe => 0x01,
        Class::Fp => 0x07,
        Class::PointerAuth => 0x09,
        Class::Hvc64 => 0x16,
        Class::Smc64 => 0x17,
        Class::SysReg => 0x18,
        Class::Sve => 0x19,
        Class::Sme => 0x1d,
        Class::InstructionAbortLower => 0x20,
        Class::InstructionAbortSame => 0x21,
        Class::PcAlignment => 0x22,
        Class::DataAbortLower => 0x24,
        Class::DataAbortSame => 0x25,
        Class::SpAlignment => 0x26,
        Class::SError => 0x2f,
        Class::Brk => 0x3c,
        Class::Other(_) => return None,
    })
}

/// Every class with a name.
const NAMED: [Class; 17] = [
    Class::Unknown,
    Class::WfiWfe,
    Class::Fp,
    Class::PointerAuth,
    Class::Hvc64,
    Class::Smc64,
    Class::SysReg,
    Class::Sve,
    Class::Sme,
    Class::InstructionAbortLower,
    Class::InstructionAbortSame,
    Class::PcAlignment,
    Class::DataAbortLower,
    Class::DataAbortSame,
    Class::SpAlignment,
    Class::SError,
    Class::Brk,
];

/// The ECs of instruction and data aborts, from a lower EL and from the same EL.
const ABORTS: [u8; 4] = [0x20, 0x21, 0x24, 0x25];

fuzz_target!(|input: Input| {
    let s = Syndrome::decode(input.esr, input.far, input.hpfar);
    let ec = ((input.esr >> 26) & 0x3f) as u8;
    match s.class {
        Class::Other(other) => {
            assert_eq!(other, ec);
            let named = NAMED.iter().find(|&&c| ec_of(c) == Some(ec));
            assert!(named.is_none(), "EC {ec:#x} is {named:?}, decoded as Other");
        }
        named => assert_eq!(ec_of(named), Some(ec)),
    }
    assert_eq!(u64::from(s.iss), input.esr & 0x1ff_ffff);
    assert_eq!(s.il32, input.esr & (1 << 25) != 0);
    assert_eq!(s.far, input.far);
    // The IPA: HPFAR's page number with FAR's offset in the page, within 52 bits.
    assert_eq!(s.ipa & 0xfff, input.far & 0xfff);
    assert!(s.ipa < 1 << 52);
    let text = s.to_string();
    assert!(text.starts_with("ESR ") && text.contains(" FAR "), "{text}");
    let _ = (s.fault_status(), s.is_write());

    let access = DataAccess::decode(&s);
    assert_eq!(access.is_some(), s.iss & (1 << 24) != 0);
    if let Some(a) = access {
        assert!([1, 2, 4, 8].contains(&a.size) && a.reg < 32);
        assert_eq!(a.is_write, s.is_write());
    }

    // A trapped MSR/MRS: the fields re-encode to the ISS bits they came from.
    let sys = SysRegAccess::decode(s.iss);
    let (op0, op1, crn, crm, op2) = sys.reg;
    assert!(op0 < 4 && op1 < 8 && crn < 16 && crm < 16 && op2 < 8 && sys.rt < 32);
    let encoded = u32::from(op0) << 20
        | u32::from(op2) << 17
        | u32::from(op1) << 14
        | u32::from(crn) << 10
        | u32::from(sys.rt) << 5
        | u32::from(crm) << 1
        | u32::from(sys.is_read);
    assert_eq!(encoded, s.iss & 0x3f_ffff);

    // What the guest sees of an injected abort: an abort class, 32-bit, only WnR and the
    // fault status kept.
    let injected = injected_abort_syndrome(&s, input.from_el1);
    assert!(
        injected >> 32 == 0 && injected & (1 << 25) != 0,
        "{injected:#x}"
    );
    assert!(ABORTS.contains(&((injected >> 26) as u8)), "{injected:#x}");
    assert_eq!(injected & 0x1ff_ffff & !0x7f, 0, "{injected:#x}");
    let again = Syndrome::decode(injected, input.far, 0);
    assert_eq!(again.fault_status(), s.fault_status());
    assert!(!again.is_write() || (s.class == Class::DataAbortLower && s.is_write()));
    let same_el = matches!(
        again.class,
        Class::InstructionAbortSame | Class::DataAbortSame
    );
    assert_eq!(same_el, input.from_el1);
});
