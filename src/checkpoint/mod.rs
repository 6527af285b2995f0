//! Checkpoints: a job's state saved while it runs, so that a restart continues where the
//! last completed checkpoint left off and the output has no gap and no duplicate.
//!
//! This is Flink's model (asynchronous barrier snapshots, Carbone et al., "Lightweight
//! Asynchronous Snapshots for Distributed Dataflows", 2015):
//!
//! ```text
//!  coordinator ──trigger(n)──► sources: save position, send Barrier(n) after their last batch
//!  operators: on Barrier(n) (aligned over all inputs) save state, pass the barrier on
//!  sink: on Barrier(n) pre-commit (close files as pending) ─► manifest written ─► commit
//! ```
//!
//! On disk, under `state.checkpoints.dir` (default `$XDG_STATE_HOME/weir/checkpoints`):
//!
//! ```text
//!  <dir>/<job>/_lock                      held while a run of the job is alive
//!  <dir>/<job>/chk-<n>/<task>.arrows      per task that keeps state: its batches, each an
//!                                        Arrow IPC stream preceded by its length (u64 LE)
//!  <dir>/<job>/chk-<n>/_metadata          the manifest (JSON), written last and atomically
//! ```
//!
//! A checkpoint without its `_metadata` does not exist: it is never restored and is removed
//! at the next start. The manifest names every task of the plan (its stable id and its
//! name), each state file's size and CRC-32, the checkpoint id and whether the job had
//! finished. Restoring into a plan whose tasks differ fails with the task that no longer
//! fits; a state file whose size or checksum differ is refused with its path.
//!
//! Settings (Flink's names): `execution.checkpointing.interval` (checkpointing is off
//! without it, as in Flink), `state.checkpoints.dir`, `pipeline.name` (the job's identity
//! across restarts; default: a hash of the statement), `execution.checkpointing.mode`
//! (`EXACTLY_ONCE`, the default, or `AT_LEAST_ONCE`), `state.checkpoints.num-retained`
//! (default 1), `execution.checkpointing.tolerable-failed-checkpoints` (default 0: the
//! first failed checkpoint fails the job, as in Flink) and `execution.savepoint.path` (a
//! `chk-<n>` folder, or its `_metadata`, to restore).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Result, WeirError};

/// The state a task saves: Arrow batches, any schema (None: the task keeps none).
pub type State = Option<Vec<RecordBatch>>;

/// How a job checkpoints, from its `SET` settings (see the module's documentation).
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The job's identity: its folder under `dir`, and the prefix of its sink files.
    pub job: String,
    /// How often a checkpoint starts; None: checkpointing is off.
    pub interval: Option<Duration>,
    /// The folder holding every job's checkpoints.
    pub dir: PathBuf,
    /// `EXACTLY_ONCE` (true) or `AT_LEAST_ONCE`.
    pub exactly_once: bool,
    /// Completed checkpoints kept on disk (at least 1).
    pub retained: usize,
    /// Failed checkpoints in a row the job survives.
    pub tolerable_failures: u32,
    /// A checkpoint to restore instead of the job's latest.
    pub restore_path: Option<PathBuf>,
    /// Ignore saved state: start over (a new checkpoint history replaces the old one).
    pub from_scratch: bool,
    /// For tests of the three-run form (run straight; stop part-way with a savepoint;
    /// restore and finish): each source waits after emitting this many rows until the job
    /// is stopped, so that a stop lands part-way through even a tiny input. Never set from
    /// SQL.
    #[doc(hidden)]
    pub pause_sources_after: Option<u64>,
}

/// The option keys read by [`CheckpointConfig::from_settings`].
pub const SETTINGS: &[&str] = &[
    "pipeline.name",
    "execution.checkpointing.interval",
    "execution.checkpointing.mode",
    "execution.checkpointing.tolerable-failed-checkpoints",
    "state.checkpoints.dir",
    "state.checkpoints.num-retained",
    "execution.savepoint.path",
];

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The default `state.checkpoints.dir`: `$XDG_STATE_HOME/weir/checkpoints`, else
/// `~/.local/state/weir/checkpoints`, else `.weir/checkpoints` in the current folder.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("weir/checkpoints");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/weir/checkpoints"),
        None => PathBuf::from(".weir/checkpoints"),
    }
}

/// A job name as a folder and file-name part: letters, digits, `_`, `-` and `.` kept, the
/// rest replaced by `_`.
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("job{s}")
    } else {
        s
    }
}

