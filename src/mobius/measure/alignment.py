"""Matching a video's frames to a golden's: which golden frame each current frame shows.

The match is the cheapest monotone path through the frame pairs within a search window of +-SEARCH
frames, by dynamic programming (the idea of dynamic time warping, restricted to the steps a broken
pipeline makes): from one current frame to the next the golden frame advances by 1 (in time), by 0
(a duplicated frame) or by 2..MAX_STEP (dropped frames). A pair costs the mean squared difference of
the two luma thumbnails; every frame added or dropped costs PENALTY more, so the path leaves the
diagonal only when the pictures prove it (a moving progress bar, a crossfade, a cut). In a picture
that does not move at all, a dropped frame is invisible to a viewer and to this path alike.

Frozen frames are told apart from duplicates: a run of current frames that do not move while the
golden frames at the same times do (by more than MOVING levels in some block). A frozen run keeps
the video's length; duplicates make it longer, dropped frames shorter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEARCH = 15  # frames each way (0.5 s at 30 fps)
MAX_STEP = 4
PENALTY = 1.0  # in units of the cost (mean squared 8-bit difference per luma block)
# levels: a current frame this close to the one before has not moved. A re-encoded still picture is not
# still to the level: x264 alternates frame qualities, and hanamikoji's frozen second (CRF 18) moves some
# block by 3 levels every other frame, which split the freeze at 2.0 into runs of 2 (not caught). Measured
# (benchmarks/golden_thresholds.py, docs/golden.md): a frozen second moves <= 3 levels a frame in the three
# sample games at CRF 18 and 23; re-encodes (CRF 18-28) move >= 7 wherever the golden moves (> MOVING).
# Thumbnail differences are whole levels: 4 is still, 5 moves.
STILL = 4.5
MOVING = 6.0  # levels: a golden frame this far from the one before has moved
TRACKING = 1.0  # levels: a frame that moved within this of its golden frame's motion moved as the golden did
MIN_FROZEN = 3  # frames
CAP = 16.0  # levels: a block differing by more counts as differing by this much
COST_ROWS = 64  # current frames whose costs are computed together (cache-sized: 64 x 2304 bytes a plane)


@dataclass(frozen=True)
class TimingEvent:
    """Frames added (duplicated), dropped or frozen, at current frames first..last (inclusive); for a
    frozen run, `frames` counts the frames showing the same picture."""

    kind: str  # dropped | duplicated | frozen
    first: int
    last: int
    frames: int


@dataclass
class Alignment:
    path: object  # int array: the golden frame shown by each current frame
    events: list[TimingEvent] = field(default_factory=list)
    start_offset: int = 0  # golden frame shown by the first current frame

    def by_kind(self, kind: str) -> list[TimingEvent]:
        return [e for e in self.events if e.kind == kind]


def _costs(golden, current, search: int):
    import numpy as np

    golden, current = np.asarray(golden), np.asarray(current)
    if golden.dtype == np.uint8 and current.dtype == np.uint8:
        return _costs_u8(golden, current, search)
    g = np.asarray(golden, dtype=np.float32).reshape(len(golden), -1)
    c = np.asarray(current, dtype=np.float32).reshape(len(current), -1)
    costs = np.full((len(c), 2 * search + 1), np.inf, dtype=np.float64)
    for k, off in enumerate(range(-search, search + 1)):
        lo, hi = max(0, -off), min(len(c), len(g) - off)
        if hi > lo:
            d = np.minimum(np.abs(c[lo:hi] - g[lo + off : hi + off]), CAP)
            costs[lo:hi, k] = np.einsum("ij,ij->i", d, d) / g.shape[1]
    return costs


def _costs_u8(golden, current, search: int, *, rows: int = COST_ROWS):
    """`_costs` of 8-bit thumbnails (what goldens store and checks decode) in 8/16-bit integers: |d| as
    max - min, capped, squared into 16 bits (CAP**2 = 256 fits), summed exactly; the float32 division
    is the float path's, so the costs are identical. 0.136 -> 0.069 s for 900 frames (measured).
    `rows` current frames at a time, every offset of one block before the next, so the block and
    its golden neighbours stay in the CPU's cache (0.072-0.083 -> 0.055 s CPU, the same costs)."""
    costs = CostRows(golden, search, rows=rows)
    costs.add(current, len(current))
    return costs.finish(current)


