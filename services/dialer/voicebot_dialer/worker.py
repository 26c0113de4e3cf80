"""`python -m voicebot_dialer.worker [celery worker options]`: the dialer's Celery worker, with the
metrics of every pool process on its metrics port (9808).

The worker runs Celery's prefork pool: placing a call is a blocking twilio SDK request, and
separate processes keep one slow or stuck placement from holding the others' interpreter. Task
code runs in the pool's child processes, so their counters (placements, retries, outcomes) live
there, not in the main process that serves /metrics. prometheus_client's multiprocess mode joins
them: every process writes its values to files in PROMETHEUS_MULTIPROC_DIR, and the main process
serves a MultiProcessCollector over that directory (celery_app.py).

This entry point prepares that directory before anything imports prometheus_client, which chooses
its value class at import from the variable: it empties the directory (files of an earlier run,
e.g. a restarted container on the same emptyDir, would otherwise be summed in, and one whose pid
is reused would be read back as this run's values), or creates a private one when the variable is
unset (removed again at exit). `celery -A voicebot_dialer.celery_app worker` still works, but
with the prefork pool and no PROMETHEUS_MULTIPROC_DIR the pool's counters never reach /metrics
(the worker logs a warning).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir(environ: MutableMapping[str, str] = os.environ) -> Path:
    """Empty the multiprocess directory named by PROMETHEUS_MULTIPROC_DIR (made if missing), or
    make a private one and name it there. Must run before prometheus_client is imported."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was prepared")
    configured = environ.get(MULTIPROC_ENV, "")
    if not configured:
        path = Path(tempfile.mkdtemp(prefix="voicebot-dialer-metrics-"))
        environ[MULTIPROC_ENV] = str(path)
        atexit.register(_remove_if_owner, path, os.getpid())
        return path
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():  # the directory itself may be a mount point (the chart's emptyDir)
        if entry.is_file() and entry.suffix == ".db":
            entry.unlink()
    return path


def _remove_if_owner(path: Path, owner: int) -> None:
    # Pool processes leave through os._exit (no atexit), but a forked process could still get here.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    prepare_metrics_dir()
    from voicebot_core.settings import load_settings
    from voicebot_dialer.settings import DialerSettings

    # celery_app loads the settings at import: check them first, to exit with the error and not a traceback
    load_settings(DialerSettings)
    from voicebot_dialer.celery_app import app  # imports prometheus_client: after the directory is ready

    return run_worker(app, ["worker", *(sys.argv[1:] if argv is None else argv)])


def run_worker(app: Celery, argv: list[str]) -> int:
    """`app.start(argv)`, keeping the worker's exit code: `app.start` drops it, so a worker stopped by an
    unrecoverable error would exit 0 and a supervisor would take that for a clean stop."""
    from celery.bin.celery import celery as celery_command

    celery_command.params[0].default = app
    try:
        code = celery_command.main(args=argv, standalone_mode=False)
    finally:
        celery_command.params[0].default = None
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
