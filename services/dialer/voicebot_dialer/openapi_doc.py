"""The dialer's OpenAPI document: FastAPI's, plus what only the deployment's settings know, and
without FastAPI's own validation-error shapes (every error here is `Error`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from voicebot_dialer.auth import SCOPE_EXTENSION
from voicebot_dialer.models import CampaignSettings
from voicebot_dialer.settings import DialerSettings

DESCRIPTION = """Dial-out jobs and campaigns placed through Twilio, paced and retried.

Every `/v1` route needs `Authorization: Bearer <key>`, a key whose scope includes the one the operation
names: `read` (every GET), `place` (also every POST and DELETE; a key configured without a scope has it)
or `admin` (also `overrides.transfer_number`). Every error answer (4xx and 5xx) is an `Error`:
`{"error": "...", "detail": [{"field": "body.to", "message": "..."}]}`; `detail` lists each invalid
input of a 422 and is empty otherwise. Phone numbers are E.164 (`format: e164`: the pattern, and a
possible number for the country code); time zones are IANA names (`format: iana-time-zone`)."""


def build_openapi(app: FastAPI, settings: DialerSettings) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes,
                      tags=[{"name": "calls", "description": "Single outbound calls (dial jobs)."},
                            {"name": "campaigns", "description": "Many dial jobs sharing settings and a pace."},
                            {"name": "do-not-call", "description": "Numbers never dialed."},
                            {"name": "events", "description": "Dial job events as they happen (long poll)."},
                            {"name": "call records", "description": "Calls of both directions as recorded: "
                             "list, read, follow live, hang up."},
                            {"name": "workers", "description": "The bot-workers and their call slots."}])
    schemas = doc["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["CampaignRequest"]["properties"]["contacts"]["maxItems"] = settings.dialer_max_campaign_contacts
    _campaign_upload_settings_as_json(doc)
    _scopes_in_descriptions(doc)
    _nullable_as_type_lists(doc)
    return doc


SCOPE_TEXT = {
    "read": "Scope: `read` (every key has it).",
    "place": "Scope: `place` (keys with `place` or `admin`; a `read` key gets 403).",
    "admin": "Scope: `admin` (any other key gets 403).",
}


def _scopes_in_descriptions(doc: dict[str, Any]) -> None:
    """Each operation's `x-required-scope` (voicebot_dialer.auth) as a sentence of its description."""
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            scope = operation.pop(SCOPE_EXTENSION, None)
            assert scope in SCOPE_TEXT, f"{method.upper()} {path} declares no scope (auth.route)"
            assert (scope == "read") == ("403" not in operation["responses"]), \
                f"{method.upper()} {path}: document 403 exactly when the scope is above read"
            operation["description"] = "\n\n".join(filter(None, [operation.get("description"), SCOPE_TEXT[scope]]))


def _nullable_as_type_lists(node: Any) -> None:
    """`anyOf: [{type: integer, minimum: 1}, {type: null}]` (pydantic's `int | None`) -> `type: [integer,
    null], minimum: 1`: the same in JSON Schema 2020-12, and read right by more generators and fuzzers."""
    if isinstance(node, list):
        for item in node:
            _nullable_as_type_lists(item)
        return
    if not isinstance(node, dict):
        return
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        if isinstance(other.get("type"), str) and not set(other) & set(node) - {"anyOf"}:
            del node["anyOf"]
            node.update({**other, "type": [other["type"], "null"]})
    for value in node.values():
        _nullable_as_type_lists(value)


def _campaign_upload_settings_as_json(doc: dict[str, Any]) -> None:
    """The upload's `campaign` form field is a string to FastAPI, but the route reads it as JSON
    CampaignSettings: say so (an object part with an application/json encoding)."""
    schemas = doc["components"]["schemas"]
    settings_schema = CampaignSettings.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, definition in settings_schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas["CampaignSettings"] = settings_schema
    form = schemas["Body_uploadCampaign"]["properties"]
    form["campaign"] = {"$ref": "#/components/schemas/CampaignSettings",
                        "description": "Campaign settings: createCampaign's body without `contacts`."}
    media = doc["paths"]["/v1/campaigns/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    media["encoding"] = {"campaign": {"contentType": "application/json"}, "contacts": {"contentType": "text/csv"}}


def install_openapi(app: FastAPI, settings: DialerSettings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def served_document_json() -> str:
    """The document the app serves with default settings, as committed in docs/openapi.json."""
    from voicebot_dialer.api import create_app  # the app imports this module

    # dev_mode: the built-in defaults, secrets included (the document depends on none of them)
    return json.dumps(create_app(DialerSettings(dev_mode=True)).openapi(), indent=2, ensure_ascii=False) + "\n"
