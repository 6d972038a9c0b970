//! An in-memory stand-in for the Kubernetes API server, plugged into `kube::Client` as its
//! tower service. It keeps objects, answers GET/LIST/POST/PATCH/DELETE the way the API server
//! does for the calls the controller makes (server-side apply, JSON patch with `test`, status
//! subresource, label selectors, finalizers), and logs every request so that a test can assert
//! the exact calls: a missing or an extra one fails.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request the client sent.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub content_type: Option<String>,
    /// The Accept header: a metadata-only request asks for `as=PartialObjectMetadata…`.
    pub accept: Option<String>,
    pub body: Option<Value>,
}

impl Call {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or(&self.uri)
    }

    /// `"GET /api/v1/..."`, without the query.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path())
    }

    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

#[derive(Default)]
struct State {
    /// Objects by their path (`/api/v1/namespaces/ns/services/name`).
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    resource_version: u64,
    uid: u64,
    /// Paths answering with an error status, for failure tests.
    failures: BTreeMap<(Method, String), u16>,
    /// POSTs answered by a function of the body (reviews), not stored.
    responders: BTreeMap<String, Responder>,
}

type Responder = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

impl FakeApiServer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn client(&self) -> Client {
        let server = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let server = server.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let (status, value) = server.handle(parts, bytes);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(value.to_string())))
                    .expect("response");
                Ok::<_, Infallible>(response)
            }
        });
        Client::new(service, "default")
    }

    /// Puts an object as if someone else had created it (no call is logged).
    pub fn insert(&self, object: Value) -> Value {
        let path = object_path(&object);
        let mut state = self.state.lock().expect("lock");
        let object = state.stamp(object, None);
        state.objects.insert(path, object.clone());
        object
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().expect("lock").objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) -> Option<Value> {
        self.state.lock().expect("lock").objects.remove(path)
    }

    /// Changes a stored object in place (as another actor would), bumping its resourceVersion.
    pub fn modify(&self, path: &str, change: impl FnOnce(&mut Value)) {
        let mut state = self.state.lock().expect("lock");
        let mut object = state.objects.get(path).cloned().expect("object to modify");
        change(&mut object);
        state.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        state.objects.insert(path.to_string(), object);
    }

    /// Paths of the stored objects under a prefix.
    pub fn paths(&self, prefix: &str) -> Vec<String> {
        let state = self.state.lock().expect("lock");
        state
            .objects
            .keys()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Answers POSTs to `path` with `respond(body)` (TokenReview, SubjectAccessReview).
    pub fn respond(&self, path: &str, respond: impl Fn(&Value) -> Value + Send + Sync + 'static) {
        self.state
            .lock()
            .expect("lock")
            .responders
            .insert(path.to_string(), Arc::new(respond));
    }

    pub fn fail(&self, method: Method, path: &str, code: u16) {
        self.state
            .lock()
            .expect("lock")
            .failures
            .insert((method, path.to_string()), code);
    }

    /// Undoes [`FakeApiServer::fail`]: the calls succeed again.
    pub fn heal(&self, method: Method, path: &str) {
        self.state
            .lock()
            .expect("lock")
            .failures
            .remove(&(method, path.to_string()));
    }

    /// Returns and forgets the calls logged so far.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().expect("lock").calls)
    }

    fn handle(&self, parts: http::request::Parts, bytes: Bytes) -> (StatusCode, Value) {
        let uri = parts.uri.to_string();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let accept = header("accept");
        let body: Option<Value> = if bytes.is_empty() {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        let mut state = self.state.lock().expect("lock");
        state.calls.push(Call {
            method: parts.method.clone(),
            uri,
            content_type: content_type.clone(),
            accept,
            body: body.clone(),
        });
        if let Some(code) = state.failures.get(&(parts.method.clone(), path.clone())) {
            return status(*code, "injected failure");
        }
        let (object_path, subresource) = split_subresource(&path);
        match parts.method {
            Method::GET if is_collection(&object_path) => state.list(&object_path, &query),
            Method::GET => match state.objects.get(&object_path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => not_found(&object_path),
            },
            Method::POST => {
                let Some(mut object) = body else {
                    return status(400, "no body");
                };
                if let Some(respond) = state.responders.get(&object_path) {
                    return (StatusCode::CREATED, respond(&object));
                }
                if object_path.starts_with("/apis/events.k8s.io/") {
                    object["metadata"]["name"] = json!(format!("event-{}", state.calls.len()));
                }
                let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
                    return status(422, "metadata.name is required");
                };
                let item = format!("{object_path}/{name}");
                if state.objects.contains_key(&item) {
                    return status(409, "already exists");
                }
                let object = state.stamp(object, None);
                state.objects.insert(item, object.clone());
                (StatusCode::CREATED, object)
            }
            Method::PATCH => {
                let content_type = content_type.unwrap_or_default();
                let Some(patch) = body else {
                    return status(400, "no body");
                };
                state.patch(&object_path, subresource, &content_type, patch)
            }
            Method::DELETE => state.delete(&object_path),
            _ => status(405, "method not allowed"),
        }
    }
}

