//! A process's CPU time and memory, read from Linux's /proc.
//!
//! The load generator shares the machine's cores with the server, so
//! requests per second alone says little; CPU time spent by the server per
//! request is the figure that compares across machines.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context, Result, anyhow, bail};

/// Which process to read: a PID, or the bench itself.
#[derive(Debug, Clone, Copy)]
pub enum Process {
    Pid(u32),
    Myself,
}

impl Process {
    fn proc_dir(self) -> String {
        match self {
            Process::Pid(pid) => format!("/proc/{pid}"),
            Process::Myself => "/proc/self".to_owned(),
        }
    }
}

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy)]
pub struct ProcessSample {
    /// CPU time in user mode since the process started.
    pub user_seconds: f64,
    /// CPU time in the kernel on the process's behalf (system calls, page
    /// faults) since it started.
    pub system_seconds: f64,
    /// Resident memory now (VmRSS).
    pub rss_kib: u64,
    /// Peak resident memory since the process started (VmHWM).
    pub peak_rss_kib: u64,
}

pub fn sample(process: Process) -> Result<ProcessSample> {
    let dir = process.proc_dir();
    let stat = fs::read_to_string(format!("{dir}/stat"))
        .with_context(|| format!("cannot read {dir}/stat (is the process running?)"))?;
    let status = fs::read_to_string(format!("{dir}/status"))
        .with_context(|| format!("cannot read {dir}/status"))?;
    let ticks = cpu_ticks(&stat).ok_or_else(|| anyhow!("{dir}/stat has no utime/stime fields"))?;
    let per_second = clock_ticks_per_second();
    let field =
        |name| status_kib(&status, name).ok_or_else(|| anyhow!("{dir}/status has no {name} line"));
    Ok(ProcessSample {
        user_seconds: ticks.user as f64 / per_second,
        system_seconds: ticks.system as f64 / per_second,
        rss_kib: field("VmRSS")?,
        peak_rss_kib: field("VmHWM")?,
    })
}

impl ProcessSample {
    pub fn cpu_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }
}

/// CPU seconds so far of a process and of its children, by PID.
pub type TreeCpu = BTreeMap<u32, f64>;

/// The CPU time of `pid` and of its direct children: for PostgreSQL, the
/// postmaster's backends, WAL writer and checkpointer, which do the
/// database's share of each request in processes of their own.
pub fn tree_cpu(pid: u32) -> Result<TreeCpu> {
    let per_second = clock_ticks_per_second();
    let mut cpu = TreeCpu::new();
    let entries = fs::read_dir("/proc").context("cannot list /proc")?;
    for entry in entries.flatten() {
        let Some(candidate) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading: skip it.
        let Ok(stat) = fs::read_to_string(format!("/proc/{candidate}/stat")) else {
            continue;
        };
        if (candidate == pid || parent_pid(&stat) == Some(pid))
            && let Some(ticks) = cpu_ticks(&stat)
        {
            cpu.insert(candidate, (ticks.user + ticks.system) as f64 / per_second);
        }
    }
    if !cpu.contains_key(&pid) {
        bail!("cannot read /proc/{pid}/stat (is the database server running?)");
    }
    Ok(cpu)
}

/// CPU seconds the processes used between two readings. A process that
/// started in between counts from zero; one that exited is lost (the
/// database keeps its backends for as long as the pool holds them).
pub fn cpu_seconds_between(before: &TreeCpu, after: &TreeCpu) -> f64 {
    after
        .iter()
        .map(|(pid, seconds)| seconds - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

/// The parent PID, field 4 of /proc/PID/stat.
fn parent_pid(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// utime and stime, in clock ticks.
#[derive(Debug, PartialEq, Eq)]
struct CpuTicks {
    user: u64,
    system: u64,
}

/// utime and stime from the text of /proc/PID/stat.
///
/// The second field, the command name in parentheses, may itself contain
/// spaces and parentheses, so fields are counted from the last ')'.
fn cpu_ticks(stat: &str) -> Option<CpuTicks> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields after comm start at field 3 (state); utime and stime are
    // fields 14 and 15 (proc(5)).
    let mut fields = after_comm.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(CpuTicks { user, system })
}

/// A `Name:   1234 kB` line of /proc/PID/status, in KiB.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the running system and has no
    // preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // 100 is the value on every Linux build; -1 would mean "unknown".
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_counts_fields_after_the_last_parenthesis() {
        // comm "(a) b (c)" has spaces and parentheses of its own.
        let stat = "4242 ((a) b (c)) S 1 4242 4242 0 -1 4194560 1523 0 0 0 \
                    250 31 0 0 20 0 3 0 123456 9000000 2048 18446744073709551615";
        assert_eq!(
            cpu_ticks(stat),
            Some(CpuTicks {
                user: 250,
                system: 31
            })
        );
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(cpu_ticks("no parenthesis at all"), None);
    }

    #[test]
    fn parent_pid_is_the_field_after_the_state() {
        let stat = "4242 ((a) b (c)) S 17 4242 4242 0 -1 4194560 1523 0 0 0 250 31";
        assert_eq!(parent_pid(stat), Some(17));
        assert_eq!(parent_pid("4242 (x) S"), None);
    }

    #[test]
    fn cpu_between_counts_new_processes_from_zero() {
        let before = TreeCpu::from([(1, 10.0), (2, 5.0)]);
        let after = TreeCpu::from([(1, 10.5), (2, 6.0), (3, 0.25)]);
        assert_eq!(cpu_seconds_between(&before, &after), 1.75);
    }

    #[test]
    fn this_process_tree_can_be_sampled() {
        let me = std::process::id();
        let cpu = tree_cpu(me).unwrap();
        assert!(cpu.contains_key(&me));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = sample(Process::Myself).unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.peak_rss_kib >= sample.rss_kib);
    }

    #[test]
    fn status_fields_in_kib() {
        let status = "Name:\ttessera\nVmHWM:\t   45120 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(20480));
        assert_eq!(status_kib(status, "VmHWM"), Some(45120));
        assert_eq!(status_kib(status, "VmSwap"), None);
        assert_eq!(status_kib(status, "Threads"), None);
    }
}
