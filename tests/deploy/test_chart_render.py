"""What the rendered chart must contain for calls to survive scaling and upgrades."""

from __future__ import annotations

import json
import shutil

import yaml

from .conftest import CHART, env_of, find

PRODUCTION = str(CHART / "ci" / "production-values.yaml")
EXTERNAL = str(CHART / "ci" / "external-redis-values.yaml")
MINIMAL = str(CHART / "ci" / "minimal-values.yaml")
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


def pod_specs(docs):
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in WORKLOAD_KINDS]


def test_every_container_is_locked_down_and_sized(render):
    docs = render("-f", PRODUCTION)
    specs = pod_specs(docs)
    assert {name for name, _ in specs} >= {
        "voicebot-gateway", "voicebot-bot-worker", "voicebot-dialer-api", "voicebot-dialer-worker",
        "voicebot-llm-server", "voicebot-redis"}
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            assert "livenessProbe" in container or container["name"] == "fetch-models", name


def test_worker_advertises_its_pod_address_and_drains_in_prestop(render):
    docs = render()
    pod = find(docs, "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    names = [e["name"] for e in container["env"]]
    assert env["VOICEBOT_WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # $(POD_IP) is expanded only when POD_IP is defined earlier in the list.
    assert names.index("POD_IP") < names.index("VOICEBOT_WORKER_ADVERTISE_URL")
    assert env["VOICEBOT_WORKER_ADVERTISE_URL"]["value"] == "ws://$(POD_IP):8090"
    assert env["VOICEBOT_WORKER_CAPACITY"]["value"] == "16"
    assert int(env["VOICEBOT_WORKER_DRAIN_TIMEOUT_S"]["value"]) <= pod["terminationGracePeriodSeconds"]
    assert env["VOICEBOT_DEEPGRAM_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True
    hook = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill -TERM 1" in hook and "kill -0 1" in hook
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/models", "/data/calls", "/etc/voicebot/profiles"} <= mounts


def test_gateway_waits_for_the_ingress_then_drains_streams(render):
    pod = find(render(), "Deployment", "voicebot-gateway")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert env["VOICEBOT_GATEWAY_DRAIN_TIMEOUT_S"]["value"] == "3600"
    assert pod["terminationGracePeriodSeconds"] >= 10 + 3600
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_hpa_scales_on_active_calls_per_pod_and_scales_down_slowly(render):
    docs = render("-f", PRODUCTION)
    hpa = find(docs, "HorizontalPodAutoscaler", "voicebot-bot-worker")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "voicebot_active_calls"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "6"}
    assert hpa["spec"]["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    worker = find(docs, "Deployment", "voicebot-bot-worker")
    assert "replicas" not in worker["spec"], "the HPA owns the replica count"
    assert find(docs, "PodDisruptionBudget", "voicebot-bot-worker")["spec"]["maxUnavailable"] == 1


def test_keda_scaledobject_queries_this_releases_workers(render):
    docs = render("-f", EXTERNAL)
    scaled = find(docs, "ScaledObject", "voicebot-bot-worker")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["query"] == (
        'sum(voicebot_active_calls{namespace="voicebot",service="voicebot-bot-worker"})')
    # targetActiveCallsPerPod unset in that case: 70 % of the default capacity of 16.
    assert trigger["metadata"]["threshold"] == "11.2"
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]


def test_stream_ingress_outlives_the_longest_call(render):
    docs = render()
    stream = find(docs, "Ingress", "voicebot-gateway-stream")
    webhooks = find(docs, "Ingress", "voicebot-gateway")
    notes = stream["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 3600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) > 3600
    assert not any("affinity" in key for key in notes), "no sticky sessions: state lives in Redis"
    assert stream["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/twilio/stream"
    assert int(webhooks["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]) <= 60


def test_bundled_redis_keeps_an_append_only_file_and_needs_the_password(render):
    docs = render("-f", PRODUCTION)
    config = find(docs, "ConfigMap", "voicebot-redis")["data"]["redis.conf"]
    assert "appendonly yes" in config and "maxmemory-policy noeviction" in config
    redis = find(docs, "StatefulSet", "voicebot-redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    gateway_env = env_of(find(docs, "Deployment", "voicebot-gateway")["spec"]["template"]["spec"]["containers"][0])
    assert gateway_env["VOICEBOT_REDIS_URL"]["value"] == (
        "redis://:$(VOICEBOT_REDIS_PASSWORD)@voicebot-redis:6379/0")
    assert gateway_env["VOICEBOT_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "voicebot-production"


def test_chart_made_secret_and_profiles_configmap(render):
    docs = render("-f", MINIMAL)
    secret = find(docs, "Secret", "voicebot-secrets")
    assert set(secret["stringData"]) == {"twilio-auth-token", "stream-ticket-secret", "dialer-api-keys",
                                         "dialer-webhook-secret"}
    profiles = find(docs, "ConfigMap", "voicebot-agent-profiles")["data"]["agent-profiles.yaml"]
    assert yaml.safe_load(profiles)["default_profile"] == "default"
    env = env_of(find(docs, "Deployment", "voicebot-gateway")["spec"]["template"]["spec"]["containers"][0])
    assert env["VOICEBOT_REDIS_URL"]["value"] == "redis://redis.example.internal:6379/0"
    assert env["VOICEBOT_AGENT_PROFILES_PATH"]["value"] == "/etc/voicebot/profiles/agent-profiles.yaml"


def test_every_dashboard_file_becomes_a_labelled_configmap(render):
    docs = render("-f", PRODUCTION)
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert files, "at least one dashboard ships with the chart"
    maps = [d for d in docs if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]
    assert sorted(k for m in maps for k in m["data"]) == files
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        for text in cm["data"].values():
            assert json.loads(text)["panels"]


def test_rule_files_replace_the_builtin_alerts(render, tmp_path):
    chart = tmp_path / "voicebot"
    shutil.copytree(CHART, chart)
    for old in (chart / "rules").glob("*.yaml"):
        old.unlink()
    builtin = find(render("-f", PRODUCTION, chart=chart), "PrometheusRule", "voicebot")
    alerts = {r["alert"] for g in builtin["spec"]["groups"] for r in g["rules"]}
    assert {"VoicebotNoFreeCapacity", "VoicebotWorkerHeartbeatsLost"} <= alerts
    # Rule text with Prometheus templates must pass through helm untouched.
    rule = {"alert": "VoicebotExtra", "expr": "vector(1) > 2", "for": "5m",
            "annotations": {"summary": "{{ $labels.pod }}"}}
    (chart / "rules" / "extra.yaml").write_text(yaml.safe_dump({"groups": [{"name": "extra", "rules": [rule]}]}))
    from_files = find(render("-f", PRODUCTION, chart=chart), "PrometheusRule", "voicebot")
    assert from_files["spec"]["groups"] == [{"name": "extra", "rules": [rule]}]


def test_local_llm_server_gets_weights_but_no_secrets(render):
    docs = render("-f", PRODUCTION)
    llm = find(docs, "Deployment", "voicebot-llm-server")["spec"]["template"]["spec"]["containers"][0]
    args = llm["args"]
    assert args[args.index("--model") + 1] == "/models/qwen2.5-1.5b/model.gguf"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert not [e for e in llm["env"] if "valueFrom" in e], "the LLM server needs no secret"
    worker = find(docs, "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(worker)["VOICEBOT_WORKER_LLM_BASE_URL"]["value"] == "http://voicebot-llm-server:8000/v1"
    without = find(render(), "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]["containers"][0]
    assert "VOICEBOT_WORKER_LLM_BASE_URL" not in env_of(without)


def test_models_init_container_fills_the_emptydir(render):
    docs = render("-f", EXTERNAL)
    pod = find(docs, "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["python", "/app/scripts/fetch_models.py"]
    assert init["args"][:2] == ["--models-dir", "/models"]
    models = next(v for v in pod["volumes"] if v["name"] == "models")
    assert "emptyDir" in models
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "models")
    assert mount["readOnly"] is False


def quantity(value: str) -> float:
    """A Kubernetes quantity as the HPA reads it ("2800m" -> 2.8)."""
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def hpa_target(docs) -> str:
    (metric,) = find(docs, "HorizontalPodAutoscaler", "voicebot-bot-worker")["spec"]["metrics"]
    return metric["pods"]["target"]["averageValue"]


def keda_threshold(docs) -> str:
    (trigger,) = find(docs, "ScaledObject", "voicebot-bot-worker")["spec"]["triggers"]
    return trigger["metadata"]["threshold"]


def test_autoscaler_targets_default_to_70_percent_of_capacity(render):
    hpa, keda = ("--set", "botWorker.autoscaling.enabled=true"), ("--set", "botWorker.keda.enabled=true")
    # Default capacity 16: 11.2 active calls per pod, as a quantity for the HPA and a decimal for KEDA.
    assert hpa_target(render(*hpa)) == "11200m"
    assert keda_threshold(render(*keda)) == "11.2"
    for capacity, quantity_text, decimal in ((3, "2100m", "2.1"), (10, "7", "7"), (1, "700m", "0.7")):
        cap = ("--set", f"botWorker.capacity={capacity}")
        assert hpa_target(render(*hpa, *cap)) == quantity_text, capacity
        assert keda_threshold(render(*keda, *cap)) == decimal, capacity
    # An explicit target below capacity is kept (production case: 6 of capacity 8).
    production = render("-f", PRODUCTION)
    worker = find(production, "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(worker)["VOICEBOT_WORKER_CAPACITY"]["value"] == "8"
    assert hpa_target(production) == "6"
    assert keda_threshold(render(*keda, "--set-json", "botWorker.keda.targetActiveCallsPerPod=2.5")) == "2.5"


def test_every_rendered_autoscaler_targets_below_capacity(render):
    for args in (("-f", PRODUCTION), ("-f", EXTERNAL), ("--set", "botWorker.autoscaling.enabled=true"),
                 ("--set", "botWorker.keda.enabled=true", "--set", "botWorker.capacity=2")):
        docs = render(*args)
        worker = find(docs, "Deployment", "voicebot-bot-worker")["spec"]["template"]["spec"]["containers"][0]
        capacity = int(env_of(worker)["VOICEBOT_WORKER_CAPACITY"]["value"])
        targets = [quantity(hpa_target(docs))] if any(d["kind"] == "HorizontalPodAutoscaler" for d in docs) else []
        targets += [float(keda_threshold(docs))] if any(d["kind"] == "ScaledObject" for d in docs) else []
        assert len(targets) == 1, args
        assert 0 < targets[0] < capacity, (args, targets, capacity)


def test_autoscaler_target_at_or_above_capacity_is_refused(helm):
    cases = [
        ("botWorker.autoscaling", "4", "4"),    # equal to the default capacity
        ("botWorker.keda", "6", "4"),           # the old default, above the default capacity
        ("botWorker.autoscaling", "8.5", "8"),
        ("botWorker.keda", "8", "8"),
    ]
    for key, target, capacity in cases:
        result = helm("--set", f"{key}.enabled=true", "--set-json", f"{key}.targetActiveCallsPerPod={target}",
                      "--set", f"botWorker.capacity={capacity}")
        assert result.returncode != 0, (key, target)
        assert (f"{key}.targetActiveCallsPerPod ({target}) must be below botWorker.capacity ({capacity}): the "
                "average of active calls per pod never exceeds the capacity, so the autoscaler would never "
                "add a pod") in result.stderr, result.stderr
    # The guard applies to the enabled autoscaler only, and just below capacity renders.
    assert helm("--set-json", "botWorker.keda.targetActiveCallsPerPod=6").returncode == 0
    assert helm("--set", "botWorker.autoscaling.enabled=true",
                "--set-json", "botWorker.autoscaling.targetActiveCallsPerPod=3.9").returncode == 0


def test_pod_templates_carry_no_chart_version(render, tmp_path):
    cases = [(), ("-f", PRODUCTION), ("-f", EXTERNAL), ("-f", MINIMAL)]
    for args in cases:
        for doc in (d for d in render(*args) if d["kind"] in WORKLOAD_KINDS):
            name = doc["metadata"]["name"]
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert "helm.sh/chart" not in pod_labels, name
            assert "app.kubernetes.io/version" not in pod_labels, name
            assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), name
            # The object's own metadata keeps the chart and version labels.
            assert doc["metadata"]["labels"]["helm.sh/chart"] == "voicebot-0.1.0", name
    # A chart-only release (new chart version and appVersion, images pinned) leaves every pod
    # template as it was, so `helm upgrade` rolls no pod (a bot-worker drain takes up to an hour).
    chart = tmp_path / "voicebot"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    pinned = ["--set", "global.imageRegistry=registry.example.com"] + [
        f"--set={c}.image.tag=0.1.0" for c in ("gateway", "botWorker", "dialerApi", "dialerWorker", "llmServer")]
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": "9.9.9", "appVersion": "9.9.9"}))
    stable = {"voicebot-gateway", "voicebot-bot-worker", "voicebot-dialer-api", "voicebot-dialer-worker",
              "voicebot-llm-server", "voicebot-redis"}
    for args in cases:
        before = {d["metadata"]["name"]: d["spec"]["template"]
                  for d in render(*args, *pinned) if d["metadata"]["name"] in stable and d["kind"] in WORKLOAD_KINDS}
        after_docs = render(*args, *pinned, chart=chart)
        after = {d["metadata"]["name"]: d["spec"]["template"]
                 for d in after_docs if d["metadata"]["name"] in stable and d["kind"] in WORKLOAD_KINDS}
        assert before == after, args
        assert "voicebot-bot-worker" in after
        assert find(after_docs, "Deployment", "voicebot-bot-worker")["metadata"]["labels"][
            "helm.sh/chart"] == "voicebot-9.9.9"


def test_config_checksums_follow_the_data(render):
    def notes(*args):
        docs = render("-f", PRODUCTION, *args)
        return (find(docs, "Deployment", "voicebot-bot-worker")["spec"]["template"]["metadata"]["annotations"],
                find(docs, "StatefulSet", "voicebot-redis")["spec"]["template"]["metadata"]["annotations"])
    worker, redis = notes()
    changed_worker, _ = notes("--set", "agentProfiles.profiles=default_profile: other")
    _, changed_redis = notes("--set", "redis.bundled.extraConfig=maxclients 100")
    assert changed_worker["checksum/agent-profiles"] != worker["checksum/agent-profiles"]
    assert changed_redis["checksum/config"] != redis["checksum/config"]


def test_priority_class_name_is_rendered_only_when_set(render):
    for name, spec in pod_specs(render("-f", PRODUCTION)):
        assert "priorityClassName" not in spec, name
    docs = render("-f", PRODUCTION, "--set", "botWorker.priorityClassName=voicebot-calls",
                  "--set", "gateway.priorityClassName=voicebot-gateway",
                  "--set", "llmServer.priorityClassName=voicebot-llm")
    specs = dict(pod_specs(docs))
    assert specs["voicebot-bot-worker"]["priorityClassName"] == "voicebot-calls"
    assert specs["voicebot-gateway"]["priorityClassName"] == "voicebot-gateway"
    assert specs["voicebot-llm-server"]["priorityClassName"] == "voicebot-llm"
    assert "priorityClassName" not in specs["voicebot-dialer-api"]


def test_helm_test_hook_checks_the_gateway_with_its_own_image(render):
    docs = render("-f", MINIMAL, "--set", "gateway.image.pullPolicy=Always")
    pod = find(docs, "Pod", "voicebot-test-gateway")
    notes = pod["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "test"
    assert set(notes["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    # checkov skips on the pod itself, each with its reason after "=".
    for key, value in notes.items():
        if key.startswith("checkov.io/skip"):
            check, _, reason = value.partition("=")
            assert check and len(reason) > 20, (key, value)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    gateway = find(docs, "Deployment", "voicebot-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == gateway["image"] == "voicebot/gateway:0.1.0"
    assert container["imagePullPolicy"] == gateway["imagePullPolicy"] == "Always"
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["runAsUser"] == 10001
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["command"][:4] == ["python", "-I", "-B", "-c"]
    env = env_of(container)
    assert env["VOICEBOT_TEST_GATEWAY_URL"]["value"] == "http://voicebot-gateway:8080"
    # Same token and public URL the gateway signs and checks with.
    assert env["VOICEBOT_TWILIO_AUTH_TOKEN"]["valueFrom"] == env_of(gateway)["VOICEBOT_TWILIO_AUTH_TOKEN"]["valueFrom"]
    assert env["VOICEBOT_TWILIO_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "voicebot-secrets", "key": "twilio-auth-token"}
    assert env["VOICEBOT_GATEWAY_PUBLIC_BASE_URL"]["value"] == (
        env_of(gateway)["VOICEBOT_GATEWAY_PUBLIC_BASE_URL"]["value"])
    # The gateway's NetworkPolicy lets the test pod in.
    policy = find(render(), "NetworkPolicy", "voicebot-gateway")
    peers = [p for rule in policy["spec"]["ingress"] for p in rule["from"]]
    assert {"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "voicebot", "app.kubernetes.io/instance": "voicebot",
        "app.kubernetes.io/component": "helm-test"}}} in peers
    assert find(render(), "Pod", "voicebot-test-gateway")["metadata"]["labels"][
        "app.kubernetes.io/component"] == "helm-test"


def test_transfer_sip_hosts_reach_every_service(render):
    for doc in render("-f", PRODUCTION, "--set", "agentProfiles.transferSipHosts=pbx.example.org"):
        if doc["kind"] != "Deployment" or "llm-server" in doc["metadata"]["name"]:
            continue
        env = {e["name"]: e.get("value") for e in doc["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        assert env["VOICEBOT_TRANSFER_SIP_HOSTS"] == "pbx.example.org", doc["metadata"]["name"]


def test_the_console_is_served_unless_the_chart_turns_it_off(render):
    def console_env(*args: str) -> str:
        api = find(render(*args), "Deployment", "voicebot-dialer-api")
        return env_of(api["spec"]["template"]["spec"]["containers"][0])["VOICEBOT_DIALER_CONSOLE_ENABLED"]["value"]

    assert console_env() == "true"
    assert console_env("--set", "dialerApi.console.enabled=false") == "false"
