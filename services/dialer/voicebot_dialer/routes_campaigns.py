"""Routes for campaigns (/v1/campaigns) and the do-not-call list (/v1/do-not-call)."""

# No `from __future__ import annotations`: FastAPI resolves Depends() of closures at runtime.

import json
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from voicebot_core.metrics import DIAL_JOBS
from voicebot_dialer import campaigns
from voicebot_dialer.api_keys import Caller
from voicebot_dialer.auth import Auth
from voicebot_dialer.errors import responses, unprocessable, validation_errors
from voicebot_dialer.jobs import InvalidRequest, check_transfer_override
from voicebot_dialer.models import PHONE_SCHEMA, CampaignRequest, CampaignSettings, DoNotCallRequest
from voicebot_dialer.response_models import (
    CampaignPage,
    CampaignProgress,
    DoNotCallAdded,
    DoNotCallPage,
    DoNotCallRemoved,
    DoNotCallStatus,
)
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.views import MAX_CURSOR, e164_or_422

CampaignId = Annotated[str, Path(max_length=200, description="Campaign id (`cmp_...`).")]
Number = Annotated[str, Path(json_schema_extra=PHONE_SCHEMA)]
# The create -> read -> pause/resume/cancel flow, for readers and for generators of stateful tests.
CAMPAIGN_LINKS = {
    f"{verb}Campaign": {"operationId": f"{verb}Campaign", "parameters": {"campaign_id": "$response.body#/id"},
                        "description": f"{verb.capitalize()} the campaign just created."}
    for verb in ("get", "pause", "resume", "cancel")
}