impl State {
    /// Sets uid, creationTimestamp and a new resourceVersion, keeping existing ones.
    fn stamp(&mut self, mut object: Value, existing: Option<&Value>) -> Value {
        self.resource_version += 1;
        let metadata = &mut object["metadata"];
        match existing {
            Some(existing) => {
                metadata["uid"] = existing["metadata"]["uid"].clone();
                metadata["creationTimestamp"] = existing["metadata"]["creationTimestamp"].clone();
                metadata["generation"] = existing["metadata"]["generation"].clone();
            }
            None => {
                self.uid += 1;
                if metadata.get("uid").is_none() {
                    metadata["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uid));
                }
                if metadata.get("creationTimestamp").is_none() {
                    metadata["creationTimestamp"] = json!("2026-01-15T08:00:00Z");
                }
                if metadata.get("generation").is_none() {
                    metadata["generation"] = json!(1);
                }
            }
        }
        metadata["resourceVersion"] = json!(self.resource_version.to_string());
        object
    }

    fn list(&self, collection: &str, query: &str) -> (StatusCode, Value) {
        let selector = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("labelSelector="))
            .map(urldecode)
            .unwrap_or_default();
        let cluster_wide_kind = collection
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(path, _)| in_collection(path, collection, &cluster_wide_kind))
            .map(|(_, object)| object.clone())
            .filter(|object| matches_selector(object, &selector))
            .collect();
        (
            StatusCode::OK,
            json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": self.resource_version.to_string()}, "items": items}),
        )
    }

    fn patch(
        &mut self,
        path: &str,
        subresource: Option<&str>,
        content_type: &str,
        patch: Value,
    ) -> (StatusCode, Value) {
        let existing = self.objects.get(path).cloned();
        // A resourceVersion in the patch is a precondition, as on the API server.
        if let (Some(wanted), Some(existing)) =
            (patch["metadata"]["resourceVersion"].as_str(), &existing)
            && existing["metadata"]["resourceVersion"].as_str() != Some(wanted)
        {
            return status(
                409,
                "the object has been modified; please apply your changes to the latest version",
            );
        }
        let patched = if content_type.starts_with("application/apply-patch") {
            applied(existing.as_ref(), subresource, patch)
        } else if content_type.starts_with("application/json-patch") {
            json_patched(existing.as_ref(), patch)
        } else if content_type.starts_with("application/merge-patch")
            // Strategic merge equals a merge patch for the objects patched this way (Leases).
            || content_type.starts_with("application/strategic-merge-patch")
        {
            existing
                .as_ref()
                .map(|existing| {
                    let mut updated = existing.clone();
                    json_patch::merge(&mut updated, &patch);
                    updated
                })
                .ok_or(Refusal::NotFound)
        } else {
            Err(Refusal::Status(415, "unsupported patch type".to_string()))
        };
        let updated = match patched {
            Ok(updated) => updated,
            Err(Refusal::NotFound) => return not_found(path),
            Err(Refusal::Status(code, message)) => return status(code, &message),
        };
        if existing.as_ref() == Some(&updated) {
            return (StatusCode::OK, updated);
        }
        // Finalizers gone on an object being deleted: it goes.
        if updated["metadata"]["deletionTimestamp"].is_string()
            && updated["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            self.objects.remove(path);
            return (StatusCode::OK, updated);
        }
        let updated = self.stamp(updated, existing.as_ref());
        self.objects.insert(path.to_string(), updated.clone());
        (StatusCode::OK, updated)
    }

    fn delete(&mut self, path: &str) -> (StatusCode, Value) {
        let Some(mut object) = self.objects.get(path).cloned() else {
            return not_found(path);
        };
        let has_finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if object["metadata"]["deletionTimestamp"].is_null() {
                object["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z");
                let object = self.stamp(object.clone(), Some(&object));
                self.objects.insert(path.to_string(), object.clone());
                return (StatusCode::OK, object);
            }
            return (StatusCode::OK, object);
        }
        self.objects.remove(path);
        (
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        )
    }
}

