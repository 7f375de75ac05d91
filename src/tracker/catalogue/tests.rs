use super::*;
use crate::wire::PEER_EXPIRY;

fn ip(s: &str) -> Host {
    Host::Ip(s.parse().unwrap())
}

fn entry<'a>(r: &'a FileRecord, held: Held) -> Entry<'a> {
    Entry {
        name: &r.name,
        md5: r.md5,
        held,
    }
}

/// Registers `id` and announces it holds all of `r`.
fn seed(c: &mut Catalogue, id: &str, r: &FileRecord, now: Instant) -> u64 {
    let s = c.register(id, ip("10.0.0.1"), 7000, now);
    c.announce(id, s, &[entry(r, Held::Complete)], now).unwrap();
    s
}

fn remote_code(e: Error) -> u16 {
    match e {
        Error::Remote { code, .. } => code,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn publish_register_announce_and_find_holders() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let r = FileRecord::from_bytes("a.bin", &[7; 10_000]);
    assert!(c.publish(r.clone(), "", std::time::Instant::now()).unwrap());
    assert!(
        !c.publish(r.clone(), "", std::time::Instant::now()).unwrap(),
        "identical again"
    );
    assert!(
        c.holders("a.bin", None).unwrap().is_empty(),
        "a record alone holds nothing"
    );
    seed(&mut c, "A", &r, t0);
    let h = c.holders("a.bin", None).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (
            h[0].peer_id.as_str(),
            h[0].host.as_str(),
            h[0].port,
            h[0].blocks,
            h[0].complete
        ),
        ("A", "10.0.0.1", 7000, 3, true)
    );
    assert_eq!(*c.record("a.bin").unwrap(), r);
    let list = c.list_files();
    assert_eq!(
        (list[0].holders, list[0].seeders, list[0].size),
        (1, 1, 10_000)
    );
    assert!(matches!(c.holders("nope", None), Err(Error::NotFound(_))));
    assert!(c.record("nope").is_none());
}

#[test]
fn same_name_other_content_conflicts_and_first_stays() {
    let mut c = Catalogue::new();
    let first = FileRecord::from_bytes("x", b"first");
    c.publish(first.clone(), "", std::time::Instant::now())
        .unwrap();
    let e = c
        .publish(
            FileRecord::from_bytes("x", b"second"),
            "",
            std::time::Instant::now(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)));
    assert_eq!(e.wire_code(), code::CONFLICT);
    assert!(e.to_string().contains(&hex(&first.md5)), "{e}");
    assert_eq!(*c.record("x").unwrap(), first);
    let mut forged = first.clone();
    forged.piece_hashes[0] = [0; 32];
    assert!(matches!(
        c.publish(forged, "", std::time::Instant::now()),
        Err(Error::Conflict(_))
    ));
}

#[test]
fn a_legacy_name_waits_for_the_same_content() {
    let mut c = Catalogue::new();
    let r = FileRecord::from_bytes("old", b"version 1 content");
    let legacy = LegacyRecord {
        name: r.name.clone(),
        size: r.size,
        md5: r.md5,
    };
    assert!(c.load_legacy(legacy.clone()));
    assert!(!c.load_legacy(legacy), "once");
    assert!(c.record("old").is_none());
    assert!(c.list_files().is_empty());
    let e = c.holders("old", None).unwrap_err();
    assert!(e.to_string().contains("older p2pshare"), "{e}");
    // Announced, it is unknown: the holder publishes it again.
    let now = Instant::now();
    let s = c.register("A", ip("10.0.0.1"), 7000, now);
    let a = c
        .announce("A", s, &[entry(&r, Held::Complete)], now)
        .unwrap();
    assert_eq!(a.unknown, vec![true]);
    let other = FileRecord::from_bytes("old", b"squatter");
    assert!(matches!(
        c.publish(other, "", std::time::Instant::now()),
        Err(Error::Conflict(_))
    ));
    assert!(
        c.publish(r.clone(), "", std::time::Instant::now()).unwrap(),
        "new: the caller saves it"
    );
    assert_eq!(*c.record("old").unwrap(), r);
    assert_eq!(c.legacy_count(), 0);
}

