"""How long and how hard each measurement runs: the full run (about 20 minutes) and QUICK=1 (about 2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """
    The sizes of one benchmark run.

    @ivar quick: whether this is the short run.
    @ivar warmupCalls: calls placed (at 20 CPS) after a system starts, before anything is measured.
    @ivar steadyRate: the rate of the CPU and latency measurement (the issue says 100 CPS).
    @ivar steadyCalls: how many calls that measurement places.
    @ivar ladder: the ramp's rates, tried in order until one fails.
    @ivar stepSeconds: how long each ramp step places calls.
    @ivar minStepCalls: the fewest calls of a ramp step, however low its rate.
    @ivar bisections: steps spent between the last rate that passed and the first that failed.
    @ivar rampBudget: seconds one system's ramp may take at most; the ramp stops there.
    @ivar heldCalls: concurrent calls of the memory measurement (the issue says 2,000).
    @ivar holdSeconds: how long each of those calls lasts (the issue says 30).
    @ivar heldRate: the highest rate at which those calls are placed.
    @ivar floodSeconds: how long the whitelist gate is flooded.
    @ivar floodSenders: how many processes send the flood.
    @ivar floodRate: the flood's rate (datagrams per second) while calls run, in the second phase.
    @ivar rtpStreams: RTP streams (calls) through each relay, sharing the rate.
    @ivar rtpLadder: the RTP rates (packets per second, all streams) tried through each relay, until
        one loses.
    @ivar rtpStepSeconds: how long each RTP rate is sent.
    @ivar stallSeconds: how long the machine's own stalls are probed, before any system runs.
    @ivar rtpCallSeconds: in the anchored-media rows, how many seconds of RTP each side of each call
        sends (50 packets a second, so twice that many relayed per call-second); the calls of the
        CPU, latency and ramp loads last that long, and held calls send it at their start.
    """

    quick: bool
    warmupCalls: int
    steadyRate: int
    steadyCalls: int
    ladder: tuple[int, ...]
    stepSeconds: float
    minStepCalls: int
    bisections: int
    rampBudget: float
    heldCalls: int
    holdSeconds: float
    heldRate: int
    floodSeconds: float
    floodSenders: int
    floodRate: int
    rtpStreams: int
    rtpLadder: tuple[int, ...]
    rtpStepSeconds: float
    stallSeconds: float
    rtpCallSeconds: float

    @property
    def name(self) -> str:
        """C{"quick"} or C{"full"}."""
        return "quick" if self.quick else "full"


FULL = Plan(
    quick=False,
    warmupCalls=40,
    steadyRate=100,
    steadyCalls=3000,
    ladder=(
        50,
        100,
        200,
        300,
        400,
        600,
        800,
        1200,
        1600,
        2400,
        3200,
        4800,
        6400,
        9600,
        12800,
        16000,
    ),
    stepSeconds=5.0,
    minStepCalls=200,
    bisections=2,
    rampBudget=150.0,
    heldCalls=2000,
    holdSeconds=30.0,
    heldRate=200,
    floodSeconds=10.0,
    floodSenders=1,
    floodRate=100_000,
    rtpStreams=20,
    rtpLadder=(
        *(5_000, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000),
        *(80_000, 100_000, 120_000, 160_000, 200_000, 240_000),
    ),
    rtpStepSeconds=3.0,
    stallSeconds=20.0,
    rtpCallSeconds=1.0,
)

QUICK = Plan(
    quick=True,
    warmupCalls=20,
    steadyRate=100,
    steadyCalls=300,
    ladder=(100, 200, 400, 800, 1600, 3200, 6400, 12800),
    stepSeconds=2.0,
    minStepCalls=200,
    bisections=0,
    rampBudget=20.0,
    heldCalls=300,
    holdSeconds=6.0,
    heldRate=200,
    floodSeconds=3.0,
    floodSenders=1,
    floodRate=100_000,
    rtpStreams=20,
    rtpLadder=(10_000, 20_000, 40_000, 60_000, 80_000, 120_000, 160_000),
    rtpStepSeconds=1.0,
    stallSeconds=5.0,
    rtpCallSeconds=1.0,
)
