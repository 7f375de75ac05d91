//! The block-server machine driven directly, over files in memory.

use super::*;
use crate::peer::block_server::seeding::{FAR_OFFER_BLOCKS, OFFERED_BLOCKS, OFFER_BLOCKS};

struct Lib(Vec<MemFile>);

impl Library for Lib {
    type File = MemFile;
    fn find(&self, name: &str) -> Option<MemFile> {
        self.0.iter().find(|f| f.record.name == name).cloned()
    }
    fn id(&self) -> &str {
        "S"
    }
}

fn complete(name: &str, blocks: usize) -> MemFile {
    let data = vec![7u8; blocks * 4096];
    let record = Arc::new(FileRecord::from_bytes(name, &data));
    let pieces = record.piece_count();
    MemFile {
        record,
        partial: None,
        seeding: Some(Arc::new(Mutex::new(Seeding::new(pieces, 5)))),
    }
}

fn open(m: &mut Serve<MemFile>, lib: &Lib, name: &str, now: Instant) -> (u32, Bitfield) {
    let md5 = lib.find(name).unwrap().record.md5;
    let req = PeerRequest::Open {
        name: name.into(),
        md5,
    };
    m.on_request(req, now, lib).unwrap();
    match m.replies().next() {
        Some(PeerReply::Opened { handle, have }) => (handle, have),
        other => panic!("{other:?}"),
    }
}

/// A download's shared state as a `MemFile` sees it: its version and
/// verified pieces.
type Verified = Arc<Mutex<(u64, Bitfield)>>;

/// A download in progress here, `pieces` pieces and none verified yet,
/// opened on a new connection at `t0`: the library, the download's shared
/// state (its version and verified pieces) and the machine.
fn partial_opened(pieces: u32, t0: Instant) -> (Lib, Verified, Serve<MemFile>) {
    let mut f = complete("p", pieces as usize);
    f.seeding = None;
    let state = Arc::new(Mutex::new((1u64, Bitfield::new(pieces))));
    f.partial = Some(state.clone());
    let lib = Lib(vec![f]);
    let mut m = Serve::new(t0);
    open(&mut m, &lib, "p", t0);
    (lib, state, m)
}

fn request(block: u32, count: u16) -> PeerRequest {
    PeerRequest::Request {
        handle: 0,
        block,
        count,
    }
}

#[test]
fn requests_are_served_in_slices_and_cancel_trims_the_queue() {
    let lib = Lib(vec![complete("f", 200)]);
    let t0 = Instant::now();
    let mut m = Serve::new(t0);
    let (handle, have) = open(&mut m, &lib, "f", t0);
    assert!(have.is_full(), "a lone downloader is told everything");
    m.on_request(request(0, 64), t0, &lib).unwrap();
    m.on_request(request(100, 10), t0, &lib).unwrap();
    let s = m.next_slice().unwrap().unwrap();
    assert_eq!((s.handle, s.block, s.count), (handle, 0, SLICE_BLOCKS));
    // Cancel the middle of what is left: the queue is trimmed and split.
    let cancel = PeerRequest::Cancel {
        handle: 0,
        block: 20,
        count: 30,
    };
    m.on_request(cancel, t0, &lib).unwrap();
    let mut rest = Vec::new();
    while let Some(s) = m.next_slice().unwrap() {
        rest.push((s.block, s.count));
    }
    assert_eq!(rest, [(16, 4), (50, 14), (100, 10)]);
}

