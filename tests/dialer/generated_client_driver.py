"""Run by tests/dialer/test_openapi_contract.py with the API tools venv's Python (httpx + attrs):
place, read and cancel a dial job through the client openapi-python-client generated from
docs/openapi.json, and print what the API answered as JSON.

    python generated_client_driver.py CLIENT_PARENT_DIR BASE_URL API_KEY
"""

from __future__ import annotations

import json
import sys

sys.path.insert(0, sys.argv[1])  # the generated package, imported below

from voicebot_dialer_client import AuthenticatedClient
from voicebot_dialer_client.api.calls import cancel_call, create_call, get_call
from voicebot_dialer_client.models import CallingWindow, CallRequest, Error

client = AuthenticatedClient(base_url=sys.argv[2], token=sys.argv[3], raise_on_unexpected_status=True)
window = CallingWindow(timezone="America/New_York", start="09:00", end="20:00", days=[0, 1, 2, 3, 4])
created = create_call.sync_detailed(client=client, body=CallRequest(to="+1 415 555 0188", agent_profile="sales",
                                                                    calling_window=window, max_attempts=2))
job = created.parsed
read = get_call.sync(client=client, job_id=job.id)
canceled = cancel_call.sync(client=client, job_id=job.id)
missing = get_call.sync(client=client, job_id="dj_missing")
invalid = create_call.sync(client=client, body=CallRequest(to="+1555"))
print(json.dumps({
    "created": {"status": int(created.status_code), "id": job.id, "to": job.to, "state": job.state},
    "read": {"id": read.id, "state": read.state, "events": [e.kind for e in read.events]},
    "canceled": {"state": canceled.state, "outcome": canceled.outcome, "terminal": canceled.terminal},
    "missing": isinstance(missing, Error) and missing.error,
    "invalid": isinstance(invalid, Error) and [d.field for d in invalid.detail],
}))
