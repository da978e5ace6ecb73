//! Verilog literals: sized two's-complement constants and packed tables.

/// Bits of the smallest signed code holding `v` (at least 2, so that every literal has a sign
/// bit and a value bit).
pub fn signed_width(v: i64) -> u32 {
    kaq_model::ir::signed_width(v.unsigned_abs().min(i64::MAX as u64) as i64).max(2)
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
    // Little-endian bit vector, then hexadecimal digits from the top.
    let mut bits = vec![false; total as usize];
    for (i, &v) in values.iter().enumerate() {
        for b in 0..width {
            let bit = if b < 64 { (v >> b) & 1 == 1 } else { v < 0 };
            bits[i * width as usize + b as usize] = bit;
        }
    }
    let digits = bits.len().div_ceil(4);
    let mut hex = String::with_capacity(digits);
    for d in (0..digits).rev() {
        let mut nibble = 0u8;
        for k in 0..4 {
            if bits.get(d * 4 + k).copied().unwrap_or(false) {
                nibble |= 1 << k;
            }
        }
        hex.push(char::from_digit(u32::from(nibble), 16).expect("a nibble is a hex digit"));
    }
    format!("{total}'h{hex}")
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
