"""Call recordings and transcripts in the chart: one set of storage settings for the bot-worker and the
dialer (API, Celery worker, retention job), the filesystem backend's /data/calls volume, the S3 backend's
keys from the Secret, the retention CronJob; and the dialer API's keys read from a mounted Secret file."""

from __future__ import annotations

import subprocess

import pytest

from voicebot_dialer.settings import DialerSettings
from voicebot_worker.settings import WorkerSettings

from .conftest import CHART, env_of, find

MINIMAL = str(CHART / "ci" / "minimal-values.yaml")
S3 = ["--set", "storage.backend=s3", "--set", "storage.s3.endpoint=minio.storage:9000",
      "--set", "storage.s3.bucket=voicebot-calls"]
S3_KEYS = ["--set", "secrets.storageS3AccessKey=acc3ss-k3y", "--set", "secrets.storageS3SecretKey=s3cr3t-k3y"]
CLAIM = ["--set", "storage.filesystem.existingClaim=voicebot-calls-rwx"]
DEPLOYMENTS = ("voicebot-bot-worker", "voicebot-dialer-api", "voicebot-dialer-worker")
CRONJOB = "voicebot-dialer-retention"
STORAGE_VARIABLES = ("VOICEBOT_STORAGE_BACKEND", "VOICEBOT_CALL_DATA_RETENTION_DAYS", "VOICEBOT_STORAGE_DIR",
                     "VOICEBOT_STORAGE_S3_ENDPOINT", "VOICEBOT_STORAGE_S3_SECURE", "VOICEBOT_STORAGE_S3_REGION",
                     "VOICEBOT_STORAGE_S3_BUCKET", "VOICEBOT_STORAGE_S3_PREFIX", "VOICEBOT_STORAGE_S3_ACCESS_KEY",
                     "VOICEBOT_STORAGE_S3_SECRET_KEY")


def cronjob_pod(docs):
    return find(docs, "CronJob", CRONJOB)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def pods(docs, with_job=True):
    """Pod spec of every workload that stores or reads call data."""
    found = {name: find(docs, "Deployment", name)["spec"]["template"]["spec"] for name in DEPLOYMENTS}
    if with_job:
        found[CRONJOB] = cronjob_pod(docs)
    return found


def mounts_of(container):
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def volumes_of(pod):
    return {v["name"]: v for v in pod.get("volumes", [])}


def storage_env(container):
    env = env_of(container)
    return {name: env[name] for name in STORAGE_VARIABLES if name in env}


# --- backends -----------------------------------------------------------------------------------------
def test_filesystem_backend_mounts_the_shared_claim_at_data_calls(render):
    docs = render(*CLAIM)
    for name, pod in pods(docs).items():
        container = pod["containers"][0]
        mount = mounts_of(container)["/data/calls"]
        assert not mount.get("readOnly"), name
        assert volumes_of(pod)[mount["name"]]["persistentVolumeClaim"] == {"claimName": "voicebot-calls-rwx"}, name
        env = storage_env(container)
        assert {k: v["value"] for k, v in env.items()} == {
            "VOICEBOT_STORAGE_BACKEND": "filesystem", "VOICEBOT_CALL_DATA_RETENTION_DAYS": "30",
            "VOICEBOT_STORAGE_DIR": "/data/calls"}, name


def test_filesystem_backend_without_a_claim_is_an_emptydir_per_pod(render):
    docs = render("--set", "storage.filesystem.sizeLimit=1Gi")
    for name, pod in pods(docs).items():
        mount = mounts_of(pod["containers"][0])["/data/calls"]
        assert volumes_of(pod)[mount["name"]]["emptyDir"] == {"sizeLimit": "1Gi"}, name


