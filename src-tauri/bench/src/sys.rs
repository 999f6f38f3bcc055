//! What the benchmark reads about its own process and the machine: CPU time, resident memory,
//! CPU model and RAM. Parsers are pure so they are tested on recorded text; only the thin
//! readers touch `/proc`.

use anyhow::Context;
use serde::Serialize;
use std::time::Duration;

/// `/proc/*/stat` counts in USER_HZ, which Linux fixes at 100 for user space.
const USER_HZ: u64 = 100;

/// CPU time this process used so far, all threads, exited ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// The time used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// `getrusage(RUSAGE_SELF)` (microseconds), else `/proc/self/stat` (10 ms ticks).
    pub fn now() -> anyhow::Result<CpuTime> {
        #[cfg(unix)]
        {
            use nix::sys::resource::{getrusage, UsageWho};
            if let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) {
                let d = |t: nix::sys::time::TimeVal| {
                    Duration::from_secs(t.tv_sec().max(0) as u64)
                        + Duration::from_micros(t.tv_usec().max(0) as u64)
                };
                return Ok(CpuTime {
                    user: d(u.user_time()),
                    system: d(u.system_time()),
                });
            }
        }
        let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
        let (utime, stime) =
            parse_stat_cpu_ticks(&stat).context("no CPU times in /proc/self/stat")?;
        let tick = |t: u64| Duration::from_millis(t * 1000 / USER_HZ);
        Ok(CpuTime {
            user: tick(utime),
            system: tick(stime),
        })
    }
}

/// `utime` and `stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name in
/// field 2 may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime is field 14.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// A `Key:   1234 kB` line of `/proc/PID/status` or `/proc/meminfo`, in KiB.
pub fn parse_kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let mut parts = v.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(n),
            Some(_) => None,
        }
    })
}

/// The resident set of a process (`None` for this one), in KiB.
pub fn rss_kib(pid: Option<u32>) -> anyhow::Result<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_kib_field(&text, "VmRSS").with_context(|| format!("no VmRSS in {path}"))
}

/// The first `model name` of `/proc/cpuinfo` (x86), else its `Model`/`Hardware` line (ARM).
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_owned())
        })
    })
}

/// `PRETTY_NAME` of `/etc/os-release`, unquoted.
pub fn parse_os_pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let v = line.strip_prefix("PRETTY_NAME=")?;
        Some(v.trim().trim_matches('"').to_owned())
    })
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_gib: f64,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rustc: Option<String>,
}

impl Machine {
    pub fn describe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mem_kib = parse_kib_field(&read("/proc/meminfo"), "MemTotal").unwrap_or(0);
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        let os = match parse_os_pretty_name(&read("/etc/os-release")) {
            Some(name) if !kernel.is_empty() => format!("{name}, Linux {kernel}"),
            Some(name) => name,
            None => std::env::consts::OS.to_owned(),
        };
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: parse_cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown".into()),
            mem_gib: crate::stats::round(mem_kib as f64 / (1024.0 * 1024.0), 1),
            os,
            rustc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        let line = "23895 (cat) R 23892 23892 14117 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 1 0 \
                    1200214 3133440 416 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(line), Some((7, 3)));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let line = "7 (tokio (rt) 1) S 1 1 1 0 -1 0 0 0 0 0 250 40 0 0 20 0 3 0 5 6 7";
        assert_eq!(parse_stat_cpu_ticks(line), Some((250, 40)));
    }

    #[test]
    fn a_truncated_stat_line_has_no_times() {
        assert_eq!(parse_stat_cpu_ticks("1 (x) R 0 0"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_is_read_from_a_status_file() {
        let status = "Name:\thead\nVmHWM:\t    1760 kB\nVmRSS:\t    1744 kB\nRssAnon:\t 116 kB\n";
        assert_eq!(parse_kib_field(status, "VmRSS"), Some(1744));
        assert_eq!(parse_kib_field(status, "VmHWM"), Some(1760));
        assert_eq!(parse_kib_field(status, "VmSwap"), None);
    }

    #[test]
    fn a_prefix_of_a_key_is_not_the_key() {
        assert_eq!(parse_kib_field("VmRSSx:\t 1 kB\n", "VmRSS"), None);
    }

    #[test]
    fn meminfo_total_is_in_kib() {
        let meminfo = "MemTotal:       24684084 kB\nMemFree:        17498296 kB\n";
        assert_eq!(parse_kib_field(meminfo, "MemTotal"), Some(24_684_084));
    }

    #[test]
    fn cpu_model_comes_from_the_first_processor() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n\
                       processor\t: 1\nmodel name\t: Something else\n";
        assert_eq!(
            parse_cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(
            parse_cpu_model("Hardware\t: BCM2835\n").as_deref(),
            Some("BCM2835")
        );
        assert_eq!(parse_cpu_model(""), None);
    }

    #[test]
    fn os_name_is_unquoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_os_pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn cpu_time_differences_never_go_negative() {
        let a = CpuTime {
            user: Duration::from_millis(5),
            system: Duration::from_millis(2),
        };
        let b = CpuTime {
            user: Duration::from_millis(9),
            system: Duration::from_millis(1),
        };
        assert_eq!(b.since(a).total(), Duration::from_millis(4));
    }
}
