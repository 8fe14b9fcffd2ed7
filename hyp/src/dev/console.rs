//! The physical console: one UART the device tree's /chosen/stdout-path names, shared by the
//! hyp's log and the guests' lines. Guests' lines wait in the hyp's queue
//! (`vm::console::LineQueue`) and are drained to the UART off their callers' path: by a CPU
//! going idle, a bounded amount at each interrupt exit (a slice end) and while writers or the
//! hyp's own lines wait, at the end of the run and on the emergency path. A line of the hyp's
//! own drains a bounded amount first, then goes to the UART if nothing is left before it, else
//! into the queue behind the guests' lines (the log stays in order, and no exit writes the
//! whole queue). Whole lines are written under the console lock, so lines never interleave.
//! The writer with the input focus also shows its partial line (`echo.rs`): erased before
//! other lines are written, drawn again once none waits.
//!
//! Locks: `CONSOLE` (the UART, held by whoever writes it) before `QUEUE` (held only to copy a
//! record in or out, never across UART output): a writer queueing a line never waits for the
//! UART.

use super::bcm2835_aux::Bcm2835Aux;
use super::pl011::Pl011;
use crate::echo::{Before, Partial, Terminal};
use crate::vm::console::{LineQueue, RECORD_MAX, is_shown};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

/// The UART kinds the hyp can drive.
pub enum Uart {
    /// Arm PL011 (QEMU `virt`).
    Pl011(Pl011),
    /// The BCM2835 auxiliary mini UART (Raspberry Pi 4, GPIO 14/15).
    Bcm2835Aux(Bcm2835Aux),
}

impl Uart {
    // Inlined into the line loops, the console hot path (a call a character costs ~10%).
    #[inline(always)]
    fn write_byte(&self, byte: u8) {
        match self {
            Uart::Pl011(u) => u.write_byte(byte),
            Uart::Bcm2835Aux(u) => u.write_byte(byte),
        }
    }

    fn flush(&self) {
        match self {
            Uart::Pl011(u) => u.flush(),
            Uart::Bcm2835Aux(u) => u.flush(),
        }
    }

    fn read_byte(&self) -> Option<u8> {
        match self {
            Uart::Pl011(u) => u.read_byte(),
            Uart::Bcm2835Aux(u) => u.read_byte(),
        }
    }
}

/// A byte typed on the console, if one is waiting and no other CPU is writing the UART (the
/// byte then waits in the UART for the next look: the scheduler never waits on the UART).
pub fn read_byte() -> Option<u8> {
    CONSOLE.try_lock()?.as_ref()?.read_byte()
}

static CONSOLE: Mutex<Option<Uart>> = Mutex::new(None);

/// The guests' lines waiting for the UART.
static QUEUE: Mutex<LineQueue> = Mutex::new(LineQueue::new());

/// What the scheduler looks at on every switch (`writers_wait`), in one static: one address
/// for the three looks.
struct Waiting {
    /// Why a drain is wanted even when no CPU idles ([`DRAIN_REFUSED`], [`DRAIN_HYP`]; changed
    /// under the queue's lock).
    drain_for: AtomicU8,
    /// The writers (VMs, a bit each) a drain made room for since they were refused some: the
    /// scheduler wakes the vCPUs it descheduled (`vm::console::wake_writers`).
    room_for: AtomicU64,
}

static WAITING: Waiting = Waiting {
    drain_for: AtomicU8::new(0),
    room_for: AtomicU64::new(0),
};

/// A writer refused room waits for a drain (`LineQueue::has_refused`): the scheduler drains
/// even when no CPU idles, or writers waiting on vCPUs that only yield would never be woken.
const DRAIN_REFUSED: u8 = 1 << 0;

/// Some of the hyp's own text waits in the queue (`LineQueue::hyp_queued`): the scheduler
/// drains it as it does for refused writers.
const DRAIN_HYP: u8 = 1 << 1;

