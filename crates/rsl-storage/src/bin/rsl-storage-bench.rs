//! `rsl-storage-bench`: append throughput and commit latency of every storage backend, beside
//! the raw limit of the same disk (a plain loop of `pwrite` + `fdatasync` of the same sizes,
//! to a file in the same directory), measured in the same run.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use rsl_storage::testkit::payload;
use rsl_storage::{
    DaxMode, FsMedia, Log, LogOptions, MemDisk, PmemMedia, SegmentLog, StorageError,
};

#[derive(Parser, Debug, Clone)]
#[command(about = "Storage benchmark: append throughput and commit latency per backend")]
struct Args {
    /// Directory for the benchmark files (on the disk to measure); removed afterwards.
    #[arg(long, default_value = "rsl-storage-bench.tmp")]
    dir: PathBuf,
    /// Seconds per measured case (24 cases run), split over the rounds.
    #[arg(long, default_value_t = 0.6)]
    seconds: f64,
    /// Rounds: the cases of one table run interleaved (raw, file, pmem, memory, raw, ...) this
    /// many times and are summed, so a slow moment of a shared disk hits every case alike.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Record sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = vec![64usize, 1024, 65536])]
    sizes: Vec<usize>,
    /// Bytes of records per sync in group-commit mode.
    #[arg(long, default_value_t = 65536)]
    group_bytes: usize,
    /// Backends to measure: file, pmem, pmem-forced-dax (the cache-line flush path on a
    /// non-DAX directory: not durable, it shows the CPU cost of that path only), memory.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["file".to_string(), "pmem".to_string(), "pmem-forced-dax".to_string(), "memory".to_string()])]
    backends: Vec<String>,
    /// Treat the directory as DAX (cache-line flushes instead of msync) for the pmem backend.
    /// Unsafe unless the directory really is on a DAX mount; for measuring only.
    #[arg(long)]
    force_dax: bool,
}

/// Figures of one measured case.
struct Figures {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    latency_ns: Histogram<u64>,
}

impl Figures {
    fn merge(&mut self, other: Figures) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        self.latency_ns.add(&other.latency_ns).expect("same bounds");
    }

    fn row(&self, name: &str, raw: Option<&Figures>) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mbps = self.bytes as f64 / secs / 1e6;
        let vs_raw = raw.filter(|_| name == "file" || name == "pmem").map_or("".to_string(), |r| {
            let raw_mbps = r.bytes as f64 / r.elapsed.as_secs_f64() / 1e6;
            format!("{:.0}%", 100.0 * mbps / raw_mbps)
        });
        format!(
            "| {name:<22} | {:>12.0} | {:>9.1} | {:>9.1} | {:>9.1} | {:>7} |",
            self.records as f64 / secs,
            mbps,
            self.latency_ns.value_at_quantile(0.5) as f64 / 1000.0,
            self.latency_ns.value_at_quantile(0.99) as f64 / 1000.0,
            vs_raw
        )
    }
}

/// Run `commit` (which commits `records_per_commit` records of `size` bytes) until the time
/// is up, timing each commit.
fn measure(
    seconds: f64,
    size: usize,
    records_per_commit: usize,
    mut commit: impl FnMut(u64) -> Result<(), StorageError>,
) -> Result<Figures, StorageError> {
    let mut latency_ns = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed().as_secs_f64() < seconds || commits < 3 {
        let t = Instant::now();
        commit(commits)?;
        latency_ns.saturating_record(t.elapsed().as_nanos() as u64);
        commits += 1;
    }
    let records = commits * records_per_commit as u64;
    Ok(Figures { records, bytes: records * size as u64, elapsed: start.elapsed(), latency_ns })
}

fn raw(dir: &Path, seconds: f64, size: usize, per_commit: usize) -> Result<Figures, StorageError> {
    let path = dir.join("raw.dat");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io("open", e))?;
    let buf = payload(1, 1, size * per_commit);
    let mut offset = 0u64;
    let figures = measure(seconds, size, per_commit, |_| {
        file.write_all_at(&buf, offset).map_err(|e| StorageError::io("pwrite", e))?;
        offset += buf.len() as u64;
        file.sync_data().map_err(|e| StorageError::io("fdatasync", e))
    });
    std::fs::remove_file(&path).map_err(|e| StorageError::io("remove", e))?;
    figures
}

fn log_case<L: Log>(
    mut log: L,
    seconds: f64,
    size: usize,
    per_commit: usize,
) -> Result<Figures, StorageError> {
    let data = payload(1, 1, size);
    measure(seconds, size, per_commit, |commit| {
        for i in 0..per_commit as u64 {
            log.append(commit * per_commit as u64 + i, 1, &data)?;
        }
        log.sync()
    })
}

fn backend_case(
    backend: &str,
    dir: &Path,
    args: &Args,
    size: usize,
    per_commit: usize,
) -> Result<Figures, StorageError> {
    let case_dir = dir.join(format!("{backend}-{size}-{per_commit}"));
    let options = LogOptions::default();
    let figures = match backend {
        "file" => {
            let (log, _) = SegmentLog::open(FsMedia::open(&case_dir)?, options)?;
            log_case(log, args.seconds, size, per_commit)
        }
        "pmem" => {
            let dax = if args.force_dax { DaxMode::On } else { DaxMode::Detect };
            let (log, _) = SegmentLog::open(PmemMedia::open(&case_dir, dax)?, options)?;
            log_case(log, args.seconds, size, per_commit)
        }
        "pmem-forced-dax" => {
            let (log, _) = SegmentLog::open(PmemMedia::open(&case_dir, DaxMode::On)?, options)?;
            log_case(log, args.seconds, size, per_commit)
        }
        "memory" => {
            let disk = MemDisk::new(0);
            let (log, _) = SegmentLog::open(disk.media(), options)?;
            log_case(log, args.seconds, size, per_commit)
        }
        other => panic!("unknown backend {other}"),
    };
    if case_dir.exists() {
        std::fs::remove_dir_all(&case_dir).map_err(|e| StorageError::io("remove_dir", e))?;
    }
    figures
}