#[test]
fn bad_requests_end_the_connection_unknown_files_do_not() {
    let lib = Lib(vec![complete("f", 10)]);
    let t0 = Instant::now();
    let mut m = Serve::new(t0);
    assert!(
        m.on_request(request(0, 1), t0, &lib).is_err(),
        "never opened"
    );
    let mut m = Serve::new(t0);
    let nope = PeerRequest::Open {
        name: "g".into(),
        md5: [0; 16],
    };
    m.on_request(nope, t0, &lib).unwrap();
    assert!(matches!(
        m.replies().next(),
        Some(PeerReply::Error { code: 2, .. })
    ));
    let wrong = PeerRequest::Open {
        name: "f".into(),
        md5: [0; 16],
    };
    m.on_request(wrong, t0, &lib).unwrap();
    assert!(matches!(m.replies().next(), Some(PeerReply::Error { .. })));
    open(&mut m, &lib, "f", t0);
    assert!(
        m.on_request(request(5, 10), t0, &lib).is_err(),
        "beyond the end"
    );
    m.on_request(PeerRequest::Ping { nonce: 4 }, t0, &lib)
        .unwrap();
    m.on_request(PeerRequest::Bye, t0, &lib).unwrap();
    let r: Vec<_> = m.replies().collect();
    assert_eq!(r, [PeerReply::Pong { nonce: 4 }, PeerReply::Ok]);
    assert!(m.closing());
}

#[test]
fn a_download_in_progress_serves_verified_pieces_and_tells_new_ones() {
    let mut f = complete("p", 8);
    f.seeding = None;
    let mut have = Bitfield::new(8);
    have.set(2);
    let state = Arc::new(Mutex::new((1u64, have)));
    f.partial = Some(state.clone());
    let lib = Lib(vec![f]);
    let t0 = Instant::now();
    let mut m = Serve::new(t0);
    let (_, told) = open(&mut m, &lib, "p", t0);
    assert_eq!(told.iter_ones().collect::<Vec<_>>(), [2]);
    // A request for an unverified piece is refused when its turn comes.
    m.on_request(request(5, 1), t0, &lib).unwrap();
    assert!(m.next_slice().is_err());
    // Newly verified pieces go out as HAVE, once.
    let mut m = Serve::new(t0);
    open(&mut m, &lib, "p", t0);
    {
        let mut s = state.lock().unwrap();
        s.0 = 2;
        s.1.set(5);
        s.1.set(6);
    }
    // OPENED told what there was: the new pieces wait for HAVE_EVERY,
    // and the machine says it is not quiet meanwhile, so a driver that
    // ticks only when there is something to do comes back.
    m.tick(t0).unwrap();
    assert_eq!(m.replies().count(), 0);
    assert!(!m.quiet(t0));
    let t1 = t0 + HAVE_EVERY;
    m.tick(t1).unwrap();
    match m.replies().collect::<Vec<_>>().as_slice() {
        [PeerReply::Have { have, .. }] => assert_eq!(have.iter_ones().collect::<Vec<_>>(), [5, 6]),
        other => panic!("{other:?}"),
    }
    assert!(m.quiet(t1));
    m.tick(t1 + HAVE_EVERY).unwrap();
    assert_eq!(m.replies().count(), 0);
}

#[test]
fn pieces_verified_in_quick_succession_go_out_as_one_have() {
    let t0 = Instant::now();
    let (_lib, state, mut m) = partial_opened(8, t0);
    let verify = |piece: u32| {
        let mut s = state.lock().unwrap();
        s.0 += 1;
        s.1.set(piece);
    };
    let mut haves = Vec::new();
    // A piece every 10 ms for 400 ms, ticked as often.
    for i in 0..40u32 {
        let now = t0 + Duration::from_millis(10 * u64::from(i));
        verify(i % 8);
        m.tick(now).unwrap();
        for r in m.replies() {
            if let PeerReply::Have { have, .. } = r {
                haves.push((i, have.iter_ones().collect::<Vec<_>>()));
            }
        }
    }
    assert_eq!(
        haves,
        [(15, (0..8).collect::<Vec<_>>())],
        "one HAVE at 150 ms with all eight pieces, none after (nothing new)"
    );
}

