//! Per-server hit/miss and limiter counters. Commands run on Redis's main
//! thread; relaxed atomics only make the statics safe to share.

use std::sync::atomic::{AtomicU64, Ordering};

/// A statistics namespace is a cache kind (see [`crate::kinds`]).
pub use crate::kinds::KindId as Namespace;

const N: usize = crate::kinds::COUNT;

pub struct Counters {
    hits: [AtomicU64; N],
    misses: [AtomicU64; N],
    allowed: AtomicU64,
    denied: AtomicU64,
}

pub static COUNTERS: Counters = Counters::new();

/// A consistent copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub hits: [u64; N],
    pub misses: [u64; N],
    pub allowed: u64,
    pub denied: u64,
}

impl Counters {
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU64 = AtomicU64::new(0);

    pub const fn new() -> Counters {
        Counters {
            hits: [Self::ZERO; N],
            misses: [Self::ZERO; N],
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        }
    }

    pub fn lookup(&self, ns: Namespace, hit: bool) {
        let cell = if hit { &self.hits } else { &self.misses };
        cell[ns as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn limiter(&self, allowed: bool) {
        let cell = if allowed { &self.allowed } else { &self.denied };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for i in 0..N {
            s.hits[i] = self.hits[i].load(Ordering::Relaxed);
            s.misses[i] = self.misses[i].load(Ordering::Relaxed);
        }
        s.allowed = self.allowed.load(Ordering::Relaxed);
        s.denied = self.denied.load(Ordering::Relaxed);
        s
    }

    pub fn reset(&self) {
        for i in 0..N {
            self.hits[i].store(0, Ordering::Relaxed);
            self.misses[i].store(0, Ordering::Relaxed);
        }
        self.allowed.store(0, Ordering::Relaxed);
        self.denied.store(0, Ordering::Relaxed);
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Snapshot {
    pub fn total_hits(&self) -> u64 {
        self.hits.iter().sum()
    }

    pub fn total_misses(&self) -> u64 {
        self.misses.iter().sum()
    }
}

/// Percent of hits, rounded to 2 decimals; 0 when there were no requests.
/// Computed as the original Python did, `round(hits / total * 100, 2)`:
/// the exact value of the double rounded half to even (3.125 -> 3.12),
/// which is what `{:.2}` formats, so both report the same figures.
pub fn hit_rate(hits: u64, misses: u64) -> f64 {
    let total = hits.saturating_add(misses);
    if total == 0 {
        return 0.0;
    }
    let pct = hits as f64 / total as f64 * 100.0;
    format!("{pct:.2}").parse().unwrap_or(pct)
}

pub const LOW_HIT_RATE: f64 = 70.0;
pub const MIN_REQUESTS_FOR_ADVICE: u64 = 100;
pub const HIGH_MEMORY_RATIO: f64 = 0.9;
/// The seed's `CachePerformanceMonitor` warns above this many clients.
pub const MANY_CLIENTS: u64 = 100;

/// Advice for the operator, from the counters and the server's memory and
/// client figures (the seed's three checks).
pub fn recommendations(
    s: &Snapshot,
    used_memory: u64,
    maxmemory: u64,
    connected_clients: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let (hits, misses) = (s.total_hits(), s.total_misses());
    let rate = hit_rate(hits, misses);
    if hits + misses >= MIN_REQUESTS_FOR_ADVICE && rate < LOW_HIT_RATE {
        out.push(format!(
            "hit rate {rate}% over {} requests is under {LOW_HIT_RATE}%: consider longer TTLs (cachekit.*-ttl) or caching more of what is read",
            hits + misses
        ));
    }
    for ns in Namespace::ALL {
        let (h, m) = (s.hits[ns as usize], s.misses[ns as usize]);
        let r = hit_rate(h, m);
        if h + m >= MIN_REQUESTS_FOR_ADVICE && r < LOW_HIT_RATE {
            out.push(format!(
                "namespace {} hit rate {r}% over {} requests is under {LOW_HIT_RATE}%",
                ns.namespace(),
                h + m
            ));
        }
    }
    if maxmemory > 0 && used_memory as f64 > HIGH_MEMORY_RATIO * maxmemory as f64 {
        let pct = (used_memory as f64 * 10000.0 / maxmemory as f64).round() / 100.0;
        out.push(format!(
            "memory use is {pct}% of maxmemory: raise maxmemory, shorten TTLs or choose an eviction policy"
        ));
    }
    if connected_clients > MANY_CLIENTS {
        out.push(format!(
            "{connected_clients} connected clients is more than {MANY_CLIENTS}: check connection pooling"
        ));
    }
    out
}

/// Whether the background cleanup should run `MEMORY PURGE`: `used` bytes
/// above `threshold_pct` percent of `max`; never with no `maxmemory` (0) or
/// a threshold of 0.
pub fn purge_needed(used: u64, max: u64, threshold_pct: i64) -> bool {
    if threshold_pct <= 0 || max == 0 {
        return false;
    }
    u128::from(used) * 100 > u128::from(max) * threshold_pct as u128
}

/// How many clients of a `CLIENT LIST` reply are inside `MULTI` (flag `x`).
pub fn clients_in_multi(list: &[u8]) -> usize {
    list.split(|&b| b == b'\n')
        .filter(|line| {
            line.split(|&b| b == b' ')
                .find_map(|field| field.strip_prefix(b"flags="))
                .is_some_and(|flags| flags.contains(&b'x'))
        })
        .count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_clients_inside_multi() {
        let list = b"id=3 addr=127.0.0.1:1 name= flags=N db=0 cmd=client|list\n\
id=4 addr=127.0.0.1:2 name=x flags=x db=0 cmd=multi\n\
id=5 addr=127.0.0.1:3 name= flags=Px db=0 cmd=exec\n";
        assert_eq!(clients_in_multi(list), 2);
        assert_eq!(clients_in_multi(b""), 0);
    }

    #[test]
    fn purges_only_above_the_threshold_of_a_set_maxmemory() {
        assert!(!purge_needed(100, 0, 80));
        assert!(!purge_needed(100, 100, 0));
        assert!(!purge_needed(80, 100, 80));
        assert!(purge_needed(81, 100, 80));
        assert!(!purge_needed(u64::MAX, u64::MAX, 100));
        assert!(purge_needed(u64::MAX, 1, 100));
    }

    use super::*;

    #[test]
    fn hit_rate_rounds_to_two_decimals() {
        assert_eq!(hit_rate(0, 0), 0.0);
        assert_eq!(hit_rate(1, 2), 33.33);
        assert_eq!(hit_rate(2, 1), 66.67);
        assert_eq!(hit_rate(5, 0), 100.0);
        // Ties as Python's round() takes them: 1/32 is 3.125 exactly.
        assert_eq!(hit_rate(1, 31), 3.12);
        assert_eq!(hit_rate(3, 29), 9.38);
        assert_eq!(hit_rate(1, 7), 12.5);
        assert_eq!(hit_rate(u64::MAX, u64::MAX), 100.0);
    }

    #[test]
    fn counts_and_resets() {
        let c = Counters::new();
        c.lookup(Namespace::User, true);
        c.lookup(Namespace::User, false);
        c.lookup(Namespace::Search, false);
        c.limiter(true);
        c.limiter(false);
        c.limiter(false);
        let s = c.snapshot();
        assert_eq!((s.total_hits(), s.total_misses()), (1, 2));
        assert_eq!((s.allowed, s.denied), (1, 2));
        c.reset();
        assert_eq!(c.snapshot(), Snapshot::default());
    }

    #[test]
    fn advises_on_low_hit_rate_and_memory() {
        let mut s = Snapshot::default();
        s.hits[0] = 50;
        s.misses[0] = 50;
        let r = recommendations(&s, 95, 100, 101);
        assert_eq!(r.len(), 4, "{r:?}");
        assert!(r[3].contains("check connection pooling"), "{r:?}");
        s.hits[0] = 80;
        s.misses[0] = 20;
        assert!(recommendations(&s, 10, 0, 100).is_empty());
        s.hits[0] = 1;
        s.misses[0] = 9;
        assert!(
            recommendations(&s, 10, 100, 1).is_empty(),
            "too few requests to judge"
        );
    }
}
