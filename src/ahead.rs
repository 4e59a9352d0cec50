//! Items made on another thread, a batch ahead of the thread that uses them: decoding
//! an index's documents or merging a sort's runs then overlaps the work done with what
//! was decoded or merged before.

use std::sync::mpsc;

/// Items handed over at a time.
const BATCH: usize = 4096;
/// Batches made before the user takes one.
const BATCHES_AHEAD: usize = 4;

/// The items of an iterator run on its own thread, in order. The thread stops once
/// the items run out or this is dropped.
pub struct Ahead<T>(std::iter::Flatten<mpsc::IntoIter<Vec<T>>>);

impl<T: Send + 'static> Ahead<T> {
    /// Starts taking the items of `items` on another thread.
    pub fn new(mut items: impl Iterator<Item = T> + Send + 'static) -> Ahead<T> {
        let (tx, rx) = mpsc::sync_channel::<Vec<T>>(BATCHES_AHEAD);
        std::thread::spawn(move || {
            loop {
                let batch: Vec<T> = items.by_ref().take(BATCH).collect();
                if batch.is_empty() || tx.send(batch).is_err() {
                    return;
                }
            }
        });
        Ahead(rx.into_iter().flatten())
    }
}

impl<T> Iterator for Ahead<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.0.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_over_every_item_in_order_and_stops_when_dropped() {
        let n = 3 * BATCH as u64 + 17;
        assert!(Ahead::new(0..n).eq(0..n));
        assert_eq!(Ahead::new(std::iter::empty::<u8>()).count(), 0);
        // Dropped early: the thread's send fails and it ends (the test would hang on
        // an endless source otherwise).
        let mut endless = Ahead::new(0u64..);
        assert_eq!(endless.next(), Some(0));
        drop(endless);
    }
}
