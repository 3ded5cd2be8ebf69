//! The tickets that lost their place, as this proxy knows them: the part of
//! Redis's list it has read, kept sorted so a position is a binary search.

use super::lottery::Draw;

/// Tickets that lost their place (sorted, and their places sorted), and
/// how much of Redis's list of them this proxy has read.
#[derive(Debug, Default)]
pub(super) struct Removed {
    pub(super) sorted: Vec<u64>,
    /// The removed tickets' places, once a lottery has drawn them; before
    /// (and in FIFO) a ticket is its place and `sorted` serves.
    pub(super) drawn: Option<Vec<u64>>,
    pub(super) read: u64,
}

impl Removed {
    pub(super) fn contains(&self, ticket: u64) -> bool {
        self.sorted.binary_search(&ticket).is_ok()
    }

    pub(super) fn places(&self) -> &[u64] {
        self.drawn.as_deref().unwrap_or(&self.sorted)
    }

    /// How many removed places lie strictly between `low` and `high`.
    pub(super) fn between(&self, low: u64, high: u64) -> u64 {
        let places = self.places();
        let a = places.partition_point(|t| *t <= low);
        let b = places.partition_point(|t| *t < high);
        b.saturating_sub(a) as u64
    }

    pub(super) fn reindex(&mut self, draw: &Draw) {
        let mut places: Vec<u64> = self.sorted.iter().map(|t| draw.place(*t)).collect();
        places.sort_unstable();
        self.drawn = Some(places);
    }
}

/// Two sorted lists as one, without duplicates. Linear: in a big on-sale a
/// million places can be lost, and sorting the whole list again on every
/// tick held the lock every fan's status reads for tens of ms.
pub(super) fn merged(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