#[test]
fn a_record_withdrawn_by_its_last_member_is_dropped_and_its_name_freed() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let old = FileRecord::from_bytes("x", b"old");
    let new = FileRecord::from_bytes("x", b"new content");
    c.publish(old.clone(), "", std::time::Instant::now())
        .unwrap();
    let a = seed(&mut c, "A", &old, t0);
    let b = c.register("B", ip("10.0.0.2"), 2, t0);
    c.announce("B", b, &[entry(&old, Held::Partial(0))], t0)
        .unwrap();
    // A member remains (B is downloading): the first stays.
    c.announce("A", a, &[entry(&old, Held::Gone)], t0).unwrap();
    assert!(matches!(
        c.publish(new.clone(), "", std::time::Instant::now()),
        Err(Error::Conflict(_))
    ));
    // A download given up withdraws nothing, even the last one.
    c.announce("B", b, &[entry(&old, Held::Gone)], t0).unwrap();
    assert!(matches!(
        c.publish(new.clone(), "", std::time::Instant::now()),
        Err(Error::Conflict(_))
    ));
    assert!(c.take_withdrawn().is_empty());
    // The last member, a seeder, withdraws it: gone from every answer,
    // name free.
    c.announce("A", a, &[entry(&old, Held::Complete)], t0)
        .unwrap();
    c.announce("A", a, &[entry(&old, Held::Gone)], t0).unwrap();
    assert_eq!(c.take_withdrawn(), ["x"]);
    assert!(c.record("x").is_none());
    assert!(c.list_files().is_empty());
    assert!(matches!(c.holders("x", None), Err(Error::NotFound(_))));
    assert_eq!(c.file_count(), 0);
    assert!(
        c.publish(new.clone(), "", std::time::Instant::now())
            .unwrap(),
        "new content accepted"
    );
    assert_eq!(*c.record("x").unwrap(), new);
    // A peer still holding the old content is told the tracker does not
    // have that version: it publishes it, and the owner rule decides.
    let ann = c
        .announce("A", a, &[entry(&old, Held::Complete)], t0)
        .unwrap();
    assert_eq!(ann.unknown, [true]);
    assert!(c.holders("x", None).unwrap().is_empty());
}

#[test]
fn a_folder_is_listed_and_summed_up_as_a_folder() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let r = crate::wire::message::tests::folder_record();
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    seed(&mut c, "A", &r, t0);
    let listed = &c.list_files()[0];
    assert_eq!((listed.name.as_str(), listed.folder), ("tree", Some(3)));
    assert_eq!(listed.display_name(), "tree/");
    let s = c.summary(t0, 10);
    assert_eq!(s.file_totals[0].name, "tree/");
    assert_eq!(s.rows[0].file, "tree/");
}

#[test]
fn expiry_and_goodbye_do_not_withdraw_a_record() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let r = FileRecord::from_bytes("y", b"kept");
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    let a = seed(&mut c, "A", &r, t0);
    assert!(c.remove_peer("A", a));
    seed(&mut c, "B", &r, t0);
    c.expire(t0 + Duration::from_secs(3600));
    assert!(c.take_withdrawn().is_empty());
    assert_eq!(*c.record("y").unwrap(), r);
    assert!(matches!(
        c.publish(
            FileRecord::from_bytes("y", b"other"),
            "",
            std::time::Instant::now()
        ),
        Err(Error::Conflict(_))
    ));
}

#[test]
fn announces_update_counts_and_report_unknown_files() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let r = FileRecord::from_bytes("f", &[1; 5 * 4096]);
    let g = FileRecord::from_bytes("g", &[2; 4096]);
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    c.publish(g.clone(), "", std::time::Instant::now()).unwrap();
    let a = seed(&mut c, "A", &r, t0);
    c.announce("A", a, &[entry(&g, Held::Complete)], t0)
        .unwrap();
    let b = c.register("B", ip("10.0.0.2"), 2, t0);

    let mut wrong_md5 = entry(&r, Held::Partial(1));
    wrong_md5.md5 = [0; 16];
    let unknown = Entry {
        name: "zzz",
        md5: [1; 16],
        held: Held::Complete,
    };
    let gone_unknown = Entry {
        name: "yyy",
        md5: [1; 16],
        held: Held::Gone,
    };
    let got = c
        .announce("B", b, &[wrong_md5, unknown, gone_unknown], t0)
        .unwrap();
    assert_eq!(
        got.unknown,
        [true, true, false],
        "a version the tracker lacks is flagged; a withdrawal needs no record"
    );
    assert_eq!(c.holders("f", None).unwrap().len(), 1, "only A");

    c.announce("B", b, &[entry(&r, Held::Partial(2))], t0)
        .unwrap();
    let h = c.holders("f", None).unwrap();
    assert_eq!(
        (h[1].peer_id.as_str(), h[1].blocks, h[1].complete),
        ("B", 2, false)
    );
    let f = &c.list_files()[0];
    assert_eq!((f.name.as_str(), f.holders, f.seeders), ("f", 2, 1));

    // Zero blocks: taking part, listed for others to dial, not holding.
    c.announce("B", b, &[entry(&r, Held::Partial(0))], t0)
        .unwrap();
    assert_eq!(c.holders("f", None).unwrap().len(), 2);
    assert_eq!(c.list_files()[0].holders, 1);

    // All the blocks is complete, however it is said.
    c.announce("B", b, &[entry(&r, Held::Partial(5))], t0)
        .unwrap();
    assert_eq!(c.list_files()[0].seeders, 2);

    // Gone withdraws the file; files not named keep what they had.
    c.announce("B", b, &[entry(&r, Held::Gone)], t0).unwrap();
    assert_eq!(c.holders("f", None).unwrap().len(), 1);
    c.announce("A", a, &[], t0).unwrap();
    assert_eq!(c.holders("g", None).unwrap().len(), 1);
    assert_eq!(c.list_files()[1].seeders, 1);
}

