//! `driftdb-load`: see the library docs and `docs/benchmarks.md`.

use std::process::ExitCode;

use clap::Parser;
use driftdb_load::{Options, Report, progress, run};

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,web_transport_quinn=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