/// UART characters a line of the hyp's own drains before it at most.
const HYP_LINE_DRAIN: usize = 1024;
/// The longest line of the hyp's own that may wait in the queue; a longer one drains every
/// line before it and is written at once (none is this long but a panic's, which does not
/// come here).
const HYP_LINE_MAX: usize = 512;

/// The focused writer's partial line as it wants it shown: a leaf lock, held to copy it.
static WANTED: Mutex<Partial> = Mutex::new(Partial::none());
/// Whether `WANTED` has text (its writer's calls with none then take no lock).
static WANTED_SHOWS: AtomicBool = AtomicBool::new(false);
/// What the terminal shows of it: taken only with `CONSOLE` held.
static TERMINAL: Mutex<Terminal> = Mutex::new(Terminal::new());
/// The writer with the input focus ([`NOBODY`]: none), for the writers' one-load check.
static FOCUSED: AtomicUsize = AtomicUsize::new(NOBODY);
const NOBODY: usize = usize::MAX - 1;
/// The partial line changed, or was erased for other lines: a drain draws it again.
static ECHO_DIRTY: AtomicBool = AtomicBool::new(false);

/// UART characters a CPU going idle writes before it looks for work again.
pub const IDLE_DRAIN: usize = 1024;
/// UART characters an interrupt exit (a slice end) writes at most (whole lines): about what
/// the Pi's mini UART sends in one 10 ms slice at 115200 baud, so a guest that is interrupted
/// loses little of its slice while every CPU is busy and the queue still drains.
pub const EXIT_DRAIN: usize = 128;

/// Installs the console UART.
pub fn install(uart: Uart) {
    *CONSOLE.lock() = Some(uart);
}

fn write_bytes(uart: &Uart, bytes: &[u8]) {
    for &b in bytes {
        uart.write_byte(b);
    }
}

/// Gives the input focus to `writer` (a VM's index or `echo::HYP_WRITER`; None: nobody), whose
/// lines are prefixed with `name` and whose line so far is `partial`.
pub fn set_focus(writer: Option<usize>, name: &str, partial: &[u8]) {
    WANTED.lock().focus(writer, name.as_bytes(), partial);
    WANTED_SHOWS.store(!partial.is_empty(), Ordering::Relaxed);
    FOCUSED.store(writer.unwrap_or(NOBODY), Ordering::Relaxed);
    ECHO_DIRTY.store(true, Ordering::Release);
}

/// Whether `writer` has the input focus.
#[inline]
pub fn is_focused(writer: usize) -> bool {
    FOCUSED.load(Ordering::Relaxed) == writer
}

/// The focused `writer`'s line so far is `text`; `completed`: it completed lines meanwhile.
/// Drawn by the next drain; with `start` even if nothing of it is shown now (else only a line
/// that shows is followed: a writer that does not read input shows whole lines only).
pub fn show_partial(writer: usize, text: &[u8], completed: bool, start: bool) {
    if !start && !WANTED_SHOWS.load(Ordering::Relaxed) {
        return;
    }
    let mut wanted = WANTED.lock();
    if wanted.writer() != Some(writer) || (!completed && wanted.text() == text) {
        return;
    }
    let was_shown = !wanted.text().is_empty();
    wanted.set(text, completed && was_shown);
    WANTED_SHOWS.store(!text.is_empty(), Ordering::Relaxed);
    ECHO_DIRTY.store(true, Ordering::Release);
}

/// Draws the focused writer's partial line now, after the queued lines.
pub fn refresh() {
    let console = CONSOLE.lock();
    drain_to(console.as_ref(), usize::MAX, lock_queue);
    draw_partial(console.as_ref(), true);
}

/// Ends the partial line where it stands, drawn whole first, and forgets its text: the next
/// output starts on a new line (the hyp's own line on Enter; every line at the end of the run).
pub fn end_partial_line() {
    let console = CONSOLE.lock();
    drain_to(console.as_ref(), usize::MAX, lock_queue);
    draw_partial(console.as_ref(), true);
    if let (Some(uart), Some(mut terminal)) = (console.as_ref(), TERMINAL.try_lock()) {
        terminal.commit(&mut |b| write_bytes(uart, b));
    }
    WANTED.lock().set(&[], false);
    WANTED_SHOWS.store(false, Ordering::Relaxed);
}

