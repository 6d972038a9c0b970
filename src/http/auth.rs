//! Who calls, and what they may see: a TokenReview for the token, then SubjectAccessReviews
//! for `federationenablements`. Decisions are cached briefly so a burst costs one review.
//! Tokens never appear in logs: the cache keys on their SHA-256.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};

pub use super::decisions::DECISION_TTL;
use super::decisions::{DEFAULT_AUTH_CACHE_SIZE, Decisions};
use super::quotas::{
    DEFAULT_MAX_STREAMS_PER_USER, DEFAULT_TOKEN_REVIEWS_PER_SECOND, ReviewRate, StreamQuota,
    StreamSlot,
};
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
    #[error("too many token reviews from this address; retry in {} s", retry_after.as_secs().max(1))]
    TooManyReviews { retry_after: Duration },
    #[error("{user} holds {max} live streams already: close one first")]
    TooManyStreams { user: String, max: usize },
}

/// The bounds of `--auth=kubernetes`.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Decisions kept in each of the token and access caches (`--auth-cache-size`).
    pub cache_size: usize,
    /// Reviews of uncached tokens per second and client address, burst twice as many
    /// (`--token-reviews-per-second`).
    pub token_reviews_per_second: u32,
    /// Live streams one user may hold open (`--http-max-streams-per-user`).
    pub max_streams_per_user: usize,
    /// The audience TokenReviews ask for (`--token-audience`); None: the API server's.
    pub audience: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            cache_size: DEFAULT_AUTH_CACHE_SIZE,
            token_reviews_per_second: DEFAULT_TOKEN_REVIEWS_PER_SECOND,
            max_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            audience: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AccessKey {
    /// Shared with the token cache: a cached decision costs no copy of the caller.
    who: Arc<Identity>,
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
    audience: Option<String>,
    tokens: Decisions<[u8; 32], Option<Arc<Identity>>>,
    access: Decisions<AccessKey, bool>,
    review_rate: ReviewRate,
    streams: StreamQuota,
}

impl Authorizer {
    /// Kubernetes reviews with the default [`AuthConfig`].
    pub fn kubernetes(client: Client) -> Self {
        Self::kubernetes_with(client, AuthConfig::default())
    }

    pub fn kubernetes_with(client: Client, config: AuthConfig) -> Self {
        Authorizer::Kubernetes(Box::new(KubernetesAuth {
            client,
            audience: config.audience,
            tokens: Decisions::new(config.cache_size),
            access: Decisions::new(config.cache_size),
            review_rate: ReviewRate::new(config.token_reviews_per_second),
            streams: StreamQuota::new(config.max_streams_per_user),
        }))
    }

    /// The caller; `Ok(None)` when authentication is off. `from` is the client's address,
    /// taken from its connection: reviews of tokens not in the cache are rate-limited by it.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        from: Option<IpAddr>,
    ) -> Result<Option<Arc<Identity>>, AuthError> {
        match self {
            Authorizer::None => Ok(None),
            Authorizer::Kubernetes(k) => {
                let token = token
                    .filter(|t| !t.is_empty())
                    .ok_or(AuthError::MissingToken)?;
                k.review_token(token, from)
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
        who: Option<&Arc<Identity>>,
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

    /// A slot for one more live stream of `who`; None when authentication is off (streams
    /// are then not counted).
    pub fn stream_slot(&self, who: Option<&Identity>) -> Result<Option<StreamSlot>, AuthError> {
        match (self, who) {
            (Authorizer::Kubernetes(k), Some(who)) => k
                .streams
                .take(&who.username)
                .map(Some)
                .ok_or_else(|| AuthError::TooManyStreams {
                    user: who.username.clone(),
                    max: k.streams.max(),
                }),
            _ => Ok(None),
        }
    }
}

impl KubernetesAuth {
    async fn review_token(
        &self,
        token: &str,
        from: Option<IpAddr>,
    ) -> Result<Option<Arc<Identity>>, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(decision) = self.tokens.get(&key) {
            return Ok(decision);
        }
        self.review_rate
            .take(from)
            .map_err(|retry_after| AuthError::TooManyReviews { retry_after })?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: self.audience.clone().map(|audience| vec![audience]),
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
            // An authenticator that ignores the audience asked for says so by leaving it out.
            .filter(|s| {
                self.audience
                    .as_ref()
                    .is_none_or(|a| s.audiences.iter().flatten().any(|b| b == a))
            })
            .and_then(|s| s.user)
            .map(|user| {
                Arc::new(Identity {
                    username: user.username.unwrap_or_default(),
                    uid: user.uid,
                    groups: user.groups.unwrap_or_default(),
                    extra: user.extra.unwrap_or_default(),
                })
            });
        self.tokens.remember(key, identity.clone());
        Ok(identity)
    }

    async fn review_access(&self, key: AccessKey) -> Result<bool, AuthError> {
        if let Some(decision) = self.access.get(&key) {
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
        self.access.remember(key, allowed);
        Ok(allowed)
    }
}
