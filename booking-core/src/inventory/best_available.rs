//! Best available: N free seats side by side in one row, nearest the
//! venue's focal point (the stage, or the centre of play), never leaving a
//! lone seat stranded in a row when another choice avoids it.
//!
//! Pure: it ranks windows over the in-memory chart and a view of which seats
//! are taken; the claim itself still goes through the database, which may
//! say a seat was taken in the meantime (then the caller ranks again).

use crate::venues::VenueMap;

/// Where to look.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    /// Index of the section in the chart.
    pub section: Option<u32>,
    pub tier: Option<i16>,
    /// Accessible seats only (true) or never accessible seats (false): those
    /// are kept for the fans who need them.
    pub accessible: bool,
}

/// One candidate: the seat-map indexes of the seats, left to right.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub seats: Vec<u32>,
    /// It would leave a single free seat at one end of its run.
    pub orphans: bool,
    pub obstructed: usize,
    pub distance: f32,
}

impl Window {
    fn key(&self) -> (bool, usize, f32) {
        (self.orphans, self.obstructed, self.distance)
    }
}

/// Up to `limit` windows of `quantity` adjacent free seats, best first:
/// windows that strand no single seat before those that do, then fewer
/// obstructed-view seats, then nearest the focal point.
pub fn rank(
    map: &VenueMap,
    is_taken: impl Fn(u32) -> bool,
    scope: Scope,
    quantity: usize,
    limit: usize,
) -> Vec<Window> {
    let mut found: Vec<Window> = Vec::new();
    if quantity == 0 {
        return found;
    }
    let eligible = |idx: u32| {
        let seat = map.seat(idx);
        seat.accessible == scope.accessible && scope.tier.is_none_or(|t| seat.tier == t) && !is_taken(idx)
    };
    for (si, section) in map.sections.iter().enumerate() {
        if scope.section.is_some_and(|s| s as usize != si) {
            continue;
        }
        for row in &section.rows {
            // Runs of free, eligible seats with consecutive seat numbers.
            let mut run: Vec<u32> = Vec::new();
            let mut flush = |run: &mut Vec<u32>| {
                windows_in_run(map, run, quantity, limit, &mut found);
                run.clear();
            };
            for idx in row.seats.clone() {
                let adjacent = run
                    .last()
                    .is_none_or(|&p| map.seat(p).seat_no + 1 == map.seat(idx).seat_no);
                if !adjacent {
                    flush(&mut run);
                }
                if eligible(idx) {
                    run.push(idx);
                } else {
                    flush(&mut run);
                }
            }
            flush(&mut run);
        }
    }
    found
}

