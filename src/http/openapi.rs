//! The OpenAPI 3 document of the two federation routes and the dashboard's row route, served at
//! `/openapi.json`.
//!
//! The schemas of the federation routes and of their errors are derived from the wire types
//! the handlers serialize (`federation-api`), so the document cannot drift from them. The
//! dashboard's row is written here by hand, as its type is the dashboard's own; a test checks
//! every route's answers against this document.

use federation_api::wire::{ErrorBody, FederationList, ProgressJob};
use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::{AddNullable, RecursiveTransform};
use serde_json::{Value, json};

/// The document says what the server writes. It omits an absent value and never writes
/// `null`, so an `Option`'s schema is its value's; and a `default` of a wire type is for its
/// readers (a client reading a job without a status), not something the server leaves out.
fn as_written(schema: &mut Schema) {
    schema.remove("default");
    let Some(Value::Array(types)) = schema.get_mut("type") else {
        return;
    };
    types.retain(|t| t != "null");
    if let [only] = types.as_slice() {
        let only = only.clone();
        schema.insert("type".into(), only);
    }
}

/// The schemas of the answers: `Job`, `FederationList` (with `FederationItem`), `Error`, as
/// the types serialize, and `DashboardRow`.
fn schemas() -> (serde_json::Map<String, Value>, [Value; 3]) {
    let mut generator = SchemaSettings::openapi3()
        .for_serialize()
        .with(|settings| {
            settings.transforms.retain(|t| !t.is::<AddNullable>());
            settings
                .transforms
                .push(Box::new(RecursiveTransform(as_written as fn(&mut Schema))));
        })
        .into_generator();
    let job = generator.subschema_for::<ProgressJob>().to_value();
    let list = generator.subschema_for::<FederationList>().to_value();
    let error = generator.subschema_for::<ErrorBody>().to_value();
    let mut schemas = generator.take_definitions(true);
    schemas.insert("DashboardRow".to_string(), dashboard_row());
    (schemas, [job, list, error])
}

fn dashboard_row() -> Value {
    json!({
        "type": "object",
        "required": ["namespace", "name", "clusterGroupID", "phase", "health", "succeeded", "total", "steps"],
        "properties": {
            "namespace": {"type": "string"}, "name": {"type": "string"},
            "clusterGroupID": {"type": "string"},
            "phase": {"type": "string", "enum": ["Pending", "Running", "Success", "Failed", "Deleting"]},
            "health": {"type": "string", "enum": ["healthy", "unhealthy", "unknown"]},
            "succeeded": {"type": "integer", "description": "steps done: subjobs, or teardown steps while Deleting"},
            "total": {"type": "integer"},
            "currentStep": {"type": "string"}, "reason": {"type": "string"}, "message": {"type": "string"},
            "created": {"type": "string", "format": "date-time"},
            "steps": {"type": "array", "items": {"type": "object", "required": ["type", "phase"], "properties": {
                "type": {"type": "string"}, "phase": {"type": "string"}, "message": {"type": "string"}}}},
        },
    })
}

pub fn document() -> Value {
    let (schemas, [job, list, error]) = schemas();
    let error_response = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    let security = json!([{"XAuthToken": []}, {"Bearer": []}]);
    let watch = json!({"name": "watch", "in": "query", "schema": {"type": "boolean", "default": false},
        "description": "true: answer text/event-stream, live"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "federation-controller",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Progress of enabling federation for a fleet (cluster group), and the federation status list.",
        },
        "paths": {
            "/v1/clustergroups/{clustergroupid}/federations/progress": {
                "get": {
                    "operationId": "showFederationProgress",
                    "summary": "Querying Federation Enabling Progress",
                    "security": security,
                    "parameters": [{
                        "name": "clustergroupid", "in": "path", "required": true,
                        "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"},
                    }, watch.clone()],
                    "responses": {
                        "200": {"description": "The federation job of the fleet; with watch=true, a stream of `progress` events ending after Success or Failed", "content": {
                            "application/json": {"schema": job},
                            "text/event-stream": {"schema": {"type": "string"}},
                        }},
                        "400": error_response("FED.4000001: invalid cluster group id"),
                        "401": error_response("FED.4010001: missing or invalid token"),
                        "429": error_response("FED.4290001: too many live streams for this user; FED.4290002: too many token reviews from this address (Retry-After)"),
                        "404": error_response("FED.4040001: no federation for this fleet (or not visible to the caller)"),
                        "500": error_response("FED.5000001: internal error"),
                    },
                },
            },
            "/api/v1/sso/federations": {
                "get": {
                    "operationId": "listFederationStatus",
                    "summary": "ListFederationStatus",
                    "security": security,
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 20}, "description": "0 or absent: 20; above 500: 500"},
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                        {"name": "tenantUuid", "in": "query", "schema": {"type": "string"}, "description": "accepted and ignored"},
                        watch.clone(),
                    ],
                    "responses": {
                        "200": {"description": "One page of federations the caller may see; with watch=true, a stream of `added`, `modified` and `deleted` events", "content": {
                            "application/json": {"schema": list},
                            "text/event-stream": {"schema": {"type": "string"}},
                        }},
                        "400": error_response("FED.4000002: invalid query parameter"),
                        "401": error_response("FED.4010001: missing or invalid token"),
                        "429": error_response("FED.4290001: too many live streams for this user; FED.4290002: too many token reviews from this address (Retry-After)"),
                        "500": error_response("FED.5000001: internal error"),
                    },
                },
            },
            "/dashboard/v1/federations": {
                "get": {
                    "operationId": "listDashboardRows",
                    "summary": "The web dashboard's table (not part of the wire-compatible API)",
                    "security": security,
                    "parameters": [watch.clone()],
                    "responses": {
                        "200": {"description": "Every row the caller may list; with watch=true, a stream of `added`, `modified` and `deleted` rows", "content": {
                            "application/json": {"schema": {"type": "object", "required": ["items"],
                                "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/DashboardRow"}}}}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        }},
                        "400": error_response("FED.4000002: invalid query parameter"),
                        "401": error_response("FED.4010001: missing or invalid token"),
                        "429": error_response("FED.4290001: too many live streams for this user; FED.4290002: too many token reviews from this address (Retry-After)"),
                        "500": error_response("FED.5000001: internal error"),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {
                "XAuthToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": schemas,
        },
    })
}
