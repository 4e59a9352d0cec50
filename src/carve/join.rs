//! A join: where a carved recording jumps from one fragment to the next, and what
//! says so. Its own module because the fragment search and the filesystem maps both
//! make joins, and neither should import the other for it.

use serde::{Deserialize, Serialize};

/// Where a walk jumped from one fragment to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// End of the fragment left (a block boundary).
    pub from: u64,
    /// Start of the fragment entered (a block boundary).
    pub to: u64,
    /// Timestamp (ms) where the stream continues.
    pub at_ms: u32,
    /// Other fragments that fit the evidence as well: 0 when only this one does.
    pub alternatives: u32,
    /// The earliest block boundary the jump may lie at (`from` is the latest, and the
    /// one taken): the straddling tag fits every boundary between them equally.
    pub earliest_from: u64,
    /// For a join across a lost fragment (overwritten, or nowhere in the source): the
    /// time range missing, in ms. The file jumps from its last whole tag to the next
    /// fragment's first keyframe.
    pub lost_ms: Option<(u32, u32)>,
    /// What says the file goes on there.
    pub evidence: Evidence,
    /// How decoding settled a join the straddling tag left open (see
    /// [`super::probe`]), or why it could not.
    pub decided: Option<Decided>,
}

impl Join {
    /// Nothing else fits: one fragment, one split, none lost.
    pub fn proven(&self) -> bool {
        let found_inside = matches!(self.decided, Some(Decided::Inner { .. }));
        self.alternatives == 0
            && self.earliest_from == self.from
            && self.lost_ms.is_none()
            && !found_inside
    }

    /// A join at `from` to `to` proven by a straddling tag whose split may lie as early
    /// as `earliest_from`: what the split tests build.
    #[cfg(test)]
    pub(crate) fn straddling(earliest_from: u64, from: u64, to: u64) -> Join {
        Join {
            from,
            to,
            at_ms: 0,
            alternatives: 0,
            earliest_from,
            lost_ms: None,
            evidence: Evidence::StraddlingTag,
            decided: None,
        }
    }
}

/// What a join rests on, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evidence {
    /// The filesystem's extent map found at this source offset (and the straddling
    /// tag, read through it, checks out).
    ExtentMap(u64),
    /// The straddling tag: its size and PreviousTagSize fit the fragment there
    /// (`alternatives` says how many other places fit as well).
    StraddlingTag,
    /// Only time: the fragment that comes next in the stream's time line.
    NextInTime,
}

/// What decoding the straddling tag's frame said about a join whose split the tag
/// leaves open: a user reading `.extents.txt` must tell a split only one candidate
/// allows from a fragment chosen as the nearest that fits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decided {
    /// Of this many splits the tag allows, only this one decodes without error.
    Split(u32),
    /// No split decodes, and this join goes into or out of a fragment lying wholly
    /// inside the tag: an unclaimed sector boundary from which the frame decodes
    /// whole (of `starts` judged), none of the `checked` tried next fitting. Evidence,
    /// not proof.
    Inner {
        /// Sector boundaries judged as the fragment's start.
        starts: u32,
        /// Further starts whose length was searched after this one fitted.
        checked: u32,
    },
    /// Several fragments inside the tag (source offset, length) make its frame decode
    /// whole: none is taken, and the tag is left out.
    InnerAmbiguous(Vec<(u64, u64)>),
    /// Decoding favoured no split: the tag is left out. What it saw, for a user who
    /// settles the split by hand.
    Open(OpenSplit),
}

/// The candidate splits of a join decoding could not settle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSplit {
    /// The earliest and the latest source offset the split may lie at.
    pub range: (u64, u64),
    /// Block boundaries between them (both included).
    pub splits: u32,
    /// Splits decoded.
    pub tried: u32,
    /// The splits that decoded without error, earliest first (several, or one that
    /// the splits after it contradict).
    pub clean: Vec<u64>,
}
