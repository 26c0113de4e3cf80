"""Transfer targets: E.164 numbers, or SIP URIs on allow-listed hosts; anything else is refused."""

import pytest

from voicebot_core.transfer_targets import InvalidTransferTarget, allowed_sip_hosts, check_transfer_target

REFUSED = [
    "+1555</Number><Dial>+19005550100",  # markup
    "+1555</Dial><Play>http://x</Play>",
    "+15550109999\n", " +15550109999", "+1 555 010 9999", "15550109999", "+05550109999", "+1234567890123456",
    "tel:+15550109999", "client:alice", "https://x.example.com",
    "sip:agent@pbx.example.com><Play>x</Play>", "sip:a\"b@pbx.example.com", "sip:agent@pbx.example.com'",
    "sip:agent@pbx.example.com&x", "sip:agent@", "sip:", "sip:agent@pbx.example.com:99999x",
]


@pytest.mark.parametrize("target", ["+15550109999", "+442071838750", "+12", ""])
def test_e164_numbers_and_no_target_pass(target):
    assert check_transfer_target(target, ()) == target


@pytest.mark.parametrize("target", REFUSED)
def test_anything_else_is_refused_even_with_sip_allowed(target):
    with pytest.raises(InvalidTransferTarget):
        check_transfer_target(target, {"pbx.example.com"})


def test_sip_refused_unless_the_host_is_allow_listed():
    target = "sip:agent@pbx.example.com:5061;transport=tls"
    with pytest.raises(InvalidTransferTarget, match=r"not allowed.*VOICEBOT_TRANSFER_SIP_HOSTS.*none"):
        check_transfer_target(target, allowed_sip_hosts(""))
    with pytest.raises(InvalidTransferTarget, match=r"'pbx\.example\.com' is not allowed"):
        check_transfer_target(target, {"other.example.com"})
    with pytest.raises(InvalidTransferTarget):  # the host exactly, not a suffix
        check_transfer_target("sip:agent@pbx.example.com.evil.net", {"pbx.example.com"})
    assert check_transfer_target(target, allowed_sip_hosts(" PBX.example.com , other ")) == target
    assert check_transfer_target("sips:PBX.EXAMPLE.COM", {"pbx.example.com"}) == "sips:PBX.EXAMPLE.COM"


def test_allow_list_defaults_to_the_environment(monkeypatch):
    monkeypatch.delenv("VOICEBOT_TRANSFER_SIP_HOSTS", raising=False)
    assert allowed_sip_hosts() == frozenset()
    monkeypatch.setenv("VOICEBOT_TRANSFER_SIP_HOSTS", "a.example.com,b.example.com")
    assert allowed_sip_hosts() == {"a.example.com", "b.example.com"}
