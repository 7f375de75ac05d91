//! What a peer says about its tracker within seconds of start: that it
//! answers, and whether the swarm is closed (`--secret-file`) or open; or
//! why it does not (not running, another secret, none where one is
//! needed, our clock refused), said once, and again when that changes.
//! For each tracker. `Said` (what was said last) is the rule (pure,
//! unit-tested); `start` runs a thread per tracker that asks it.

use super::tracker_client;
use crate::console::say_err;
use crate::peer::Peer;
use std::sync::Arc;
use std::time::Duration;

/// How often a tracker that did not answer is asked again.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// What was last said about the tracker.
#[derive(Debug, Default)]
pub struct Said {
    /// The failure last said, if the last try failed.
    failing: Option<String>,
}

/// What to do after a try.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// It answered: nothing more to check (the announce session warns
    /// should it go away later).
    Done,
    /// Ask again after `RETRY_EVERY`.
    Retry,
}

impl Said {
    /// The line to print (if any) for a try's `result`, and what next.
    /// `closed`: this peer has a swarm secret.
    pub fn on_try(
        &mut self,
        tracker: &str,
        closed: bool,
        result: Result<(), String>,
    ) -> (Option<String>, Next) {
        match result {
            Ok(()) => {
                let now = if self.failing.take().is_some() {
                    " now"
                } else {
                    ""
                };
                let swarm = if closed {
                    "the swarm is closed: only peers with the same --secret-file take part, and all traffic is encrypted"
                } else {
                    "the swarm is open (no --secret-file): anyone who can reach the tracker may join"
                };
                (
                    Some(format!("tracker {tracker} answers{now}; {swarm}")),
                    Next::Done,
                )
            }
            Err(why) => {
                let line = (self.failing.as_deref() != Some(why.as_str()))
                    .then(|| format!("warning: {why}; retrying in the background"));
                self.failing = Some(why);
                (line, Next::Retry)
            }
        }
    }
}

/// One thread per tracker (the positional one and each `--tracker`),
/// each asking its tracker until it answers or the peer stops.
pub fn start(peer: &Arc<Peer>) -> std::io::Result<()> {
    for tracker in peer.config().trackers() {
        let peer = peer.clone();
        std::thread::Builder::new()
            .name("health".into())
            .spawn(move || watch(&peer, &tracker))?;
    }
    Ok(())
}

/// Asks `tracker` until it answers or the peer stops, saying on stderr
/// what `Said` wants said.
fn watch(peer: &Peer, tracker: &str) {
    let closed = crate::secure::swarm().is_some();
    let mut health = Said::default();
    while !peer.is_cancelled() {
        let result = tracker_client::ping(tracker).map_err(|e| e.to_string());
        let (line, next) = health.on_try(tracker, closed, result);
        if let Some(line) = line {
            say_err(line);
        }
        if next == Next::Done {
            return;
        }
        std::thread::sleep(RETRY_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_the_swarm_kind_once_it_answers_and_each_new_failure_once() {
        let mut h = Said::default();
        let (line, next) = h.on_try("t:1", false, Ok(()));
        assert_eq!(next, Next::Done);
        assert!(line
            .unwrap()
            .starts_with("tracker t:1 answers; the swarm is open"));

        let mut h = Said::default();
        let down = || Err("cannot reach the tracker at t:1".to_string());
        let (line, next) = h.on_try("t:1", true, down());
        assert_eq!(next, Next::Retry);
        assert_eq!(
            line.unwrap(),
            "warning: cannot reach the tracker at t:1; retrying in the background"
        );
        assert_eq!(
            h.on_try("t:1", true, down()),
            (None, Next::Retry),
            "not twice"
        );
        let (line, _) = h.on_try("t:1", true, Err("the clock".into()));
        assert!(line.unwrap().contains("the clock"), "a new reason is said");
        let (line, next) = h.on_try("t:1", true, Ok(()));
        assert_eq!(next, Next::Done);
        assert!(line
            .unwrap()
            .starts_with("tracker t:1 answers now; the swarm is closed"));
    }
}
