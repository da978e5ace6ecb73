//! Modulations and their per-real-dimension Gray mapping (docs/system-model.md).
//!
//! Alphabets are the unnormalized odd integers {±1, ±3, …} per real dimension, as in the KAQ
//! paper. BPSK uses only the real dimension; QPSK, 16-QAM and 64-QAM are square QAMs whose real
//! and imaginary dimensions are independent PAM alphabets. Each real dimension is Gray coded:
//! level index `i` (0 for the most negative level) carries the bits of `i ^ (i >> 1)`, most
//! significant bit first (16-QAM: −3→00, −1→01, +1→11, +3→10). This file is the one normative
//! implementation of the bit mapping; everything else calls it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::vocab::VocabError;

/// A modulation of the complex system model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modulation {
    /// ±1 on the real axis.
    Bpsk,
    /// {±1} per real dimension.
    Qpsk,
    /// {±1, ±3} per real dimension.
    #[serde(rename = "16qam")]
    Qam16,
    /// {±1, ±3, ±5, ±7} per real dimension.
    #[serde(rename = "64qam")]
    Qam64,
}

impl Modulation {
    /// Every supported modulation, in order of increasing order.
    pub const ALL: [Modulation; 4] = [Self::Bpsk, Self::Qpsk, Self::Qam16, Self::Qam64];

    /// Real dimensions one complex symbol occupies in the real-valued equivalent (1 for BPSK).
    pub fn real_dims_per_symbol(self) -> usize {
        match self {
            Self::Bpsk => 1,
            _ => 2,
        }
    }

    /// Bits carried by one real dimension.
    pub fn bits_per_dim(self) -> u32 {
        match self {
            Self::Bpsk | Self::Qpsk => 1,
            Self::Qam16 => 2,
            Self::Qam64 => 3,
        }
    }

    /// Bits carried by one complex symbol.
    pub fn bits_per_symbol(self) -> u32 {
        self.bits_per_dim() * self.real_dims_per_symbol() as u32
    }

    /// Number of amplitude levels per real dimension (2^bits_per_dim).
    pub fn levels_per_dim(self) -> usize {
        1 << self.bits_per_dim()
    }

    /// Largest level magnitude per real dimension (L − 1).
    pub fn max_level(self) -> i32 {
        self.levels_per_dim() as i32 - 1
    }

    /// The per-dimension alphabet in ascending order: −(L−1), −(L−3), …, L−1.
    pub fn alphabet(self) -> Vec<i32> {
        (0..self.levels_per_dim())
            .map(|i| self.level_of_index(i))
            .collect()
    }

    /// Average energy of one complex symbol, Es = dims · (L² − 1)/3 (BPSK 1, QPSK 2, 16-QAM 10,
    /// 64-QAM 42).
    pub fn es(self) -> f64 {
        let l = self.levels_per_dim() as f64;
        self.real_dims_per_symbol() as f64 * (l * l - 1.0) / 3.0
    }

    /// Level for level index `i` (0 = most negative).
    #[inline]
    pub fn level_of_index(self, i: usize) -> i32 {
        2 * i as i32 - self.max_level()
    }

    /// Level index (0 = most negative) of an alphabet level. The level must be in the alphabet.
    #[inline]
    pub fn index_of_level(self, level: i32) -> usize {
        debug_assert!(level.abs() <= self.max_level() && level & 1 == 1);
        ((level + self.max_level()) / 2) as usize
    }

    /// Gray-coded bits of one real dimension's level, most significant bit first in the low
    /// `bits_per_dim` bits of the result.
    #[inline]
    pub fn gray_bits(self, level: i32) -> u32 {
        let i = self.index_of_level(level) as u32;
        i ^ (i >> 1)
    }

    /// Inverse of [`Modulation::gray_bits`].
    #[inline]
    pub fn level_from_bits(self, bits: u32) -> i32 {
        let mut i = bits;
        let mut shift = 1;
        while shift < self.bits_per_dim() {
            i ^= i >> shift;
            shift <<= 1;
        }
        self.level_of_index(i as usize)
    }

