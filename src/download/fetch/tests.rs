//! The holder machine driven directly: made-up instants, a plan in a
//! cell, and the holder's side played by hand.

use super::*;
use std::cell::RefCell;

struct Setup {
    record: Arc<FileRecord>,
    data: Vec<u8>,
    plan: RefCell<Plan>,
    t0: Instant,
    /// Blocks that counted, from every `Write` carried out.
    won: std::cell::Cell<u64>,
}

fn setup(blocks: usize) -> Setup {
    let data: Vec<u8> = (0..blocks * 4096).map(|i| (i * 7 % 251) as u8).collect();
    let record = Arc::new(FileRecord::from_bytes("f.bin", &data));
    let plan = RefCell::new(Plan::new(
        record.piece_count(),
        record.blocks_per_piece,
        &Bitfield::new(record.piece_count()),
    ));
    Setup {
        record,
        data,
        plan,
        t0: Instant::now(),
        won: std::cell::Cell::new(0),
    }
}

impl Setup {
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// A machine past OPENED and the RTT pings, the holder having `have`.
    fn open(&self, have: Bitfield, rtt_ms: u64) -> Fetch {
        self.open_at(have, rtt_ms, false)
    }

    /// `open` for a holder of this peer's site, or (`remote`) another.
    fn open_at(&self, have: Bitfield, rtt_ms: u64, remote: bool) -> Fetch {
        let mut f = Fetch::new(self.record.clone(), 0, 1, self.t0);
        if remote {
            f.set_remote(self.t0);
        }
        assert!(matches!(
            self.pump(&mut f)[..],
            [PeerRequest::Open { .. }, PeerRequest::Ping { nonce: 0 }]
        ));
        let opened = PeerReply::Opened { handle: 3, have };
        f.on_reply(opened, self.at(rtt_ms), &self.plan).unwrap();
        f.on_reply(PeerReply::Pong { nonce: 0 }, self.at(rtt_ms), &self.plan)
            .unwrap();
        assert_eq!(self.pump(&mut f), [PeerRequest::Ping { nonce: 1 }]);
        f.on_reply(
            PeerReply::Pong { nonce: 1 },
            self.at(2 * rtt_ms),
            &self.plan,
        )
        .unwrap();
        f
    }

