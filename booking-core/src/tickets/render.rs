//! A ticket's code drawn as a QR symbol: SVG for pages and wallets.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

#[derive(Debug, thiserror::Error)]
#[error("the code does not fit in a QR symbol: {0}")]
pub struct RenderError(String);

/// The QR symbol for `code` as a standalone SVG document. Error correction
/// level M: survives a cracked phone screen without growing too dense.
pub fn svg(code: &str) -> Result<String, RenderError> {
    let qr =
        QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).map_err(|e| RenderError(e.to_string()))?;
    Ok(qr
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}
