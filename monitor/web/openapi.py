"""The OpenAPI 3 document of ``/api/v1`` (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from monitor import __version__
from monitor.core.agents import AGENT_STATES, TIME_STATES
from monitor.web.params import ENDPOINTS
from monitor.web.supervisor_api import CSV_COLUMNS

_NUM_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required,
            "additionalProperties": extra}


def _params(path: str) -> list[dict[str, Any]]:
    """The query parameters of ``path``, from the declaration the server validates with (one source)."""
    return [{"name": p.name, "in": "query", "required": False, "schema": p.schema(), "description": p.doc}
            for p in ENDPOINTS[path].params]


def _get(summary: str, ref: str, path: str, store: bool = True) -> dict[str, Any]:
    """GET (and HEAD, the same without a body); any other method is a 405 naming them in ``Allow``."""
    ok = {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
    responses: dict[str, Any] = {"200": ok, "400": {"$ref": "#/components/responses/BadRequest"},
                                 "401": {"$ref": "#/components/responses/Unauthorized"}}
    if store:
        responses["503"] = {"$ref": "#/components/responses/Unavailable"}
    not_allowed = {"summary": "Not allowed: only GET and HEAD",
                   "responses": {"401": {"$ref": "#/components/responses/Unauthorized"},
                                 "405": {"$ref": "#/components/responses/MethodNotAllowed"}}}
    head = {"summary": f"{summary} (headers only)", "parameters": _params(path),
            "responses": {k: {"description": "as GET, without a body"} for k in responses}}
    return {"get": {"summary": summary, "parameters": _params(path), "responses": responses}, "head": head,
            **{m: not_allowed for m in ("post", "put", "delete", "patch", "options")}}


_COUNTS = ("entered", "answered", "abandoned", "abandoned_short", "timeout", "exit_empty", "join_empty", "exit_key",
           "full", "join_unavail", "leave_unavail", "withdraw", "ring_no_answer", "completed_by_agent",
           "completed_by_caller", "transfers_blind", "transfers_attended", "voicemail", "repeat_calls")
_INT = {"type": "integer", "minimum": 0}
_SECONDS = {"type": "number", "minimum": 0}
_PER_KEY_S = {"type": "object", "additionalProperties": _SECONDS}
_RATIO = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_RAG = {"enum": ["green", "amber", "red", "none"], "description": "none: no call today yet"}
_STATES = {"enum": ["available", "in_call", "ringing", "paused", "unavailable"]}
WALLBOARD_SCHEMAS: dict[str, Any] = {
    "WallboardToday": _obj({
        "sl_definition": {"type": "string", "description": "the queue's chosen service-level definition"},
        "sl_name": {"type": "string", "description": "its formula in words"},
        "offered": _INT, "answered": _INT, "answered_within": _INT, "abandoned": _INT, "abandoned_short": _INT,
        "unanswered_other": _INT, "service_level": _RATIO, "sl_target": {"type": "number"}, "sl_rag": _RAG,
        "abandon_rate": _RATIO, "abandon_target": {"type": "number"}, "abandon_rag": _RAG,
        "csat_mean": {"type": ["number", "null"], "minimum": 1, "maximum": 5}, "csat_responses": _INT,
    }),
    "WallboardAgent": _obj({
        "pbx": {"type": "string"}, "queue": {"type": "string"}, "agent": {"type": "string"}, "state": _STATES,
        "paused_reason": {"type": "string"},
        "for_s": {"type": ["number", "null"], "minimum": 0, "description": "in this state for (s, PBX clock); "
                  "null when qmon did not see the change"},
        "answered_today": _INT, "talk_today_s": {"type": "number", "minimum": 0},
    }),
    "WallboardQueue": _obj({
        "pbx": {"type": "string"}, "queue": {"type": "string"},
        "live": {"type": "boolean", "description": "false while this PBX's AMI is down: live numbers are stale"},
        "waiting_calls": _INT, "longest_wait_s": {"type": "number", "minimum": 0},
        "agents": _obj({k: _INT for k in _STATES["enum"]}),
        "paused": {"type": "array", "items": {"$ref": "#/components/schemas/WallboardAgent"}},
        "today": {"$ref": "#/components/schemas/WallboardToday"},
        "callbacks_owed": {"type": ["integer", "null"], "minimum": 0, "description": "null: not tracked"},
    }),
    "Wallboard": _obj({
        "generated_at": {"type": "number"}, "day": {"type": "string", "description": "today: the daemon's local "
                                                    "day on the PBX clock (YYYY-MM-DD)"},
        "ami": {"type": "array", "items": _obj({"pbx": {"type": "string"}, "up": {"type": "boolean"},
                                                "reason": {"type": "string"},
                                                "last_event_age_s": {"type": ["number", "null"]}})},
        "ami_up": {"type": "boolean"}, "sl_definition": {"type": "string"}, "sl_threshold_s": {"type": "number"},
        "sl_name": {"type": "string"}, "callbacks_owed_shown": {"type": "boolean"}, "refresh_s": {"type": "number"},
        "queues": {"type": "array", "items": {"$ref": "#/components/schemas/WallboardQueue"}},
        "agents": {"type": "array", "items": {"$ref": "#/components/schemas/WallboardAgent"}},
    }),
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": {"type": "string"}}),
    "Member": _obj({"name": {"type": "string"}, "interface": {"type": "string"},
                    "state": {"enum": ["available", "in_call", "ringing", "paused", "unavailable"]},
                    "paused_reason": {"type": "string"}}),
    "Waiting": _obj({"join_ts": {"type": "number"}, "wait_s": {"type": "number", "minimum": 0}}),
    "LiveQueue": _obj({
        "pbx": {"type": "string"}, "queue": {"type": "string"}, "waiting_calls": _INT,
        "longest_wait_s": {"type": "number", "minimum": 0},
        "waiting": {"type": "array", "items": {"$ref": "#/components/schemas/Waiting"}},
        "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
        "member_counts": {"type": "object", "additionalProperties": _INT},
    }),
    "Queues": _obj({"queues": {"type": "array", "items": {"$ref": "#/components/schemas/LiveQueue"}},
                    "ami": {"type": "object", "additionalProperties": {"type": "boolean"}}}),
    "Segment": _obj({"queue": {"type": "string"}, "outcome": {"type": "string"}, "entered": {"type": "boolean"},
                     "join_ts": {"type": "number"}, "wait_s": _NUM_OR_NULL,
                     "agent": {"type": ["string", "null"]}, "talk_s": _NUM_OR_NULL},
                    ["queue", "outcome", "join_ts"]),
    "Call": _obj({"linkedid": {"type": "string"}, "call_id": {"type": "string"},
                  "caller": {"type": ["string", "null"]}, "start_ts": {"type": "number"},
                  "end_ts": {"type": "number"}, "outcome": {"type": "string"}, "pbx": {"type": "string"},
                  "closed_by": {"type": "string"},
                  "segments": {"type": "array", "items": {"$ref": "#/components/schemas/Segment"}},
                  "transfers": {"type": "array", "items": {"type": "object"}},
                  "voicemail": {"type": ["object", "null"]}, "survey": {"type": ["object", "null"]},
                  "repeat_windows": {"type": "array", "items": {"type": "string"}}},
                 ["linkedid", "start_ts", "end_ts", "outcome", "segments"]),
    "Calls": _obj({"count": _INT, "calls": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}}}),
    "QueueSummary": _obj({
        **{k: _INT for k in _COUNTS},
        "wait_answered_s": _obj({"n": _INT, "mean": _NUM_OR_NULL, "p50": _NUM_OR_NULL, "p90": _NUM_OR_NULL,
                                 "max": _NUM_OR_NULL}),
        "wait_abandoned_s": _obj({"n": _INT, "mean": _NUM_OR_NULL}),
        "talk_s": _obj({"n": _INT, "mean": _NUM_OR_NULL}),
        "service_level": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "csat": _obj({"responses": _INT, "mean": _NUM_OR_NULL, "satisfied_ratio": _NUM_OR_NULL,
                      "scores": {"type": "object", "additionalProperties": _INT}, "invalid": _INT, "no_input": _INT}),
    }),
    "Summary": _obj({"from": {"type": "number"}, "to": {"type": "number"}, "sl_threshold_s": {"type": "number"},
                     "events": _INT, "calls": _INT, "voicemail_calls": _INT,
                     "callers": _obj({"distinct": _INT, "repeat_calls": _INT}),
                     "queues": {"type": "object",
                                "additionalProperties": {"$ref": "#/components/schemas/QueueSummary"}}}),
    **WALLBOARD_SCHEMAS,
    "Surveys": _obj({"count": _INT, "surveys": {"type": "array", "items": {"type": "object"}}}),
    "Agent": _obj({
        "pbx": {"type": "string"}, "queue": {"type": "string", "description": "* = the agent over all its queues"},
        "agent": {"type": "string"}, "interface": {"type": "string"}, "state": {"enum": list(AGENT_STATES)},
        "since_ts": _NUM_OR_NULL, "state_duration_s": _NUM_OR_NULL, "pause_reason": {"type": "string"},
        "pause_label": {"type": "string"}, "logged_in_s": _SECONDS, "paused_s": _SECONDS,
        "paused_by_reason_s": _PER_KEY_S, "paused_by_label_s": _PER_KEY_S,
        "state_s": {"type": "object", "properties": {s: _SECONDS for s in TIME_STATES}, "required": list(TIME_STATES),
                    "additionalProperties": False},
        "talk_s": _SECONDS, "wrapup_s": _SECONDS, "answered": _INT, "completed": _INT, "ring_no_answer": _INT,
        "aht_s": _NUM_OR_NULL, "occupancy": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    }),
    "Agents": _obj({"count": _INT, "agents": {"type": "array", "items": {"$ref": "#/components/schemas/Agent"}}}),
    "OwedCallback": _obj({
        "pbx": {"type": "string"}, "caller": {"type": "string"}, "queue": {"type": ["string", "null"]},
        "first_ts": {"type": "number"}, "last_ts": {"type": "number"}, "owed_since_ts": {"type": "number"},
        "age_s": _SECONDS, "wait_s": _SECONDS, "outcome": {"type": "string"}, "voicemail": {"type": "boolean"},
        "attempts": {"type": "integer", "minimum": 1}, "linkedids": {"type": "array", "items": {"type": "string"}},
    }),
    "Callbacks": _obj({"state": {"enum": ["open"]}, "count": _INT,
                       "callbacks": {"type": "array", "items": {"$ref": "#/components/schemas/OwedCallback"}}}),
}


def _error(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(surveys: bool = False, wallboard: bool = False) -> dict[str, Any]:
    """The document; ``surveys`` adds ``/api/v1/surveys``, ``wallboard`` ``/api/v1/wallboard``, when mounted."""
    paths: dict[str, Any] = {
        "/api/v1/queues": _get("Live state of every queue: waiting callers and members", "Queues",
                               "/api/v1/queues", store=False),
        "/api/v1/calls": _get("Recent stored call records, newest first", "Calls", "/api/v1/calls"),
        "/api/v1/summary": _get("The replay-report numbers over stored calls that started in [from, to)", "Summary",
                                "/api/v1/summary"),
    }
    paths["/api/v1/agents"] = _get("Per queue and agent (queue * = over all its queues): state and since when, "
                                    "logged-in, paused by reason, talk, wrap-up (s), calls, occupancy", "Agents",
                                    "/api/v1/agents", store=False)
    paths["/api/v1/callbacks"] = _get("The callers still owed a call (state=open), oldest first; CSV with format=csv "
                                      "or Accept: text/csv", "Callbacks", "/api/v1/callbacks", store=False)
    paths["/api/v1/callbacks"]["get"]["responses"]["200"]["content"]["text/csv"] = {
        "schema": {"type": "string", "description": "RFC 4180 CSV, header: " + ",".join(CSV_COLUMNS)}}
    if surveys:
        paths["/api/v1/surveys"] = _get("Survey results, newest first (call back unhappy callers)", "Surveys",
                                        "/api/v1/surveys")
    if wallboard:
        paths["/api/v1/wallboard"] = _get(
            "The wallboard's snapshot: live queue state, today's service level (RAG against the configured target), "
            "abandonment and CSAT, callbacks owed, one row per queue member. Also as server-sent events (event "
            "`snapshot`, this JSON) at /api/v1/wallboard/events. Bearer token, or the wallboard cookie set by "
            "opening /?token=...", "Wallboard", "/api/v1/wallboard", store=False)
    return {
        "openapi": "3.1.0",
        "info": {"title": "qmon API", "version": __version__,
                 "description": "Live queue state and stored call records of the qmon Asterisk monitor."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {"BadRequest": _error("Invalid query parameters: unknown or repeated names, empty values, "
                                               "times that are not finite epoch seconds or ISO 8601 from 1970 to "
                                               "9999, integers out of range, from after to (every problem named)"),
                          "Unauthorized": _error("Missing or wrong bearer token (checked before the method and "
                                                 "the path: without the token every request is a 401)"),
                          "MethodNotAllowed": {**_error("Only GET and HEAD are served"), "headers": {
                              "Allow": {"schema": {"type": "string"}, "description": "GET,HEAD"}}},
                          "Unavailable": _error("No store configured or the database is down")},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
