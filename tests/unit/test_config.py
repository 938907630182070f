import json
from pathlib import Path

import pytest

from generic_worker.config import (
    COMPAT_KEYS,
    Config,
    ConfigInvalidError,
    ConfigLoadError,
    config_from_mapping,
    config_keys,
    load_config,
)
from generic_worker.config.schema import default_tasks_dir

MINIMAL = {
    "rootURL": "https://tc.example.com",
    "accessToken": "sekrit-token",
    "clientId": "worker/client",
    "workerId": "w1",
    "workerType": "wt",
    "publicIP": "12.34.56.78",
    "subdomain": "",
}

SEED_DEFAULTS = {
    "cachesDir": "caches",
    "checkForNewDeploymentEverySecs": 1800,
    "cleanUpTaskDirs": True,
    "disableReboots": False,
    "downloadsDir": "downloads",
    "idleTimeoutSecs": 0,
    "livelogExecutable": "livelog",
    "livelogGETPort": 60023,
    "livelogPUTPort": 60022,
    "numberOfTasksToRun": 0,
    "provisionerId": "test-provisioner",
    "requiredDiskSpaceMegabytes": 10240,
    "runTasksAsCurrentUser": True,
    "shutdownMachineOnIdle": False,
    "shutdownMachineOnInternalError": False,
    "subdomain": "taskcluster-worker.net",
    "taskclusterProxyExecutable": "taskcluster-proxy",
    "taskclusterProxyPort": 80,
    "workerGroup": "test-worker-group",
    "workerTypeMetadata": {},
    "d2gConfig": {},
    # keys new since the seed
    "rootURL": "",
    "enableChainOfTrust": True,
    "enableTaskclusterProxy": True,
    "enableLiveLog": True,
    "enableMounts": True,
    "enableOSGroups": True,
    "enableResourceMonitor": True,
    "enableRunTaskAsCurrentUser": True,
    "maxTaskRunTime": 86400,
    "createObjectArtifacts": False,
    "workerLocation": "",
    "capacity": 1,
    "shutdownCommand": "shutdown now",
    "rebootCommand": "shutdown -r now",
    "metadataBaseURL": "http://169.254.169.254",
    "taskStatusPollIntervalSecs": 10,
    "allowedHighMemoryDurationSecs": 5,
    "maxMemoryUsagePercent": 90,
    "minAvailableMemoryBytes": 524288000,
    "disableOOMProtection": False,
    "queueBaseURL": "",
    "authBaseURL": "",
    "purgeCacheBaseURL": "",
    "provisionerBaseURL": "",
    "accessToken": "",
    "certificate": "",
    "livelogSecret": "",
    "signingKeyLocation": "",
    "ed25519SigningKeyLocation": "",
    "logFormat": "text",
    "metricsPort": 0,
    "metricsAddress": "127.0.0.1",
}


def by_key():
    return {k.key: k for k in config_keys()}


@pytest.mark.parametrize("key,default", sorted(SEED_DEFAULTS.items()))
def test_default_of_each_key(key, default):
    assert by_key()[key].default == default


def test_every_key_has_a_default_test_or_is_free_form():
    untested = set(by_key()) - set(SEED_DEFAULTS)
    assert untested == {
        "availabilityZone",
        "clientId",
        "deploymentId",
        "instanceId",
        "instanceType",
        "livelogCertificate",
        "livelogKey",
        "privateIP",
        "publicIP",
        "region",
        "runAfterUserCreation",
        "sentryProject",
        "tasksDir",
        "workerId",
        "workerType",
    }
    for key in untested - {"tasksDir"}:
        assert by_key()[key].default == ""


