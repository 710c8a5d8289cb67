"""Analytic ego trajectories for the synthetic dataset (pure numpy, no I/O).

A trajectory is defined by two smooth scalar profiles of time: speed `v(t)` (m/s, >= 0) and path curvature
`kappa(t)` (1/m, positive = left turn). Everything else follows from them:

    yaw'(t) = v(t) * kappa(t)          (yaw rate, rad/s)
    x'(t)   = v(t) * cos(yaw(t))       (anchor frame: pose at t = 0, x forward, y left, z up)
    y'(t)   = v(t) * sin(yaw(t))

with `x = y = yaw = 0` at `t = 0`. The ground is flat (`z = 0`), and the vehicle has no side slip, so the velocity
vector points along the heading. At standstill the curvature is the steering curvature of the profile (finite,
usually 0), and the yaw rate `v * kappa` is 0.

Speed and curvature (and their derivatives) are evaluated in closed form. Yaw and position are integrated once on a
fine grid (0.5 ms, trapezoid rule with the end-point derivative correction, 4th order) and interpolated with cubic
Hermite polynomials through the exact derivatives: on a constant-curvature circle they match the analytic pose to
better than 1e-7 m.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.core.errors import PipelineError

# Scenario kinds, in the order `scenario_for` cycles through them (any 6 consecutive clips cover all of them).
SCENARIO_KINDS: tuple[str, ...] = ("cruise", "left_turn", "brake", "right_turn", "s_curve", "standstill")

_GRID_DT_S = 5e-4  # integration grid step, s


def _smootherstep(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quintic smoothstep S(x) = 6x^5 - 15x^4 + 10x^3 clamped to [0, 1], and its first two derivatives.

    S', S'' vanish at both ends, so a speed change built from it has continuous acceleration and jerk.
    """
    x = np.clip(x, 0.0, 1.0)
    s = x * x * x * (x * (6.0 * x - 15.0) + 10.0)
    ds = 30.0 * x * x * (x - 1.0) ** 2
    dds = 60.0 * x * (x - 1.0) * (2.0 * x - 1.0)
    return s, ds, dds


@dataclass(frozen=True)
class Step:
    """A smooth change of a profile by `delta` between `start_s` and `start_s + duration_s`."""

    start_s: float  # s, when the change starts
    duration_s: float  # s, how long it takes (> 0)
    delta: float  # change of the profile value (same unit as the profile)

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise PipelineError(f"Step duration_s must be > 0, got {self.duration_s}")


@dataclass(frozen=True)
class Wave:
    """A sinusoid `amplitude * sin(2 pi t / period_s + phase)` added to a profile."""

    amplitude: float  # same unit as the profile
    period_s: float  # s (> 0)
    phase: float = 0.0  # rad

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise PipelineError(f"Wave period_s must be > 0, got {self.period_s}")