#[test]
fn stale_sessions_are_refused_and_last_registration_wins() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let r = FileRecord::from_bytes("f", b"data");
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    let old = seed(&mut c, "A", &r, t0);
    let new = c.register("A", Host::Name("h2.lan".into()), 2, t0);
    assert_ne!(old, new);
    assert!(
        c.holders("f", None).unwrap().is_empty(),
        "old holdings dropped"
    );
    assert_eq!(
        remote_code(c.announce("A", old, &[], t0).unwrap_err()),
        code::UNKNOWN_PEER
    );
    assert_eq!(
        remote_code(c.announce("nobody", 5, &[], t0).unwrap_err()),
        code::UNKNOWN_PEER
    );
    assert!(
        !c.remove_peer("A", old),
        "a late goodbye of the old session"
    );
    assert_eq!(c.peer_count(), 1);
    c.announce("A", new, &[entry(&r, Held::Complete)], t0)
        .unwrap();
    let h = c.holders("f", None).unwrap();
    assert_eq!((h[0].host.as_str(), h[0].port), ("h2.lan", 2));
    assert!(c.remove_peer("A", new));
    assert_eq!(c.peer_count(), 0);
    assert!(c.holders("f", None).unwrap().is_empty());
    assert_eq!(c.file_count(), 1, "records outlive their holders");
    assert_eq!(c.list_files()[0].holders, 0);
}

#[test]
fn silent_peers_expire_after_three_intervals() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let r = FileRecord::from_bytes("f", b"x");
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    seed(&mut c, "A", &r, t0);
    let b = seed(&mut c, "B", &r, t0);
    assert_eq!(PEER_EXPIRY, c.interval() * MISSED_INTERVALS);
    for s in [3, 6, 9, 12] {
        c.announce("B", b, &[], t0 + Duration::from_secs(s))
            .unwrap();
    }
    assert!(
        c.expire(t0 + PEER_EXPIRY).is_empty(),
        "exactly 9 s is not yet"
    );
    assert_eq!(c.expire(t0 + PEER_EXPIRY + Duration::from_millis(1)), ["A"]);
    let h = c.holders("f", None).unwrap();
    assert_eq!(
        h.iter().map(|h| h.peer_id.as_str()).collect::<Vec<_>>(),
        ["B"]
    );
    let late = t0 + Duration::from_secs(12) + PEER_EXPIRY + Duration::from_millis(1);
    assert_eq!(c.expire(late), ["B"]);
    assert_eq!(c.peer_count(), 0);
    // An instant before the last announce (clock confusion) expires nothing.
    c.register("D", ip("10.0.0.4"), 3, late);
    assert!(c.expire(t0).is_empty());
}

#[test]
fn the_interval_grows_with_the_swarm() {
    assert_eq!(interval_for(0), Duration::from_secs(3));
    assert_eq!(interval_for(60_000), Duration::from_secs(3));
    assert_eq!(interval_for(60_001), Duration::from_secs(4));
    assert_eq!(interval_for(100_000), Duration::from_secs(5));
    assert_eq!(interval_for(1_000_000), Duration::from_secs(50));
    assert_eq!(interval_for(usize::MAX), MAX_INTERVAL);
}

#[test]
fn empty_file_is_held_by_whoever_has_it() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let r = FileRecord::from_bytes("empty", b"");
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    seed(&mut c, "A", &r, t0);
    let b = c.register("B", ip("10.0.0.2"), 2, t0);
    c.announce("B", b, &[entry(&r, Held::Partial(0))], t0)
        .unwrap();
    assert_eq!(c.holders("empty", None).unwrap().len(), 2);
    let f = &c.list_files()[0];
    assert_eq!((f.holders, f.seeders), (2, 2));
}

