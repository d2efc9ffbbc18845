//! Time limits: one [`Deadline`] type that travels down from the test to
//! every wait, and one polling policy for conditions the harness cannot be
//! notified of (a guest command that starts succeeding, a unit becoming
//! active).
//!
//! A test has a deadline (its `timeout` marker, or none); a step's own
//! limit (the session's step timeout, a `timeout` on a wait step) is
//! narrowed with [`Deadline::within`], so an inner wait sees how much of the
//! test's budget is left and a step never outlives its test. Waits accept
//! `impl Into<Deadline>`: a [`Duration`] there means that long from now.
//!
//! Console output is never polled: it is awaited with deadlines on the
//! console's condition variable. Polling is only for questions that need a
//! round trip into the guest.

use std::time::{Duration, Instant};

/// Pause between two attempts of a polled guest condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A point in time by which something must be done, or never.
///
/// ```
/// use std::time::Duration;
/// use bootrig::Deadline;
/// let test = Deadline::after(Duration::from_secs(60));
/// // A 120 s step inside a 60 s test ends with the test.
/// let step = test.within(Duration::from_secs(120));
/// assert!(step.remaining() <= Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No limit.
    pub fn never() -> Deadline {
        Deadline { at: None }
    }

    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(timeout),
        }
    }

    /// At `instant`.
    pub fn at(instant: Instant) -> Deadline {
        Deadline { at: Some(instant) }
    }

    /// The instant, if there is a limit.
    pub fn instant(&self) -> Option<Instant> {
        self.at
    }

    /// The earlier of the two.
    pub fn min(self, other: Deadline) -> Deadline {
        match (self.at, other.at) {
            (Some(a), Some(b)) => Deadline { at: Some(a.min(b)) },
            (Some(a), None) | (None, Some(a)) => Deadline { at: Some(a) },
            (None, None) => Deadline::never(),
        }
    }

    /// This deadline narrowed to at most `timeout` from now.
    pub fn within(self, timeout: Duration) -> Deadline {
        self.min(Deadline::after(timeout))
    }

    /// Time left (zero once passed; [`Duration::MAX`] without a limit).
    pub fn remaining(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        }
    }

    /// Whether it has passed.
    pub fn expired(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Deadline {
        Deadline::at(at)
    }
}

/// A timeout given where a deadline is expected means that long from now.
impl From<Duration> for Deadline {
    fn from(timeout: Duration) -> Deadline {
        Deadline::after(timeout)
    }
}

/// Calls `attempt` until it returns `Ok(Some(_))` or an error, or until
/// `deadline` passes (then `Ok(None)`). Attempts are `interval` apart; the
/// last one may start just before the deadline.
pub fn poll_until<T, E>(
    deadline: impl Into<Deadline>,
    interval: Duration,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = deadline.into();
    loop {
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        if deadline.expired() {
            return Ok(None);
        }
        std::thread::sleep(interval.min(deadline.remaining()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_narrow_and_expire() {
        let never = Deadline::never();
        assert_eq!(never.remaining(), Duration::MAX);
        assert!(!never.expired());
        let short = Deadline::after(Duration::from_millis(50));
        assert_eq!(never.min(short), short);
        assert_eq!(short.min(never), short);
        let long = Deadline::after(Duration::from_secs(100));
        assert_eq!(long.min(short), short);
        assert!(long.within(Duration::from_secs(1)).remaining() <= Duration::from_secs(1));
        assert!(short.within(Duration::from_secs(100)).remaining() <= Duration::from_millis(50));
        assert!(Deadline::after(Duration::ZERO).expired());
        assert_eq!(Deadline::after(Duration::ZERO).remaining(), Duration::ZERO);
        let from: Deadline = Duration::from_secs(5).into();
        assert!(from.remaining() <= Duration::from_secs(5));
        assert!(from.remaining() > Duration::from_secs(4));
    }

    #[test]
    fn stops_on_success_error_or_deadline() {
        let mut n = 0;
        let r: Result<_, ()> = poll_until(
            Instant::now() + Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                Ok((n == 3).then_some(n))
            },
        );
        assert_eq!(r, Ok(Some(3)));
        let r: Result<Option<()>, &str> = poll_until(
            Deadline::after(Duration::from_secs(5)),
            Duration::from_millis(1),
            || Err("boom"),
        );
        assert_eq!(r, Err("boom"));
        let start = Instant::now();
        let r: Result<Option<()>, ()> = poll_until(
            Instant::now() + Duration::from_millis(30),
            Duration::from_millis(5),
            || Ok(None),
        );
        assert_eq!(r, Ok(None));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