impl CheckpointConfig {
    /// Reads the settings; `default_job` names the job when `pipeline.name` is not set.
    /// Errors name the setting whose value is wrong.
    pub fn from_settings(
        settings: &[(String, String)],
        default_job: &str,
        from_scratch: bool,
    ) -> Result<CheckpointConfig> {
        let bad = |key: &str, m: String| WeirError::user(format!("setting '{key}': {m}"));
        let interval = match setting(settings, "execution.checkpointing.interval") {
            None => None,
            Some(v) => {
                let d = crate::sql::options::parse_duration(v)
                    .map_err(|m| bad("execution.checkpointing.interval", m))?;
                if d < Duration::from_millis(10) {
                    return Err(bad(
                        "execution.checkpointing.interval",
                        format!("'{v}' is below the minimum of 10 ms"),
                    ));
                }
                Some(d)
            }
        };
        let exactly_once = match setting(settings, "execution.checkpointing.mode") {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("exactly_once") => true,
            Some(v) if v.eq_ignore_ascii_case("at_least_once") => false,
            Some(v) => {
                return Err(bad(
                    "execution.checkpointing.mode",
                    format!("'{v}': use EXACTLY_ONCE or AT_LEAST_ONCE"),
                ));
            }
        };
        let number = |key: &str, default: u64| -> Result<u64> {
            match setting(settings, key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| bad(key, format!("'{v}' is not a whole number"))),
            }
        };
        let retained = number("state.checkpoints.num-retained", 1)?;
        if retained == 0 {
            return Err(bad(
                "state.checkpoints.num-retained",
                "must be at least 1".into(),
            ));
        }
        let tolerable = number("execution.checkpointing.tolerable-failed-checkpoints", 0)?;
        let dir = match setting(settings, "state.checkpoints.dir") {
            Some(d) if !d.trim().is_empty() => crate::connector::local_path(d.trim()),
            _ => default_dir(),
        };
        let job = match setting(settings, "pipeline.name") {
            Some(n) if !n.trim().is_empty() => sanitize(n.trim()),
            _ => sanitize(default_job),
        };
        Ok(CheckpointConfig {
            job,
            interval,
            dir,
            exactly_once,
            retained: retained.min(u32::MAX as u64) as usize,
            tolerable_failures: tolerable.min(u32::MAX as u64) as u32,
            restore_path: setting(settings, "execution.savepoint.path")
                .filter(|p| !p.trim().is_empty())
                .map(|p| crate::connector::local_path(p.trim())),
            from_scratch,
            pause_sources_after: None,
        })
    }

    /// True when the job takes checkpoints or restores one.
    pub fn enabled(&self) -> bool {
        self.interval.is_some() || self.restore_path.is_some()
    }
}

/// One task of a job as a manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskEntry {
    /// Stable within a plan: the task's place in it (`source-0`, `op-3`, `sink`).
    pub id: String,
    /// What the task is (`window aggregate HOP …`), to tell a changed query.
    pub name: String,
    /// The state file in the checkpoint's folder, its size (bytes) and CRC-32.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub crc32: u32,
}

/// The `_metadata` file of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub job: String,
    pub checkpoint: u64,
    /// When it completed, epoch ms.
    pub time_ms: i64,
    /// The job had run to the end of its input: nothing is left to do.
    pub finished: bool,
    /// Taken when the job was stopped (a savepoint).
    pub savepoint: bool,
    /// The job's `pipeline.max-parallelism`: its number of key groups, which a restore at
    /// another parallelism must share.
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: usize,
    pub tasks: Vec<TaskEntry>,
}

fn default_max_parallelism() -> usize {
    crate::operator::exchange::DEFAULT_MAX_PARALLELISM
}

/// What a completed checkpoint measured, for the job list and the log.
#[derive(Debug, Clone)]
pub struct CheckpointStats {
    pub id: u64,
    /// When it completed.
    pub completed: SystemTime,
    /// From its trigger to its manifest.
    pub duration: Duration,
    /// State files, bytes.
    pub bytes: u64,
    pub path: PathBuf,
}

/// A restored checkpoint: its manifest and the states of its tasks.
pub struct Restored {
    pub manifest: Manifest,
    pub path: PathBuf,
    states: Mutex<HashMap<String, Vec<RecordBatch>>>,
}

impl Restored {
    /// Takes the state saved for `task` (once).
    pub fn take(&self, task: &str) -> Option<Vec<RecordBatch>> {
        self.states.lock().ok()?.remove(task)
    }

    /// Copies of the states saved by operator `base`'s subtasks — `base` itself when it
    /// ran as one, `base.<k>` when it ran as several — in subtask order: what a restore at
    /// another parallelism splits between the new subtasks, each taking its key groups.
    pub fn states_of(&self, base: &str) -> Vec<Vec<RecordBatch>> {
        let Ok(states) = self.states.lock() else {
            return vec![];
        };
        let mut found: Vec<(usize, Vec<RecordBatch>)> = states
            .iter()
            .filter_map(|(id, state)| {
                let k = if id == base {
                    0
                } else {
                    id.strip_prefix(base)?.strip_prefix('.')?.parse().ok()?
                };
                Some((k, state.clone()))
            })
            .collect();
        found.sort_by_key(|(k, _)| *k);
        found.into_iter().map(|(_, state)| state).collect()
    }