#[test]
fn many_holders_are_sampled_without_duplicates() {
    let t0 = Instant::now();
    let mut c = Catalogue::with_rng(Rng::seeded(7));
    let r = FileRecord::from_bytes("f", b"abc");
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    let n = MAX_HOLDERS + 20;
    for i in 0..n {
        seed(&mut c, &format!("p{i:03}"), &r, t0);
    }
    let first = c.holders("f", None).unwrap();
    assert_eq!(first.len(), MAX_HOLDERS);
    let mut ids: Vec<&str> = first.iter().map(|h| h.peer_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), MAX_HOLDERS, "no duplicates");
    let samples: Vec<Vec<Holder>> = (0..10).map(|_| c.holders("f", None).unwrap()).collect();
    assert!(samples.iter().any(|s| *s != first), "the sample varies");
    assert_eq!(c.list_files()[0].holders as usize, n);
}

#[test]
fn members_stay_consistent_through_churn() {
    // Peers come, move and go in a shuffled order; every count must match
    // a recount from scratch after each step.
    let t0 = Instant::now();
    let mut c = Catalogue::with_rng(Rng::seeded(3));
    let r = FileRecord::from_bytes("f", &[5; 40 * 4096]);
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    let mut rng = Rng::seeded(11);
    let mut sessions: Vec<Option<u64>> = vec![None; 50];
    for step in 0..2_000 {
        let i = rng.below(50) as usize;
        let id = format!("p{i}");
        match (sessions[i], rng.below(4)) {
            (None, _) => sessions[i] = Some(c.register(&id, ip("10.0.0.1"), 1, t0)),
            (Some(s), 0) => {
                assert!(c.remove_peer(&id, s));
                sessions[i] = None;
            }
            (Some(s), k) => {
                let held = match k {
                    1 => Held::Gone,
                    2 => Held::Complete,
                    _ => Held::Partial(rng.below(40) as u32),
                };
                c.announce(&id, s, &[entry(&r, held)], t0).unwrap();
            }
        }
        let f = &c.files[0];
        let mut recount = (0u32, 0u32, 0u64);
        for (pos, &slot) in f.members.iter().enumerate() {
            let h = c.peer(slot).holdings.iter().find(|h| h.file == 0).unwrap();
            assert_eq!(h.pos as usize, pos, "step {step}");
            recount.0 += u32::from(h.state == State::Complete);
            recount.1 += u32::from(f.holds(h.state));
            if let State::Partial(n) = h.state {
                recount.2 += n as u64;
            }
        }
        assert_eq!(
            (f.seeders, f.holders, f.partial_blocks),
            recount,
            "step {step}"
        );
        let live = c.peers.iter().flatten().count();
        assert_eq!(live, c.peer_count());
    }
}

#[test]
fn summary_counts_and_bounds_its_rows() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    // 10 blocks.
    let r = FileRecord::from_bytes("f", &[1; 10 * 4096]);
    c.publish(r.clone(), "", std::time::Instant::now()).unwrap();
    seed(&mut c, "S", &r, t0);
    let mut sessions = Vec::new();
    for i in 0..30 {
        let id = format!("L{i:02}");
        let s = c.register(&id, ip("10.0.1.1"), 1000 + i, t0);
        c.announce(&id, s, &[entry(&r, Held::Partial(0))], t0)
            .unwrap();
        sessions.push((id, s));
    }
    // One second later each leecher has i % 10 blocks: L00 the slowest.
    let t1 = t0 + Duration::from_secs(1);
    for (i, (id, s)) in sessions.iter().enumerate() {
        c.announce(id, *s, &[entry(&r, Held::Partial((i % 10) as u32))], t1)
            .unwrap();
    }
    c.register("idle", ip("10.0.0.9"), 9, t1);
    let s = c.summary(t1, 5);
    assert_eq!((s.peers, s.seeders, s.leechers, s.files), (32, 1, 30, 1));
    assert_eq!(s.histogram.iter().sum::<u32>(), 30);
    assert_eq!(s.histogram[0], 3, "0 blocks of 10: the first bucket");
    assert_eq!(s.histogram[9], 3);
    assert_eq!(s.rows.len(), 5);
    // The three that gained nothing, then two that gained a block.
    let rates: Vec<f64> = s.rows.iter().map(|r| r.rate_bps).collect();
    assert_eq!(rates, [0.0, 0.0, 0.0, 4096.0, 4096.0]);
    assert!(s
        .rows
        .iter()
        .all(|r| r.peer_id.starts_with('L') && !r.complete));
    // 0+1+…+9 blocks three times over, gained in a second.
    let gained = 3.0 * 45.0 * 4096.0;
    assert!((s.rate_bps - gained).abs() < 1.0, "{}", s.rate_bps);
    let f = &s.file_totals[0];
    assert_eq!((f.seeders, f.leechers), (1, 30));
    assert!((f.mean_fraction - 0.45).abs() < 1e-9, "{}", f.mean_fraction);
    // A rate goes stale once announces stop coming.
    let late = c.summary(t1 + Duration::from_secs(10), 100);
    assert_eq!(late.rate_bps, 0.0);
    assert_eq!(late.rows.len(), 32, "every peer, the idle one too");
    assert_eq!(c.summary(t1, 0).rows.len(), 0);
}

