//! Who calls, and what they may see: a TokenReview for the token, then SubjectAccessReviews
//! for `federationenablements`. Decisions are cached briefly so a burst costs one review.
//! Tokens never appear in logs: the cache keys on their SHA-256.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::api::GROUP;

/// The caller, as the TokenReview told.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send X-Auth-Token or Authorization: Bearer")]
    MissingToken,
    #[error("the token is not valid")]
    InvalidToken,
    #[error("reviewing access with the API server: {0}")]
    Api(#[source] kube::Error),
}

/// How long a decision is reused.
pub const DECISION_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most before expired ones are swept.
const CACHE_LIMIT: usize = 10_000;

type Decisions<K, V> = Mutex<HashMap<K, (Instant, V)>>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AccessKey {
    who: Identity,
    verb: &'static str,
    namespace: Option<String>,
    name: Option<String>,
}

/// `--auth`: Kubernetes reviews, or nobody checked (local use and tests).
pub enum Authorizer {
    None,
    Kubernetes(Box<KubernetesAuth>),
}

pub struct KubernetesAuth {
    client: Client,
    tokens: Decisions<[u8; 32], Option<Identity>>,
    access: Decisions<AccessKey, bool>,
}

impl Authorizer {
    pub fn kubernetes(client: Client) -> Self {
        Authorizer::Kubernetes(Box::new(KubernetesAuth {
            client,
            tokens: Mutex::default(),
            access: Mutex::default(),
        }))
    }

    /// The caller; `Ok(None)` when authentication is off.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Option<Identity>, AuthError> {
        match self {
            Authorizer::None => Ok(None),
            Authorizer::Kubernetes(k) => {
                let token = token
                    .filter(|t| !t.is_empty())
                    .ok_or(AuthError::MissingToken)?;
                k.review_token(token)
                    .await?
                    .map(Some)
                    .ok_or(AuthError::InvalidToken)
            }
        }
    }

    /// May `who` use `verb` on federationenablements in `namespace` (None: all namespaces),
    /// optionally on one `name`? Everyone may when authentication is off.
    pub async fn may(
        &self,
        who: Option<&Identity>,
        verb: &'static str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<bool, AuthError> {
        match (self, who) {
            (Authorizer::Kubernetes(k), Some(who)) => {
                k.review_access(AccessKey {
                    who: who.clone(),
                    verb,
                    namespace: namespace.map(str::to_string),
                    name: name.map(str::to_string),
                })
                .await
            }
            _ => Ok(true),
        }
    }
}

fn cached<K: Eq + std::hash::Hash, V: Clone>(decisions: &Decisions<K, V>, key: &K) -> Option<V> {
    let decisions = decisions.lock().unwrap_or_else(|p| p.into_inner());
    decisions
        .get(key)
        .filter(|(at, _)| at.elapsed() < DECISION_TTL)
        .map(|(_, v)| v.clone())
}

fn remember<K: Eq + std::hash::Hash, V>(decisions: &Decisions<K, V>, key: K, value: V) {
    let mut decisions = decisions.lock().unwrap_or_else(|p| p.into_inner());
    if decisions.len() >= CACHE_LIMIT {
        decisions.retain(|_, (at, _)| at.elapsed() < DECISION_TTL);
    }
    decisions.insert(key, (Instant::now(), value));
}

impl KubernetesAuth {
    async fn review_token(&self, token: &str) -> Result<Option<Identity>, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(decision) = cached(&self.tokens, &key) {
            return Ok(decision);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(AuthError::Api)?;
        let identity = reviewed
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .map(|user| Identity {
                username: user.username.unwrap_or_default(),
                uid: user.uid,
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            });
        remember(&self.tokens, key, identity.clone());
        Ok(identity)
    }

    async fn review_access(&self, key: AccessKey) -> Result<bool, AuthError> {
        if let Some(decision) = cached(&self.access, &key) {
            return Ok(decision);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(key.who.username.clone()),
                uid: key.who.uid.clone(),
                groups: Some(key.who.groups.clone()),
                extra: (!key.who.extra.is_empty()).then(|| key.who.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.to_string()),
                    resource: Some("federationenablements".to_string()),
                    verb: Some(key.verb.to_string()),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let reviewed = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(AuthError::Api)?;
        let allowed = reviewed.status.is_some_and(|s| s.allowed);
        remember(&self.access, key, allowed);
        Ok(allowed)
    }
}
