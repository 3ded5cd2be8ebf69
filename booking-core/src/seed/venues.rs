//! Seating charts for the demo venues, generated from a few numbers each.
//! Positions are in metres on a plan with y growing away from the stage end.

use std::f32::consts::PI;

use crate::venues::import::{ChartSpec, Point, RowSpec, SeatSpec, SectionSpec};

fn row_label(r: usize) -> String {
    // A..Z, then AA, BB, ... as many venues do.
    let letter = (b'A' + (r % 26) as u8) as char;
    letter.to_string().repeat(r / 26 + 1)
}

/// One ring of a bowl: `sections` equal wedges around an ellipse.
struct Ring {
    code_base: usize,
    name: &'static str,
    sections: usize,
    rows: usize,
    seats: usize,
    a: f32,
    b: f32,
    row_depth: f32,
}

fn bowl(
    rings: &[Ring],
    focal: Point,
    tier_of: impl Fn(usize, f32) -> i16,
    flags: impl Fn(usize, usize, usize, usize, f32) -> (bool, bool),
) -> Vec<SectionSpec> {
    let mut out = Vec::new();
    for (ring_no, ring) in rings.iter().enumerate() {
        let span = 2.0 * PI / ring.sections as f32;
        for s in 0..ring.sections {
            let start = s as f32 * span;
            let centre = start + span / 2.0;
            let (cx, cy) = (ring.a * centre.cos(), ring.b * centre.sin());
            let distance = ((cx - focal.x).powi(2) + (cy - focal.y).powi(2)).sqrt();
            let tier = tier_of(ring_no, distance);
            let rows = (0..ring.rows)
                .map(|r| {
                    let (ra, rb) = (ring.a + r as f32 * ring.row_depth, ring.b + r as f32 * ring.row_depth);
                    RowSpec {
                        label: row_label(r),
                        seats: (0..ring.seats)
                            .map(|k| {
                                let angle = start + (k as f32 + 0.5) / ring.seats as f32 * span;
                                let (accessible, obstructed) = flags(ring_no, s, r, k, centre);
                                SeatSpec {
                                    number: k as i32 + 1,
                                    label: None,
                                    x: ra * angle.cos(),
                                    y: rb * angle.sin(),
                                    tier,
                                    accessible,
                                    obstructed,
                                }
                            })
                            .collect(),
                    }
                })
                .collect();
            out.push(SectionSpec {
                code: (ring.code_base + s + 1).to_string(),
                name: format!("{} {}", ring.name, ring.code_base + s + 1),
                rows,
            });
        }
    }
    out
}

/// Angle of the stage end of an oval, whose stage is at negative y.
const STAGE_ANGLE: f32 = 1.5 * PI;

fn near_stage(centre: f32, within: f32) -> bool {
    let d = (centre - STAGE_ANGLE).abs();
    d.min(2.0 * PI - d) < within
}

/// Meridian Stadium, London: 50,000 seats in a lower bowl (32 x 20 x 30),
/// a club ring (16 x 7 x 25) and an upper bowl (32 x 25 x 35); five tiers;
/// an end stage at the north.
pub fn stadium() -> ChartSpec {
    let focal = Point { x: 0.0, y: -48.0 };
    let rings = [
        Ring {
            code_base: 100,
            name: "Lower",
            sections: 32,
            rows: 20,
            seats: 30,
            a: 70.0,
            b: 52.0,
            row_depth: 0.85,
        },
        Ring {
            code_base: 200,
            name: "Club",
            sections: 16,
            rows: 7,
            seats: 25,
            a: 90.0,
            b: 72.0,
            row_depth: 0.9,
        },
        Ring {
            code_base: 300,
            name: "Upper",
            sections: 32,
            rows: 25,
            seats: 35,
            a: 98.0,
            b: 80.0,
            row_depth: 1.0,
        },
    ];
    let sections = bowl(
        &rings,
        focal,
        |ring, distance| match ring {
            0 if distance < 80.0 => 1,
            0 => 2,
            1 => 3,
            _ if distance < 125.0 => 4,
            _ => 5,
        },
        |ring, section, row, seat, centre| {
            // Wheelchair platforms: the back row of every fourth lower
            // section, and the back row ends of each club section.
            let accessible = (ring == 0 && section % 4 == 0 && row == 19 && !(4..26).contains(&seat))
                || (ring == 1 && row == 6 && seat < 2);
            // The stage and its towers block the view from the sections
            // behind it, and the lowest upper rows there.
            let obstructed =
                (ring == 0 && near_stage(centre, 0.35)) || (ring == 2 && row < 3 && near_stage(centre, 0.5));
            (accessible, obstructed)
        },
    );
    ChartSpec {
        slug: "meridian-stadium".into(),
        name: "Meridian Stadium".into(),
        city: "London".into(),
        country: "GB".into(),
        timezone: "Europe/London".into(),
        focal,
        sections,
    }
}

