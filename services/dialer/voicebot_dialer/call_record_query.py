"""Listing call records (both directions) newest first through the calls index, filtered."""

from __future__ import annotations

from dataclasses import dataclass

from voicebot_core.calls import CallRecord, CallRecordReader
from voicebot_dialer.call_record_views import is_live
from voicebot_dialer.job_store import JobStore

SCAN_PAGE = 200
# Index entries one request reads at most: a filter matching little must not read 30 days of calls in
# one go. A page may then hold fewer than `limit` items while `next_cursor` goes on.
MAX_SCANNED = 5000


@dataclass(frozen=True)
class CallRecordFilter:
    live: bool | None = None
    number: str = ""  # E.164, the caller's or the called number
    dial_job_id: str = ""
    campaign_id: str = ""
    outcome: str = ""
    direction: str = ""
    since: float | None = None  # created_at window, unix seconds
    until: float | None = None

    def matches(self, record: CallRecord, campaign_id: str) -> bool:
        return ((self.live is None or is_live(record) == self.live)
                and (not self.number or self.number in (record.from_, record.to))
                and (not self.dial_job_id or record.dial_job_id == self.dial_job_id)
                and (not self.campaign_id or campaign_id == self.campaign_id)
                and (not self.outcome or record.outcome == self.outcome)
                and (not self.direction or record.direction == self.direction))


@dataclass(frozen=True)
class Found:
    record: CallRecord
    campaign_id: str


class CallRecordIndex:
    def __init__(self, records: CallRecordReader, jobs: JobStore) -> None:
        self._records = records
        self._jobs = jobs

    def page(self, where: CallRecordFilter, cursor: int, limit: int) -> tuple[list[Found], int | None]:
        """Up to `limit` matching records from index offset `cursor`, and the offset to go on from (None
        at the end of the index)."""
        found: list[Found] = []
        position = cursor
        while len(found) < limit and position - cursor < MAX_SCANNED:
            sids = self._records.newest_sids(position, SCAN_PAGE, where.since, where.until)
            if not sids:
                return found, None
            records = self._records.records(sids)
            campaigns = self._jobs.campaign_ids([r.dial_job_id if r else "" for r in records])
            for record, campaign_id in zip(records, campaigns, strict=True):
                position += 1
                if record is not None and where.matches(record, campaign_id):
                    found.append(Found(record, campaign_id))
                    if len(found) == limit:
                        break
        return found, position
