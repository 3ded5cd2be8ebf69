//! Seating charts as operators send them: JSON (`ChartSpec`) or CSV (one
//! line per seat, venue fields alongside), parsed into a `ChartSpec` with
//! every problem tied to its line, and the preview a page draws before
//! anything is stored.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::venues::import::{ChartProblem, ChartSpec, Point, RowSpec, SeatSpec, SectionSpec};

/// The CSV header, in this order.
pub const CSV_HEADER: [&str; 9] = [
    "section_code",
    "section_name",
    "row",
    "seat",
    "x",
    "y",
    "tier",
    "accessible",
    "obstructed",
];

/// A chart's problems are listed up to this many (a broken file of 50,000
/// lines should not answer with 50,000 of them).
pub const MAX_PROBLEMS: usize = 200;

/// The venue's own fields for a CSV chart (the CSV holds only seats).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VenueFields {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. `GB`.
    pub country: Option<String>,
    /// IANA zone, e.g. `Europe/London`.
    pub timezone: Option<String>,
    /// The stage or centre of play (default 0, 0).
    pub focal_x: Option<f32>,
    pub focal_y: Option<f32>,
}

fn problem(line: Option<usize>, path: impl Into<String>, message: impl Into<String>) -> ChartProblem {
    ChartProblem {
        line,
        path: path.into(),
        message: message.into(),
    }
}

/// A JSON chart; a syntax or shape error is one problem with its line.
pub fn from_json(body: &[u8]) -> Result<ChartSpec, Vec<ChartProblem>> {
    serde_json::from_slice::<ChartSpec>(body).map_err(|e| {
        let line = Some(e.line()).filter(|l| *l > 0);
        vec![problem(line, "", e.to_string())]
    })
}

/// Splits one CSV line into fields; double quotes may wrap a field (with
/// `""` for a quote inside), so names may hold commas.
fn fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut field).trim().to_owned());
                at_start = true;
            }
            c => {
                if !(at_start && c == ' ') {
                    at_start = false;
                }
                field.push(c);
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed");
    }
    out.push(field.trim().to_owned());
    Ok(out)
}

fn flag(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "n" => Some(false),
        "1" | "true" | "yes" | "y" => Some(true),
        _ => None,
    }
}

/// Where each seat of the built chart came from: (section, row, seat) to line.
type Lines = HashMap<(usize, usize, usize), usize>;

