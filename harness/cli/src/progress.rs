//! A run's progress for people: a bar on a terminal, plain lines otherwise (CI logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use isobench_load::Snapshot;
use isobench_runner::Observer;

pub struct Progress {
    bar: Option<ProgressBar>,
    use_bar: bool,
    last_line: Option<Instant>,
}

const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub fn new(no_bar: bool) -> Progress {
        Progress { bar: None, use_bar: !no_bar && std::io::stderr().is_terminal(), last_line: None }
    }
}

impl Observer for Progress {
    fn line(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn snapshot(&mut self, tier: &str, s: &Snapshot) {
        let counts =
            format!("sent {} ok {} err {} timeout {} in flight {}", s.sent, s.ok, s.errors, s.timeouts, s.in_flight);
        if self.use_bar {
            let bar = self.bar.get_or_insert_with(|| {
                let b = ProgressBar::new(s.planned_total);
                b.set_style(
                    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                b.set_prefix(tier.to_string());
                b
            });
            bar.set_length(s.planned_total.max(s.sent));
            bar.set_position(s.sent);
            bar.set_message(counts);
        } else if self.last_line.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            self.last_line = Some(Instant::now());
            eprintln!("[{tier}] {:.1}s {counts}", s.elapsed.as_secs_f64());
        }
    }

    /// Ends the current traffic phase (clears the bar).
    fn phase_end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.last_line = None;
    }
}
