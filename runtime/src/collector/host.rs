//! This host's metrics from Linux `/proc`: `cpu_usage` (%), `memory_usage` (%),
//! `network` (MB/s received + sent, all interfaces but `lo`) and `disk_io` (completed reads +
//! writes per second on whole disks). Rates need two readings: the first call returns `None`.

use std::time::Instant;

/// Cumulative counters from one reading.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    cpu_busy: u64,
    cpu_total: u64,
    net_bytes: u64,
    disk_ops: u64,
}

/// Reads `/proc` and turns counter deltas into the four base metrics.
#[derive(Debug, Default)]
pub struct HostSampler {
    previous: Option<Counters>,
}

fn read(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

fn counters() -> std::io::Result<Counters> {
    let stat = read("/proc/stat")?;
    let cpu: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    let net = read("/proc/net/dev")?;
    let net_bytes = net
        .lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            Some(f.first()? + f.get(8)?)
        })
        .sum();
    let disk_ops = read("/proc/diskstats")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f.get(2)?;
            // Whole disks only (partitions would double count); no loop/ram devices.
            if name.starts_with("loop") || name.starts_with("ram") || !std::path::Path::new(&format!("/sys/block/{name}")).exists() {
                return None;
            }
            Some(f.get(3)?.parse::<u64>().ok()? + f.get(7)?.parse::<u64>().ok()?)
        })
        .sum();
    Ok(Counters { at: Instant::now(), cpu_busy: total - idle.min(total), cpu_total: total, net_bytes, disk_ops })
}

/// Memory in use as a percentage of total (`MemTotal - MemAvailable`).
fn memory_pct() -> std::io::Result<f64> {
    let info = read("/proc/meminfo")?;
    let field = |name: &str| -> f64 {
        info.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let total = field("MemTotal:");
    Ok(if total > 0.0 { 100.0 * (total - field("MemAvailable:")) / total } else { 0.0 })
}

impl HostSampler {
    /// A sampler with no reading yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read counters; from the second call on, returns `[cpu_usage, memory_usage, network, disk_io]`.
    pub fn sample(&mut self) -> std::io::Result<Option<[f64; 4]>> {
        let now = counters()?;
        let mem = memory_pct()?;
        let out = self.previous.map(|p| {
            let secs = now.at.duration_since(p.at).as_secs_f64().max(1e-3);
            let dt = now.cpu_total.saturating_sub(p.cpu_total).max(1) as f64;
            let cpu = 100.0 * now.cpu_busy.saturating_sub(p.cpu_busy) as f64 / dt;
            let net = now.net_bytes.saturating_sub(p.net_bytes) as f64 / 1e6 / secs;
            let disk = now.disk_ops.saturating_sub(p.disk_ops) as f64 / secs;
            [cpu.clamp(0.0, 100.0), mem, net, disk]
        });
        self.previous = Some(now);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_plausible_values_from_proc() {
        let mut s = super::HostSampler::new();
        assert!(s.sample().unwrap().is_none());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let v = s.sample().unwrap().expect("second reading gives rates");
        assert!((0.0..=100.0).contains(&v[0]) && v[1] > 0.0 && v[1] <= 100.0, "{v:?}");
        assert!(v[2] >= 0.0 && v[3] >= 0.0);
    }
}