#[test]
fn hosts_from_announces() {
    let v4: IpAddr = "10.0.0.1".parse().unwrap();
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(Host::from_announce("", mapped), Host::Ip(v4));
    assert_eq!(Host::from_announce("[::1]", v4).to_string(), "::1");
    assert_eq!(Host::from_announce("seed.lan", v4).to_string(), "seed.lan");
}

#[test]
fn expiry_in_parts_covers_every_peer_once_a_sweep() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    for i in 0..95 {
        c.register(&format!("p{i:02}"), ip("10.0.0.1"), 1, t0);
    }
    let late = t0 + PEER_EXPIRY + Duration::from_secs(1);
    let mut gone = Vec::new();
    for _ in 0..10 {
        gone.extend(c.expire_part(10, late));
    }
    gone.sort();
    assert_eq!(gone.len(), 95);
    assert_eq!(gone[0], "p00");
    assert_eq!(c.peer_count(), 0);
    // An empty catalogue is swept without trouble.
    assert!(c.expire_part(10, late).is_empty());
}

#[test]
fn idle_peers_are_listed_in_natural_order() {
    let mut c = Catalogue::new();
    let t0 = Instant::now();
    for (i, id) in ["P10", "P2", "P1", "P11"].iter().enumerate() {
        // Seen at different moments: the order is by id, not by time.
        c.register(
            id,
            ip("10.0.0.1"),
            1000 + i as u16,
            t0 + Duration::from_millis(i as u64),
        );
    }
    let s = c.summary(t0 + Duration::from_secs(1), 10);
    let ids: Vec<&str> = s.rows.iter().map(|r| r.peer_id.as_str()).collect();
    assert_eq!(ids, ["P1", "P2", "P10", "P11"]);
}

/// Version `v` of "f.bin" with `data`, owned by `owner`.
fn version(data: &[u8], v: u32, owner: &str) -> FileRecord {
    FileRecord::from_bytes("f.bin", data).versioned(v, owner)
}

/// Registers `id` at 10.0.0.`n` and announces it holds all of `r`.
fn seed_at(c: &mut Catalogue, id: &str, n: u8, r: &FileRecord, now: Instant) -> u64 {
    let s = c.register(id, ip(&format!("10.0.0.{n}")), 7000, now);
    c.announce(id, s, &[entry(r, Held::Complete)], now).unwrap();
    s
}

fn listed(c: &Catalogue) -> (u32, String, u32, u32, u32) {
    let f = &c.list_files()[0];
    (f.version, f.owner.clone(), f.seeders, f.holders, f.older)
}

