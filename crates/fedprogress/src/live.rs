//! Showing the job as it changes, and the watch loop that feeds it.
//!
//! On a terminal the tree is drawn in place with indicatif: a bar `n/total` for the job and a
//! line per step, a spinner on the running ones, durations ticking every second. Anywhere else
//! (a pipe, a CI log) the tree is printed again at each change, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::{SignedDuration, Timestamp};

use super::model::{JobView, Update};
use super::render::{self, Marker, Tree};
use super::{Error, Outcome};

/// How often running durations and spinners move on a terminal.
const TICK: Duration = Duration::from_secs(1);
const SPIN: Duration = Duration::from_millis(100);

/// The job line as in the plain tree, the bar under it, then the job's failure message.
const JOB_TEMPLATE: &str = "{prefix}\n[{bar:32.green/dim}] {pos}/{len}{msg}";
const ROW_TEMPLATE_DONE: &str = "{prefix}{spinner:.green} {msg}";
const ROW_TEMPLATE_FAILED: &str = "{prefix}{spinner:.red.bold} {msg}";
const ROW_TEMPLATE_RUNNING: &str = "{prefix}{spinner:.cyan} {msg}";
const ROW_TEMPLATE_WAITING: &str = "{prefix}{spinner:.dim} {msg}";

fn style(template: &str) -> ProgressStyle {
    // The templates are constants, checked by a test; the default style is a fallback only.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn row_style(marker: Marker) -> ProgressStyle {
    let (template, frames): (&str, &[&str]) = match marker {
        Marker::Done => (ROW_TEMPLATE_DONE, &["✓", "✓"]),
        Marker::Failed => (ROW_TEMPLATE_FAILED, &["✗", "✗"]),
        // The last frame is what a spinner shows once finished.
        Marker::Running => (
            ROW_TEMPLATE_RUNNING,
            &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "▸"],
        ),
        Marker::Waiting => (ROW_TEMPLATE_WAITING, &["·", "·"]),
    };
    style(template).tick_strings(frames)
}

/// The tree drawn in place with progress bars.
pub struct LiveView {
    multi: MultiProgress,
    job: ProgressBar,
    rows: Vec<(ProgressBar, Marker)>,
    shown: Option<JobView>,
}

impl LiveView {
    pub fn new(target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let job = multi
            .add(ProgressBar::new(0).with_style(style(JOB_TEMPLATE).progress_chars("█▉▊▋▌▍▎▏ ")));
        LiveView {
            multi,
            job,
            rows: Vec::new(),
            shown: None,
        }
    }

