//! The cycle driver: one Verilator model instance fed frames with seeded stalls and
//! back-pressure, every stage stream's beats captured.

use super::*;

/// One model instance of an [`Rtl`], reset and ready to stream frames.
#[derive(Debug)]
pub struct Driver<'r> {
    rtl: &'r Rtl,
    model: Model,
    ports: Ports,
    rng: ChaCha8Rng,
    pub(super) stalls: Stalls,
    capture: bool,
    /// Cycles since reset.
    cycle: u64,
    /// Frames fed and emitted so far (indices continue across runs).
    fed: u64,
    emitted: u64,
    /// Word buffers of the wide ports.
    h_words: Vec<u32>,
    x_words: Vec<u32>,
    bits_words: Vec<u32>,
    /// Beats seen per stage stream.
    tap_beats: Vec<u64>,
    /// The (frame, beat) on the input ports: a beat held through stalls is packed once.
    driven: Option<(u64, usize)>,
    /// The (in_valid, out_ready) levels on the ports: unchanged levels are not driven again.
    handshake: Option<(bool, bool)>,
}

/// Packs `codes` of `width` bits each, element j at bits [j·width, (j+1)·width), into `words`.
/// Widths above 64 bits repeat the sign.
pub(super) fn pack(codes: impl IntoIterator<Item = i64>, width: u32, words: &mut [u32]) {
    if width <= 32 {
        pack_narrow(codes, width, words);
    } else {
        pack_any(codes, width, words);
    }
}

/// [`pack`] for widths up to 32 bits (every H row of the driver, once per beat): a field
/// spans at most two words.
fn pack_narrow(codes: impl IntoIterator<Item = i64>, width: u32, words: &mut [u32]) {
    words.fill(0);
    let mask = u32::MAX >> (32 - width);
    let width = width as usize;
    let mut bit = 0usize;
    for c in codes {
        // The low `width` bits of the two's complement code.
        let v = (c as u32) & mask;
        let (w, offset) = (bit / 32, bit % 32);
        words[w] |= v << offset;
        if offset + width > 32 {
            words[w + 1] |= v >> (32 - offset);
        }
        bit += width;
    }
}

/// [`pack`] for any width.
fn pack_any(codes: impl IntoIterator<Item = i64>, width: u32, words: &mut [u32]) {
    words.fill(0);
    let mut bit = 0usize;
    for c in codes {
        let mut left = width as usize;
        // The low min(width, 64) bits, then the sign for any bits above 64.
        let mut value = c as u64;
        let mut valid = 64usize;
        while left > 0 {
            if valid == 0 {
                value = if c < 0 { u64::MAX } else { 0 };
                valid = 64;
            }
            let offset = bit % 32;
            let take = (32 - offset).min(left).min(valid);
            let chunk = (value & (u64::MAX >> (64 - take))) as u32;
            words[bit / 32] |= chunk << offset;
            value = value.checked_shr(take as u32).unwrap_or(0);
            valid -= take;
            bit += take;
            left -= take;
        }
    }
}

/// Bits [lo, lo + width) of `words` (width ≤ 64), zero-extended.
fn field(words: &[u32], lo: usize, width: u32) -> u64 {
    let mut v = 0u64;
    let mut got = 0usize;
    let width = width as usize;
    while got < width {
        let bit = lo + got;
        let offset = bit % 32;
        let take = (32 - offset).min(width - got);
        let chunk = u64::from(words[bit / 32] >> offset) & (u64::MAX >> (64 - take));
        v |= chunk << got;
        got += take;
    }
    v
}

/// The `n` signed `width`-bit fields of `words`, element j at bits [j·width, (j+1)·width).
pub(super) fn unpack_signed(words: &[u32], n: usize, width: u32) -> Vec<i64> {
    (0..n)
        .map(|j| sign_extend(field(words, j * width as usize, width), width))
        .collect()
}

