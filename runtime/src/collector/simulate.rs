//! A deterministic simulator of server metrics with labelled incidents.
//!
//! Each server has its own baseline; load follows a diurnal curve (peak mid-afternoon, busier in
//! business hours) and a weekly one (quiet weekends). `cpu_usage` (%), `memory_usage` (%),
//! `network` (MB/s) and `disk_io` (ops/s) are correlated through the load, with AR(1) noise.
//! Incidents of six kinds are planned per server and day from the seed alone, so a stream can be
//! generated live, forever, and still agree with a backfill of the same seed.
//!
//! Next to the incidents, the normal things that fool naive detectors (unlabelled, listed by
//! [`Simulator::events`]; off with `confounders = false`): deploy restarts (the process is
//! down for 20–60 s, CPU, network and disk drop, memory resets 12–20 points and refills over
//! 15–30 minutes), a daily batch job at a fixed time per server (disk ×2.5 and CPU +12 for 5–10
//! minutes, every day: normal once learned), slow organic growth (0–3 % more load per day),
//! quiet weekends, counter resets (network and disk read 0 for one sample), missing samples
//! (0.2 % of rows) and gaps of 2–10 minutes with no rows (NaN in [`Simulator::next_row`]).
//!
//! ```
//! use runtime::collector::simulate::{SimConfig, Simulator};
//! let cfg = SimConfig { servers: 2, ..SimConfig::default() };
//! let mut sim = Simulator::new(cfg.clone());
//! let a = sim.next_row();
//! let b = Simulator::new(cfg).next_row();
//! assert_eq!(a, b); // same seed, same numbers
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Kinds of simulated incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// CPU jumps by 35–55 points for 3–15 minutes.
    CpuSpike,
    /// Memory climbs linearly by 25–40 points over 30–90 minutes, then a restart drops it.
    MemoryLeak,
    /// Network ×3–5 (and CPU +10) for 10–30 minutes.
    NetworkSaturation,
    /// Disk I/O ×4–8 for 5–20 minutes.
    DiskIoStorm,
    /// A deploy shifts CPU by +15–25 for 2–6 hours; the first 30 minutes are labelled.
    LevelShift,
    /// One metric freezes at its last value (no noise) for 20–60 minutes.
    Flatline,
}

impl IncidentKind {
    /// All kinds.
    pub const ALL: [IncidentKind; 6] = [
        IncidentKind::CpuSpike,
        IncidentKind::MemoryLeak,
        IncidentKind::NetworkSaturation,
        IncidentKind::DiskIoStorm,
        IncidentKind::LevelShift,
        IncidentKind::Flatline,
    ];

    /// snake_case name, as in label files.
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::CpuSpike => "cpu_spike",
            IncidentKind::MemoryLeak => "memory_leak",
            IncidentKind::NetworkSaturation => "network_saturation",
            IncidentKind::DiskIoStorm => "disk_io_storm",
            IncidentKind::LevelShift => "level_shift",
            IncidentKind::Flatline => "flatline",
        }
    }

    /// Parse a snake_case name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A labelled incident: rows `[start_ms, end_ms]` (inclusive) of `server` are anomalous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Server name.
    pub server: String,
    /// What happened.
    pub kind: IncidentKind,
    /// The metric it shows in first.
    pub metric: String,
    /// First anomalous timestamp.
    pub start_ms: i64,
    /// Last anomalous timestamp (inclusive).
    pub end_ms: i64,
}

/// Simulator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Number of servers, named `web-server-01`, `web-server-02`, …
    pub servers: usize,
    /// First timestamp (ms). Default 2024-01-15 00:00:00 UTC, a Monday.
    pub start_ms: i64,
    /// Sampling interval in seconds.
    pub interval_secs: u32,
    /// Seed of every random step.
    pub seed: u64,
    /// Expected incidents per server per day.
    pub incidents_per_day: f64,
    /// Deploy restarts, batch jobs, growth, counter resets and missing data (see the module docs).
    pub confounders: bool,
}

/// Kinds of normal (unlabelled) events that look like incidents to a naive detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A deploy restarts the service: down for 20–60 s, then memory refills.
    Restart,
    /// The daily batch job (same time every day).
    BatchJob,
    /// Network and disk counters reset: one sample reads 0.
    CounterReset,
    /// No samples at all for 2–10 minutes.
    Gap,
}

impl EventKind {
    /// snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Restart => "restart",
            EventKind::BatchJob => "batch_job",
            EventKind::CounterReset => "counter_reset",
            EventKind::Gap => "gap",
        }
    }
}

