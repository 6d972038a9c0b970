//! `federation-controller`: the CLI. Wiring only; the logic lives in the library.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use std::sync::Arc;

use federation_controller::api::SubJobType;
use federation_controller::chart_source::{
    ChartDefaults, DEFAULT_CHART_NAME, DEFAULT_CHART_REPOSITORY, DEFAULT_CHART_VERSION,
};
use federation_controller::clock::SystemClock;
use federation_controller::controller;
use federation_controller::health::{DEFAULT_WATCH_STALL, WatchHealth};
use federation_controller::http::{
    self, AppState, AuthConfig, Authorizer, ConnectionLimits, FederationCache, ServeConfig,
};
use federation_controller::leader::{self, LeaseConfig};
use federation_controller::metrics::Metrics;
use federation_controller::policy::{
    DEFAULT_RUNNER_IMAGE, FleetEntitlement, Policy, parse_repository_url,
};
use federation_controller::subjobs::Executors;
use federation_controller::subjobs::simulated::SimulatedConfig;
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "federation-controller",
    version,
    about = "Enables multi-cluster federation for fleets of clusters and reports its progress"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of KUBECONFIG or the in-cluster config.
    Run(Box<RunArgs>),
    /// Print the FederationEnablement CRD generated from the Rust types.
    Crd,
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Auth {
    Kubernetes,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExecutorKind {
    /// The real executors: nodes, Services, Secrets, Helm Jobs.
    Kubernetes,
    /// Subjobs succeed after a delay and create nothing (demos, load and end-to-end tests).
    Simulated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FleetEntitlementArg {
    None,
    NamespaceAnnotation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the HTTP API (progress, list, health, metrics).
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_HTTP_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    http_addr: SocketAddr,
    /// Certificate file for HTTPS on the HTTP API.
    #[arg(long, env = "FEDERATION_CONTROLLER_TLS_CERT_FILE")]
    tls_cert_file: Option<String>,
    /// Key file for HTTPS on the HTTP API.
    #[arg(long, env = "FEDERATION_CONTROLLER_TLS_KEY_FILE")]
    tls_key_file: Option<String>,
    /// How HTTP callers are authenticated.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_AUTH",
        value_enum,
        default_value = "kubernetes"
    )]
    auth: Auth,
    /// Connections the HTTP API holds open at once; past it new ones are closed at once.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_HTTP_MAX_CONNECTIONS",
        default_value_t = http::DEFAULT_MAX_CONNECTIONS
    )]
    http_max_connections: usize,
    /// With --auth=kubernetes: live streams (`watch=true`) one user may hold open at once.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_HTTP_MAX_STREAMS_PER_USER",
        default_value_t = http::DEFAULT_MAX_STREAMS_PER_USER
    )]
    http_max_streams_per_user: usize,
    /// With --auth=kubernetes: token and access decisions kept in each cache.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_AUTH_CACHE_SIZE",
        default_value_t = http::DEFAULT_AUTH_CACHE_SIZE
    )]
    auth_cache_size: usize,
    /// With --auth=kubernetes: reviews of uncached tokens per second and client address
    /// (burst twice as many).
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_TOKEN_REVIEWS_PER_SECOND",
        default_value_t = http::DEFAULT_TOKEN_REVIEWS_PER_SECOND
    )]
    token_reviews_per_second: u32,
    /// With --auth=kubernetes: the audience TokenReviews ask for (default: the API server's).
    #[arg(long, env = "FEDERATION_CONTROLLER_TOKEN_AUDIENCE")]
    token_audience: Option<String>,
    /// Which executors run the subjobs.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_EXECUTORS",
        value_enum,
        default_value = "kubernetes"
    )]
    executors: ExecutorKind,
    /// With --executors=simulated: how long each subjob takes, in milliseconds.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_SIMULATED_DELAY_MS",
        default_value_t = 300
    )]
    simulated_delay_ms: u64,
    /// With --executors=simulated: the delay of one subjob type, as `TYPE=MS` (repeatable).
    #[arg(long, env = "FEDERATION_CONTROLLER_SIMULATED_DELAY_FOR", value_delimiter = ',', value_parser = parse_delay_for)]
    simulated_delay_for: Vec<(SubJobType, u64)>,
    /// Elect a leader among replicas through a Lease; only the leader reconciles.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_LEADER_ELECT",
        default_value_t = false
    )]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_LEADER_ELECT_LEASE_NAME",
        default_value = "federation-controller"
    )]
    leader_elect_lease_name: String,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "FEDERATION_CONTROLLER_LEADER_ELECT_NAMESPACE")]
    leader_elect_namespace: Option<String>,
    /// Lease duration in seconds.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_LEADER_ELECT_LEASE_DURATION",
        default_value_t = 15
    )]
    leader_elect_lease_duration: u64,
    /// Watch only this namespace (a foreign controlPlane.namespace or clusterScoped chart is then refused).
    #[arg(long, env = "FEDERATION_CONTROLLER_NAMESPACE")]
    namespace: Option<String>,
    /// Runner images a chart may use (comma-separated); the first is the default.
    #[arg(long, env = "FEDERATION_CONTROLLER_ALLOWED_RUNNER_IMAGES", value_delimiter = ',', default_value = DEFAULT_RUNNER_IMAGE)]
    allowed_runner_images: Vec<String>,
    /// ClusterRoles the installer Jobs may be bound to (comma-separated).
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_ALLOWED_INSTALLER_ROLES",
        value_delimiter = ',',
        default_value = "federation-chart-installer"
    )]
    allowed_installer_roles: Vec<String>,
    /// Allow chart.clusterScoped (a ClusterRoleBinding for the installer).
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_ALLOW_CLUSTER_SCOPED_CHARTS",
        default_value_t = false
    )]
    allow_cluster_scoped_charts: bool,
    /// Allow a controlPlane.namespace other than the enablement's own.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_ALLOW_FOREIGN_CONTROL_PLANE_NAMESPACES",
        default_value_t = false
    )]
    allow_foreign_control_plane_namespaces: bool,
    /// Prefixes every key of network.annotations (and network.elbIDAnnotation, with an elbID)
    /// must start with (comma-separated); none: any annotation.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_ALLOWED_SERVICE_ANNOTATION_PREFIXES",
        value_delimiter = ','
    )]
    allowed_service_annotation_prefixes: Vec<String>,
    /// Allow network.elbID (`--allow-elb-id=false` refuses it).
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_ALLOW_ELB_ID",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    allow_elb_id: bool,
    /// Who may claim a fleet id: `none` (the oldest enablement naming it) or
    /// `namespace-annotation` (only an enablement whose namespace lists the id in the annotation
    /// federation.fleet.dev/fleets, comma-separated or `*`).
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_FLEET_ENTITLEMENT",
        value_enum,
        default_value = "none"
    )]
    fleet_entitlement: FleetEntitlementArg,
    /// Chart repository of an enablement whose spec names none (the Karmada profile's).
    #[arg(long, env = "FEDERATION_CONTROLLER_DEFAULT_CHART_REPOSITORY", default_value = DEFAULT_CHART_REPOSITORY, value_parser = parse_repository_url)]
    default_chart_repository: String,
    /// Chart name of an enablement whose spec names none.
    #[arg(long, env = "FEDERATION_CONTROLLER_DEFAULT_CHART_NAME", default_value = DEFAULT_CHART_NAME)]
    default_chart_name: String,
    /// Chart version of an enablement whose spec names none; a new value applies to new runs
    /// only (a spec change or a retry), never to a run already started.
    #[arg(long, env = "FEDERATION_CONTROLLER_DEFAULT_CHART_VERSION", default_value = DEFAULT_CHART_VERSION)]
    default_chart_version: String,
    /// Chart repositories enablements may name besides the default one (comma-separated
    /// `https://`, `oci://` or `http://` URLs; each allows the paths under it).
    #[arg(long, env = "FEDERATION_CONTROLLER_ALLOWED_CHART_REPOSITORIES", value_delimiter = ',', value_parser = parse_repository_url)]
    allowed_chart_repositories: Vec<String>,
    /// Log format.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log level or tracing filter (e.g. `info`, `federation_controller=debug`).
    #[arg(long, env = "FEDERATION_CONTROLLER_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// A watch failing without a break for longer than this makes /healthz fail, so that the
    /// replica is restarted.
    #[arg(
        long,
        env = "FEDERATION_CONTROLLER_WATCH_STALL_SECONDS",
        default_value_t = DEFAULT_WATCH_STALL.as_secs()
    )]
    watch_stall_seconds: u64,
    /// FederationEnablements reconciled at once.
    #[arg(long, env = "FEDERATION_CONTROLLER_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
}

