//! Progress of a matrix on stderr: the current cell, runs done and left, elapsed time and an estimate, drawn only on a
//! terminal. Piped or redirected, stderr keeps one plain line per finished run and nothing else.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Cell;
use crate::client::Transport;
use crate::scenarios::Scenario;

pub struct MatrixProgress {
    bar: ProgressBar,
    drawn: bool,
}

impl MatrixProgress {
    /// A bar over `runs` runs, drawn on stderr when it is a terminal.
    pub fn on_stderr(runs: usize) -> Self {
        let drawn = std::io::stderr().is_terminal();
        let target = if drawn { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(runs as u64), target);
        let template = "[{elapsed_precise}] {bar:30} {pos}/{len} runs, {eta} left: {msg}";
        bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
        MatrixProgress { bar, drawn }
    }

    /// Names the run that starts now.
    pub fn starting(&self, cell: &Cell, scenario: Scenario, transport: Transport) {
        let (loss, rtt) = (cell.loss * 100.0, cell.rtt_ms);
        self.bar.set_message(format!("{} over {} at {loss:.1}% loss, {rtt} ms RTT", scenario.name(), transport.name()));
    }

    /// Reports a finished run with its one-line summary.
    pub fn finished(&self, line: &str) {
        if self.drawn {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_is_drawn_only_on_a_terminal() {
        let progress = MatrixProgress::on_stderr(4);
        let terminal = std::io::stderr().is_terminal();
        assert_eq!(progress.drawn, terminal);
        assert_eq!(progress.bar.is_hidden(), !terminal, "a hidden bar writes nothing to a pipe");
        progress.finish();
    }
}
