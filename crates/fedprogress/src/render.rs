//! The job as a tree of lines, as of an injected `now`: pure, so both the live view and the
//! plain one show exactly this.
//!
//! ```text
//! fleet-a (team-a/fleet-a)  CreateFederationContainer  2/4  Failed (SimulatedFailure)  8.5s
//!   CreateCert failed after 3 attempts
//! ├─ ✓ CreateNode              Success  1.0s  attempt 1/3
//! ├─ ✓ CreateNetworkResource   Success  2.0s  attempt 1/3
//! ├─ ✗ CreateCert              Failed   6.0s  attempt 3/3  SimulatedFailure
//! │      simulated failure of CreateCert
//! └─ · InstallFederationChart  Pending
//! ```

use std::borrow::Cow;
use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::model::{JobView, Phase, Standing, StepView};
use federation_api::enablement::SubJobPhase;

/// How a step's line starts; the live view draws `Running` as a spinner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Done,
    Failed,
    Running,
    Waiting,
}

impl Marker {
    pub fn symbol(self) -> &'static str {
        match self {
            Marker::Done => "✓",
            Marker::Failed => "✗",
            Marker::Running => "▸",
            Marker::Waiting => "·",
        }
    }

    fn of(phase: SubJobPhase) -> Self {
        match phase {
            SubJobPhase::Success => Marker::Done,
            SubJobPhase::Failed => Marker::Failed,
            SubJobPhase::Running => Marker::Running,
            SubJobPhase::Pending => Marker::Waiting,
        }
    }
}

/// One step: `branch marker text`, then its detail lines (the failure message).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `├─ ` or `└─ ` for the last step.
    pub branch: &'static str,
    pub marker: Marker,
    pub text: String,
    /// Lines under the step, each already indented to continue the tree.
    pub details: Vec<String>,
}

/// The whole tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    /// Fleet, enablement, job type.
    pub title: String,
    /// Phase (with its reason when it says more) and duration.
    pub state: String,
    pub done: usize,
    pub total: usize,
    /// Lines under the job line (its failure message), indented.
    pub details: Vec<String>,
    pub rows: Vec<Row>,
}

/// `text` safe to put on a terminal, whatever a broken or hostile source sent: every control
/// character (C0, DEL and C1: escape sequences start with one) and every bidirectional override
/// (which reorders what is shown) becomes its Rust escape, `\u{1b}`, `\r`, so it shows
/// instead of acting. Line breaks too: one piece of text is one line here, and a caller that means
/// several lines splits them first (as failure messages are), so a stray `\r` or `\n` cannot
/// rewrite or forge the lines around it.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn unprintable(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unprintable) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unprintable(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// `850ms`, `4.2s`, `42s`, `3m05s`, `1h02m`; negative (clocks apart) shows as `0ms`.
pub fn duration(d: SignedDuration) -> String {
    let millis = d.as_millis().max(0);
    let secs = millis / 1000;
    match millis {
        0..1_000 => format!("{millis}ms"),
        1_000..10_000 => format!("{}.{}s", secs, (millis % 1000) / 100),
        10_000..60_000 => format!("{secs}s"),
        60_000..3_600_000 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// Start to completion, or to `now` while it runs; nothing before it starts.
fn elapsed<P>(standing: &Standing<P>, now: Timestamp) -> String {
    match standing.start {
        Some(start) => duration(standing.completion.unwrap_or(now).duration_since(start)),
        None => String::new(),
    }
}

/// The reason, when it says more than the phase does (a success needs none).
fn telling<P: Phase>(standing: &Standing<P>) -> Cow<'_, str> {
    match standing.reason.as_deref() {
        Some("Pending" | "Running" | "Succeeded") | None => Cow::Borrowed(""),
        Some(_) if standing.phase.succeeded() => Cow::Borrowed(""),
        Some(reason) if reason == standing.phase.word() => Cow::Borrowed(""),
        Some(reason) => printable(reason),
    }
}

/// A failure's message, a line each, after `indent`.
fn failure_lines<P: Phase>(standing: &Standing<P>, indent: &str) -> Vec<String> {
    standing
        .message
        .iter()
        .filter(|_| standing.phase.failed())
        .flat_map(|message| message.lines())
        .map(|line| format!("{indent}{}", printable(line)))
        .collect()
}

fn attempts(step: &StepView) -> String {
    match (step.attempts, step.max_attempts) {
        (None | Some(0), _) => String::new(),
        (Some(n), Some(max)) => format!("attempt {n}/{max}"),
        (Some(n), None) => format!("attempt {n}"),
    }
}

/// Columns separated by two spaces, each padded to its width, without trailing blanks; a
/// column no row fills (width 0) takes no room.
fn columns(cells: &[(&str, usize)]) -> String {
    let mut line = String::new();
    for (cell, width) in cells
        .iter()
        .filter(|(cell, width)| *width > 0 || !cell.is_empty())
    {
        if !line.is_empty() {
            line.push_str("  ");
        }
        line.push_str(&format!("{cell:<width$}"));
    }
    line.trim_end().to_string()
}

/// The widest cell of each column.
fn widths<const N: usize>(rows: &[[String; N]]) -> [usize; N] {
    std::array::from_fn(|column| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    })
}

