//! Which hashes may have been seen more than once: a filter that lets the sorts which
//! group equal hashes (byte-identical copies, versions of one `_id`) take only the few
//! documents that can have a partner, instead of every document.
//!
//! A hash picks a slot of two bits, side by side (one memory access): the first is set
//! once, the second when the first was set already. Equal hashes pick the same slot,
//! so every document with a partner finds its second bit set (no partner is ever
//! missed); a document alone finds it set only when another hash picked the same
//! slot: at most about one time in eight.

use fixedbitset::FixedBitSet;

/// Hashes pushed, counted up to two per slot.
pub struct SeenTwice {
    /// Bit `2s` of slot `s`: a hash picked it; bit `2s + 1`: two did.
    slots: FixedBitSet,
    mask: u64,
    /// Hashes not yet counted: counted a batch at a time, in a loop of nothing else,
    /// the processor waits for many slots at once (each in a different place of a set
    /// larger than its caches) instead of one after another.
    pending: Vec<u64>,
}

/// Hashes counted (or looked up) at a time.
pub const BATCH: usize = 4096;

impl SeenTwice {
    /// A filter for `n` hashes: eight slots each (two bytes a document), at most 2^28
    /// slots (64 MB), whatever the disk holds.
    pub fn new(n: usize) -> SeenTwice {
        let slots = n
            .saturating_mul(8)
            .next_power_of_two()
            .clamp(1 << 10, 1 << 28);
        SeenTwice {
            slots: FixedBitSet::with_capacity(2 * slots),
            mask: slots as u64 - 1,
            pending: Vec::with_capacity(BATCH),
        }
    }

    /// Counts `hash` (a hash spread evenly over its bits).
    pub fn push(&mut self, hash: u64) {
        self.pending.push(hash);
        if self.pending.len() == BATCH {
            self.count_pending();
        }
    }

    /// Counts the hashes pushed since the last batch.
    fn count_pending(&mut self) {
        for hash in self.pending.drain(..) {
            let slot = 2 * (hash & self.mask) as usize;
            if self.slots.put(slot) {
                self.slots.insert(slot + 1);
            }
        }
    }

    /// The filter, every hash pushed counted.
    pub fn finish(mut self) -> Filter {
        self.count_pending();
        Filter {
            slots: self.slots,
            mask: self.mask,
        }
    }
}

/// The slots of a [`SeenTwice`], every hash counted.
pub struct Filter {
    slots: FixedBitSet,
    mask: u64,
}

impl Filter {
    /// Whether another pushed hash may equal `hash` (certainly so when one does).
    pub fn maybe_again(&self, hash: u64) -> bool {
        self.slots.contains(2 * (hash & self.mask) as usize + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Every hash pushed twice or more is flagged, even in a filter too small for
        /// its hashes (1024 slots for up to 5000 values), where lone hashes collide.
        #[test]
        fn flags_every_repeated_hash(hashes in prop::collection::vec(0u64..5000, 0..3000)) {
            let mut filter = SeenTwice::new(hashes.len() / 8);
            let mut counts = HashMap::new();
            for &h in &hashes {
                filter.push(h);
                *counts.entry(h).or_insert(0) += 1;
            }
            let filter = filter.finish();
            for (&h, &n) in &counts {
                if n > 1 {
                    prop_assert!(filter.maybe_again(h), "{h} pushed {n} times");
                }
            }
        }
    }

    #[test]
    fn a_hash_alone_is_not_flagged_without_a_collision() {
        let mut filter = SeenTwice::new(1000);
        for h in 0..1000 {
            filter.push(h);
        }
        filter.push(7);
        let filter = filter.finish();
        assert!(filter.maybe_again(7));
        assert_eq!((0..1000).filter(|&h| filter.maybe_again(h)).count(), 1);
    }
}
