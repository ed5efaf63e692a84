"""An emulation of `nvidia-smi` as run inside a serving container (`kubectl exec`).

Covers `--query-gpu=... --format=csv[,noheader][,nounits]`, `-i`, `-L`, `--version`, `-h`,
`-q` (abridged; `-d MEMORY` in full), `topo -m`/`-mp` and the plain summary table. Real
nvidia-smi writes its error messages to stdout, not stderr, and so does this emulation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.simulator.gpus import GpuReadingInput
from services.simulator.nvidia_smi_topo import NodeShape, run_topo

__all__ = [
    "DRIVER_VERSION_PATH",
    "GpuReadingInput",
    "NodeShape",
    "driver_version_file",
    "query_fields",
    "run_nvidia_smi",
]
DRIVER_VERSION_PATH = "/proc/driver/nvidia/version"

EXIT_OK = 0
EXIT_INVALID_ARGUMENT = 2
EXIT_NO_DEVICES = 6

_HELP_HINT = "Please run 'nvidia-smi -h' for help."
_INVALID_COMBINATION = f"Invalid combination of input arguments. {_HELP_HINT}\n"


@dataclass(frozen=True)
class _Field:
    header: str  # canonical name printed in the csv header, with its unit
    unit: str  # appended to values unless nounits ("" for none)
    value: Callable[[GpuReadingInput, int, float], str]


def _timestamp(_g: GpuReadingInput, _count: int, now: float) -> str:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(now))
    return f"{stamp}.{int((now % 1) * 1000):03d}"


def _ctime(now: float) -> str:
    """The date nvidia-smi prints (C's ctime): the day of month space-padded."""
    moment = time.gmtime(now)
    return time.strftime(f"%a %b {moment.tm_mday:>2} %H:%M:%S %Y", moment)


def _fan(g: GpuReadingInput) -> str:
    """Fan speed in %: the actively cooled A10G reports one, SXM boards report none."""
    return "0" if "A10G" in g.gpu.nvml_name else "[N/A]"


def _mig(g: GpuReadingInput) -> str:
    return "Disabled" if g.gpu.family in ("hopper",) or "A100" in g.gpu.nvml_name else "[N/A]"


_FIELD_TABLE: dict[str, _Field] = {
    "timestamp": _Field("timestamp", "", _timestamp),
    "driver_version": _Field("driver_version", "", lambda g, c, n: g.gpu.driver_version),
    "count": _Field("count", "", lambda g, c, n: str(c)),
    "name": _Field("name", "", lambda g, c, n: g.gpu.nvml_name),
    "serial": _Field("serial", "", lambda g, c, n: g.serial),
    "uuid": _Field("uuid", "", lambda g, c, n: g.uuid),
    "pci.bus_id": _Field("pci.bus_id", "", lambda g, c, n: g.pci_bus_id),
    "index": _Field("index", "", lambda g, c, n: str(g.index)),
    "minor_number": _Field("minor_number", "", lambda g, c, n: str(g.node_index)),
    "compute_cap": _Field("compute_cap", "", lambda g, c, n: g.gpu.compute_cap),
    "persistence_mode": _Field("persistence_mode", "", lambda g, c, n: "Enabled"),
    "compute_mode": _Field("compute_mode", "", lambda g, c, n: "Default"),
    "mig.mode.current": _Field("mig.mode.current", "", lambda g, c, n: _mig(g)),
    "pstate": _Field("pstate", "", lambda g, c, n: "P0"),
    "fan.speed": _Field("fan.speed [%]", " %", lambda g, c, n: _fan(g)),
    "memory.total": _Field("memory.total [MiB]", " MiB", lambda g, c, n: str(g.gpu.memory_mib)),
    "memory.reserved": _Field(
        "memory.reserved [MiB]", " MiB", lambda g, c, n: str(g.gpu.reserved_mib)
    ),
    "memory.used": _Field("memory.used [MiB]", " MiB", lambda g, c, n: str(g.memory_used_mib)),
    "memory.free": _Field("memory.free [MiB]", " MiB", lambda g, c, n: str(g.memory_free_mib)),
    "utilization.gpu": _Field("utilization.gpu [%]", " %", lambda g, c, n: str(g.utilization_gpu)),
    "utilization.memory": _Field(
        "utilization.memory [%]", " %", lambda g, c, n: str(g.utilization_memory)
    ),
    "temperature.gpu": _Field("temperature.gpu", "", lambda g, c, n: str(g.temperature_c)),
    "power.draw": _Field("power.draw [W]", " W", lambda g, c, n: f"{g.power_draw_w:.2f}"),
    "power.limit": _Field("power.limit [W]", " W", lambda g, c, n: f"{g.gpu.power_limit_w:.2f}"),
    "enforced.power.limit": _Field(
        "enforced.power.limit [W]", " W", lambda g, c, n: f"{g.gpu.power_limit_w:.2f}"
    ),
    "clocks.current.sm": _Field(
        "clocks.current.sm [MHz]", " MHz", lambda g, c, n: str(g.sm_clock_mhz)
    ),
    "clocks.current.graphics": _Field(
        "clocks.current.graphics [MHz]", " MHz", lambda g, c, n: str(g.sm_clock_mhz)
    ),
    "clocks.current.memory": _Field(
        "clocks.current.memory [MHz]", " MHz", lambda g, c, n: str(g.gpu.mem_clock_mhz)
    ),
    "clocks.max.sm": _Field("clocks.max.sm [MHz]", " MHz", lambda g, c, n: str(g.gpu.sm_clock_mhz)),
}

# nvidia-smi accepts several spellings and prints the canonical name in the header.
_ALIASES = {
    "gpu_name": "name",
    "gpu_serial": "serial",
    "gpu_uuid": "uuid",
    "gpu_bus_id": "pci.bus_id",
    "clocks.sm": "clocks.current.sm",
    "clocks.gr": "clocks.current.graphics",
    "clocks.mem": "clocks.current.memory",
    "clocks.max.gr": "clocks.max.sm",
    "temperature": "temperature.gpu",
    "utilization": "utilization.gpu",
}


def query_fields() -> list[str]:
    """Every field name `--query-gpu` accepts, aliases included."""
    return sorted([*_FIELD_TABLE, *_ALIASES])


@dataclass
class _Options:
    query: list[str] | None = None
    fmt: list[str] | None = None
    ids: list[str] | None = None
    display: list[str] | None = None  # -q sections (MEMORY, UTILIZATION...)
    list_gpus: bool = False
    full_query: bool = False
    version: bool = False
    help: bool = False


class _UsageError(Exception):
    """A command line nvidia-smi refuses; the message is what it prints."""


_WITH_VALUE = {
    "--query-gpu": "query",
    "--format": "fmt",
    "-i": "ids",
    "--id": "ids",
    "-d": "display",
    "--display": "display",
}
_IGNORED_WITH_VALUE = {"-l", "--loop", "-lms", "--loop-ms", "-f", "--filename"}
_FLAGS = {
    "-L": "list_gpus",
    "--list-gpus": "list_gpus",
    "-q": "full_query",
    "--query": "full_query",
    "--version": "version",
    "-h": "help",
    "--help": "help",
}


def _parse(argv: Sequence[str]) -> _Options:
    opts = _Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in _WITH_VALUE or name in _IGNORED_WITH_VALUE:
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise _UsageError(f"ERROR: Option {name} is missing its value. {_HELP_HINT}\n")
            if name in _WITH_VALUE:
                setattr(opts, _WITH_VALUE[name], [v.strip() for v in value.split(",")])
        elif arg in _FLAGS:
            setattr(opts, _FLAGS[arg], True)
        else:
            raise _UsageError(f"ERROR: Option {arg} is not recognized. {_HELP_HINT}\n")
        i += 1
    return opts


def _select(gpus: Sequence[GpuReadingInput], ids: list[str] | None) -> list[GpuReadingInput]:
    if ids is None:
        return list(gpus)
    chosen = []
    for wanted in ids:
        for g in gpus:
            if wanted in (str(g.index), g.uuid, g.pci_bus_id):
                chosen.append(g)
                break
        else:
            raise _UsageError("No devices were found\n")
    return chosen


def _query_gpu(opts: _Options, gpus: list[GpuReadingInput], attached: int, now: float) -> str:
    if opts.fmt is None:
        raise _UsageError(f'"--format=" switch is missing. {_HELP_HINT}\n')
    if (
        not opts.fmt
        or opts.fmt[0] != "csv"
        or any(f not in ("noheader", "nounits") for f in opts.fmt[1:])
    ):
        raise _UsageError(_INVALID_COMBINATION)
    fields = []
    for raw in opts.query or []:
        key = _ALIASES.get(raw, raw)
        if key not in _FIELD_TABLE:
            raise _UsageError(f'Field "{raw}" is not a valid field to query.\n\n')
        fields.append(_FIELD_TABLE[key])
    if not fields:
        raise _UsageError(_INVALID_COMBINATION)
    units = "nounits" not in opts.fmt
    lines = []
    if "noheader" not in opts.fmt:
        lines.append(", ".join(f.header for f in fields))
    for g in gpus:
        cells = []
        for f in fields:
            value = f.value(g, attached, now)
            cells.append(value + f.unit if units and f.unit and value[:1] != "[" else value)
        lines.append(", ".join(cells))
    return "".join(line + "\n" for line in lines)


def _list_gpus(gpus: list[GpuReadingInput]) -> str:
    return "".join(f"GPU {g.index}: {g.gpu.nvml_name} (UUID: {g.uuid})\n" for g in gpus)


def _version(gpus: list[GpuReadingInput]) -> str:
    driver = gpus[0].gpu.driver_version if gpus else "550.127.05"
    cuda = gpus[0].gpu.cuda_version if gpus else "12.4"
    return (
        f"NVIDIA-SMI version  : {driver}\nNVML version        : {'.'.join(driver.split('.')[:2])}\n"
        f"DRIVER version      : {driver}\nCUDA Version        : {cuda}\n"
    )


_USAGE = """NVIDIA System Management Interface -- v{driver}

NVSMI provides monitoring information for Tesla and select Quadro devices.

nvidia-smi [OPTION1 [ARG1]] [OPTION2 [ARG2]] ...

    -h,   --help                Print usage information and exit.
          --version             Print version information and exit.
    -L,   --list-gpus           Display a list of GPUs connected to the system.
    -q,   --query               Display GPU or Unit info.
    -i,   --id=                 Target a specific GPU.
          --query-gpu=          Information about GPU.
                                Call --help-query-gpu for more info.
          --format=             Comma separated list of format options:
                                  csv - comma separated values (MANDATORY)
                                  noheader - skip the first line with column headers
                                  nounits - don't print units for numerical values
"""


_WIDE_RULE = "+" + "-" * 89 + "+"
_GPU_RULE = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"


def _row(*cells: str) -> str:
    """A table row: cells padded to the three column widths (41, 24, 22)."""
    widths = (41, 24, 22)
    return "|" + "|".join(f"{cell:<{w}}" for cell, w in zip(cells, widths, strict=True)) + "|"


def _wide(text: str) -> str:
    return f"| {text:<87} |"


def _table(gpus: list[GpuReadingInput], now: float) -> str:
    driver = gpus[0].gpu.driver_version if gpus else "550.127.05"
    cuda = gpus[0].gpu.cuda_version if gpus else "12.4"
    lines = [
        _ctime(now),
        _WIDE_RULE,
        _wide(f"NVIDIA-SMI {driver:<22} Driver Version: {driver:<14} CUDA Version: {cuda:<7}"),
        "|" + _GPU_RULE[1:],
        _row(
            " GPU  Name                 Persistence-M",
            " Bus-Id          Disp.A",
            " Volatile Uncorr. ECC",
        ),
        _row(
            " Fan  Temp   Perf          Pwr:Usage/Cap",
            "           Memory-Usage",
            " GPU-Util  Compute M.",
        ),
        _row("", "", "               MIG M."),
        "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|",
    ]
    for g in gpus:
        name = g.gpu.nvml_name[:29]
        power = f"{g.power_draw_w:.0f}W / {g.gpu.power_limit_w:>4.0f}W"
        memory = f"{g.memory_used_mib}MiB / {g.gpu.memory_mib:>6}MiB"
        mig = "Disabled" if _mig(g) == "Disabled" else "N/A"
        fan = "N/A" if _fan(g) == "[N/A]" else f"{_fan(g)}%"
        lines += [
            _row(f" {g.index:>3}  {name:<29}  On  ", f" {g.pci_bus_id:>18} Off ", f" {'0':>20} "),
            _row(
                f" {fan:>3}   {g.temperature_c:>2}C    P0{power:>24} ",
                f" {memory:>22} ",
                f" {g.utilization_gpu:>6}%      Default ",
            ),
            _row("", "", f" {mig:>20} "),
            _GPU_RULE,
        ]
    lines += [
        "",
        _WIDE_RULE,
        _wide("Processes:"),
        _wide(f" GPU   GI   CI        PID   Type   Process name{'GPU Memory':>40}"),
        _wide(f"       ID   ID{'Usage':>68}"),
        "|" + "=" * 89 + "|",
        _wide(" No running processes found"),
        _WIDE_RULE,
    ]
    return "\n".join(lines) + "\n"


# The BAR1 aperture the cloud instances expose per GPU (MiB); a serving process maps a little.
_BAR1_TOTAL_MIB = {"hopper": 131072, "ampere": 131072}
_BAR1_PCIE_MIB = {"NVIDIA A10G": 32768, "NVIDIA L4": 32768, "NVIDIA L40S": 65536, "Tesla T4": 256}
_BAR1_USED_MIB = 5


def _bar1_mib(g: GpuReadingInput) -> int:
    if g.gpu.nvml_name in _BAR1_PCIE_MIB:
        return _BAR1_PCIE_MIB[g.gpu.nvml_name]
    return _BAR1_TOTAL_MIB.get(g.gpu.family, 65536)


def driver_version_file(gpus: Sequence[GpuReadingInput]) -> str:
    """/proc/driver/nvidia/version on the node (the proprietary kernel module's build line)."""
    driver = gpus[0].gpu.driver_version if gpus else "550.127.05"
    return (
        f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  Tue Oct  8 16:30:26 UTC 2024\n"
        "GCC version:  gcc version 11.4.1 20230605 (Red Hat 11.4.1-2) (GCC) \n"
    )


def _full_query(gpus: list[GpuReadingInput], now: float, display: list[str] | None = None) -> str:
    driver = gpus[0].gpu.driver_version if gpus else "550.127.05"
    cuda = gpus[0].gpu.cuda_version if gpus else "12.4"

    def row(label: str, value: object, indent: int = 4) -> str:
        return f"{' ' * indent}{label:<{42 - indent}}: {value}"

    lines = [
        "",
        "==============NVSMI LOG==============",
        "",
        row("Timestamp", _ctime(now), 0),
        row("Driver Version", driver, 0),
        row("CUDA Version", cuda, 0),
        "",
        row("Attached GPUs", len(gpus), 0),
    ]
    for g in gpus:
        # (display type that shows the section under -d, its lines); None: only without -d.
        sections: list[tuple[str | None, list[str]]] = [
            (
                None,
                [
                    row("Product Name", g.gpu.nvml_name),
                    row("Product Architecture", g.gpu.family.replace("-", " ").title()),
                    row("Persistence Mode", "Enabled"),
                    row("Serial Number", g.serial),
                    row("GPU UUID", g.uuid),
                    row("Minor Number", g.node_index),
                ],
            ),
            (
                "MEMORY",
                [
                    "    FB Memory Usage",
                    row("Total", f"{g.gpu.memory_mib} MiB", 8),
                    row("Reserved", f"{g.gpu.reserved_mib} MiB", 8),
                    row("Used", f"{g.memory_used_mib} MiB", 8),
                    row("Free", f"{g.memory_free_mib} MiB", 8),
                    "    BAR1 Memory Usage",
                    row("Total", f"{_bar1_mib(g)} MiB", 8),
                    row("Used", f"{_BAR1_USED_MIB} MiB", 8),
                    row("Free", f"{_bar1_mib(g) - _BAR1_USED_MIB} MiB", 8),
                    # Confidential computing is off: the protected region is empty.
                    "    Conf Compute Protected Memory Usage",
                    row("Total", "0 MiB", 8),
                    row("Used", "0 MiB", 8),
                    row("Free", "0 MiB", 8),
                ],
            ),
            ("PERFORMANCE", [row("Performance State", "P0")]),
            (
                "UTILIZATION",
                [
                    "    Utilization",
                    row("Gpu", f"{g.utilization_gpu} %", 8),
                    row("Memory", f"{g.utilization_memory} %", 8),
                ],
            ),
            (
                "TEMPERATURE",
                ["    Temperature", row("GPU Current Temp", f"{g.temperature_c} C", 8)],
            ),
            (
                "POWER",
                [
                    "    GPU Power Readings",
                    row("Power Draw", f"{g.power_draw_w:.2f} W", 8),
                    row("Current Power Limit", f"{g.gpu.power_limit_w:.2f} W", 8),
                ],
            ),
            (
                "CLOCK",
                [
                    "    Clocks",
                    row("Graphics", f"{g.sm_clock_mhz} MHz", 8),
                    row("SM", f"{g.sm_clock_mhz} MHz", 8),
                    row("Memory", f"{g.gpu.mem_clock_mhz} MHz", 8),
                ],
            ),
        ]
        lines.append(f"GPU {g.pci_bus_id}")
        for kind, section in sections:
            if display is None or kind in display:
                lines += section
        lines.append("")
    return "\n".join(lines) + "\n"


def run_nvidia_smi(
    argv: Sequence[str],
    gpus: Sequence[GpuReadingInput],
    *,
    now: float | None = None,
    node: NodeShape | None = None,
) -> tuple[int, str, str]:
    """Run `nvidia-smi` with `argv` (without the program name) against `gpus`.

    Returns (exit code, stdout, stderr). Never raises: a refused command line gives exit code 2
    and nvidia-smi's own message, as the real tool does.
    """
    clock = time.time() if now is None else now
    if list(argv[:1]) == ["topo"]:
        if not gpus:
            return EXIT_NO_DEVICES, "No devices were found\n", ""
        return run_topo(argv[1:], gpus, node)
    try:
        opts = _parse(argv)
        if opts.help:
            driver = gpus[0].gpu.driver_version if gpus else "550.127.05"
            return EXIT_OK, _USAGE.format(driver=driver), ""
        if opts.version:
            return EXIT_OK, _version(list(gpus)), ""
        if not gpus:
            return EXIT_NO_DEVICES, "No devices were found\n", ""
        selected = _select(gpus, opts.ids)
        if opts.query is not None:
            if opts.list_gpus or opts.full_query:
                raise _UsageError(_INVALID_COMBINATION)
            return EXIT_OK, _query_gpu(opts, selected, len(gpus), clock), ""
        if opts.fmt is not None:
            raise _UsageError(_INVALID_COMBINATION)
        if opts.list_gpus:
            return EXIT_OK, _list_gpus(selected), ""
        if opts.full_query:
            shown = [d.upper() for d in opts.display] if opts.display else None
            return EXIT_OK, _full_query(selected, clock, shown), ""
        return EXIT_OK, _table(selected, clock), ""
    except _UsageError as refused:
        message = str(refused)
        code = EXIT_NO_DEVICES if message.startswith("No devices") else EXIT_INVALID_ARGUMENT
        return code, message, ""
