//! Verilog literals: sized two's-complement constants and packed tables.

/// Bits of the smallest signed code holding `v` (at least 2, so that every literal has a sign
/// bit and a value bit).
pub fn signed_width(v: i64) -> u32 {
    kaq_ir::signed_width(v.unsigned_abs().min(i64::MAX as u64) as i64).max(2)
}

/// Bits of the smallest signed code holding every value of `values` (at least 2).
pub fn table_width(values: &[i64]) -> u32 {
    values.iter().map(|&v| signed_width(v)).max().unwrap_or(2)
}

/// `values` packed into one `width·len`-bit hexadecimal literal, entry 0 in the least
/// significant bits, each entry its `width`-bit two's-complement code.
pub fn packed(values: &[i64], width: u32) -> String {
    let total = values.len() as u64 * u64::from(width);
    if total == 0 {
        return "1'b0".to_string();
    }
    let fields: Vec<(i64, u32)> = values.iter().map(|&v| (v, width)).collect();
    format!("{total}'h{}", hex_digits(&fields))
}

/// Fields `(value, width)` packed low-first (each its two's-complement code) into
/// `ceil(Σ width / 4)` hexadecimal digits, most significant first: the packing of every Verilog
/// literal and `$readmemh` word kaq writes.
pub fn hex_digits(fields: &[(i64, u32)]) -> String {
    let mut bits = Vec::new();
    for &(v, w) in fields {
        for b in 0..w {
            bits.push(if b < 64 { (v >> b) & 1 == 1 } else { v < 0 });
        }
    }
    let digits = bits.len().div_ceil(4).max(1);
    (0..digits)
        .rev()
        .map(|d| {
            let nibble = (0..4).fold(0u32, |n, k| {
                n | (u32::from(bits.get(d * 4 + k).copied().unwrap_or(false)) << k)
            });
            char::from_digit(nibble, 16).expect("a nibble is a hex digit")
        })
        .collect()
}

/// One `width`-bit two's-complement constant.
pub fn sized(v: i64, width: u32) -> String {
    packed(&[v], width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_twos_complement_and_packed_low_first() {
        assert_eq!(sized(5, 8), "8'h05");
        assert_eq!(sized(-1, 8), "8'hff");
        assert_eq!(sized(-128, 8), "8'h80");
        assert_eq!(sized(-2, 3), "3'h6");
        assert_eq!(packed(&[1, -1], 4), "8'hf1");
        assert_eq!(packed(&[1, 2, 3], 3), "9'h0d1");
        assert_eq!(sized(-1, 70), "70'h3fffffffffffffffff");
        assert_eq!(signed_width(0), 2);
        assert_eq!(signed_width(127), 8);
        assert_eq!(signed_width(-128), 9);
        assert_eq!(table_width(&[3, -4, 100]), 8);
    }
}