def test_tasks_dir_default_is_parent_of_home(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_tasks_dir() == "/home"
    monkeypatch.delenv("HOME")
    assert default_tasks_dir() == "."


def test_minimal_config_loads():
    config, warnings = config_from_mapping(MINIMAL)
    assert config.worker_type == "wt"
    assert config.task_queue_id == "test-provisioner/wt"
    assert warnings == []


def test_config_is_frozen():
    config, _ = config_from_mapping(MINIMAL)
    with pytest.raises(AttributeError):
        config.worker_id = "other"  # type: ignore[misc]


def test_repr_masks_secrets():
    config, _ = config_from_mapping(
        {**MINIMAL, "certificate": '{"seed":"certsecret"}', "livelogSecret": "lls3cret", "subdomain": "x.y"}
    )
    text = repr(config)
    for secret in ("sekrit-token", "certsecret", "lls3cret"):
        assert secret not in text
    assert "accessToken='*************'" in text
    assert "clientId='worker/client'" in text


def test_keys_match_case_insensitively():
    config, _ = config_from_mapping({**MINIMAL, "instanceID": "i-123", "WORKERGROUP": "grp"})
    assert config.instance_id == "i-123"
    assert config.worker_group == "grp"


def test_unknown_key():
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping({**MINIMAL, "banana": 1})
    assert e.value.problems == ['"banana": unknown config key']


@pytest.mark.parametrize(
    "key,value,problem",
    [
        ("idleTimeoutSecs", "10", '"idleTimeoutSecs": must be a whole number, got string'),
        ("idleTimeoutSecs", -1, '"idleTimeoutSecs": must not be negative, got -1'),
        ("idleTimeoutSecs", 1.5, '"idleTimeoutSecs": must be a whole number, got number'),
        ("shutdownMachineOnIdle", "true", '"shutdownMachineOnIdle": must be true or false, got string'),
        ("cleanUpTaskDirs", 1, '"cleanUpTaskDirs": must be true or false, got number'),
        ("workerTypeMetadata", [], '"workerTypeMetadata": must be a JSON object, got array'),
        ("publicIP", "257.1.2.1", '"publicIP": invalid IP address: 257.1.2.1'),
        ("livelogGETPort", 70000, '"livelogGETPort": must be a port number (0-65535), got 70000'),
        ("rootURL", "ftp://x", "\"rootURL\": must be an http(s) URL, got 'ftp://x'"),
        (
            "shutdownCommand",
            "shutdown 'now",
            '"shutdownCommand": cannot be split into a command line: No closing quotation',
        ),
        (
            "workerId",
            "has space",
            "\"workerId\": must be 1-38 characters of a-z A-Z 0-9 _ -, got 'has space'",
        ),
        ("capacity", 0, '"capacity": must be at least 1'),
        ("maxMemoryUsagePercent", 101, '"maxMemoryUsagePercent": must be at most 100'),
        ("clientId", None, '"clientId": must be a string, got null'),
    ],
)
def test_each_kind_of_error(key, value, problem):
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping({**MINIMAL, key: value})
    assert problem in e.value.problems


def test_several_errors_reported_at_once():
    raw = {"banana": True, "idleTimeoutSecs": "x", "publicIP": "nope", "workerType": ""}
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping(raw)
    problems = e.value.problems
    assert '"banana": unknown config key' in problems
    assert '"idleTimeoutSecs": must be a whole number, got string' in problems
    assert '"publicIP": invalid IP address: nope' in problems
    assert '"workerType": is required but not set' in problems
    assert '"accessToken": is required but not set' in problems
    assert '"rootURL": is required (or the legacy "queueBaseURL") but not set' in problems
    assert len(problems) >= 6
    assert str(e.value).startswith("Invalid config file '<config>':\n  - ")


def test_duplicate_key_in_different_case():
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping({**MINIMAL, "workerid": "again"})
    assert '"workerid": given twice (also as "workerId")' in e.value.problems


def test_live_log_requirements():
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping({k: v for k, v in MINIMAL.items() if k not in ("publicIP", "subdomain")})
    assert any(p.startswith('"publicIP": required for live log URLs') for p in e.value.problems)
    assert any(p.startswith('"livelogSecret": required when "subdomain" is set') for p in e.value.problems)
    config, _ = config_from_mapping(
        {k: v for k, v in MINIMAL.items() if k not in ("publicIP", "subdomain")} | {"enableLiveLog": False}
    )
    assert not config.enable_live_log


def test_livelog_https_needs_both_files():
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping({**MINIMAL, "livelogCertificate": "/c.pem"})
    assert e.value.problems == ['"livelogCertificate" and "livelogKey": set both (HTTPS) or neither (HTTP)']


def test_signing_key_only_required_for_multiuser_chain_of_trust():
    config_from_mapping(MINIMAL)  # insecure: never needs a key
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping({**MINIMAL, "runTasksAsCurrentUser": False})
    assert e.value.problems[0].startswith('"signingKeyLocation": required by the multiuser engine')
    config_from_mapping({**MINIMAL, "runTasksAsCurrentUser": False, "ed25519SigningKeyLocation": "/k"})
    config_from_mapping({**MINIMAL, "runTasksAsCurrentUser": False, "enableChainOfTrust": False})


def test_root_url_gives_every_service():
    config, _ = config_from_mapping(MINIMAL)
    assert config.service_base_url("queue") == "https://tc.example.com/api/queue/v1"
    assert config.service_base_url("auth") == "https://tc.example.com/api/auth/v1"
    assert config.service_base_url("purge-cache") == "https://tc.example.com/api/purge-cache/v1"


def test_legacy_base_urls_override_root_url():
    raw = {
        **MINIMAL,
        "queueBaseURL": "https://queue.example.net/v1/",
        "authBaseURL": "https://auth.example.net/v1",
        "purgeCacheBaseURL": "https://purge.example.net/v1",
    }
    config, _ = config_from_mapping(raw)
    assert config.service_base_url("queue") == "https://queue.example.net/v1"
    assert config.service_base_url("auth") == "https://auth.example.net/v1"
    assert config.service_base_url("purge-cache") == "https://purge.example.net/v1"
    assert config.service_base_url("index") == "https://tc.example.com/api/index/v1"


def test_legacy_queue_base_url_alone_is_enough():
    raw = {k: v for k, v in MINIMAL.items() if k != "rootURL"} | {"queueBaseURL": "https://q.example.net/v1"}
    config, _ = config_from_mapping(raw)
    assert config.root_url == ""
    assert config.service_base_url("queue") == "https://q.example.net/v1"


def test_ignored_and_compat_keys_warn():
    config, warnings = config_from_mapping(
        {**MINIMAL, "livelogExecutable": "/usr/bin/livelog", "headlessTasks": True}
    )
    assert config.livelog_executable == "/usr/bin/livelog"
    assert 'config key "livelogExecutable": Ignored: the live log is built in' in warnings
    assert 'config key "headlessTasks" of upstream generic-worker has no effect here' in warnings
    with pytest.raises(ConfigInvalidError) as e:
        config_from_mapping({**MINIMAL, "headlessTasks": "yes"})
    assert e.value.problems == ['"headlessTasks": must be true or false, got string']
    assert "livelogPortBase" in COMPAT_KEYS


def test_load_errors(tmp_path: Path):
    with pytest.raises(ConfigLoadError, match="No such file or directory"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ConfigLoadError, match="invalid JSON at line 1"):
        load_config(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ConfigLoadError, match="expected a JSON object, got array"):
        load_config(arr)


def test_load_file_is_never_rewritten(tmp_path: Path):
    path = tmp_path / "c.json"
    text = json.dumps(MINIMAL)
    path.write_text(text)
    config, _ = load_config(path)
    assert isinstance(config, Config)
    assert path.read_text() == text
