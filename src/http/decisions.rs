//! A bounded cache of authentication and authorization decisions: at most `--auth-cache-size`
//! entries, each reused for [`DECISION_TTL`]. Past the bound the least recently used entry
//! goes, in constant time: nothing is ever swept whole on the request path.

use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

/// How long a decision is reused.
pub const DECISION_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most, in each of the token and the access caches.
pub const DEFAULT_AUTH_CACHE_SIZE: usize = 10_000;

pub(super) struct Decisions<K: Hash + Eq, V> {
    entries: Mutex<LruCache<K, (Instant, V)>>,
    size: usize,
}

impl<K: Hash + Eq, V: Clone> Decisions<K, V> {
    /// At most `size` entries (at least one). The map grows with use rather than being
    /// allocated for `size` up front.
    pub(super) fn new(size: usize) -> Self {
        Decisions {
            entries: Mutex::new(LruCache::unbounded()),
            size: size.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decision for `key`, if made less than [`DECISION_TTL`] ago.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((at, value)) if at.elapsed() < DECISION_TTL => Some(value.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `key`, forgetting the least recently used entry when full.
    pub(super) fn remember(&self, key: K, value: V) {
        let mut entries = self.lock();
        entries.put(key, (Instant::now(), value));
        if entries.len() > self.size {
            entries.pop_lru();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_decision_goes_first() {
        let decisions = Decisions::new(2);
        decisions.remember("a", 1);
        decisions.remember("b", 2);
        assert_eq!(decisions.get(&"a"), Some(1), "a is now the most recent");
        decisions.remember("c", 3);
        assert_eq!(decisions.len(), 2);
        assert_eq!(decisions.get(&"b"), None, "b was the least recently used");
        assert_eq!(
            (decisions.get(&"a"), decisions.get(&"c")),
            (Some(1), Some(3))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_decision_is_not_reused() {
        let decisions = Decisions::new(10);
        decisions.remember("a", true);
        tokio::time::advance(DECISION_TTL).await;
        assert_eq!(decisions.get(&"a"), None);
        assert_eq!(decisions.len(), 0);
    }
}