class CostRows:
    """`_costs_u8`'s matrix built while a decode delivers the current frames, `rows` at a time.

    A row's costs need only that frame and the golden's (all stored), so the check computes them
    between frames, while FFmpeg decodes the next ones, instead of after the last (0.06 s of a 30 s
    preview). Every row is computed exactly as `_costs_u8` computes it, so the matrix is the same.
    """

    def __init__(self, golden, search: int = SEARCH, *, rows: int = COST_ROWS):
        import numpy as np

        self.golden = np.asarray(golden).reshape(len(golden), -1)
        self.search, self.rows = search, rows
        self.done = 0
        self.blocks: list = []
        width = self.golden.shape[1]
        self._high = np.empty((rows, width), dtype=self.golden.dtype)
        self._low = np.empty_like(self._high)
        self._squares = np.empty((rows, width), dtype=np.uint16)

    def add(self, current, available: int) -> None:
        """The rows of every whole block among the first `available` frames of `current` not done yet."""
        while available - self.done >= self.rows:
            self._block(current, self.done + self.rows)

    def finish(self, current):
        """The (frames, 2 * search + 1) costs of all of `current`."""
        import numpy as np

        while self.done < len(current):
            self._block(current, min(len(current), self.done + self.rows))
        width = 2 * self.search + 1
        return np.concatenate(self.blocks) if self.blocks else np.full((0, width), np.inf)

    def _block(self, current, end: int) -> None:
        import numpy as np

        g = self.golden
        c = np.asarray(current[self.done : end]).reshape(end - self.done, -1)
        first = self.done
        costs = np.full((end - first, 2 * self.search + 1), np.inf, dtype=np.float64)
        for k, off in enumerate(range(-self.search, self.search + 1)):
            lo, hi = max(first, -off), min(end, len(g) - off)
            if hi > lo:
                a, b, d = self._high[: hi - lo], self._low[: hi - lo], self._squares[: hi - lo]
                np.maximum(c[lo - first : hi - first], g[lo + off : hi + off], out=a)
                np.minimum(c[lo - first : hi - first], g[lo + off : hi + off], out=b)
                np.subtract(a, b, out=a)
                np.minimum(a, int(CAP), out=a)
                np.multiply(a, a, out=d, dtype=np.uint16)
                costs[lo - first : hi - first, k] = d.sum(axis=1, dtype=np.uint32).astype(np.float32) / g.shape[1]
        self.blocks.append(costs)
        self.done = end


def align(golden_luma, current_luma, *, search: int = SEARCH, costs: CostRows | None = None) -> Alignment:
    """The cheapest path (see the module docstring) and the timing events it implies; `costs`: the
    rows of the cost matrix computed so far (`CostRows` of these golden thumbnails), finished here."""
    import numpy as np

    n = len(current_luma)
    if n == 0 or len(golden_luma) == 0:
        return Alignment(path=np.zeros(0, dtype=np.int64))
    if np.shape(golden_luma) == np.shape(current_luma) and np.array_equal(golden_luma, current_luma):
        # identical thumbnails (a deterministic re-render): every diagonal pair costs 0 and every step off
        # the diagonal costs PENALTY, so the diagonal is the cheapest path; the recurrence's own answer
        # (tests/golden/test_signatures.py), 0.06-0.09 s sooner
        return Alignment(path=np.arange(n, dtype=np.int64))
    return cheapest_path(golden_luma, current_luma, search=search, costs=costs)


