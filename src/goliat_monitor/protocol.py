"""Wire models of the HTTP protocol GOLIAT's client speaks (see docs/goliat-protocol.md).

Field names are GOLIAT's (camelCase outside, snake_case inside `message`). Every model accepts and
ignores fields it does not know, so newer GOLIAT versions keep working; unknown message types are
accepted and kept verbatim.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

API_VERSION = "1"

MachineId = Annotated[str, Field(min_length=1, max_length=255)]
Text = Annotated[str, Field(max_length=65_536)]
ShortText = Annotated[str, Field(max_length=1024)]
Number = Annotated[float, Field(allow_inf_nan=False)]
MessageId = Annotated[str, Field(min_length=1, max_length=64)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Heartbeat(_Wire):
    """`POST /api/heartbeat`. Older GOLIAT clients send `ipAddress` instead of `machineId`."""

    machineId: MachineId
    agentId: Annotated[str, Field(max_length=64)] | None = None
    hostname: ShortText | None = None
    gpuName: ShortText | None = None
    cpuCores: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    totalRamGB: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    # Utilisation figures the goliat-monitor agent adds; GOLIAT's bridge sends none.
    cpuPercent: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)] | None = None
    ramPercent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    gpuPercent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    vramUsedGB: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    vramTotalGB: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    # Disk I/O as GOLIAT's "Disk I/O" tab plots it (MB = 2**20 bytes, since the previous
    # heartbeat; see agent/system_info.py for what "page faults" counts on each OS).
    diskReadMBps: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    diskWriteMBps: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    pageFaultsPerSec: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    # The assignment the agent is running; the answer lists it in `stopAssignmentIds` if it
    # should stop (cancelled, requeued or reassigned).
    assignmentId: Annotated[str, Field(max_length=64)] | None = None
    messageId: MessageId | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_ip_address(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("machineId") and data.get("ipAddress"):
            return {**data, "machineId": data["ipAddress"]}
        return data


# -- GUI messages ----------------------------------------------------------------------------


class OverallProgress(_Wire):
    type: Literal["overall_progress"]
    current: Number
    total: Number


class StageProgress(_Wire):
    type: Literal["stage_progress"]
    name: ShortText | None = None
    current: Number
    total: Number
    sub_stage: ShortText | None = None


class LogEntry(_Wire):
    message: Text
    log_type: Annotated[str, Field(max_length=32)] | None = "default"
    timestamp: Number | None = None


class LogBatch(_Wire):
    type: Literal["log_batch"]
    logs: Annotated[list[LogEntry], Field(max_length=10_000)]
    sequence: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


class StatusLine(_Wire):
    type: Literal["status"]
    message: Text
    log_type: Annotated[str, Field(max_length=32)] | None = "default"


class ProfilerUpdate(_Wire):
    type: Literal["profiler_update"]
    eta_seconds: Annotated[float, Field(allow_inf_nan=False)] | None = None


class SimulationDetails(_Wire):
    type: Literal["simulation_details"]
    simulation_count: Annotated[int, Field(ge=0)] | None = None
    total_simulations: Annotated[int, Field(ge=0)] | None = None
    current_case: ShortText | None = None


class SimDetails(_Wire):
    """The older spelling of `simulation_details`."""

    type: Literal["sim_details"]
    count: Annotated[int, Field(ge=0)] | None = None
    total: Annotated[int, Field(ge=0)] | None = None
    details: ShortText | None = None


class Finished(_Wire):
    type: Literal["finished"]
    message: Text | None = None
    exit_code: int | None = None


class FatalError(_Wire):
    type: Literal["fatal_error"]
    message: Text | None = None
    exit_code: int | None = None


class MemoryError_(_Wire):
    type: Literal["memory_error"]
    message: Text | None = None
    exit_code: int | None = None


class TimingSample(_Wire):
    """The goliat-monitor agent's own message: one duration GOLIAT's profiler measured.

    GOLIAT's GUI keeps these for its Timings tabs and never sends them; the agent reads them from
    GOLIAT's output (agent/goliat_output.py). `subtask` None is the whole phase; `simulation` is
    the 1-based simulation number. Statistics and pies: domain/timings.py.
    """

    type: Literal["timing"]
    phase: Annotated[str, Field(min_length=1, max_length=64)]
    subtask: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    simulation: Annotated[int, Field(ge=0)] | None = None


class OtherMessage(BaseModel):
    """Any other message type (`print`, `terminal_only`, animations, future ones): kept verbatim."""

    model_config = ConfigDict(extra="allow")
    type: Annotated[str, Field(min_length=1, max_length=64)]


KNOWN_MESSAGES: dict[str, type[BaseModel]] = {
    "overall_progress": OverallProgress,
    "stage_progress": StageProgress,
    "log_batch": LogBatch,
    "status": StatusLine,
    "profiler_update": ProfilerUpdate,
    "simulation_details": SimulationDetails,
    "sim_details": SimDetails,
    "finished": Finished,
    "fatal_error": FatalError,
    "memory_error": MemoryError_,
    "timing": TimingSample,
}


def _message_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in KNOWN_MESSAGES else "other"


GuiMessage = Annotated[
    Annotated[OverallProgress, Tag("overall_progress")]
    | Annotated[StageProgress, Tag("stage_progress")]
    | Annotated[LogBatch, Tag("log_batch")]
    | Annotated[StatusLine, Tag("status")]
    | Annotated[ProfilerUpdate, Tag("profiler_update")]
    | Annotated[SimulationDetails, Tag("simulation_details")]
    | Annotated[SimDetails, Tag("sim_details")]
    | Annotated[Finished, Tag("finished")]
    | Annotated[FatalError, Tag("fatal_error")]
    | Annotated[MemoryError_, Tag("memory_error")]
    | Annotated[TimingSample, Tag("timing")]
    | Annotated[OtherMessage, Tag("other")],
    Discriminator(_message_tag),
]


class GuiUpdate(_Wire):
    """`POST /api/gui-update`: one GUI queue message from one machine."""

    machineId: MachineId
    message: GuiMessage
    timestamp: Number | None = None
    agentId: Annotated[str, Field(max_length=64)] | None = None
    assignmentId: Annotated[str, Field(max_length=64)] | None = None
    messageId: MessageId | None = None


class GuiUpdateBatch(_Wire):
    """`POST /api/gui-updates`: several gui-update bodies, applied in order (spool replay)."""

    updates: Annotated[list[GuiUpdate], Field(min_length=1, max_length=1000)]


class UpdateResult(BaseModel):
    status: int
    error: str | None = None


class GuiUpdateBatchResponse(BaseModel):
    results: list[UpdateResult]


class ClaimRequest(_Wire):
    machineId: MachineId
    agentId: Annotated[str, Field(max_length=64)] | None = None


class OkResponse(BaseModel):
    success: bool = True


class HeartbeatResponse(OkResponse):
    stopAssignmentIds: list[str] = []


class DroppedScreenshot(BaseModel):
    field: str
    reason: str


class ScreenshotsResponse(OkResponse):
    """`POST /api/gui-screenshots`: the tabs stored and the parts dropped, each with why."""

    stored: list[str] = []
    dropped: list[DroppedScreenshot] = []


class ScreenshotsRefused(BaseModel):
    """The 400 answer when no part of a screenshot upload was usable (`error` first: GOLIAT's
    client logs the first 100 characters of a refusal)."""

    error: str
    success: bool = False
    stored: list[str] = []
    dropped: list[DroppedScreenshot] = []


class ErrorResponse(BaseModel):
    error: str
