from pathlib import Path

import pytest
from pydantic import ValidationError

from voicebot_core import answering_machine
from voicebot_core.dial_jobs import DialJob
from voicebot_core.profiles import AgentProfiles, fill

YAML = """
default_profile: support
numbers: {"+15550002222": sales}
profiles:
  support: {providers: fake, idle_timeout_s: 4}
  sales:
    providers: fake
    persona: "You sell things to {name}."
    greeting: {outbound: "Hi {name}, this is Acme about order {order_id}."}
"""


@pytest.fixture
def profiles(tmp_path: Path) -> AgentProfiles:
    path = tmp_path / "p.yaml"
    path.write_text(YAML)
    return AgentProfiles.load(path)


def test_number_mapping_and_default(profiles):
    assert profiles.for_number("+15550002222") == "sales"
    assert profiles.for_number("+15559999999") == "support"


def test_variables_fill_greeting_and_prompt(profiles):
    sales = profiles.get("sales")
    variables = {"name": "Sam", "order_id": "42"}
    assert sales.greeting_for("outbound", variables) == "Hi Sam, this is Acme about order 42."
    assert "You sell things to Sam." in sales.system_prompt(variables)
    assert "order_id: 42" in sales.system_prompt(variables)
    assert fill("Hi {name} {missing}", {"name": "Al"}) == "Hi Al {missing}"


def test_per_call_overrides_merge(profiles):
    profile = profiles.get("sales", {"greeting": {"inbound": "Yo"}, "idle_timeout_s": 9})
    assert profile.greeting.inbound == "Yo" and profile.idle_timeout_s == 9
    assert profile.greeting.outbound.startswith("Hi {name}")


def test_unknown_profile_and_bad_fields_fail_clearly(profiles, tmp_path):
    with pytest.raises(KeyError, match="unknown agent profile 'nope'"):
        profiles.get("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: {x: {providers: quantum}}")
    with pytest.raises(ValidationError):
        AgentProfiles.load(bad)


def test_shipped_outbound_profile_leaves_a_voicemail_with_the_callee_name():
    shipped = AgentProfiles.load(Path(__file__).resolve().parents[2] / "config" / "agent-profiles.yaml")
    job = DialJob(id="dj", agent_profile="sales", machine_detection="voicemail", variables={"name": "Sam"})
    message = answering_machine.voicemail_message(job, shipped)
    assert message.startswith("Hi Sam, this is Robin") and "{" not in message
