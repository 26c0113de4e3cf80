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
