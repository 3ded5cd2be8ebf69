//! A ticket's code drawn as a QR symbol (SVG for pages, PNG for wallets
//! and e-mail), and the one-page PDF ticket. PNG and PDF are written here
//! by hand, from the QR's modules: both formats need only a few dozen lines
//! for black squares and a little text, which spares an image library.

use std::io::Write;

use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

#[derive(Debug, thiserror::Error)]
#[error("the code does not fit in a QR symbol: {0}")]
pub struct RenderError(String);

/// Error correction level M: survives a cracked phone screen without
/// growing too dense.
fn symbol(code: &str) -> Result<QrCode, RenderError> {
    QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).map_err(|e| RenderError(e.to_string()))
}

/// Quiet zone around the symbol, in modules (the standard asks for 4).
const QUIET: usize = 4;

/// The QR symbol for `code` as a standalone SVG document.
pub fn svg(code: &str) -> Result<String, RenderError> {
    Ok(symbol(code)?
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// Dark modules as (x, y), and the symbol's width in modules.
fn modules(code: &str) -> Result<(Vec<(usize, usize)>, usize), RenderError> {
    let qr = symbol(code)?;
    let width = qr.width();
    let dark = qr
        .to_colors()
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Color::Dark)
        .map(|(i, _)| (i % width, i / width))
        .collect();
    Ok((dark, width))
}

/// The QR symbol as a 1-bit greyscale PNG, `scale` pixels per module.
pub fn png(code: &str, scale: usize) -> Result<Vec<u8>, RenderError> {
    let (dark, width) = modules(code)?;
    let side = (width + 2 * QUIET) * scale;
    let row_bytes = side.div_ceil(8);
    // 1 = white in greyscale; start white, clear the dark modules' bits.
    let mut rows = vec![vec![0xffu8; row_bytes]; side];
    for (mx, my) in dark {
        for py in 0..scale {
            let y = (my + QUIET) * scale + py;
            for px in 0..scale {
                let x = (mx + QUIET) * scale + px;
                rows[y][x / 8] &= !(0x80 >> (x % 8));
            }
        }
    }
    let mut raw = Vec::with_capacity(side * (row_bytes + 1));
    for row in rows {
        raw.push(0); // filter: none
        raw.extend_from_slice(&row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&raw).map_err(|e| RenderError(e.to_string()))?;
    let idat = z.finish().map_err(|e| RenderError(e.to_string()))?;

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(side as u32).to_be_bytes());
    ihdr.extend_from_slice(&(side as u32).to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // bit depth 1, greyscale, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr.as_slice()), (b"IDAT", &idat), (b"IEND", &[])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    Ok(out)
}

/// What the PDF ticket says besides its code.
pub struct TicketFace<'a> {
    pub title: &'a str,
    pub starts_at: &'a str,
    pub venue: &'a str,
    pub seat: &'a str,
    /// Its price, fees and taxes, as one line.
    pub price: &'a str,
    pub ticket_id: &'a str,
    pub holder: &'a str,
}

/// A one-page PDF (A6 portrait) with the ticket's text and its QR code.
pub fn pdf(code: &str, face: &TicketFace<'_>) -> Result<Vec<u8>, RenderError> {
    let (dark, width) = modules(code)?;
    // A6: 105 x 148 mm = 298 x 420 pt.
    let (page_w, page_h) = (298.0f64, 420.0f64);
    let qr_side = 200.0;
    let module = qr_side / (width + 2 * QUIET) as f64;
    let (qx, qy) = ((page_w - qr_side) / 2.0, 30.0);
    let mut content = String::new();
    content.push_str("0 g\n");
    for (mx, my) in dark {
        // PDF's y axis points up.
        let x = qx + (mx + QUIET) as f64 * module;
        let y = qy + qr_side - (my + QUIET + 1) as f64 * module;
        content.push_str(&format!("{x:.2} {y:.2} {module:.2} {module:.2} re\n"));
    }
    content.push_str("f\n");
    let lines = [
        (16.0, face.title),
        (11.0, face.starts_at),
        (11.0, face.venue),
        (13.0, face.seat),
        (9.0, face.price),
        (8.0, face.holder),
        (7.0, face.ticket_id),
    ];
    let mut y = page_h - 40.0;
    for (size, text) in lines {
        content.push_str(&format!("BT /F1 {size} Tf 20 {y:.1} Td ({}) Tj ET\n", pdf_text(text)));
        y -= size + 10.0;
    }
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_w} {page_h}] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        format!("<< /Length {} >>\nstream\n{content}endstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    Ok(out)
}

/// Text for a PDF string: printable ASCII, with PDF's specials escaped
/// (anything else becomes '?': the built-in fonts have no wider charset).
fn pdf_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '(' | ')' | '\\' => format!("\\{c}"),
            c if c.is_ascii_graphic() || c == ' ' => c.to_string(),
            _ => "?".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_a_well_formed_image_of_the_right_size() {
        let png = png("UT1.hello.world", 4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let side = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let width = symbol("UT1.hello.world").unwrap().width() as u32;
        assert_eq!(side, (width + 8) * 4);
        assert!(
            png.ends_with(&[0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]),
            "IEND with its fixed CRC"
        );
    }

    #[test]
    fn pdf_has_a_valid_cross_reference_table() {
        let face = TicketFace {
            title: "Aurora (live)",
            starts_at: "2026-12-01 20:00",
            venue: "Stadium",
            seat: "Section A, row 1, seat 3",
            price: "Price 30.00 USD",
            ticket_id: "t",
            holder: "alice",
        };
        let pdf = pdf("UT1.x.y", &face).unwrap();
        let find = |needle: &[u8], from: usize| {
            pdf[from..]
                .windows(needle.len())
                .position(|w| w == needle)
                .map(|p| p + from)
        };
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert!(find(b"(Aurora \\(live\\)) Tj", 0).is_some());
        let at = find(b"startxref\n", 0).unwrap() + b"startxref\n".len();
        let end = find(b"\n", at).unwrap();
        let startxref: usize = std::str::from_utf8(&pdf[at..end]).unwrap().parse().unwrap();
        assert!(pdf[startxref..].starts_with(b"xref"));
        // Every object's offset points at its header.
        let table = std::str::from_utf8(&pdf[startxref..at]).unwrap();
        for (i, line) in table.lines().skip(3).take(5).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(
                pdf[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
    }
}