impl<'r> Driver<'r> {
    pub(super) fn new(rtl: &'r Rtl, stalls: Stalls, capture: bool) -> Result<Self, CosimError> {
        stalls.validate()?;
        let mut model = Model::new(&rtl.built, stalls.seed)?;
        let d = &rtl.design;
        let ports = Ports::resolve(&model, d.layers.len(), d.arch == Arch::Admm)?;
        let words = |p: PortId| model.ports()[p.index()].words();
        let (h_words, x_words, bits_words) = (
            vec![0; words(ports.in_h)],
            vec![0; words(ports.out_x)],
            vec![0; words(ports.out_bits)],
        );
        model.set(ports.in_valid, 0)?;
        model.set(ports.out_ready, 0)?;
        model.reset(RESET_CYCLES)?;
        Ok(Self {
            rtl,
            tap_beats: vec![0; d.layers.len()],
            model,
            ports,
            rng: ChaCha8Rng::seed_from_u64(stalls.seed ^ 0x6b61_715f_7374_616c),
            stalls,
            capture,
            cycle: 0,
            fed: 0,
            emitted: 0,
            h_words,
            x_words,
            bits_words,
            driven: None,
            handshake: None,
        })
    }

    /// Starts a VCD trace of everything from now on (the RTL must be built with `trace`).
    pub fn trace(&mut self, path: impl AsRef<Path>) -> Result<(), CosimError> {
        Ok(self.model.trace(path)?)
    }

    /// Flushes the open VCD trace to disk (no-op without one).
    pub fn flush_trace(&mut self) {
        self.model.flush_trace();
    }

