//! What one client may cost us: token reviews per client address (`--token-reviews-per-second`),
//! live streams per user (`--http-max-streams-per-user`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

/// Token reviews per second and client address, with a burst of twice as many.
pub const DEFAULT_TOKEN_REVIEWS_PER_SECOND: u32 = 20;
/// Live streams one user may hold open at once.
pub const DEFAULT_MAX_STREAMS_PER_USER: usize = 32;
/// How often addresses whose budget is full again are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(30);

/// Reviews of tokens not in the cache, per client address.
pub struct ReviewRate {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl ReviewRate {
    /// `per_second` reviews per second with a burst of twice as many; at least one.
    pub fn new(per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst),
        ));
        // Forget idle addresses off the request path, for as long as the limiter lives.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(forget_idle(Arc::downgrade(&limiter)));
        }
        ReviewRate { limiter }
    }

    /// Takes one review from the budget of `from` (None: a caller without a connection
    /// address, such as the router driven in-process; they share one budget). Err: how long
    /// until the next one is allowed.
    pub fn take(&self, from: Option<IpAddr>) -> Result<(), Duration> {
        self.limiter
            .check_key(&client_key(from))
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

async fn forget_idle(limiter: Weak<DefaultKeyedRateLimiter<IpAddr>>) {
    let mut tick = tokio::time::interval(FORGET_EVERY);
    loop {
        tick.tick().await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// The budget an address draws on: an IPv6 client usually holds a whole /64, so it counts
/// as one; an IPv4-mapped address is its IPv4 address.
fn client_key(from: Option<IpAddr>) -> IpAddr {
    match from {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

type OpenStreams = Arc<Mutex<HashMap<String, usize>>>;

/// Live streams per user.
pub struct StreamQuota {
    max: usize,
    open: OpenStreams,
}

/// One open stream of a user: the slot is given back when it is dropped, that is when the
/// stream ends or its client goes away.
pub struct StreamSlot {
    user: String,
    open: OpenStreams,
}

impl StreamQuota {
    pub fn new(max: usize) -> Self {
        StreamQuota {
            max,
            open: OpenStreams::default(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more stream of `user`; None when they hold `max` already.
    pub fn take(&self, user: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(user.to_string()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            user: user.to_string(),
            open: self.open.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_their_slot_back_when_a_stream_ends() {
        let quota = StreamQuota::new(2);
        let first = quota.take("alice");
        let second = quota.take("alice");
        assert!(first.is_some() && second.is_some());
        assert!(quota.take("alice").is_none(), "past the cap");
        assert!(quota.take("bob").is_some(), "another user has their own");
        drop(first);
        assert!(quota.take("alice").is_some());
    }

    #[test]
    fn one_ipv6_slash_64_is_one_client() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_ne!(client_key(Some(a)), client_key(Some(c)));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            client_key(Some(mapped)),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn reviews_past_the_burst_wait() {
        let rate = ReviewRate::new(20);
        let from = Some("192.0.2.1".parse().expect("ip"));
        for _ in 0..40 {
            assert!(rate.take(from).is_ok());
        }
        assert!(rate.take(from).is_err(), "the 41st at once");
        assert!(rate.take(Some("192.0.2.2".parse().expect("ip"))).is_ok());
    }
}