pub fn tree(job: &JobView, now: Timestamp) -> Tree {
    // Name, phase, duration, attempts, reason: the rows' columns line up.
    let cells: Vec<[String; 5]> = job
        .steps
        .iter()
        .map(|step| {
            [
                printable(&step.type_).into_owned(),
                step.standing.phase.word().to_string(),
                elapsed(&step.standing, now),
                attempts(step),
                telling(&step.standing).into_owned(),
            ]
        })
        .collect();
    let width = widths(&cells);
    let last = job.steps.len().saturating_sub(1);
    let rows = job
        .steps
        .iter()
        .zip(&cells)
        .enumerate()
        .map(|(i, (step, cells))| {
            let (branch, continuation) = if i == last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let line: Vec<(&str, usize)> = cells
                .iter()
                .zip(width)
                .map(|(cell, width)| (cell.as_str(), width))
                .collect();
            Row {
                branch,
                marker: Marker::of(step.standing.phase),
                text: columns(&line),
                details: failure_lines(&step.standing, &format!("{continuation}    ")),
            }
        })
        .collect();
    let state = match telling(&job.standing) {
        reason if reason.is_empty() => job.standing.phase.word().to_string(),
        reason => format!("{} ({reason})", job.standing.phase.word()),
    };
    let (fleet, type_) = (printable(&job.fleet), printable(&job.type_));
    Tree {
        title: if job.enablement.is_empty() || job.enablement == job.fleet {
            format!("{fleet}  {type_}")
        } else {
            format!("{fleet} ({})  {type_}", printable(&job.enablement))
        },
        state: columns(&[(&state, 0), (&elapsed(&job.standing, now), 0)]),
        done: job.done(),
        total: job.steps.len(),
        details: failure_lines(&job.standing, "  "),
        rows,
    }
}

impl Row {
    /// The text, and the details on the lines below it.
    pub fn body(&self) -> String {
        let mut body = self.text.clone();
        for detail in &self.details {
            body.push('\n');
            body.push_str(detail);
        }
        body
    }

