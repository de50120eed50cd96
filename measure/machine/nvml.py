"""Thin access to NVML (nvidia-ml-py) for one CUDA device, matched by PCI bus id.

CUDA_VISIBLE_DEVICES renumbers CUDA devices but not NVML's, so the NVML handle is looked up by
the PCI bus id torch reports for the CUDA device, never by index.
"""

from __future__ import annotations

import torch

from common.errors import MeterUnavailable

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but a broken install must not crash a run
    pynvml = None

_started = False


def handle(device: torch.device):
    """The NVML handle of a CUDA device; MeterUnavailable with the reason otherwise."""
    global _started
    if device.type != "cuda":
        raise MeterUnavailable(f"{device} is not an NVIDIA GPU")
    if pynvml is None:
        raise MeterUnavailable("nvidia-ml-py is not installed")
    try:
        if not _started:
            pynvml.nvmlInit()
            _started = True
        bus = _pci_bus_id(device)
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus)
    except pynvml.NVMLError as e:
        raise MeterUnavailable(f"NVML: {e}") from None


def _pci_bus_id(device: torch.device) -> str:
    props = torch.cuda.get_device_properties(device)
    domain = getattr(props, "pci_domain_id", 0)
    # torch's stubs omit the PCI fields that the properties object has
    bus, dev = props.pci_bus_id, props.pci_device_id  # type: ignore[attr-defined]
    return f"{domain:08x}:{bus:02x}:{dev:02x}.0"


def static_info(device: torch.device) -> dict:
    """The driver, the device's name and its caps (power limit, the highest SM and memory
    clocks), or {"nvml": "unavailable: reason"}: never a made-up number."""
    try:
        h = handle(device)
        return {
            "driver": _str(pynvml.nvmlSystemGetDriverVersion()),
            "nvml_name": _str(pynvml.nvmlDeviceGetName(h)),
            "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3,
            "max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM),
            "max_mem_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM),
        }
    except Exception as e:  # noqa: BLE001 - MeterUnavailable and every NVMLError subclass
        return {"nvml": f"unavailable: {e}"}


def state(device: torch.device) -> dict:
    """Clocks, temperature, power and throttle reasons now (the record's start/end snapshot)."""
    try:
        h = handle(device)
        return {
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
            "temperature_c": pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
            "memory_temperature_c": _field(h, "NVML_FI_DEV_MEMORY_TEMP", "uiVal"),
            "power_w": power_w(h),
            "throttle_reasons": hex(clock_event_reasons(h)),
        }
    except MeterUnavailable as e:
        return {"unavailable": str(e)}
    except pynvml.NVMLError as e:
        return {"unavailable": f"NVML: {e}"}


def clock_reader(device: torch.device):
    """A callable returning (SM clock MHz, clock-event reasons) now, or None where NVML cannot
    be read: the sampler calls it after every sample, so the record says at which clock, and
    under which reasons, the timed samples ran (not the state before or after the cell)."""
    try:
        h = handle(device)
    except MeterUnavailable:
        return None
    try:
        pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)
        clock_event_reasons(h)
    except pynvml.NVMLError:
        return None
    return lambda: (pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM), clock_event_reasons(h))


def _field(h, name: str, member: str):
    """One NVML field value, or None where this binding or device does not offer it."""
    fid = getattr(pynvml, name, None)
    if fid is None:
        return None
    try:
        v = pynvml.nvmlDeviceGetFieldValues(h, [fid])[0]
    except pynvml.NVMLError:
        return None
    return getattr(v.value, member) if v.nvmlReturn == pynvml.NVML_SUCCESS else None


def power_w(h) -> float:
    """Instantaneous power where NVML offers it (the plain reading is a 1 s average on Hopper)."""
    mw = _field(h, "NVML_FI_DEV_POWER_INSTANT", "uiVal")
    if mw is not None:
        return mw / 1e3
    return pynvml.nvmlDeviceGetPowerUsage(h) / 1e3


def clock_event_reasons(h) -> int:
    """Why the clocks are where they are (older bindings call these throttle reasons)."""
    fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    return (fn or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons)(h)


def energy_mj(h) -> int:
    return pynvml.nvmlDeviceGetTotalEnergyConsumption(h)


# Bits of nvmlClocksEventReasons that mean the clock was pulled down (not idle, not app clocks).
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80  # sw power cap, hw slowdown, sw/hw thermal, brake


def _str(v):
    return v.decode() if isinstance(v, bytes) else v
