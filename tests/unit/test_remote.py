"""Remote management without a broker: the contract's checks, the policy of what a push may
change, and the atomic writes a crash cannot tear."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from vatio.agent.config import RemoteConfig, load_config
from vatio.agent.remote import contract
from vatio.agent.remote.contract import BadRequest
from vatio.agent.remote.policy import Refused, check_push
from vatio.agent.remote.store import ConfigStore, Trial, config_hash, write_atomically

SITE, AGENT = "s", "gw"
LOCAL = """\
site: s
agent_id: gw
state_dir: {state}
buses:
  b: {{type: modbus-tcp, host: 127.0.0.1, port: 5020}}
devices:
  m1: {{bus: b, unit: 1, profile: eastron_sdm120, interval: 1s}}
outputs:
  mqtt: {{url: 'mqtt://127.0.0.1:1883', username: gw, password: local-secret}}
remote: {{enabled: true, config_push: true, sections: [buses, devices, outputs]}}
"""


def topic() -> str:
    return contract.cmd_topic(SITE, AGENT, "operator")


def test_a_request_names_its_sender_from_the_topic_and_is_checked():
    body = contract.request_payload("abc", "ping", {}, 1000.0)
    req = contract.parse_request(topic(), body, SITE, AGENT)
    assert (req.id, req.op, req.sender, req.ts) == ("abc", "ping", "operator", 1000.0)
    with pytest.raises(BadRequest, match="not a command topic"):
        contract.parse_request(contract.cmd_topic(SITE, "other", "operator"), body, SITE, AGENT)
    with pytest.raises(BadRequest, match="op must be one of") as exc:
        contract.parse_request(topic(), body.replace(b"ping", b"rm -rf"), SITE, AGENT)
    assert exc.value.request_id == "abc"  # type: ignore[attr-defined]
    with pytest.raises(BadRequest, match="not JSON"):
        contract.parse_request(topic(), b"\xff", SITE, AGENT)


def test_a_request_older_than_max_age_or_from_the_future_is_refused():
    req = contract.parse_request(topic(), contract.request_payload("a", "ping", {}, 1000.0),
                                 SITE, AGENT)  # fmt: skip
    assert contract.too_old(req, 1059.0, 60) is None
    assert "more than remote.max_age (60 s)" in (contract.too_old(req, 1061.0, 60) or "")
    assert "in the future" in (contract.too_old(req, 900.0, 60) or "")


def test_a_response_carries_the_id_and_says_ok_only_when_done_or_applied():
    for result, ok in [("done", True), ("applied", True), ("refused", False),
                       ("rolled_back", False), ("error", False)]:  # fmt: skip
        body = json.loads(contract.response("i", "read", SITE, AGENT, result, 0.0, ["x"]))
        assert body["id"] == "i" and body["ok"] is ok and body["reasons"] == ["x"]


@pytest.fixture
def local(tmp_path: Path) -> Path:
    path = tmp_path / "vatio.yaml"
    path.write_text(LOCAL.format(state=tmp_path / "state"))
    return path


def pushed(local: Path, **changes: object) -> str:
    data = yaml.safe_load(local.read_text())
    del data["remote"], data["state_dir"]
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = data
        for p in parents:
            target = target[p]
        target[last] = value
    return yaml.safe_dump(data)


def test_a_push_keeps_what_it_leaves_out_and_may_change_what_remote_sections_allow(local):
    running = load_config(local)
    text = pushed(local, devices__m2={"bus": "b", "unit": 2, "profile": "eastron_sdm120"})
    checked = check_push(text, local, running, running.config.remote)
    cfg = checked.loaded.config
    assert sorted(cfg.devices) == ["m1", "m2"]
    assert cfg.state_dir == running.config.state_dir and cfg.remote == running.config.remote
    assert cfg.outputs.mqtt is not None and cfg.outputs.mqtt.password is not None
    assert cfg.outputs.mqtt.password.get_secret_value() == "local-secret"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"state_dir": "/elsewhere"}, "state_dir: may not be changed remotely: only the agent's"),
        ({"site": "x"}, "site: may not be changed remotely"),
        ({"remote": {"enabled": True, "sections": ["spool"]}}, "remote: may not be changed"),
        ({"metrics": {"enabled": False}}, "metrics: may not be changed remotely: add it to "
         "remote.sections"),
        ({"outputs__mqtt__username": "root"}, "outputs.mqtt.username: may not be changed "
         "remotely: set remote.allow_broker_credentials"),
    ],
)  # fmt: skip
def test_a_push_may_not_change_what_the_local_file_keeps(local, change, reason):
    running = load_config(local)
    with pytest.raises(Refused) as exc:
        check_push(pushed(local, **change), local, running, running.config.remote)
    assert any(reason in r for r in exc.value.reasons), exc.value.reasons


def test_credentials_change_only_when_allowed_and_are_never_in_a_reason(local):
    running = load_config(local)
    rules = RemoteConfig(enabled=True, config_push=True, sections=["devices", "outputs"],
                         allow_broker_credentials=True)  # fmt: skip
    text = pushed(local, outputs__mqtt__password="new-secret-9", devices__m1__intervall="1s")
    with pytest.raises(Refused) as exc:
        check_push(text, local, running, rules)
    reasons = "\n".join(exc.value.reasons)
    assert "pushed config:" in reasons and "devices.m1" in reasons and "intervall" in reasons
    text = pushed(local, outputs__mqtt__url="new-secret-9")  # a secret where values are echoed
    text = text.replace("password: local-secret", "password: new-secret-9")
    with pytest.raises(Refused) as exc:
        check_push(text, local, running, rules)
    assert "new-secret-9" not in "\n".join(exc.value.reasons) and "***" in exc.value.reasons[0]
    ok = check_push(pushed(local, outputs__mqtt__password="new-secret-9"), local, running, rules)
    assert ok.loaded.config.outputs.mqtt.password.get_secret_value() == "new-secret-9"


def test_an_atomic_write_that_fails_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"old")
    path.chmod(0o640)

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomically(path, b"new" * 1000)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["c.yaml"]
    monkeypatch.undo()
    write_atomically(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o640


def test_a_trial_whose_new_config_never_went_in_is_void(tmp_path):
    store = ConfigStore(tmp_path / "c.yaml", keep=2)
    store.path.write_bytes(b"old")
    trial = Trial("id", "operator", "", "", config_hash(b"new"), "prev", [], 5.0)
    write_atomically(store.trial_file, json.dumps(trial.__dict__).encode())
    assert store.trial() is None and not store.trial_file.exists()  # killed before the rename
    store.begin_trial(trial, b"new")
    assert store.trial() == trial  # the new config is in force: the trial runs again
    for i in range(4):
        store.save_previous(f"v{i}".encode())
    assert len(list(store.previous_dir.glob("*.yaml"))) == 2  # keep_configs
    assert store.origin().origin == "local"
