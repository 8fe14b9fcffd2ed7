//! Channel programs. `ping rounds=N` and `pong rounds=N` bounce messages over channel 0 and
//! measure the round trip (`peer=N`: channel 0 must name VM N, by manifest index, as its peer);
//! `snoop` is a third VM that must not reach the channel.

use super::args;
use super::checks::Checks;
use crate::arch::timer;
use crate::drivers::channel::{Channel, Volatile};
use crate::{events, fault, hv, println};
use hypercall_abi::event::EventSource;
use hypercall_abi::layout::RingHeader;
use hypercall_abi::mem::PAGE_SIZE;
use hypercall_abi::{BootInfo, Error, MemPerms};

/// Channel 0's rings and event, checking on the way that the region is the channel's.
fn open(c: &mut Checks, argv: &str) -> Option<(Channel, u32, u64)> {
    let mut hv = hv();
    let info = match hv.channel_info(0) {
        Ok(info) => info,
        Err(e) => {
            println!("no channel 0: {e}");
            return None;
        }
    };
    if let Some(peer) = args::number(argv, "peer") {
        c.check(
            "channel 0 names the peer's manifest index",
            u64::from(info.peer_vm) == peer,
        );
    }
    let event = hv.event_bind(EventSource::Channel { channel: 0 }).ok()?;
    let _ = hv.event_unmask(event);
    // The region is the channel's: this VM can neither take it back nor change it.
    c.expect(
        "unmapping the channel",
        hv.mem_unmap(info.ipa, 1),
        Err(Error::Denied),
    );
    c.expect(
        "protecting the channel",
        hv.mem_protect(info.ipa, 1, MemPerms::READ),
        Err(Error::Denied),
    );
    c.expect(
        "mapping over the channel",
        hv.mem_map(info.ipa, 1, MemPerms::RW),
        Err(Error::AlreadyMapped),
    );
    Some((Channel::new(&info), event, info.ipa))
}

pub fn ping(argv: &str) -> u64 {
    let mut c = Checks::new("ping");
    let rounds = args::number(argv, "rounds").unwrap_or(1000).max(1);
    let Some((ch, event, _)) = open(&mut c, argv) else {
        return 1;
    };
    let mut hv = hv();
    let start = timer::ticks();
    for i in 0..rounds {
        let sent = ch.send(&mut Volatile, &i.to_le_bytes());
        c.check("the send ring has room", sent);
        let _ = hv.channel_notify(0);
        let mut reply = None;
        events::wait(event, || {
            reply = ch.receive(&mut Volatile);
            reply.is_some()
        });
        let reply = reply.expect("waited for it");
        if reply.data[..8] != (!i).to_le_bytes() {
            c.check("the peer answered this round", false);
            break;
        }
    }
    let ticks = timer::ticks() - start;
    let ns_each =
        u128::from(ticks) * 1_000_000_000 / u128::from(timer::frequency()) / u128::from(rounds);
    println!("ping: {rounds} round trips, {ns_each} ns each (instructions under -icount shift=0)");
    c.finish()
}

pub fn pong(argv: &str) -> u64 {
    let mut c = Checks::new("pong");
    let rounds = args::number(argv, "rounds").unwrap_or(1000).max(1);
    let Some((ch, event, _)) = open(&mut c, argv) else {
        return 1;
    };
    let mut hv = hv();
    for _ in 0..rounds {
        let mut message = None;
        events::wait(event, || {
            message = ch.receive(&mut Volatile);
            message.is_some()
        });
        let i = u64::from_le_bytes(
            message.expect("waited for it").data[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        c.check(
            "the reply ring has room",
            ch.send(&mut Volatile, &(!i).to_le_bytes()),
        );
        let _ = hv.channel_notify(0);
    }
    println!("pong: answered {rounds} pings");
    c.finish()
}

/// In a one-page channel, the second ring's producer index: the rings split the page in
/// halves, each starting with its [`RingHeader`]. Where the channel is, it counts the second
/// ring's messages; in a fresh page it is zero.
const SECOND_PRODUCER: u64 = PAGE_SIZE / 2 + core::mem::offset_of!(RingHeader, producer) as u64;

/// Run in a VM with no channel and `on_fault = "inject"`.
pub fn snoop(info: &BootInfo) -> u64 {
    let mut c = Checks::new("snoop");
    let mut hv = hv();
    c.expect(
        "CHANNEL_INFO of a channel it lacks",
        hv.channel_info(0).map(|_| ()),
        Err(Error::InvalidParameters),
    );
    c.expect(
        "CHANNEL_NOTIFY of a channel it lacks",
        hv.channel_notify(0),
        Err(Error::InvalidParameters),
    );
    c.expect(
        "binding another VM's channel event",
        hv.event_bind(EventSource::Channel { channel: 0 }),
        Err(Error::Denied),
    );
    c.expect("no channel in its boot info", info.channel_count, 0);
    // Where the others see their channel, this VM has nothing...
    let region = crate::drivers::channel::CHANNEL_IPA;
    // SAFETY: a probed read of an IPA this VM has not mapped: the fault is caught.
    let fault = fault::probe_fault(|| unsafe {
        crate::arch::access::read_u64(region);
    });
    c.check(
        "touching the channel's IPA faults",
        fault.is_some_and(|f| f.is_data_abort()),
    );
    // ...and what it maps there is its own fresh page, not the channel's.
    let mapped = hv.mem_map(region, 1, MemPerms::RW);
    let ok = mapped.is_ok();
    c.expect("mapping its own page there", mapped, Ok(()));
    if ok {
        // SAFETY: just mapped read-write (VA = IPA).
        let word = unsafe { crate::arch::access::read_u64(region + SECOND_PRODUCER) };
        c.expect("that page is zeroed, not the channel's", word, 0);
        let _ = hv.mem_unmap(region, 1);
    }
    c.finish()
}