def cheapest_path(golden_luma, current_luma, *, search: int = SEARCH, costs: CostRows | None = None) -> Alignment:
    """`align` by the recurrence alone (for non-empty inputs)."""
    import numpy as np

    n = len(current_luma)
    costs = _costs(golden_luma, current_luma, search) if costs is None else costs.finish(current_luma)
    width = costs.shape[1]
    offsets = np.arange(-search, search + 1)
    back = np.zeros((n, width), dtype=np.int8)  # the step taken into each state
    acc = _recurrence(costs, back)
    state = int(np.argmin(acc))
    path = np.empty(n, dtype=np.int64)
    taken = np.ones(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        path[i] = i + offsets[state]
        if i:
            taken[i] = back[i, state]
            state -= int(taken[i]) - 1
    taken[0] = path[0] + 1  # the first frame "steps" from golden frame -1
    return Alignment(path=path, events=_events(taken), start_offset=int(path[0]))


def _recurrence(costs, back):
    """The accumulated cost of the cheapest path into each state of the last frame; `back[i]` gets the
    step (0..MAX_STEP) taken into each state of frame i.

    Into state k of frame i by step s (the offset changes by s - 1) from state k - (s - 1) of frame i - 1,
    at PENALTY * |s - 1|; the smallest step wins a tie, and a state no step reaches keeps step 1. All
    steps are compared at once over a strided view of the previous row padded with inf (5 numpy calls a
    frame where one call per step and state group took 30: 0.05 -> 0.02 s for 900 frames).
    """
    import numpy as np

    width = costs.shape[1]
    offsets = np.arange(width) - (width - 1) // 2
    acc = costs[0] + PENALTY * np.abs(offsets)
    steps = np.arange(MAX_STEP + 1)
    penalties = (PENALTY * np.abs(steps - 1)).astype(np.float64)[:, None]
    # padded[MAX_STEP - 1 + k] = acc[k]; step s reads acc[k - (s - 1)] = padded[MAX_STEP - s + k]
    padded = np.full(width + MAX_STEP, np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    rows = MAX_STEP - steps
    columns = np.arange(width)
    for i in range(1, len(costs)):
        padded[MAX_STEP - 1 : MAX_STEP - 1 + width] = acc
        moved = windows[rows] + penalties  # (steps, states), read from the padded row as it is now
        choice = moved.argmin(axis=0)
        best = moved[choice, columns]
        choice[best == np.inf] = 1
        acc = best + costs[i]
        back[i] = choice
    return acc


def _events(taken) -> list[TimingEvent]:
    events = []
    for i, step in enumerate(taken):
        if step == 1:
            continue
        kind, count = ("duplicated", 1) if step == 0 else ("dropped", int(step) - 1)
        if step < 0:  # the first frame shows a golden frame before 0: impossible by construction
            continue
        last = events[-1] if events else None
        if last is not None and last.kind == kind and i - last.last <= 15:
            events[-1] = TimingEvent(kind, last.first, i, last.frames + count)
        else:
            events.append(TimingEvent(kind, i, i, count))
    return events


def frozen_runs(alignment: Alignment, current_motion, golden_motion) -> list[TimingEvent]:
    """Runs of current frames that stand still while the golden frames at the same times move.

    `current_motion[i]` / `golden_motion[j]`: the largest block difference of frame i (j) from the frame
    before. A run starts after the last frame that moved as its golden frame did (within TRACKING). The
    golden times follow the path's offset from before the run, so a freeze is judged
    against what should have played, not against the duplicates the path may have chosen inside it.
    """
    n = len(alignment.path)
    runs = []
    i = 1
    while i < n:
        if current_motion[i] > STILL:
            i += 1
            continue
        start = i
        base = int(alignment.path[start - 1]) - (start - 1)
        while i < n and current_motion[i] <= STILL:
            i += 1
        # the run's first frames that moved as their golden frames did (a small step of the progress bar,
        # under STILL) are still playing: the frozen picture is the last of them
        while start < i and current_motion[start] > 0 and 0 < start + base < len(golden_motion) \
                and abs(current_motion[start] - golden_motion[start + base]) <= TRACKING:
            start += 1
        moving = sum(1 for k in range(start, i)
                     if 0 < k + base < len(golden_motion) and golden_motion[k + base] > MOVING)
        if moving >= MIN_FROZEN:
            runs.append(TimingEvent("frozen", start - 1, i - 1, i - start + 1))
    return runs


def with_frozen(alignment: Alignment, frozen: list[TimingEvent], *, settle: int = SEARCH) -> Alignment:
    """The alignment's events with frozen runs added, and the duplicates/drops inside a frozen run (and
    in the `settle` frames the path needs to catch up after it) folded into that run."""
    kept = [e for e in alignment.events
            if not any(f.first <= e.first and e.last <= f.last + settle for f in frozen)]
    events = sorted([*kept, *frozen], key=lambda e: e.first)
    return Alignment(path=alignment.path, events=events, start_offset=alignment.start_offset)
