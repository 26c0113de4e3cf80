"""`python -m voicebot_worker` refuses to start with a default or empty secret outside development
mode, before it loads any model (issue 13: no default secrets). Started in development mode, as
every other worker test does (tests/helpers/servers.Service), it serves calls."""

from __future__ import annotations

import sys

import pytest

from helpers.entry_points import (
    GOOD_SECRETS,
    PUBLIC_DEFAULTS,
    assert_refused,
    minimal_env,
    run_entry_point,
    run_with_one_bad_secret,
)
from helpers.servers import ROOT

WORKER_SECRETS = ["VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_STREAM_TICKET_SECRET"]


def test_worker_refuses_the_built_in_defaults(tmp_path):
    result = run_entry_point("voicebot_worker", minimal_env(tmp_path))
    assert_refused(result, WORKER_SECRETS, list(PUBLIC_DEFAULTS.values()))


@pytest.mark.parametrize("variable", WORKER_SECRETS)
@pytest.mark.parametrize("kind", ["public default", "empty"])
def test_worker_refuses_each_default_or_empty_secret(tmp_path, variable, kind):
    run_with_one_bad_secret(tmp_path, "voicebot_worker", WORKER_SECRETS, variable, kind)


def test_worker_settings_load_in_dev_mode_and_with_secrets_of_its_own(tmp_path):
    import subprocess

    probe = ("from voicebot_core.settings import load_settings\n"
             "from voicebot_worker.settings import WorkerSettings\n"
             "print(load_settings(WorkerSettings).dev_mode)\n")
    for variables, dev_mode in (({"VOICEBOT_DEV_MODE": "true"}, "True"),
                                ({name: GOOD_SECRETS[name] for name in WORKER_SECRETS}, "False")):
        result = subprocess.run([sys.executable, "-c", probe], env=minimal_env(tmp_path, **variables), cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == dev_mode