#[test]
fn the_owner_publishes_the_next_version_and_followers_move_to_it() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let v1 = version(b"one", 1, "A");
    let v2 = version(b"two", 2, "A");
    assert!(c.publish(v1.clone(), "A", t0).unwrap());
    let a = seed_at(&mut c, "A", 1, &v1, t0);
    let b = seed_at(&mut c, "B", 2, &v1, t0);
    seed_at(&mut c, "C", 3, &v1, t0);
    assert_eq!(listed(&c), (1, "A".into(), 3, 3, 0));
    // Version 2 from its owner, at its address: current now; the three
    // holders of version 1 count as older until they move.
    assert!(c.publish(v2.clone(), "A", t0).unwrap());
    assert_eq!(*c.record("f.bin").unwrap(), v2);
    assert_eq!(listed(&c), (2, "A".into(), 0, 0, 3));
    c.announce("A", a, &[entry(&v2, Held::Complete)], t0)
        .unwrap();
    assert_eq!(listed(&c), (2, "A".into(), 1, 1, 2));
    // A download of version 1 still finds its holders, by MD5; WHO_HAS by
    // name alone gives the current version's.
    let ids = |h: Vec<Holder>| h.into_iter().map(|h| h.peer_id).collect::<Vec<_>>();
    assert_eq!(ids(c.holders("f.bin", Some(&v1.md5)).unwrap()), ["B", "C"]);
    assert_eq!(ids(c.holders("f.bin", None).unwrap()), ["A"]);
    // B starts updating: one version per peer, so it leaves version 1.
    c.announce("B", b, &[entry(&v2, Held::Partial(0))], t0)
        .unwrap();
    assert_eq!(listed(&c).4, 1, "C alone is on version 1");
    assert_eq!(ids(c.holders("f.bin", Some(&v1.md5)).unwrap()), ["C"]);
    assert_eq!(ids(c.holders("f.bin", None).unwrap()), ["A", "B"]);
    // C updates too: nobody is on version 1, which is forgotten.
    let s = c.register("C", ip("10.0.0.3"), 7000, t0);
    c.announce("C", s, &[entry(&v2, Held::Complete)], t0)
        .unwrap();
    assert_eq!(listed(&c).4, 0);
    let e = c.holders("f.bin", Some(&v1.md5)).unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
    // An old version published again is refused as outdated, not as a
    // conflict: its holder keeps it.
    let e = c.publish(v1, "B", t0).unwrap_err();
    assert_eq!(remote_code(e), code::OUTDATED);
}

#[test]
fn the_summary_shows_each_item_s_version_and_who_is_on_which() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    // 8 blocks each, so a partial holder is a download in progress.
    let v1 = version(&[1; 8 * 4096], 1, "A");
    let v2 = version(&[2; 8 * 4096], 2, "A");
    let other = FileRecord::from_bytes("g.bin", b"g");
    c.publish(v1.clone(), "A", t0).unwrap();
    c.publish(other.clone(), "", t0).unwrap();
    let a = seed_at(&mut c, "A", 1, &v1, t0);
    let b = seed_at(&mut c, "B", 2, &v1, t0);
    seed_at(&mut c, "C", 3, &v1, t0);
    let d = c.register("D", ip("10.0.0.4"), 7000, t0);
    c.announce("D", d, &[entry(&v1, Held::Partial(3))], t0)
        .unwrap();
    seed_at(&mut c, "G", 7, &other, t0);
    let before = c.summary(t0, 0);
    let f = &before.file_totals[0];
    assert_eq!(
        (f.version, f.owner.as_str(), f.seeders, f.leechers, f.older),
        (1, "A", 3, 1, 0)
    );
    // Version 2: A holds it, B is updating, E is new to it; C holds
    // version 1 and D still fetches it: both count as older.
    c.publish(v2.clone(), "A", t0).unwrap();
    c.announce("A", a, &[entry(&v2, Held::Complete)], t0)
        .unwrap();
    c.announce("B", b, &[entry(&v2, Held::Partial(2))], t0)
        .unwrap();
    let e = c.register("E", ip("10.0.0.5"), 7000, t0);
    c.announce("E", e, &[entry(&v2, Held::Partial(0))], t0)
        .unwrap();
    let s = c.summary(t0, 0);
    assert_eq!(s.files, 2, "an older version is no item of its own");
    let names: Vec<&str> = s.file_totals.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["f.bin", "g.bin"]);
    let f = &s.file_totals[0];
    assert_eq!(
        (f.version, f.owner.as_str(), f.seeders, f.leechers, f.older),
        (2, "A", 1, 2, 2)
    );
    let g = &s.file_totals[1];
    assert_eq!(
        (g.version, g.owner.as_str(), g.seeders, g.leechers, g.older),
        (1, "", 1, 0, 0)
    );
    // C moves on; D gives its download of version 1 up: nobody is older.
    let c2 = c.register("C", ip("10.0.0.3"), 7000, t0);
    c.announce("C", c2, &[entry(&v2, Held::Complete)], t0)
        .unwrap();
    c.announce("D", d, &[entry(&v1, Held::Gone)], t0).unwrap();
    let f = &c.summary(t0, 0).file_totals[0];
    assert_eq!((f.seeders, f.leechers, f.older), (2, 2, 0));
}

/// Version 1 of "f.bin", owned by A; A and B hold it.
fn owned_by_a_held_by_a_and_b(t0: Instant) -> (Catalogue, FileRecord) {
    let mut c = Catalogue::new();
    let v1 = version(b"one", 1, "A");
    c.publish(v1.clone(), "A", t0).unwrap();
    seed_at(&mut c, "A", 1, &v1, t0);
    seed_at(&mut c, "B", 2, &v1, t0);
    (c, v1)
}

