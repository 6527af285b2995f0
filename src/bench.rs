//! `weir bench nexmark`: runs Nexmark queries one by one, each in its own `weir run`
//! process over the same number of generated events, and prints per query the events, the
//! wall time, events/s, events/s per core (events over the CPU seconds the process used) and
//! the peak resident memory. A query Weir cannot run yet shows its planning error instead.
//!
//! CPU time and peak memory are read from `/proc/<pid>` while the process runs (Linux).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One query's measurement.
pub struct Measured {
    pub query: String,
    pub events: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_kib: u64,
    /// None when the query ran to its end; else the first line of its error.
    pub error: Option<String>,
}

/// The query files of `dir` (`q<N>.sql`), in numeric order, filtered by `only`.
pub fn queries(dir: &Path, only: &[String]) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let Some(stem) = p.file_stem().and_then(|s| s.to_str()).map(str::to_string) else {
            continue;
        };
        let numbered = stem
            .strip_prefix('q')
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if numbered
            && p.extension().is_some_and(|x| x == "sql")
            && (only.is_empty() || only.iter().any(|q| q == &stem))
        {
            out.push((stem, p));
        }
    }
    out.sort_by_key(|(q, _)| q[1..].parse::<u32>().unwrap_or(u32::MAX));
    Ok(out)
}

/// CPU seconds (user + system) and peak RSS (KiB) of a running process.
fn sample(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    // Clock ticks are 100 per second on Linux.
    Some(((utime + stime) / 100.0, hwm))
}

/// Runs `ddl` + `query` over `events` generated events in a child `weir run` process.
pub fn measure(
    weir: &Path,
    ddl: &Path,
    name: &str,
    query: &Path,
    events: u64,
    settings: &[String],
) -> Measured {
    let started = Instant::now();
    let child = Command::new(weir)
        .arg("run")
        .arg("--quiet")
        // A benchmark run starts afresh even when the settings turn checkpoints on.
        .arg("--from-scratch")
        .args(settings.iter().flat_map(|s| ["--set", s.as_str()]))
        .arg("--set")
        .arg(format!("events.num={events}"))
        .arg(ddl)
        .arg(query)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Measured {
                query: name.to_string(),
                events,
                seconds: 0.0,
                cpu_seconds: 0.0,
                peak_rss_kib: 0,
                error: Some(format!("cannot start {}: {e}", weir.display())),
            };
        }
    };
    let pid = child.id();
    let mut last = (0.0, 0);
    let status = loop {
        if let Some(s) = sample(pid) {
            last = s;
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let error = match status {
        Some(s) if s.success() => None,
        _ => Some(
            stderr
                .lines()
                .find(|l| l.starts_with("error"))
                .or_else(|| stderr.lines().next())
                .unwrap_or("failed")
                .to_string(),
        ),
    };
    Measured {
        query: name.to_string(),
        events,
        seconds,
        cpu_seconds: last.0,
        peak_rss_kib: last.1,
        error,
    }
}

/// The results as a Markdown table.
pub fn table(results: &[Measured]) -> String {
    let mut s = String::from(
        "| query | events | seconds | events/s | events/s per core | peak RSS | note |\n|---|---|---|---|---|---|---|\n",
    );
    for m in results {
        match &m.error {
            None => {
                let rate = m.events as f64 / m.seconds.max(1e-9);
                let per_core = m.events as f64 / m.cpu_seconds.max(1e-9);
                s.push_str(&format!(
                    "| {} | {} | {:.2} | {} | {} | {} MiB | |\n",
                    m.query,
                    m.events,
                    m.seconds,
                    human(rate),
                    human(per_core),
                    m.peak_rss_kib / 1024
                ));
            }
            Some(e) => s.push_str(&format!(
                "| {} | {} | | | | | {} |\n",
                m.query,
                m.events,
                e.replace('|', "\\|")
            )),
        }
    }
    s
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} K", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}