/// Draws the focused writer's partial line if it changed or was erased, once no line waits
/// before it (`force`: even if some do); whether it wrote any byte.
fn draw_partial(uart: Option<&Uart>, force: bool) -> bool {
    if !ECHO_DIRTY.load(Ordering::Acquire) || (!force && !QUEUE.lock().is_empty()) {
        return false;
    }
    ECHO_DIRTY.store(false, Ordering::Relaxed);
    let wanted = WANTED.lock().clone();
    // With CONSOLE held, only the emergency path (a lock broken) finds TERMINAL taken.
    let (Some(uart), Some(mut terminal)) = (uart, TERMINAL.try_lock()) else {
        return false;
    };
    terminal.sync(&wanted, &mut |b| write_bytes(uart, b))
}

struct Writer<'a>(&'a Uart);

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(b);
        }
        Ok(())
    }
}

/// A line of the hyp's own, formatted on the stack.
struct HypLine {
    buf: [u8; HYP_LINE_MAX],
    len: usize,
    overflowed: bool,
}

impl fmt::Write for HypLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.buf.get_mut(self.len..self.len + s.len()) {
            Some(room) => {
                room.copy_from_slice(s.as_bytes());
                self.len += s.len();
                Ok(())
            }
            None => {
                self.overflowed = true;
                Err(fmt::Error)
            }
        }
    }
}

/// Writes formatted text atomically with respect to other console users, after every line
/// queued before it: at once if nothing is left queued after a bounded drain, else queued
/// behind those lines (room for it made by draining about its own length).
pub fn write_fmt(args: fmt::Arguments) {
    let console = CONSOLE.lock();
    let uart = console.as_ref();
    drain_to(uart, HYP_LINE_DRAIN, lock_queue);
    let mut line = HypLine {
        buf: [0; HYP_LINE_MAX],
        len: 0,
        overflowed: false,
    };
    if fmt::Write::write_fmt(&mut line, args).is_ok() && !line.overflowed {
        let text = &line.buf[..line.len];
        loop {
            let mut queue = QUEUE.lock();
            if queue.is_empty() {
                break;
            }
            if queue.push_hyp(text) {
                WAITING.drain_for.fetch_or(DRAIN_HYP, Ordering::Relaxed);
                return;
            }
            drop(queue);
            drain_to(uart, RECORD_MAX, lock_queue);
        }
        if let Some(uart) = uart {
            hide_partial(uart);
            write_raw(uart, text);
        }
        draw_partial(uart, false);
        return;
    }
    drain_to(uart, usize::MAX, lock_queue);
    if let Some(uart) = uart {
        hide_partial(uart);
        let _ = fmt::Write::write_fmt(&mut Writer(uart), args);
    }
    draw_partial(uart, false);
}

/// Erases the focused VM's partial line from the terminal before the hyp writes a line of its
/// own there (drawn again after it).
fn hide_partial(uart: &Uart) {
    if TERMINAL
        .try_lock()
        .is_some_and(|mut t| t.hide(&mut |b| write_bytes(uart, b)))
    {
        ECHO_DIRTY.store(true, Ordering::Release);
    }
}

/// Writes the hyp's own text, each newline as CR LF.
fn write_raw(uart: &Uart, text: &[u8]) {
    for &b in text {
        if b == b'\n' {
            uart.write_byte(b'\r');
        }
        uart.write_byte(b);
    }
}