#[test]
fn a_seeder_with_several_downloaders_offers_disjoint_pieces_then_everything() {
    let lib = Lib(vec![complete("s", 100)]);
    let t0 = Instant::now();
    let mut first = Serve::new(t0);
    assert!(open(&mut first, &lib, "s", t0).1.is_full());
    let mut a = Serve::new(t0);
    let mut b = Serve::new(t0);
    let (_, offer_a) = open(&mut a, &lib, "s", t0);
    let (_, offer_b) = open(&mut b, &lib, "s", t0);
    // The open connections share OFFERED_BLOCKS, each at most OFFER_BLOCKS.
    let share = |open: u32| (OFFERED_BLOCKS / open).clamp(1, OFFER_BLOCKS);
    assert_eq!((offer_a.count(), offer_b.count()), (share(2), share(3)));
    assert_eq!(offer_a.minus(&offer_b).count(), share(2), "disjoint");
    // A asks for what it was offered; more offers follow by HAVE.
    for p in offer_a.iter_ones() {
        a.on_request(request(p, 1), t0, &lib).unwrap();
    }
    a.tick(t0).unwrap();
    let more = match a.replies().collect::<Vec<_>>().as_slice() {
        [PeerReply::Have { have, .. }] => have.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(more.count(), share(3));
    assert_eq!(more.minus(&offer_b).count(), share(3));
    while a.next_slice().unwrap().is_some() {}
    // Asking for a piece it was not offered is a protocol error.
    let not_offered = offer_b.iter_ones().next().unwrap();
    a.on_request(request(not_offered, 1), t0, &lib).unwrap();
    assert!(a.next_slice().is_err());
    // B leaves without asking: its offers go to the next.
    b.close();
    let seeding = lib.0[0].seeding.clone().unwrap();
    assert_eq!(
        seeding.lock().unwrap().fresh(),
        100 - share(2) - more.count()
    );
    // Fresh pieces run out: the connection is told everything.
    let mut c = Serve::new(t0);
    let (_, offer_c) = open(&mut c, &lib, "s", t0);
    for p in offer_c.iter_ones() {
        c.on_request(request(p, 1), t0, &lib).unwrap();
    }
    let mut told = offer_c.clone();
    for _ in 0..5 {
        c.tick(t0).unwrap();
        for r in c.replies().collect::<Vec<_>>() {
            if let PeerReply::Have { have, .. } = r {
                told.union_with(&have);
                for p in have.iter_ones() {
                    c.on_request(request(p, 1), t0, &lib).unwrap();
                }
            }
        }
    }
    assert!(told.is_full());
}

#[test]
fn offers_are_topped_up_for_a_downloader_that_stopped_asking_not_a_slow_one() {
    let lib = Lib(vec![complete("s", 100)]);
    let t0 = Instant::now();
    let mut first = Serve::new(t0);
    open(&mut first, &lib, "s", t0);
    let mut a = Serve::new(t0);
    let (_, offer) = open(&mut a, &lib, "s", t0);
    let offered: Vec<u32> = offer.iter_ones().collect();
    let new_offers = |m: &mut Serve<MemFile>, now: Instant| {
        m.tick(now).unwrap();
        m.replies()
            .map(|r| match r {
                PeerReply::Have { have, .. } => have.count(),
                _ => 0,
            })
            .sum::<u32>()
    };
    // A slow downloader: it asks for one offered piece a little more
    // often than STALE_OFFERS, each served at once. Its other offers
    // still wait, so it is not offered more.
    let step = STALE_OFFERS / 2;
    let mut now = t0;
    for &p in &offered[..3] {
        now += step;
        a.on_request(request(p, 1), now, &lib).unwrap();
        while a.next_slice().unwrap().is_some() {}
        assert_eq!(new_offers(&mut a, now), 0);
    }
    // It stops asking: after STALE_OFFERS its offers are topped up.
    now += STALE_OFFERS;
    assert!(new_offers(&mut a, now) > 0);
}

/// Drives a seeder for a second: `first` (told everything) takes 30
/// blocks every 10 ms, `near` asks for each offer as it is made, `far`,
/// 40 ms away, a round trip after. The size of near's last offer, and
/// what far holds offered and not yet asked at the end.
fn offers_after_a_second(lib: &Lib) -> (u32, u32) {
    let t0 = Instant::now();
    let mut first = Serve::new(t0);
    assert!(open(&mut first, lib, "s", t0).1.is_full());
    let (mut near, mut far) = (Serve::new(t0), Serve::new(t0));
    let ask = |m: &mut Serve<MemFile>, offer: &Bitfield, now| {
        for p in offer.iter_ones() {
            m.on_request(request(p, 1), now, lib).unwrap();
        }
        while m.next_slice().unwrap().is_some() {}
    };
    let mut near_offer = open(&mut near, lib, "s", t0).1;
    ask(&mut near, &near_offer, t0);
    let mut far_offers = VecDeque::from([(t0, open(&mut far, lib, "s", t0).1)]);
    let offered = |m: &mut Serve<MemFile>, now| {
        m.tick(now).unwrap();
        m.replies().find_map(|r| match r {
            PeerReply::Have { have, .. } => Some(have),
            _ => None,
        })
    };
    let step = Duration::from_millis(10);
    // Each measures its round trip with PINGs, one after the other's PONG.
    for n in 0..3 {
        for (m, rtt) in [
            (&mut near, Duration::from_micros(100)),
            (&mut far, 4 * step),
        ] {
            let req = PeerRequest::Ping { nonce: n };
            m.on_request(req, t0 + rtt * n as u32, lib).unwrap();
            m.replies().for_each(drop);
        }
    }
    let mut now = t0 + 8 * step;
    for i in 0..100 {
        now += step;
        first.on_request(request(i * 30, 30), now, lib).unwrap();
        while first.next_slice().unwrap().is_some() {}
        if let Some(offer) = offered(&mut near, now) {
            ask(&mut near, &offer, now);
            near_offer = offer;
        }
        while far_offers
            .front()
            .is_some_and(|(at, _)| now >= *at + 4 * step)
        {
            let (_, offer) = far_offers.pop_front().unwrap();
            ask(&mut far, &offer, now);
        }
        far_offers.extend(offered(&mut far, now).map(|o| (now, o)));
    }
    let far_waiting = far_offers.iter().map(|(_, o)| o.count()).sum();
    (near_offer.count(), far_waiting)
}

#[test]
fn a_far_downloader_is_offered_what_the_seeder_sends_while_it_asks() {
    // The seeder sends over 3,000 blocks a second; the far downloader
    // asks a round trip (40 ms) after each offer, so it needs at least
    // 3,000 x 0.04 / 3 (its share among three connections) offered at a
    // time; a near one keeps the share tuned on loopback.
    let lib = Lib(vec![complete("s", 12_000)]);
    let (near, far) = offers_after_a_second(&lib);
    let share = (OFFERED_BLOCKS / 3).clamp(1, OFFER_BLOCKS);
    assert_eq!(near, share);
    assert!(far >= 3000 * 40 / 1000 / 3, "far {far}");
    assert!(far <= FAR_OFFER_BLOCKS, "far {far}");
}

#[test]
fn a_peer_updating_that_takes_none_of_the_new_pieces_is_told_everything() {
    // Half the pieces new by their hash, as after an insertion: the
    // peers updating found most of them shifted in their old copies.
    let file = complete("s", 100);
    let mut hot = Bitfield::new(100);
    (50..100).for_each(|p| {
        hot.set(p);
    });
    file.seeding
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .prefer(hot.clone());
    let lib = Lib(vec![file]);
    let t0 = Instant::now();
    let mut m = Serve::new(t0);
    let (_, told) = open(&mut m, &lib, "s", t0);
    assert!(!told.is_full(), "alone, but offered new pieces first");
    assert_eq!(told.minus(&hot).count(), 0);
    // It asks for none of them: after STALE_OFFERS it is told the rest.
    let now = t0 + STALE_OFFERS;
    m.tick(now).unwrap();
    let more: Bitfield = m
        .replies()
        .find_map(|r| match r {
            PeerReply::Have { have, .. } => Some(have),
            _ => None,
        })
        .expect("told more");
    assert_eq!(more.count() + told.count(), 100, "everything");
}

#[test]
fn an_idle_connection_times_out() {
    let lib = Lib(vec![complete("f", 4)]);
    let t0 = Instant::now();
    let mut m: Serve<MemFile> = Serve::new(t0);
    open(&mut m, &lib, "f", t0);
    assert!(m.tick(t0 + IDLE_TIMEOUT).is_ok());
    assert!(m.tick(t0 + IDLE_TIMEOUT + Duration::from_secs(1)).is_err());
}

#[test]
fn connections_to_one_seeder_share_its_upload_between_them() {
    // The driver divides its batches by `sharers`, so the downloader
    // told everything does not take a batch per grant while the others
    // take a few blocks.
    let lib = Lib(vec![complete("f", 100), complete("g", 100)]);
    let t0 = Instant::now();
    let mut first = Serve::new(t0);
    open(&mut first, &lib, "f", t0);
    assert_eq!(first.sharers(), 1, "alone");
    let mut others: Vec<Serve<MemFile>> = (0..3).map(|_| Serve::new(t0)).collect();
    for m in &mut others {
        open(m, &lib, "f", t0);
    }
    assert_eq!(first.sharers(), 4);
    assert_eq!(others[0].sharers(), 4);
    // Another file's downloader shares nothing with them.
    let mut g = Serve::new(t0);
    open(&mut g, &lib, "g", t0);
    assert_eq!(g.sharers(), 1);
    assert_eq!(Serve::<MemFile>::new(t0).sharers(), 1, "nothing open");
}

#[test]
fn a_batch_of_new_pieces_goes_out_without_waiting() {
    let t0 = Instant::now();
    let (_lib, state, mut m) = partial_opened(HAVE_BATCH + 8, t0);
    {
        let mut s = state.lock().unwrap();
        s.0 = 2;
        for p in 0..HAVE_BATCH - 1 {
            s.1.set(p);
        }
    }
    let t1 = t0 + Duration::from_millis(10);
    m.tick(t1).unwrap();
    assert_eq!(m.replies().count(), 0, "one short of a batch waits");
    {
        let mut s = state.lock().unwrap();
        s.0 = 3;
        s.1.set(HAVE_BATCH - 1);
    }
    m.tick(t1).unwrap();
    match m.replies().collect::<Vec<_>>().as_slice() {
        [PeerReply::Have { have, .. }] => assert_eq!(have.count(), HAVE_BATCH),
        other => panic!("{other:?}"),
    }
}

/// `held` says when a tick would send nothing: before `HAVE_EVERY` with
/// fewer than a batch of new pieces, and never with offers to top up.
#[test]
fn held_says_when_new_pieces_still_wait() {
    let t0 = Instant::now();
    let (_lib, state, mut m) = partial_opened(HAVE_BATCH + 8, t0);
    let held = m.held().expect("no offers");
    assert_eq!(held.until, t0 + HAVE_EVERY);
    assert_eq!(held.below, HAVE_BATCH);
    {
        let mut s = state.lock().unwrap();
        s.0 = 2;
        for p in 0..HAVE_BATCH - 1 {
            s.1.set(p);
        }
    }
    let t1 = t0 + HAVE_EVERY - Duration::from_millis(1);
    assert!(held.holds(t1, HAVE_BATCH - 1));
    m.tick(t1).unwrap();
    assert_eq!(m.replies().count(), 0, "held: nothing to send");
    assert!(!held.holds(t0 + HAVE_EVERY, HAVE_BATCH - 1));
    assert!(!held.holds(t1, HAVE_BATCH));
    m.tick(t0 + HAVE_EVERY).unwrap();
    assert_eq!(m.replies().count(), 1, "not held: the HAVE goes");
    // A seeder's offers may be topped up at any tick.
    let lib = Lib(vec![complete("s", 64)]);
    let mut m = Serve::new(t0);
    let _other = {
        let mut o = Serve::new(t0);
        open(&mut o, &lib, "s", t0);
        o
    };
    open(&mut m, &lib, "s", t0);
    assert!(m.held().is_none());
}