    /// Nearest alphabet level to a real value (ties go to the level of larger magnitude, which
    /// never happens with continuous noise).
    #[inline]
    pub fn slice(self, v: f64) -> i32 {
        let m = self.max_level();
        // Nearest odd integer: 2·floor(v/2) + 1.
        let odd = 2 * (v * 0.5).floor() as i64 + 1;
        odd.clamp(-(m as i64), m as i64) as i32
    }

    /// Number of Gray-bit differences between two levels of this alphabet.
    #[inline]
    pub fn bit_errors(self, a: i32, b: i32) -> u32 {
        (self.gray_bits(a) ^ self.gray_bits(b)).count_ones()
    }
}

impl fmt::Display for Modulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bpsk => "bpsk",
            Self::Qpsk => "qpsk",
            Self::Qam16 => "16qam",
            Self::Qam64 => "64qam",
        })
    }
}

impl FromStr for Modulation {
    type Err = VocabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "bpsk" => Ok(Self::Bpsk),
            "qpsk" | "4qam" => Ok(Self::Qpsk),
            "16qam" | "qam16" => Ok(Self::Qam16),
            "64qam" | "qam64" => Ok(Self::Qam64),
            _ => Err(VocabError::UnknownModulation(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_neighbours_differ_in_one_bit() {
        for m in Modulation::ALL {
            let a = m.alphabet();
            for w in a.windows(2) {
                assert_eq!(m.bit_errors(w[0], w[1]), 1, "{m}: {} vs {}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn gray_16qam_matches_spec() {
        let m = Modulation::Qam16;
        assert_eq!(m.gray_bits(-3), 0b00);
        assert_eq!(m.gray_bits(-1), 0b01);
        assert_eq!(m.gray_bits(1), 0b11);
        assert_eq!(m.gray_bits(3), 0b10);
    }

    #[test]
    fn bits_level_round_trip() {
        for m in Modulation::ALL {
            let mut seen = vec![false; m.levels_per_dim()];
            for bits in 0..m.levels_per_dim() as u32 {
                let level = m.level_from_bits(bits);
                assert_eq!(m.gray_bits(level), bits, "{m} bits {bits:b}");
                seen[m.index_of_level(level)] = true;
            }
            assert!(seen.iter().all(|&s| s), "{m}: mapping is not a bijection");
        }
    }

    #[test]
    fn average_symbol_energy_equals_es() {
        for m in Modulation::ALL {
            let a = m.alphabet();
            let per_dim: f64 = a.iter().map(|&l| (l * l) as f64).sum::<f64>() / a.len() as f64;
            let es = per_dim * m.real_dims_per_symbol() as f64;
            assert_eq!(es, m.es(), "{m}");
        }
        assert_eq!(Modulation::Qam16.es(), 10.0);
        assert_eq!(Modulation::Qam64.es(), 42.0);
        assert_eq!(Modulation::Qpsk.es(), 2.0);
        assert_eq!(Modulation::Bpsk.es(), 1.0);
    }

    #[test]
    fn slice_picks_nearest_level() {
        let m = Modulation::Qam16;
        for (v, want) in [
            (-9.0, -3),
            (-2.1, -3),
            (-1.9, -1),
            (0.2, 1),
            (-0.2, -1),
            (2.5, 3),
            (7.0, 3),
        ] {
            assert_eq!(m.slice(v), want, "slice({v})");
        }
        assert_eq!(Modulation::Bpsk.slice(-0.01), -1);
        assert_eq!(Modulation::Qam64.slice(4.2), 5);
    }

    #[test]
    fn parse_and_display_round_trip() {
        for m in Modulation::ALL {
            assert_eq!(m.to_string().parse::<Modulation>().unwrap(), m);
        }
        assert!("7qam".parse::<Modulation>().is_err());
    }
}
