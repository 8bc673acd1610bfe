//! CPU time and resident memory of a process, from `/proc` (Linux).

use anyhow::Context;

/// A reading of one process's counters.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set size, KiB.
    pub rss_kb: u64,
}

/// Reads `/proc/{pid}` (`None`: this process).
pub fn sample(pid: Option<u32>) -> anyhow::Result<Sample> {
    let dir = pid.map_or_else(|| "/proc/self".to_owned(), |pid| format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(format!("{dir}/stat")).with_context(|| format!("reading {dir}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    let after = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based), so indexes 11 and 12 here.
    let ticks: u64 =
        fields.get(11).context("stat utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).with_context(|| format!("reading {dir}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("VmRSS")?
        .parse()?;
    Ok(Sample { cpu_s: ticks as f64 / clock_ticks_per_second(), rss_kb })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        std::hint::black_box(spin);
        let sample = super::sample(None).unwrap();
        assert!(sample.rss_kb > 0);
        assert!(sample.cpu_s >= 0.0);
        assert!(super::sample(Some(std::process::id())).is_ok());
    }
}
