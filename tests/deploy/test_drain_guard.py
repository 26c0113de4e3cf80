"""The chart must refuse to render when a drain could outlive the pod's grace period."""

from __future__ import annotations

import pytest

from .conftest import find


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "botWorker.drain.timeoutSeconds=3700"],
         "botWorker: drain wait 3700s (preStop delay 0s + drain timeout 3700s) exceeds "
         "terminationGracePeriodSeconds 3660s"),
        (["--set", "botWorker.terminationGracePeriodSeconds=120"],
         "botWorker: drain wait 3600s (preStop delay 0s + drain timeout 3600s) exceeds "
         "terminationGracePeriodSeconds 120s"),
        (["--set", "botWorker.drain.preStopDelaySeconds=61"],
         "botWorker: drain wait 3661s"),
        (["--set", "gateway.drain.preStopDelaySeconds=70"],
         "gateway: drain wait 3670s (preStop delay 70s + drain timeout 3600s) exceeds "
         "terminationGracePeriodSeconds 3660s"),
        (["--set", "gateway.drain.timeoutSeconds=7200", "--set", "gateway.terminationGracePeriodSeconds=7000"],
         "gateway: drain wait 7210s"),
    ],
)
def test_drain_longer_than_grace_period_is_refused(helm, args, message):
    result = helm(*args)
    assert result.returncode != 0, "rendered although the drain outlives the grace period"
    assert message in result.stderr
    assert "terminationGracePeriodSeconds" in result.stderr


def test_drain_equal_to_grace_period_renders(render):
    docs = render("--set", "botWorker.drain.timeoutSeconds=3660")
    worker = find(docs, "Deployment", "voicebot-bot-worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 3660


def test_longer_calls_render_when_grace_period_follows(render):
    docs = render("--set", "botWorker.drain.timeoutSeconds=7200",
                  "--set", "botWorker.terminationGracePeriodSeconds=7260")
    pod = find(docs, "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert pod["terminationGracePeriodSeconds"] == 7260
    assert env["VOICEBOT_WORKER_DRAIN_TIMEOUT_S"] == "7200"


def test_hpa_and_keda_together_are_refused(helm):
    result = helm("--set", "botWorker.autoscaling.enabled=true", "--set", "botWorker.keda.enabled=true")
    assert result.returncode != 0
    assert "not both" in result.stderr
