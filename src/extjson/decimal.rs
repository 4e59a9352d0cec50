//! The text of a BSON Decimal128 (the string of `$numberDecimal`), written from its
//! IEEE 754-2008 layout (binary integer decimal) into a buffer on the stack. The scan
//! measures every document's JSON, and the `bson` crate's formatter allocates and
//! walks bits one at a time: in a shop's orders, with an amount each, it was 5% of a
//! scan of documents.

/// Room for the longest text: a sign, 34 digits, a point, `E`, a sign and 4 digits.
pub const MAX_LEN: usize = 48;

/// The largest coefficient a finite value holds; larger ones read as zero.
const MAX_COEFFICIENT: u128 = 10u128.pow(34) - 1;
/// What is subtracted from the stored exponent.
const EXPONENT_BIAS: i32 = 6176;

/// Writes the decimal whose 16 bytes (little-endian, as BSON stores them) are `bytes`
/// into `out` as MongoDB writes it (`1.50`, `-0`, `1.2E+7`, `NaN`, `-Infinity`);
/// returns its length.
pub fn write(bytes: [u8; 16], out: &mut [u8; MAX_LEN]) -> usize {
    let x = u128::from_le_bytes(bytes);
    let negative = x >> 127 == 1;
    let mut text = Text { out, len: 0 };
    if (x >> 123) & 0xF == 0xF {
        // Infinity, or NaN (never signed, never signalling, in MongoDB's text).
        match (x >> 122) & 1 == 1 {
            true => text.push(b"NaN"),
            false if negative => text.push(b"-Infinity"),
            false => text.push(b"Infinity"),
        }
        return text.len;
    }
    let (raw_exponent, coefficient) = match (x >> 125) & 3 == 3 {
        // The coefficient's implied leading bits `100` put it past the largest one.
        true => ((x >> 111) & 0x3FFF, 0),
        false => ((x >> 113) & 0x3FFF, x & ((1u128 << 113) - 1)),
    };
    let coefficient = match coefficient > MAX_COEFFICIENT {
        true => 0,
        false => coefficient,
    };
    let exponent = raw_exponent as i32 - EXPONENT_BIAS;
    let mut digits = [0u8; 34];
    let n = decimal_digits(coefficient, &mut digits);
    let digits = &digits[34 - n..];
    let adjusted = exponent + n as i32 - 1;
    if negative {
        text.push(b"-");
    }
    if exponent <= 0 && adjusted >= -6 {
        // Plain notation.
        let after_point = (-exponent) as usize;
        if after_point == 0 {
            text.push(digits);
        } else if after_point >= n {
            text.push(b"0.");
            for _ in n..after_point {
                text.push(b"0");
            }
            text.push(digits);
        } else {
            text.push(&digits[..n - after_point]);
            text.push(b".");
            text.push(&digits[n - after_point..]);
        }
    } else {
        text.push(&digits[..1]);
        if n > 1 {
            text.push(b".");
            text.push(&digits[1..]);
        }
        text.push(if adjusted > 0 { b"E+" } else { b"E" });
        let mut exp = [0u8; 34];
        let m = decimal_digits(u128::from(adjusted.unsigned_abs()), &mut exp);
        if adjusted < 0 {
            text.push(b"-");
        }
        text.push(&exp[34 - m..]);
    }
    text.len
}

/// A buffer being filled.
struct Text<'a> {
    out: &'a mut [u8; MAX_LEN],
    len: usize,
}

impl Text<'_> {
    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(MAX_LEN);
        self.out[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }
}

/// The decimal digits of `v` (below 10^34) at the end of `out`; returns how many (at
/// least one). Two halves of 17 digits in 64-bit arithmetic: a 128-bit division per
/// digit would cost more than the rest.
fn decimal_digits(v: u128, out: &mut [u8; 34]) -> usize {
    const HALF: u128 = 10u128.pow(17);
    let (high, low) = ((v / HALF) as u64, (v % HALF) as u64);
    let at = match high {
        0 => digits_before(low, out, 34, 1),
        _ => {
            let low_at = digits_before(low, out, 34, 17);
            digits_before(high, out, low_at, 1)
        }
    };
    34 - at
}

/// Writes `x` in decimal, at least `width` digits (zero-padded), to end before `end` in
/// `out`; returns where it starts.
fn digits_before(mut x: u64, out: &mut [u8; 34], end: usize, width: usize) -> usize {
    let mut at = end;
    while at > 0 && (x > 0 || end - at < width) {
        at -= 1;
        out[at] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(bytes: [u8; 16]) -> String {
        let mut out = [0u8; MAX_LEN];
        let n = write(bytes, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    fn theirs(bytes: [u8; 16]) -> String {
        bson::Decimal128::from_bytes(bytes).to_string()
    }

    /// A finite value from its parts.
    fn finite(negative: bool, raw_exponent: u32, coefficient: u128) -> [u8; 16] {
        let x = (u128::from(negative) << 127) | (u128::from(raw_exponent) << 113) | coefficient;
        x.to_le_bytes()
    }

    #[test]
    fn writes_what_mongodb_writes() {
        for (text, want) in [
            ("1.50", "1.50"),
            ("-0", "-0"),
            ("0.000001", "0.000001"),
            ("1E-7", "1E-7"),
            ("12000000", "12000000"),
            ("1.2E+7", "1.2E+7"),
            ("123.456", "123.456"),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
        ] {
            let d: bson::Decimal128 = text.parse().unwrap();
            assert_eq!(ours(d.bytes()), want, "{text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Any 16 bytes read as the `bson` crate reads them.
        #[test]
        fn any_bytes_read_as_the_bson_crate_reads_them(bytes: [u8; 16]) {
            prop_assert_eq!(ours(bytes), theirs(bytes));
        }

        /// Values near the plain notation's edges, as amounts and measures are.
        #[test]
        fn usual_values_read_as_the_bson_crate_reads_them(
            negative: bool,
            exponent in -45i32..12,
            digits in 0u32..35,
            seed: u128,
        ) {
            let coefficient = seed % 10u128.pow(digits).max(1);
            let bytes = finite(negative, (exponent + EXPONENT_BIAS) as u32, coefficient);
            prop_assert_eq!(ours(bytes), theirs(bytes));
        }
    }
}
