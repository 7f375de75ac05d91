//! The announcer against the tracker's own `respond`, both pure: a whole
//! UDP exchange in made-up time, with losses and restarts on demand.

use super::*;
use crate::record::FileRecord;
use crate::tracker::catalogue::Catalogue;
use crate::tracker::cookie::CookieJar;
use crate::tracker::udp::respond;
use crate::wire::datagram::tracker::ANNOUNCE_BUDGET;
use std::net::SocketAddr;
use std::sync::Mutex;

struct World {
    peer: Announcer,
    catalogue: Mutex<Catalogue>,
    cookies: CookieJar,
    start: Instant,
    now: Instant,
    from: SocketAddr,
    /// Datagrams the tracker answered, and the longest of them.
    served: usize,
    largest: usize,
}

impl World {
    fn new() -> World {
        let now = Instant::now();
        let id = Identity {
            peer_id: "A".into(),
            port: 7000,
            advertise: String::new(),
            site: String::new(),
        };
        World {
            peer: Announcer::new(id, now, 1),
            catalogue: Mutex::new(Catalogue::new()),
            cookies: CookieJar::with_key([5; 16]),
            start: now,
            now,
            from: "127.0.0.9:40000".parse().unwrap(),
            served: 0,
            largest: 0,
        }
    }

    /// Polls and delivers until the peer has nothing to send now; with
    /// `lose`, the tracker never sees anything. The notices seen.
    fn run(&mut self, holdings: &Holdings, lose: bool) -> Vec<Notice> {
        let mut notices = Vec::new();
        for _ in 0..1000 {
            let (send, wake) = self.peer.poll(self.now, holdings);
            notices.extend(self.peer.lost());
            let Some(bytes) = send else { return notices };
            assert!(wake > self.now);
            if lose {
                return notices;
            }
            let mut out = Vec::new();
            let secs = self.now.duration_since(self.start).as_secs();
            respond(
                &self.catalogue,
                &self.cookies,
                &bytes,
                self.from,
                self.now,
                secs,
                &mut out,
            );
            self.served += 1;
            self.largest = self.largest.max(bytes.len());
            assert!(!out.is_empty());
            notices.extend(self.peer.on_datagram(&out, self.now));
        }
        panic!("the peer never settled");
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn holders(&self, name: &str) -> Vec<(String, u64, bool)> {
        let mut c = self.catalogue.lock().unwrap();
        c.holders(name, None)
            .unwrap()
            .into_iter()
            .map(|h| (h.peer_id, h.blocks, h.complete))
            .collect()
    }
}

fn published(w: &World, r: &FileRecord) {
    w.catalogue
        .lock()
        .unwrap()
        .publish(r.clone(), "", std::time::Instant::now())
        .unwrap();
}

fn holding(r: &FileRecord, held: Held) -> (String, (Md5Digest, Held)) {
    (r.name.clone(), (r.md5, held))
}

#[test]
fn registers_announces_and_keeps_alive() {
    let mut w = World::new();
    let a = FileRecord::from_bytes("a", &[1; 40_000]);
    let b = FileRecord::from_bytes("b", &[2; 40_000]);
    published(&w, &a);
    published(&w, &b);
    let mut h: Holdings = [holding(&a, Held::Complete)].into();
    let notices = w.run(&h, false);
    assert_eq!(notices, [Notice::Reachable("127.0.0.9".parse().unwrap())]);
    assert!(w.peer.reachable() && w.peer.acked("a"));
    assert_eq!(w.holders("a"), [("A".into(), 10, true)]);
    assert_eq!(w.served, 2, "CONNECT, then REGISTER with the file");

    // A new download is told at once; its growth waits for the interval.
    h.insert("b".into(), (b.md5, Held::Partial(0)));
    w.run(&h, false);
    assert_eq!(w.holders("b"), [("A".into(), 0, false)]);
    h.insert("b".into(), (b.md5, Held::Partial(4)));
    let before = w.served;
    w.run(&h, false);
    assert_eq!(w.served, before, "no announce for growth alone");
    w.advance(Duration::from_secs(3));
    w.run(&h, false);
    assert_eq!(w.holders("b"), [("A".into(), 4, false)]);
    // Unless asked to hurry.
    h.insert("b".into(), (b.md5, Held::Partial(6)));
    w.peer.urge();
    w.run(&h, false);
    assert_eq!(w.holders("b"), [("A".into(), 6, false)]);

    // Nothing changed: one empty announce per interval keeps it alive.
    let before = w.served;
    for _ in 0..10 {
        w.advance(Duration::from_secs(3));
        w.run(&h, false);
        assert!(w.catalogue.lock().unwrap().expire(w.now).is_empty());
    }
    assert_eq!(w.served - before, 10);

    // A file given up goes at once.
    h.remove("b");
    w.run(&h, false);
    assert!(w.holders("b").is_empty());
    assert!(!w.peer.acked("b"));
}

#[test]
fn losses_back_off_to_the_interval_and_recover() {
    let mut w = World::new();
    let h = Holdings::new();
    w.run(&h, false);
    w.advance(Duration::from_secs(3));
    // The tracker goes silent: retries at 250 ms, then 0.5, 1, 2, 3, 3 s.
    let mut waits = Vec::new();
    let mut last = w.now;
    let mut notices = Vec::new();
    for _ in 0..7 {
        let (send, wake) = w.peer.poll(w.now, &h);
        assert!(send.is_some());
        notices.extend(w.peer.lost());
        waits.push(wake - last);
        w.now = wake;
        last = wake;
    }
    let ms: Vec<u128> = waits.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [250, 500, 1000, 2000, 3000, 3000, 3000]);
    assert_eq!(notices, [Notice::Unreachable]);
    assert!(!w.peer.reachable());
    // It answers again: back at the next retry, within one interval.
    let notices = w.run(&h, false);
    assert!(matches!(notices[..], [Notice::Reachable(_)]));
}

