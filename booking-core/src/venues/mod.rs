//! Venues and their seating charts: the static geometry a seat map is drawn
//! from and best-available searches over. A chart never changes once written,
//! so each process loads it once and keeps it.

pub mod cache;
pub mod chart;
pub mod import;
pub mod store;

pub use cache::SeatMaps;
pub use chart::{ChartSeat, Row, Seat, Section, VenueMap, VenueSummary};
pub use import::{ChartSpec, ImportError, RowSpec, SeatSpec, SectionSpec};