#[test]
fn only_the_owner_publishes_a_new_version() {
    let t0 = Instant::now();
    let (mut c, v1) = owned_by_a_held_by_a_and_b(t0);
    // B's content under A's name, as B's version 2.
    let e = c.publish(version(b"mine", 2, "B"), "B", t0).unwrap_err();
    assert!(matches!(e, Error::Conflict(_)));
    assert!(e.to_string().contains("owned by A"), "{e}");
    // Version 1 again with other content: a conflict, not an update.
    let e = c.publish(version(b"v1b", 1, "A"), "A", t0).unwrap_err();
    assert!(e.to_string().contains("different content"), "{e}");
    assert_eq!(*c.record("f.bin").unwrap(), v1);
}

#[test]
fn an_older_version_withdrawn_by_its_last_holder_leaves_the_current_one_alone() {
    let t0 = Instant::now();
    let (mut c, v1) = owned_by_a_held_by_a_and_b(t0);
    let v2 = version(b"two", 2, "A");
    c.publish(v2.clone(), "A", t0).unwrap();
    let a = c.register("A", ip("10.0.0.1"), 7000, t0);
    c.announce("A", a, &[entry(&v2, Held::Complete)], t0)
        .unwrap();
    // B, the last holder of version 1, deletes its copy.
    let b = c.register("B", ip("10.0.0.2"), 7000, t0);
    c.announce("B", b, &[entry(&v1, Held::Complete)], t0)
        .unwrap();
    c.announce("B", b, &[entry(&v1, Held::Gone)], t0).unwrap();
    assert_eq!(*c.record("f.bin").unwrap(), v2, "version 2 stays");
    assert!(c.take_withdrawn().is_empty() && c.take_promoted().is_empty());
    assert_eq!(listed(&c), (2, "A".into(), 1, 1, 0));
    // Its freed entry is reused once, not twice.
    c.publish(FileRecord::from_bytes("x", b"x"), "", t0)
        .unwrap();
    c.publish(FileRecord::from_bytes("y", b"y"), "", t0)
        .unwrap();
    assert_eq!(c.record("x").unwrap().md5, crate::record::md5_of(b"x"));
    assert_eq!(c.record("y").unwrap().md5, crate::record::md5_of(b"y"));
    assert_eq!(*c.record("f.bin").unwrap(), v2);
}

#[test]
fn a_tracker_that_missed_a_version_takes_it_from_any_holder() {
    let t0 = Instant::now();
    let (mut c, _) = owned_by_a_held_by_a_and_b(t0);
    // B followed A to version 2 through another tracker; this one, cut
    // off then, learns it from B first.
    let v2 = version(b"two", 2, "A");
    assert!(c.publish(v2.clone(), "B", t0).unwrap());
    assert_eq!(*c.record("f.bin").unwrap(), v2);
    // Version 1 from a holder that lags is the older one, not a conflict.
    let e = c.publish(version(b"one", 1, "A"), "C", t0).unwrap_err();
    assert!(e.to_string().contains("already at version 2"), "{e}");
    // B's own content under the name is still B's, and refused.
    let e = c.publish(version(b"mine", 3, "B"), "B", t0).unwrap_err();
    assert!(e.to_string().contains("owned by A"), "{e}");
}

#[test]
fn a_version_the_tracker_does_not_have_is_flagged_unknown() {
    let t0 = Instant::now();
    let (mut c, _) = owned_by_a_held_by_a_and_b(t0);
    // A's version 2 never reached the tracker (its NEW_FILE failed).
    let v2 = version(b"two", 2, "A");
    let a = c.register("A", ip("10.0.0.1"), 7000, t0);
    let ann = c
        .announce("A", a, &[entry(&v2, Held::Complete)], t0)
        .unwrap();
    assert_eq!(ann.unknown, [true], "so A publishes it");
}

#[test]
fn peers_sharing_the_same_bytes_at_once_all_hold_the_first_record() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let first = version(b"iso", 1, "P0");
    assert!(c.publish(first.clone(), "P0", t0).unwrap());
    // P1 hashed the same file before it heard of P0's record.
    assert!(!c.publish(version(b"iso", 1, "P1"), "P1", t0).unwrap());
    assert_eq!(*c.record("f.bin").unwrap(), first);
    // Other bytes as version 1 are still a conflict.
    assert!(c.publish(version(b"other", 1, "P1"), "P1", t0).is_err());
}