    /// Cycles since reset.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    fn check_frame(&self, f: &FrameCodes) -> Result<(), CosimError> {
        let io = &self.rtl.design.io;
        let bad = |reason: String| {
            Err(CosimError::Frame {
                frame: self.fed,
                reason,
            })
        };
        if f.h.len() != io.m * io.n {
            return bad(format!(
                "{} H codes, M·N = {} needed",
                f.h.len(),
                io.m * io.n
            ));
        }
        if f.y.len() != io.m {
            return bad(format!("{} y codes, M = {} needed", f.y.len(), io.m));
        }
        if f.bin >= io.bins {
            return bad(format!("bin {} outside 0..{}", f.bin, io.bins));
        }
        let fits = |c: i64, w: u32| c >= -(1 << (w - 1)) && c < (1 << (w - 1));
        if let Some(c) = f.h.iter().find(|&&c| !fits(c, io.hw)) {
            return bad(format!("H code {c} is not a signed {}-bit code", io.hw));
        }
        if let Some(c) = f.y.iter().find(|&&c| !fits(c, io.yw)) {
            return bad(format!("y code {c} is not a signed {}-bit code", io.yw));
        }
        Ok(())
    }

    /// Drives beat `beat` of `f` onto the input ports.
    fn drive(&mut self, f: &FrameCodes, beat: usize) -> Result<(), SimError> {
        if self.driven == Some((self.fed, beat)) {
            return Ok(());
        }
        self.driven = Some((self.fed, beat));
        let io = &self.rtl.design.io;
        let row = &f.h[beat * io.n..(beat + 1) * io.n];
        pack(row.iter().copied(), io.hw, &mut self.h_words);
        self.model.set_wide(self.ports.in_h, &self.h_words)?;
        self.model.set_signed(self.ports.in_y, f.y[beat])?;
        self.model.set(self.ports.in_bin, f.bin as u64)?;
        Ok(())
    }

    fn read_states(&mut self, port: PortId) -> Result<Vec<i64>, SimError> {
        let io = &self.rtl.design.io;
        self.model.get_wide_into(port, &mut self.x_words)?;
        Ok(unpack_signed(&self.x_words, io.n, io.sw))
    }

    /// Streams `frames` through the pipeline until every one has come out, calling
    /// `sink(codes, output)` for each output in order. Inputs are checked against the design's
    /// formats (an error names the frame).
    pub fn run(
        &mut self,
        frames: impl IntoIterator<Item = FrameCodes>,
        mut sink: impl FnMut(&FrameCodes, RtlFrame) -> Result<(), CosimError>,
    ) -> Result<RunStats, CosimError> {
        let io = self.rtl.design.io.clone();
        let layers = self.rtl.design.layers.len();
        let hang_limit = 10_000 + 8 * self.rtl.estimate.latency;
        let mut source = frames.into_iter();
        let start_cycle = self.cycle;
        let start_emitted = self.emitted;
        // Frames in flight: codes, beat-0 acceptance cycle.
        let mut in_flight: VecDeque<(FrameCodes, u64)> = VecDeque::new();
        // The frame being fed, its next beat and its beat-0 acceptance cycle (it moves to
        // `in_flight` with its last beat).
        let mut feeding: Option<(FrameCodes, usize, u64)> = None;
        let mut exhausted = false;
        let mut tap_queues: Vec<VecDeque<StageTap>> = vec![VecDeque::new(); layers];
        let mut valid_since: Option<u64> = None;
        let mut out_cycles: Vec<u64> = Vec::new();
        let mut first_latency = None;
        let mut idle = 0u64;
        let mut accepted = 0u64;
        loop {
            if feeding.is_none() && !exhausted {
                match source.next() {
                    Some(f) => {
                        self.check_frame(&f)?;
                        self.fed += 1;
                        feeding = Some((f, 0, 0));
                    }
                    None => exhausted = true,
                }
            }
            if exhausted && feeding.is_none() && in_flight.is_empty() {
                break;
            }
            let stalled = self.stalls.input > 0.0 && self.rng.random_bool(self.stalls.input);
            let in_valid = feeding.is_some() && !stalled;
            if in_valid && let Some((f, beat, _)) = &feeding {
                self.drive(f, *beat)?;
            }
            let out_ready = !(self.stalls.output > 0.0 && self.rng.random_bool(self.stalls.output));
            if self.handshake != Some((in_valid, out_ready)) {
                self.model.set(self.ports.in_valid, u64::from(in_valid))?;
                self.model.set(self.ports.out_ready, u64::from(out_ready))?;
                self.handshake = Some((in_valid, out_ready));
            }
            self.model.eval();
            let mut moved = false;
            // The input stream.
            if in_valid && self.model.get(self.ports.in_ready)? == 1 {
                moved = true;
                if let Some((f, beat, first)) = feeding.take() {
                    let first = if beat == 0 { self.cycle } else { first };
                    if beat + 1 < io.m {
                        feeding = Some((f, beat + 1, first));
                    } else {
                        in_flight.push_back((f, first));
                        accepted += 1;
                    }
                }
            }
            // The stage streams.
            if self.capture {
                for (k, queue) in tap_queues.iter_mut().enumerate() {
                    let t = self.ports.taps[k];
                    if self.model.get(t.valid)? == 1 && self.model.get(t.ready)? == 1 {
                        moved = true;
                        if self.tap_beats[k].is_multiple_of(io.m as u64) {
                            let tap = StageTap {
                                x: self.read_states(t.x)?,
                                s: match t.s {
                                    Some(p) => self.read_states(p)?,
                                    None => Vec::new(),
                                },
                                u: match t.u {
                                    Some(p) => self.read_states(p)?,
                                    None => Vec::new(),
                                },
                            };
                            queue.push_back(tap);
                        }
                        self.tap_beats[k] += 1;
                    }
                }
            }
            // The output.
            if self.model.get(self.ports.out_valid)? == 1 {
                let valid_cycle = *valid_since.get_or_insert(self.cycle);
                if out_ready {
                    moved = true;
                    self.model
                        .get_wide_into(self.ports.out_x, &mut self.x_words)?;
                    self.model
                        .get_wide_into(self.ports.out_bits, &mut self.bits_words)?;
                    let out_x = unpack_signed(&self.x_words, io.n, io.sw);
                    let out_bits = (0..io.n)
                        .map(|j| field(&self.bits_words, j * io.bpd as usize, io.bpd) as u32)
                        .collect();
                    let (codes, accept_cycle) = in_flight.pop_front().ok_or(CosimError::Frame {
                        frame: self.emitted,
                        reason: "an output beat without a frame in flight".into(),
                    })?;
                    let layers_taps = if self.capture {
                        tap_queues
                            .iter_mut()
                            .map(|q| q.pop_front().unwrap_or_default())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    if first_latency.is_none() {
                        first_latency = Some(valid_cycle - accept_cycle);
                    }
                    if out_cycles.len() < TIMING_FRAMES {
                        out_cycles.push(valid_cycle);
                    }
                    let frame = RtlFrame {
                        index: self.emitted,
                        out_x,
                        out_bits,
                        layers: layers_taps,
                        accept_cycle,
                        valid_cycle,
                        out_cycle: self.cycle,
                    };
                    self.emitted += 1;
                    valid_since = None;
                    sink(&codes, frame)?;
                }
            }
            // The falling edge settles in the next iteration's eval, with the new inputs.
            self.model.step()?;
            self.cycle += 1;
            idle = if moved { 0 } else { idle + 1 };
            if idle > hang_limit {
                return Err(CosimError::Hang {
                    cycles: idle,
                    at: self.cycle,
                    accepted,
                    emitted: self.emitted - start_emitted,
                });
            }
        }
        // An even number of spacings: a stage whose buffer period is odd emits its two
        // buffers' frames at alternating spacings.
        let ii = (out_cycles.len() >= 5).then(|| {
            let last = out_cycles.len() - 1;
            let mut from = out_cycles.len() / 2;
            if (last - from) % 2 == 1 {
                from -= 1;
            }
            (out_cycles[last] - out_cycles[from]) as f64 / (last - from) as f64
        });
        Ok(RunStats {
            frames: self.emitted - start_emitted,
            cycles: self.cycle - start_cycle,
            timing: Timing {
                ii,
                latency: first_latency,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip() {
        let codes = [-128i64, 127, -1, 0, 5, -77, 64, -64, 3];
        let mut words = vec![0u32; (codes.len() * 8).div_ceil(32)];
        pack(codes.iter().copied(), 8, &mut words);
        assert_eq!(unpack_signed(&words, codes.len(), 8), codes);
        // Element j at bits [8j, 8j + 8): the first code in the least significant byte.
        assert_eq!(words[0] & 0xff, 0x80);
        assert_eq!((words[0] >> 8) & 0xff, 0x7f);
        let codes = [-2048i64, 2047, -3];
        let mut words = vec![0u32; 2];
        pack(codes.iter().copied(), 12, &mut words);
        assert_eq!(unpack_signed(&words, 3, 12), codes);
        // Fields that straddle words, and widths above 64 bits (sign-extended).
        let codes = [-5i64, 1 << 40, -(1 << 50), 7];
        let mut words = vec![0u32; (codes.len() * 61).div_ceil(32)];
        pack(codes.iter().copied(), 61, &mut words);
        assert_eq!(unpack_signed(&words, codes.len(), 61), codes);
        // The narrow path agrees with the general one on every width up to 32 and every
        // offset, negative codes and the extremes included.
        for width in 1..=32u32 {
            let lo = -(1i64 << (width - 1));
            let hi = (1i64 << (width - 1)) - 1;
            let codes: Vec<i64> = (0..37i64)
                .map(|j| match j % 5 {
                    0 => lo,
                    1 => hi,
                    2 => -1,
                    _ => (j * 7919 - 1000).clamp(lo, hi),
                })
                .collect();
            let n = (codes.len() * width as usize).div_ceil(32);
            let (mut narrow, mut any) = (vec![0u32; n], vec![0u32; n]);
            pack_narrow(codes.iter().copied(), width, &mut narrow);
            pack_any(codes.iter().copied(), width, &mut any);
            assert_eq!(narrow, any, "width {width}");
            assert_eq!(
                unpack_signed(&narrow, codes.len(), width),
                codes,
                "width {width}"
            );
        }
        let mut words = vec![0u32; 6];
        pack([-3i64, 9], 70, &mut words);
        assert_eq!(field(&words, 0, 64), (-3i64) as u64);
        assert_eq!(field(&words, 64, 6), 0x3f, "bits 64.. of -3 are the sign");
        assert_eq!(field(&words, 70, 64), 9);
        assert_eq!(field(&words, 134, 6), 0);
        // The bit-by-bit definition, on every width and offset.
        let slow = |words: &[u32], lo: usize, width: u32| {
            (0..width as usize).fold(0u64, |v, b| {
                v | (u64::from((words[(lo + b) / 32] >> ((lo + b) % 32)) & 1) << b)
            })
        };
        let words = [0x89ab_cdefu32, 0x0123_4567, 0xfedc_ba98, 0x7654_3210];
        for lo in 0..64 {
            for width in 1..=64 {
                assert_eq!(
                    field(&words, lo, width),
                    slow(&words, lo, width),
                    "{lo} {width}"
                );
            }
        }
    }
}
