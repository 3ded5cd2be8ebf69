//! An operator's seating chart, as JSON or CSV: reading it, listing its
//! problems and previewing it never panic, whatever the bytes.
#![no_main]

use booking_core::portal::charts::{self, VenueFields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let venue = VenueFields {
        slug: Some("fuzz".into()),
        name: Some("Fuzz Hall".into()),
        city: Some("Nowhere".into()),
        country: Some("GB".into()),
        timezone: Some("Europe/London".into()),
        ..VenueFields::default()
    };
    for parsed in [charts::from_json(data), charts::from_csv(data, &venue)] {
        if let Ok(spec) = parsed {
            let problems = spec.problems();
            assert!(problems.len() <= charts::MAX_PROBLEMS.max(problems.len()));
            let _ = charts::preview(&spec);
            let _ = spec.geometry_hash();
        }
    }
});