@dataclass(frozen=True)
class Profile:
    """A smooth scalar function of time: `base + sum(steps) + sum(waves)`, with closed-form derivatives."""

    base: float  # value before any step (unit of the profile)
    steps: tuple[Step, ...] = ()  # smooth changes, applied in any order (they add)
    waves: tuple[Wave, ...] = ()  # sinusoids (they add)

    def evaluate(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Value, first and second time derivative at `t_s` (seconds, any shape)."""
        t_s = np.asarray(t_s, dtype=np.float64)
        value = np.full_like(t_s, self.base)
        rate = np.zeros_like(t_s)
        rate2 = np.zeros_like(t_s)
        for step in self.steps:
            s, ds, dds = _smootherstep((t_s - step.start_s) / step.duration_s)
            value += step.delta * s
            rate += step.delta * ds / step.duration_s
            rate2 += step.delta * dds / step.duration_s**2
        for wave in self.waves:
            w = 2.0 * np.pi / wave.period_s
            arg = w * t_s + wave.phase
            value += wave.amplitude * np.sin(arg)
            rate += wave.amplitude * w * np.cos(arg)
            rate2 -= wave.amplitude * w * w * np.sin(arg)
        return value, rate, rate2


@dataclass(frozen=True)
class TrajectoryState:
    """Ego state at N times. All arrays have shape (N,); positions/velocities/accelerations in the anchor frame."""

    t_us: np.ndarray  # int64, microseconds on the clip timeline
    x: np.ndarray  # m, forward at t = 0
    y: np.ndarray  # m, left at t = 0
    z: np.ndarray  # m, up (flat ground: 0)
    yaw: np.ndarray  # rad, heading, counter-clockwise from the anchor x axis
    qx: np.ndarray  # orientation quaternion, scalar last
    qy: np.ndarray
    qz: np.ndarray
    qw: np.ndarray
    vx: np.ndarray  # m/s
    vy: np.ndarray
    vz: np.ndarray
    ax: np.ndarray  # m/s^2
    ay: np.ndarray
    az: np.ndarray
    speed: np.ndarray  # m/s, = norm(vx, vy, vz)
    curvature: np.ndarray  # 1/m, positive = left turn; yaw_rate / speed while moving
    yaw_rate: np.ndarray  # rad/s
    longitudinal_accel: np.ndarray  # m/s^2, d(speed)/dt
    jerk: np.ndarray  # m/s^3, d^2(speed)/dt^2


@dataclass
class Trajectory:
    """A smooth, physically plausible ego trajectory on the interval `[t_min_us, t_max_us]`.

    Evaluate it with `at(t_us)`; times outside the interval raise `ValueError` (no extrapolation).
    """

    kind: str  # scenario kind, one of SCENARIO_KINDS
    speed: Profile  # m/s
    curvature: Profile  # 1/m
    t_min_us: int  # start of the defined interval, µs
    t_max_us: int  # end of the defined interval, µs
    _grid_t: np.ndarray = field(init=False, repr=False)  # s, uniform integration grid containing 0
    _grid_values: np.ndarray = field(init=False, repr=False)  # (3, G): yaw, x, y on the grid
    _grid_rates: np.ndarray = field(init=False, repr=False)  # (3, G): their exact time derivatives

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise PipelineError(f"unknown scenario kind {self.kind!r}; expected one of {SCENARIO_KINDS}")
        if self.t_min_us > 0 or self.t_max_us <= 0:
            raise PipelineError(f"trajectory interval must contain t = 0, got [{self.t_min_us}, {self.t_max_us}] µs")
        i_lo = int(np.floor(self.t_min_us * 1e-6 / _GRID_DT_S))
        i_hi = int(np.ceil(self.t_max_us * 1e-6 / _GRID_DT_S))
        grid_t = np.arange(i_lo, i_hi + 1) * _GRID_DT_S  # contains 0.0 exactly, at index -i_lo
        zero = -i_lo
        v, dv, _ = self.speed.evaluate(grid_t)
        k, dk, _ = self.curvature.evaluate(grid_t)
        w = v * k
        yaw = _cumulative_from_zero(w, zero, dv * k + v * dk)
        c, s = np.cos(yaw), np.sin(yaw)
        x = _cumulative_from_zero(v * c, zero, dv * c - v * w * s)
        y = _cumulative_from_zero(v * s, zero, dv * s + v * w * c)
        self._grid_t = grid_t
        self._grid_values = np.stack([yaw, x, y])
        self._grid_rates = np.stack([w, v * c, v * s])

    @property
    def duration_us(self) -> int:
        return self.t_max_us - self.t_min_us

    def at(self, t_us: np.ndarray | int) -> TrajectoryState:
        """The ego state at `t_us` (int64 µs, shape (N,) or scalar → (1,))."""
        t_us = np.atleast_1d(np.asarray(t_us, dtype=np.int64))
        if t_us.size and (t_us.min() < self.t_min_us or t_us.max() > self.t_max_us):
            raise ValueError(
                f"times [{t_us.min()}, {t_us.max()}] µs outside the trajectory [{self.t_min_us}, {self.t_max_us}] µs"
            )
        t = t_us.astype(np.float64) * 1e-6
        v, dv, ddv = self.speed.evaluate(t)
        k, _, _ = self.curvature.evaluate(t)
        w = v * k
        yaw, x, y = self._hermite(t)
        c, s = np.cos(yaw), np.sin(yaw)
        zeros = np.zeros_like(t)
        return TrajectoryState(
            t_us=t_us,
            x=x,
            y=y,
            z=zeros,
            yaw=yaw,
            qx=zeros.copy(),
            qy=zeros.copy(),
            qz=np.sin(yaw / 2.0),
            qw=np.cos(yaw / 2.0),
            vx=v * c,
            vy=v * s,
            vz=zeros.copy(),
            ax=dv * c - v * w * s,
            ay=dv * s + v * w * c,
            az=zeros.copy(),
            speed=v.copy(),
            curvature=k,
            yaw_rate=w,
            longitudinal_accel=dv,
            jerk=ddv,
        )

    def _hermite(self, t: np.ndarray) -> np.ndarray:
        """Cubic Hermite interpolation of (yaw, x, y) from the grid at times `t` (s, shape (N,)) → (3, N)."""
        g, h = self._grid_t, _GRID_DT_S
        i = np.clip(np.floor((t - g[0]) / h).astype(np.int64), 0, len(g) - 2)
        u = (t - g[i]) / h
        u2, u3 = u * u, u * u * u
        h00 = 2 * u3 - 3 * u2 + 1
        h10 = u3 - 2 * u2 + u
        h01 = -2 * u3 + 3 * u2
        h11 = u3 - u2
        p, m = self._grid_values, self._grid_rates
        return h00 * p[:, i] + h10 * h * m[:, i] + h01 * p[:, i + 1] + h11 * h * m[:, i + 1]


def _cumulative_from_zero(rate: np.ndarray, zero: int, rate_derivative: np.ndarray | None = None) -> np.ndarray:
    """Integral of `rate` (sampled on the uniform grid) from grid index `zero`, so the result is 0 there.

    With `rate_derivative`, uses the corrected trapezoid rule (h/2 (f0 + f1) + h^2/12 (f0' - f1')), 4th order.
    """
    h = _GRID_DT_S
    pieces = 0.5 * h * (rate[1:] + rate[:-1])
    if rate_derivative is not None:
        pieces += h * h / 12.0 * (rate_derivative[:-1] - rate_derivative[1:])
    out = np.concatenate([[0.0], np.cumsum(pieces)])
    return out - out[zero]


# Comfort limits the scenarios are drawn within (real drivers stay well inside them).
_MAX_LONG_ACCEL = 3.5  # m/s^2
_MAX_JERK = 4.0  # m/s^3
_MAX_LAT_ACCEL = 3.5  # m/s^2
_SMOOTHERSTEP_PEAK_RATE = 1.875  # max S'(x)
_SMOOTHERSTEP_PEAK_RATE2 = 10.0 / np.sqrt(3.0)  # max |S''(x)|


def _speed_change(start_s: float, delta: float, accel: float) -> Step:
    """A speed change by `delta` m/s peaking at `accel` m/s^2, stretched if needed to keep the jerk bounded."""
    duration = max(
        _SMOOTHERSTEP_PEAK_RATE * abs(delta) / accel,
        float(np.sqrt(_SMOOTHERSTEP_PEAK_RATE2 * abs(delta) / _MAX_JERK)),
        0.5,
    )
    return Step(start_s, duration, delta)


def scenario_kind(clip_number: int) -> str:
    """The scenario kind of clip `clip_number` (cycles through SCENARIO_KINDS)."""
    return SCENARIO_KINDS[clip_number % len(SCENARIO_KINDS)]


def scenario_for(clip_number: int, seed: int, duration_s: float = 20.0, margin_s: float = 2.0) -> Trajectory:
    """The deterministic trajectory of clip `clip_number` for `seed`.

    The kind cycles through `SCENARIO_KINDS` with `clip_number`; its parameters (speeds, turn angles, timings)
    are drawn from a generator seeded by `(seed, clip_number)`. The trajectory is defined on
    `[-margin_s, duration_s + margin_s]`. Speeds stay in [0, 30] m/s, |curvature| <= 0.1 1/m, longitudinal
    acceleration <= 3.5 m/s^2, lateral acceleration <= ~3.5 m/s^2, jerk <= 4 m/s^3.
    """
    if clip_number < 0:
        raise PipelineError(f"clip_number must be >= 0, got {clip_number}")
    if not duration_s > 0 or margin_s < 0:
        raise PipelineError(f"duration_s must be > 0 and margin_s >= 0, got {duration_s}, {margin_s}")
    rng = np.random.default_rng([seed & 0xFFFFFFFF, clip_number, 0x7A11])
    kind = scenario_kind(clip_number)
    T = duration_s

    def gentle_curvature(scale: float) -> Profile:
        return Profile(
            base=float(rng.uniform(-0.5, 0.5) * scale),
            waves=(
                Wave(float(rng.uniform(0.2, 1.0) * scale), float(rng.uniform(10, 25)), float(rng.uniform(0, 6.3))),
            ),
        )

    if kind == "cruise":
        v0 = float(rng.uniform(12.0, 27.0))
        speed = Profile(
            v0, waves=(Wave(float(rng.uniform(0.3, 1.5)), float(rng.uniform(6, 14)), float(rng.uniform(0, 6.3))),)
        )
        curvature = gentle_curvature(min(0.002, 2.0 / v0**2))
    elif kind == "brake":
        v0 = float(rng.uniform(12.0, 25.0))
        v1 = 0.0 if rng.random() < 0.5 else float(rng.uniform(3.0, v0 - 6.0))
        speed = Profile(
            v0,
            steps=(
                _speed_change(float(rng.uniform(0.15, 0.4) * T), v1 - v0, float(rng.uniform(1.5, _MAX_LONG_ACCEL))),
            ),
        )
        curvature = gentle_curvature(0.001)
    elif kind == "standstill":
        v1 = float(rng.uniform(6.0, 14.0))
        speed = Profile(
            0.0, steps=(_speed_change(float(rng.uniform(0.3, 0.6) * T), v1, float(rng.uniform(1.0, 2.5))),)
        )
        curvature = Profile(0.0)
    elif kind in ("left_turn", "right_turn"):
        sign = 1.0 if kind == "left_turn" else -1.0
        v0 = float(rng.uniform(9.0, 15.0))
        kappa = float(rng.uniform(0.05, 0.1))
        v_turn = min(v0, float(np.sqrt(rng.uniform(2.0, _MAX_LAT_ACCEL) / kappa)))
        t_turn = float(rng.uniform(0.3, 0.45) * T)
        ramp = float(rng.uniform(1.0, 2.0))
        angle = float(rng.uniform(0.6, 1.0) * np.pi / 2)
        hold = max(angle / (v_turn * kappa) - ramp, 0.0)
        brake = _speed_change(0.0, v_turn - v0, float(rng.uniform(1.5, 2.5)))
        brake = Step(t_turn - 0.3 - brake.duration_s, brake.duration_s, brake.delta)
        t_exit = t_turn + 2 * ramp + hold
        speed = Profile(
            v0,
            steps=(brake, _speed_change(t_exit, float(rng.uniform(8.0, 15.0)) - v_turn, float(rng.uniform(1.0, 2.5)))),
        )
        curvature = Profile(
            0.0, steps=(Step(t_turn, ramp, sign * kappa), Step(t_turn + ramp + hold, ramp, -sign * kappa))
        )
    else:  # s_curve
        v0 = float(rng.uniform(10.0, 18.0))
        amplitude = min(float(rng.uniform(0.01, 0.03)), _MAX_LAT_ACCEL / v0**2)
        speed = Profile(
            v0, waves=(Wave(float(rng.uniform(0.2, 0.8)), float(rng.uniform(6, 14)), float(rng.uniform(0, 6.3))),)
        )
        curvature = Profile(0.0, waves=(Wave(amplitude, float(rng.uniform(6.0, 12.0)), float(rng.uniform(0, 6.3))),))
    return Trajectory(
        kind=kind,
        speed=speed,
        curvature=curvature,
        t_min_us=-round(margin_s * 1e6),
        t_max_us=round((T + margin_s) * 1e6),
    )


def arc_pose(t_s: np.ndarray, speed_mps: float, accel_mps2: float, curvature_per_m: float) -> np.ndarray:
    """Closed-form pose of a drive on a circle (or a line) with constant acceleration, from the anchor pose at t = 0.

    Arc length s = v0 t + a t^2 / 2 (the caller keeps the speed v0 + a t >= 0), heading = kappa s (rad,
    counter-clockwise), x = sin(kappa s) / kappa, y = (1 - cos(kappa s)) / kappa (kappa = 0: x = s, y = 0), m.
    Returns (*t_s.shape, 3) float64 [x, y, heading]. The pose relative to the one at any other time has the same
    form in the arc length between them, which makes these drives exact references for ego-frame trajectories.
    """
    t = np.asarray(t_s, dtype=np.float64)
    s = speed_mps * t + 0.5 * accel_mps2 * t * t
    heading = curvature_per_m * s
    if curvature_per_m == 0:
        x, y = s, np.zeros_like(s)
    else:
        x, y = np.sin(heading) / curvature_per_m, (1.0 - np.cos(heading)) / curvature_per_m
    return np.stack([x, y, heading], axis=-1)


def relative_arc_pose(arc_length_m: np.ndarray, curvature_per_m: float) -> np.ndarray:
    """Closed-form [x m, y m, heading rad] of the pose `arc_length_m` further along a circle of `curvature_per_m`
    (line for 0), in the frame of the starting pose. (*shape, 3) float64."""
    s = np.asarray(arc_length_m, dtype=np.float64)
    return arc_pose(s, 1.0, 0.0, curvature_per_m)
