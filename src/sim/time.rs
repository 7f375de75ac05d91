//! Simulated time: nanoseconds since the start of a run. Nanoseconds, not
//! microseconds, because a 4 KiB frame at 10 MiB/s takes 390 µs and a
//! microsecond clock would round every frame's time by up to 0.25 %.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    /// Later than any run: about 584 years.
    pub const NEVER: SimTime = SimTime(u64::MAX);

    pub fn from_nanos(ns: u64) -> SimTime {
        SimTime(ns)
    }

    pub fn from_secs_f64(s: f64) -> SimTime {
        SimTime((s.max(0.0) * 1e9) as u64)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The time since the start of the run, for machines that count in
    /// `Duration`s.
    pub fn since_start(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: SimTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for SimTime {
    type Output = SimTime;
    fn add(self, d: Duration) -> SimTime {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        SimTime(self.0.saturating_add(ns))
    }
}

impl AddAssign<Duration> for SimTime {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub for SimTime {
    type Output = Duration;
    /// Panics-free: an earlier minus a later time is zero.
    fn sub(self, earlier: SimTime) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6} s", self.as_secs_f64())
    }
}

/// Time to put `bytes` on a link of `rate` bytes per second, rounded up to
/// the nanosecond; zero for an uncapped link.
pub fn transmit_time(bytes: usize, rate: Option<u64>) -> Duration {
    match rate {
        None => Duration::ZERO,
        Some(r) => {
            let r = r.max(1) as u128;
            let ns = (bytes as u128 * 1_000_000_000).div_ceil(r);
            Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
        }
    }
}