/// Queues VM `writer`'s line `prefix: text` (`text` the guest's bytes, shown escaped where
/// they are not printable when written: a guest cannot drive the terminal); false if the
/// queue has no room for it now (the writer is then woken through [`take_room_made`]). With
/// `wait`, it always does: the queue is drained until the line fits (a caller that waits for
/// the UART, as an emulated UART's writer does), which its share does not limit, so that it
/// drains only the room of one line.
pub fn queue_line(writer: usize, prefix: &str, text: &[u8], wait: bool) -> bool {
    {
        let mut queue = QUEUE.lock();
        if queue.push(writer, prefix.as_bytes(), text) {
            return true;
        }
        if !wait {
            WAITING.drain_for.fetch_or(DRAIN_REFUSED, Ordering::Relaxed);
            return false;
        }
    }
    let console = CONSOLE.lock();
    loop {
        // Every record drained frees room: with the queue empty, the line fits.
        drain_to(console.as_ref(), RECORD_MAX, lock_queue);
        if QUEUE.lock().push_waiting(writer, prefix.as_bytes(), text) {
            return true;
        }
    }
}

/// Forgets that VM `writer` waits for room (it has ended).
pub fn forget_writer(writer: usize) {
    QUEUE.lock().forget(writer);
}

/// Whether writers refused room wait for a drain, or a drain made room for some that
/// [`take_room_made`] has not taken yet: work for the scheduler.
#[inline]
pub fn writers_wait() -> bool {
    // Both looked at, with no branch between: one address for the two loads.
    (u64::from(WAITING.drain_for.load(Ordering::Relaxed))
        | WAITING.room_for.load(Ordering::Relaxed))
        != 0
}

/// Whether writers refused room, or lines of the hyp's own, wait for a drain.
#[inline]
pub fn drain_wanted() -> bool {
    WAITING.drain_for.load(Ordering::Relaxed) != 0
}

/// The writers (a bit each, `writer % MAX_WRITERS`) a drain made room for since the last call.
pub fn take_room_made() -> u64 {
    if WAITING.room_for.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    WAITING.room_for.swap(0, Ordering::Acquire)
}

/// Writes up to about `max_chars` UART characters of queued lines (whole lines: the last may
/// run over), unless another CPU is writing the UART; whether it wrote any (a CPU going idle
/// then looks for work again before it sleeps).
pub fn drain(max_chars: usize) -> bool {
    let Some(console) = CONSOLE.try_lock() else {
        return false;
    };
    let wrote = drain_to(console.as_ref(), max_chars, lock_queue);
    draw_partial(console.as_ref(), false) || wrote
}

/// Writes queued lines to `uart` (or drops them without one) until `max_chars` characters are
/// out or the queue is empty, the queue locked by `lock` only while a record is copied out.
/// `lock` a function pointer, not a generic: one copy of this for its nine callers (a closure
/// type each made nine, 5 KiB of the Image).
fn drain_to(
    uart: Option<&Uart>,
    max_chars: usize,
    lock: fn() -> spin::MutexGuard<'static, LineQueue>,
) -> bool {
    let mut record = [0u8; RECORD_MAX];
    let mut left = max_chars;
    let mut wrote = false;
    // Taken at the first line (an empty queue costs nothing more), held with CONSOLE: only the
    // emergency path (a lock broken) finds it taken.
    let mut terminal = None;
    while left > 0 {
        let mut queue = lock();
        let Some(line) = queue.pop(&mut record) else {
            break;
        };
        if line.room_for != 0 {
            // Under the queue's lock, as a refusal sets it: one refused after this pop is
            // never cleared unseen.
            WAITING
                .drain_for
                .fetch_and(!DRAIN_REFUSED, Ordering::Relaxed);
            WAITING.room_for.fetch_or(line.room_for, Ordering::Release);
        }
        if line.hyp && !queue.hyp_queued() {
            WAITING.drain_for.fetch_and(!DRAIN_HYP, Ordering::Relaxed);
        }
        drop(queue);
        let cost = if line.hyp {
            if let Some(uart) = uart {
                let held = terminal.get_or_insert_with(|| TERMINAL.try_lock());
                if held
                    .as_mut()
                    .is_some_and(|t| t.hide(&mut |b| write_bytes(uart, b)))
                {
                    ECHO_DIRTY.store(true, Ordering::Release);
                }
                write_raw(uart, line.text);
            }
            line.text.len() + line.text.iter().filter(|&&b| b == b'\n').count()
        } else {
            if let Some(uart) = uart {
                let held = terminal.get_or_insert_with(|| TERMINAL.try_lock());
                let before = held.as_mut().map_or(Before::Nothing, |t| {
                    t.before_line(line.writer, line.prefix, line.text, &mut |b| {
                        write_bytes(uart, b)
                    })
                });
                if before == Before::Hidden {
                    ECHO_DIRTY.store(true, Ordering::Release);
                }
                if before != Before::Written {
                    write_line(uart, line.prefix, line.text);
                }
            }
            crate::vm::console::line_cost(line.prefix.len(), line.text)
        };
        left = left.saturating_sub(cost);
        wrote = true;
    }
    wrote
}