def build_router(dialer: DialerService, settings: DialerSettings, auth: Auth) -> APIRouter:
    router = APIRouter()
    Placer = Annotated[Caller, Depends(auth.require("place"))]

    # campaigns
    @router.post("/v1/campaigns", status_code=201, tags=["campaigns"], operation_id="createCampaign",
                 response_model=CampaignProgress,
                 responses={201: {"description": "Campaign created", "links": CAMPAIGN_LINKS},
                            **responses(400, 403, 413)}, **auth.route("place"))
    def create_campaign(body: CampaignRequest, caller: Placer) -> dict[str, Any]:
        """Create a campaign from JSON contacts; it starts at once (or at schedule_at/in its window)."""
        check_transfer_override(settings, body, caller, "body.overrides")
        if len(body.contacts) > settings.dialer_max_campaign_contacts:
            raise InvalidRequest(f"at most {settings.dialer_max_campaign_contacts} contacts per campaign")
        options = CampaignSettings.model_validate(body.model_dump(mode="json", exclude={"contacts"}, by_alias=True))
        result = campaigns.create_campaign(dialer, options, body.contacts)
        DIAL_JOBS.labels(source="campaign").inc(len(body.contacts))
        return result

    @router.post("/v1/campaigns/upload", status_code=201, tags=["campaigns"], operation_id="uploadCampaign",
                 response_model=CampaignProgress,
                 responses={201: {"description": "Campaign created", "links": CAMPAIGN_LINKS},
                            **responses(400, 403, 413)}, **auth.route("place"))
    async def upload_campaign(
        caller: Placer,
        contacts: Annotated[UploadFile, File(description="CSV: a `to` column; other columns are variables, "
                                                          "`meta_*` columns metadata.")],
        campaign: Annotated[str, Form(description="CampaignSettings as JSON (the fields of createCampaign's "
                                                  "body but `contacts`)")] = "{}",
    ) -> JSONResponse:
        """Create a campaign from a CSV upload (multipart/form-data)."""
        try:
            options = CampaignSettings.model_validate(json.loads(campaign or "{}"))
        except json.JSONDecodeError as exc:
            return unprocessable([{"field": "campaign", "message": f"not JSON: {exc}"}])
        except ValidationError as exc:
            return unprocessable([{**e, "field": f"campaign.{e['field']}"} for e in validation_errors(exc)])
        check_transfer_override(settings, options, caller, "campaign.overrides")
        raw = await contacts.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return unprocessable([{"field": "contacts", "message": "the CSV must be UTF-8"}])
        try:
            parsed = await run_in_threadpool(campaigns.contacts_from_csv, text, settings.dialer_max_campaign_contacts)
        except campaigns.ContactErrors as exc:
            return unprocessable([{"field": f"contacts.row{e['row']}", "message": e["message"]}
                                   for e in exc.errors[:100]])
        result = await run_in_threadpool(campaigns.create_campaign, dialer, options, parsed)
        DIAL_JOBS.labels(source="campaign").inc(len(parsed))
        return JSONResponse(result, status_code=201)

    @router.get("/v1/campaigns", tags=["campaigns"], operation_id="listCampaigns", response_model=CampaignPage,
                responses=responses(), **auth.route("read"))
    def list_campaigns(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        ids = dialer.campaigns.newest(limit)
        return {"items": [p for p in (campaigns.progress(dialer, i) for i in ids) if p]}

    def _campaign_or_404(campaign_id: str) -> dict[str, Any]:
        result = campaigns.progress(dialer, campaign_id)
        if result is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        return result

    @router.get("/v1/campaigns/{campaign_id}", tags=["campaigns"], operation_id="getCampaign",
                response_model=CampaignProgress, responses=responses(404), **auth.route("read"))
    def get_campaign(campaign_id: CampaignId) -> dict[str, Any]:
        """Progress counts by job state."""
        return _campaign_or_404(campaign_id)

    def _change(campaign_id: str, change: Callable[[str], None], refused_when_canceled: str = "") -> dict[str, Any]:
        """Apply `change` to an existing campaign and answer with its progress."""
        if _campaign_or_404(campaign_id)["status"] == "canceled" and refused_when_canceled:
            raise HTTPException(409, refused_when_canceled)
        change(campaign_id)
        return _campaign_or_404(campaign_id)

    @router.post("/v1/campaigns/{campaign_id}/pause", tags=["campaigns"], operation_id="pauseCampaign",
                 response_model=CampaignProgress, responses=responses(403, 404), **auth.route("place"))
    def pause_campaign(campaign_id: CampaignId) -> dict[str, Any]:
        return _change(campaign_id, partial(campaigns.pause, dialer))

    @router.post("/v1/campaigns/{campaign_id}/resume", tags=["campaigns"], operation_id="resumeCampaign",
                 response_model=CampaignProgress, responses=responses(403, 404, 409), **auth.route("place"))
    def resume_campaign(campaign_id: CampaignId) -> dict[str, Any]:
        return _change(campaign_id, partial(campaigns.resume, dialer), "a canceled campaign cannot resume")

    @router.post("/v1/campaigns/{campaign_id}/cancel", tags=["campaigns"], operation_id="cancelCampaign",
                 response_model=CampaignProgress, responses=responses(403, 404), **auth.route("place"))
    def cancel_campaign(campaign_id: CampaignId) -> dict[str, Any]:
        return _change(campaign_id, dialer.cancel_campaign)

    # do-not-call
    @router.post("/v1/do-not-call", tags=["do-not-call"], operation_id="addDoNotCall", response_model=DoNotCallAdded,
                 responses=responses(400, 403, 413), **auth.route("place"))
    def add_do_not_call(body: DoNotCallRequest) -> dict[str, Any]:
        """Numbers never dialed again; checked before every placement."""
        return {"added": dialer.do_not_call.add(body.numbers)}

    @router.get("/v1/do-not-call", tags=["do-not-call"], operation_id="listDoNotCall", response_model=DoNotCallPage,
                responses=responses(), **auth.route("read"))
    def list_do_not_call(cursor: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        numbers, next_cursor = dialer.do_not_call.page(cursor, limit)
        return {"numbers": numbers, "next_cursor": next_cursor}

    @router.get("/v1/do-not-call/{number}", tags=["do-not-call"], operation_id="checkDoNotCall",
                response_model=DoNotCallStatus, responses=responses(), **auth.route("read"))
    def check_do_not_call(number: Number) -> dict[str, Any]:
        number = e164_or_422(number)
        return {"number": number, "do_not_call": dialer.do_not_call.contains(number)}

    @router.delete("/v1/do-not-call/{number}", tags=["do-not-call"], operation_id="removeDoNotCall",
                   response_model=DoNotCallRemoved, responses=responses(403), **auth.route("place"))
    def remove_do_not_call(number: Number) -> dict[str, Any]:
        number = e164_or_422(number)
        return {"number": number, "removed": dialer.do_not_call.remove(number)}

    return router
