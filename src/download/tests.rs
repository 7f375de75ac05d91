//! `run` with local reuse, and no holder: what is found locally is
//! verified, kept across a failure, and hashed into the whole-file MD5
//! like resumed pieces.

use super::*;
use crate::record::BLOCK_SIZE;
use reuse::Candidate;
use std::os::unix::fs::FileExt;

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = crate::rng::Rng::seeded(seed);
    (0..n.div_ceil(8))
        .flat_map(|_| rng.next_u64().to_le_bytes())
        .take(n)
        .collect()
}

fn progress(record: &FileRecord) -> Arc<Progress> {
    Arc::new(Progress::new(
        &record.name,
        record.block_count() as u64,
        true,
    ))
}

/// A download of `record` into `dir` with no holder, offered `reuse`.
fn job<'a>(
    record: &FileRecord,
    dir: &'a Path,
    metrics: &Arc<PeerMetrics>,
    progress: &Arc<Progress>,
    reuse: Vec<Candidate>,
) -> Job<'a> {
    Job {
        record: Arc::new(record.clone()),
        holders: Vec::new(),
        partial_dir: dir,
        self_id: "me",
        site: None,
        limiter: None,
        metrics: metrics.clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        refresh: Arc::new(|| Ok(Vec::new())),
        progress: progress.clone(),
        share_partial: None,
        reuse,
    }
}

/// Another item holding `data`, with its record.
fn item(name: &str, data: Vec<u8>) -> Candidate {
    Candidate {
        record: Some(Arc::new(FileRecord::from_bytes(name, &data))),
        payload: Arc::new(data),
        have: None,
        roll: false,
    }
}

#[test]
fn resumed_and_reused_pieces_make_the_whole_file_without_a_holder() {
    // 40 pieces and a short one: the first 15 verified on disk from an
    // earlier run, the rest in another item. No holder is ever needed.
    let data = random(40 * BLOCK_SIZE as usize + 100, 1);
    let record = FileRecord::from_bytes("f", &data);
    let dir = tempfile::tempdir().unwrap();
    let paths = resume::Paths::new(dir.path(), "f");
    let (file, _) = resume::open(&paths, &record).unwrap();
    file.write_all_at(&data[..15 * BLOCK_SIZE as usize], 0)
        .unwrap();
    let earlier = Bitfield::from_runs(41, &[(0, 15)]).unwrap();
    resume::save(&paths, &record, &file, &earlier).unwrap();
    drop(file);

    let metrics = Arc::new(PeerMetrics::default());
    let progress = progress(&record);
    let other = item("other", data.clone());
    let outcome = run(job(&record, dir.path(), &metrics, &progress, vec![other])).unwrap();
    assert_eq!(outcome.md5, record.md5);
    assert_eq!(std::fs::read(&outcome.part).unwrap(), data);
    let s = progress.snapshot();
    assert_eq!(s.resumed_blocks, 15);
    assert_eq!(s.reused_blocks, 26);
    assert_eq!(s.done_blocks, 41);
    assert_eq!(s.fetched_blocks(), 0);
    let page = crate::metrics::render(&metrics.samples(0));
    let reused = data.len() as u64 - 15 * BLOCK_SIZE as u64;
    assert_eq!(
        crate::metrics::value_in(&page, "peer_reused_bytes_total"),
        Some(reused)
    );
    assert_eq!(
        crate::metrics::value_in(&page, "peer_received_bytes_total"),
        Some(0)
    );
}

#[test]
fn reused_pieces_are_kept_when_the_download_stops() {
    // Half the pieces found locally (the other half of that item
    // differs), no holder for the rest: the download fails, and a second
    // one finds the reused half on disk as resumed.
    let data = random(64 * BLOCK_SIZE as usize, 2);
    let record = FileRecord::from_bytes("g", &data);
    let mut near = data.clone();
    near[32 * BLOCK_SIZE as usize..].copy_from_slice(&random(32 * BLOCK_SIZE as usize, 3));
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(PeerMetrics::default());

    let first = progress(&record);
    let c = item("near", near);
    let err = run(job(&record, dir.path(), &metrics, &first, vec![c]))
        .err()
        .unwrap();
    assert!(matches!(err, Error::NoSources(_)), "{err}");
    assert_eq!(first.snapshot().reused_blocks, 32);

    let again = progress(&record);
    let _ = run(job(&record, dir.path(), &metrics, &again, Vec::new()));
    assert_eq!(again.snapshot().resumed_blocks, 32);
    assert_eq!(again.snapshot().reused_blocks, 0);
}
