//! Every stage's taps of an IR v2 (cg) design against the golden model: the tap port of
//! `kaq_gram_core` (on in the co-simulation's build, `kaq_codegen::gram::sources_taps`) shows
//! every register write of the execute stage with the writing instruction's ROM address, and
//! the generator's table ([`Program::tap_writes`]) names the tensor, layer and element each
//! address writes. Each value is checked against the golden model's [`BlockTaps`] and
//! [`VectorTaps`]; the narrow inner copies of G, which the golden model keeps only as its
//! working copy, are narrowed from its G with kaq-ir's own [`narrow_g`]. Every run of a
//! program must write every value its table lists, once, from the listed lanes.

use kaq_codegen::gram::{Program, TapWrite, Tensor};
use kaq_ir::gram::{BlockTaps, GramIr, VectorTaps, narrow_g};

/// The first (or any) differing value of a stage: where, what the RTL wrote, what the golden
/// model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapMismatch {
    /// The channel block (0-based, in stream order).
    pub block: usize,
    /// The vector (0-based over the stream), `None` for the block stage.
    pub vector: Option<usize>,
    /// The layer (1-based) of a layer's tensor.
    pub layer: Option<usize>,
    /// The tensor (with its inner step for p, d and ρ, 0-based).
    pub tensor: Tensor,
    /// The element within the tensor (row-major for G).
    pub element: usize,
    /// What the RTL wrote.
    pub rtl: i64,
    /// What the golden model expects.
    pub golden: i64,
    /// The ROM address of the writing instruction.
    pub pc: usize,
}

impl std::fmt::Display for TapMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.vector {
            Some(v) => write!(f, "vector {v} (block {}) ", self.block)?,
            None => write!(f, "block {} block stage ", self.block)?,
        }
        if let Some(l) = self.layer {
            write!(f, "layer {l} ")?;
        }
        match self.tensor {
            Tensor::P(s) | Tensor::D(s) | Tensor::Rho(s) => write!(f, "step {} ", s + 1)?,
            _ => {}
        }
        let name = match self.tensor {
            Tensor::GInner(c) => format!("g_inner{c}"),
            t => t.name().to_string(),
        };
        write!(
            f,
            "{name}[{}]: rtl {} golden {} (instruction {})",
            self.element, self.rtl, self.golden, self.pc
        )
    }
}

/// The golden values of one channel block: its block-stage taps, its vectors' taps and the
/// narrow inner copies of G.
#[derive(Debug, Clone)]
pub struct GoldenBlock {
    /// The block stage.
    pub block: BlockTaps,
    /// Every vector's taps.
    pub vectors: Vec<VectorTaps>,
    bin: usize,
    /// The narrow inner copies of G, one per [`Program::inner`] shift.
    g_inner: Vec<Vec<i64>>,
}

impl GoldenBlock {
    /// The golden values of a block in SNR bin `bin` whose golden taps are `block` and
    /// `vectors`.
    pub fn new(
        ir: &GramIr,
        prog: &Program,
        block: BlockTaps,
        vectors: Vec<VectorTaps>,
        bin: usize,
    ) -> Self {
        let gw = ir.block.g.width();
        let g_inner = prog
            .inner
            .iter()
            .map(|&s| block.g.iter().map(|&c| narrow_g(c, s, gw - s)).collect())
            .collect();
        GoldenBlock {
            block,
            vectors,
            bin,
            g_inner,
        }
    }

    /// The SNR bin.
    pub fn bin(&self) -> usize {
        self.bin
    }

