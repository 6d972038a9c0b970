//! The OpenAPI 3 document of the two federation routes and the dashboard's row route, served at
//! `/openapi.json`.

use serde_json::{Value, json};

pub fn document() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let error_response = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    let timestamp = json!({"type": "string", "description": "UTC, `YYYY-MM-DD HH:MM:SS[.fraction] +0000 UTC`", "example": "2023-07-31 13:16:20.715779 +0000 UTC"});
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
                            "application/json": {"schema": {"$ref": "#/components/schemas/Job"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        }},
                        "400": error_response("FED.4000001: invalid cluster group id"),
                        "401": error_response("FED.4010001: missing or invalid token"),
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
                            "application/json": {"schema": {"$ref": "#/components/schemas/FederationList"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        }},
                        "400": error_response("FED.4000002: invalid query parameter"),
                        "401": error_response("FED.4010001: missing or invalid token"),
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
            "schemas": {
                "DashboardRow": {
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
                },
                "Error": {
                    "type": "object", "required": ["error_code", "error_msg"],
                    "properties": {"error_code": {"type": "string"}, "error_msg": {"type": "string"}},
                },
                "Job": {
                    "type": "object", "required": ["kind", "apiVersion", "metadata", "spec", "status"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["Job"]},
                        "apiVersion": {"type": "string", "enum": ["v3"]},
                        "metadata": {
                            "type": "object",
                            "properties": {
                                "uid": {"type": "string"},
                                "creationTimestamp": timestamp,
                                "updateTimestamp": timestamp,
                                "annotations": {"type": "object", "properties": {"currentTimestamp": timestamp}},
                            },
                        },
                        "spec": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string", "description": "CreateFederationContainer or DeleteFederation; a subjob's type"},
                                "federationUID": {"type": "string"},
                                "resourceID": {"type": "string"},
                                "resourceName": {"type": "string"},
                                "extendParam": {"type": "object", "additionalProperties": {"type": "string"}},
                                "subJobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                            },
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": {"type": "string", "enum": ["Pending", "Running", "Success", "Failed", "Deleting"]},
                                "reason": {"type": "string"},
                                "startTime": timestamp,
                                "completionTime": timestamp,
                            },
                        },
                    },
                },
                "FederationList": {
                    "type": "object", "required": ["items", "total", "limit", "offset"],
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/FederationItem"}},
                        "total": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                    },
                },
                "FederationItem": {
                    "type": "object",
                    "required": ["platformUuid", "platformName", "productType", "status", "healthStatus", "federation"],
                    "properties": {
                        "platformUuid": {"type": "string"},
                        "platformName": {"type": "string"},
                        "productType": {"type": "string"},
                        "status": {"type": "string", "enum": ["federated", "federating", "failed", "unfederating"]},
                        "healthStatus": {"type": "string", "enum": ["healthy", "unhealthy", "unknown"]},
                        "federation": {
                            "type": "object",
                            "required": ["platformUuid", "productType", "metadata", "status"],
                            "properties": {
                                "uuid": {"type": "string"},
                                "ssoConfigUuid": {"type": "string"},
                                "ssoConfigName": {"type": "string"},
                                "ssoClientUuid": {"type": "string"},
                                "callbackUrl": {"type": "string"},
                                "platformUuid": {"type": "string"},
                                "productType": {"type": "string"},
                                "metadata": {"type": "string", "description": "JSON-encoded extendParam of CreateNetworkResource"},
                                "status": {"type": "string", "enum": ["success", "running", "pending", "failed", "deleting"]},
                                "errorMessage": {"type": "string"},
                                "federatedAt": {"type": "string", "format": "date-time"},
                                "updatedAt": {"type": "string", "format": "date-time"},
                            },
                        },
                    },
                },
            },
        },
    })
}
