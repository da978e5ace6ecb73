//! The flow's stage cache (docs/flow.md): a stage's key is the SHA-256 of its configuration
//! and of the bytes of the artefacts it reads, recorded under `.kaq-flow/` after its artefact;
//! a stage whose recorded key matches is reused. The log of every stage's outcome and time.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::plot;

/// Keys and timings of the stages.
pub(super) struct Stages {
    pub(super) out: PathBuf,
    pub(super) fresh: bool,
    pub(super) log: Vec<StageLog>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct StageLog {
    pub(super) stage: &'static str,
    pub(super) outcome: String,
    pub(super) seconds: f64,
}

pub(super) fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

impl Stages {
    pub(super) fn key_path(&self, stage: &str) -> PathBuf {
        self.out.join(".kaq-flow").join(format!("{stage}.key"))
    }

    /// Whether `stage`'s artefacts are present and were made from inputs hashing to `key`.
    pub(super) fn up_to_date(&self, stage: &str, key: &str, artefacts: &[&Path]) -> bool {
        !self.fresh
            && artefacts.iter().all(|p| p.exists())
            && fs::read_to_string(self.key_path(stage)).is_ok_and(|k| k.trim() == key)
    }

    pub(super) fn record(
        &mut self,
        stage: &'static str,
        key: &str,
        started: Instant,
    ) -> anyhow::Result<()> {
        plot::write_atomically(&self.key_path(stage), format!("{key}\n").as_bytes())?;
        self.log.push(StageLog {
            stage,
            outcome: "ran".into(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// A stage that ran but did not finish (a time limit, a tool failure): logged with its
    /// outcome and not marked up to date, so the next run tries again.
    pub(super) fn unfinished(&mut self, stage: &'static str, outcome: String, started: Instant) {
        let _ = fs::remove_file(self.key_path(stage));
        self.log.push(StageLog {
            stage,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    pub(super) fn reused(&mut self, stage: &'static str) {
        println!("{stage}: up to date, reused");
        self.log.push(StageLog {
            stage,
            outcome: "reused".into(),
            seconds: 0.0,
        });
    }

    pub(super) fn skipped(&mut self, stage: &'static str, why: String) {
        println!("{stage}: skipped ({why})");
        self.log.push(StageLog {
            stage,
            outcome: format!("skipped: {why}"),
            seconds: 0.0,
        });
    }
}

/// A stage config's JSON, for its key.
pub(super) fn config_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("a stage config always serializes")
}
