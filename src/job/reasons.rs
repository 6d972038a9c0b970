//! Stable CamelCase reasons that scripts can match. Documented in the README.

// Job and subjob outcomes.
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const RUNNING: &str = "Running";
pub const PENDING: &str = "Pending";
pub const SUSPENDED: &str = "Suspended";
pub const TIMEOUT: &str = "Timeout";
pub const WAITING_FOR_NAMESPACE: &str = "WaitingForNamespace";
pub const AS_EXPECTED: &str = "AsExpected";
pub const DELETING: &str = "Deleting";

// Gates checked before anything is created.
pub const NOT_ALLOWED: &str = "NotAllowed";
pub const DUPLICATE_CLUSTER_GROUP_ID: &str = "DuplicateClusterGroupID";
pub const FLEET_NOT_ENTITLED: &str = "FleetNotEntitled";

// Executor outcomes.
pub const NAME_CONFLICT: &str = "NameConflict";
pub const INSUFFICIENT_NODES: &str = "InsufficientNodes";
pub const WAITING_FOR_LOAD_BALANCER: &str = "WaitingForLoadBalancer";
pub const WAITING_FOR_NODE_PORT: &str = "WaitingForNodePort";
pub const WAITING_FOR_NODE_ADDRESS: &str = "WaitingForNodeAddress";
pub const WAITING_FOR_ENDPOINT: &str = "WaitingForEndpoint";
pub const INSTALLING: &str = "Installing";
pub const INSTALL_FAILED: &str = "InstallFailed";
/// Karmada after Success: the values changed (a renewal, a new endpoint); helm upgrade runs.
pub const UPGRADING: &str = "Upgrading";
pub const UPGRADE_FAILED: &str = "UpgradeFailed";
pub const WAITING_FOR_CERTIFICATES: &str = "WaitingForCertificates";
pub const UNINSTALLING: &str = "Uninstalling";
pub const UNINSTALL_FAILED: &str = "UninstallFailed";
pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsNotFound";
pub const API_ERROR: &str = "ApiError";
pub const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";
pub const NOT_INSTALLED: &str = "NotInstalled";

// Simulated executors.
pub const SIMULATING: &str = "Simulating";
pub const SIMULATED_FAILURE: &str = "SimulatedFailure";
