//! `VenueMap`: one venue's seating chart in memory, in seat-map order (the
//! order of the availability bitmap), with the row structure that adjacency
//! and best-available need, and the public seat-map document pre-rendered.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;

use serde::Serialize;

use crate::ids::{SeatId, VenueId};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VenueSummary {
    pub id: VenueId,
    pub slug: String,
    pub name: String,
    pub city: String,
    pub country: String,
    pub timezone: String,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub code: String,
    pub name: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub row_no: i32,
    /// Seat-map indexes of this row's seats, in seat-number order.
    pub seats: Range<u32>,
}

#[derive(Debug, Clone)]
pub struct Seat {
    pub id: SeatId,
    pub section: u32,
    pub row: u32,
    pub seat_no: i32,
    pub label: String,
    pub x: f32,
    pub y: f32,
    pub tier: i16,
    pub accessible: bool,
    pub obstructed: bool,
}

#[derive(Debug)]
pub struct VenueMap {
    pub venue: VenueSummary,
    pub focal: (f32, f32),
    /// Content hash of the geometry, used as the seat map's ETag.
    pub etag: String,
    pub sections: Vec<Section>,
    /// Every seat; a seat's position here is its seat-map index.
    pub seats: Vec<Seat>,
    by_id: HashMap<SeatId, u32>,
    /// The public seat-map document, rendered once, plain and gzipped.
    pub document: Vec<u8>,
    pub document_gzip: Vec<u8>,
}

/// A seat as read from storage, before the map gives it a row index.
#[derive(Debug, Clone)]
pub struct ChartSeat {
    pub id: SeatId,
    /// Index into the section list given alongside.
    pub section: u32,
    pub row_no: i32,
    pub row_label: String,
    pub seat_no: i32,
    pub label: String,
    pub x: f32,
    pub y: f32,
    pub tier: i16,
    pub accessible: bool,
    pub obstructed: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("venue {venue}: seat {seat_idx} breaks seat-map order (seats of one row must be contiguous, by seat number)")]
pub struct ChartOrderError {
    pub venue: VenueId,
    pub seat_idx: usize,
}

/// Flags in the seat-map document, one bit each.
pub const FLAG_ACCESSIBLE: u8 = 1;
pub const FLAG_OBSTRUCTED: u8 = 2;

impl VenueMap {
    /// Builds the map from seats already in seat-map order: grouped by
    /// section and row, by seat number within a row.
    pub fn build(
        venue: VenueSummary,
        focal: (f32, f32),
        etag: String,
        section_names: Vec<(String, String)>,
        seats: Vec<ChartSeat>,
    ) -> Result<VenueMap, ChartOrderError> {
        let venue_id = venue.id;
        let order_error = |i: usize| ChartOrderError {
            venue: venue_id,
            seat_idx: i,
        };
        let mut sections: Vec<Section> = section_names
            .into_iter()
            .map(|(code, name)| Section {
                code,
                name,
                rows: Vec::new(),
            })
            .collect();
        let mut flat: Vec<Seat> = Vec::with_capacity(seats.len());
        let mut by_id = HashMap::with_capacity(seats.len());
        let mut current: Option<(u32, i32)> = None;
        for (i, seat) in seats.into_iter().enumerate() {
            let idx = i as u32;
            let section = sections.get_mut(seat.section as usize).ok_or_else(|| order_error(i))?;
            if current == Some((seat.section, seat.row_no)) {
                let prev_no = flat.last().map(|s| s.seat_no).ok_or_else(|| order_error(i))?;
                let row = section.rows.last_mut().ok_or_else(|| order_error(i))?;
                if prev_no >= seat.seat_no {
                    return Err(order_error(i));
                }
                row.seats.end = idx + 1;
            } else {
                if section.rows.iter().any(|r| r.row_no == seat.row_no) {
                    return Err(order_error(i));
                }
                section.rows.push(Row {
                    label: seat.row_label,
                    row_no: seat.row_no,
                    seats: idx..idx + 1,
                });
                current = Some((seat.section, seat.row_no));
            }
            by_id.insert(seat.id, idx);
            flat.push(Seat {
                id: seat.id,
                section: seat.section,
                row: (section.rows.len() - 1) as u32,
                seat_no: seat.seat_no,
                label: seat.label,
                x: seat.x,
                y: seat.y,
                tier: seat.tier,
                accessible: seat.accessible,
                obstructed: seat.obstructed,
            });
        }
        let mut map = VenueMap {
            venue,
            focal,
            etag,
            sections,
            seats: flat,
            by_id,
            document: Vec::new(),
            document_gzip: Vec::new(),
        };
        map.document = map.render();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail.
        gz.write_all(&map.document).expect("gzip into memory");
        map.document_gzip = gz.finish().expect("gzip into memory");
        Ok(map)
    }

    pub fn index_of(&self, seat: SeatId) -> Option<u32> {
        self.by_id.get(&seat).copied()
    }

    pub fn seat(&self, idx: u32) -> &Seat {
        &self.seats[idx as usize]
    }

    pub fn section_index(&self, code: &str) -> Option<u32> {
        self.sections.iter().position(|s| s.code == code).map(|i| i as u32)
    }

    pub fn row_of(&self, seat: &Seat) -> &Row {
        &self.sections[seat.section as usize].rows[seat.row as usize]
    }

    pub fn tiers(&self) -> Vec<i16> {
        let mut tiers: Vec<i16> = self.seats.iter().map(|s| s.tier).collect();
        tiers.sort_unstable();
        tiers.dedup();
        tiers
    }

    /// The public document: sections, rows and seats in seat-map order, each
    /// seat as `[id, label, x, y, tier, flags]` to keep 50,000 seats small.
    fn render(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Doc<'a> {
            venue: &'a VenueSummary,
            focal: Point,
            seat_count: usize,
            tiers: Vec<i16>,
            seat_format: &'static str,
            sections: Vec<SectionDoc<'a>>,
        }
        #[derive(Serialize)]
        struct Point {
            x: f32,
            y: f32,
        }
        #[derive(Serialize)]
        struct SectionDoc<'a> {
            code: &'a str,
            name: &'a str,
            rows: Vec<RowDoc<'a>>,
        }
        #[derive(Serialize)]
        struct RowDoc<'a> {
            label: &'a str,
            seats: Vec<(SeatId, &'a str, f32, f32, i16, u8)>,
        }
        let doc = Doc {
            venue: &self.venue,
            focal: Point {
                x: self.focal.0,
                y: self.focal.1,
            },
            seat_count: self.seats.len(),
            tiers: self.tiers(),
            seat_format: "[id, label, x, y, tier, flags]; flags: 1 accessible, 2 obstructed view; \
                          the n-th seat listed (from 0) is index n of the availability bitmap",
            sections: self
                .sections
                .iter()
                .map(|s| SectionDoc {
                    code: &s.code,
                    name: &s.name,
                    rows: s
                        .rows
                        .iter()
                        .map(|r| RowDoc {
                            label: &r.label,
                            seats: r
                                .seats
                                .clone()
                                .map(|i| {
                                    let seat = &self.seats[i as usize];
                                    let flags = if seat.accessible { FLAG_ACCESSIBLE } else { 0 }
                                        | if seat.obstructed { FLAG_OBSTRUCTED } else { 0 };
                                    (
                                        seat.id,
                                        seat.label.as_str(),
                                        round1(seat.x),
                                        round1(seat.y),
                                        seat.tier,
                                        flags,
                                    )
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        };
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_vec(&doc).expect("render seat map")
    }
}

fn round1(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}
