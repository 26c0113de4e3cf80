import xml.etree.ElementTree as ET

from voicebot_core import twiml


def test_connect_stream_carries_parameters_as_attributes():
    doc = twiml.connect_stream("wss://gw.example.com/twilio/stream/CA1", {"to": "+1555", "a\"b": "<x>", "skip": None})
    stream = ET.fromstring(doc).find("./Connect/Stream")
    assert stream.get("url") == "wss://gw.example.com/twilio/stream/CA1"
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == {"to": "+1555", "a\"b": "<x>"}


def test_markup_in_messages_and_numbers_is_text_not_verbs():
    said = ET.fromstring(twiml.say_and_hang_up("</Say><Dial>+15550000000</Dial><Say>"))
    assert [child.tag for child in said] == ["Say", "Hangup"]
    assert said.findtext("Say") == "</Say><Dial>+15550000000</Dial><Say>"
    dialed = ET.fromstring(twiml.dial("+1555</Dial><Play>http://x</Play><Dial>"))
    assert [child.tag for child in dialed] == ["Dial"]
    assert dialed.findtext("Dial") == "+1555</Dial><Play>http://x</Play><Dial>"


def test_hang_up_has_no_message():
    root = ET.fromstring(twiml.hang_up())
    assert [child.tag for child in root] == ["Hangup"]


NASTY = "a<b>c&d\"e'f</Response><Hangup/>"


def test_every_attribute_and_text_escapes_markup_and_quotes():
    stream = ET.fromstring(twiml.connect_stream(f"wss://gw/{NASTY}", {NASTY: NASTY})).find("./Connect/Stream")
    assert stream.get("url") == f"wss://gw/{NASTY}"
    assert [(p.get("name"), p.get("value")) for p in stream.findall("Parameter")] == [(NASTY, NASTY)]
    said = ET.fromstring(twiml.say_and_hang_up(NASTY))
    assert [c.tag for c in said] == ["Say", "Hangup"] and said.findtext("Say") == NASTY
    dialed = ET.fromstring(twiml.dial("+1" + NASTY))
    assert [c.tag for c in dialed] == ["Dial"] and dialed.findtext("Dial") == "+1" + NASTY
    sip = ET.fromstring(twiml.dial("sip:" + NASTY))
    assert [c.tag for c in sip] == ["Dial"] and sip.findtext("./Dial/Sip") == "sip:" + NASTY
    for document in (twiml.connect_stream(NASTY, {NASTY: NASTY}), twiml.say_and_hang_up(NASTY), twiml.dial(NASTY)):
        body = document.split("?>", 1)[1]
        assert NASTY not in body and "</Response><Hangup/>" not in body.removesuffix("</Response>")


def test_sip_targets_dial_a_sip_noun():
    assert ET.fromstring(twiml.dial("sip:agent@pbx.example.com;transport=tls")).findtext(
        "./Dial/Sip") == "sip:agent@pbx.example.com;transport=tls"
    assert ET.fromstring(twiml.dial("+15550109999")).findtext("Dial") == "+15550109999"