#[test]
fn an_owner_hands_the_name_over() {
    let t0 = Instant::now();
    let (mut c, _) = owned_by_a_held_by_a_and_b(t0);
    // The same bytes as version 2, owned by B, published by A.
    let handed = version(b"one", 2, "B");
    assert!(c.publish(handed, "A", t0).unwrap());
    assert_eq!(listed(&c).1, "B");
    // The holders of the same bytes hold the handed-over version.
    assert_eq!(listed(&c), (2, "B".into(), 2, 2, 0));
    assert_eq!(c.holders("f.bin", None).unwrap().len(), 2);
    assert!(c.publish(version(b"three", 3, "A"), "A", t0).is_err());
    assert!(c.publish(version(b"three", 3, "B"), "B", t0).unwrap());
}

#[test]
fn a_name_nobody_holds_or_owns_is_free_after_the_grace() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    c.hold_names_until(t0 + ABANDON_GRACE);
    // Loaded from disk after a restart: nobody has registered yet.
    assert!(c.load_record(version(b"one", 4, "A")));
    let claim = version(b"mine", 5, "B");
    let e = c.publish(claim.clone(), "B", t0).unwrap_err();
    assert!(e.to_string().contains("owned by A"), "{e}");
    // Past the grace, the owner is not live and nobody holds it.
    let later = t0 + ABANDON_GRACE + Duration::from_secs(1);
    let a = c.register("A", ip("10.0.0.1"), 7000, later);
    assert!(c.publish(claim.clone(), "B", later).is_err(), "A is live");
    assert!(c.remove_peer("A", a));
    // A holder keeps the name too.
    let h = c.register("H", ip("10.0.0.9"), 7000, later);
    c.announce(
        "H",
        h,
        &[entry(&version(b"one", 4, "A"), Held::Complete)],
        later,
    )
    .unwrap();
    assert!(c.publish(claim.clone(), "B", later).is_err(), "H holds it");
    c.remove_peer("H", h);
    assert!(c.publish(claim.clone(), "B", later).unwrap());
    assert_eq!(listed(&c).0, 5);
    assert_eq!(listed(&c).1, "B");
}

#[test]
fn withdrawing_the_current_version_brings_back_the_one_peers_hold() {
    let t0 = Instant::now();
    let mut c = Catalogue::new();
    let v1 = version(b"one", 1, "A");
    let v2 = version(b"two", 2, "A");
    c.publish(v1.clone(), "A", t0).unwrap();
    seed_at(&mut c, "B", 2, &v1, t0);
    c.publish(v2.clone(), "A", t0).unwrap();
    let a = seed_at(&mut c, "A", 1, &v2, t0);
    // The owner takes version 2 back while B still has version 1.
    c.announce("A", a, &[entry(&v2, Held::Gone)], t0).unwrap();
    assert_eq!(*c.record("f.bin").unwrap(), v1);
    assert_eq!(listed(&c), (1, "A".into(), 1, 1, 0));
    assert_eq!(c.take_promoted().len(), 1);
    assert!(c.take_withdrawn().is_empty(), "the name stays");
}

#[test]
fn who_has_answers_the_askers_site_first_each_holder_with_its_site() {
    let t0 = Instant::now();
    let mut c = Catalogue::with_rng(Rng::seeded(9));
    let r = FileRecord::from_bytes("s.bin", &[3; 10_000]);
    c.publish(r.clone(), "", t0).unwrap();
    for (id, site) in [
        ("a1", "a"),
        ("b1", "b"),
        ("a2", "a"),
        ("n1", ""),
        ("b2", "b"),
    ] {
        let s = c.register_at(id, ip("10.0.0.1"), 7000, site, t0);
        c.announce(id, s, &[entry(&r, Held::Complete)], t0).unwrap();
    }
    let order = |h: Vec<Holder>| -> Vec<(String, String)> {
        h.into_iter().map(|h| (h.peer_id, h.site)).collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        order(c.holders_for("s.bin", None, Some("b")).unwrap()),
        pairs(&[
            ("b1", "b"),
            ("b2", "b"),
            ("a1", "a"),
            ("a2", "a"),
            ("n1", "")
        ])
    );
    // No site, or one nobody is in: by id, as before.
    let by_id = pairs(&[
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("b2", "b"),
        ("n1", ""),
    ]);
    assert_eq!(order(c.holders("s.bin", None).unwrap()), by_id);
    assert_eq!(
        order(c.holders_for("s.bin", None, Some("z")).unwrap()),
        by_id
    );
}
