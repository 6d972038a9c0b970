//! The arguments of `kubectl fedprogress` and what a run does with them.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use jiff::Timestamp;

use super::http_source::{HttpSource, HttpWatch};
use super::kubernetes_source::{KubernetesSource, KubernetesWatch};
use super::live::{self, Source, View};
use super::model::{self, Update};
use super::render;
use super::{Error, Outcome};

/// Shown under `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    the job succeeded
  1    the job failed
  2    no view: bad input, no such fleet, server unreachable or refusing (401, 404),
       or the enablement was deleted while being watched
  3    without --watch: the job has not ended yet (pending, running, or being deleted)
  130  interrupted (Ctrl-C)

Without --server the enablement is read from the cluster of the kubeconfig (KUBECONFIG, else
~/.kube/config): with -n in that namespace, else in all namespaces, else (when listing all is
forbidden) in the kubeconfig's namespace. While it is being deleted its teardown is shown.";

/// A bearer token; its `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub(super) fn secret(&self) -> &str {
        &self.0
    }
}

impl FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token(s.trim().to_string()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Shows a fleet's federation job as a tree of subjobs, once or live until it ends.
#[derive(clap::Args, Debug)]
pub struct ProgressArgs {
    /// The fleet: the enablement's spec.clusterGroupID.
    #[arg(value_name = "CLUSTERGROUPID")]
    pub fleet: String,
    /// Follow the job until it ends: exit 0 on Success, 1 on Failed.
    #[arg(short, long)]
    pub watch: bool,
    /// Read the controller's HTTP API at this base URL (e.g. http://localhost:8080) instead of
    /// the cluster.
    #[arg(long, env = "FEDPROGRESS_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Token for --server, sent as `Authorization: Bearer`. The environment variable keeps it
    /// out of the process list.
    #[arg(
        long,
        env = "FEDPROGRESS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<Token>,
    /// PEM file of CA certificates to trust for an https --server (besides the system's).
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Without --server: the enablement's namespace (default: search all namespaces).
    #[arg(short, long, conflicts_with = "server")]
    pub namespace: Option<String>,
    /// Without --server: the kubeconfig context (default: the current one).
    #[arg(long, conflicts_with = "server")]
    pub context: Option<String>,
}

impl Source for HttpWatch {
    async fn next(&mut self) -> Result<Update, Error> {
        HttpWatch::next(self).await
    }
}

impl Source for KubernetesWatch {
    async fn next(&mut self) -> Result<Update, Error> {
        KubernetesWatch::next(self).await
    }
}

/// Shows the view the arguments ask for; the exit code says how the job stands (see
/// [`EXIT_CODES_HELP`]). Errors go to stderr.
pub async fn run(args: ProgressArgs) -> ExitCode {
    // The one TLS provider compiled in, for the kube client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match view(&args).await {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            // Server and API server text reaches errors too (an unknown phase, a name).
            eprintln!("error: {}", render::printable(&error.to_string()));
            error.exit_code()
        }
    }
}

fn outcome_now(job: &model::JobView) -> Outcome {
    job.outcome().unwrap_or(Outcome::InProgress)
}

async fn view(args: &ProgressArgs) -> Result<Outcome, Error> {
    if !federation_api::fleet::valid_cluster_group_id(&args.fleet) {
        return Err(Error::InvalidFleet(args.fleet.clone()));
    }
    let fleet = args.fleet.as_str();
    if let Some(url) = &args.server {
        let server = HttpSource::new(
            url,
            args.token.as_ref(),
            args.certificate_authority.as_deref(),
        )?;
        if args.watch {
            return live::follow(&mut server.watch(fleet), &mut View::for_stdout()).await;
        }
        let update = server.progress(fleet).await?;
        let now = update.server_now.unwrap_or_else(Timestamp::now);
        View::lines(std::io::stdout()).show(&update.job, now)?;
        return Ok(outcome_now(&update.job));
    }
    let cluster = KubernetesSource::connect(args.context.as_deref()).await?;
    let fe = cluster.find(fleet, args.namespace.as_deref()).await?;
    let job = model::from_enablement(&fe);
    if args.watch {
        // What was just read, at once; the watch then reports every change.
        let mut view = View::for_stdout();
        view.show(&job, Timestamp::now())?;
        if let Some(outcome) = job.outcome() {
            view.stop();
            return Ok(outcome);
        }
        return live::follow(&mut cluster.watch(&fe), &mut view).await;
    }
    View::lines(std::io::stdout()).show(&job, Timestamp::now())?;
    Ok(outcome_now(&job))
}
