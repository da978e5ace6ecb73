//! [`Model`]: a loaded Verilator model driven cycle by cycle through the shim's C ABI.
//!
//! This is the only module with `unsafe` code: it loads the shared library a
//! [`crate::VerilatorBuild`] produced and calls the `extern "C"` functions of the generated
//! shim. The invariants every `unsafe` block relies on:
//! - the library was produced by [`crate::shim::generate`] for exactly this port list — checked
//!   at load through `sim_abi_version` and `sim_port_count`, and by the content-addressed cache
//!   directory, which ties the file to the inputs it was built from;
//! - the function pointers are looked up once from `library`, which the [`Model`] owns and
//!   drops only after `Drop::drop` has called `sim_delete`, so no pointer outlives its code;
//! - `sim` is the non-null pointer `sim_new` returned, used by this `Model` only and deleted
//!   exactly once (in `Drop`);
//! - every port index passed across is below the port count, and of the kind the called
//!   function handles (scalar input for `sim_set`, ≤ 64 bits for `sim_get`, wide for the `_wide`
//!   calls), and word buffers have exactly the port's word count — all checked in Rust first.
//!
//! `Model` is neither `Send` nor `Sync` (it holds a raw pointer): a Verilated model belongs to
//! the thread that drives it. Build it in the thread that uses it.
//!
//! Guarantees of the safe API: inputs are masked to their width before they reach the model
//! (Verilator assumes the bits above are zero); unknown port names, writes to outputs and
//! width-class mismatches are errors, never undefined behaviour.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use libloading::Library;

use crate::error::SimError;
use crate::port::{Direction, Port, mask, mask_words, sign_extend};
use crate::shim::SHIM_ABI_VERSION;
use crate::verilate::{BuiltModel, ResetPolarity, ResetPort};

type NewFn = unsafe extern "C" fn(i32) -> *mut c_void;
type SimFn = unsafe extern "C" fn(*mut c_void);
type SetFn = unsafe extern "C" fn(*mut c_void, u32, u64);
type GetFn = unsafe extern "C" fn(*mut c_void, u32) -> u64;
type SetWideFn = unsafe extern "C" fn(*mut c_void, u32, *const u32, u32) -> i32;
type GetWideFn = unsafe extern "C" fn(*mut c_void, u32, *mut u32, u32) -> i32;
type RunFn = unsafe extern "C" fn(
    *mut c_void,
    u64,
    *const u32,
    u32,
    u32,
    *const u32,
    u32,
    *mut u32,
    u64,
    *mut u64,
) -> u64;
type TraceOpenFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> i32;
type InfoFn = unsafe extern "C" fn() -> u32;

/// The shim's entry points, looked up once.
#[derive(Debug, Clone, Copy)]
struct ShimApi {
    delete: SimFn,
    eval: SimFn,
    tick: SimFn,
    step: SimFn,
    set: SetFn,
    get: GetFn,
    set_wide: SetWideFn,
    get_wide: GetWideFn,
    run: RunFn,
    trace_open: TraceOpenFn,
    trace_flush: SimFn,
}

/// A port of a particular design, resolved once by name ([`Model::port`]) for fast access.
/// Valid for every instance of the same built design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortId {
    index: u32,
    design: u64,
}

impl PortId {
    /// Position in the port list.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// Something that names a port: a [`PortId`] or a port name.
pub trait PortKey {
    /// The port's index in `model`, or an error naming what was not found.
    fn resolve(&self, model: &Model) -> Result<usize, SimError>;
}

impl PortKey for PortId {
    fn resolve(&self, model: &Model) -> Result<usize, SimError> {
        if self.design != model.design || self.index() >= model.ports.len() {
            return Err(SimError::ForeignPort {
                top: model.top.clone(),
                index: self.index(),
            });
        }
        Ok(self.index())
    }
}

impl PortKey for &str {
    fn resolve(&self, model: &Model) -> Result<usize, SimError> {
        model.port(self).map(PortId::index)
    }
}

impl PortKey for &String {
    fn resolve(&self, model: &Model) -> Result<usize, SimError> {
        model.port(self).map(PortId::index)
    }
}

/// The ports [`Model::run_while_low`] records on every cycle a valid port is nonzero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    valid: u32,
    ports: Vec<u32>,
    words: usize,
    design: u64,
}