    /// The row with `marker` drawn after the branch.
    pub fn line(&self, marker: &str) -> String {
        format!("{}{marker} {}", self.branch, self.body())
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}  {}/{}  {}",
            self.title, self.done, self.total, self.state
        )?;
        for detail in &self.details {
            writeln!(f, "{detail}")?;
        }
        for row in &self.rows {
            writeln!(f, "{}", row.line(row.marker.symbol()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TEARDOWN_JOB;
    use crate::model::fixtures::{job, step, ts};
    use federation_api::enablement::JobPhase;

    fn running() -> JobView {
        let mut node = step("CreateNode", SubJobPhase::Success);
        node.standing.reason = Some("Succeeded".into());
        node.standing.start = Some(ts("2026-01-15T08:00:00Z"));
        node.standing.completion = Some(ts("2026-01-15T08:00:01.25Z"));
        let mut network = step("CreateNetworkResource", SubJobPhase::Running);
        network.standing.reason = Some("WaitingForLoadBalancer".into());
        network.standing.start = Some(ts("2026-01-15T08:00:00Z"));
        network.attempts = Some(2);
        let mut job = job(
            JobPhase::Running,
            vec![
                node,
                network,
                step("CreateCert", SubJobPhase::Pending),
                step("InstallFederationChart", SubJobPhase::Pending),
            ],
        );
        job.standing.reason = Some("Running".into());
        job
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_shown_escaped() {
        assert_eq!(
            printable("ok\x1b]0;pwned\x07\x1b[2J\u{9b}31m\r\n\t\u{7f}\u{202e}txt.exe"),
            "ok\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{9b}31m\\r\\n\\t\\u{7f}\\u{202e}txt.exe"
        );
        assert!(matches!(
            printable("flotte-é ✓ \\u{1b} {x}"),
            Cow::Borrowed("flotte-é ✓ \\u{1b} {x}")
        ));
    }

    #[test]
    fn nothing_a_source_sends_reaches_the_terminal_as_a_control_character() {
        let mut cert = step("CreateCert\x1b[2K", SubJobPhase::Failed);
        cert.standing.reason = Some("Bad\x1b[31mReason".into());
        cert.standing.message = Some("line one\x1b[1A\nline two\rforged".into());
        let mut failed = job(JobPhase::Failed, vec![cert]);
        failed.enablement = "team-a/\u{9b}2J".into();
        failed.type_ = "Create\x07".into();
        failed.standing.reason = Some("Why\x1b[?25l".into());
        failed.standing.message = Some("job\x1bc message".into());
        let text = tree(&failed, ts("2026-01-15T08:00:05Z")).to_string();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(
            text,
            "fleet-a (team-a/\\u{9b}2J)  Create\\u{7}  0/1  Failed (Why\\u{1b}[?25l)  5.0s\n\
             \x20 job\\u{1b}c message\n\
             └─ ✗ CreateCert\\u{1b}[2K  Failed  5.0s  Bad\\u{1b}[31mReason\n\
             \x20      line one\\u{1b}[1A\n\
             \x20      line two\\rforged\n"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        let d = |ms: i64| duration(SignedDuration::from_millis(ms));
        assert_eq!(
            [d(850), d(4_250), d(42_900), d(185_000), d(3_725_000), d(-5)],
            ["850ms", "4.2s", "42s", "3m05s", "1h02m", "0ms"]
        );
    }

    #[test]
    fn a_running_job_is_a_tree_whose_running_steps_count_up_to_now() {
        let text = tree(&running(), ts("2026-01-15T08:01:05Z")).to_string();
        assert_eq!(
            text,
            "fleet-a (team-a/fleet-a)  CreateFederationContainer  1/4  Running  1m05s\n\
             ├─ ✓ CreateNode              Success  1.2s\n\
             ├─ ▸ CreateNetworkResource   Running  1m05s  attempt 2  WaitingForLoadBalancer\n\
             ├─ · CreateCert              Pending\n\
             └─ · InstallFederationChart  Pending\n"
        );
    }

    #[test]
    fn the_same_job_later_shows_longer_running_durations_only() {
        let job = running();
        let early = tree(&job, ts("2026-01-15T08:00:10Z"));
        let late = tree(&job, ts("2026-01-15T08:00:20Z"));
        assert_eq!(early.rows[0], late.rows[0], "finished steps do not move");
        assert!(early.rows[1].text.contains("10s") && late.rows[1].text.contains("20s"));
    }

    #[test]
    fn a_failed_step_shows_its_attempts_reason_and_message_under_it() {
        let mut cert = step("CreateCert", SubJobPhase::Failed);
        cert.standing.reason = Some("SimulatedFailure".into());
        cert.standing.message = Some("simulated failure of CreateCert".into());
        cert.attempts = Some(3);
        cert.max_attempts = Some(3);
        cert.standing.start = Some(ts("2026-01-15T08:00:02Z"));
        cert.standing.completion = Some(ts("2026-01-15T08:00:08Z"));
        let mut failed = job(
            JobPhase::Failed,
            vec![cert, step("InstallFederationChart", SubJobPhase::Pending)],
        );
        failed.standing.reason = Some("SimulatedFailure".into());
        failed.standing.message = Some("CreateCert failed after 3 attempts".into());
        failed.standing.completion = Some(ts("2026-01-15T08:00:08.5Z"));
        let text = tree(&failed, ts("2026-01-15T09:00:00Z")).to_string();
        assert_eq!(
            text,
            "fleet-a (team-a/fleet-a)  CreateFederationContainer  0/2  Failed (SimulatedFailure)  8.5s\n\
             \x20 CreateCert failed after 3 attempts\n\
             ├─ ✗ CreateCert              Failed   6.0s  attempt 3/3  SimulatedFailure\n\
             │      simulated failure of CreateCert\n\
             └─ · InstallFederationChart  Pending\n"
        );
    }

    #[test]
    fn messages_of_steps_that_did_not_fail_are_not_shown() {
        let mut node = step("CreateNode", SubJobPhase::Running);
        node.standing.message = Some("waiting for 1 node".into());
        let text = tree(
            &job(JobPhase::Running, vec![node]),
            ts("2026-01-15T08:00:00Z"),
        )
        .to_string();
        assert!(!text.contains("waiting for"), "{text}");
    }

    #[test]
    fn a_succeeded_job_counts_every_step_and_stops_its_clock() {
        let steps = ["CreateNode", "CreateCert"]
            .iter()
            .map(|t| {
                let mut s = step(t, SubJobPhase::Success);
                s.standing.start = Some(ts("2026-01-15T08:00:00Z"));
                s.standing.completion = Some(ts("2026-01-15T08:00:03Z"));
                s
            })
            .collect();
        let mut done = job(JobPhase::Success, steps);
        done.standing.reason = Some("Succeeded".into());
        done.standing.completion = Some(ts("2026-01-15T08:00:06Z"));
        let tree = tree(&done, ts("2026-01-16T00:00:00Z"));
        assert_eq!((tree.done, tree.total), (2, 2));
        assert_eq!(tree.state, "Success  6.0s");
        assert!(tree.rows.iter().all(|r| r.marker == Marker::Done));
        assert_eq!(tree.rows[1].branch, "└─ ");
    }

    #[test]
    fn a_teardown_is_titled_as_one() {
        let mut teardown = job(
            JobPhase::Running,
            vec![step("UninstallFederationChart", SubJobPhase::Running)],
        );
        teardown.type_ = TEARDOWN_JOB.to_string();
        teardown.standing.reason = Some("Uninstalling".into());
        let tree = tree(&teardown, ts("2026-01-15T08:00:03Z"));
        assert_eq!(tree.title, "fleet-a (team-a/fleet-a)  DeleteFederation");
        assert_eq!(tree.state, "Running (Uninstalling)  3.0s");
    }
}
