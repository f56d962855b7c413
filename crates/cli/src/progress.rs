//! Progress on long runs: shown on stderr only when both stdout and stderr are terminals, so
//! piped or redirected output stays quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct Progress {
    spinner: ProgressBar,
}

impl Progress {
    pub fn new() -> Self {
        let visible = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let spinner = if visible {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { spinner }
    }

    /// Names the phase now running.
    pub fn step(&self, message: &'static str) {
        self.spinner.set_message(message);
    }

    /// A bar for a phase with a known amount of work; hidden whenever the spinner is.
    pub fn bar(&self, message: &'static str, total: u64) -> ProgressBar {
        if self.spinner.is_hidden() {
            return ProgressBar::hidden();
        }
        self.spinner.finish_and_clear();
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar
    }

    pub fn finish(&self) {
        self.spinner.finish_and_clear();
    }
}
