//! An emulated PL011 (r1p5): the console of a Linux VM, and of a PV VM with
//! `console = "emulated-pl011"` (the trap-and-emulate baseline). No page is mapped at its IPA,
//! so every register access is a stage-2 data abort the hyp decodes and answers here, one
//! register at a time. Output and input are the same console as the paravirtual one; only the
//! path differs (and is measured).
//!
//! Transmission is immediate, so the transmit FIFO is always empty and never busy; input is the
//! VM's console input queue, which the caller passes in as `rx_waiting` (is a byte queued) and
//! `take_rx` (pop one). The interrupt status is derived from that state on every read, so it is
//! always coherent with `FR`, as Linux's `amba-pl011.c` needs:
//! - TX (`TXRIS`) is set while the transmitter is enabled (`CR.UARTEN` and `CR.TXE`): the FIFO
//!   is empty, below any trigger level. Linux writes every byte from `start_tx` (the FIFO never
//!   reports full) and only unmasks TX when a write found the FIFO full, so the level never
//!   storms; a driver that does unmask it is interrupted until it masks it again, as on
//!   hardware with a FIFO that drains at once.
//! - RX and receive-timeout (`RXRIS`, `RTRIS`) are set while input is queued: whatever the
//!   trigger level (`IFLS`), a byte at console speed has waited longer than the 32-bit-period
//!   timeout. Linux treats both alike and reads `DR` until `FR.RXFE`, which empties the queue
//!   and drops them.
//! - No modem, break, parity, framing or overrun condition ever arises, so nothing is latched
//!   and `ICR` has nothing it can clear: a level that is still true stays set, like the PL011's
//!   own FIFO-level interrupts.
//!
//! The SPI is the level [`Pl011Emu::irq_line`] gives: the integrator drives the vGIC's line with
//! it after every access and whenever input arrives.

/// Where the emulated UART sits in a VM's IPA space (where `virt` has its PL011).
pub const PL011_IPA: u64 = 0x0900_0000;
/// The size of its register block.
pub const PL011_SIZE: u64 = 0x1000;

const DR: u64 = 0x000;
const RSR_ECR: u64 = 0x004;
const FR: u64 = 0x018;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IFLS: u64 = 0x034;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
const DMACR: u64 = 0x048;
/// UARTPeriphID0..3, UARTPCellID0..3 (PL011 r1p5): what the AMBA bus matches `arm,pl011` by.
const ID_BASE: u64 = 0xfe0;
const ID_LAST: u64 = 0xffc;
const IDS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

const FR_RXFE: u32 = 1 << 4;
const FR_TXFE: u32 = 1 << 7;

const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;
/// `CR` out of reset: transmitter and receiver enabled, the UART itself not.
const CR_RESET: u32 = CR_TXE | CR_RXE;
/// `IFLS` out of reset: both FIFOs interrupt at half full.
const IFLS_RESET: u32 = 0x12;

/// Interrupt bits of RIS, MIS, IMSC and ICR.
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
/// The eleven interrupt bits (modem, RX, TX, RT, errors).
const INT_ALL: u32 = 0x7ff;

/// The registers a driver programs.
#[derive(Debug)]
pub struct Pl011Emu {
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
}

impl Default for Pl011Emu {
    /// The UART out of reset.
    fn default() -> Self {
        Pl011Emu {
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
        }
    }
}

impl Pl011Emu {
    /// A read of the register at `offset`; `rx_waiting` says whether input is queued and
    /// `take_rx` takes one byte of it (a read of `DR` does, and nothing else).
    pub fn read(&self, offset: u64, rx_waiting: bool, take_rx: impl FnOnce() -> u8) -> u32 {
        match offset {
            // Bits 8..11 (overrun, break, parity, framing errors) stay clear.
            DR if rx_waiting => u32::from(take_rx()),
            FR => FR_TXFE | if rx_waiting { 0 } else { FR_RXFE },
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.raw_status(rx_waiting),
            MIS => self.raw_status(rx_waiting) & self.imsc,
            ID_BASE..=ID_LAST if offset.is_multiple_of(4) => IDS[((offset - ID_BASE) / 4) as usize],
            // DR with nothing queued, RSR/ECR (no error), DMACR (no DMA), ILPR, ICR (write-only).
            _ => 0,
        }
    }

    /// A write of `value` to the register at `offset`; a byte written to DR goes to `send`.
    pub fn write(&mut self, offset: u64, value: u32, send: impl FnOnce(u8)) {
        match offset {
            // Sent whatever CR says: a guest that never enabled its UART still gets its output
            // out (the PV `emulated-pl011` baseline writes DR without programming CR).
            DR => send(value as u8),
            IBRD => self.ibrd = value & 0xffff,
            FBRD => self.fbrd = value & 0x3f,
            LCR_H => self.lcr_h = value & 0xff,
            CR => self.cr = value & 0xffff,
            IFLS => self.ifls = value & 0x3f,
            IMSC => self.imsc = value & INT_ALL,
            // Nothing is latched (module doc): no error in RSR, no edge in RIS to clear. DMA
            // requests are never made, so DMACR stays 0.
            RSR_ECR | ICR | DMACR => {}
            _ => {}
        }
    }

    /// The level of the UART's interrupt line: a raw interrupt the guest has unmasked.
    pub fn irq_line(&self, rx_waiting: bool) -> bool {
        self.raw_status(rx_waiting) & self.imsc != 0
    }