fn header(title: &str) {
    println!("\n{title}\n");
    println!(
        "| case                   |    records/s |      MB/s |  p50 (us) |  p99 (us) |  vs raw |"
    );
    println!(
        "|------------------------|-------------:|----------:|----------:|----------:|--------:|"
    );
}

/// Replay: write `mb` MiB of 1 KiB records, then time reopening (recovery scan) and
/// reading every record back.
fn replay(dir: &Path, mib: usize) -> Result<(), StorageError> {
    let case_dir = dir.join("replay");
    let (mut log, _) = SegmentLog::open(FsMedia::open(&case_dir)?, LogOptions::default())?;
    let data = payload(2, 2, 1024);
    let records = (mib << 20) / 1024;
    for slot in 0..records as u64 {
        log.append(slot, 1, &data)?;
        if slot % 1024 == 1023 {
            log.sync()?;
        }
    }
    log.sync()?;
    let bytes = log.bytes_on_disk();
    drop(log);
    let t = Instant::now();
    let (mut log, report) = SegmentLog::open(FsMedia::open(&case_dir)?, LogOptions::default())?;
    let open_secs = t.elapsed().as_secs_f64();
    let mut read = 0usize;
    let mut from = 0;
    loop {
        let batch = log.read_range(from, u64::MAX, 8 << 20)?;
        let Some(last) = batch.last() else { break };
        from = last.slot + 1;
        read += batch.len();
    }
    let total_secs = t.elapsed().as_secs_f64();
    assert_eq!(read, records);
    assert_eq!(report.records, records as u64);
    println!(
        "\nReplay of {:.0} MB (page cache warm): recovery scan {:.0} MB/s, scan + read all {:.0} MB/s",
        bytes as f64 / 1e6,
        bytes as f64 / open_secs / 1e6,
        bytes as f64 / total_secs / 1e6
    );
    std::fs::remove_dir_all(&case_dir).map_err(|e| StorageError::io("remove_dir", e))
}

/// One table: raw and every backend, interleaved over the rounds.
fn table(
    dir: &Path,
    args: &Args,
    title: &str,
    size: usize,
    per_commit: usize,
) -> Result<(), StorageError> {
    header(title);
    let rounds = args.rounds.max(1);
    let round_args = Args { seconds: args.seconds / f64::from(rounds), ..args.clone() };
    let mut raw_total: Option<Figures> = None;
    let mut totals: Vec<Option<Figures>> = args.backends.iter().map(|_| None).collect();
    for _ in 0..rounds {
        let f = raw(dir, round_args.seconds, size, per_commit)?;
        match &mut raw_total {
            Some(t) => t.merge(f),
            None => raw_total = Some(f),
        }
        for (backend, total) in args.backends.iter().zip(totals.iter_mut()) {
            let f = backend_case(backend, dir, &round_args, size, per_commit)?;
            match total {
                Some(t) => t.merge(f),
                None => *total = Some(f),
            }
        }
    }
    let raw_total = raw_total.expect("at least one round");
    println!("{}", raw_total.row("raw write+fdatasync", None));
    for (backend, total) in args.backends.iter().zip(totals) {
        println!("{}", total.expect("at least one round").row(backend, Some(&raw_total)));
    }
    Ok(())
}

fn bench(args: &Args) -> Result<(), StorageError> {
    std::fs::create_dir_all(&args.dir).map_err(|e| StorageError::io("create_dir", e))?;
    let dir = args.dir.canonicalize().map_err(|e| StorageError::io("canonicalize", e))?;
    let pmem = PmemMedia::open(
        dir.join("probe"),
        if args.force_dax { DaxMode::On } else { DaxMode::Detect },
    )?;
    println!(
        "rsl-storage-bench: dir {}, {} s per case in {} interleaved rounds",
        dir.display(),
        args.seconds,
        args.rounds
    );
    println!(
        "pmem backend durability: {:?} (DAX detected: {}; CPU cache-line flush: {:?})",
        pmem.flush_kind(),
        rsl_storage::media::dir_is_dax(&dir),
        rsl_storage::media::cpu_flush()
    );
    std::fs::remove_dir_all(dir.join("probe")).map_err(|e| StorageError::io("remove_dir", e))?;
    for &size in &args.sizes {
        table(&dir, args, &format!("### One record per sync, {size} B records"), size, 1)?;
    }
    for &size in &args.sizes {
        let per_commit = (args.group_bytes / size).max(1);
        let title = format!(
            "### Group commit: {per_commit} x {size} B records per sync ({} B batches)",
            per_commit * size
        );
        table(&dir, args, &title, size, per_commit)?;
    }
    replay(&dir, 256)?;
    std::fs::remove_dir_all(&dir).map_err(|e| StorageError::io("remove_dir", e))
}

fn main() {
    let args = Args::parse();
    if let Err(e) = bench(&args) {
        eprintln!("rsl-storage-bench: {e}");
        std::process::exit(1);
    }
}
