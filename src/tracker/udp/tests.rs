use super::*;
use crate::record::FileRecord;
use crate::wire::datagram::tracker::{Entry, Held, CONNECT_LEN, FLAG_SITE, MIN_ANNOUNCE_LEN};
use proptest::prelude::*;

struct Bench {
    catalogue: Mutex<Catalogue>,
    cookies: CookieJar,
    now: Instant,
    secs: u64,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            catalogue: Mutex::new(Catalogue::new()),
            cookies: CookieJar::with_key([1; 16]),
            now: Instant::now(),
            secs: 1_000,
        }
    }

    /// Sends `req` from `from`; the event and the decoded answer.
    fn send(&self, req: &Request<'_>, from: SocketAddr) -> (Event, Option<Reply>, usize) {
        let mut bytes = Vec::new();
        req.encode(&mut bytes);
        let mut out = Vec::new();
        let ev = respond(
            &self.catalogue,
            &self.cookies,
            &bytes,
            from,
            self.now,
            self.secs,
            &mut out,
        );
        assert!(out.len() <= bytes.len(), "an answer outgrew its request");
        let reply = (!out.is_empty()).then(|| Reply::decode(&out).unwrap());
        (ev, reply, bytes.len())
    }

    fn cookie(&self, from: SocketAddr) -> u64 {
        match self.send(&Request::Connect { tx: 1 }, from).1 {
            Some(Reply::Connected { tx: 1, cookie }) => cookie,
            other => panic!("{other:?}"),
        }
    }
}

fn from(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn announce<'a>(cookie: u64, session: u64, flags: u8, entries: Vec<Entry<'a>>) -> Request<'a> {
    Request::Announce(Announce {
        tx: 9,
        cookie,
        session,
        flags,
        port: 7000,
        peer_id: "A",
        advertise: "",
        site: "",
        entries,
    })
}

#[test]
fn connect_register_announce_bye() {
    let b = Bench::new();
    let me = from("127.0.0.5:4000");
    let cookie = b.cookie(me);
    let r = FileRecord::from_bytes("f", &[1; 9000]);
    let entries = vec![Entry {
        name: "f",
        md5: r.md5,
        held: Held::Complete,
    }];
    // Unknown file: flagged, so the peer sends its record.
    let (ev, reply, _) = b.send(&announce(cookie, 0, FLAG_REGISTER, entries.clone()), me);
    assert_eq!(ev, Event::Registered("A".into()));
    let Some(Reply::Announced(a)) = reply else {
        panic!()
    };
    assert_eq!((a.tx, a.interval_secs, a.peers), (9, 3, 1));
    assert_eq!(a.source.to_string(), "127.0.0.5");
    assert_eq!(a.unknown, [true]);
    b.catalogue
        .lock()
        .unwrap()
        .publish(r, "", std::time::Instant::now())
        .unwrap();
    let (ev, reply, _) = b.send(&announce(cookie, a.session, 0, entries), me);
    assert_eq!(ev, Event::Announced);
    let Some(Reply::Announced(again)) = reply else {
        panic!()
    };
    assert!(again.unknown.is_empty());
    let h = b.catalogue.lock().unwrap().holders("f", None).unwrap();
    assert_eq!(
        (h[0].host.as_str(), h[0].port, h[0].complete),
        ("127.0.0.5", 7000, true)
    );
    // Goodbye ends the session; a second one finds nothing.
    let (ev, _, _) = b.send(&announce(cookie, a.session, FLAG_BYE, vec![]), me);
    assert_eq!(ev, Event::Left("A".into()));
    assert_eq!(b.catalogue.lock().unwrap().peer_count(), 0);
    let (ev, _, _) = b.send(&announce(cookie, a.session, FLAG_BYE, vec![]), me);
    assert_eq!(ev, Event::Refused(Refusal::UnknownSession));
}

#[test]
fn forged_stale_and_borrowed_cookies_are_refused_briefly() {
    let b = Bench::new();
    let me = from("127.0.0.5:4000");
    let cookie = b.cookie(me);
    for (c, src) in [
        (cookie ^ 1, me),
        (0, me),
        // Another address cannot use mine (a spoofer never saw it).
        (cookie, from("127.0.0.6:4000")),
        (cookie, from("127.0.0.5:4001")),
    ] {
        let (ev, reply, len) = b.send(&announce(c, 0, FLAG_REGISTER, vec![]), src);
        assert_eq!(ev, Event::Refused(Refusal::BadCookie));
        assert!(matches!(
            reply,
            Some(Reply::Refused {
                tx: 9,
                reason: Refusal::BadCookie
            })
        ));
        assert_eq!(len, MIN_ANNOUNCE_LEN);
    }
    assert_eq!(
        b.catalogue.lock().unwrap().peer_count(),
        0,
        "nothing registered"
    );
    // Two windows later the id has expired.
    let late = Bench {
        secs: b.secs + 2 * crate::tracker::cookie::WINDOW_SECS,
        ..Bench::new()
    };
    let (ev, _, _) = late.send(&announce(cookie, 0, FLAG_REGISTER, vec![]), me);
    assert_eq!(ev, Event::Refused(Refusal::BadCookie));
}

