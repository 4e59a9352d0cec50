//! Sorting more records than memory should hold: the records are buffered up to a
//! budget, each full buffer is sorted and spilled as a run into a directory beside the
//! index, and reading merges the runs (the `extsort` crate). Classification groups
//! documents this way (by content hash, by collection and `_id`, by the row they go
//! to), so its memory does not grow with the number of documents.

use std::cmp::Ordering;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use extsort::{ExternalSorter, Sortable, SortedIterator};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default memory for the records one sort holds before spilling a run.
pub const DEFAULT_BUDGET: u64 = 256 << 20;

/// Where runs go and how much memory a sort may hold.
#[derive(Clone, Debug)]
pub struct Spill {
    dir: PathBuf,
    budget: u64,
}

impl Spill {
    /// Runs go into a fresh directory inside `dir` (removed when the sort is read);
    /// each sort holds at most about `budget` bytes of records.
    pub fn new(dir: &Path, budget: u64) -> Spill {
        Spill {
            dir: dir.to_path_buf(),
            budget,
        }
    }

    /// A sort of `T`s by their order, its runs in a directory of its own (extsort
    /// names them 0, 1, ... and leaves them; the directory goes with the sort).
    pub fn sorter<T: Record>(&self) -> io::Result<Sorter<T>> {
        let dir = tempfile::Builder::new()
            .prefix(".salvagefs-sort-")
            .tempdir_in(&self.dir)?;
        // Records in memory take their size plus the vector's slack.
        let each = (size_of::<T>() as u64).max(1) * 2;
        let items = (self.budget / each).max(1024);
        let sorter = ExternalSorter::new()
            .with_segment_size(usize::try_from(items).unwrap_or(usize::MAX))
            .with_sort_dir(dir.path().to_path_buf())
            .with_parallel_sort()
            .pushed_by(compare::<T> as Compare<T>);
        Ok(Sorter { sorter, dir })
    }
}

impl Spill {
    /// An unnamed temporary file beside the runs, for a stream written once and read
    /// back (gone when closed).
    pub fn file(&self) -> io::Result<std::fs::File> {
        tempfile::tempfile_in(&self.dir)
    }
}

/// A record that can be sorted through runs on disk: ordered, and encodable (postcard).
pub trait Record: Ord + Serialize + DeserializeOwned + Send {}
impl<T: Ord + Serialize + DeserializeOwned + Send> Record for T {}

/// How two encoded records compare (a plain function, so the sorter's type can be named).
type Compare<T> = fn(&Encoded<T>, &Encoded<T>) -> Ordering;

/// A record as a run holds it: a u16 length, then its postcard bytes.
struct Encoded<T>(T);

fn compare<T: Ord>(a: &Encoded<T>, b: &Encoded<T>) -> Ordering {
    a.0.cmp(&b.0)
}

impl<T: Record> Sortable for Encoded<T> {
    fn encode<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        let bytes = postcard::to_slice(&self.0, &mut buf).map_err(io::Error::other)?;
        w.write_all(&(bytes.len() as u16).to_le_bytes())?;
        w.write_all(bytes)
    }

    fn decode<R: Read>(r: &mut R) -> io::Result<Self> {
        let mut len = [0u8; 2];
        r.read_exact(&mut len)?;
        let mut buf = [0u8; 1024];
        let bytes = buf
            .get_mut(..usize::from(u16::from_le_bytes(len)))
            .ok_or_else(|| io::Error::other("a spilled record is too long"))?;
        r.read_exact(bytes)?;
        postcard::from_bytes(bytes)
            .map(Encoded)
            .map_err(io::Error::other)
    }
}

/// Records pushed in any order, read back sorted.
pub struct Sorter<T: Record> {
    sorter: extsort::PushExternalSorter<Encoded<T>, Compare<T>>,
    dir: tempfile::TempDir,
}

impl<T: Record> Sorter<T> {
    /// Adds a record.
    pub fn push(&mut self, record: T) -> io::Result<()> {
        self.sorter.push(Encoded(record))
    }

    /// The records, in order.
    pub fn sorted(self) -> io::Result<Sorted<T>> {
        Ok(Sorted {
            inner: self.sorter.done()?,
            _dir: self.dir,
            _t: PhantomData,
        })
    }
}

/// The records of a [`Sorter`], in order.
pub struct Sorted<T: Record> {
    inner: SortedIterator<Encoded<T>, Compare<T>>,
    _dir: tempfile::TempDir,
    _t: PhantomData<T>,
}

impl<T: Record> Iterator for Sorted<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        self.inner.next().map(|r| r.map(|e| e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the budget (down to a run per 1024 records), the records come back
        /// as a sort in memory orders them.
        #[test]
        fn sorts_like_a_vector(records in prop::collection::vec((any::<u32>(), any::<u64>(), ".{0,20}"), 0..5000)) {
            let dir = tempfile::tempdir().unwrap();
            let spill = Spill::new(dir.path(), 1);
            let mut sorter = spill.sorter().unwrap();
            for r in &records {
                sorter.push(r.clone()).unwrap();
            }
            let got: Vec<(u32, u64, String)> = sorter.sorted().unwrap().collect::<io::Result<_>>().unwrap();
            let mut want = records;
            want.sort();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn runs_are_spilled_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path(), 1);
        let mut sorter = spill.sorter().unwrap();
        for i in (0..10_000u64).rev() {
            sorter.push(i).unwrap();
        }
        let sorted = sorter.sorted().unwrap();
        let runs = |d: &Path| std::fs::read_dir(d).unwrap().count();
        let sort_dir = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert!(runs(&sort_dir) > 1, "nothing spilled");
        assert!(sorted.map(Result::unwrap).eq(0..10_000u64));
        assert_eq!(runs(dir.path()), 0, "runs left behind");
    }
}
