//! The text of a finite double: its shortest digits that read back as the same double,
//! from `zmij`, laid out as Rust's `{:?}` lays them out (plain from 1e-4 up to 1e16,
//! with an exponent outside: `0.0001`, `1e-5`, `1e16`, `1.5`, `100.0`).
//!
//! The scan measures every document's JSON, and `{:?}` through `core::fmt` took 9% of
//! the scan of a shop's documents (grisu and the formatter's machinery); `zmij` finds
//! the same shortest digits about four times faster. Where two shortest texts are as
//! close to the double (`244600618285743.625`), `zmij` takes the even last digit, as
//! Python's `repr` and so pymongo's `json_util` do (`.62`), where `{:?}` rounds up:
//! the lengths are the same, so indexes measured with `{:?}` stay right.

/// Room for the longest text (`-2.2250738585072014e-308` is 24 bytes).
pub const MAX_LEN: usize = 32;

/// Writes finite `f` into `out`; returns its length.
pub fn write(f: f64, out: &mut [u8; MAX_LEN]) -> usize {
    cents(f, out).unwrap_or_else(|| shortest(f, out))
}

/// Hundredths beyond which [`cents`] leaves a double to [`shortest`]: decimals of at
/// most 15 significant digits read back as distinct doubles (`f64::DIGITS`), so below
/// this the whole number of hundredths that reads back as `f` is its shortest text.
const CENTS_LIMIT: f64 = 1e15;

/// `f` when it is a whole number of hundredths (prices and amounts, most doubles in
/// documents), written from that number's digits without the search for the shortest
/// ones (which took 13% of describing bench/make-many-docs.py's order documents).
fn cents(f: f64, out: &mut [u8; MAX_LEN]) -> Option<usize> {
    let scaled = f * 100.0;
    if !scaled.is_finite() || scaled.abs() >= CENTS_LIMIT {
        return None;
    }
    // Rounded to the nearest (a cast truncates, inline; `round` is a libm call).
    let n = (scaled + scaled.signum() * 0.5) as i64;
    if n == 0 || n as f64 / 100.0 != f {
        return None;
    }
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n.unsigned_abs()).as_bytes();
    // At least one digit before the point and two after it: 5 hundredths is 0.05.
    let padded = digits.len().max(3);
    let mut len = 0;
    if n < 0 {
        out[0] = b'-';
        len = 1;
    }
    let whole = padded - 2;
    out[len..len + padded].fill(b'0');
    out[len + padded - digits.len()..len + padded].copy_from_slice(digits);
    out.copy_within(len + whole..len + padded, len + whole + 1);
    out[len + whole] = b'.';
    len += padded + 1;
    // Trailing zeros go, but one digit stays after the point (1.5, 100.0).
    while out[len - 1] == b'0' && out[len - 2] != b'.' {
        len -= 1;
    }
    Some(len)
}

/// Writes finite `f` into `out` from its shortest digits; returns its length.
fn shortest(f: f64, out: &mut [u8; MAX_LEN]) -> usize {
    let mut digits = zmij::Buffer::new();
    let text = digits.format_finite(f).as_bytes();
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        out[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    let (sign, rest) = text.split_at(usize::from(text.first() == Some(&b'-')));
    match rest.strip_prefix(b"0.0000") {
        // zmij writes these plainly (`0.0000123`): give them the exponent.
        Some([first, more @ ..]) if (1e-5..1e-4).contains(&f.abs()) => {
            push(sign);
            push(&[*first]);
            if !more.is_empty() {
                push(b".");
                push(more);
            }
            push(b"e-5");
        }
        // The same layout but for the sign of a positive exponent (`1e+16`).
        _ => {
            for &b in text.iter().filter(|&&b| b != b'+') {
                push(&[b]);
            }
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(f: f64) -> String {
        let mut out = [0; MAX_LEN];
        let n = write(f, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn laid_out_as_rust_writes_doubles_with_pythons_digits() {
        for (f, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-5"),
            (-1.25e-5, "-1.25e-5"),
            (9.999999999999999e-5, "9.999999999999999e-5"),
            (1e16, "1e16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.2345678901234568e17, "1.2345678901234568e17"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e308"),
            (-2.2250738585072014e-308, "-2.2250738585072014e-308"),
            // Exactly ...743.625: Python's repr(244600618285743.625) is ...743.62.
            (244600618285743.0 + 0.625, "244600618285743.62"),
            (0.30000000000000004, "0.30000000000000004"),
        ] {
            assert_eq!(text(f), want, "{f:?}");
        }
    }

    #[test]
    fn cents_take_what_they_can_write() {
        let cents = |f: f64| {
            let mut out = [0; MAX_LEN];
            cents(f, &mut out).map(|n| String::from_utf8(out[..n].to_vec()).unwrap())
        };
        for (f, want) in [
            (0.05, "0.05"),
            (-12.3, "-12.3"),
            (100.0, "100.0"),
            (7.0, "7.0"),
        ] {
            assert_eq!(cents(f).as_deref(), Some(want));
        }
        assert_eq!(cents(-99999999999.99).as_deref(), Some("-99999999999.99"));
        for f in [0.0, -0.0, 0.001, 1e-5, 1.005, 1e13, 0.1 + 0.2] {
            assert_eq!(cents(f), None, "{f}");
        }
    }

    /// Reads back as the same double, as long as `{:?}` and with its layout: at most the
    /// last digit differs (a tie between two shortest texts).
    fn agrees_with_debug(f: f64) {
        let (ours, debug) = (text(f), format!("{f:?}"));
        assert_eq!(
            ours.parse::<f64>().unwrap().to_bits(),
            f.to_bits(),
            "{ours}"
        );
        assert_eq!(ours.len(), debug.len(), "{ours} {debug}");
        let differ: Vec<usize> = (0..ours.len())
            .filter(|&i| ours.as_bytes()[i] != debug.as_bytes()[i])
            .collect();
        let last_digit = debug.find('e').unwrap_or(debug.len()) - 1;
        assert!(
            differ.is_empty() || differ == [last_digit],
            "{ours} {debug}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn every_double_as_debug_writes_it(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            if f.is_finite() {
                agrees_with_debug(f);
            }
        }

        /// Whole numbers of hundredths written from their digits are the shortest
        /// digits, as zmij finds them.
        #[test]
        fn cents_are_the_shortest_digits(n in -1_000_000_000_000_000i64..1_000_000_000_000_000, small in -100_000i64..100_000) {
            for n in [n, small] {
                let f = n as f64 / 100.0;
                let (mut fast, mut slow) = ([0; MAX_LEN], [0; MAX_LEN]);
                if let Some(len) = cents(f, &mut fast) {
                    let want = shortest(f, &mut slow);
                    prop_assert_eq!(&fast[..len], &slow[..want], "{}", n);
                }
                agrees_with_debug(f);
            }
        }

        #[test]
        fn decimals_and_the_plain_exponent_window(n in 0u64..10_000_000, scale in 0usize..8) {
            let f = n as f64 / [1.0, 3.0, 100.0, 1e6, 1e10, 1e11, 1e-9, 7e12][scale];
            agrees_with_debug(f);
            agrees_with_debug(-f);
        }
    }
}