#[test]
fn unknown_sessions_and_bad_ports_are_refused() {
    let b = Bench::new();
    let me = from("[::1]:4000");
    let cookie = b.cookie(me);
    let (ev, _, _) = b.send(&announce(cookie, 12345, 0, vec![]), me);
    assert_eq!(ev, Event::Refused(Refusal::UnknownSession));
    let mut bytes = Vec::new();
    let Request::Announce(mut a) = announce(cookie, 0, FLAG_REGISTER, vec![]) else {
        unreachable!()
    };
    a.port = 0;
    Request::Announce(a).encode(&mut bytes);
    let mut out = Vec::new();
    let ev = respond(
        &b.catalogue,
        &b.cookies,
        &bytes,
        me,
        b.now,
        b.secs,
        &mut out,
    );
    assert_eq!(ev, Event::Refused(Refusal::BadRequest));
}

#[test]
fn malformed_announces_from_a_proven_address_are_refused() {
    let b = Bench::new();
    let me = from("127.0.0.5:4000");
    let cookie = b.cookie(me);
    let Request::Announce(mut a) = announce(cookie, 0, FLAG_REGISTER, vec![]) else {
        unreachable!()
    };
    a.advertise = "bad host";
    let mut bytes = Vec::new();
    Request::Announce(a.clone()).encode(&mut bytes);
    let mut out = Vec::new();
    let ev = respond(
        &b.catalogue,
        &b.cookies,
        &bytes,
        me,
        b.now,
        b.secs,
        &mut out,
    );
    assert_eq!(ev, Event::Refused(Refusal::BadRequest));
    assert!(out.len() < bytes.len());
    // Without a valid connection id: nothing at all.
    a.cookie ^= 1;
    Request::Announce(a).encode(&mut bytes);
    let ev = respond(
        &b.catalogue,
        &b.cookies,
        &bytes,
        me,
        b.now,
        b.secs,
        &mut out,
    );
    assert_eq!(ev, Event::Dropped);
    assert!(out.is_empty());
}

#[test]
fn garbage_gets_no_answer() {
    let b = Bench::new();
    let mut out = Vec::new();
    for junk in [
        &b""[..],
        b"p2",
        b"GET / HTTP/1.1\r\n\r\n",
        &[0u8; 16],
        &[b'p', b'2', 1, 0x10],
    ] {
        let ev = respond(
            &b.catalogue,
            &b.cookies,
            junk,
            from("127.0.0.1:1"),
            b.now,
            b.secs,
            &mut out,
        );
        assert_eq!(ev, Event::Dropped);
        assert!(out.is_empty());
    }
    // A CONNECT's answer is exactly as long as the CONNECT.
    let (_, _, len) = b.send(&Request::Connect { tx: 3 }, from("127.0.0.1:1"));
    assert_eq!(len, CONNECT_LEN);
}

proptest! {
    #[test]
    fn no_input_draws_a_longer_answer(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let b = Bench::new();
        let mut out = Vec::new();
        let mut framed = vec![b'p', b'2', 1, 0x11];
        framed.extend_from_slice(&bytes);
        for d in [&bytes[..], &framed[..]] {
            respond(&b.catalogue, &b.cookies, d, from("10.9.9.9:53"), b.now, b.secs, &mut out);
            prop_assert!(out.len() <= d.len());
        }
    }
}

#[test]
fn a_second_peer_with_a_live_id_is_told_where_the_first_is() {
    let b = Bench::new();
    let first = from("10.0.0.1:4000");
    let (ev, ..) = b.send(&announce(b.cookie(first), 0, FLAG_REGISTER, vec![]), first);
    assert_eq!(ev, Event::Registered("A".into()));
    // Another host, same id: refused, with the first one's address.
    let second = from("10.0.0.2:4000");
    let (ev, reply, len) = b.send(
        &announce(b.cookie(second), 0, FLAG_REGISTER, vec![]),
        second,
    );
    let at = "10.0.0.1:7000".to_string();
    assert_eq!(
        ev,
        Event::InUse {
            peer_id: "A".into(),
            at: at.clone()
        }
    );
    assert_eq!(reply, Some(Reply::InUse { tx: 9, at }));
    assert_eq!(len, MIN_ANNOUNCE_LEN);
    // The same host and advertised port again: the first one restarted.
    let again = from("10.0.0.1:4001");
    let (ev, ..) = b.send(&announce(b.cookie(again), 0, FLAG_REGISTER, vec![]), again);
    assert_eq!(ev, Event::Registered("A".into()));
}

#[test]
fn a_register_with_a_site_puts_the_peer_in_it() {
    let b = Bench::new();
    let me = from("127.0.0.5:4000");
    let cookie = b.cookie(me);
    let r = FileRecord::from_bytes("f", &[1; 9000]);
    b.catalogue
        .lock()
        .unwrap()
        .publish(r.clone(), "", b.now)
        .unwrap();
    let entries = vec![Entry {
        name: "f",
        md5: r.md5,
        held: Held::Complete,
    }];
    let Request::Announce(mut a) = announce(cookie, 0, FLAG_REGISTER | FLAG_SITE, entries) else {
        unreachable!()
    };
    a.site = "lab-2";
    let (ev, _, _) = b.send(&Request::Announce(a), me);
    assert_eq!(ev, Event::Registered("A".into()));
    let h = b
        .catalogue
        .lock()
        .unwrap()
        .holders_for("f", None, Some("lab-2"))
        .unwrap();
    assert_eq!(h[0].site, "lab-2");
}
