//! A progress bar on stderr for a run (elapsed against the sending time, then the drain), drawn only on a terminal:
//! piped or redirected, the output stays the report alone.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar moves.
const TICK: Duration = Duration::from_millis(200);

/// A bar over `sending` (the run's duration), labelled `label`; hidden unless stderr is a terminal.
pub fn run_bar(label: String, sending: Duration) -> ProgressBar {
    let target =
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(sending.as_millis() as u64), target);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {elapsed} of {len_secs}, {eta} left")
        .expect("a valid template")
        .with_key("len_secs", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}s", state.len().unwrap_or(0) / 1000);
        })
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(label);
    bar
}

/// Moves `bar` with the clock until the sending time is over, then says the run is draining.
pub async fn follow_clock(bar: ProgressBar) {
    let start = tokio::time::Instant::now();
    let len = bar.length().unwrap_or(0);
    loop {
        tokio::time::sleep(TICK).await;
        let elapsed = start.elapsed().as_millis() as u64;
        bar.set_position(elapsed.min(len));
        if elapsed >= len {
            bar.set_message(format!("{} (draining)", bar.message()));
            return;
        }
    }
}