fn parse_delay_for(s: &str) -> Result<(SubJobType, u64), String> {
    let (type_, ms) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected TYPE=MS, e.g. CreateCert=1000"))?;
    let type_: SubJobType = type_.trim().parse()?;
    let ms = ms.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok((type_, ms))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", federation_controller::crd::crd_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("federation-controller {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run(*args).await.map(|()| ExitCode::SUCCESS),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(&args)?;
    // One TLS provider for the kube client and the HTTPS server.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("no cluster found: set KUBECONFIG or run in a pod")?;
    let tls = match (args.tls_cert_file.clone(), args.tls_key_file.clone()) {
        (Some(cert), Some(key)) => Some((cert.into(), key.into())),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert-file and --tls-key-file go together"),
    };
    // The process's one watch of enablements keeps this cache; the HTTP API reads it whether
    // or not this replica leads, and the controller reconciles from it while it does.
    let cache = FederationCache::new();
    let reconciling = Reconciling(controller::Reconciler {
        executors: executors(&args, &client),
        policy: policy(&args, &client),
        concurrency: args.concurrency.max(1),
        metrics: Arc::new(Metrics::new()),
        health: WatchHealth::new(Duration::from_secs(args.watch_stall_seconds.max(1))),
        client: client.clone(),
        cache: cache.clone(),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };

    let follow = controller::follow_enablements(
        &client,
        reconciling.0.policy.watch_namespace.as_deref(),
        &cache,
        &reconciling.0.health,
    );
    let state = Arc::new(AppState {
        cache,
        auth: authorizer(&args, &client),
        metrics: reconciling.0.metrics.clone(),
        clock: Arc::new(SystemClock),
        health: reconciling.0.health.clone(),
    });
    let server = http::serve_with_limits(
        ServeConfig {
            addr: args.http_addr,
            tls,
            reload_every: http::TLS_RELOAD_INTERVAL,
        },
        ConnectionLimits {
            max_connections: args.http_max_connections.max(1),
            header_read_timeout: http::HEADER_READ_TIMEOUT,
        },
        http::router(state),
        until_stopped(),
    );
    let controller = reconciling.run(lease_config(&args, &client), until_stopped);

    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let server = tokio::spawn(server);
    tokio::select! {
        _ = follow => anyhow::bail!("the FederationEnablement watch ended"),
        result = controller => result?,
    }
    // The controller has drained; the server finishes its in-flight requests.
    server
        .await
        .context("HTTP server task")?
        .context("HTTP server")?;
    Ok(())
}

fn authorizer(args: &RunArgs, client: &kube::Client) -> Authorizer {
    match args.auth {
        Auth::Kubernetes => Authorizer::kubernetes_with(
            client.clone(),
            AuthConfig {
                cache_size: args.auth_cache_size.max(1),
                token_reviews_per_second: args.token_reviews_per_second.max(1),
                max_streams_per_user: args.http_max_streams_per_user,
                audience: args.token_audience.clone().filter(|a| !a.is_empty()),
            },
        ),
        Auth::None => {
            warn!("--auth=none: the HTTP API answers every caller without authentication");
            Authorizer::None
        }
    }
}

fn executors(args: &RunArgs, client: &kube::Client) -> Executors {
    match args.executors {
        ExecutorKind::Kubernetes => Executors::kubernetes(client.clone(), chart_defaults(args)),
        ExecutorKind::Simulated => {
            let mut config =
                SimulatedConfig::uniform(Duration::from_millis(args.simulated_delay_ms));
            let overrides: BTreeMap<_, _> = args
                .simulated_delay_for
                .iter()
                .map(|(t, ms)| (*t, Duration::from_millis(*ms)))
                .collect();
            config.delays.extend(overrides);
            info!(
                ?config,
                "simulated executors: subjobs create nothing outside the status"
            );
            Executors::simulated(config)
        }
    }
}

/// The allowlists. The controller's own namespace (never a foreign control-plane namespace) is
/// `POD_NAMESPACE` when set, else the client's: in a pod, its service account's namespace.
fn policy(args: &RunArgs, client: &kube::Client) -> Policy {
    let controller_namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    Policy {
        allowed_runner_images: args.allowed_runner_images.clone(),
        allowed_installer_roles: args.allowed_installer_roles.clone(),
        allow_cluster_scoped_charts: args.allow_cluster_scoped_charts,
        allow_foreign_control_plane_namespaces: args.allow_foreign_control_plane_namespaces,
        allowed_chart_repositories: args.allowed_chart_repositories.clone(),
        chart_defaults: chart_defaults(args),
        watch_namespace: args.namespace.clone(),
        controller_namespace: Some(controller_namespace),
        // An empty entry (a trailing comma) would allow every key.
        allowed_service_annotation_prefixes: args
            .allowed_service_annotation_prefixes
            .iter()
            .filter(|prefix| !prefix.is_empty())
            .cloned()
            .collect(),
        allow_elb_id: args.allow_elb_id,
        fleet_entitlement: match args.fleet_entitlement {
            FleetEntitlementArg::None => FleetEntitlement::None,
            FleetEntitlementArg::NamespaceAnnotation => FleetEntitlement::NamespaceAnnotation,
        },
    }
}

fn chart_defaults(args: &RunArgs) -> ChartDefaults {
    ChartDefaults {
        repository: args.default_chart_repository.clone(),
        name: args.default_chart_name.clone(),
        version: args.default_chart_version.clone(),
    }
}

fn lease_config(args: &RunArgs, client: &kube::Client) -> Option<LeaseConfig> {
    args.leader_elect.then(|| LeaseConfig {
        name: args.leader_elect_lease_name.clone(),
        namespace: args
            .leader_elect_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string()),
        identity: std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("federation-controller-{}", uuid::Uuid::new_v4())),
        duration: Duration::from_secs(args.leader_elect_lease_duration.max(2)),
    })
}

