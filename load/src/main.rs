//! `driftdb-load`: see the library docs and `docs/benchmarks.md`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use driftdb_load::{Options, Report, Scenario, floor::Floor, limits, progress, report, run, side_by_side};

/// File descriptors to ask for: the `scale` scenario holds 25,000 connections, plus sockets of setup and the runtime.
const OPEN_FILES: u64 = 65_536;

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,web_transport_quinn=error".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: piped output stays plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let options = Options::parse();
    match limits::raise_open_files(OPEN_FILES) {
        // Only the scale scenario comes near it, and it reports the sockets it could not open.
        Ok(limit) if limit < OPEN_FILES => tracing::info!(limit, "open-file limit below {OPEN_FILES}"),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not read or raise the open-file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Scenario::FloorServer(args) = &options.scenario {
        return runtime.block_on(serve_floor(args));
    }
    if !options.servers.is_empty() {
        let reports = runtime.block_on(side_by_side::run_all(&options))?;
        for report in &reports {
            println!("{}", report.json());
        }
        if !options.json_only {
            println!("\n{}", report::side_by_side_table(&reports));
        }
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        return Ok(if reports.iter().all(Report::ok) { ExitCode::SUCCESS } else { ExitCode::from(2) });
    }
    let label = format!("{} on {}", options.scenario.name(), options.transport.name());
    let bar = progress::run_bar(label, options.duration());
    let report = runtime.block_on(async {
        let clock = tokio::spawn(progress::follow_clock(bar.clone()));
        let report = run(&options).await;
        clock.abort();
        report
    });
    bar.finish_and_clear();
    let report = report?;
    println!("{}", report.json());
    if !options.json_only {
        println!("\n{}\n{}", Report::MARKDOWN_HEADER, report.markdown_row());
    }
    if !report.ok() {
        tracing::warn!(errors = report.errors, samples = ?report.error_samples, "not everything was delivered");
    }
    // Shut down without waiting for tasks of connections the server has not finished closing.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// Runs the floor server until SIGTERM or Ctrl-C.
async fn serve_floor(args: &driftdb_load::FloorServerArgs) -> anyhow::Result<ExitCode> {
    let floor = Floor::start(args.host, args.port).await?;
    println!("driftdb-load floor listening on http://{}", floor.http_addr());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}
