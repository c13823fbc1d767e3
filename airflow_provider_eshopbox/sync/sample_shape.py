"""Where a window's rows lie, as a random sample of them tells; the slicer sizes slices by it.

The orders search returns hits in an order unrelated to time
(``api.ORDERS_SEARCH_ORDER_UNRELATED_TO_TIME``), so the first pages of a window are a random sample
of its rows; ``SampleShape.mass`` says how much of that sample lies in any stretch of the window
(see ``sync/slicing.py``).
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter

_KERNEL_SPACINGS = 4.0  # width each root-sample point is spread over, in mean spacings of the sample
_DAY_MS = 86_400_000
_FOLD_DAYS = 2  # a window this many days long or more is shaped by the time of day
_DAY_BINS = 48
_BACKGROUND_POINTS = 1.0  # sample mass spread evenly over the whole window besides the points


class SampleShape:
    """Where the window's rows lie, as its root sample tells: each sample point spread evenly over
    about one mean spacing around it (over a window of ``_FOLD_DAYS`` or more: over its bin of the
    day, on every day), a burst's points on their millisecond, plus a thin background so that no
    stretch has no mass.

    ``mass(lo, hi)`` is in sample points; a region's density is rows per point (``WindowReader._observe``),
    so a slice is sized by the sample's shape (a daily cycle, say) and the rows counted so far.
    """

    def __init__(self, start: int, end: int, stamps: list[int]) -> None:
        half = max(1.0, (end - start) * _KERNEL_SPACINGS / (2 * max(1, len(stamps))))
        # Points sharing one millisecond are a burst's (rows of a calm stretch seldom share one): its
        # mass stays on that millisecond, so a slice ending before it is not sized as if it held it.
        counts = Counter(stamps)
        self._burst_at = sorted(stamp for stamp, n in counts.items() if n > 1)
        self._burst_before = list(itertools.accumulate((counts[at] for at in self._burst_at), initial=0))
        steps: list[tuple[float, float]] = []  # where the density of points changes, and by how much
        for stamp in (stamp for stamp in stamps if counts[stamp] == 1):
            left, right = max(start, stamp - half), min(end, stamp + half)
            steps += [(left, 1 / (right - left)), (right, -1 / (right - left))]
        # The cumulative mass at each step: piecewise linear in between, so a lookup is a bisection.
        self._at: list[float] = [start]
        self._cumulative: list[float] = [0.0]
        slope = 0.0
        for at, change in sorted(steps):
            self._cumulative.append(self._cumulative[-1] + slope * (at - self._at[-1]))
            self._at.append(at)
            slope += change
        self._start = start
        self._background = _BACKGROUND_POINTS / (end - start)
        self._even = (len(stamps) + _BACKGROUND_POINTS) / (end - start)
        # A window of several days is shaped by the time of day instead: each point counts for its
        # bin of every day, so a slice's mass rests on that many times the points (orders keep
        # hours), and its error (``WindowReader._deep_fill``) is that much smaller.
        self.folds = (end - start) / _DAY_MS if end - start >= _FOLD_DAYS * _DAY_MS else 1.0
        if self.folds > 1:
            self._fold([stamp for stamp in stamps if counts[stamp] == 1], start, end)

    def _fold(self, stamps: list[int], start: int, end: int) -> None:
        """Points per millisecond in each of ``_DAY_BINS`` bins of the day, and their running sum."""
        width = _DAY_MS // _DAY_BINS
        points, covered = [0.0] * _DAY_BINS, [0.0] * _DAY_BINS
        for stamp in stamps:
            points[stamp % _DAY_MS // width] += 1
        for day in range(start - start % _DAY_MS, end, _DAY_MS):  # how much of each bin the window holds
            for i in range(_DAY_BINS):
                covered[i] += max(0, min(end, day + (i + 1) * width) - max(start, day + i * width))
        smooth = [
            (points[i - 1] + 2 * points[i] + points[(i + 1) % _DAY_BINS])
            / max(1.0, covered[i - 1] + 2 * covered[i] + covered[(i + 1) % _DAY_BINS])
            for i in range(_DAY_BINS)
        ]
        self._bin_rate = smooth
        self._day_before = list(itertools.accumulate((rate * width for rate in smooth), initial=0.0))

    def _folded_before(self, t: int) -> float:
        day, rest = divmod(t, _DAY_MS)
        width = _DAY_MS // _DAY_BINS
        i = min(rest // width, _DAY_BINS - 1)
        return day * self._day_before[-1] + self._day_before[i] + self._bin_rate[i] * (rest - i * width)

    def mass(self, lo: int, hi: int, shaped: bool = True) -> float:
        """Sample points in ``[lo, hi)``; ``shaped=False``: as if spread evenly over the window
        (one-page slices, a fraction of a point each, are sized by what the last ones held)."""
        if not shaped:
            return self._even * (hi - lo)
        bursts = (
            self._burst_before[bisect.bisect_left(self._burst_at, hi)]
            - self._burst_before[bisect.bisect_left(self._burst_at, lo)]
        )
        if self.folds > 1:
            return self._background * (hi - lo) + self._folded_before(hi) - self._folded_before(lo) + bursts
        return self._background * (hi - lo) + self._points_before(hi) - self._points_before(lo) + bursts

    def _points_before(self, t: float) -> float:
        i = bisect.bisect_right(self._at, t) - 1
        if i + 1 >= len(self._at):
            return self._cumulative[-1]
        left, right = self._at[i], self._at[i + 1]
        share = (t - left) / (right - left) if right > left else 0.0
        return self._cumulative[i] + share * (self._cumulative[i + 1] - self._cumulative[i])