    /// The golden value of `w`, in the block stage (`vector` None) or vector `vector` of the
    /// block; `None` when the table names a value the golden model has not (a generator
    /// bug, reported as such).
    pub fn value(&self, w: &TapWrite, vector: Option<usize>) -> Option<i64> {
        let e = w.element;
        let b = &self.block;
        let Some(k) = vector else {
            return match w.stage.tensor {
                Tensor::G => b.g.get(e).copied(),
                Tensor::GInner(c) => self.g_inner.get(c)?.get(e).copied(),
                Tensor::Trace => Some(b.trace),
                Tensor::InvTrace => Some(b.inv_trace),
                Tensor::DiagInv => b.diag_inv.get(e).copied(),
                _ => None,
            };
        };
        let v = self.vectors.get(k)?;
        let layer = w.stage.layer;
        match (w.stage.tensor, layer) {
            (Tensor::Z, None) => v.z.get(e).copied(),
            (Tensor::Yy, None) => Some(v.yy),
            (t, Some(l)) => {
                let lt = v.layers.get(l)?;
                let n = lt.e.len();
                match t {
                    Tensor::E => lt.e.get(e).copied(),
                    Tensor::W => Some(lt.w),
                    Tensor::V2Unfloored => Some(lt.v2_unfloored),
                    Tensor::V2 => Some(lt.v2),
                    Tensor::P(s) => lt.p.get(s * n + e).copied(),
                    Tensor::D(s) => lt.d.get(s * n + e).copied(),
                    Tensor::Rho(s) => lt.rho.get(s * n + e).copied(),
                    Tensor::R => lt.r.get(e).copied(),
                    Tensor::Tau2 => Some(lt.tau2),
                    Tensor::Bucket => Some(lt.bucket as i64),
                    Tensor::X => lt.x.get(e).copied(),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Which program a run of the engine executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// The block stage of block `b`.
    Block(usize),
    /// Vector `v` (over the stream), the `k`-th of block `b`.
    Vector { v: usize, b: usize, k: usize },
}

/// Checks the tap port's writes of one stream against the golden values.
#[derive(Debug)]
pub(crate) struct TapChecker {
    table: Vec<Vec<TapWrite>>,
    /// The block program's length (its ROM words come first).
    pb: usize,
    run: Option<Run>,
    /// Per ROM word: whether the current run wrote it.
    seen: Vec<bool>,
    /// Values compared.
    pub compared: u64,
    /// Value mismatches, the first [`MAX_KEPT`].
    pub mismatches: Vec<TapMismatch>,
    /// Value mismatches in all.
    pub count: u64,
    /// Writes that are not the table's (wrong lanes, an instruction that writes nothing, a
    /// write missing or repeated), described; the first [`MAX_KEPT`].
    pub anomalies: Vec<String>,
}

/// Mismatches and anomalies a report keeps (all are counted).
pub const MAX_KEPT: usize = 100;

impl TapChecker {
    pub(crate) fn new(prog: &Program) -> Self {
        let table = prog.tap_writes();
        let words = table.len();
        TapChecker {
            table,
            pb: prog.block.len(),
            run: None,
            seen: vec![false; words],
            compared: 0,
            mismatches: Vec::new(),
            count: 0,
            anomalies: Vec::new(),
        }
    }

    /// Values the table lists for a block stage and for a vector.
    pub(crate) fn per_run(&self) -> (u64, u64) {
        let sum = |r: &[Vec<TapWrite>]| r.iter().map(|w| w.len() as u64).sum();
        (sum(&self.table[..self.pb]), sum(&self.table[self.pb..]))
    }

    fn anomaly(&mut self, what: String) {
        self.count += 1;
        if self.anomalies.len() < MAX_KEPT {
            self.anomalies.push(what);
        }
    }

    /// Ends the current run (every listed write seen) and starts `next`.
    pub(crate) fn start(&mut self, next: Option<Run>) {
        if let Some(run) = self.run {
            let range = match run {
                Run::Block(_) => 0..self.pb,
                Run::Vector { .. } => self.pb..self.table.len(),
            };
            let missing: Vec<usize> = range
                .filter(|&pc| !self.table[pc].is_empty() && !self.seen[pc])
                .collect();
            if let Some(&pc) = missing.first() {
                self.anomaly(format!(
                    "{}: {} instruction(s) wrote nothing, first instruction {pc} ({:?})",
                    describe(run),
                    missing.len(),
                    self.table[pc][0].stage
                ));
            }
        }
        self.seen.fill(false);
        self.run = next;
    }

    /// One cycle's tap: instruction `pc` wrote `values[l]` from every lane l in `lanes`.
    pub(crate) fn write(
        &mut self,
        golden: Option<&GoldenBlock>,
        pc: usize,
        lanes: u64,
        values: &[i64],
    ) {
        let Some(run) = self.run else {
            self.anomaly(format!("instruction {pc} wrote outside any program run"));
            return;
        };
        let in_range = match run {
            Run::Block(_) => pc < self.pb,
            Run::Vector { .. } => (self.pb..self.table.len()).contains(&pc),
        };
        if !in_range || self.table[pc].is_empty() {
            self.anomaly(format!(
                "{}: instruction {pc} wrote, which the table lists no write of",
                describe(run)
            ));
            return;
        }
        if std::mem::replace(&mut self.seen[pc], true) {
            self.anomaly(format!("{}: instruction {pc} wrote twice", describe(run)));
        }
        let want: u64 = self.table[pc].iter().map(|w| 1u64 << w.lane).sum();
        if lanes != want {
            self.anomaly(format!(
                "{}: instruction {pc} wrote from lanes {lanes:#b}, the table's {want:#b}",
                describe(run)
            ));
        }
        let (block, vector, k) = match run {
            Run::Block(b) => (b, None, None),
            Run::Vector { v, b, k } => (b, Some(v), Some(k)),
        };
        for i in 0..self.table[pc].len() {
            let w = self.table[pc][i];
            let Some(golden) = golden.and_then(|g| g.value(&w, k)) else {
                self.anomaly(format!(
                    "{}: instruction {pc} writes {:?} element {}, which the golden model has not",
                    describe(run),
                    w.stage,
                    w.element
                ));
                continue;
            };
            let rtl = values[w.lane];
            self.compared += 1;
            if rtl != golden {
                self.count += 1;
                if self.mismatches.len() < MAX_KEPT {
                    self.mismatches.push(TapMismatch {
                        block,
                        vector,
                        layer: w.stage.layer.map(|l| l + 1),
                        tensor: w.stage.tensor,
                        element: w.element,
                        rtl,
                        golden,
                        pc,
                    });
                }
            }
        }
    }
}

fn describe(run: Run) -> String {
    match run {
        Run::Block(b) => format!("block {b} block stage"),
        Run::Vector { v, b, .. } => format!("vector {v} (block {b})"),
    }
}
