"""The OpenAPI 3.1 document of every HTTP endpoint of the gateway, served at ``GET /api/openapi.json``.

One entry of ``ENDPOINTS`` per path: ``"/api/thing": {"get": op("What it does", auth=ADMIN, query=[…],
ok=schema)}``. ``tests/test_server_openapi.py`` fails for any route the app registers that is missing
here, and runs schemathesis against a live gateway with this document.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from gateway.records.model import RESOLUTIONS
from gateway.records.query import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET_H, MAX_TEXT, MAX_TIME

Schema = dict[str, Any]
JSON = "application/json"

# who may call: OpenAPI security requirements (any one of the list)
ADMIN: list[dict[str, list[str]]] = [{"admin": []}]
RECORDS: list[dict[str, list[str]]] = [{"admin": []}, {"agentToken": [], "agentId": []}]  # admin, or a supervisor's agent token
AGENT_OR_ADMIN: list[dict[str, list[str]]] = [{"admin": []}, {"agentToken": [], "agentId": []}]
METRICS: list[dict[str, list[str]]] = [{"metrics": []}, {}]  # open unless [server] metrics_token is set
OPEN: list[dict[str, list[str]]] = []

ERROR: Schema = {"$ref": "#/components/schemas/Error"}
ADAPTER_ERROR: Schema = {"$ref": "#/components/schemas/AdapterError"}
OBJECT: Schema = {"type": "object"}
ANY_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _json(schema: Schema) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def param(name: str, schema: Schema, description: str, *, where: str = "query", required: bool = False
          ) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


def text_param(name: str, description: str) -> dict[str, Any]:
    return param(name, {"type": "string", "maxLength": MAX_TEXT}, description)


def op(summary: str, *, auth: list[dict[str, list[str]]] = OPEN, params: tuple[dict[str, Any], ...] = (),
       ok: Schema | None = None, ok_content: dict[str, Any] | None = None, errors: dict[int, str] | None = None,
       body: Schema | None = None, error_schema: Schema = ERROR, tag: str = "", description: str = "",
       status: int = 200) -> dict[str, Any]:
    """One operation: its 2xx answer (``ok`` JSON, or ``ok_content``) and its documented errors."""
    responses: dict[str, Any] = {str(status): {"description": "OK", "content": ok_content or _json(ok or OBJECT)}}
    errs = dict(errors or {})
    if auth and auth != METRICS:
        errs.setdefault(401, "no or a wrong token")
    for code, why in sorted(errs.items()):
        responses[str(code)] = {"description": why, "content": _json(error_schema)}
    out: dict[str, Any] = {"summary": summary, "responses": responses, "security": auth}
    if description:
        out["description"] = description
    if tag:
        out["tags"] = [tag]
    if params:
        out["parameters"] = list(params)
    if body is not None:
        out["requestBody"] = {"required": True, "content": _json(body)}
    return out


def page(summary: str, *content_types: str, path_param: dict[str, Any] | None = None) -> dict[str, Any]:
    """A file the gateway ships (a page, a script, a stylesheet): text/html unless ``content_types``."""
    o = op(summary, ok_content={t: {"schema": {"type": "string"}} for t in content_types or ("text/html",)},
           tag="pages")
    if path_param is not None:
        o["parameters"] = [path_param]
        o["responses"]["404"] = {"description": "no such file", "content": ANY_TEXT}
    return o


def websocket(summary: str) -> dict[str, Any]:
    return {"summary": summary, "tags": ["websocket"], "security": OPEN,
            "description": "Upgrades to a websocket (docs/PROTOCOL.md); a plain GET is refused.",
            "responses": {"101": {"description": "switching protocols"},
                          "400": {"description": "not a websocket upgrade", "content": ANY_TEXT},
                          "503": {"description": "shutting down", "content": ANY_TEXT}}}


def webhook(summary: str, *, params: tuple[dict[str, Any], ...] = (), errors: dict[int, str] | None = None,
            error_schema: Schema = ADAPTER_ERROR) -> dict[str, Any]:
    errs = {400: "not a valid event", 401: "unknown shop or bad signature", 413: "body too large",
            415: "Content-Type is not application/json", 503: "not stored: send again", **(errors or {})}
    return op(summary, params=params, body=OBJECT, errors=errs, error_schema=error_schema, tag="adapters",
              description="Signed by the platform or relay; the signature is checked over the raw body first.")


TIME = {"type": "string", "minLength": 1, "maxLength": MAX_TIME}
NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}

SCHEMAS: dict[str, Schema] = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                             "parameter": {"type": "string", "description": "the query parameter at fault"}}},
    "AdapterError": {"type": "object", "required": ["error"],
                     "properties": {"ok": {"const": False}, "error": {"type": "string"},
                                    "message": {"type": "string"}}},
    "DoudianError": {"type": "object", "required": ["code", "msg"],
                     "description": "抖店's own answer shape: code 0 is success",
                     "properties": {"code": {"type": "integer"}, "msg": {"type": "string"},
                                    "error": {"type": "string"}, "message": {"type": "string"}}},
    "ConversationItem": {
        "type": "object",
        "required": ["id", "customer", "channel", "shop", "skill", "priority", "agents", "created_at", "handoff_at",
                     "first_response_s", "closed_at", "resolution", "category", "rating", "comment", "orders",
                     "bot_only", "reopened_from"],
        "properties": {
            "id": {"type": "string"},
            "customer": {"type": "object", "required": ["id", "name"],
                         "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
            "channel": {"type": "string"}, "shop": {"type": "string"}, "skill": {"type": "string"},
            "priority": {"type": "string"}, "agents": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "number"}, "handoff_at": NULLABLE_NUMBER, "first_response_s": NULLABLE_NUMBER,
            "closed_at": {"type": "number"}, "resolution": {"type": "string"}, "category": {"type": "string"},
            "rating": {"type": ["integer", "null"], "minimum": 1, "maximum": 5}, "comment": {"type": "string"},
            "orders": {"type": "array", "items": {"type": "string"}}, "bot_only": {"type": "boolean"},
            "reopened_from": {"type": ["string", "null"]}}},
    "ConversationPage": {
        "type": "object", "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/ConversationItem"}},
                       "next": {"type": ["string", "null"], "description": "cursor of the next page; null: last"}}},
    "Conversation": {
        "description": "Live (from the store: the conversation's fields) or archived (the search item's fields "
                       "and \"archived\": true), with the whole log in messages",
        "type": "object", "required": ["id", "messages"],
        "properties": {"id": {"type": "string"}, "archived": {"type": "boolean"},
                       "messages": {"type": "array", "items": {"type": "object"}}}},
}

SEARCH_PARAMS = (
    text_param("customer", "customer id"),
    text_param("agent", "any of the agents that held it"),
    text_param("order", "any of its order numbers"),
    text_param("channel", "web, douyin, pdd, …"),
    text_param("skill", "the skill it was routed to"),
    text_param("category", "the agent's category at close"),
    param("resolution", {"type": "string", "enum": list(RESOLUTIONS)}, "the agent's resolution at close"),
    param("rating_max", {"type": "integer", "minimum": 1, "maximum": 5}, "rated, and at most this"),
    param("from", TIME, "created at or after: Unix seconds, YYYY-MM-DD (midnight at utc_offset_h) or ISO 8601"),
    param("to", TIME, "created before (not included), as from"),
    param("utc_offset_h", {"type": "number", "minimum": -MAX_OFFSET_H, "maximum": MAX_OFFSET_H},
          "the time zone of bare dates (default 8: China)"),
    text_param("q", "words of the message text (all of them must occur)"),
    param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, f"items per page (default {DEFAULT_LIMIT})"),
    param("cursor", {"type": "string", "maxLength": 400}, "the next of the previous page"),
)
STATIC_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"}

ENDPOINTS: dict[str, dict[str, dict[str, Any]]] = {
    "/healthz": {"get": op("Process up", ok={"type": "object", "required": ["ok"]}, tag="ops")},
    "/readyz": {"get": op("Ready: store reachable and room for a connection", tag="ops",
                          ok={"type": "object", "required": ["ready"]},
                          errors={503: "not ready (store unreachable, full, or shutting down)"},
                          error_schema={"type": "object", "required": ["ready"]})},
    "/metrics": {"get": op("Prometheus metrics", auth=METRICS, tag="ops",
                           ok_content={"text/plain": {"schema": {"type": "string"}}},
                           errors={401: "[server] metrics_token is set and the token is missing or wrong"})},
    "/api/openapi.json": {"get": op("This document", ok=OBJECT, tag="ops")},
    "/api/stats": {"get": op("Queues and agents", auth=AGENT_OR_ADMIN, tag="ops",
                             ok={"type": "object", "required": ["queues", "agents_online", "agents"]})},
    "/api/faq/reload": {"post": op("Reload the FAQ file", auth=ADMIN, tag="faq",
                                   ok={"type": "object", "required": ["ok", "entries"]},
                                   errors={422: "the new file is bad: the old FAQ stays"},
                                   error_schema={"type": "object", "required": ["error"]})},
    "/api/faq/gaps": {"get": op(
        "The FAQ gaps report", auth=ADMIN, tag="faq", errors={400: "bad since_days or limit"},
        params=(param("since_days", {"type": "number", "exclusiveMinimum": 0, "maximum": 365}, "look back"),
                param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "clusters shown")),
        ok={"type": "object", "required": ["clusters"]})},
    "/api/conversations": {"get": op(
        "Search archived conversations, newest first", auth=RECORDS, tag="records", params=SEARCH_PARAMS,
        ok={"$ref": "#/components/schemas/ConversationPage"},
        errors={400: "a bad parameter (named in parameter)", 403: "an agent that is not a supervisor",
                503: "the archive cannot be read now"})},
    "/api/conversations/{conv}": {"get": op(
        "One conversation, live or archived, with its log", auth=RECORDS, tag="records",
        params=(param("conv", {"type": "string"}, "conversation id", where="path"),),
        ok={"$ref": "#/components/schemas/Conversation"},
        errors={403: "an agent that is not a supervisor", 404: "no such conversation, live or archived",
                503: "the archive cannot be read now"})},
    "/api/reviews": {"get": op(
        "Cases rated 1-2 or closed unresolved, newest first", auth=RECORDS, tag="records",
        params=(param("state", {"type": "string", "enum": ["open", "reviewed", "all"]}, "default open"),
                param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "default 100")),
        ok={"type": "object", "required": ["state", "items"]},
        errors={400: "a bad parameter (named in parameter)", 403: "an agent that is not a supervisor",
                503: "the archive cannot be used now"})},
    "/api/reviews/{conv}": {"post": op(
        "Mark a case reviewed, with a note (by the caller)", auth=RECORDS, tag="records",
        params=(param("conv", {"type": "string"}, "conversation id", where="path"),),
        body={"type": "object", "additionalProperties": False,
              "properties": {"note": {"type": "string", "maxLength": 2000}}},
        ok={"type": "object", "required": ["id", "state", "note", "by"]},
        errors={400: "a bad body (the field named in parameter)", 403: "an agent that is not a supervisor",
                404: "no such case on the review list", 503: "the archive cannot be used now"})},
    "/api/reports": {"get": op(
        "Service figures of a period (gateway report --format json)", auth=RECORDS, tag="reports",
        params=(param("from", TIME, "first day, YYYY-MM-DD or ISO date-time", required=True),
                param("to", TIME, "end, not included", required=True),
                param("by", {"type": "string", "enum": ["agent", "skill", "channel", "day", "category"]},
                      "one row per group"),
                param("utc_offset_h", {"type": "number", "minimum": -MAX_OFFSET_H, "maximum": MAX_OFFSET_H},
                      "the days' time zone (default 8)")),
        ok={"type": "object", "required": ["from", "to", "by", "target_s", "reopen_s", "totals"]},
        errors={400: "a bad parameter", 403: "an agent that is not a supervisor",
                503: "the archive cannot be read now"})},
    "/api/adapters/failures": {"get": op(
        "Outbound replies that could not be delivered (dead letters)", auth=ADMIN, tag="adapters",
        params=(param("limit", {"type": "integer"}, "newest first (default 100; held to 1-1000)"),),
        ok={"type": "object", "required": ["failures", "pending"]}, errors={400: "limit is not an integer"},
        error_schema=ADAPTER_ERROR)},
    "/api/adapters/orders/{conversation}/{order}": {"get": op(
        "An order from the platform's API, for the agent holding the conversation", auth=AGENT_OR_ADMIN,
        tag="adapters", ok=OBJECT, error_schema=ADAPTER_ERROR,
        params=(param("conversation", {"type": "string"}, "conversation id", where="path"),
                param("order", {"type": "string"}, "order number", where="path")),
        errors={403: "the agent does not hold it", 404: "no such conversation or no order API",
                502: "the platform failed or could not be reached"})},
    "/adapters/doudian/events": {"post": webhook("抖店 message push",
                                                 error_schema={"$ref": "#/components/schemas/DoudianError"})},
    "/adapters/douyin/webhook": {"post": webhook("抖音 private-message webhook")},
    "/adapters/forward/{platform}": {"post": webhook(
        "Signed relay batch for a platform", errors={404: "unknown platform"},
        params=(param("platform", {"type": "string"}, "douyin, pdd, taobao, doudian, …", where="path"),))},
    "/ws/customer": {"get": websocket("Customer chat")},
    "/ws/agent": {"get": websocket("Agent console socket")},
    "/": {"get": page("Customer chat page")},
    "/console": {"get": page("Agent console page")},
    "/reports": {"get": page("Reports page")},
    "/widget.js": {"get": page("The embeddable chat widget", "text/javascript", "application/javascript")},
    "/static/{name}": {"get": page("A shipped page asset", "*/*",
                                   path_param=param("name", STATIC_NAME, "file name", where="path"))},
    "/static/vendor/{name}": {"get": page("A vendored library (the reports page's charts)", "*/*",
                                          path_param=param("name", STATIC_NAME, "file name", where="path"))},
}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a fresh copy)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "gateway", "version": "1",
                 "description": "Chat-routing gateway: operations, the records API, reports, FAQ tools and "
                                "platform webhooks. The chat itself is websockets (docs/PROTOCOL.md)."},
        "paths": copy.deepcopy(ENDPOINTS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "[server] admin_token"},
                "agentToken": {"type": "http", "scheme": "bearer", "description": "an [[agents]] token"},
                "agentId": {"type": "apiKey", "in": "header", "name": "X-Agent-Id", "description": "its agent id"},
                "metrics": {"type": "http", "scheme": "bearer", "description": "[server] metrics_token"},
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(), headers={"Cache-Control": "no-cache"})


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
