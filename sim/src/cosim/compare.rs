//! Comparing what the RTL emitted with the golden model's taps, bit for bit.

use kaq_ir::Taps;

/// The first difference found in one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Index of the frame in the stream.
    pub frame: u64,
    /// The first layer (1-based) whose states differ, or `None` when every layer agrees and
    /// only the output stage differs.
    pub layer: Option<usize>,
    /// The element (0..N) within the field.
    pub element: usize,
    /// `x`, `s`, `u` (a layer's states), `out_x` (an output code) or `out_bits` (its Gray bits).
    pub field: &'static str,
    /// What the RTL produced.
    pub rtl: i64,
    /// What the golden model expects.
    pub golden: i64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.layer {
            Some(l) => write!(f, "frame {} layer {l} ", self.frame)?,
            None => write!(f, "frame {} output stage ", self.frame)?,
        }
        write!(
            f,
            "{}[{}]: rtl {} golden {}",
            self.field, self.element, self.rtl, self.golden
        )
    }
}

/// The layer states one stage stream carried on a frame's beat 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageTap {
    /// x (N codes).
    pub x: Vec<i64>,
    /// s (ADMM-Net; empty for PGD-Net).
    pub s: Vec<i64>,
    /// u (ADMM-Net; empty for PGD-Net).
    pub u: Vec<i64>,
}

/// One frame as the RTL produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtlFrame {
    /// Index of the frame in the stream.
    pub index: u64,
    /// The output codes (N, sign-extended).
    pub out_x: Vec<i64>,
    /// The Gray bits of every element's decision (N).
    pub out_bits: Vec<u32>,
    /// Per layer 1..K, its new states (empty unless the driver captures taps).
    pub layers: Vec<StageTap>,
    /// The cycle beat 0 was accepted.
    pub accept_cycle: u64,
    /// The first cycle the output beat was valid.
    pub valid_cycle: u64,
    /// The cycle the output beat was taken.
    pub out_cycle: u64,
}

/// The first difference between the RTL's frame and the golden taps: the layers in order
/// (x, then s, then u, element by element), then the output codes, then the output bits.
pub fn compare(rtl: &RtlFrame, golden: &Taps, gray: impl Fn(i32) -> u32) -> Option<Mismatch> {
    let at = |layer, element, field, got: i64, want: i64| Mismatch {
        frame: rtl.index,
        layer,
        element,
        field,
        rtl: got,
        golden: want,
    };
    for (k, (got, want)) in rtl.layers.iter().zip(&golden.layers).enumerate() {
        for (field, g, w) in [
            ("x", &got.x, &want.x),
            ("s", &got.s, &want.s),
            ("u", &got.u, &want.u),
        ] {
            if let Some(j) = first_diff(g, w) {
                return Some(at(Some(k + 1), j, field, value(g, j), value(w, j)));
            }
        }
    }
    if let Some(j) = first_diff(&rtl.out_x, &golden.output) {
        let (got, want) = (value(&rtl.out_x, j), value(&golden.output, j));
        return Some(at(None, j, "out_x", got, want));
    }
    let want_bits: Vec<u32> = golden.levels.iter().map(|&l| gray(l)).collect();
    first_diff(&rtl.out_bits, &want_bits).map(|j| {
        let v = |b: &[u32]| b.get(j).map_or(-1, |&x| i64::from(x));
        at(None, j, "out_bits", v(&rtl.out_bits), v(&want_bits))
    })
}

fn value(v: &[i64], j: usize) -> i64 {
    v.get(j).copied().unwrap_or(i64::MIN)
}

/// The first index where `a` and `b` differ, including a length difference.
fn first_diff<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_diff_finds_values_and_lengths() {
        assert_eq!(first_diff(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_diff(&[1, 2, 3], &[1, 5, 3]), Some(1));
        assert_eq!(first_diff(&[1, 2], &[1, 2, 3]), Some(2));
    }
}
