//! The on-disk build cache shared by every process on the machine.
//!
//! Layout under the cache root: `runtime/<key>/` (the prebuilt Verilator runtime),
//! `models/<key>/` (one compiled model per content hash), `locks/<key>.lock`, and `tmp/` for
//! builds in progress. Guarantees: an entry directory exists only when complete — it is built
//! in a private directory under `tmp/` and renamed into place; builds of one key are serialised
//! by an exclusive file lock, so concurrent test processes and threads never share a build
//! directory and never see a half-written entry.
//!
//! A failed build leaves its scratch directory (with `build.log`, which the error names) under
//! `tmp/` for inspection; nothing is evicted automatically — deleting the whole cache root is
//! always safe while no build runs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::SimError;

/// Environment variable naming the cache root.
pub const CACHE_ENV: &str = "KAQ_SIM_CACHE";

/// Where the cache lives: `$KAQ_SIM_CACHE`, else `$CARGO_TARGET_DIR/kaq-sim-cache`, else
/// `kaq-sim-cache` in the Cargo target directory that holds the running executable (found by
/// its `CACHEDIR.TAG`), else `kaq-sim-cache` in the system temp directory.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("kaq-sim-cache");
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(target) = exe
            .ancestors()
            .skip(1)
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
    {
        return target.join("kaq-sim-cache");
    }
    std::env::temp_dir().join("kaq-sim-cache")
}

/// A SHA-256 over length-prefixed fields, so that no two field sequences collide by
/// concatenation.
#[derive(Debug, Clone, Default)]
pub struct ContentHash(Sha256);

impl ContentHash {
    /// Starts a hash tagged with what it keys (so runtime and model keys never coincide).
    pub fn new(domain: &str) -> Self {
        let mut h = ContentHash(Sha256::new());
        h.field(domain.as_bytes());
        h
    }

    /// Adds one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// The first 128 bits as 32 hex digits.
    pub fn key(self) -> String {
        let digest = self.0.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The cache root directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// Whether an entry was found or had to be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Found complete in the cache.
    Hit,
    /// Built by this call.
    Miss,
}

/// An exclusive lock on one cache key, released on drop.
#[derive(Debug)]
pub struct KeyLock {
    file: File,
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first makes it prompt.
        let _ = self.file.unlock();
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SimError {
    let path = path.to_path_buf();
    move |error| SimError::Io {
        action,
        path,
        error,
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Cache {
    /// A cache at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The final directory of `key` in `kind` (`runtime` or `models`).
    pub fn entry(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(key)
    }

    /// Takes the exclusive lock of `key`, blocking until other builders release it.
    pub fn lock(&self, key: &str) -> Result<KeyLock, SimError> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(io("creating lock dir", &dir))?;
        let path = dir.join(format!("{key}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening lock file", &path))?;
        file.lock().map_err(io("locking", &path))?;
        Ok(KeyLock { file })
    }

    /// A fresh private directory to build `key` in.
    pub fn scratch(&self, key: &str) -> Result<PathBuf, SimError> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join("tmp")
            .join(format!("{key}.{}.{n}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io("clearing scratch dir", &dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io("creating scratch dir", &dir))?;
        Ok(dir)
    }

    /// Moves a finished scratch directory to its final place. Call with the key's lock held.
    pub fn publish(&self, scratch: &Path, kind: &str, key: &str) -> Result<PathBuf, SimError> {
        let dest = self.entry(kind, key);
        let parent = self.root.join(kind);
        std::fs::create_dir_all(&parent).map_err(io("creating cache dir", &parent))?;
        std::fs::rename(scratch, &dest).map_err(io("publishing build into", &dest))?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_fields_are_length_prefixed() {
        let mut a = ContentHash::new("t");
        a.field(b"ab").field(b"c");
        let mut b = ContentHash::new("t");
        b.field(b"a").field(b"bc");
        let mut c = ContentHash::new("t");
        c.field(b"ab").field(b"c");
        let (a, b, c) = (a.key(), b.key(), c.key());
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.len(), 32);
        assert_ne!(ContentHash::new("x").key(), ContentHash::new("y").key());
    }

    #[test]
    fn publish_renames_scratch_into_place_and_locks_serialise() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::new(tmp.path());
        let lock = cache.lock("k").unwrap();
        let scratch = cache.scratch("k").unwrap();
        std::fs::write(scratch.join("f"), "x").unwrap();
        let dest = cache.publish(&scratch, "models", "k").unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "x");
        assert!(!scratch.exists());
        // A second lock on the same key from this process must wait for the first.
        let root = tmp.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _l = Cache::new(root).lock("k").unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
        drop(lock);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        t.join().unwrap();
    }
}
