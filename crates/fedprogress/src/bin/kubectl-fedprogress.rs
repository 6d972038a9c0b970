//! `kubectl fedprogress <fleet>`: the terminal view as a kubectl plugin. kubectl runs any
//! `kubectl-<name>` on PATH for `kubectl <name>`.

use std::process::ExitCode;

use clap::Parser;
use fedprogress::{EXIT_CODES_HELP, ProgressArgs};

#[derive(Parser)]
#[command(
    name = "kubectl-fedprogress",
    bin_name = "kubectl fedprogress",
    version,
    about = "Show a fleet's federation job as a tree of subjobs, once or live (--watch) until it ends",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(flatten)]
    args: ProgressArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    fedprogress::run(Cli::parse().args).await
}