/// Writes one line `prefix: text`, `text` escaped (`vm::console::line_cost` counts the
/// characters).
#[inline]
fn write_line(uart: &Uart, prefix: &[u8], text: &[u8]) {
    for &b in prefix.iter().chain(b": ") {
        uart.write_byte(b);
    }
    for &b in text {
        if is_shown(b) {
            uart.write_byte(b);
        } else {
            let _ =
                fmt::Write::write_fmt(&mut Writer(uart), format_args!("\\x{:02x}", u32::from(b)));
        }
    }
    uart.write_byte(b'\r');
    uart.write_byte(b'\n');
}

fn lock_queue() -> spin::MutexGuard<'static, LineQueue> {
    QUEUE.lock()
}

/// Attempts at a lock before the emergency path takes it anyway.
const EMERGENCY_TRIES: u32 = 1 << 20;

/// Takes `lock` even if it is held, by a CPU that will never release it (this one, stopped by
/// a panic or a fault while holding it) or by one still working: after a bounded wait the lock
/// is broken. Only for a hyp that is stopping.
fn lock_or_break<T>(lock: &Mutex<T>) -> spin::MutexGuard<'_, T> {
    let mut tries = 0;
    loop {
        if let Some(guard) = lock.try_lock() {
            return guard;
        }
        tries += 1;
        if tries == EMERGENCY_TRIES {
            // SAFETY: the hyp is stopping (panic or EL2 fault). The console's holder, if it
            // still runs, only writes bytes to the UART, so breaking its exclusion interleaves
            // text and nothing else; the queue's holder copies one record in or out, so at
            // worst one line is garbled. The UART and the queue stay valid for the whole run.
            unsafe { lock.force_unlock() };
        }
        core::hint::spin_loop();
    }
}

/// Writes every queued line, then one line, even if the console lock is held (see
/// [`lock_or_break`]): the line may interleave with the holder's. Only for a hyp that is
/// stopping.
pub fn emergency_println(args: fmt::Arguments) {
    let guard = lock_or_break(&CONSOLE);
    drain_to(guard.as_ref(), usize::MAX, || lock_or_break(&QUEUE));
    if let Some(uart) = guard.as_ref() {
        let _ = fmt::Write::write_fmt(&mut Writer(uart), format_args!("{args}\n"));
    }
}

/// Runs `f` with the console lock held (the test of the crash path, `pvhyp.crash-test`: a
/// fault there must still be reported, through [`emergency_println`]).
pub fn with_lock_held(f: impl FnOnce()) {
    let _console = CONSOLE.lock();
    f();
}

/// Writes every queued line and waits until every byte has left the UART (before powering
/// off).
pub fn flush() {
    let console = CONSOLE.lock();
    drain_to(console.as_ref(), usize::MAX, lock_queue);
    if let Some(uart) = console.as_ref() {
        uart.flush();
    }
}

/// `println!` for the hyp, bypassing the log formatter (for the summary line).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::dev::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