    /// RIS: what is true now (module doc).
    fn raw_status(&self, rx_waiting: bool) -> u32 {
        let transmitting = self.cr & (CR_UARTEN | CR_TXE) == CR_UARTEN | CR_TXE;
        let tx = if transmitting { INT_TX } else { 0 };
        let rx = if rx_waiting { INT_RX | INT_RT } else { 0 };
        tx | rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Linux's `pl011_startup` and `pl011_set_termios` leave: UART, TX and RX enabled,
    /// RX and receive-timeout interrupts unmasked.
    fn started() -> Pl011Emu {
        let mut uart = Pl011Emu::default();
        uart.write(ICR, INT_ALL, |_| {});
        uart.write(IFLS, IFLS_RESET, |_| {});
        uart.write(CR, CR_UARTEN | CR_TXE | CR_RXE, |_| {});
        uart.write(LCR_H, 0x70, |_| {});
        uart.write(IMSC, INT_RT | INT_RX, |_| {});
        uart
    }

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
        assert_eq!(
            uart.read(FR, true, || unreachable!()),
            FR_TXFE,
            "only DR pops"
        );
    }

    #[test]
    fn keeps_configuration_and_identifies_as_a_pl011() {
        let mut uart = Pl011Emu::default();
        assert_eq!(uart.read(CR, false, || 0), CR_RESET);
        assert_eq!(uart.read(IFLS, false, || 0), IFLS_RESET);
        uart.write(CR, 0x301, |_| {});
        uart.write(IMSC, INT_RX, |_| {});
        uart.write(IFLS, 0x24, |_| {});
        assert_eq!(uart.read(CR, false, || 0), 0x301);
        assert_eq!(uart.read(IFLS, false, || 0), 0x24);
        assert_eq!(uart.read(MIS, true, || 0), INT_RX);
        uart.write(DMACR, 0x7, |_| {});
        assert_eq!(uart.read(DMACR, false, || 0), 0, "no DMA");
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

    #[test]
    fn tx_is_raised_while_the_transmitter_is_enabled_and_interrupts_only_when_unmasked() {
        let mut uart = started();
        assert_eq!(uart.read(RIS, false, || 0), INT_TX, "the FIFO is empty");
        assert_eq!(uart.read(MIS, false, || 0), 0, "TX masked");
        assert!(!uart.irq_line(false));
        // start_tx found the FIFO full: it unmasks TX and waits for the interrupt.
        uart.write(IMSC, INT_RT | INT_RX | INT_TX, |_| {});
        assert_eq!(uart.read(MIS, false, || 0), INT_TX);
        assert!(uart.irq_line(false));
        uart.write(ICR, INT_TX, |_| {});
        assert!(uart.irq_line(false), "still empty: a level, not an edge");
        // stop_tx masks it again.
        uart.write(IMSC, INT_RT | INT_RX, |_| {});
        assert!(!uart.irq_line(false));
        // A disabled transmitter raises nothing.
        uart.write(IMSC, INT_TX, |_| {});
        for cr in [CR_TXE | CR_RXE, CR_UARTEN | CR_RXE, 0] {
            uart.write(CR, cr, |_| {});
            assert_eq!(uart.read(RIS, false, || 0), 0, "CR {cr:#x}");
            assert!(!uart.irq_line(false));
        }
    }

    #[test]
    fn rx_and_timeout_follow_the_input_queue() {
        let uart = started();
        assert_eq!(uart.read(RIS, true, || 0), INT_TX | INT_RX | INT_RT);
        assert_eq!(uart.read(MIS, true, || 0), INT_RX | INT_RT);
        assert!(uart.irq_line(true));
        assert_eq!(uart.read(MIS, false, || 0), 0);
        assert!(!uart.irq_line(false), "drained: the line drops");

        let mut masked = started();
        masked.write(IMSC, 0, |_| {});
        assert!(!masked.irq_line(true));
        masked.write(IMSC, INT_RT, |_| {});
        assert!(masked.irq_line(true), "the timeout alone interrupts");
    }

    /// Linux's interrupt handler (`pl011_int`) against a queue of input: it reads RIS & its
    /// mask, reads FR/DR until RXFE, and loops while anything is left; the line ends low.
    #[test]
    fn linux_interrupt_handler_drains_input_and_the_line_drops() {
        let mut uart = started();
        let mut queue: std::collections::VecDeque<u8> = b"ls\n".iter().copied().collect();
        let im = INT_RT | INT_RX;
        assert!(uart.irq_line(!queue.is_empty()));
        let mut got = Vec::new();
        let mut passes = 0;
        loop {
            let status = uart.read(RIS, !queue.is_empty(), || 0) & im;
            if status == 0 {
                break;
            }
            uart.write(ICR, status & !(INT_TX | INT_RT | INT_RX), |_| {});
            while uart.read(FR, !queue.is_empty(), || 0) & FR_RXFE == 0 {
                let waiting = !queue.is_empty();
                got.push(uart.read(DR, waiting, || queue.pop_front().unwrap()) as u8);
            }
            passes += 1;
            assert!(passes < 4, "the handler terminates");
        }
        assert_eq!(got, b"ls\n");
        assert!(!uart.irq_line(!queue.is_empty()));
    }
}
