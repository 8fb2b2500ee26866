//! The model owner's RLWE weights made ready once ([`rlwe::WeightTiles`]:
//! split into digits, the plaintext tiles in NTT form) and kept for the
//! later sessions of the same process, such as a service's: a masked
//! product's answer then skips most of its work on `W`, which the model
//! owner holds unchanged from session to session.
//!
//! An entry is found by its layout and by `W` itself (compared in full,
//! so a changed weight is never answered with stale tiles). `W` is made
//! ready the second time it is seen: making it costs more than one answer
//! (all tiles at once, out of the cache), so weights that change every
//! session (as `veil bench`'s random ones do) are answered as before. The
//! tiles of one entry take at most [`WeightCache::TILE_BYTES`] (larger
//! ones are not kept in NTT form: reading them back costs about what
//! transforming them does), the cache at most its byte budget, oldest
//! entries going first. What it holds is derived from `W`, the model
//! owner's own secret, kept in its own process like `W` (and wiped when
//! dropped).

use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Ready weights by layout and `W`, within a byte budget.
pub struct WeightCache {
    max_bytes: usize,
    entries: Mutex<Vec<Entry>>,
}

struct Entry {
    layout: rlwe::Layout,
    w: Zeroizing<Vec<u64>>,
    /// Made the second time `W` is seen.
    ready: Option<Arc<rlwe::WeightTiles>>,
}

impl Entry {
    fn bytes(&self) -> usize {
        8 * self.w.len() + self.ready.as_ref().map_or(0, |r| r.bytes())
    }
}

/// Sizes only: the entries are secret.
impl std::fmt::Debug for WeightCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (count, bytes) = self
            .entries
            .lock()
            .map(|v| (v.len(), v.iter().map(Entry::bytes).sum::<usize>()))
            .unwrap_or((0, 0));
        f.debug_struct("WeightCache")
            .field("entries", &count)
            .field("bytes", &bytes)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl WeightCache {
    /// The default budget: 256 MiB.
    pub const DEFAULT_BYTES: usize = 256 << 20;
    /// The most one entry's tiles in NTT form take: 32 MiB (a product at
    /// batch 1 takes a few; `[100, 784] @ [784, 128]` would take 240).
    pub const TILE_BYTES: usize = 32 << 20;

    pub fn new(max_bytes: usize) -> WeightCache {
        WeightCache {
            max_bytes,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// `W` made ready for `layout`, if it was seen before: kept from an
    /// earlier session, or made now (and kept if it fits the budget).
    /// `None` the first time (it is remembered, and the caller answers
    /// with `W` as it is).
    pub(super) fn get(
        &self,
        params: &rlwe::Params,
        layout: &rlwe::Layout,
        w: &[u64],
    ) -> Result<Option<Arc<rlwe::WeightTiles>>, rlwe::Error> {
        let seen = match self.entries.lock() {
            Ok(v) => match v.iter().find(|e| e.layout == *layout && e.w[..] == *w) {
                Some(Entry {
                    ready: Some(ready), ..
                }) => return Ok(Some(ready.clone())),
                Some(_) => true,
                None => false,
            },
            Err(_) => return Ok(None),
        };
        let ready = if seen {
            // Made outside the lock; a session that races it makes its own.
            let tiles = Self::TILE_BYTES.min(self.max_bytes);
            Some(Arc::new(rlwe::WeightTiles::new(params, layout, w, tiles)?))
        } else {
            None
        };
        let entry = Entry {
            layout: *layout,
            w: Zeroizing::new(w.to_vec()),
            ready: ready.clone(),
        };
        if entry.bytes() <= self.max_bytes {
            if let Ok(mut v) = self.entries.lock() {
                v.retain(|e| !(e.layout == *layout && e.w[..] == *w));
                let mut held: usize = v.iter().map(Entry::bytes).sum();
                while !v.is_empty() && held + entry.bytes() > self.max_bytes {
                    held -= v.remove(0).bytes();
                }
                v.push(entry);
            }
        }
        Ok(ready)
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries made ready (seen at least twice).
    pub fn ready(&self) -> usize {
        self.entries
            .lock()
            .map(|v| v.iter().filter(|e| e.ready.is_some()).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(params: &rlwe::Params, batch: usize) -> rlwe::Layout {
        let shape = rlwe::Shape { batch, k: 6, n: 4 };
        rlwe::Layout::choose(params, shape, 10, &rlwe::CostModel::default_for(params)).unwrap()
    }

    #[test]
    fn weights_seen_twice_are_made_ready_and_kept_within_the_budget() {
        let params = rlwe::Params::insecure_for_tests(64);
        let w: Vec<u64> = (0..24u64).map(|i| i.wrapping_sub(12)).collect();
        let mut other = w.clone();
        other[5] = 7;
        let l2 = layout(&params, 2);
        let cache = WeightCache::new(WeightCache::DEFAULT_BYTES);
        assert!(
            cache.get(&params, &l2, &w).unwrap().is_none(),
            "first sight"
        );
        let a = cache.get(&params, &l2, &w).unwrap().expect("second: made");
        let again = cache.get(&params, &l2, &w).unwrap().expect("kept");
        assert!(Arc::ptr_eq(&a, &again), "the same layout and W: kept");
        assert!(
            cache.get(&params, &l2, &other).unwrap().is_none(),
            "one weight changed: not the same W"
        );
        let changed = cache.get(&params, &l2, &other).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&a, &changed));
        let l3 = layout(&params, 3);
        assert!(
            cache.get(&params, &l3, &w).unwrap().is_none(),
            "another layout"
        );
        assert_eq!(cache.get(&params, &l3, &w).unwrap().unwrap().layout(), &l3);
        assert_eq!(cache.len(), 3);
        // A budget for one entry keeps the newest only.
        let small = WeightCache::new(a.bytes() + 8 * w.len());
        for v in [&w, &w, &other, &other] {
            small.get(&params, &l2, v).unwrap();
        }
        assert_eq!(small.len(), 1);
        assert!(small.get(&params, &l2, &other).unwrap().is_some());
        assert!(small.get(&params, &l2, &w).unwrap().is_none(), "evicted");
        // W out of the layout's range is an error when made, never kept.
        let wide = vec![1u64 << 40; 24];
        assert!(cache.get(&params, &l2, &wide).unwrap().is_none());
        assert!(cache.get(&params, &l2, &wide).is_err());
    }
}