def test_s3_backend_sets_the_endpoint_and_takes_the_keys_from_the_secret(render):
    docs = render("-f", MINIMAL, *S3, *S3_KEYS, "--set", "storage.s3.secure=false",
                  "--set", "storage.s3.region=eu-central-1", "--set", "storage.s3.prefix=prod/",
                  "--set", "storage.retentionDays=14")
    secret = find(docs, "Secret", "voicebot-secrets")["stringData"]
    assert secret["storage-s3-access-key"] == "acc3ss-k3y" and secret["storage-s3-secret-key"] == "s3cr3t-k3y"
    for name, pod in pods(docs).items():
        container = pod["containers"][0]
        env = storage_env(container)
        assert {k: v["value"] for k, v in env.items() if "value" in v} == {
            "VOICEBOT_STORAGE_BACKEND": "s3", "VOICEBOT_CALL_DATA_RETENTION_DAYS": "14",
            "VOICEBOT_STORAGE_S3_ENDPOINT": "minio.storage:9000", "VOICEBOT_STORAGE_S3_SECURE": "false",
            "VOICEBOT_STORAGE_S3_REGION": "eu-central-1", "VOICEBOT_STORAGE_S3_BUCKET": "voicebot-calls",
            "VOICEBOT_STORAGE_S3_PREFIX": "prod/"}, name
        for variable, key in (("VOICEBOT_STORAGE_S3_ACCESS_KEY", "storage-s3-access-key"),
                              ("VOICEBOT_STORAGE_S3_SECRET_KEY", "storage-s3-secret-key")):
            # required references: a Secret without the key stops the pod, never an S3 client without keys
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "voicebot-secrets", "key": key}, name
        assert "/data/calls" not in mounts_of(container), name
        assert "call-data" not in volumes_of(pod), name


@pytest.mark.parametrize("args", [(), (*S3, *S3_KEYS)], ids=["filesystem", "s3"])
def test_the_services_load_the_storage_settings_the_chart_gives_them(render, args):
    """Every variable the chart sets is a setting of the process that gets it, and the settings load
    outside development mode (an S3 backend missing a setting would refuse to start)."""
    docs = render("-f", MINIMAL, *CLAIM, *args)
    secret = find(docs, "Secret", "voicebot-secrets")["stringData"]
    services = {"voicebot-bot-worker": WorkerSettings, "voicebot-dialer-api": DialerSettings,
                "voicebot-dialer-worker": DialerSettings, CRONJOB: DialerSettings}
    for name, pod in pods(docs).items():
        settings = services[name]
        values = {}
        for item in pod["containers"][0]["env"]:
            field = item["name"].removeprefix("VOICEBOT_").lower()
            if not item["name"].startswith("VOICEBOT_"):
                continue
            assert field in settings.model_fields, (name, item["name"])
            if "value" in item:
                values[field] = item["value"]
            elif item["valueFrom"].get("secretKeyRef", {}).get("key") in secret:  # not optional provider keys
                values[field] = secret[item["valueFrom"]["secretKeyRef"]["key"]]
        loaded = settings(dev_mode=False, **values)
        assert loaded.storage_backend == ("s3" if args else "filesystem"), name
        assert loaded.call_data_retention_days == 30, name
        if args:
            assert loaded.storage_s3_secret_key.get_secret_value() == "s3cr3t-k3y", name
        else:
            assert loaded.storage_dir == "/data/calls", name
    assert WorkerSettings(dev_mode=False, **{
        "twilio_auth_token": secret["twilio-auth-token"], "stream_ticket_secret": secret["stream-ticket-secret"],
        "worker_recording_segment_s": env_of(pods(docs)["voicebot-bot-worker"]["containers"][0])[
            "VOICEBOT_WORKER_RECORDING_SEGMENT_S"]["value"]}).worker_recording_segment_s == 5