/// A normal event on one server, `[start_ms, end_ms]` inclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalEvent {
    /// Server name.
    pub server: String,
    /// What happened.
    pub kind: EventKind,
    /// First affected timestamp.
    pub start_ms: i64,
    /// Last affected timestamp (inclusive).
    pub end_ms: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { servers: 5, start_ms: 1_705_276_800_000, interval_secs: 10, seed: 42, incidents_per_day: 2.0, confounders: true }
    }
}

const DAY_MS: i64 = 86_400_000;
const MIN_MS: i64 = 60_000;

#[derive(Debug, Clone)]
struct Profile {
    cpu_base: f64,
    cpu_amp: f64,
    mem_base: f64,
    net_base: f64,
    disk_base: f64,
    phase_h: f64,
    /// Minute of day the batch job starts, and how long it runs (minutes).
    batch_minute: i64,
    batch_mins: i64,
    /// Load growth per day.
    growth: f64,
}

#[derive(Debug, Clone)]
struct ServerState {
    name: String,
    profile: Profile,
    rng: ChaCha8Rng,
    ar: [f64; 4],
    last: [f64; 4],
    planned_day: i64,
    incidents: Vec<Incident>,
    events: Vec<NormalEvent>,
    /// Memory refill after a restart: (restart end, drop in points, time constant in minutes).
    refill: Option<(i64, f64, f64)>,
}