    /// The parallelism of the job's keyed operators when the checkpoint was taken.
    pub fn parallelism(&self) -> usize {
        parallelism_of_ids(self.manifest.tasks.iter().map(|t| t.id.as_str()))
    }
}

enum WriterMsg {
    State {
        id: u64,
        task: String,
        state: Vec<RecordBatch>,
    },
    Complete {
        id: u64,
        manifest: Manifest,
        finished: Vec<(String, Vec<RecordBatch>)>,
        reply: mpsc::SyncSender<Result<(u64, PathBuf)>>,
    },
}

/// The checkpoints of one running job: triggers them, gathers the tasks' states, writes
/// them and the manifest, and holds what was restored.
pub struct Checkpointer {
    pub config: CheckpointConfig,
    job_dir: PathBuf,
    /// This run's id: unique per start, part of the names of the files its sinks write.
    pub run: String,
    restored: Option<Restored>,
    tasks: Mutex<Vec<TaskEntry>>,
    /// The job's key groups (`pipeline.max-parallelism`), recorded in each manifest.
    max_parallelism: AtomicUsize,
    /// The restored checkpoint was taken at another parallelism: its keyed state is split
    /// anew by key group ([`Checkpointer::check_plan`]).
    rescaled: AtomicBool,
    /// The checkpoint id this run started from (the highest on disk): every id above it
    /// is requested during this run, and every source sends a barrier for each.
    start: u64,
    /// The highest checkpoint id requested from the sources.
    requested: AtomicU64,
    /// The highest id that completed or failed.
    settled: AtomicU64,
    triggered_at: Mutex<BTreeMap<u64, Instant>>,
    /// Final states of tasks that have ended (they take no more barriers).
    finished: Mutex<BTreeMap<String, State>>,
    writer: Mutex<mpsc::Sender<WriterMsg>>,
    last: Mutex<Option<CheckpointStats>>,
    failures_in_row: AtomicU32,
    failed_total: AtomicU64,
    completed_total: AtomicU64,
    /// Completed checkpoints' durations, ms: (sum, max), and their sizes, bytes: (sum, max).
    durations: Mutex<((u128, u128), (u64, u64))>,
    stopping: AtomicBool,
    /// Held while the job runs; released when it ends ([`Checkpointer::release`]).
    lock: Mutex<Option<File>>,
    /// What operators that write outside the sink learn of checkpoints (see
    /// [`Checkpointer::completed_id`] and [`Checkpointer::sink_done`]).
    progress: tokio::sync::watch::Sender<Progress>,
}

/// The completed checkpoints as operators see them: the highest id completed in this run
/// (or restored), and whether the sink has ended (no more checkpoint will complete).
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    completed: u64,
    sink_done: bool,
}

