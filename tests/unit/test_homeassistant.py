"""Home Assistant discovery (agent/homeassistant.py) without a broker: what is announced, in
which order, with which names, classes and availability, and what is cleared when devices,
quantities or discovery itself go away. Against a real Home Assistant:
bench/homeassistant_check.py."""

from __future__ import annotations

import json

from vatio.agent.homeassistant import DeviceFacts, HomeAssistant, facts_of, node_id
from vatio.agent.messages import Message, MessageBuilder
from vatio.agent.runtime import _Pipeline
from vatio.agent.scheduler import DeviceStats
from vatio.agent.seqstore import SeqStore
from vatio.common.labels import known, label
from vatio.common.vocabulary import QUANTITIES
from vatio.drivers.modbus.profile import load_profile
from vatio.drivers.statefile import StateFile

SDM = ["voltage_l1_v", "active_power_w", "energy_import_kwh", "energy_export_kwh"]


class Broker:
    """Retained messages as a broker keeps them (an empty payload deletes the topic)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.retained: dict[str, dict] = {}

    def submit(self, msg: Message) -> None:
        assert msg.retain
        self.sent.append(msg)
        if msg.payload:
            self.retained[msg.topic] = json.loads(msg.payload)
        else:
            self.retained.pop(msg.topic, None)

    def config(self, node: str, key: str, component: str = "sensor") -> dict:
        return self.retained[f"homeassistant/{component}/{node}/{key}/config"]


def make(tmp_path, broker, devices=None, **kw) -> HomeAssistant:
    devices = devices if devices is not None else {
        "red": DeviceFacts("Eastron", "SDM630", "grid"),
        "pv-1.a": DeviceFacts("Eastron", "SDM120", "generation", "energy_export_kwh"),
    }  # fmt: skip
    return HomeAssistant("casa", "gw", broker.submit, devices,
                         state=StateFile(tmp_path / "homeassistant.json"), **kw)  # fmt: skip


def test_the_gateway_comes_first_and_devices_hang_under_it(tmp_path):
    broker = Broker()
    make(tmp_path, broker).start({"red": SDM, "pv-1.a": SDM})
    first = json.loads(broker.sent[0].payload)
    assert first["device"]["identifiers"] == ["vatio_casa_gw"]  # before any device
    assert node_id("casa", "pv-1.a") == "vatio_casa_pv_1_a"
    power = broker.config("vatio_casa_pv_1_a", "active_power_w")
    assert power["device"]["via_device"] == "vatio_casa_gw"
    assert power["device"]["manufacturer"] == "Eastron" and power["device"]["model"] == "SDM120"
    gateway_ids = {tuple(c["device"]["identifiers"]) for t, c in broker.retained.items()
                   if "/vatio_casa_gw/" in t}  # fmt: skip
    assert gateway_ids == {("vatio_casa_gw",)}
    assert broker.config("vatio_casa_gw", "connectivity", "binary_sensor")["device_class"] == (
        "connectivity"
    )


def test_short_names_english_spanish_and_the_roles_of_the_energy_dashboard(tmp_path):
    cases = ((False, ("Voltage L1", "Energy from grid", "Energy produced")),
             (True, ("Tensión L1", "Energía de la red", "Energía producida")))  # fmt: skip
    for es, expect in cases:
        broker = Broker()
        make(tmp_path / str(es), broker, es=es).start({"red": SDM, "pv-1.a": SDM})
        got = (
            broker.config("vatio_casa_red", "voltage_l1_v")["name"],
            broker.config("vatio_casa_red", "energy_import_kwh")["name"],
            broker.config("vatio_casa_pv_1_a", "energy_export_kwh")["name"],  # production
        )
        assert got == expect
    # every quantity of the vocabulary has a short name in both languages, no unit in it
    for name in QUANTITIES:
        assert known(name), name
        assert "(" not in label(name, False) or "meter" in label(name, False) or "EPA" in label(
            name, False
        ), name
    assert label("co2_ppm", False) == "CO2" and label("pm2_5_nowcast_ugm3", True) == "PM2.5 NowCast"


def test_classes_precision_and_availability(tmp_path):
    broker = Broker()
    ha = make(tmp_path, broker)
    ha.start({"red": SDM})
    energy = broker.config("vatio_casa_red", "energy_import_kwh")
    assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
        "energy", "total_increasing", "kWh")  # fmt: skip
    volts = broker.config("vatio_casa_red", "voltage_l1_v")
    assert volts["suggested_display_precision"] == 1 and volts["state_class"] == "measurement"
    # availability: the agent, the device answering, this value read
    assert volts["availability_mode"] == "all"
    assert [a["topic"] for a in volts["availability"]] == [
        "vatio/v1/casa/gw/status",
        "vatio/v1/casa/red/status",
        "vatio/v1/casa/red/telemetry",
    ]
    assert "'voltage_l1_v'" in volts["availability"][2]["value_template"]
    assert "answering" in volts["availability"][1]["value_template"]

    ha.metrics("red", {"energy_today_kwh": 1.0, "energy_yesterday_kwh": None,
                       "demand_15m_kw": 3.0, "power_factor_month_pct": 95.0})  # fmt: skip
    today = broker.config("vatio_casa_red", "energy_today_kwh")
    assert today["state_class"] == "total_increasing"  # from zero at midnight: a reset
    assert today["state_topic"] == "vatio/v1/casa/red/metrics"
    assert len(today["availability"]) == 2  # a metric has no reading of its own to wait for
    yesterday = broker.config("vatio_casa_red", "energy_yesterday_kwh")
    assert "state_class" not in yesterday and yesterday["enabled_by_default"] is False
    assert broker.config("vatio_casa_red", "power_factor_month_pct")["device_class"] == (
        "power_factor"
    )
    ha.metrics("_site", {"bill_total_mxn": 10.0, "bill_vat_mxn": 1.0,
                         "site_consumption_today_kwh": 3.0})  # fmt: skip
    bill = broker.config("vatio_casa__site", "bill_total_mxn")
    assert bill["device_class"] == "monetary" and "state_class" not in bill
    assert bill["unit_of_measurement"] == "MXN"
    assert [a["topic"] for a in bill["availability"]] == ["vatio/v1/casa/gw/status"]
    assert bill["device"]["via_device"] == "vatio_casa_gw"
    assert broker.config("vatio_casa__site", "bill_vat_mxn")["enabled_by_default"] is False
    # announced once: the next metrics message adds nothing
    sent = len(broker.sent)
    ha.metrics("red", {"energy_today_kwh": 2.0, "demand_15m_kw": 3.0})
    ha.telemetry("red", dict.fromkeys(SDM, 1.0), ok=True)
    assert len(broker.sent) == sent


def test_removed_devices_and_quantities_are_cleared(tmp_path):
    broker = Broker()
    ha = make(tmp_path, broker)
    ha.start({"red": SDM, "pv-1.a": SDM})
    ha.metrics("pv-1.a", {"energy_today_kwh": 1.0})
    assert any("/vatio_casa_pv_1_a/" in t for t in broker.retained)

    # restart without pv-1.a, and red reads one quantity less
    ha2 = make(tmp_path, broker, devices={"red": DeviceFacts("Eastron", "SDM630", "grid")})
    ha2.start({"red": SDM[:-1]})
    assert not any("/vatio_casa_pv_1_a/" in t for t in broker.retained)
    assert "homeassistant/sensor/vatio_casa_red/energy_export_kwh/config" in broker.retained
    ha2.telemetry("red", dict.fromkeys(SDM[:-1]), ok=False)  # a failed poll proves nothing
    assert "homeassistant/sensor/vatio_casa_red/energy_export_kwh/config" in broker.retained
    ha2.telemetry("red", dict.fromkeys(SDM[:-1], 1.0), ok=True)
    assert "homeassistant/sensor/vatio_casa_red/energy_export_kwh/config" not in broker.retained
    # the clears stay in the file until the broker had them
    saved = json.loads((tmp_path / "homeassistant.json").read_text())
    assert "homeassistant/sensor/vatio_casa_pv_1_a/active_power_w/config" in saved["clear"]
    ha2.delivered()
    assert json.loads((tmp_path / "homeassistant.json").read_text())["clear"] == []

    # discovery turned off: everything announced before is cleared, nothing new
    off = Broker()
    off.retained = dict(broker.retained)
    make(tmp_path, off, enabled=False).start({"red": SDM})
    assert off.retained == {}
    assert all(m.payload == b"" for m in off.sent)


def test_what_a_device_says_it_is_updates_its_device(tmp_path):
    broker = Broker()
    ha = make(tmp_path, broker, devices={"pv": DeviceFacts(role="generation")})
    ha.start({"pv": []})  # a SunSpec inverter: quantities known after its first poll
    ha.telemetry("pv", {"ac_power_w": 1.0, "energy_generated_kwh": 2.0}, ok=True)
    assert "manufacturer" not in broker.config("vatio_casa_pv", "ac_power_w")["device"]
    ha.device_info("pv", {"manufacturer": "Fronius", "model": "Symo", "serial": "123"})
    device = broker.config("vatio_casa_pv", "ac_power_w")["device"]
    assert (device["manufacturer"], device["model"], device["serial_number"]) == (
        "Fronius", "Symo", "123")  # fmt: skip


def test_manufacturer_and_model_from_profile_or_driver():
    sdm = facts_of(object(), load_profile("eastron_sdm630"), "grid", "energy_export_kwh")
    assert (sdm.manufacturer, sdm.model, sdm.production) == ("Eastron", "SDM630", None)

    class Pms:
        model = "Plantower PMS5003"

    pms = facts_of(Pms(), None, "load", None)
    assert (pms.manufacturer, pms.model) == ("Plantower", "PMS5003")


def test_a_device_status_says_whether_it_still_answers(tmp_path):
    out: list[Message] = []

    class Sink:
        def submit(self, msg: Message) -> None:
            out.append(msg)

    pipeline = _Pipeline(MessageBuilder("s", "gw", SeqStore(tmp_path / "seq.sqlite")))
    pipeline.outputs = [Sink()]  # type: ignore[list-item]
    stats = DeviceStats()
    pipeline.device_stats = {"m1": stats}

    def answering() -> bool:
        return json.loads([m for m in out if m.topic.endswith("/status")][-1].payload)["answering"]

    pipeline.device_state("m1", "degraded", "no answer")
    assert answering() is False
    stats.partial = True  # it answers, but refuses a register
    pipeline.device_state("m1", "degraded", "register 30343 refused")
    assert answering() is True
    pipeline.device_state("m1", "online", "answering")
    assert answering() is True
