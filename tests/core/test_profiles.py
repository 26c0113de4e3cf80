from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from voicebot_core import answering_machine
from voicebot_core.dial_jobs import DialJob
from voicebot_core.profiles import (
    OVERRIDABLE_FIELDS,
    AgentProfile,
    AgentProfiles,
    OverrideNotAllowed,
    check_overrides,
    fill,
)

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


def _profiles_with_target(tmp_path: Path, target: str, sip_hosts: str | None = None) -> AgentProfiles:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"profiles": {"desk": {"providers": "fake", "transfer_number": target}}}))
    return AgentProfiles.load(path, sip_hosts)


@pytest.mark.parametrize("target", ["+1555</Number><Dial>+19005550100", "+1555</Dial><Play>x</Play>",
                                    "555-0109", "sip:agent@pbx.example.com><Hangup/>"])
def test_transfer_target_with_markup_or_not_e164_is_refused(tmp_path, target):
    with pytest.raises(ValidationError, match="transfer_number"):
        _profiles_with_target(tmp_path, target, "pbx.example.com")
    with pytest.raises(ValidationError):
        AgentProfile(transfer_number=target)


def test_sip_transfer_target_needs_its_host_allow_listed(tmp_path, monkeypatch):
    monkeypatch.delenv("VOICEBOT_TRANSFER_SIP_HOSTS", raising=False)
    target = "sip:agent@pbx.example.com"
    with pytest.raises(ValidationError, match="not allowed"):
        _profiles_with_target(tmp_path, target)  # default: SIP refused
    with pytest.raises(ValidationError, match="not allowed"):
        _profiles_with_target(tmp_path, target, "other.example.com")
    assert _profiles_with_target(tmp_path, target, "pbx.example.com").get("desk").transfer_number == target
    monkeypatch.setenv("VOICEBOT_TRANSFER_SIP_HOSTS", "pbx.example.com")  # the setting, read by default
    assert _profiles_with_target(tmp_path, target).get("desk").transfer_number == target
    assert AgentProfile(transfer_number="+15550109999").transfer_number == "+15550109999"


def test_overrides_outside_the_allow_list_are_refused_or_dropped(profiles):
    with pytest.raises(OverrideNotAllowed, match=r"providers, transfer_number cannot be overridden.*persona"):
        check_overrides({"transfer_number": "+15550109999", "providers": "cloud", "goodbye": "Bye"})
    assert check_overrides({"goodbye": "Bye", "greeting": {"inbound": "Hi"}}) == {
        "goodbye": "Bye", "greeting": {"inbound": "Hi"}}
    # read side (worker, gateway): a stored override outside the list is ignored, the rest applies
    profile = profiles.get("sales", {"transfer_number": "+1555</Dial>", "provider_options": {"x": 1},
                                     "tools": ["transfer_to_human"], "goodbye": "Bye Sam"})
    assert profile.transfer_number == "" and profile.provider_options == {} and profile.goodbye == "Bye Sam"
    assert "transfer_number" not in OVERRIDABLE_FIELDS and "providers" not in OVERRIDABLE_FIELDS


def test_a_stored_transfer_number_override_applies_only_when_it_is_a_valid_target(profiles):
    # the dialer stores one only from an admin-scope key (tests/dialer/test_api_scopes.py)
    assert profiles.get("sales", {"transfer_number": "+15550101234"}).transfer_number == "+15550101234"
    assert profiles.get("sales", {"transfer_number": "+1555</Dial>"}).transfer_number == ""
