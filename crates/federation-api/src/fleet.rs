//! Fleets (cluster groups) as the controller and its clients name them: which ids are valid,
//! and which enablement owns a fleet when several name it.

use kube::ResourceExt;

use crate::enablement::FederationEnablement;

/// 1-64 characters of `[a-z0-9-]`, like `spec.clusterGroupID`.
pub fn valid_cluster_group_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where an enablement stands in the line for its fleet: (creationTimestamp, namespace, name).
/// The least owns the fleet; the controller, its HTTP API and the terminal view all order by it.
pub type FleetSeniority = (Option<jiff::Timestamp>, String, String);

/// The one ordering of who owns a fleet: the oldest, then namespace/name.
pub fn fleet_seniority(fe: &FederationEnablement) -> FleetSeniority {
    (
        fe.creation_timestamp().map(|t| t.0),
        fe.namespace().unwrap_or_default(),
        fe.name_any(),
    )
}

/// The enablement that owns `fleet` among `all`: the oldest naming it.
pub fn fleet_owner<'a>(
    fleet: &str,
    all: impl IntoIterator<Item = &'a FederationEnablement>,
) -> Option<&'a FederationEnablement> {
    all.into_iter()
        .filter(|fe| fe.spec.cluster_group_id == fleet)
        .min_by_key(|fe| fleet_seniority(fe))
}