/// A crash on purpose, for the tests that kill a job at the worst moments: when the
/// environment has `WEIR_CRASH_AT=<point>:<checkpoint id>` and this is that point of that
/// checkpoint, the process aborts at once (as `kill -9` would). The points are
/// `before-manifest` (every state file written, no manifest) and `after-manifest` (the
/// checkpoint complete, its files not yet committed by the sink).
pub fn crash_point(point: &str, id: u64) {
    if let Ok(at) = std::env::var("WEIR_CRASH_AT")
        && at == format!("{point}:{id}")
    {
        crate::message::warning(format!("WEIR_CRASH_AT={at}: aborting"));
        std::process::abort();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A run id: the start time (ms, base 36) and 4 random hex digits.
fn new_run_id() -> String {
    let mut n = now_ms() as u64;
    let mut s = Vec::new();
    while n > 0 {
        let d = (n % 36) as u8;
        s.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    s.reverse();
    let r: u16 = rand::random();
    format!("{}{r:04x}", String::from_utf8_lossy(&s))
}

/// A fresh run id for jobs that do not checkpoint (their sink files still carry one).
pub fn run_id() -> String {
    new_run_id()
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> WeirError {
    WeirError::external(format!("cannot {what} '{}': {e}", path.display()))
}

/// The completed checkpoints in a job's folder, by id.
fn completed_in(job_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(job_dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("chk-")
            .and_then(|n| n.parse::<u64>().ok())
            && e.path().join("_metadata").is_file()
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    out
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("_metadata");
    let text = std::fs::read_to_string(&path).map_err(|e| io_err("read", &path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        WeirError::user(format!(
            "checkpoint manifest '{}' is corrupt: {e}",
            path.display()
        ))
    })
}

/// Reads every state file a manifest names, checking its size and checksum.
fn read_states(dir: &Path, m: &Manifest) -> Result<HashMap<String, Vec<RecordBatch>>> {
    let mut states = HashMap::new();
    for t in &m.tasks {
        let Some(file) = &t.file else { continue };
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| io_err("read checkpoint state", &path, e))?;
        if bytes.len() as u64 != t.bytes || crc32fast::hash(&bytes) != t.crc32 {
            return Err(WeirError::user(format!(
                "checkpoint state file '{}' is corrupt: its size or checksum differs from the manifest's",
                path.display()
            ))
            .with_hint("restore an older checkpoint with SET 'execution.savepoint.path', or start over with --from-scratch"));
        }
        let batches = read_framed(&bytes).map_err(|e| {
            WeirError::user(format!(
                "checkpoint state file '{}' is corrupt: {e}",
                path.display()
            ))
        })?;
        states.insert(t.id.clone(), batches);
    }
    Ok(states)
}

/// Writes a task's batches to `path`: each batch as one Arrow IPC stream (its own schema,
/// metadata included), preceded by the stream's length in bytes (u64, little-endian).
/// Returns the file's size (bytes) and CRC-32.
fn write_state(path: &Path, batches: &[RecordBatch]) -> Result<(u64, u32)> {
    let mut buf: Vec<u8> = Vec::new();
    for b in batches {
        let mut one = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut one, &b.schema())?;
            w.write(b)?;
            w.finish()?;
        }
        buf.extend_from_slice(&(one.len() as u64).to_le_bytes());
        buf.extend_from_slice(&one);
    }
    let mut f = File::create(path).map_err(|e| io_err("write checkpoint state", path, e))?;
    f.write_all(&buf)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("write checkpoint state", path, e))?;
    Ok((buf.len() as u64, crc32fast::hash(&buf)))
}

/// Reads what [`write_state`] wrote.
fn read_framed(bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, String> {
    let mut out = vec![];
    let mut at = 0usize;
    while at < bytes.len() {
        let len_bytes: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or("a frame's length is cut off")?;
        let len = u64::from_le_bytes(len_bytes) as usize;
        at += 8;
        let frame = bytes
            .get(at..at.saturating_add(len))
            .ok_or("a frame is cut off")?;
        at += len;
        let reader =
            StreamReader::try_new(std::io::Cursor::new(frame), None).map_err(|e| e.to_string())?;
        for b in reader {
            out.push(b.map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

impl Checkpointer {
    /// Opens the job's checkpoint folder: takes its lock (one live run per job), removes
    /// checkpoints that never completed, and loads the checkpoint to restore (the one
    /// `execution.savepoint.path` names, else the latest completed, unless starting from
    /// scratch).
    pub fn open(config: CheckpointConfig) -> Result<Arc<Checkpointer>> {
        let job_dir = config.dir.join(&config.job);
        std::fs::create_dir_all(&job_dir).map_err(|e| {
            io_err("create the checkpoint directory", &job_dir, e)
                .with_hint("set 'state.checkpoints.dir' to a folder Weir can write")
        })?;
        let lock_path = job_dir.join("_lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(WeirError::user(format!(
                    "job '{}' is already running (its checkpoints in '{}' are locked by another run)",
                    config.job,
                    job_dir.display()
                ))
                .with_hint("stop the other run, or SET 'pipeline.name' to another name"));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path, e)),
        }
        let completed = completed_in(&job_dir);
        let latest = completed.last().map(|(n, _)| *n).unwrap_or(0);
        // Folders of checkpoints that never completed.
        if let Ok(entries) = std::fs::read_dir(&job_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("chk-") && !e.path().join("_metadata").is_file() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let restore_dir = match (&config.restore_path, config.from_scratch) {
            (Some(p), _) => {
                let p = if p.file_name().is_some_and(|n| n == "_metadata") {
                    p.parent().map(Path::to_path_buf).unwrap_or_default()
                } else {
                    p.clone()
                };
                if !p.join("_metadata").is_file() {
                    return Err(WeirError::user(format!(
                        "setting 'execution.savepoint.path': '{}' is not a completed checkpoint (no _metadata)",
                        p.display()
                    )));
                }
                Some(p)
            }
            (None, true) => None,
            (None, false) => completed.last().map(|(_, p)| p.clone()),
        };
        let restored = match restore_dir {
            Some(dir) => {
                let manifest = read_manifest(&dir)?;
                let states = read_states(&dir, &manifest)?;
                Some(Restored {
                    manifest,
                    path: dir,
                    states: Mutex::new(states),
                })
            }
            None => None,
        };
        // Ids go on from the highest seen, so a new checkpoint never reuses a folder.
        let start = latest.max(restored.as_ref().map_or(0, |r| r.manifest.checkpoint));
        let (tx, rx) = mpsc::channel();
        let dir2 = job_dir.clone();
        let retained = config.retained;
        std::thread::Builder::new()
            .name("weir-checkpoint-writer".into())
            .spawn(move || writer_loop(dir2, retained, rx))
            .map_err(|e| WeirError::external(format!("cannot start a thread: {e}")))?;
        Ok(Arc::new(Checkpointer {
            job_dir,
            run: new_run_id(),
            restored,
            tasks: Mutex::new(vec![]),
            start,
            requested: AtomicU64::new(start),
            settled: AtomicU64::new(start),
            progress: tokio::sync::watch::Sender::new(Progress {
                completed: start,
                sink_done: false,
            }),
            triggered_at: Mutex::new(BTreeMap::new()),
            finished: Mutex::new(BTreeMap::new()),
            writer: Mutex::new(tx),
            last: Mutex::new(None),
            failures_in_row: AtomicU32::new(0),
            max_parallelism: AtomicUsize::new(default_max_parallelism()),
            rescaled: AtomicBool::new(false),
            failed_total: AtomicU64::new(0),
            completed_total: AtomicU64::new(0),
            durations: Mutex::new(((0, 0), (0, 0))),
            stopping: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            config,
        }))
    }

    /// Releases the job's lock once every task has ended, so that the next run of the job
    /// (in this process too) can start while tasks still hold this checkpointer.
    pub fn release(&self) {
        if let Ok(mut l) = self.lock.lock() {
            l.take();
        }
    }

    /// The checkpoint this run restored, if any.
    pub fn restored(&self) -> Option<&Restored> {
        self.restored.as_ref()
    }

    /// The job's folder of checkpoints.
    pub fn job_dir(&self) -> &Path {
        &self.job_dir
    }

    /// Records a task of the plan, in plan order.
    pub fn register(&self, id: &str, name: &str) {
        if let Ok(mut t) = self.tasks.lock() {
            t.push(TaskEntry {
                id: id.to_string(),
                name: name.to_string(),
                file: None,
                bytes: 0,
                crc32: 0,
            });
        }
    }

    /// Checks that the restored checkpoint was taken of this plan: the same tasks, in the
    /// same places, at any parallelism — taken at another, its keyed state is split anew
    /// by key group ([`Checkpointer::is_rescaled`]), which needs the same
    /// `max_parallelism` (as Flink: the number of key groups cannot change). Call after
    /// every task registered.
    pub fn check_plan(&self, max_parallelism: usize) -> Result<()> {
        self.max_parallelism
            .store(max_parallelism, Ordering::Relaxed);
        let Some(r) = &self.restored else {
            return Ok(());
        };
        let tasks = self.tasks.lock().map(|t| t.clone()).unwrap_or_default();
        if r.manifest.max_parallelism != max_parallelism {
            return Err(WeirError::user(format!(
                "checkpoint {} of job '{}' ('{}') splits its keyed state into {} key groups, and this run has {max_parallelism} ('pipeline.max-parallelism')",
                r.manifest.checkpoint,
                self.config.job,
                r.path.display(),
                r.manifest.max_parallelism,
            ))
            .with_hint(format!("SET 'pipeline.max-parallelism' = '{}' to resume it, or start over with --from-scratch", r.manifest.max_parallelism)));
        }
        let saved_p = r.parallelism();
        let now_p = parallelism_of_ids(tasks.iter().map(|t| t.id.as_str()));
        self.rescaled.store(saved_p != now_p, Ordering::Relaxed);
        // One entry per operator, whatever its number of subtasks.
        let base = |id: &str| match id.rsplit_once('.') {
            Some((b, k)) if k.parse::<usize>().is_ok() => b.to_string(),
            _ => id.to_string(),
        };
        let mut saved_ops: Vec<TaskEntry> = vec![];
        for t in &r.manifest.tasks {
            let id = base(&t.id);
            if !saved_ops.iter().any(|s| s.id == id) {
                saved_ops.push(TaskEntry { id, ..t.clone() });
            }
        }
        let mut tasks_ops: Vec<TaskEntry> = vec![];
        for t in &tasks {
            let id = base(&t.id);
            if !tasks_ops.iter().any(|s| s.id == id) {
                tasks_ops.push(TaskEntry { id, ..t.clone() });
            }
        }
        let tasks = tasks_ops;
        for saved in &saved_ops {
            match tasks.iter().find(|t| t.id == saved.id) {
                Some(t) if t.name == saved.name => {}
                // Checkpoints of earlier versions name a source without what it reads.
                Some(t)
                    if saved.name.starts_with("source ")
                        && t.name.starts_with(&format!("{} (", saved.name)) => {}
                found => {
                    return Err(WeirError::user(format!(
                        "checkpoint {} of job '{}' ('{}') holds the state of task {} ({}), which this query {}; the query changed since it was taken",
                        r.manifest.checkpoint,
                        self.config.job,
                        r.path.display(),
                        saved.id,
                        saved.name,
                        match found {
                            Some(t) => format!("has as '{}' there", t.name),
                            None => "no longer has".to_string(),
                        }
                    ))
                    .with_hint("run the query it was taken of, start over with --from-scratch, or SET 'pipeline.name' to a new name"));
                }
            }
        }
        if let Some(t) = tasks
            .iter()
            .find(|t| !saved_ops.iter().any(|s| s.id == t.id))
        {
            return Err(WeirError::user(format!(
                "checkpoint {} of job '{}' has no state for task {} ({}): the query changed since it was taken",
                r.manifest.checkpoint, self.config.job, t.id, t.name
            ))
            .with_hint("start over with --from-scratch, or SET 'pipeline.name' to a new name"));
        }
        Ok(())
    }

    /// True when the restored checkpoint was taken at another parallelism (known once
    /// [`Checkpointer::check_plan`] ran): each keyed operator's subtasks then take their
    /// key groups' rows of every old subtask's state.
    pub fn is_rescaled(&self) -> bool {
        self.rescaled.load(Ordering::Relaxed)
    }

    /// Asks the sources for checkpoint `n+1` unless one is still under way; returns its id.
    /// A checkpoint under way longer than 10 minutes (Flink's default
    /// `execution.checkpointing.timeout`) counts as failed.
    pub fn trigger(&self) -> Option<u64> {
        let req = self.requested.load(Ordering::SeqCst);
        if self.settled.load(Ordering::SeqCst) < req {
            let started = self
                .triggered_at
                .lock()
                .ok()
                .and_then(|t| t.get(&req).copied());
            match started {
                Some(s) if s.elapsed() > Duration::from_secs(600) => {
                    self.settled.fetch_max(req, Ordering::SeqCst);
                    self.failed_total.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(checkpoint = req, "checkpoint timed out after 10 min");
                }
                _ => return None,
            }
        }
        Some(self.next_id())
    }

    fn next_id(&self) -> u64 {
        let id = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut t) = self.triggered_at.lock() {
            t.insert(id, Instant::now());
        }
        id
    }

    /// The job is being stopped: one last checkpoint (a savepoint) is requested, and sinks
    /// will discard what comes after it.
    pub fn stop_with_savepoint(&self) -> u64 {
        self.stopping.store(true, Ordering::SeqCst);
        self.next_id()
    }

    /// True once [`Checkpointer::stop_with_savepoint`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The id this run's checkpoints count from: a source that starts late still sends the
    /// barriers of every checkpoint requested since the run began (a stop right after the
    /// start requests a savepoint before some sources are up).
    pub fn start_id(&self) -> u64 {
        self.start
    }

    /// The highest checkpoint id requested so far (sources compare it with the last
    /// barrier they sent).
    pub fn requested(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }

    /// Saves a task's state for checkpoint `id` (written in the background).
    pub fn store(&self, id: u64, task: &str, state: State) {
        let Some(state) = state else { return };
        if let Ok(w) = self.writer.lock() {
            let _ = w.send(WriterMsg::State {
                id,
                task: task.to_string(),
                state,
            });
        }
    }

    /// A task has ended: its final state stands for it in every later checkpoint.
    pub fn task_finished(&self, task: &str, state: State) {
        if let Ok(mut f) = self.finished.lock() {
            f.insert(task.to_string(), state);
        }
    }

    /// Completes checkpoint `id` once the sink has its barrier: every task before it has
    /// saved its state. Writes the sink's state and the manifest, then returns; the sink
    /// commits after this returns `Ok(Some(_))`. `Ok(None)`: the checkpoint failed (it is
    /// reported on stderr) and the job tolerates it; the sink keeps its pending files for the
    /// next one. An error: more checkpoints failed in a row than
    /// `execution.checkpointing.tolerable-failed-checkpoints` allows; the job fails.
    /// `finished`: the job ran to the end of its input.
    pub fn complete(
        &self,
        id: u64,
        sink_state: State,
        finished: bool,
    ) -> Result<Option<CheckpointStats>> {
        let mut tasks = self.tasks.lock().map(|t| t.clone()).unwrap_or_default();
        let finished_states: Vec<(String, Vec<RecordBatch>)> = self
            .finished
            .lock()
            .map(|f| {
                f.iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(s) = sink_state {
            finished_states_push(&mut tasks, "sink");
            if let Ok(w) = self.writer.lock() {
                let _ = w.send(WriterMsg::State {
                    id,
                    task: "sink".into(),
                    state: s,
                });
            }
        }
        let manifest = Manifest {
            version: 1,
            job: self.config.job.clone(),
            checkpoint: id,
            time_ms: now_ms(),
            finished,
            savepoint: self.is_stopping(),
            max_parallelism: self.max_parallelism.load(Ordering::Relaxed),
            tasks,
        };
        let (reply, rx) = mpsc::sync_channel(1);
        let sent = self.writer.lock().ok().is_some_and(|w| {
            w.send(WriterMsg::Complete {
                id,
                manifest,
                finished: finished_states,
                reply,
            })
            .is_ok()
        });
        let result = if sent {
            rx.recv()
                .unwrap_or_else(|_| Err(WeirError::internal("the checkpoint writer stopped")))
        } else {
            Err(WeirError::internal("the checkpoint writer stopped"))
        };
        self.settled.fetch_max(id, Ordering::SeqCst);
        let started = self
            .triggered_at
            .lock()
            .ok()
            .and_then(|mut t| {
                let s = t.get(&id).copied();
                t.retain(|k, _| *k > id);
                s
            })
            .unwrap_or_else(Instant::now);
        match result {
            Ok((bytes, path)) => {
                self.failures_in_row.store(0, Ordering::Relaxed);
                self.progress
                    .send_modify(|p| p.completed = p.completed.max(id));
                self.completed_total.fetch_add(1, Ordering::Relaxed);
                let stats = CheckpointStats {
                    id,
                    completed: SystemTime::now(),
                    duration: started.elapsed(),
                    bytes,
                    path,
                };
                tracing::info!(
                    job = %self.config.job,
                    checkpoint = id,
                    bytes,
                    ms = stats.duration.as_millis() as u64,
                    "checkpoint completed"
                );
                if let Ok(mut l) = self.last.lock() {
                    *l = Some(stats.clone());
                }
                if let Ok(mut d) = self.durations.lock() {
                    let ms = stats.duration.as_millis();
                    *d = (
                        (d.0.0 + ms, d.0.1.max(ms)),
                        (d.1.0 + bytes, d.1.1.max(bytes)),
                    );
                }
                Ok(Some(stats))
            }
            Err(e) => {
                self.failed_total.fetch_add(1, Ordering::Relaxed);
                let n = self.failures_in_row.fetch_add(1, Ordering::Relaxed) + 1;
                crate::message::say(format!(
                    "[WARNING] checkpoint {id} of job '{}' failed ({n} in a row, {} tolerated): {}",
                    self.config.job,
                    self.config.tolerable_failures,
                    e.render_body(None, None)
                ));
                if n > self.config.tolerable_failures {
                    return Err(WeirError::external(format!(
                        "checkpoint {id} failed and the job tolerates {} failed checkpoint(s) in a row ('execution.checkpointing.tolerable-failed-checkpoints'): {}",
                        self.config.tolerable_failures,
                        e.render_body(None, None)
                    )));
                }
                Ok(None)
            }
        }
    }

    /// The highest checkpoint id completed in this run, or the one it started from: what
    /// an operator that prepared output for checkpoints up to it may now make visible (as
    /// Flink's `notifyCheckpointComplete`).
    pub fn completed_id(&self) -> u64 {
        self.progress.borrow().completed
    }

    /// The sink has ended (on any path): no checkpoint completes after this.
    pub fn mark_sink_done(&self) {
        self.progress.send_modify(|p| p.sink_done = true);
    }

    /// Waits until the sink has ended, calling `notify` with each newly completed
    /// checkpoint id meanwhile (an operator whose input ended commits its output as the
    /// checkpoints covering it complete, not only at the job's end); then returns the
    /// highest completed id, so that the operator learns whether the final checkpoint (or a
    /// stop's savepoint) completed. Errors: those of `notify`.
    pub async fn sink_done_notifying(
        &self,
        mut notify: impl FnMut(u64) -> Result<()>,
    ) -> Result<u64> {
        let mut rx = self.progress.subscribe();
        let mut seen = 0;
        loop {
            let p = *rx.borrow_and_update();
            if p.completed > seen {
                seen = p.completed;
                notify(seen)?;
            }
            if p.sink_done {
                return Ok(p.completed);
            }
            if rx.changed().await.is_err() {
                return Ok(self.completed_id());
            }
        }
    }

    /// The id the next checkpoint will get (sinks put it in the names of files they open).
    pub fn next_checkpoint(&self) -> u64 {
        self.requested.load(Ordering::SeqCst) + 1
    }

    /// An id for the checkpoint taken when the input has ended.
    pub fn final_id(&self) -> u64 {
        self.next_id()
    }

    /// The last completed checkpoint.
    pub fn last(&self) -> Option<CheckpointStats> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Checkpoints completed so far in this run.
    pub fn completed(&self) -> u64 {
        self.completed_total.load(Ordering::Relaxed)
    }

    /// Checkpoints that failed so far in this run.
    pub fn failed(&self) -> u64 {
        self.failed_total.load(Ordering::Relaxed)
    }

    /// One line for the end-of-run summary: `checkpoints: 6 completed (mean 9 ms, max 14
    /// ms; mean 40211 bytes, max 48213), 0 failed; last #6 (savepoint): 12 ms, 48213
    /// bytes, /path/chk-6`. Durations run from the trigger to the manifest.
    pub fn summary(&self) -> String {
        let n = self.completed_total.load(Ordering::Relaxed);
        let ((ms, max_ms), (bytes, max_bytes)) =
            self.durations.lock().map(|d| *d).unwrap_or_default();
        let mut s = format!("checkpoints: {n} completed");
        if n > 0 {
            s.push_str(&format!(
                " (mean {} ms, max {max_ms} ms; mean {} bytes, max {max_bytes})",
                ms / n as u128,
                bytes / n
            ));
        }
        s.push_str(&format!(", {} failed", self.failed()));
        if let Some(l) = self.last() {
            s.push_str(&format!(
                "; last #{}{}: {} ms, {} bytes, {}",
                l.id,
                if self.is_stopping() {
                    " (savepoint)"
                } else {
                    ""
                },
                l.duration.as_millis(),
                l.bytes,
                l.path.display()
            ));
        }
        s
    }
}

fn finished_states_push(tasks: &mut Vec<TaskEntry>, id: &str) {
    if !tasks.iter().any(|t| t.id == id) {
        tasks.push(TaskEntry {
            id: id.to_string(),
            name: "sink".into(),
            file: None,
            bytes: 0,
            crc32: 0,
        });
    }
}

/// The state files written for one checkpoint (task → file, bytes, CRC-32), or the first
/// error.
type Written = std::result::Result<HashMap<String, (String, u64, u32)>, WeirError>;

/// The background writer: state files as they come, then a checkpoint's manifest.
fn writer_loop(job_dir: PathBuf, retained: usize, rx: mpsc::Receiver<WriterMsg>) {
    // Per checkpoint: the files written (task → (file, bytes, crc)), or the first error.
    let mut written: HashMap<u64, Written> = HashMap::new();
    let write_one = |id: u64, task: &str, state: &[RecordBatch], written: &mut HashMap<u64, _>| {
        let entry = written.entry(id).or_insert_with(|| Ok(HashMap::new()));
        let Ok(files) = entry else { return };
        let dir = job_dir.join(format!("chk-{id}"));
        let file = format!("{task}.arrows");
        let r = std::fs::create_dir_all(&dir)
            .map_err(|e| io_err("create the checkpoint directory", &dir, e))
            .and_then(|_| write_state(&dir.join(&file), state));
        match r {
            Ok((bytes, crc)) => {
                files.insert(task.to_string(), (file, bytes, crc));
            }
            Err(e) => *entry = Err(e),
        }
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::State { id, task, state } => write_one(id, &task, &state, &mut written),
            WriterMsg::Complete {
                id,
                mut manifest,
                finished,
                reply,
            } => {
                for (task, state) in &finished {
                    let already = matches!(written.get(&id), Some(Ok(f)) if f.contains_key(task));
                    if !already {
                        write_one(id, task, state, &mut written);
                    }
                }
                let files = written.remove(&id).unwrap_or_else(|| Ok(HashMap::new()));
                let r = files.and_then(|files| {
                    let mut bytes = 0;
                    for t in &mut manifest.tasks {
                        if let Some((f, b, c)) = files.get(&t.id) {
                            t.file = Some(f.clone());
                            t.bytes = *b;
                            t.crc32 = *c;
                            bytes += b;
                        }
                    }
                    let dir = job_dir.join(format!("chk-{id}"));
                    crash_point("before-manifest", id);
                    write_manifest(&dir, &manifest)?;
                    prune(&job_dir, id, retained);
                    Ok((bytes, dir))
                });
                if r.is_err() {
                    let _ = std::fs::remove_dir_all(job_dir.join(format!("chk-{id}")));
                }
                // Older ids that never completed are forgotten.
                written.retain(|k, _| *k > id);
                let _ = reply.send(r);
            }
        }
    }
}

/// Writes `_metadata` atomically: a temporary file, fsync, rename, fsync of the folder.
fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create the checkpoint directory", dir, e))?;
    let text = serde_json::to_vec_pretty(m)
        .map_err(|e| WeirError::internal(format!("cannot encode a manifest: {e}")))?;
    let tmp = dir.join("_metadata.inprogress");
    let fin = dir.join("_metadata");
    let mut f = File::create(&tmp).map_err(|e| io_err("write", &tmp, e))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("write", &tmp, e))?;
    std::fs::rename(&tmp, &fin).map_err(|e| io_err("write", &fin, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Keeps the newest `retained` completed checkpoints up to `latest`.
fn prune(job_dir: &Path, latest: u64, retained: usize) {
    let done = completed_in(job_dir);
    let keep: Vec<u64> = done
        .iter()
        .rev()
        .filter(|(n, _)| *n <= latest)
        .take(retained)
        .map(|(n, _)| *n)
        .collect();
    for (n, p) in done {
        if n < latest && !keep.contains(&n) {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// The parallelism of a job's keyed operators as its task ids show it: subtask `k` of an
/// operator run as several is `op-<n>.<k>`; 1 when no id has a subtask.
fn parallelism_of_ids<'a>(ids: impl Iterator<Item = &'a str>) -> usize {
    ids.filter_map(|id| id.rsplit_once('.'))
        .filter_map(|(_, k)| k.parse::<usize>().ok())
        .map(|k| k + 1)
        .max()
        .unwrap_or(1)
}
