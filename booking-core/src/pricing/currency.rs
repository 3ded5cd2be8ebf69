//! ISO 4217 currencies and their minor units. Every amount in Usher is an
//! integer count of the currency's minor unit (cents for USD, yen for JPY,
//! fils for KWD), so no amount is ever rounded by a currency conversion;
//! the exponent only says how to show one (`format`).

/// The active ISO 4217 codes (lower case, as stored and as the providers
/// take them) whose minor unit is not the hundredth.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg", "rwf", "ugx", "uyi", "vnd", "vuv", "xaf", "xof",
    "xpf",
];
const THREE_DECIMAL: &[&str] = &["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"];
/// The other active codes: two decimals.
const TWO_DECIMAL: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt", "bgn", "bmd", "bnd",
    "bob", "brl", "bsd", "btn", "bwp", "byn", "bzd", "cad", "cdf", "chf", "cny", "cop", "crc", "cup", "cve", "czk",
    "dkk", "dop", "dzd", "egp", "ern", "etb", "eur", "fjd", "fkp", "gbp", "gel", "ghs", "gip", "gmd", "gtq", "gyd",
    "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "irr", "jmd", "kes", "kgs", "khr", "kpw", "kyd", "kzt", "lak",
    "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mru", "mur", "mvr", "mwk", "mxn",
    "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "pab", "pen", "pgk", "php", "pkr", "pln", "qar", "ron",
    "rsd", "rub", "sar", "sbd", "scr", "sdg", "sek", "sgd", "shp", "sle", "sos", "srd", "ssp", "stn", "svc", "syp",
    "szl", "thb", "tjs", "tmt", "top", "try", "ttd", "twd", "tzs", "uah", "usd", "uyu", "uzs", "ves", "wst", "xcd",
    "yer", "zar", "zmw", "zwl",
];

/// How many decimals the currency's minor unit has; None for a code that
/// is not an active ISO 4217 currency. Takes either case.
pub fn minor_units(code: &str) -> Option<u8> {
    let code = code.to_ascii_lowercase();
    let code = code.as_str();
    if ZERO_DECIMAL.contains(&code) {
        Some(0)
    } else if THREE_DECIMAL.contains(&code) {
        Some(3)
    } else if TWO_DECIMAL.contains(&code) {
        Some(2)
    } else {
        None
    }
}

/// An amount in minor units as a decimal figure (`1234` USD -> `12.34`,
/// JPY -> `1234`, KWD -> `1.234`).
pub fn format(minor: i64, code: &str) -> String {
    let digits = u32::from(minor_units(code).unwrap_or(2));
    if digits == 0 {
        return minor.to_string();
    }
    let unit = 10_i64.pow(digits);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let unit = unit.unsigned_abs();
    format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = digits as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(minor_units("USD"), Some(2));
        assert_eq!(minor_units("jpy"), Some(0));
        assert_eq!(minor_units("KWD"), Some(3));
        assert_eq!(minor_units("xyz"), None);
        assert_eq!(minor_units(""), None);
        assert_eq!(format(1234, "usd"), "12.34");
        assert_eq!(format(1234, "jpy"), "1234");
        assert_eq!(format(1234, "kwd"), "1.234");
        assert_eq!(format(5, "kwd"), "0.005");
        assert_eq!(format(-5, "eur"), "-0.05");
    }
}