def test_s3_defaults_leave_region_and_prefix_unset_and_use_https(render):
    env = storage_env(find(render(*S3), "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]
                      ["containers"][0])
    assert env["VOICEBOT_STORAGE_S3_SECURE"]["value"] == "true"
    assert "VOICEBOT_STORAGE_S3_REGION" not in env and "VOICEBOT_STORAGE_S3_PREFIX" not in env


def test_s3_backend_with_an_existing_secret_references_its_keys(render):
    docs = render(*S3, "--set", "secrets.existingSecret=my-voicebot")
    assert not [d for d in docs if d["kind"] == "Secret"]
    for name, pod in pods(docs).items():
        ref = env_of(pod["containers"][0])["VOICEBOT_STORAGE_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "my-voicebot", "key": "storage-s3-secret-key"}, name


@pytest.mark.parametrize(("drop", "message"), [
    ("storage.s3.bucket", "storage.s3.bucket is required when storage.backend=s3"),
    ("storage.s3.endpoint", "storage.s3.endpoint is required when storage.backend=s3"),
])
def test_s3_backend_without_bucket_or_endpoint_fails_to_render(helm, drop, message):
    result = helm(*S3, "--set", f"{drop}=")
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize(("drop", "message"), [
    ("secrets.storageS3AccessKey", "secrets.storageS3AccessKey is required when secrets.create=true and "
                                   "storage.backend=s3"),
    ("secrets.storageS3SecretKey", "secrets.storageS3SecretKey is required when secrets.create=true and "
                                   "storage.backend=s3"),
])
def test_chart_made_secret_requires_the_s3_keys_with_the_s3_backend(helm, drop, message):
    result = helm("-f", MINIMAL, *S3, *S3_KEYS, "--set", f"{drop}=")
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_s3_endpoint_is_host_and_port_without_a_scheme(helm):
    result = helm(*S3, "--set", "storage.s3.endpoint=https://minio.storage:9000")
    assert result.returncode != 0 and "/storage/s3/endpoint" in result.stderr, result.stderr


def test_bot_worker_stores_recordings_in_segments_and_has_no_recordings_dir(render):
    docs = render("--set", "botWorker.recordingSegmentSeconds=10")
    env = env_of(find(docs, "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]["containers"][0])
    assert env["VOICEBOT_WORKER_RECORDING_SEGMENT_S"]["value"] == "10"
    for doc in docs:
        assert "VOICEBOT_WORKER_RECORDINGS_DIR" not in str(doc), doc["metadata"]["name"]
        assert "/data/recordings" not in str(doc), doc["metadata"]["name"]


def test_the_removed_recordings_volume_value_is_refused(helm):
    result = helm("--set", "botWorker.recordings.existingClaim=old-claim")
    assert result.returncode != 0 and "recordings" in result.stderr, result.stderr


# --- the retention job --------------------------------------------------------------------------------
def test_retention_cronjob_runs_the_dialer_retention_module_like_the_dialer_api(render):
    docs = render("-f", MINIMAL, *CLAIM, "--set", "dialerApi.image.pullPolicy=Always")
    cronjob = find(docs, "CronJob", CRONJOB)
    assert cronjob["spec"]["schedule"] == "17 3 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/component"] == "dialer-retention"
    pod_labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/component"] == "dialer-retention"
    assert "helm.sh/chart" not in pod_labels and "app.kubernetes.io/version" not in pod_labels
    pod = cronjob_pod(docs)
    api_pod = find(docs, "Deployment", "voicebot-dialer-api")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    api = api_pod["containers"][0]
    assert container["command"] == ["python", "-m", "voicebot_dialer.retention"]
    assert container["image"] == api["image"] == "voicebot/dialer-api:0.1.0"
    assert container["imagePullPolicy"] == api["imagePullPolicy"] == "Always"
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert pod["securityContext"] == api_pod["securityContext"]
    assert container["securityContext"] == api["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # The dialer settings refuse public default secrets outside development mode: the job gets the
    # API's secrets and Redis settings, by the same references, but not the API keys.
    env, api_env = env_of(container), env_of(api)
    for name in ("VOICEBOT_REDIS_URL", "VOICEBOT_REDIS_PREFIX", "VOICEBOT_TWILIO_AUTH_TOKEN",
                 "VOICEBOT_STREAM_TICKET_SECRET", "VOICEBOT_DIALER_WEBHOOK_SECRET", "VOICEBOT_GATEWAY_PUBLIC_BASE_URL"):
        assert env[name] == api_env[name], name
    assert not {"VOICEBOT_DIALER_API_KEYS", "VOICEBOT_DIALER_API_KEYS_FILE"} & set(env)
    assert storage_env(container) == storage_env(api)
    assert "/tmp" in mounts_of(container)


def test_retention_cronjob_schedule_and_switches(render):
    assert find(render(), "CronJob", CRONJOB)["spec"]["schedule"] == "17 3 * * *"  # on by default
    docs = render(*S3, "--set", "storage.retentionJob.schedule=5 1 * * 0")
    assert find(docs, "CronJob", CRONJOB)["spec"]["schedule"] == "5 1 * * 0"
    assert not [d for d in render(*S3, "--set", "storage.retentionJob.enabled=false") if d["kind"] == "CronJob"]
    assert not [d for d in render(*CLAIM, "--set", "dialerApi.enabled=false") if d["kind"] == "CronJob"]


def test_bundled_redis_admits_the_retention_job(render):
    docs = render(*CLAIM, "--set", "redis.bundled.enabled=true")
    policy = find(docs, "NetworkPolicy", "voicebot-redis")
    (peer,) = policy["spec"]["ingress"][0]["from"]
    components = next(e["values"] for e in peer["podSelector"]["matchExpressions"]
                      if e["key"] == "app.kubernetes.io/component")
    assert "dialer-retention" in components


# --- dialer API keys from a file ----------------------------------------------------------------------
@pytest.mark.parametrize(("args", "secret_name"), [
    ((), "voicebot-secrets"),
    (("--set", "secrets.existingSecret=my-voicebot"), "my-voicebot"),
    (("-f", MINIMAL), "voicebot-secrets"),
])
def test_dialer_api_reads_its_keys_from_the_mounted_secret_file(render, args, secret_name):
    docs = render(*args)
    pod = find(docs, "Deployment", "voicebot-dialer-api")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    assert "VOICEBOT_DIALER_API_KEYS" not in env
    path = env["VOICEBOT_DIALER_API_KEYS_FILE"]["value"]
    directory, _, filename = path.rpartition("/")
    mount = mounts_of(container)[directory]
    # A directory mount, not subPath: the kubelet swaps the file when the Secret changes (key rotation).
    assert mount["readOnly"] is True and "subPath" not in mount
    secret = volumes_of(pod)[mount["name"]]["secret"]
    assert secret["secretName"] == secret_name
    assert secret["items"] == [{"key": "dialer-api-keys", "path": filename}]
    # Readable by the pod's group (fsGroup), not by others.
    assert secret["defaultMode"] & 0o007 == 0 and secret["defaultMode"] & 0o040
    assert pod["securityContext"]["fsGroup"] == container["securityContext"]["runAsGroup"]


def test_only_the_dialer_api_gets_the_api_keys(render):
    for doc in render(*CLAIM):
        text = str(doc)
        if doc["metadata"]["name"] == "voicebot-dialer-api" and doc["kind"] == "Deployment":
            continue
        assert "VOICEBOT_DIALER_API_KEYS" not in text, doc["metadata"]["name"]
        assert "'dialer-api-keys'" not in text, doc["metadata"]["name"]


# --- NOTES.txt ----------------------------------------------------------------------------------------
def notes(tools_bin, *args):
    result = subprocess.run([str(tools_bin / "helm"), "install", "voicebot", str(CHART), "--namespace", "voicebot",
                             "--dry-run=client", *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.partition("NOTES:")[2]


def test_notes_say_an_emptydir_is_for_development_only(tools_bin):
    text = " ".join(notes(tools_bin).split())
    assert "emptyDir per pod: DEVELOPMENT ONLY" in text
    assert "Recordings are lost with the pod, and neither the dialer API nor the retention job can reach them" in text
    assert "VOICEBOT_DIALER_API_KEYS" not in text and "/etc/voicebot/dialer-api-keys/keys" in text
    s3 = " ".join(notes(tools_bin, *S3).split())
    assert "S3 bucket voicebot-calls at minio.storage:9000" in s3 and "DEVELOPMENT ONLY" not in s3
    assert "--from-literal=storage-s3-access-key=... --from-literal=storage-s3-secret-key=..." in s3
    assert "CronJob voicebot-dialer-retention" in s3
