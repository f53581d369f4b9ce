//! What the machine is and how busy it was: cores, CPU model, memory, load average, and CPU time
//! of processes (from `/proc`), so every result carries the conditions it was measured under.

use serde::Serialize;

/// Facts about the machine, read once per run.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub mem_gib: f64,
    pub kernel: String,
    pub git: String,
    pub open_files_limit: u64,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let git = std::process::Command::new("git")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            mem_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel,
            git,
            open_files_limit: rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |l| l.1),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LoadAvg(pub f64, pub f64, pub f64);

impl LoadAvg {
    pub fn read() -> LoadAvg {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
        LoadAvg(
            it.next().unwrap_or(0.0),
            it.next().unwrap_or(0.0),
            it.next().unwrap_or(0.0),
        )
    }
}

impl std::fmt::Display for LoadAvg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} {:.2} {:.2}", self.0, self.1, self.2)
    }
}

/// Machine-wide CPU ticks and the ticks of chosen processes, at one instant.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot {
    total: u64,
    idle: u64,
    procs: Vec<u64>,
}

/// How many cores each chosen process used between two snapshots, and how busy the machine was.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuShare {
    /// Cores used by each chosen process, in the order given.
    pub cores: Vec<f64>,
    /// Share of all cores that were busy (any process), in percent.
    pub busy_pct: f64,
}

/// utime + stime of a process, in clock ticks (0 if it is gone).
pub fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

impl CpuSnapshot {
    pub fn take(pids: &[u32]) -> CpuSnapshot {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let total = fields.iter().sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        CpuSnapshot {
            total,
            idle,
            procs: pids.iter().map(|&p| process_ticks(p)).collect(),
        }
    }

    pub fn share_since(&self, earlier: &CpuSnapshot) -> CpuShare {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        let per_core = total / nproc;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        CpuShare {
            cores: self
                .procs
                .iter()
                .zip(&earlier.procs)
                .map(|(b, a)| round(b.saturating_sub(*a) as f64 / per_core))
                .collect(),
            busy_pct: round(100.0 * (1.0 - self.idle.saturating_sub(earlier.idle) as f64 / total)),
        }
    }
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Raises this process's open-file limit to its hard limit; returns the new soft limit.
pub fn raise_open_files() -> u64 {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}