#[test]
fn late_answers_to_an_earlier_try_are_ignored() {
    let mut w = World::new();
    let h = Holdings::new();
    let (first, _) = w.peer.poll(w.now, &h);
    let first = first.unwrap();
    w.advance(FIRST_RETRY);
    let (second, _) = w.peer.poll(w.now, &h);
    assert_ne!(first[4..8], second.unwrap()[4..8], "a fresh transaction id");
    let mut out = Vec::new();
    respond(&w.catalogue, &w.cookies, &first, w.from, w.now, 0, &mut out);
    assert!(w.peer.on_datagram(&out, w.now).is_empty());
    assert!(w.peer.on_datagram(b"junk", w.now).is_empty());
}

#[test]
fn a_restarted_tracker_gets_everything_again() {
    let mut w = World::new();
    let a = FileRecord::from_bytes("a", &[1; 9000]);
    published(&w, &a);
    let h: Holdings = [holding(&a, Held::Complete)].into();
    w.run(&h, false);
    // A new process: another key, an empty catalogue but for the record
    // it read back from disk.
    w.cookies = CookieJar::with_key([6; 16]);
    w.catalogue = Mutex::new(Catalogue::new());
    published(&w, &a);
    w.advance(Duration::from_secs(3));
    let before = w.served;
    w.run(&h, false);
    assert_eq!(w.holders("a"), [("A".into(), 3, true)]);
    // Refused cookie, CONNECT, refused session, REGISTER with the file.
    assert_eq!(w.served - before, 4);
}

#[test]
fn unknown_files_are_published_then_announced() {
    let mut w = World::new();
    let a = FileRecord::from_bytes("a", &[1; 9000]);
    let h: Holdings = [holding(&a, Held::Complete)].into();
    let notices = w.run(&h, false);
    assert_eq!(notices.last(), Some(&Notice::Publish(vec!["a".into()])));
    assert!(!w.peer.acked("a"));
    // Held out: not sent again before it is published.
    let before = w.served;
    w.run(&h, false);
    assert_eq!(w.served, before);
    published(&w, &a);
    w.peer.release("a");
    w.run(&h, false);
    assert!(w.peer.acked("a"));
    assert_eq!(w.holders("a").len(), 1);
}

#[test]
fn many_files_go_in_batches_and_bye_ends_the_session() {
    let mut w = World::new();
    let mut h = Holdings::new();
    for i in 0..300 {
        let r = FileRecord::from_bytes(&format!("file-number-{i:04}.bin"), &[i as u8; 100]);
        published(&w, &r);
        h.insert(r.name.clone(), (r.md5, Held::Complete));
    }
    w.run(&h, false);
    assert!(w.served > 5, "{} datagrams", w.served);
    assert!(w.largest <= ANNOUNCE_BUDGET, "{} bytes", w.largest);
    assert_eq!(
        w.catalogue
            .lock()
            .unwrap()
            .list_files()
            .iter()
            .filter(|f| f.seeders == 1)
            .count(),
        300
    );
    w.peer.leave();
    let notices = w.run(&h, false);
    assert_eq!(notices, [Notice::Left]);
    assert_eq!(w.catalogue.lock().unwrap().peer_count(), 0);
}

#[test]
fn an_id_in_use_elsewhere_is_told_once_and_retried_each_interval() {
    let h = Holdings::new();
    // The first A, on another host, is registered and alive.
    let mut w = World::new();
    let other: crate::tracker::catalogue::Host =
        crate::tracker::catalogue::Host::Ip("10.0.0.1".parse().unwrap());
    w.catalogue
        .lock()
        .unwrap()
        .register("A", other, 9000, w.now);
    let notices = w.run(&h, false);
    assert_eq!(
        notices.last(),
        Some(&Notice::IdInUse("10.0.0.1:9000".into()))
    );
    // Nothing more until the interval is up; then a retry, refused again
    // without a second notice.
    let interval = w.peer.interval();
    assert!(w.run(&h, false).is_empty());
    w.advance(interval);
    let again = w.run(&h, false);
    assert!(
        !again.iter().any(|n| matches!(n, Notice::IdInUse(_))),
        "{again:?}"
    );
    // Once the first one is gone, the retry registers.
    w.catalogue
        .lock()
        .unwrap()
        .expire(w.now + Duration::from_secs(3600));
    w.advance(interval);
    w.run(&h, false);
    assert_eq!(w.catalogue.lock().unwrap().peer_count(), 1);
    assert!(w.peer.session.is_some());
}