/// What the controller runs with, alone or as the elected leader.
struct Reconciling(controller::Reconciler);

impl Reconciling {
    /// Reconciles until `until_stopped` resolves: at once without a lease, else for as long as
    /// this replica leads.
    async fn run<F>(
        self,
        lease: Option<LeaseConfig>,
        until_stopped: impl Fn() -> F,
    ) -> anyhow::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + Sync + 'static,
    {
        let Some(lease) = lease else {
            self.term(until_stopped()).await;
            return Ok(());
        };
        info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "joining the leader election");
        let (leading, election) =
            leader::join(self.0.client.clone(), &lease, self.0.health.clone())
                .await
                .context("joining the leader election")?;
        leader::lead(leading, until_stopped(), |term_over| self.term(term_over)).await;
        // The receiver is gone: the election task releases the lease for a standby.
        match tokio::time::timeout(Duration::from_secs(5), election).await {
            Ok(Ok(Ok(()))) => info!("released the leader lease"),
            Ok(Ok(Err(error))) => {
                warn!(%error, "could not release the leader lease; it expires by itself")
            }
            Ok(Err(error)) => warn!(%error, "leader election task failed"),
            Err(_) => warn!("releasing the leader lease timed out; it expires by itself"),
        }
        Ok(())
    }

    /// One term of reconciling, until `over` resolves.
    fn term<F>(&self, over: F) -> impl std::future::Future<Output = ()> + use<F>
    where
        F: std::future::Future<Output = ()> + Send + Sync + 'static,
    {
        controller::run(self.0.clone(), over)
    }
}

fn init_logging(args: &RunArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// SIGTERM or Ctrl-C: stop taking new work and let in-flight reconciles finish.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    info!("shutting down");
}