impl Capture {
    /// Words of one record: per port in order, two for a port of at most 64 bits (low
    /// first), else its words.
    pub fn record_words(&self) -> usize {
        self.words
    }
}

/// A running instance of a Verilated design.
#[derive(Debug)]
pub struct Model {
    sim: NonNull<c_void>,
    api: ShimApi,
    top: String,
    ports: Arc<[Port]>,
    design: u64,
    clock: Option<usize>,
    reset: Option<ResetPort>,
    trace_compiled: bool,
    cycles: u64,
    library_path: PathBuf,
    /// Keeps the code alive; declared last and dropped after `sim_delete` ran in `Drop::drop`.
    _library: Library,
}

/// Maps any `u64` seed to Verilator's `randSeed` range 1..=i32::MAX (0 would mean "random").
pub fn verilator_seed(seed: u64) -> i32 {
    // The remainder is below i32::MAX, so the sum fits.
    (seed % i32::MAX as u64) as i32 + 1
}

fn load_error(path: &Path, reason: impl ToString) -> SimError {
    SimError::Load {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl Model {
    /// Loads `built` and constructs one instance whose uninitialised state (X) is randomised
    /// from `seed` (Verilator `randReset(2)`; equal seeds give equal initial states).
    pub fn new(built: &BuiltModel, seed: u64) -> Result<Model, SimError> {
        let path = built.library.as_path();
        // SAFETY: loading runs the library's static initialisers; the library is a Verilator
        // model plus the generated shim, whose initialisers only set up Verilator's globals.
        let library = unsafe { Library::new(path) }.map_err(|e| load_error(path, e))?;
        macro_rules! symbol {
            ($name:literal, $ty:ty) => {{
                // SAFETY: the generated shim defines this symbol with exactly this signature
                // (same shim ABI version, checked below before any other call).
                let f: $ty = *unsafe { library.get::<$ty>($name) }
                    .map_err(|e| load_error(path, format!("missing `{}`: {e}", $name)))?;
                f
            }};
        }
        let abi_version = symbol!("sim_abi_version", InfoFn);
        let port_count = symbol!("sim_port_count", InfoFn);
        let has_trace = symbol!("sim_has_trace", InfoFn);
        // SAFETY: argument-free functions returning constants.
        let (abi, count, traced) = unsafe { (abi_version(), port_count(), has_trace()) };
        if abi != SHIM_ABI_VERSION {
            return Err(load_error(
                path,
                format!("shim ABI {abi}, expected {SHIM_ABI_VERSION}"),
            ));
        }
        if count as usize != built.ports.len() || (traced != 0) != built.trace {
            return Err(load_error(
                path,
                format!(
                    "library has {count} ports (trace {traced}), the build declares {} (trace {})",
                    built.ports.len(),
                    built.trace
                ),
            ));
        }
        let new = symbol!("sim_new", NewFn);
        let api = ShimApi {
            delete: symbol!("sim_delete", SimFn),
            eval: symbol!("sim_eval", SimFn),
            tick: symbol!("sim_tick", SimFn),
            step: symbol!("sim_step", SimFn),
            set: symbol!("sim_set", SetFn),
            get: symbol!("sim_get", GetFn),
            set_wide: symbol!("sim_set_wide", SetWideFn),
            get_wide: symbol!("sim_get_wide", GetWideFn),
            run: symbol!("sim_run", RunFn),
            trace_open: symbol!("sim_trace_open", TraceOpenFn),
            trace_flush: symbol!("sim_trace_flush", SimFn),
        };
        // SAFETY: `sim_new` takes any int and returns an owned instance or null.
        let raw = unsafe { new(verilator_seed(seed)) };
        let sim = NonNull::new(raw).ok_or_else(|| load_error(path, "sim_new returned null"))?;
        let design = u64::from_str_radix(&built.key[..16.min(built.key.len())], 16).unwrap_or(0);
        Ok(Model {
            sim,
            api,
            top: built.top.clone(),
            ports: built.ports.clone(),
            design,
            clock: built.clock,
            reset: built.reset,
            trace_compiled: built.trace,
            cycles: 0,
            library_path: path.to_path_buf(),
            _library: library,
        })
    }

    /// The top module's name.
    pub fn top(&self) -> &str {
        &self.top
    }

    /// Every port, in index order.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The loaded library file.
    pub fn library_path(&self) -> &Path {
        &self.library_path
    }

    /// Clock cycles run so far by [`tick`](Model::tick) and [`reset`](Model::reset).
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Looks a port up by name.
    pub fn port(&self, name: &str) -> Result<PortId, SimError> {
        let index = self
            .ports
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| SimError::UnknownPort {
                top: self.top.clone(),
                name: name.to_string(),
                available: self
                    .ports
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(PortId {
            // The port count was checked against the library's u32 count at load.
            index: index as u32,
            design: self.design,
        })
    }

    fn input(&self, key: impl PortKey) -> Result<(usize, &Port), SimError> {
        let index = key.resolve(self)?;
        let port = &self.ports[index];
        if port.direction != Direction::Input {
            return Err(SimError::WrongDirection {
                port: port.name.clone(),
                direction: port.direction,
            });
        }
        Ok((index, port))
    }

    fn scalar(port: &Port) -> Result<(), SimError> {
        if port.is_wide() {
            return Err(SimError::WidePort {
                port: port.name.clone(),
                width: port.width,
            });
        }
        Ok(())
    }

    fn check_words(port: &Port, got: usize) -> Result<(), SimError> {
        if got != port.words() {
            return Err(SimError::WordCount {
                port: port.name.clone(),
                width: port.width,
                expected: port.words(),
                got,
            });
        }
        Ok(())
    }

    fn raw_set(&mut self, index: usize, value: u64) {
        // SAFETY: `index` names a scalar input of this library (checked by the callers).
        unsafe { (self.api.set)(self.sim.as_ptr(), index as u32, value) }
    }

    fn raw_get(&self, index: usize) -> u64 {
        // SAFETY: `index` names a port of at most 64 bits (checked by the callers).
        unsafe { (self.api.get)(self.sim.as_ptr(), index as u32) }
    }

    /// Drives an input of at most 64 bits; bits above its width are dropped.
    pub fn set(&mut self, port: impl PortKey, value: u64) -> Result<(), SimError> {
        let (index, p) = self.input(port)?;
        Self::scalar(p)?;
        let masked = value & mask(p.width);
        self.raw_set(index, masked);
        Ok(())
    }

    /// Drives an input with a two's-complement value, truncated to the port's width.
    pub fn set_signed(&mut self, port: impl PortKey, value: i64) -> Result<(), SimError> {
        self.set(port, value as u64)
    }

    /// Reads a port of at most 64 bits (inputs read back what was driven).
    pub fn get(&self, port: impl PortKey) -> Result<u64, SimError> {
        let index = port.resolve(self)?;
        Self::scalar(&self.ports[index])?;
        Ok(self.raw_get(index))
    }

    /// Reads a port of at most 64 bits as two's complement, sign-extended from its width.
    pub fn get_signed(&self, port: impl PortKey) -> Result<i64, SimError> {
        let index = port.resolve(self)?;
        let p = &self.ports[index];
        Self::scalar(p)?;
        Ok(sign_extend(self.raw_get(index), p.width))
    }

    /// Drives an input of any width from 32-bit words, least significant first; exactly
    /// `ceil(width / 32)` words, bits above the width dropped.
    pub fn set_wide(&mut self, port: impl PortKey, words: &[u32]) -> Result<(), SimError> {
        let (index, p) = self.input(port)?;
        Self::check_words(p, words.len())?;
        let width = p.width;
        if !p.is_wide() {
            let value = words
                .iter()
                .rev()
                .fold(0u64, |acc, &w| (acc << 32) | u64::from(w));
            self.raw_set(index, value & mask(width));
            return Ok(());
        }
        // Copy only when bits above the width are set (the common case needs no allocation).
        let rem = width % 32;
        let clean = rem == 0 || words.last().is_none_or(|&w| w >> rem == 0);
        let masked;
        let words = if clean {
            words
        } else {
            let mut copy = words.to_vec();
            mask_words(&mut copy, width);
            masked = copy;
            &masked[..]
        };
        // SAFETY: `index` is a wide input and `words` holds exactly its word count.
        let status = unsafe {
            (self.api.set_wide)(
                self.sim.as_ptr(),
                index as u32,
                words.as_ptr(),
                words.len() as u32,
            )
        };
        debug_assert_eq!(status, 0, "sim_set_wide rejected a checked call");
        Ok(())
    }

    /// Reads a port of any width into `words` (exactly `ceil(width / 32)` of them), least
    /// significant first.
    pub fn get_wide_into(&self, port: impl PortKey, words: &mut [u32]) -> Result<(), SimError> {
        let index = port.resolve(self)?;
        let p = &self.ports[index];
        Self::check_words(p, words.len())?;
        if !p.is_wide() {
            let value = self.raw_get(index);
            for (i, w) in words.iter_mut().enumerate() {
                *w = (value >> (32 * i)) as u32;
            }
            return Ok(());
        }
        // SAFETY: `index` is a wide port and `words` holds exactly its word count.
        let status = unsafe {
            (self.api.get_wide)(
                self.sim.as_ptr(),
                index as u32,
                words.as_mut_ptr(),
                words.len() as u32,
            )
        };
        debug_assert_eq!(status, 0, "sim_get_wide rejected a checked call");
        Ok(())
    }

    /// Reads a port of any width as 32-bit words, least significant first.
    pub fn get_wide(&self, port: impl PortKey) -> Result<Vec<u32>, SimError> {
        let index = port.resolve(self)?;
        let mut words = vec![0; self.ports[index].words()];
        self.get_wide_into(
            PortId {
                index: index as u32,
                design: self.design,
            },
            &mut words,
        )?;
        Ok(words)
    }

    /// Settles combinational logic after inputs changed (no clock edge).
    pub fn eval(&mut self) {
        // SAFETY: `sim` is live (see the module invariants).
        unsafe { (self.api.eval)(self.sim.as_ptr()) }
    }

    /// One clock cycle: clock high, eval, clock low, eval (and two VCD samples when tracing).
    pub fn tick(&mut self) -> Result<(), SimError> {
        if self.clock.is_none() {
            return Err(SimError::NoControlPort {
                top: self.top.clone(),
                role: "clock",
            });
        }
        // SAFETY: `sim` is live; the shim toggles the clock port it was generated with.
        unsafe { (self.api.tick)(self.sim.as_ptr()) }
        self.cycles += 1;
        Ok(())
    }

    /// One clock cycle for a caller that sets inputs and calls [`eval`](Model::eval) before
    /// it reads outputs: the rising edge is evaluated, the clock is left low and its falling
    /// edge is settled by that next `eval` together with the new inputs (one evaluation per
    /// cycle fewer than [`tick`](Model::tick); the design must have no falling-edge logic).
    /// Until then the outputs show the state just after the rising edge.
    pub fn step(&mut self) -> Result<(), SimError> {
        if self.clock.is_none() {
            return Err(SimError::NoControlPort {
                top: self.top.clone(),
                role: "clock",
            });
        }
        // SAFETY: `sim` is live; the shim toggles the clock port it was generated with.
        unsafe { (self.api.step)(self.sim.as_ptr()) }
        self.cycles += 1;
        Ok(())
    }

    /// Runs up to `max` clock cycles ([`tick`](Model::tick)s, inputs held) in the shim, one
    /// call for all of them, while every port of `stop` (at most 64 bits each) reads 0: the
    /// run ends before the first cycle whose outputs, as settled after the previous tick,
    /// show a `stop` port nonzero. With a `capture`, each cycle whose `capture.valid` port
    /// reads nonzero first appends one record of its ports' words to `buf`
    /// ([`Capture::record_words`] words: a port of at most 64 bits as two words, low first,
    /// a wide one as its words); the run also ends, before that cycle, when the record would
    /// not fit. Returns the cycles run and the words of `buf` written.
    pub fn run_while_low(
        &mut self,
        max: u64,
        stop: &[PortId],
        capture: Option<&Capture>,
        buf: &mut [u32],
    ) -> Result<(u64, usize), SimError> {
        if self.clock.is_none() {
            return Err(SimError::NoControlPort {
                top: self.top.clone(),
                role: "clock",
            });
        }
        let mut stops = Vec::with_capacity(stop.len());
        for &p in stop {
            let index = p.resolve(self)?;
            Self::scalar(&self.ports[index])?;
            stops.push(index as u32);
        }
        let (valid, cap): (u32, &[u32]) = match capture {
            Some(c) => {
                if c.design != self.design {
                    return Err(SimError::ForeignPort {
                        top: self.top.clone(),
                        index: c.valid as usize,
                    });
                }
                (c.valid, &c.ports)
            }
            None => (u32::MAX, &[]),
        };
        let mut used = 0u64;
        // SAFETY: `sim` is live; every index in `stops`, `valid` and `cap` names a port of this
        // library (resolved above or by `Model::capture`), each `stop` and `valid` one of at
        // most 64 bits; the shim writes at most `buf.len()` words into `buf` and one u64 into
        // `used`.
        let n = unsafe {
            (self.api.run)(
                self.sim.as_ptr(),
                max,
                stops.as_ptr(),
                stops.len() as u32,
                valid,
                cap.as_ptr(),
                cap.len() as u32,
                buf.as_mut_ptr(),
                buf.len() as u64,
                &mut used,
            )
        };
        self.cycles += n;
        Ok((n, used as usize))
    }

    /// A capture for [`run_while_low`](Model::run_while_low): the `ports` recorded on every
    /// cycle `valid` (at most 64 bits) reads nonzero.
    pub fn capture(&self, valid: PortId, ports: &[PortId]) -> Result<Capture, SimError> {
        let v = valid.resolve(self)?;
        Self::scalar(&self.ports[v])?;
        let mut indices = Vec::with_capacity(ports.len());
        let mut words = 0;
        for &p in ports {
            let index = p.resolve(self)?;
            let port = &self.ports[index];
            words += if port.is_wide() { port.words() } else { 2 };
            indices.push(index as u32);
        }
        Ok(Capture {
            valid: v as u32,
            ports: indices,
            words,
            design: self.design,
        })
    }

    /// Holds reset active for `cycles` clock cycles, then releases it and settles.
    pub fn reset(&mut self, cycles: u32) -> Result<(), SimError> {
        let reset = self.reset.ok_or_else(|| SimError::NoControlPort {
            top: self.top.clone(),
            role: "reset",
        })?;
        let active = u64::from(reset.polarity == ResetPolarity::ActiveHigh);
        self.raw_set(reset.index, active);
        for _ in 0..cycles {
            self.tick()?;
        }
        self.raw_set(reset.index, active ^ 1);
        self.eval();
        Ok(())
    }

    /// Starts writing a VCD trace to `path`, sampled twice per [`tick`](Model::tick); the file
    /// is complete when the model is dropped (or after [`flush_trace`](Model::flush_trace)).
    /// Only for models built with `trace(true)`, once per instance.
    pub fn trace(&mut self, path: impl AsRef<Path>) -> Result<(), SimError> {
        let path = path.as_ref();
        let err = |reason: String| SimError::Trace {
            top: self.top.clone(),
            reason,
        };
        if !self.trace_compiled {
            return Err(err("the model was built without trace(true)".into()));
        }
        let c_path = path
            .to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| err(format!("unusable path {}", path.display())))?;
        // SAFETY: `sim` is live and `c_path` is a NUL-terminated string that outlives the call
        // (the VCD writer copies the file name).
        let status = unsafe { (self.api.trace_open)(self.sim.as_ptr(), c_path.as_ptr()) };
        match status {
            0 => Ok(()),
            -2 => Err(err("a trace is already open".into())),
            _ => Err(err(format!("cannot open {}", path.display()))),
        }
    }

    /// Flushes the open VCD trace to disk (no-op without one).
    pub fn flush_trace(&mut self) {
        // SAFETY: `sim` is live; the shim ignores the call when no trace is open.
        unsafe { (self.api.trace_flush)(self.sim.as_ptr()) }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: `sim` came from `sim_new` of `self.library`, which is still loaded (fields
        // drop after this), and is deleted only here.
        unsafe { (self.api.delete)(self.sim.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_never_map_to_verilators_random_zero() {
        for seed in [0, 1, i32::MAX as u64 - 1, i32::MAX as u64, u64::MAX] {
            let s = verilator_seed(seed);
            assert!(s >= 1, "{seed} -> {s}");
        }
        assert_ne!(verilator_seed(1), verilator_seed(2));
    }
}
