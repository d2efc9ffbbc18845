//! One polling policy for conditions the harness cannot be notified of
//! (a guest command that starts succeeding, a unit becoming active).
//!
//! Console output is never polled: it is awaited with deadlines on the
//! console's condition variable. Polling is only for questions that need a
//! round trip into the guest.

use std::time::{Duration, Instant};

/// Pause between two attempts of a polled guest condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Calls `attempt` until it returns `Ok(Some(_))` or an error, or until
/// `deadline` passes (then `Ok(None)`). Attempts are `interval` apart; the
/// last one may start just before the deadline.
pub fn poll_until<T, E>(
    deadline: Instant,
    interval: Duration,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    loop {
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Instant::now() + Duration::from_secs(5),
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
