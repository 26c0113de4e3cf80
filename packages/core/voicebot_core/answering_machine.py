"""What a dial job does when a machine answers: one policy for synchronous and async AMD.

Synchronous AMD (the gateway's outbound TwiML webhook sees `AnsweredBy`) answers Twilio with
this TwiML; asynchronous AMD (the dialer's Celery worker gets the AMD callback) redirects the
live call to the same TwiML. With `machine_detection: voicemail` the profile's voicemail
message is left, its `{variables}` filled from the dial job; otherwise the call hangs up.
"""

from __future__ import annotations

import logging

from voicebot_core import twiml
from voicebot_core.dial_jobs import DialJob
from voicebot_core.profiles import AgentProfiles, fill
from voicebot_core.vocabulary import is_machine

log = logging.getLogger(__name__)


def acts_on(job: DialJob, answered_by: str) -> bool:
    """True when this answer ends the conversation before it starts (a machine, and the job cares)."""
    return is_machine(answered_by) and job.machine_detection in ("hangup", "voicemail")


def voicemail_message(job: DialJob, profiles: AgentProfiles) -> str:
    """The message to leave, '' to hang up without one."""
    if job.machine_detection != "voicemail":
        return ""
    try:
        profile = profiles.get(job.agent_profile or None, job.overrides)
    except (KeyError, ValueError) as exc:
        log.warning("no voicemail message for dial job %s: %s", job.id, exc)
        return ""
    return fill(profile.voicemail_message, job.variables)


def machine_twiml(job: DialJob, profiles: AgentProfiles) -> str:
    """TwiML for a call a machine answered: the voicemail message (if any), then hang up."""
    return twiml.say_and_hang_up(voicemail_message(job, profiles))