/// Why a patch is not applied.
enum Refusal {
    NotFound,
    Status(u16, String),
}

/// Server-side apply: creates, merges into the object, or replaces the status subresource.
fn applied(
    existing: Option<&Value>,
    subresource: Option<&str>,
    patch: Value,
) -> Result<Value, Refusal> {
    let without_status = |mut object: Value| {
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        object
    };
    match (existing, subresource) {
        (None, Some(_)) => Err(Refusal::NotFound),
        (None, None) => Ok(without_status(patch)),
        (Some(existing), Some("status")) => {
            let mut updated = existing.clone();
            updated["status"] = patch["status"].clone();
            Ok(updated)
        }
        (Some(existing), _) => {
            let mut updated = existing.clone();
            merge(&mut updated, &without_status(patch));
            Ok(updated)
        }
    }
}

/// A JSON patch; like the API server, `test` of null passes for a path that does not exist.
fn json_patched(existing: Option<&Value>, patch: Value) -> Result<Value, Refusal> {
    let existing = existing.ok_or(Refusal::NotFound)?;
    let patch: Vec<Value> = patch
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|op| {
            !(op["op"] == "test"
                && op["value"].is_null()
                && op["path"]
                    .as_str()
                    .is_some_and(|p| existing.pointer(p).is_none()))
        })
        .collect();
    let operations = serde_json::from_value::<json_patch::Patch>(Value::Array(patch))
        .map_err(|_| Refusal::Status(400, "invalid JSON patch".to_string()))?;
    let mut updated = existing.clone();
    json_patch::patch(&mut updated, &operations)
        .map_err(|error| Refusal::Status(422, format!("JSON patch failed: {error}")))?;
    Ok(updated)
}

/// The stored path of an object, from its apiVersion, kind, namespace and name.
pub fn object_path(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"].as_str();
    let plural = plural(kind);
    let prefix = if api_version == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{api_version}")
    };
    match namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{prefix}/{plural}/{name}"),
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "FederationEnablement" => "federationenablements".to_string(),
        "ClusterRoleBinding" => "clusterrolebindings".to_string(),
        other => format!("{}s", other.to_ascii_lowercase()),
    }
}

fn split_subresource(path: &str) -> (String, Option<&'static str>) {
    match path.strip_suffix("/status") {
        Some(object) if object.matches('/').count() >= 5 && !object.ends_with("/namespaces") => {
            (object.to_string(), Some("status"))
        }
        _ => (path.to_string(), None),
    }
}

const PLURALS: [&str; 15] = [
    "federationenablements",
    "services",
    "secrets",
    "jobs",
    "serviceaccounts",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "configmaps",
    "persistentvolumeclaims",
    "nodes",
    "namespaces",
    "events",
    "leases",
    "pods",
];

fn is_collection(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    PLURALS.contains(&last)
}

/// `/api/v1/services` (all namespaces) holds `/api/v1/namespaces/x/services/y`.
fn in_collection(path: &str, collection: &str, plural: &str) -> bool {
    if let Some(rest) = path.strip_prefix(&format!("{collection}/")) {
        return !rest.contains('/');
    }
    let prefix = collection.trim_end_matches(&format!("/{plural}"));
    path.strip_prefix(&format!("{prefix}/namespaces/"))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, rest)| {
            rest.strip_prefix(&format!("{plural}/"))
                .is_some_and(|name| !name.contains('/'))
        })
}

/// Equality (`k=v`), inequality (`k!=v`) and existence (`k`) requirements, comma-separated.
fn matches_selector(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    selector
        .split(',')
        .filter(|r| !r.is_empty())
        .all(|requirement| {
            if let Some((k, v)) = requirement.split_once("!=") {
                labels[k].as_str() != Some(v)
            } else if let Some((k, v)) = requirement.split_once('=') {
                labels[k].as_str() == Some(v.trim_start_matches('='))
            } else {
                labels[requirement].is_string()
            }
        })
}

fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Server-side apply, approximately: maps merge key by key, everything else is replaced.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    status(404, &format!("{path} not found"))
}

fn status(code: u16, message: &str) -> (StatusCode, Value) {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        _ => "InternalError",
    };
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}