/// Generates one row per server per interval; see the module docs.
#[derive(Debug, Clone)]
pub struct Simulator {
    cfg: SimConfig,
    row: u64,
    servers: Vec<ServerState>,
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // SplitMix64 over the combined inputs: independent streams per (seed, a, b).
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Server name of index `i` (0-based).
pub fn server_name(i: usize) -> String {
    format!("web-server-{:02}", i + 1)
}

impl Simulator {
    /// A simulator at its first row.
    pub fn new(cfg: SimConfig) -> Self {
        let servers = (0..cfg.servers)
            .map(|i| {
                let mut prng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, i as u64, 0xFEED));
                let profile = Profile {
                    cpu_base: prng.random_range(15.0..35.0),
                    cpu_amp: prng.random_range(15.0..30.0),
                    mem_base: prng.random_range(40.0..60.0),
                    net_base: prng.random_range(80.0..200.0),
                    disk_base: prng.random_range(800.0..2500.0),
                    phase_h: prng.random_range(-1.5..1.5),
                    batch_minute: prng.random_range(60..300),
                    batch_mins: prng.random_range(5..=10),
                    growth: prng.random_range(0.0..0.03),
                };
                ServerState {
                    name: server_name(i),
                    profile,
                    rng: ChaCha8Rng::seed_from_u64(mix(cfg.seed, i as u64, 1)),
                    ar: [0.0; 4],
                    last: [0.0; 4],
                    planned_day: i64::MIN,
                    incidents: Vec::new(),
                    events: Vec::new(),
                    refill: None,
                }
            })
            .collect();
        Self { cfg, row: 0, servers }
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Server names.
    pub fn server_names(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.name.clone()).collect()
    }

    /// Timestamp of the next row.
    pub fn next_timestamp_ms(&self) -> i64 {
        self.cfg.start_ms + self.row as i64 * i64::from(self.cfg.interval_secs) * 1000
    }

    /// Incidents planned so far (those of every day the simulator has reached), all servers.
    pub fn incidents(&self) -> Vec<Incident> {
        let mut all: Vec<Incident> = self.servers.iter().flat_map(|s| s.incidents.iter().cloned()).collect();
        all.sort_by(|a, b| (a.start_ms, &a.server).cmp(&(b.start_ms, &b.server)));
        all
    }

    /// Normal events planned so far (every day the simulator has reached), all servers.
    pub fn events(&self) -> Vec<NormalEvent> {
        let mut all: Vec<NormalEvent> = self.servers.iter().flat_map(|s| s.events.iter().cloned()).collect();
        all.sort_by(|a, b| (a.start_ms, &a.server).cmp(&(b.start_ms, &b.server)));
        all
    }

    /// Restarts, the batch job, counter resets and gaps of one server and day, from their own
    /// random stream (so the incidents of a seed are the same with or without them). Restarts
    /// and gaps keep 10 minutes away from incidents, so a label always shows in the data.
    fn plan_events(cfg: &SimConfig, idx: usize, s: &mut ServerState, day: i64) {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, idx as u64 + 2000, day as u64));
        let day_start = cfg.start_ms + day * DAY_MS;
        let step = i64::from(cfg.interval_secs.max(1)) * 1000;
        let clear = |s: &ServerState, a: i64, b: i64| {
            s.incidents.iter().all(|i| b < i.start_ms - 10 * MIN_MS || a > i.end_ms + 10 * MIN_MS)
                && s.events
                    .iter()
                    .filter(|e| e.kind != EventKind::BatchJob)
                    .all(|e| b < e.start_ms - 30 * MIN_MS || a > e.end_ms + 30 * MIN_MS)
        };
        let mut planned = Vec::new();
        let start = day_start + s.profile.batch_minute * MIN_MS;
        planned.push((EventKind::BatchJob, start, start + s.profile.batch_mins * MIN_MS - 1));
        for hour in 0..24 {
            if rng.random_bool(0.03) {
                let a = day_start + hour * 3_600_000 + rng.random_range(0..60) * MIN_MS;
                planned.push((EventKind::Restart, a, a + rng.random_range(2..=6) * step - 1));
            }
            if rng.random_bool(0.02) {
                let a = day_start + hour * 3_600_000 + rng.random_range(0..3600) * 1000 / step * step;
                planned.push((EventKind::CounterReset, a, a + step - 1));
            }
            if rng.random_bool(0.02) {
                let a = day_start + hour * 3_600_000 + rng.random_range(0..60) * MIN_MS;
                planned.push((EventKind::Gap, a, a + rng.random_range(2..=10) * MIN_MS - 1));
            }
        }
        planned.sort_by_key(|p| p.1);
        for (kind, a, b) in planned {
            if kind == EventKind::BatchJob || clear(s, a, b) {
                s.events.push(NormalEvent { server: s.name.clone(), kind, start_ms: a, end_ms: b });
            }
        }
    }

    fn plan_day(cfg: &SimConfig, idx: usize, s: &mut ServerState, day: i64) {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, idx as u64 + 1000, day as u64));
        let day_start = cfg.start_ms + day * DAY_MS;
        // Poisson count via thinning of 24 hourly Bernoulli trials.
        let p = (cfg.incidents_per_day / 24.0).min(1.0);
        for hour in 0..24 {
            if !rng.random_bool(p) {
                continue;
            }
            let kind = IncidentKind::ALL[rng.random_range(0..IncidentKind::ALL.len())];
            let start = day_start + hour * 3_600_000 + rng.random_range(0..50) * MIN_MS;
            let (mins, metric) = match kind {
                IncidentKind::CpuSpike => (rng.random_range(3..=15), "cpu_usage"),
                IncidentKind::MemoryLeak => (rng.random_range(30..=90), "memory_usage"),
                IncidentKind::NetworkSaturation => (rng.random_range(10..=30), "network"),
                IncidentKind::DiskIoStorm => (rng.random_range(5..=20), "disk_io"),
                IncidentKind::LevelShift => (30, "cpu_usage"),
                IncidentKind::Flatline => (rng.random_range(20..=60), crate::BASE_METRICS[rng.random_range(0..4)]),
            };
            // Incidents of one server never overlap: skip one that starts inside the previous.
            if s.incidents.last().is_some_and(|l| start <= l.end_ms + 30 * MIN_MS) {
                continue;
            }
            s.incidents.push(Incident {
                server: s.name.clone(),
                kind,
                metric: metric.to_string(),
                start_ms: start,
                end_ms: start + mins * MIN_MS - 1,
            });
        }
    }

    /// Advance one interval; returns `(timestamp_ms, [(server, [cpu, memory, network, disk_io])])`,
    /// every server in order; a missing sample (a gap) is all NaN.
    pub fn next_row(&mut self) -> (i64, Vec<(String, [f64; 4])>) {
        let t = self.next_timestamp_ms();
        let row = self.row;
        self.row += 1;
        let day = (t - self.cfg.start_ms).div_euclid(DAY_MS);
        let cfg = self.cfg.clone();
        let noise = Normal::new(0.0, 1.0).expect("unit normal");
        let mut out = Vec::with_capacity(self.servers.len());
        for (idx, s) in self.servers.iter_mut().enumerate() {
            // Plan today and tomorrow so incidents near midnight are known in advance.
            while s.planned_day < day + 1 {
                let next = if s.planned_day == i64::MIN { day } else { s.planned_day + 1 };
                Self::plan_day(&cfg, idx, s, next);
                if cfg.confounders {
                    Self::plan_events(&cfg, idx, s, next);
                }
                s.planned_day = next;
            }
            let p = &s.profile;
            let (hour, weekday) = crate::features::hour_and_weekday(t);
            let minute_of_day = (t.rem_euclid(DAY_MS) as f64) / 60_000.0;
            let h = minute_of_day / 60.0 - p.phase_h;
            let diurnal = 0.5 - 0.5 * ((h - 14.0) / 24.0 * std::f64::consts::TAU).cos();
            let weekly = if weekday >= 5 { 0.55 } else { 1.0 };
            let business = if weekday < 5 && (9..18).contains(&hour) { 0.12 } else { 0.0 };
            let days = (t - cfg.start_ms) as f64 / DAY_MS as f64;
            let growth = if cfg.confounders { 1.0 + p.growth * days } else { 1.0 };
            let load = (diurnal * weekly + business).clamp(0.0, 1.2) * growth;
            for (k, rho_sd) in [(0.9, 2.0), (0.98, 0.2), (0.8, 8.0), (0.7, 90.0)].iter().enumerate() {
                let e: f64 = noise.sample(&mut s.rng);
                s.ar[k] = rho_sd.0 * s.ar[k] + rho_sd.1 * e;
            }
            let mut cpu = p.cpu_base + p.cpu_amp * load + s.ar[0];
            let mut mem = p.mem_base + 8.0 * load + 0.08 * (cpu - p.cpu_base) + s.ar[1];
            let mut net = p.net_base * (0.4 + load) + s.ar[2];
            let mut disk = p.disk_base * (0.5 + 0.8 * load) + s.ar[3];
            let mut frozen = None;
            for inc in &s.incidents {
                let shift_end = inc.start_ms + 4 * 3_600_000;
                let active = t >= inc.start_ms && t <= inc.end_ms;
                match inc.kind {
                    IncidentKind::LevelShift if t >= inc.start_ms && t < shift_end => cpu += 20.0,
                    _ if !active => {}
                    IncidentKind::CpuSpike => cpu += 45.0,
                    IncidentKind::MemoryLeak => {
                        let frac = (t - inc.start_ms) as f64 / (inc.end_ms - inc.start_ms).max(1) as f64;
                        mem += 35.0 * frac;
                    }
                    IncidentKind::NetworkSaturation => {
                        net *= 4.0;
                        cpu += 10.0;
                    }
                    IncidentKind::DiskIoStorm => disk *= 6.0,
                    IncidentKind::Flatline => frozen = crate::BASE_METRICS.iter().position(|m| *m == inc.metric),
                    IncidentKind::LevelShift => {}
                }
            }
            let mut missing = false;
            for e in s.events.iter().filter(|e| t >= e.start_ms && t <= e.end_ms) {
                match e.kind {
                    EventKind::BatchJob => {
                        disk *= 2.5;
                        cpu += 12.0;
                    }
                    EventKind::Restart => {
                        cpu = 1.0 + cpu * 0.05;
                        net *= 0.02;
                        disk *= 0.05;
                        if s.refill.is_none_or(|r| r.0 < e.start_ms) {
                            let drop = 12.0 + 8.0 * (mix(cfg.seed, idx as u64, e.start_ms as u64) % 1000) as f64 / 1000.0;
                            let tau = 15.0 + 15.0 * (mix(cfg.seed, idx as u64 + 7, e.start_ms as u64) % 1000) as f64 / 1000.0;
                            s.refill = Some((e.end_ms, drop, tau));
                        }
                    }
                    EventKind::CounterReset => {
                        net = 0.0;
                        disk = 0.0;
                    }
                    EventKind::Gap => missing = true,
                }
            }
            if let Some((end, drop, tau)) = s.refill {
                mem -= drop * (-((t - end).max(0) as f64 / MIN_MS as f64) / tau).exp();
            }
            // Scattered missing samples: 0.2 % of rows, from the seed, server and row alone.
            missing |= cfg.confounders && mix(cfg.seed ^ 0x5EED, idx as u64, row) % 1000 < 2;
            let mut v = [cpu.clamp(0.5, 100.0), mem.clamp(1.0, 100.0), net.max(0.0), disk.max(0.0)];
            // Round like a real exporter would report them.
            v[0] = (v[0] * 10.0).round() / 10.0;
            v[1] = (v[1] * 10.0).round() / 10.0;
            v[2] = (v[2] * 10.0).round() / 10.0;
            v[3] = v[3].round();
            if let Some(k) = frozen.filter(|&k| s.last[k] > 0.0) {
                v[k] = s.last[k];
            }
            s.last = v;
            if missing {
                v = [f64::NAN; 4];
            }
            out.push((s.name.clone(), v));
        }
        (t, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_sensitive() {
        let cfg = SimConfig { servers: 3, ..SimConfig::default() };
        let run = |cfg: SimConfig| {
            let mut s = Simulator::new(cfg);
            (0..2000).map(|_| s.next_row()).last().unwrap()
        };
        assert_eq!(run(cfg.clone()), run(cfg.clone()));
        assert_ne!(run(cfg.clone()), run(SimConfig { seed: 7, ..cfg }));
    }

    #[test]
    fn every_kind_appears_and_spikes_show() {
        let cfg = SimConfig { servers: 4, incidents_per_day: 4.0, ..SimConfig::default() };
        let mut sim = Simulator::new(cfg);
        let rows: Vec<_> = (0..(3 * 8640)).map(|_| sim.next_row()).collect();
        let incidents = sim.incidents();
        for kind in IncidentKind::ALL {
            assert!(incidents.iter().any(|i| i.kind == kind), "no {kind:?} in 3 days");
        }
        let spike = incidents.iter().find(|i| i.kind == IncidentKind::CpuSpike && i.start_ms < rows.last().unwrap().0).unwrap();
        let server = spike.server.clone();
        let cpu_at = |t: i64| rows.iter().find(|r| r.0 >= t).map(|r| r.1.iter().find(|s| s.0 == server).unwrap().1[0]).unwrap();
        assert!(cpu_at(spike.start_ms + 60_000) > cpu_at(spike.start_ms - 600_000) + 20.0);
        for (_, r) in &rows {
            for (_, v) in r {
                let missing = v.iter().all(|x| x.is_nan());
                assert!(missing || (v.iter().all(|x| x.is_finite() && *x >= 0.0) && v[0] <= 100.0 && v[1] <= 100.0), "{v:?}");
            }
        }
    }

    #[test]
    fn confounders_are_unlabelled_normal_events_and_leave_incidents_alone() {
        let cfg = SimConfig { servers: 4, ..SimConfig::default() };
        let run = |cfg: SimConfig| {
            let mut sim = Simulator::new(cfg);
            let rows: Vec<_> = (0..(3 * 8640)).map(|_| sim.next_row()).collect();
            (rows, sim.incidents(), sim.events())
        };
        let (rows, incidents, events) = run(cfg.clone());
        let (plain_rows, plain_incidents, plain_events) = run(SimConfig { confounders: false, ..cfg });
        assert_eq!(incidents, plain_incidents, "confounders draw from their own stream");
        assert!(plain_events.is_empty() && plain_rows.iter().all(|(_, r)| r.iter().all(|(_, v)| v.iter().all(|x| x.is_finite()))));
        for kind in [EventKind::Restart, EventKind::BatchJob, EventKind::CounterReset, EventKind::Gap] {
            assert!(events.iter().any(|e| e.kind == kind), "no {kind:?} in 3 days × 4 servers");
        }
        // The batch job runs at the same time every day, once per server and day.
        let end = rows.last().unwrap().0;
        let batches: Vec<_> =
            events.iter().filter(|e| e.kind == EventKind::BatchJob && e.server == "web-server-01" && e.start_ms <= end).collect();
        assert_eq!(batches.len(), 3);
        assert!(batches.windows(2).all(|w| w[1].start_ms - w[0].start_ms == DAY_MS));
        let value = |t: i64, server: &str, k: usize| {
            rows.iter().find(|r| r.0 >= t).and_then(|r| r.1.iter().find(|s| s.0 == server)).map(|s| s.1[k]).unwrap()
        };
        let b = batches[0];
        assert!(value(b.start_ms + 60_000, &b.server, 3) > 1.8 * value(b.start_ms - 600_000, &b.server, 3), "disk during the batch job");
        let gap = events.iter().find(|e| e.kind == EventKind::Gap && e.end_ms < end).unwrap();
        let last_row = gap.end_ms + 1 - 10_000;
        assert!(value(gap.start_ms, &gap.server, 0).is_nan() && value(last_row, &gap.server, 0).is_nan(), "no samples in a gap: {gap:?}");
        let restart = events.iter().find(|e| e.kind == EventKind::Restart && e.end_ms < end).unwrap();
        let (before, down) = (value(restart.start_ms - 120_000, &restart.server, 0), value(restart.start_ms, &restart.server, 0));
        assert!(down < 0.3 * before || down.is_nan(), "the process is down: cpu {before} → {down}");
        // No restart or gap hides an incident.
        for e in events.iter().filter(|e| matches!(e.kind, EventKind::Restart | EventKind::Gap)) {
            assert!(incidents.iter().filter(|i| i.server == e.server).all(|i| e.end_ms < i.start_ms || e.start_ms > i.end_ms));
        }
    }
}
