//! An emulated PL011 for VMs with `console = "emulated-pl011"`: the trap-and-emulate baseline.
//! No page is mapped at its IPA, so every register access is a stage-2 data abort the hyp
//! decodes and answers here, one register at a time. Output and input are the same console
//! as the paravirtual one; only the path differs (and is measured).

/// Where the emulated UART sits in such a VM's IPA space (where `virt` has its PL011).
pub const PL011_IPA: u64 = 0x0900_0000;
/// The size of its register block.
pub const PL011_SIZE: u64 = 0x1000;

const DR: u64 = 0x000;
const FR: u64 = 0x018;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
/// UARTPeriphID0..3, UARTPCellID0..3 (PL011 r1p5).
const ID_BASE: u64 = 0xfe0;
const IDS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

const FR_RXFE: u32 = 1 << 4;
const FR_TXFE: u32 = 1 << 7;
const INT_RX: u32 = 1 << 4;

/// The registers a driver programs; transmit is immediate, so TX is always empty.
#[derive(Debug, Default)]
pub struct Pl011Emu {
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    imsc: u32,
}

impl Pl011Emu {
    /// A read of the register at `offset`; `rx_waiting` says whether input is queued and
    /// `take_rx` takes one byte of it.
    pub fn read(&self, offset: u64, rx_waiting: bool, take_rx: impl FnOnce() -> u8) -> u32 {
        let rx = if rx_waiting { INT_RX } else { 0 };
        match offset {
            DR if rx_waiting => u32::from(take_rx()),
            DR => 0,
            FR => FR_TXFE | if rx_waiting { 0 } else { FR_RXFE },
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IMSC => self.imsc,
            RIS => rx,
            MIS => rx & self.imsc,
            ID_BASE..=0xffc if offset.is_multiple_of(4) => IDS[((offset - ID_BASE) / 4) as usize],
            _ => 0,
        }
    }

    /// A write of `value` to the register at `offset`; a byte written to DR goes to `send`.
    pub fn write(&mut self, offset: u64, value: u32, send: impl FnOnce(u8)) {
        match offset {
            DR => send(value as u8),
            IBRD => self.ibrd = value & 0xffff,
            FBRD => self.fbrd = value & 0x3f,
            LCR_H => self.lcr_h = value & 0xff,
            CR => self.cr = value & 0xffff,
            IMSC => self.imsc = value & 0x7ff,
            ICR => {}
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmits_bytes_and_reports_an_empty_fifo() {
        let mut uart = Pl011Emu::default();
        let mut out = None;
        uart.write(DR, 0x141, |b| out = Some(b));
        assert_eq!(out, Some(0x41), "only the data byte");
        assert_eq!(uart.read(FR, false, || 0), FR_TXFE | FR_RXFE);
        assert_eq!(uart.read(FR, true, || 0) & FR_RXFE, 0);
    }

    #[test]
    fn receives_queued_input() {
        let uart = Pl011Emu::default();
        assert_eq!(uart.read(DR, true, || b'k'), u32::from(b'k'));
        assert_eq!(uart.read(DR, false, || unreachable!()), 0);
    }

    #[test]
    fn keeps_configuration_and_identifies_as_a_pl011() {
        let mut uart = Pl011Emu::default();
        uart.write(CR, 0x301, |_| {});
        uart.write(IMSC, INT_RX, |_| {});
        assert_eq!(uart.read(CR, false, || 0), 0x301);
        assert_eq!(uart.read(MIS, true, || 0), INT_RX);
        let ids: Vec<u32> = (0..8)
            .map(|i| uart.read(ID_BASE + 4 * i, false, || 0))
            .collect();
        assert_eq!(ids, IDS);
        assert_eq!(
            uart.read(0x0ff0 + 1, false, || 0),
            0,
            "unaligned reads nothing"
        );
    }
}
