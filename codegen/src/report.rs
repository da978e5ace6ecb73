//! The analytic performance and resource model of a generated design (`kaq report`), derived
//! from the micro-architecture of `kaq_layer_core` (docs/rtl.md §Timing) and checked against
//! the cycle counts measured in co-simulation.

use crate::design::Design;

/// Per-layer figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    /// 1-based layer number.
    pub layer: usize,
    /// Multiply-accumulates per frame.
    pub macs: u64,
    /// MAC engine issue cycles per frame.
    pub mac_cycles: u64,
    /// Update engine cycles per frame (coefficient lookup + N/P chunks).
    pub update_cycles: u64,
    /// Cycles from the stage's buffer filling (its last input beat) to the next stage's
    /// buffer filling, with no stalls: MAC start (1) + MAC issues + capture (1) + update start
    /// (1) + update + first drain beat (1) + M drain beats − 1.
    pub latency: u64,
    /// The stage's initiation interval with no stalls.
    pub ii: u64,
    /// Multipliers: P MAC lanes and the update lanes' coefficient multipliers.
    pub multipliers: u64,
    /// Adders (MAC accumulators, lane-sum tree, update sums).
    pub adders: u64,
    /// Bits of storage: two frame buffers (H, y, states, g) and e.
    pub memory_bits: u64,
}

/// The whole design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Multiply-accumulates per frame.
    pub macs: u64,
    /// MAC lower bound of the initiation interval: the busiest stage's MACs ÷ lanes (each
    /// stage has its own P lanes, and the pipeline moves at its slowest stage).
    pub mac_bound: u64,
    /// Cycles from the cycle an input frame's first beat is accepted to the first cycle its
    /// output beat is valid, no stalls.
    pub latency: u64,
    /// Initiation interval: cycles between frames in steady state, no stalls — the ceiling of
    /// [`Totals::cycles_per_frame`].
    pub ii: u64,
    /// Cycles two consecutive frames take in steady state, no stalls: twice the mean cycles
    /// per frame ([`Totals::cycles_per_frame`]). Odd when a stage's buffer period (fill and
    /// drain bound) is odd: its two buffers then emit frames at alternating spacings (e.g. 8,
    /// 3, 8, 3 for 5.5 cycles per frame).
    pub cycles_per_two_frames: u64,
    /// Multipliers.
    pub multipliers: u64,
    /// Adders.
    pub adders: u64,
    /// Storage bits.
    pub memory_bits: u64,
}

impl Totals {
    /// Mean cycles per frame in steady state, no stalls.
    pub fn cycles_per_frame(&self) -> f64 {
        self.cycles_per_two_frames as f64 / 2.0
    }
}

/// The analytic report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Per layer.
    pub layers: Vec<LayerReport>,
    /// Totals.
    pub total: Totals,
}

/// The analytic model of `d`.
pub fn analyse(d: &Design) -> Report {
    let io = &d.io;
    let (m, n, p) = (io.m as u64, io.n as u64, io.lanes as u64);
    let nc = n / p;
    let admm = d.arch == kaq_ir::Arch::Admm;
    let mut layers = Vec::with_capacity(d.layers.len());
    let mut two_frames = 2 * m;
    for l in &d.layers {
        let i = l.mac_cycles;
        // The lookup cycle, N/P steps and the update pipeline's registers.
        let update = nc + 1 + l.upd_pipe;
        // fill_done → MAC start (1) → I issues → capture (1) → update start (1) → lookup (1)
        // → N/P steps → first drain beat (1), then M beats.
        let latency = i + update + 3 + m;
        // Two buffers alternate: each goes round fill (M beats) and the stage latency, and is
        // empty again the cycle after its last drain beat: M + latency cycles per buffer, two
        // frames per period. The MAC engine serves one frame per I cycles.
        let period = m + latency;
        let ii = i.max(period.div_ceil(2));
        two_frames = two_frames.max((2 * i).max(period));
        let update_mults = if admm { 7 } else { 4 };
        let multipliers = p + p * update_mults + 1;
        let adders = p + p + p * 4;
        let sw = u64::from(io.sw);
        let memory_bits = 2
            * (m * (n * u64::from(io.hw) + u64::from(io.yw))
                + u64::from(io.binw)
                + 4 * n * sw
                + n * 16)
            + m * 16;
        layers.push(LayerReport {
            layer: l.number,
            macs: l.macs,
            mac_cycles: i,
            update_cycles: update,
            latency,
            ii,
            multipliers,
            adders,
            memory_bits,
        });
    }
    let macs: u64 = layers.iter().map(|l| l.macs).sum();
    let ii = layers.iter().map(|l| l.ii).max().unwrap_or(0).max(m);
    // Beat 0 accepted at cycle 0 → stage 1 full after beat M − 1; each stage then takes its
    // latency to fill the next; the last one's first drain beat is registered by the output
    // stage one cycle later: Σ_k latency_k + 1 (the −1 of beat 0 and the output stage's +2
    // against a fill of M beats).
    let latency = layers.iter().map(|l| l.latency).sum::<u64>() + 1;
    let total = Totals {
        macs,
        mac_bound: layers.iter().map(|l| l.macs.div_ceil(p)).max().unwrap_or(0),
        latency,
        ii,
        cycles_per_two_frames: two_frames,
        multipliers: layers.iter().map(|l| l.multipliers).sum(),
        adders: layers.iter().map(|l| l.adders).sum(),
        memory_bits: layers.iter().map(|l| l.memory_bits).sum(),
    };
    Report { layers, total }
}