/// A CSV chart: a header line, then one line per seat. Sections and rows
/// come in the order they first appear; seats are ordered by number within
/// their row. Every problem names its line (the venue's fields name theirs).
pub fn from_csv(body: &[u8], venue: &VenueFields) -> Result<ChartSpec, Vec<ChartProblem>> {
    let mut problems = Vec::new();
    let text = match std::str::from_utf8(body) {
        Ok(t) => t.strip_prefix('\u{feff}').unwrap_or(t),
        Err(e) => {
            let line = body[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
            return Err(vec![problem(Some(line), "", "the file is not UTF-8 text")]);
        }
    };
    let need = |field: &str, v: &Option<String>, problems: &mut Vec<ChartProblem>| -> String {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => s.to_owned(),
            None => {
                problems.push(problem(None, field, "missing: give it as a query parameter"));
                String::new()
            }
        }
    };
    let slug = need("slug", &venue.slug, &mut problems);
    let name = need("name", &venue.name, &mut problems);
    let city = need("city", &venue.city, &mut problems);
    let country = need("country", &venue.country, &mut problems);
    let timezone = need("timezone", &venue.timezone, &mut problems);

    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header = lines.by_ref().find(|(_, l)| !l.trim().is_empty());
    match header {
        Some((n, h)) => {
            let got: Vec<String> = fields(h).unwrap_or_default().iter().map(|f| f.to_lowercase()).collect();
            if got != CSV_HEADER {
                problems.push(problem(
                    Some(n),
                    "header",
                    format!("the first line must be exactly: {}", CSV_HEADER.join(",")),
                ));
                return Err(problems);
            }
        }
        None => {
            problems.push(problem(None, "", "the file is empty"));
            return Err(problems);
        }
    }

    // Sections and rows by first appearance, seats with their line.
    struct Sec {
        code: String,
        name: String,
        rows: Vec<(String, Vec<(usize, SeatSpec)>)>,
    }
    let mut sections: Vec<Sec> = Vec::new();
    let mut section_at: HashMap<String, usize> = HashMap::new();
    for (n, raw) in lines {
        if raw.trim().is_empty() {
            continue;
        }
        if problems.len() >= MAX_PROBLEMS {
            break;
        }
        let f = match fields(raw) {
            Ok(f) => f,
            Err(why) => {
                problems.push(problem(Some(n), "", why));
                continue;
            }
        };
        if f.len() != CSV_HEADER.len() {
            problems.push(problem(
                Some(n),
                "",
                format!("{} fields, the header has {}", f.len(), CSV_HEADER.len()),
            ));
            continue;
        }
        let mut ok = true;
        let mut bad = |col: &str, msg: &str| {
            problems.push(problem(Some(n), col, msg));
            ok = false;
        };
        if f[0].is_empty() {
            bad("section_code", "must not be empty");
        }
        if f[2].is_empty() {
            bad("row", "must not be empty");
        }
        let seat = f[3].parse::<i32>().ok();
        if seat.is_none() {
            bad("seat", "must be a whole number");
        }
        let x = f[4].parse::<f32>().ok().filter(|v| v.is_finite());
        if x.is_none() {
            bad("x", "must be a number");
        }
        let y = f[5].parse::<f32>().ok().filter(|v| v.is_finite());
        if y.is_none() {
            bad("y", "must be a number");
        }
        let tier = f[6].parse::<i16>().ok();
        if tier.is_none() {
            bad("tier", "must be a whole number 1-9");
        }
        let accessible = flag(&f[7]);
        if accessible.is_none() {
            bad("accessible", "must be true/false, yes/no, 1/0 or empty");
        }
        let obstructed = flag(&f[8]);
        if obstructed.is_none() {
            bad("obstructed", "must be true/false, yes/no, 1/0 or empty");
        }
        let (Some(seat), Some(x), Some(y), Some(tier), Some(accessible), Some(obstructed), true) =
            (seat, x, y, tier, accessible, obstructed, ok)
        else {
            continue;
        };
        let si = *section_at.entry(f[0].clone()).or_insert_with(|| {
            sections.push(Sec {
                code: f[0].clone(),
                name: if f[1].is_empty() { f[0].clone() } else { f[1].clone() },
                rows: Vec::new(),
            });
            sections.len() - 1
        });
        let sec = &mut sections[si];
        let ri = match sec.rows.iter().position(|(label, _)| *label == f[2]) {
            Some(i) => i,
            None => {
                sec.rows.push((f[2].clone(), Vec::new()));
                sec.rows.len() - 1
            }
        };
        sec.rows[ri].1.push((
            n,
            SeatSpec {
                number: seat,
                label: None,
                x,
                y,
                tier,
                accessible,
                obstructed,
            },
        ));
    }
    let mut where_from: Lines = HashMap::new();
    let spec = ChartSpec {
        slug,
        name,
        city,
        country,
        timezone,
        focal: Point {
            x: venue.focal_x.unwrap_or(0.0),
            y: venue.focal_y.unwrap_or(0.0),
        },
        sections: sections
            .into_iter()
            .enumerate()
            .map(|(si, s)| SectionSpec {
                code: s.code,
                name: s.name,
                rows: s
                    .rows
                    .into_iter()
                    .enumerate()
                    .map(|(ri, (label, mut seats))| {
                        // Stable: of two seats with one number the later line
                        // is the one reported.
                        seats.sort_by_key(|(_, s)| s.number);
                        RowSpec {
                            label,
                            seats: seats
                                .into_iter()
                                .enumerate()
                                .map(|(ki, (line, seat))| {
                                    where_from.insert((si, ri, ki), line);
                                    seat
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect(),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let found = spec.problems();
    if found.is_empty() {
        Ok(spec)
    } else {
        Err(found
            .into_iter()
            .take(MAX_PROBLEMS)
            .map(|p| locate(p, &where_from))
            .collect())
    }
}

/// Reads `sections[i].rows[j].seats[k]` (as far as it goes) from a path.
fn indices(path: &str) -> Vec<usize> {
    path.split('[')
        .skip(1)
        .filter_map(|part| part.split(']').next()?.parse().ok())
        .collect()
}

/// Gives a chart problem about built seats the CSV line it came from (a
/// section's or row's problem: its first line), and the CSV column.
fn locate(mut p: ChartProblem, lines: &Lines) -> ChartProblem {
    let idx = indices(&p.path);
    let line = match idx.as_slice() {
        [s, r, k, ..] => lines.get(&(*s, *r, *k)).copied(),
        [s, r] => lines.get(&(*s, *r, 0)).copied(),
        [s] => lines.get(&(*s, 0, 0)).copied(),
        _ => None,
    };
    if line.is_some() {
        p.line = line;
        let leaf = p.path.rsplit('.').next().unwrap_or_default().to_owned();
        p.path = match leaf.as_str() {
            "number" => "seat".into(),
            "tier" => "tier".into(),
            "code" => "section_code".into(),
            "label" if idx.len() == 2 => "row".into(),
            _ if idx.len() >= 3 => "x,y".into(),
            _ => p.path,
        };
    }
    p
}

/// What a page draws before an import: counts, sections, bounds and every
/// seat as `[x, y, tier, flags]` (flags: 1 accessible, 2 obstructed).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChartPreview {
    pub slug: String,
    pub name: String,
    pub city: String,
    pub country: String,
    pub timezone: String,
    pub focal: Point,
    pub seat_count: usize,
    pub sections: Vec<SectionPreview>,
    /// Seats per tier.
    pub tiers: Vec<TierCount>,
    pub bounds: Bounds,
    /// Always `["x", "y", "tier", "flags"]`: the order of each seat's values.
    pub seat_fields: [&'static str; 4],
    /// In seat-map order.
    #[schema(value_type = Vec<Vec<f64>>)]
    pub seats: Vec<(f32, f32, i16, u8)>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SectionPreview {
    pub code: String,
    pub name: String,
    pub rows: usize,
    pub seat_count: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TierCount {
    pub tier: i16,
    pub seats: usize,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Bounds {
    pub min_x: f32,
    pub min_y: f32,
    pub max_x: f32,
    pub max_y: f32,
}

pub fn preview(spec: &ChartSpec) -> ChartPreview {
    let mut seats = Vec::with_capacity(spec.seat_count());
    let mut tiers: BTreeMap<i16, usize> = BTreeMap::new();
    let mut bounds = Bounds {
        min_x: f32::INFINITY,
        min_y: f32::INFINITY,
        max_x: f32::NEG_INFINITY,
        max_y: f32::NEG_INFINITY,
    };
    for seat in spec.sections.iter().flat_map(|s| &s.rows).flat_map(|r| &r.seats) {
        let flags = u8::from(seat.accessible) | (u8::from(seat.obstructed) << 1);
        seats.push((seat.x, seat.y, seat.tier, flags));
        *tiers.entry(seat.tier).or_default() += 1;
        bounds.min_x = bounds.min_x.min(seat.x);
        bounds.min_y = bounds.min_y.min(seat.y);
        bounds.max_x = bounds.max_x.max(seat.x);
        bounds.max_y = bounds.max_y.max(seat.y);
    }
    if seats.is_empty() {
        bounds = Bounds {
            min_x: 0.0,
            min_y: 0.0,
            max_x: 0.0,
            max_y: 0.0,
        };
    }
    ChartPreview {
        slug: spec.slug.clone(),
        name: spec.name.clone(),
        city: spec.city.clone(),
        country: spec.country.clone(),
        timezone: spec.timezone.clone(),
        focal: spec.focal,
        seat_count: seats.len(),
        sections: spec
            .sections
            .iter()
            .map(|s| SectionPreview {
                code: s.code.clone(),
                name: s.name.clone(),
                rows: s.rows.len(),
                seat_count: s.rows.iter().map(|r| r.seats.len()).sum(),
            })
            .collect(),
        tiers: tiers
            .into_iter()
            .map(|(tier, seats)| TierCount { tier, seats })
            .collect(),
        bounds,
        seat_fields: ["x", "y", "tier", "flags"],
        seats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue() -> VenueFields {
        VenueFields {
            slug: Some("csv-hall".into()),
            name: Some("CSV Hall".into()),
            city: Some("Leeds".into()),
            country: Some("GB".into()),
            timezone: Some("Europe/London".into()),
            focal_x: Some(0.0),
            focal_y: Some(-5.0),
        }
    }

    #[test]
    fn a_csv_chart_groups_seats_by_section_and_row() {
        let csv = "section_code,section_name,row,seat,x,y,tier,accessible,obstructed\n\
                   A,\"Stalls, left\",1,2,1,0,1,false,false\n\
                   A,\"Stalls, left\",1,1,0,0,1,yes,\n\
                   A,\"Stalls, left\",2,1,0,1,2,0,1\n\
                   B,Circle,1,1,5,5,3,,\n";
        let spec = from_csv(csv.as_bytes(), &venue()).unwrap();
        assert_eq!(spec.sections.len(), 2);
        assert_eq!(spec.sections[0].name, "Stalls, left");
        assert_eq!(spec.sections[0].rows[0].seats[0].number, 1);
        assert!(spec.sections[0].rows[0].seats[0].accessible);
        assert!(spec.sections[0].rows[1].seats[0].obstructed);
        let p = preview(&spec);
        assert_eq!(p.seat_count, 4);
        assert_eq!(p.bounds.max_x, 5.0);
        assert_eq!(p.seats[0], (0.0, 0.0, 1, 1));
    }

    #[test]
    fn csv_problems_carry_their_lines() {
        let csv = "section_code,section_name,row,seat,x,y,tier,accessible,obstructed\n\
                   A,A,1,1,0,0,1,,\n\
                   A,A,1,x,0,0,1,,\n\
                   A,A,1,2,0,0,12,,\n\
                   A,A,1,1,3,0,1,,\n";
        let problems = from_csv(csv.as_bytes(), &venue()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].line, problems[0].path.as_str()), (Some(3), "seat"));
        let csv = csv.replace("A,A,1,x,0,0,1,,\n", "");
        let problems = from_csv(csv.as_bytes(), &venue()).unwrap_err();
        let found: Vec<(Option<usize>, &str)> = problems.iter().map(|p| (p.line, p.path.as_str())).collect();
        assert!(found.contains(&(Some(4), "seat")), "{found:?}");
        assert!(found.contains(&(Some(3), "tier")), "{found:?}");
    }
}
