from prometheus_client import generate_latest

from voicebot_core import metrics  # noqa: F401  (registers the collectors)


def test_call_outcome_series_exist_at_zero_before_the_first_call():
    text = generate_latest().decode()
    for direction in ("inbound", "outbound"):
        for outcome in ("completed", "busy", "no-answer", "failed", "machine", "transferred"):
            assert f'voicebot_call_outcomes_total{{direction="{direction}",outcome="{outcome}"}}' in text
