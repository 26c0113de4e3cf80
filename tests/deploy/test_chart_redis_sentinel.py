"""redis.sentinel: every pod that reaches Redis gets the Sentinel variables (the password from a
Secret), and the values the services would parse are the ones they accept."""

from __future__ import annotations

import pytest

from voicebot_core.settings import CommonSettings

from .conftest import CHART, env_of

MINIMAL = str(CHART / "ci" / "minimal-values.yaml")
SENTINEL = ["-f", MINIMAL, "--set", "redis.url=redis://sentinel-managed/2",
            "--set", "redis.sentinel.hosts={redis-node-0.redis-headless:26379,redis-node-1.redis-headless:26379}",
            "--set", "redis.sentinel.masterName=main", "--set", "redis.sentinel.failoverRetrySeconds=20"]
AUTH = ["--set", "redis.sentinel.auth.enabled=true", "--set", "secrets.redisSentinelPassword=s3nt1nel-pw"]


def redis_containers(docs: list[dict]) -> dict[str, dict]:
    found = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            spec = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        else:
            continue
        for container in spec["containers"]:
            if "VOICEBOT_REDIS_URL" in env_of(container):
                found[doc["metadata"]["name"]] = container
    return found


def test_every_redis_client_pod_gets_the_sentinels(render) -> None:
    docs = render(*SENTINEL, *AUTH)
    containers = redis_containers(docs)
    assert {"voicebot-gateway", "voicebot-bot-worker", "voicebot-dialer-api", "voicebot-dialer-worker",
            "voicebot-dialer-retention"} <= set(containers)
    for name, container in containers.items():
        env = env_of(container)
        assert env["VOICEBOT_REDIS_SENTINELS"]["value"] == \
            "redis-node-0.redis-headless:26379,redis-node-1.redis-headless:26379", name
        assert env["VOICEBOT_REDIS_SENTINEL_MASTER"]["value"] == "main", name
        ref = env["VOICEBOT_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "voicebot-secrets", "key": "redis-sentinel-password"}, name
        # what the service makes of these values (the password comes from the Secret below)
        settings = CommonSettings(dev_mode=True, **{k.removeprefix("VOICEBOT_").lower(): v["value"]
                                                     for k, v in env.items()
                                                     if k.startswith("VOICEBOT_REDIS") and "value" in v})
        assert settings.redis_target.master == "main" and settings.redis_target.retry_s == 20
        assert settings.broker_url == ("sentinel://redis-node-0.redis-headless:26379/2;"
                                       "sentinel://redis-node-1.redis-headless:26379/2")
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "voicebot-secrets")
    assert secret["stringData"]["redis-sentinel-password"] == "s3nt1nel-pw"


def test_sentinel_password_from_an_existing_secret(render) -> None:
    docs = render(*SENTINEL, "--set", "redis.sentinel.auth.enabled=true",
                  "--set", "redis.sentinel.auth.existingSecret=redis-ha",
                  "--set", "redis.sentinel.auth.key=sentinel-pw")
    for container in redis_containers(docs).values():
        ref = env_of(container)["VOICEBOT_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "redis-ha", "key": "sentinel-pw"}
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert "sentinel-pw" not in secret["stringData"] and "redis-sentinel-password" not in secret["stringData"]


def test_no_sentinel_variables_without_hosts(render) -> None:
    for container in redis_containers(render("-f", MINIMAL)).values():
        assert not any(name.startswith("VOICEBOT_REDIS_SENTINEL") for name in env_of(container))


@pytest.mark.parametrize(("extra", "message"), [
    (["--set", "redis.sentinel.hosts={sentinel-0}"], "hosts"),
    (["--set", "redis.sentinel.hosts={sentinel-0:26379}", "--set", "redis.bundled.enabled=true",
      "--set", "secrets.redisPassword=abc123"], "exclude each other"),
    (["--set", "redis.sentinel.hosts={sentinel-0:26379}", "--set", "redis.sentinel.auth.enabled=true"],
     "secrets.redisSentinelPassword is required"),
])
def test_bad_sentinel_values_fail_to_render(helm, extra: list[str], message: str) -> None:
    result = helm("-f", MINIMAL, *extra)
    assert result.returncode != 0 and message in result.stderr, result.stderr
