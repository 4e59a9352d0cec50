//! Which hashes may have been seen more than once: a filter that lets the sorts which
//! group equal hashes (byte-identical copies, versions of one `_id`) take only the few
//! documents that can have a partner, instead of every document.
//!
//! A hash picks a slot of two bits, side by side (one memory access): the first is set
//! once, the second when the first was set already. Equal hashes pick the same slot,
//! so every document with a partner finds its second bit set (no partner is ever
//! missed); a document alone finds it set only when another hash picked the same
//! slot: at most about one time in eight.

/// Hashes pushed, counted up to two per slot.
pub struct SeenTwice {
    /// Slot `s` is bits `2(s % 32)` (a hash picked it) and `2(s % 32) + 1` (two did)
    /// of word `s / 32`.
    words: Vec<u64>,
    mask: u64,
    /// Hashes not yet counted: counted a batch at a time, in a loop of nothing else,
    /// the processor waits for many slots at once (each in a different place of a set
    /// larger than its caches) instead of one after another.
    pending: Vec<u64>,
}

/// Hashes counted (or looked up) at a time.
pub const BATCH: usize = 4096;

/// How many hashes ahead of the one counted (or looked up) its slot is fetched.
pub const AHEAD: usize = 16;

impl SeenTwice {
    /// A filter for `n` hashes: eight slots each (two bytes a document), at most 2^28
    /// slots (64 MB), whatever the disk holds.
    pub fn new(n: usize) -> SeenTwice {
        let slots = n
            .saturating_mul(8)
            .next_power_of_two()
            .clamp(1 << 10, 1 << 28);
        // Zeroed by writing, not handed out zeroed (`vec![0; n]`): read first, each
        // page would be the shared zero page until its first write, and that write
        // would then cost a fault and a TLB flush on every core (perf: do_wp_page).
        #[expect(
            clippy::slow_vector_initialization,
            reason = "vec![0; n] maps the shared zero page, which the first write replaces"
        )]
        let words = {
            let mut words = Vec::with_capacity(slots / 32);
            words.resize(slots / 32, 0);
            words
        };
        SeenTwice {
            words,
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

    /// Counts the hashes pushed since the last batch, each slot fetched [`AHEAD`]
    /// hashes before it is counted.
    fn count_pending(&mut self) {
        for (i, &hash) in self.pending.iter().enumerate() {
            if let Some(&later) = self.pending.get(i + AHEAD) {
                prefetch(&self.words, later & self.mask);
            }
            let (word, shift) = place(hash & self.mask);
            if let Some(w) = self.words.get_mut(word) {
                // The first bit once; the second too when the first was set.
                *w |= (1 | ((*w >> shift) & 1) << 1) << shift;
            }
        }
        self.pending.clear();
    }

    /// The filter, every hash pushed counted.
    pub fn finish(mut self) -> Filter {
        self.count_pending();
        Filter {
            words: self.words,
            mask: self.mask,
        }
    }
}

/// The slots of a [`SeenTwice`], every hash counted.
pub struct Filter {
    words: Vec<u64>,
    mask: u64,
}

impl Filter {
    /// Whether another pushed hash may equal `hash` (certainly so when one does).
    pub fn maybe_again(&self, hash: u64) -> bool {
        let (word, shift) = place(hash & self.mask);
        self.words.get(word).is_some_and(|w| (w >> shift) & 2 != 0)
    }

    /// Starts fetching the slot of `hash`, to be looked up [`AHEAD`] hashes later.
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.words, hash & self.mask);
    }
}

/// The word of slot `slot` and the position of its first bit.
fn place(slot: u64) -> (usize, u64) {
    ((slot / 32) as usize, 2 * (slot % 32))
}

/// Asks the processor to bring the word of `slot` into its cache: the slots of a
/// batch are scattered over more memory than the caches hold, and waiting for each in
/// turn was most of the time spent counting.
fn prefetch(words: &[u64], slot: u64) {
    #[cfg(target_arch = "x86_64")]
    if let Some(w) = words.get(place(slot).0) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is only a hint: it reads nothing and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((w as *const u64).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (words, slot);
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