/// Keeps `out` the best `limit` windows so far, best first; among equals the
/// one found first stays ahead. Only a window that makes the cut is built, so
/// a 50,000-seat map costs a pass over its seats, not 50,000 allocations.
fn windows_in_run(map: &VenueMap, run: &[u32], quantity: usize, limit: usize, out: &mut Vec<Window>) {
    if run.len() < quantity {
        return;
    }
    let (fx, fy) = map.focal;
    for start in 0..=run.len() - quantity {
        let seats = &run[start..start + quantity];
        let left = start;
        let right = run.len() - start - quantity;
        let (mut sx, mut sy, mut obstructed) = (0.0f32, 0.0f32, 0);
        for &i in seats {
            let s = map.seat(i);
            sx += s.x;
            sy += s.y;
            obstructed += usize::from(s.obstructed);
        }
        let (cx, cy) = (sx / quantity as f32, sy / quantity as f32);
        let key = (
            left == 1 || right == 1,
            obstructed,
            ((cx - fx).powi(2) + (cy - fy).powi(2)).sqrt(),
        );
        let worse = |w: &Window| w.key().partial_cmp(&key).is_some_and(|o| o.is_le());
        let at = out.partition_point(worse);
        if at >= limit {
            continue;
        }
        out.insert(
            at,
            Window {
                seats: seats.to_vec(),
                orphans: key.0,
                obstructed: key.1,
                distance: key.2,
            },
        );
        out.truncate(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SeatId, VenueId};
    use crate::venues::{ChartSeat, VenueSummary};

    /// One section, rows of `width` seats at y = row number, focal at (0, 0):
    /// row 1 is nearest, and within a row the middle is nearest.
    fn chart(rows: i32, width: i32) -> VenueMap {
        let mut seats = Vec::new();
        let mut id = 1;
        for r in 1..=rows {
            for n in 1..=width {
                seats.push(ChartSeat {
                    id: SeatId(id),
                    section: 0,
                    row_no: r,
                    row_label: r.to_string(),
                    seat_no: n,
                    label: n.to_string(),
                    x: n as f32 - (width as f32 + 1.0) / 2.0,
                    y: r as f32 * 2.0,
                    tier: if r <= 2 { 1 } else { 2 },
                    accessible: rows >= 4 && r == rows && n <= 2,
                    obstructed: false,
                });
                id += 1;
            }
        }
        let venue = VenueSummary {
            id: VenueId(1),
            slug: "t".into(),
            name: "T".into(),
            city: "C".into(),
            country: "GB".into(),
            timezone: "UTC".into(),
        };
        VenueMap::build(venue, (0.0, 0.0), "g".into(), vec![("A".into(), "A".into())], seats).unwrap()
    }

    fn labels(map: &VenueMap, w: &Window) -> Vec<(String, i32)> {
        w.seats
            .iter()
            .map(|&i| (map.row_of(map.seat(i)).label.clone(), map.seat(i).seat_no))
            .collect()
    }

    #[test]
    fn picks_the_centre_of_the_front_row() {
        let map = chart(3, 9);
        let best = rank(&map, |_| false, Scope::default(), 3, 1);
        assert_eq!(
            labels(&map, &best[0]),
            vec![("1".into(), 4), ("1".into(), 5), ("1".into(), 6)]
        );
    }

    #[test]
    fn never_strands_a_single_seat_when_it_can_avoid_it() {
        let map = chart(1, 6);
        // Seats 1-3 free, 4 taken, 5-6 free. Asking for 2: taking 2-3 would
        // strand seat 1, taking 1-2 strands 3; 5-6 strands nothing.
        let taken = |i: u32| map.seat(i).seat_no == 4;
        let best = rank(&map, taken, Scope::default(), 2, 10);
        assert_eq!(labels(&map, &best[0]), vec![("1".into(), 5), ("1".into(), 6)]);
        assert!(!best[0].orphans);
        assert!(best.iter().skip(1).all(|w| w.orphans));
    }

    #[test]
    fn strands_a_seat_only_when_there_is_no_other_way() {
        let map = chart(1, 3);
        let best = rank(&map, |_| false, Scope::default(), 2, 10);
        assert_eq!(best.len(), 2);
        assert!(best.iter().all(|w| w.orphans));
    }

    #[test]
    fn seats_must_be_adjacent_and_in_one_row() {
        let map = chart(2, 4);
        // Row 1: 1 and 3 taken, row 2 all taken but seat 4: no pair anywhere.
        let taken = |i: u32| {
            let s = map.seat(i);
            let row = map.row_of(s).row_no;
            (row == 1 && (s.seat_no == 1 || s.seat_no == 3)) || (row == 2 && s.seat_no != 4)
        };
        assert!(rank(&map, taken, Scope::default(), 2, 10).is_empty());
    }

    #[test]
    fn tier_and_accessibility_scope_the_search() {
        let map = chart(4, 6);
        let best = rank(
            &map,
            |_| false,
            Scope {
                tier: Some(2),
                ..Scope::default()
            },
            2,
            1,
        );
        assert_eq!(map.row_of(map.seat(best[0].seats[0])).row_no, 3);
        let acc = rank(
            &map,
            |_| false,
            Scope {
                accessible: true,
                ..Scope::default()
            },
            2,
            5,
        );
        assert_eq!(acc.len(), 1);
        assert!(acc[0].seats.iter().all(|&i| map.seat(i).accessible));
        // Ordinary requests never get accessible seats.
        let all = rank(&map, |_| false, Scope::default(), 1, 1000);
        assert!(all.iter().all(|w| !map.seat(w.seats[0]).accessible));
    }
}
