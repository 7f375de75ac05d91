use super::*;

const LIMITS: Limits = Limits {
    handlers: 2,
    lobby: 3,
    per_ip: 2,
    start: Duration::from_secs(4),
};

fn ip(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

fn admitted(d: &[Decision]) -> GateId {
    match d.last() {
        Some(Decision::Admit(id)) => *id,
        other => panic!("not admitted: {other:?}"),
    }
}

/// Accepts from `from` and makes it ready at once; the decisions.
fn arrive(a: &mut Admission, from: u8, t: Instant) -> (GateId, Vec<Decision>) {
    let id = admitted(&a.accept(ip(from), t));
    (id, a.ready(id, t))
}

#[test]
fn a_whole_first_message_gets_a_thread_while_threads_are_free() {
    let t = Instant::now();
    let mut a = Admission::new(LIMITS);
    let (id, d) = arrive(&mut a, 1, t);
    assert_eq!(d, vec![Decision::Hand(id)]);
    assert_eq!(a.threads(), 1);
    a.closed(id);
    assert_eq!((a.threads(), a.held()), (0, 0));
}

#[test]
fn the_per_address_cap_evicts_that_address_own_idle_slot_first() {
    let t = Instant::now();
    let mut a = Admission::new(LIMITS);
    let first = admitted(&a.accept(ip(1), t));
    let _second = admitted(&a.accept(ip(1), t));
    let d = a.accept(ip(1), t);
    assert_eq!(d[0], Decision::Evict(first), "oldest of its own first");
    assert!(matches!(d[1], Decision::Admit(_)));
    // Two busy connections: nothing of its own to give up, so BUSY.
    let mut a = Admission::new(LIMITS);
    for _ in 0..2 {
        let (id, _) = arrive(&mut a, 1, t);
        a.busy(id, t);
    }
    assert_eq!(a.accept(ip(1), t), vec![Decision::Refuse]);
    // Another address is not held back by it.
    assert!(matches!(a.accept(ip(2), t)[..], [Decision::Admit(_)]));
}

#[test]
fn a_full_lobby_evicts_from_the_address_holding_most_not_the_newcomer() {
    let t = Instant::now();
    let mut a = Admission::new(LIMITS);
    let legit = admitted(&a.accept(ip(1), t));
    let t1 = t + Duration::from_millis(1);
    let attacker = [
        admitted(&a.accept(ip(9), t1)),
        admitted(&a.accept(ip(9), t1)),
    ];
    // ip 1's slot is older, but ip 9 holds more: it pays.
    let d = a.accept(ip(5), t1);
    assert_eq!(d[0], Decision::Evict(attacker[0]));
    // The evicted one gave its address slot back: ip 9 is under its cap
    // again (and, every address now even, the oldest slot goes).
    let d = a.accept(ip(9), t1);
    assert_eq!(d.first(), Some(&Decision::Evict(legit)), "{d:?}");
    assert!(matches!(d.last(), Some(Decision::Admit(_))), "{d:?}");
}

#[test]
fn the_start_deadline_closes_silent_and_trickling_connections() {
    let t = Instant::now();
    let mut a = Admission::new(LIMITS);
    let silent = admitted(&a.accept(ip(1), t));
    let later = admitted(&a.accept(ip(2), t + Duration::from_secs(2)));
    assert!(a.tick(t + Duration::from_secs(3)).is_empty());
    assert_eq!(
        a.tick(t + Duration::from_secs(4)),
        vec![Decision::Evict(silent)]
    );
    assert_eq!(
        a.tick(t + Duration::from_secs(6)),
        vec![Decision::Evict(later)]
    );
    assert_eq!(a.held(), 0);
}

#[test]
fn threads_are_bounded_and_idle_ones_make_way_busy_ones_never() {
    let t = Instant::now();
    let mut a = Admission::new(LIMITS);
    let (busy, _) = arrive(&mut a, 1, t);
    a.busy(busy, t);
    let (useful, _) = arrive(&mut a, 2, t);
    a.idle(useful, true, t);
    // A third ready connection: no thread free, the idle one is evicted.
    let (newcomer, d) = arrive(&mut a, 3, t);
    assert_eq!(d, vec![Decision::Evict(useful)]);
    assert_eq!(a.threads(), 2, "never more threads than the bound");
    // Until its thread ends, nothing more is evicted for the same wait.
    assert!(a.tick(t).is_empty());
    a.closed(useful);
    assert_eq!(a.tick(t), vec![Decision::Hand(newcomer)]);
    // Everyone busy: a ready connection waits, and nobody is evicted.
    a.busy(newcomer, t);
    let (waiting, d) = arrive(&mut a, 4, t);
    assert!(d.is_empty(), "{d:?}");
    a.closed(busy);
    assert_eq!(a.tick(t), vec![Decision::Hand(waiting)]);
}

#[test]
fn a_thread_goes_to_the_quiet_address_before_the_crowd() {
    let t = Instant::now();
    let limits = Limits {
        per_ip: 8,
        lobby: 8,
        ..LIMITS
    };
    let mut a = Admission::new(limits);
    for _ in 0..2 {
        let (id, _) = arrive(&mut a, 9, t);
        a.busy(id, t);
    }
    // The crowd's ready connections wait; then a newcomer's.
    let crowd: Vec<GateId> = (0..3).map(|_| arrive(&mut a, 9, t).0).collect();
    let (newcomer, _) = arrive(&mut a, 1, t + Duration::from_millis(1));
    let first = a
        .conns
        .iter()
        .find(|(_, e)| e.state == State::Busy)
        .map(|(&id, _)| id);
    a.closed(first.unwrap());
    assert_eq!(a.tick(t), vec![Decision::Hand(newcomer)], "not {crowd:?}");
    // Handed with a whole message to serve: not evicted for the crowd
    // before its handler says it waits.
    assert!(a.tick(t).is_empty());
}

#[test]
fn idle_holding_nothing_goes_before_idle_holding_a_download() {
    let t = Instant::now();
    let mut a = Admission::new(LIMITS);
    let (useful, _) = arrive(&mut a, 1, t);
    a.idle(useful, true, t);
    let (empty, _) = arrive(&mut a, 2, t + Duration::from_secs(1));
    a.idle(empty, false, t + Duration::from_secs(1));
    let (_, d) = arrive(&mut a, 3, t + Duration::from_secs(1));
    assert_eq!(d, vec![Decision::Evict(empty)]);
}

#[test]
fn a_ready_connection_waiting_too_long_is_closed_not_kept() {
    let t = Instant::now();
    let mut a = Admission::new(LIMITS);
    for n in 1..=2 {
        let (id, _) = arrive(&mut a, n, t);
        a.busy(id, t);
    }
    let (waiting, _) = arrive(&mut a, 3, t);
    assert_eq!(a.tick(t + LIMITS.start), vec![Decision::Evict(waiting)]);
}

#[test]
fn a_flood_from_many_addresses_never_shuts_out_a_newcomer() {
    let t = Instant::now();
    let limits = Limits {
        handlers: 8,
        lobby: 64,
        per_ip: 4,
        start: Duration::from_secs(4),
    };
    let mut a = Admission::new(limits);
    let mut rng = crate::rng::Rng::new();
    // 100 attacker addresses: idle ones, and some that send one message
    // and then sit idle on a thread.
    for round in 0..2000u64 {
        let now = t + Duration::from_millis(round);
        let from = 2 + (round % 100) as u8;
        let d = a.accept(ip(from), now);
        settle(&mut a, &d, now);
        if let Some(Decision::Admit(id)) = d.last() {
            if rng.below(3) == 0 {
                let d = a.ready(*id, now);
                settle(&mut a, &d, now);
            }
        }
        let d = a.tick(now);
        settle(&mut a, &d, now);
        assert!(a.threads() <= limits.handlers);
        assert!(a.held() <= limits.lobby + limits.handlers);
    }
    let now = t + Duration::from_secs(3);
    let newcomer = admitted(&a.accept(ip(1), now));
    let d = a.ready(newcomer, now);
    let mut handed = d.contains(&Decision::Hand(newcomer));
    settle(&mut a, &d, now);
    handed |= a.tick(now).contains(&Decision::Hand(newcomer));
    assert!(handed, "the newcomer got a thread");
}

/// What the driver does: evicted threads end, handed ones sit idle.
fn settle(a: &mut Admission, decisions: &[Decision], now: Instant) {
    for d in decisions {
        match *d {
            Decision::Evict(id) => a.closed(id),
            Decision::Hand(id) => a.idle(id, false, now),
            _ => {}
        }
    }
}