    /// Answers every REQUEST in `reqs` with its blocks, at `now`.
    fn deliver(&self, f: &mut Fetch, reqs: &[PeerRequest], now: Instant) -> Result<()> {
        for r in reqs {
            if let PeerRequest::Request {
                handle,
                block,
                count,
            } = *r
            {
                for b in block..block + count as u32 {
                    let at = b as usize * 4096;
                    let end = (at + 4096).min(self.data.len());
                    f.on_reply(
                        PeerReply::Block {
                            handle,
                            block: b,
                            data: &self.data[at..end],
                        },
                        now,
                        &self.plan,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Carries out the machine's actions: writes are checked against the
    /// original and reported back; the requests it sent are returned.
    fn pump(&self, f: &mut Fetch) -> Vec<PeerRequest> {
        let mut sent = Vec::new();
        for a in f.actions().collect::<Vec<_>>() {
            match a {
                Action::Send(r) => sent.push(r),
                Action::Write { first, count, data } => {
                    let at = self.record.piece_offset(first) as usize;
                    assert_eq!(data, self.data[at..at + data.len()]);
                    let (won, _) = f.written(first, count, true, &self.plan);
                    self.won.set(self.won.get() + won);
                }
                Action::Released => {}
            }
        }
        sent
    }
}

fn requested_blocks(reqs: &[PeerRequest]) -> u32 {
    reqs.iter()
        .map(|r| match r {
            PeerRequest::Request { count, .. } => *count as u32,
            _ => 0,
        })
        .sum()
}

#[test]
fn a_whole_download_from_one_complete_holder() {
    let s = setup(300);
    let mut f = s.open(Bitfield::full(300), 1);
    assert_eq!(f.rtt(), Duration::from_millis(1));
    let mut now = s.at(10);
    for _ in 0..1000 {
        let wait = f.poll(now, &s.plan).unwrap();
        let reqs = s.pump(&mut f);
        if wait == Wait::Done {
            break;
        }
        // Between the last block and its write, the plan is not yet
        // complete but nothing is left to request.
        assert!(!reqs.is_empty() || wait != Wait::Reply(now + STALL_TIMEOUT.min(PING_EVERY)));
        now += Duration::from_millis(5);
        s.deliver(&mut f, &reqs, now).unwrap();
    }
    assert_eq!(s.won.get(), 300);
    assert_eq!(f.blocks(), 300);
    assert!(s.plan.borrow().is_complete());
}

#[test]
fn the_window_grows_with_rate_times_rtt_within_its_bounds() {
    let s = setup(2000);
    let mut f = s.open(Bitfield::full(2000), 50);
    f.poll(s.at(200), &s.plan).unwrap();
    let first = s.pump(&mut f);
    assert_eq!(
        requested_blocks(&first),
        MIN_WINDOW,
        "no rate yet: the minimum"
    );
    // 16 blocks every 10 ms is 6.5 MB/s; with 50 ms RTT the window grows.
    let mut now = s.at(200);
    let mut reqs = first;
    for _ in 0..40 {
        now += Duration::from_millis(10);
        s.deliver(&mut f, &reqs, now).unwrap();
        f.poll(now, &s.plan).unwrap();
        reqs = s.pump(&mut f);
    }
    let w = f.window();
    assert!((4 * MIN_WINDOW..=MAX_WINDOW).contains(&w), "window {w}");
    assert!(f.owed() <= w);
}

#[test]
fn a_fast_holder_opens_the_window_within_its_first_round_trips() {
    // 1 ms RTT, every request answered within the millisecond: within a
    // few round trips, before the first rate is measured (20 ms), the
    // window is well past its minimum (it waited 250 ms for a first rate,
    // a third of a 256 MiB transfer on loopback; then 20 ms, 12 ms of it).
    let s = setup(2000);
    let mut f = s.open(Bitfield::full(2000), 1);
    let mut now = s.at(3);
    f.poll(now, &s.plan).unwrap();
    let mut reqs = s.pump(&mut f);
    assert_eq!(requested_blocks(&reqs), MIN_WINDOW, "no rate yet");
    let mut most = 0;
    while now < s.at(13) {
        now += Duration::from_millis(1);
        s.deliver(&mut f, &reqs, now).unwrap();
        f.poll(now, &s.plan).unwrap();
        reqs = s.pump(&mut f);
        most = most.max(requested_blocks(&reqs));
    }
    assert!(f.window() >= 8 * MIN_WINDOW, "window {}", f.window());
    assert!(most > 4 * MIN_WINDOW, "at most {most} blocks asked at once");
}

#[test]
fn before_the_first_measure_the_window_grows_by_what_was_delivered() {
    // A slow holder (one request answered every 4 ms) is given only a
    // block more per block it delivered until its rate is measured.
    let s = setup(2000);
    let mut f = s.open(Bitfield::full(2000), 1);
    let mut now = s.at(3);
    f.poll(now, &s.plan).unwrap();
    let mut owed: std::collections::VecDeque<PeerRequest> = s.pump(&mut f).into();
    let mut delivered = 0;
    while now < s.at(19) {
        now += Duration::from_millis(4);
        let next: Vec<PeerRequest> = owed.pop_front().into_iter().collect();
        delivered += requested_blocks(&next);
        s.deliver(&mut f, &next, now).unwrap();
        f.poll(now, &s.plan).unwrap();
        owed.extend(s.pump(&mut f));
        assert!(
            f.window() <= MIN_WINDOW + delivered,
            "window {}",
            f.window()
        );
    }
    assert!(delivered > 0 && f.window() > MIN_WINDOW);
}

#[test]
fn a_silent_holder_is_dropped_and_its_pieces_go_back() {
    let s = setup(50);
    let mut f = s.open(Bitfield::full(50), 1);
    f.poll(s.at(10), &s.plan).unwrap();
    let reqs = s.pump(&mut f);
    assert!(requested_blocks(&reqs) > 0);
    assert!(f.poll(s.at(10) + STALL_TIMEOUT, &s.plan).is_ok(), "not yet");
    let e = f.poll(s.at(11) + STALL_TIMEOUT, &s.plan).unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    f.abandon(&s.plan);
    // Every piece is claimable again by another holder.
    let mut rng = Rng::seeded(1);
    let again = s
        .plan
        .borrow_mut()
        .claim(&Bitfield::full(50), 0, 64, &mut rng);
    assert_eq!(again.len(), 50);
    // Silence before OPENED too.
    let mut g = Fetch::new(s.record.clone(), 0, 1, s.t0);
    assert!(g
        .poll(s.t0 + STALL_TIMEOUT + Duration::from_millis(1), &s.plan)
        .is_err());
}

#[test]
fn unrequested_out_of_order_and_misplaced_messages_are_errors() {
    let s = setup(40);
    let mut f = s.open(Bitfield::full(40), 1);
    f.poll(s.at(10), &s.plan).unwrap();
    let reqs = s.pump(&mut f);
    assert_eq!(
        reqs,
        [PeerRequest::Request {
            handle: 3,
            block: 0,
            count: MIN_WINDOW as u16
        }]
    );
    let data = &s.data[..4096];
    // A block nobody asked for, and one out of order.
    let far = PeerReply::Block {
        handle: 3,
        block: 39,
        data,
    };
    assert!(f.on_reply(far, s.at(11), &s.plan).is_err());
    let mut f = s.open(Bitfield::full(40), 1);
    f.poll(s.at(10), &s.plan).unwrap();
    s.pump(&mut f);
    let skip = PeerReply::Block {
        handle: 3,
        block: 1,
        data,
    };
    assert!(
        f.on_reply(skip, s.at(11), &s.plan).is_err(),
        "block 1 before 0"
    );
    // Another handle.
    let mut g = s.open(Bitfield::full(40), 1);
    g.poll(s.at(10), &s.plan).unwrap();
    let wrong = PeerReply::Block {
        handle: 9,
        block: 0,
        data,
    };
    assert!(g.on_reply(wrong, s.at(11), &s.plan).is_err());
    // A block of the wrong size.
    let mut h = s.open(Bitfield::full(40), 1);
    h.poll(s.at(10), &s.plan).unwrap();
    let reqs = s.pump(&mut h);
    let PeerRequest::Request { block, .. } = reqs[0] else {
        panic!()
    };
    let short = PeerReply::Block {
        handle: 3,
        block,
        data: &data[..100],
    };
    assert!(h.on_reply(short, s.at(11), &s.plan).is_err());
    // OPENED twice, or a PONG nobody asked for before OPENED.
    let mut k = Fetch::new(s.record.clone(), 0, 1, s.t0);
    assert!(k
        .on_reply(PeerReply::Pong { nonce: 0 }, s.t0, &s.plan)
        .is_err());
    let opened = || PeerReply::Opened {
        handle: 0,
        have: Bitfield::full(40),
    };
    let mut k = Fetch::new(s.record.clone(), 0, 1, s.t0);
    k.on_reply(opened(), s.t0, &s.plan).unwrap();
    assert!(k.on_reply(opened(), s.t0, &s.plan).is_err());
    // A piece set of the wrong length.
    let mut k = Fetch::new(s.record.clone(), 0, 1, s.t0);
    let bad = PeerReply::Opened {
        handle: 0,
        have: Bitfield::full(41),
    };
    assert!(k.on_reply(bad, s.t0, &s.plan).is_err());
    // An ERROR frame ends it as a remote error.
    let err = PeerReply::Error {
        code: 5,
        message: "busy".into(),
    };
    assert!(matches!(
        f.on_reply(err, s.at(12), &s.plan),
        Err(Error::Remote { code: 5, .. })
    ));
}

#[test]
fn a_holder_still_downloading_is_waited_for_and_its_have_used() {
    let s = setup(20);
    let mut f = s.open(Bitfield::new(20), 1);
    // Nothing to request: wait for HAVE, pinging now and then.
    let wait = f.poll(s.at(10), &s.plan).unwrap();
    assert!(matches!(wait, Wait::Reply(_)));
    assert!(s.pump(&mut f).is_empty());
    assert!(!f.useful(&s.plan));
    let later = s.at(10) + PING_EVERY * 3;
    assert!(f.poll(later, &s.plan).is_ok(), "idle is not a stall");
    assert!(matches!(s.pump(&mut f)[..], [PeerRequest::Ping { .. }]));
    let mut have = Bitfield::new(20);
    have.set_range(4, 3);
    f.on_reply(PeerReply::Have { handle: 3, have }, later, &s.plan)
        .unwrap();
    assert!(f.useful(&s.plan));
    assert_eq!(s.plan.borrow().availability(5), 1);
    f.poll(later, &s.plan).unwrap();
    let reqs = s.pump(&mut f);
    // Three new pieces, requested as far as the first pipeline allows.
    assert_eq!(
        reqs,
        [PeerRequest::Request {
            handle: 3,
            block: 4,
            count: MIN_WINDOW.min(3) as u16
        }]
    );
    // Its pieces stop counting when it goes.
    f.abandon(&s.plan);
    assert_eq!(s.plan.borrow().availability(5), 0);
}

#[test]
fn the_endgame_cancels_what_another_holder_delivered_and_drops_late_blocks() {
    // As many pieces as a first pipeline takes.
    let n = MIN_WINDOW;
    let s = setup(n as usize);
    let mut a = s.open(Bitfield::full(n), 1);
    a.poll(s.at(10), &s.plan).unwrap();
    let reqs_a = s.pump(&mut a);
    assert_eq!(requested_blocks(&reqs_a), n, "A claims everything");
    // B finds nothing needed and claims the same pieces again.
    let mut b = s.open(Bitfield::full(n), 1);
    b.poll(s.at(10), &s.plan).unwrap();
    let reqs_b = s.pump(&mut b);
    assert_eq!(requested_blocks(&reqs_b), n, "endgame copies");
    // A delivers first.
    s.deliver(&mut a, &reqs_a, s.at(20)).unwrap();
    a.flush();
    s.pump(&mut a);
    assert_eq!(s.won.get(), n as u64);
    assert!(s.plan.borrow().is_complete());
    // B cancels, then ignores the late blocks, then is done.
    b.poll(s.at(21), &s.plan).unwrap();
    let cancels = s.pump(&mut b);
    assert!(!cancels.is_empty());
    assert!(cancels
        .iter()
        .all(|c| matches!(c, PeerRequest::Cancel { handle: 3, .. })));
    s.deliver(&mut b, &reqs_b, s.at(22)).unwrap();
    assert_eq!(b.poll(s.at(23), &s.plan).unwrap(), Wait::Done);
    s.pump(&mut b);
    assert_eq!(s.won.get(), n as u64, "nothing more from B");
    assert_eq!(b.blocks(), 0);
}

#[test]
fn corrupt_pieces_go_back_and_three_drop_the_holder() {
    let mut s = setup(10);
    let good = s.data.clone();
    for b in s.data.iter_mut() {
        *b ^= 0xff;
    }
    let mut f = s.open(Bitfield::full(10), 1);
    // Pipeline after pipeline of corrupt pieces, until the third; each
    // one goes back to the plan.
    let mut released = 0;
    let e = (0..10)
        .find_map(|i| {
            f.poll(s.at(10 + i), &s.plan).unwrap();
            let reqs: Vec<PeerRequest> = f
                .actions()
                .filter_map(|a| match a {
                    Action::Send(r) => Some(r),
                    _ => None,
                })
                .collect();
            let e = s.deliver(&mut f, &reqs, s.at(11 + i)).err();
            released += f.actions().filter(|a| *a == Action::Released).count();
            e
        })
        .expect("dropped after three corrupt pieces");
    assert!(matches!(e, Error::Integrity(_)), "{e}");
    assert_eq!(f.bad_pieces(), 3);
    assert_eq!(released, 3);
    assert_eq!(s.won.get(), 0);
    f.abandon(&s.plan);
    // Nothing bad was written; every piece can be fetched again.
    s.data = good;
    let mut g = s.open(Bitfield::full(10), 1);
    g.poll(s.at(20), &s.plan).unwrap();
    let mut rng = Rng::seeded(2);
    let claimable = s
        .plan
        .borrow_mut()
        .claim(&Bitfield::full(10), 0, 64, &mut rng);
    assert_eq!(
        requested_blocks(&s.pump(&mut g)) as usize + claimable.len(),
        10
    );
}

#[test]
fn a_complete_holder_with_nothing_we_miss_is_left() {
    let s = setup(8);
    // Everything is already done.
    s.plan.replace(Plan::new(8, 1, &Bitfield::full(8)));
    let mut f = s.open(Bitfield::full(8), 1);
    assert_eq!(f.poll(s.at(5), &s.plan).unwrap(), Wait::Done);
}

#[test]
fn runs_split_at_64_blocks() {
    let runs: Vec<(u32, u16)> = runs_of(10, 150).collect();
    assert_eq!(runs, [(10, 64), (74, 64), (138, 22)]);
    assert_eq!(runs_of(0, 0).count(), 0);
}

#[test]
fn a_remote_holder_is_asked_only_for_what_the_site_lacks() {
    let s = setup(64);
    // A holder of this peer's site has the first half; one of another
    // site has everything.
    let half = Bitfield::from_runs(64, &[(0, 32)]).unwrap();
    let mut local = s.open_at(half, 1, false);
    let mut remote = s.open_at(Bitfield::full(64), 30, true);
    assert!(remote.is_remote() && !local.is_remote());
    let mut now = s.at(100);
    let mut from_remote = 0;
    for _ in 0..400 {
        let wr = remote.poll(now, &s.plan).unwrap();
        let rr = s.pump(&mut remote);
        from_remote += requested_blocks(&rr);
        let low = rr
            .iter()
            .any(|r| matches!(r, PeerRequest::Request { block, .. } if *block < 32));
        assert!(
            !low,
            "asked the remote holder for what the site has: {rr:?}"
        );
        let wl = local.poll(now, &s.plan).unwrap();
        let lr = s.pump(&mut local);
        now += Duration::from_millis(5);
        s.deliver(&mut remote, &rr, now).unwrap();
        s.deliver(&mut local, &lr, now).unwrap();
        // As the worker before it waits on the socket: verified pieces
        // are written, so the plan does not take them for owed ones.
        for f in [&mut remote, &mut local] {
            f.flush();
            let _ = s.pump(f);
        }
        if wr == Wait::Done && s.plan.borrow().is_complete() {
            assert!(matches!(wl, Wait::Done | Wait::Reply(_) | Wait::Work(_)));
            break;
        }
    }
    assert!(s.plan.borrow().is_complete());
    assert!((32..40).contains(&from_remote), "{from_remote}");
    assert_eq!(remote.blocks(), 32, "only the half no local holder has");
}

/// A holder `rtt_ms` away that sends at most `rate` bytes a second, one
/// block at a time and in order: what a far peer behind a capped link
/// looks like. Requests reach it after half the RTT, blocks come back
/// half an RTT after they leave it.
struct FarHolder {
    half: Duration,
    per_block: Duration,
    /// When the holder's link is next free.
    free_at: Instant,
    /// Blocks on their way back: (arrival, block).
    coming: std::collections::VecDeque<(Instant, u32)>,
}

impl FarHolder {
    fn new(rtt_ms: u64, rate: f64, now: Instant) -> FarHolder {
        FarHolder {
            half: Duration::from_micros(rtt_ms * 500),
            per_block: Duration::from_secs_f64(4096.0 / rate),
            free_at: now,
            coming: std::collections::VecDeque::new(),
        }
    }

    fn take(&mut self, reqs: &[PeerRequest], now: Instant) {
        for r in reqs {
            if let PeerRequest::Request { block, count, .. } = *r {
                for b in block..block + count as u32 {
                    let leaves = self.free_at.max(now + self.half) + self.per_block;
                    self.free_at = leaves;
                    self.coming.push_back((leaves + self.half, b));
                }
            }
        }
    }

    /// Hands `f` every block that has arrived by `now`.
    fn arrive(&mut self, s: &Setup, f: &mut Fetch, now: Instant) {
        while self.coming.front().is_some_and(|&(t, _)| t <= now) {
            let (_, b) = self.coming.pop_front().unwrap();
            let req = PeerRequest::Request {
                handle: 3,
                block: b,
                count: 1,
            };
            s.deliver(f, &[req], now).unwrap();
        }
    }
}

#[test]
fn a_far_capped_holder_reaches_its_bandwidth_delay_product_within_2_s() {
    // 8 MiB/s at 50 ms: 102 blocks in flight fill the link.
    let (rtt_ms, rate) = (50, 8.0 * 1048576.0);
    let bdp = (rate * rtt_ms as f64 / 1000.0 / 4096.0) as u32;
    // More blocks than the link carries in 2 s.
    let s = setup(6_000);
    let mut f = s.open(Bitfield::full(6_000), rtt_ms);
    let mut now = s.at(3 * rtt_ms);
    let mut link = FarHolder::new(rtt_ms, rate, now);
    let end = now + Duration::from_secs(2);
    let mut reached = None;
    while now < end {
        link.arrive(&s, &mut f, now);
        f.poll(now, &s.plan).unwrap();
        let reqs = s.pump(&mut f);
        link.take(&reqs, now);
        if f.window() >= bdp {
            reached = Some(now - s.at(3 * rtt_ms));
            break;
        }
        now += Duration::from_millis(1);
    }
    assert!(
        reached.is_some(),
        "window {} after 2 s, short of the link's {bdp} blocks ({} blocks delivered)",
        f.window(),
        f.blocks()
    );
}

#[test]
fn a_piece_check_given_replaces_the_hash() {
    let s = setup(4);
    // The check refuses piece 2 whatever its bytes and takes the others
    // without hashing: good bytes for piece 2 go back each time, and the
    // third refusal drops the holder, as corrupt data does.
    let mut f = s.open(Bitfield::full(4), 1);
    f.check_pieces_with(Arc::new(|piece, _: &[u8]| piece != 2));
    let mut released = 0;
    let e = (0..50)
        .find_map(|i| {
            f.poll(s.at(10 + 2 * i), &s.plan).unwrap();
            f.flush();
            let mut reqs = Vec::new();
            while let Some(a) = f.next_action() {
                match a {
                    Action::Send(r) => reqs.push(r),
                    Action::Write { first, count, .. } => {
                        let (won, _) = f.written(first, count, true, &s.plan);
                        s.won.set(s.won.get() + won);
                    }
                    Action::Released => released += 1,
                }
            }
            s.deliver(&mut f, &reqs, s.at(11 + 2 * i)).err()
        })
        .expect("dropped after three refusals");
    assert!(matches!(e, Error::Integrity(_)), "{e}");
    assert_eq!(f.bad_pieces(), 3);
    assert_eq!(released, 2, "the third is in the actions not taken");
    let plan = s.plan.borrow();
    assert!(!plan.is_done(2));
    assert_eq!(plan.done().count(), 3);
    assert_eq!(s.won.get(), 3, "the others were written");
}

#[test]
fn the_first_request_leaves_one_round_trip_after_the_connection() {
    // OPEN and the first PING go together; their answers, one round trip
    // later, let the REQUESTs go at once (with a second PING ahead of
    // them, whose gap after the first tells the holder our RTT).
    let s = setup(20);
    let mut f = Fetch::new(s.record.clone(), 0, 1, s.t0);
    assert!(matches!(
        s.pump(&mut f)[..],
        [PeerRequest::Open { .. }, PeerRequest::Ping { nonce: 0 }]
    ));
    let opened = PeerReply::Opened {
        handle: 3,
        have: Bitfield::full(20),
    };
    f.on_reply(opened, s.at(40), &s.plan).unwrap();
    assert!(!f.useful(&s.plan), "not before the RTT is known");
    f.on_reply(PeerReply::Pong { nonce: 0 }, s.at(41), &s.plan)
        .unwrap();
    assert_eq!(f.rtt(), Duration::from_millis(41));
    f.poll(s.at(41), &s.plan).unwrap();
    let sent = s.pump(&mut f);
    assert_eq!(sent[0], PeerRequest::Ping { nonce: 1 });
    assert!(requested_blocks(&sent[1..]) >= MIN_WINDOW, "{sent:?}");
    // A PONG that waited behind blocks does not raise the RTT.
    f.on_reply(PeerReply::Pong { nonce: 1 }, s.at(200), &s.plan)
        .unwrap();
    assert_eq!(f.rtt(), Duration::from_millis(41));
}

#[test]
fn a_seeder_of_a_large_swarm_is_asked_late_only_for_what_stays_with_it() {
    let s = setup(8);
    s.plan.borrow_mut().set_swarm();
    let mut leecher = s.open(Bitfield::new(8), 1);
    // The seeder offers pieces 0 and 1: asked for at once.
    let mut seeder = s.open(Bitfield::from_runs(8, &[(0, 2)]).unwrap(), 1);
    seeder.spare_as_seeder();
    seeder.poll(s.at(10), &s.plan).unwrap();
    let reqs = s.pump(&mut seeder);
    assert_eq!(requested_blocks(&reqs), 2);
    s.deliver(&mut seeder, &reqs, s.at(20)).unwrap();
    seeder.flush();
    s.pump(&mut seeder);
    // Its fresh pieces ran out: it tells us the rest. The leecher has
    // pieces 2 and 3.
    let t = s.at(100);
    let have = |runs: &[(u32, u32)]| Bitfield::from_runs(8, runs).unwrap();
    let tell =
        |f: &mut Fetch, h, at| f.on_reply(PeerReply::Have { handle: 3, have: h }, at, &s.plan);
    tell(&mut seeder, have(&[(2, 6)]), t).unwrap();
    tell(&mut leecher, have(&[(2, 2)]), t).unwrap();
    // What only it has among our holders may be on its way to them: it
    // is looked at again every SEEDER_WAIT / LOOKS.
    let step = SEEDER_WAIT / LOOKS;
    assert_eq!(seeder.poll(t, &s.plan).unwrap(), Wait::Work(t + step));
    assert!(s.pump(&mut seeder).is_empty());
    tell(&mut leecher, have(&[(2, 3)]), t + step / 2).unwrap();
    for i in 1..LOOKS {
        seeder.poll(t + step * i, &s.plan).unwrap();
        assert!(s.pump(&mut seeder).is_empty());
    }
    // Still with it alone a wait later: pieces 5 to 7, not 4, which a
    // leecher got meanwhile.
    seeder.poll(t + SEEDER_WAIT, &s.plan).unwrap();
    let mut asked: Vec<u32> = s
        .pump(&mut seeder)
        .iter()
        .flat_map(|r| match *r {
            PeerRequest::Request { block, count, .. } => block..block + count as u32,
            _ => 0..0,
        })
        .collect();
    asked.sort();
    assert_eq!(asked, [5, 6, 7]);
}
