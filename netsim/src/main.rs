//! `netsim`: runs a matrix of scenarios × transports × (loss, RTT) against a real `driftdb` server behind an impaired
//! link and writes `results.jsonl`, `summary.md` and `latency.png`. See `docs/netsim.md`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use netsim::progress::MatrixProgress;
use netsim::{
    Cell, GilbertElliott, Impairment, Lab, MatrixEvent, Mode, Params, RunResult, Scenario, Transport, report,
};

#[derive(Parser)]
#[command(name = "netsim", about = "DriftDB over WebTransport and WebSocket under loss, delay and outages")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a matrix and writes results.jsonl, summary.md and latency.png into --out.
    Matrix(Box<MatrixArgs>),
    /// Re-renders summary.md and latency.png from a results.jsonl.
    Report {
        /// A results.jsonl written by `matrix`.
        input: PathBuf,
        /// Where to write summary.md and latency.png (default: beside the input).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Parser)]
struct MatrixArgs {
    /// faithful: TUN router between two network namespaces (root; TCP and UDP impaired alike). quick: UDP relay,
    /// no root, only WebTransport impaired.
    #[arg(long, value_enum, default_value = "faithful")]
    mode: Mode,
    /// Loss rates in percent, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,5,10,20")]
    loss: Vec<f64>,
    /// Round-trip times in ms, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "20,50,100,200")]
    rtt: Vec<f64>,
    #[arg(long, value_delimiter = ',', value_enum, default_value = "cursors,state,outage,handshake")]
    scenarios: Vec<Scenario>,
    #[arg(long, value_delimiter = ',', value_enum, default_value = "wt,ws")]
    transports: Vec<Transport>,
    /// Seed of every random decision of the link (both transports of a cell get the same).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory.
    #[arg(long, default_value = "netsim-out")]
    out: PathBuf,
    /// The driftdb binary (default: $DRIFTDB_BIN, or next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Jitter (standard deviation of the one-way delay), ms.
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Burst loss in percent (Gilbert–Elliott), on top of --loss.
    #[arg(long, default_value_t = 0.0)]
    burst_loss: f64,
    /// Mean burst length in packets.
    #[arg(long, default_value_t = 4.0)]
    burst_len: f64,
    /// Reordering probability in percent, and how long a reordered packet is held back.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    #[arg(long, default_value_t = 10.0)]
    reorder_gap_ms: f64,
    /// Duplication probability in percent.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Bandwidth cap in Mbit/s each way (0: none) and its queue in KiB.
    #[arg(long, default_value_t = 0.0)]
    rate_mbps: f64,
    #[arg(long, default_value_t = 256)]
    queue_kib: usize,
    /// Clients of the cursor, state and outage scenarios; cursor rate; cursor seconds.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    #[arg(long, default_value_t = 50.0)]
    hz: f64,
    #[arg(long, default_value_t = 8.0)]
    cursor_secs: f64,
    /// Outage length in seconds.
    #[arg(long, default_value_t = 3.0)]
    outage_secs: f64,
}

fn main() -> anyhow::Result<()> {
    // Ctrl-C ends the process even when started from a shell that ignores SIGINT for background jobs; the server and
    // the namespaces go with it (see netsim::lab).
    // SAFETY: restoring a signal's default disposition.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    match Cli::parse().command {
        Command::Matrix(args) => matrix(*args),
        Command::Report { input, out } => {
            let text = std::fs::read_to_string(&input).with_context(|| format!("read {}", input.display()))?;
            let results: Vec<RunResult> =
                text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
            let dir = out.unwrap_or_else(|| input.parent().map(PathBuf::from).unwrap_or_default());
            write_reports(&results, &dir)
        }
    }
}

fn matrix(args: MatrixArgs) -> anyhow::Result<()> {
    let server_bin = match args.server_bin {
        Some(path) => path,
        None => netsim::find_server_binary()?,
    };
    std::fs::create_dir_all(&args.out)?;
    let extra = Impairment {
        jitter_ms: args.jitter_ms,
        burst: (args.burst_loss > 0.0).then(|| GilbertElliott::with_rate(args.burst_loss / 100.0, args.burst_len)),
        reorder: args.reorder / 100.0,
        reorder_gap_ms: args.reorder_gap_ms,
        duplicate: args.duplicate / 100.0,
        rate_bps: (args.rate_mbps > 0.0).then_some((args.rate_mbps * 1e6) as u64),
        queue_bytes: args.queue_kib * 1024,
        ..Impairment::none()
    };
    let cells: Vec<Cell> = args
        .rtt
        .iter()
        .flat_map(|rtt| args.loss.iter().map(|loss| Cell { loss: loss / 100.0, rtt_ms: *rtt, extra: extra.clone() }))
        .collect();
    let params = Params {
        clients: args.clients,
        cursor_hz: args.hz,
        cursor_secs: args.cursor_secs,
        outage_secs: args.outage_secs,
        ..Params::default()
    };
    let lab = Lab::start(args.mode, &server_bin)?;
    let jsonl_path = args.out.join("results.jsonl");
    let mut jsonl = std::fs::File::create(&jsonl_path)?;
    let progress = MatrixProgress::on_stderr(cells.len() * args.scenarios.len() * args.transports.len());
    let (scenarios, transports) = (&args.scenarios, &args.transports);
    let results = netsim::run_matrix(&lab, &cells, scenarios, transports, &params, args.seed, |event| match event {
        MatrixEvent::Starting { cell, scenario, transport } => progress.starting(cell, scenario, transport),
        MatrixEvent::Finished(r) => {
            let line = serde_json::to_string(r).expect("a result serialises");
            let _ = writeln!(jsonl, "{line}");
            progress.finished(&run_summary(r));
        }
    })?;
    progress.finish();
    drop(lab);
    write_reports(&results, &args.out)?;
    eprintln!("wrote {}, summary.md, latency.png and report.html in {}", jsonl_path.display(), args.out.display());
    Ok(())
}

/// One line per finished run on stderr.
fn run_summary(r: &RunResult) -> String {
    format!(
        "{:>9} {:>2} loss {:>4.1}% rtt {:>3} ms: delivered {:>5.1}% p50 {:>7.1} p99 {:>7.1} ms converged {:?} \
         failures {} reconnects {} ({:.1} s)",
        r.scenario.name(),
        r.transport.name(),
        r.loss * 100.0,
        r.rtt_ms,
        r.delivery_ratio * 100.0,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.converged,
        r.session_failures,
        r.reconnects,
        r.wall_secs
    )
}

fn write_reports(results: &[RunResult], dir: &std::path::Path) -> anyhow::Result<()> {
    let table = report::markdown(results);
    std::fs::write(dir.join("summary.md"), &table)?;
    println!("{table}");
    let chart_path = dir.join("latency.png");
    let mut chart = None;
    if results.iter().any(|r| r.scenario == Scenario::Cursors) {
        match report::chart(results, &chart_path) {
            Ok(()) => chart = Some(std::fs::read(&chart_path)?),
            Err(error) => eprintln!("no chart: {error:#}"),
        }
    }
    std::fs::write(dir.join("report.html"), report::html(&table, chart.as_deref()))?;
    Ok(())
}
