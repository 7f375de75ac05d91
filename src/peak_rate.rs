//! A rate measured over periods, that follows a rise at once and a fall
//! half way: what a sender may expect a receiver to take next. Used for
//! a holder's delivery rate (`download::fetch`, where a rise taken at
//! once lets the window grow as fast as TCP's slow start) and a seeder's
//! sending rates (`peer::block_server::seeding`). Pure: the caller passes
//! the time.

use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub struct PeakRate {
    /// Since when `count` has been counting (none before the first look).
    since: Option<Instant>,
    count: u64,
    per_sec: f64,
}

impl PeakRate {
    /// A rate counting from `now`.
    pub fn starting(now: Instant) -> PeakRate {
        PeakRate {
            since: Some(now),
            ..PeakRate::default()
        }
    }

    pub fn add(&mut self, n: u64) {
        self.count += n;
    }

    /// What was added since the current period started.
    pub fn counted(&self) -> u64 {
        self.count
    }

    /// The rate as last measured (0 before the first measure).
    pub fn per_sec(&self) -> f64 {
        self.per_sec
    }

    /// What was counted so far is dropped: a new period starts at `now`.
    pub fn restart(&mut self, now: Instant) {
        self.since = Some(now);
        self.count = 0;
    }

    /// Measured again if a period of `every_secs` has passed since the
    /// last (the first look only starts the period); the rate.
    pub fn measure(&mut self, now: Instant, every_secs: f64) -> f64 {
        let Some(since) = self.since else {
            self.restart(now);
            return self.per_sec;
        };
        let t = now.saturating_duration_since(since).as_secs_f64();
        if t >= every_secs {
            let r = self.count as f64 / t;
            self.per_sec = if r > self.per_sec {
                r
            } else {
                0.5 * self.per_sec + 0.5 * r
            };
            self.restart(now);
        }
        self.per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_rise_is_taken_at_once_and_a_fall_half_way() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = PeakRate::default();
        r.add(500);
        assert_eq!(r.measure(at(0), 0.25), 0.0, "the first look starts");
        r.add(100);
        assert_eq!(r.measure(at(100), 0.25), 0.0, "within the period");
        r.add(150);
        assert_eq!(
            r.measure(at(250), 0.25),
            1000.0,
            "counted from the first look"
        );
        r.add(50);
        assert_eq!(r.measure(at(500), 0.25), 600.0, "half way down to 200");
        let mut s = PeakRate::starting(t0);
        s.add(10);
        assert_eq!(s.measure(at(20), 0.02), 500.0);
        s.restart(at(30));
        s.add(1);
        assert_eq!(s.measure(at(40), 0.02), 500.0);
        assert_eq!(s.per_sec(), 500.0);
    }
}