/// Harbour Arena, Manchester: 12,000 seats (24 x 20 x 25), end stage.
pub fn arena() -> ChartSpec {
    let focal = Point { x: 0.0, y: -30.0 };
    let rings = [Ring {
        code_base: 0,
        name: "Block",
        sections: 24,
        rows: 20,
        seats: 25,
        a: 40.0,
        b: 30.0,
        row_depth: 0.8,
    }];
    let sections = bowl(
        &rings,
        focal,
        |_, distance| {
            if distance < 45.0 {
                1
            } else if distance < 65.0 {
                2
            } else {
                3
            }
        },
        |_, section, row, seat, centre| (section % 6 == 0 && row == 19 && seat < 4, near_stage(centre, 0.3)),
    );
    ChartSpec {
        slug: "harbour-arena".into(),
        name: "Harbour Arena".into(),
        city: "Manchester".into(),
        country: "GB".into(),
        timezone: "Europe/London".into(),
        focal,
        sections,
    }
}

/// A straight block of rows facing a stage at y = 0.
fn block(
    code: &str,
    name: &str,
    rows: usize,
    seats: usize,
    x0: f32,
    y0: f32,
    tier: impl Fn(usize) -> i16,
) -> SectionSpec {
    SectionSpec {
        code: code.into(),
        name: name.into(),
        rows: (0..rows)
            .map(|r| RowSpec {
                label: row_label(r),
                seats: (0..seats)
                    .map(|k| SeatSpec {
                        number: k as i32 + 1,
                        label: None,
                        x: x0 + k as f32 * 0.55,
                        y: y0 + r as f32 * 0.9,
                        tier: tier(r),
                        accessible: r == rows - 1 && k < 2,
                        obstructed: false,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Lyric Theatre, London: 1,200 seats in stalls, dress and upper circles.
pub fn theatre() -> ChartSpec {
    let stalls_tier = |r: usize| if r < 8 { 1 } else { 2 };
    ChartSpec {
        slug: "lyric-theatre".into(),
        name: "Lyric Theatre".into(),
        city: "London".into(),
        country: "GB".into(),
        timezone: "Europe/London".into(),
        focal: Point { x: 0.0, y: 0.0 },
        sections: vec![
            block("SL", "Stalls Left", 20, 10, -12.0, 3.0, stalls_tier),
            block("SC", "Stalls Centre", 20, 20, -5.5, 3.0, stalls_tier),
            block("SR", "Stalls Right", 20, 10, 6.5, 3.0, stalls_tier),
            block("DL", "Dress Circle Left", 8, 8, -11.0, 22.0, |_| 2),
            block("DC", "Dress Circle Centre", 8, 16, -4.4, 22.0, |_| 2),
            block("DR", "Dress Circle Right", 8, 8, 6.6, 22.0, |_| 2),
            block("UC", "Upper Circle", 8, 18, -5.0, 30.0, |r| if r < 4 { 3 } else { 4 }),
        ],
    }
}

/// The Cellar, Dublin: a 300-seat club room.
pub fn club() -> ChartSpec {
    ChartSpec {
        slug: "the-cellar".into(),
        name: "The Cellar".into(),
        city: "Dublin".into(),
        country: "IE".into(),
        timezone: "Europe/Dublin".into(),
        focal: Point { x: 0.0, y: 0.0 },
        sections: vec![
            block("F", "Floor", 10, 15, -4.0, 2.0, |r| if r < 4 { 1 } else { 2 }),
            block("B", "Balcony", 10, 15, -4.0, 12.0, |_| 3),
        ],
    }
}

/// Spree Halle, Berlin: 2,400 seats in twelve blocks.
pub fn hall() -> ChartSpec {
    let sections = (0..12)
        .map(|i| {
            let (col, tier_row) = (i % 4, i / 4);
            block(
                &format!("{}", i + 1),
                &format!("Block {}", i + 1),
                10,
                20,
                -24.0 + col as f32 * 12.0,
                3.0 + tier_row as f32 * 10.0,
                move |_| tier_row as i16 + 1,
            )
        })
        .collect();
    ChartSpec {
        slug: "spree-halle".into(),
        name: "Spree Halle".into(),
        city: "Berlin".into(),
        country: "DE".into(),
        timezone: "Europe/Berlin".into(),
        focal: Point { x: 0.0, y: 0.0 },
        sections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_charts_are_sound_and_the_stadium_has_50000_seats() {
        for chart in [stadium(), arena(), theatre(), club(), hall()] {
            assert_eq!(chart.problems(), vec![], "{}", chart.slug);
        }
        let s = stadium();
        assert_eq!(s.seat_count(), 50_000);
        assert_eq!(arena().seat_count(), 12_000);
        assert_eq!(theatre().seat_count(), 1_200);
        assert_eq!(club().seat_count(), 300);
        assert_eq!(hall().seat_count(), 2_400);
        let seats: Vec<&SeatSpec> = s.sections.iter().flat_map(|x| &x.rows).flat_map(|r| &r.seats).collect();
        let mut tiers: Vec<i16> = seats.iter().map(|x| x.tier).collect();
        tiers.sort();
        tiers.dedup();
        assert_eq!(tiers, vec![1, 2, 3, 4, 5]);
        assert!(seats.iter().any(|x| x.accessible));
        assert!(seats.iter().any(|x| x.obstructed));
        assert!(seats.iter().filter(|x| x.accessible || x.obstructed).count() < 5_000);
    }

    #[test]
    fn row_labels_run_past_z() {
        assert_eq!(row_label(0), "A");
        assert_eq!(row_label(25), "Z");
        assert_eq!(row_label(26), "AA");
    }
}