    fn draw(&mut self, tree: &Tree) {
        self.job.set_length(tree.total as u64);
        self.job.set_position(tree.done as u64);
        self.job
            .set_prefix(format!("{}  {}", tree.title, tree.state));
        let details: String = tree.details.iter().map(|d| format!("\n{d}")).collect();
        self.job.set_message(details);
        while self.rows.len() > tree.rows.len() {
            if let Some((bar, _)) = self.rows.pop() {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        while self.rows.len() < tree.rows.len() {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(row_style(Marker::Waiting));
            self.rows.push((bar, Marker::Waiting));
        }
        for ((bar, marker), row) in self.rows.iter_mut().zip(&tree.rows) {
            if *marker != row.marker {
                bar.set_style(row_style(row.marker));
                if row.marker == Marker::Running {
                    bar.enable_steady_tick(SPIN);
                } else {
                    bar.disable_steady_tick();
                }
                *marker = row.marker;
            }
            bar.set_prefix(row.branch);
            bar.set_message(row.body());
        }
    }

    /// Leaves the last frame on the screen.
    fn stop(&mut self) {
        self.job.abandon();
        for (bar, _) in &self.rows {
            bar.abandon();
        }
    }
}

/// The tree printed again at each change.
pub struct LinesView<W: Write> {
    out: W,
    shown: Option<JobView>,
}

/// A live view on a terminal, lines anywhere else.
pub enum View<W: Write> {
    Live(LiveView),
    Lines(LinesView<W>),
}

impl View<std::io::Stdout> {
    /// Bars when stdout is a terminal that can move its cursor, lines otherwise.
    pub fn for_stdout() -> Self {
        let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
        if std::io::stdout().is_terminal() && !dumb {
            let live = LiveView::new(ProgressDrawTarget::stdout());
            if !live.multi.is_hidden() {
                return View::Live(live);
            }
        }
        View::lines(std::io::stdout())
    }
}

impl<W: Write> View<W> {
    pub fn lines(out: W) -> Self {
        View::Lines(LinesView { out, shown: None })
    }

    /// Shows `job` if it changed.
    pub fn show(&mut self, job: &JobView, now: Timestamp) -> Result<(), Error> {
        match self {
            View::Live(live) => {
                live.draw(&render::tree(job, now));
                live.shown = Some(job.clone());
            }
            View::Lines(lines) => {
                if lines.shown.as_ref() == Some(job) {
                    return Ok(());
                }
                if lines.shown.is_some() {
                    writeln!(lines.out)?;
                }
                write!(lines.out, "{}", render::tree(job, now))?;
                lines.out.flush()?;
                lines.shown = Some(job.clone());
            }
        }
        Ok(())
    }

    /// Moves running durations on; lines are printed on changes only.
    pub fn tick(&mut self, now: Timestamp) {
        if let View::Live(live) = self
            && let Some(job) = live.shown.clone()
        {
            live.draw(&render::tree(&job, now));
        }
    }

    /// Leaves the last frame as it is.
    pub fn stop(&mut self) {
        if let View::Live(live) = self {
            live.stop();
        }
    }
}

/// The next state of the job, wherever it comes from.
pub(super) trait Source {
    async fn next(&mut self) -> Result<Update, Error>;
}

/// Shows every state `source` reports until the job succeeds or fails; Ctrl-C interrupts.
pub(super) async fn follow<S: Source, W: Write>(
    source: &mut S,
    view: &mut View<W>,
) -> Result<Outcome, Error> {
    // Running durations count to the server's clock when it tells it.
    let mut skew = SignedDuration::ZERO;
    let now = |skew: SignedDuration| {
        let local = Timestamp::now();
        local.checked_add(skew).unwrap_or(local)
    };
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let result = loop {
        // The same call is polled across ticks: a reconnection's backoff is not restarted.
        let next = source.next();
        tokio::pin!(next);
        let update = loop {
            tokio::select! {
                update = &mut next => break update,
                _ = ticks.tick() => view.tick(now(skew)),
                _ = &mut interrupted => break Err(Error::Interrupted),
            }
        };
        let update = match update {
            Ok(update) => update,
            Err(error) => break Err(error),
        };
        if let Some(server_now) = update.server_now {
            skew = server_now.duration_since(Timestamp::now());
        }
        if let Err(error) = view.show(&update.job, now(skew)) {
            break Err(error);
        }
        if let Some(outcome) = update.job.outcome() {
            break Ok(outcome);
        }
    };
    view.stop();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{self, ts};
    use federation_api::enablement::{JobPhase, SubJobPhase};

    /// Steps `Step0`, `Step1`... in these phases.
    fn job(phases: &[SubJobPhase]) -> JobView {
        let steps = phases
            .iter()
            .enumerate()
            .map(|(i, phase)| fixtures::step(&format!("Step{i}"), *phase))
            .collect();
        fixtures::job(JobPhase::Running, steps)
    }

    #[test]
    fn every_template_parses() {
        for template in [
            JOB_TEMPLATE,
            ROW_TEMPLATE_DONE,
            ROW_TEMPLATE_FAILED,
            ROW_TEMPLATE_RUNNING,
            ROW_TEMPLATE_WAITING,
        ] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn the_live_view_shows_the_rendered_tree_in_its_bars() {
        let mut view: View<Vec<u8>> = View::Live(LiveView::new(ProgressDrawTarget::hidden()));
        let running = job(&[
            SubJobPhase::Success,
            SubJobPhase::Running,
            SubJobPhase::Pending,
        ]);
        view.show(&running, ts("2026-01-15T08:00:05Z"))
            .expect("shown");
        let View::Live(live) = &view else {
            unreachable!()
        };
        let tree = render::tree(&running, ts("2026-01-15T08:00:05Z"));
        assert_eq!((live.job.position(), live.job.length()), (1, Some(3)));
        assert_eq!(live.job.prefix(), format!("{}  {}", tree.title, tree.state));
        let rows: Vec<_> = live
            .rows
            .iter()
            .map(|(bar, m)| (bar.prefix(), bar.message(), *m))
            .collect();
        assert_eq!(
            rows,
            tree.rows
                .iter()
                .map(|r| (r.branch.to_string(), r.text.clone(), r.marker))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_live_view_ticks_running_durations_and_follows_the_number_of_steps() {
        let mut view: View<Vec<u8>> = View::Live(LiveView::new(ProgressDrawTarget::hidden()));
        view.show(&job(&[SubJobPhase::Running]), ts("2026-01-15T08:00:05Z"))
            .expect("shown");
        view.tick(ts("2026-01-15T08:00:42Z"));
        let View::Live(live) = &view else {
            unreachable!()
        };
        assert!(
            live.rows[0].0.message().contains("42s"),
            "{}",
            live.rows[0].0.message()
        );
        view.show(&job(&[SubJobPhase::Success; 4]), ts("2026-01-15T08:00:50Z"))
            .expect("shown");
        let View::Live(live) = &view else {
            unreachable!()
        };
        assert_eq!(live.rows.len(), 4);
        assert!(live.rows.iter().all(|(_, m)| *m == Marker::Done));
    }

    #[test]
    fn lines_are_printed_again_only_when_the_job_changes() {
        let mut view = View::lines(Vec::new());
        let running = job(&[SubJobPhase::Running]);
        view.show(&running, ts("2026-01-15T08:00:05Z"))
            .expect("shown");
        view.tick(ts("2026-01-15T08:00:06Z"));
        view.show(&running, ts("2026-01-15T08:00:07Z"))
            .expect("shown");
        view.show(&job(&[SubJobPhase::Success]), ts("2026-01-15T08:00:08Z"))
            .expect("shown");
        let View::Lines(lines) = view else {
            unreachable!()
        };
        let text = String::from_utf8(lines.out).expect("utf-8");
        assert_eq!(
            text.matches("fleet-a (team-a/fleet-a)").count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("\n\nfleet-a"),
            "a blank line between trees: {text}"
        );
    }
}
