"""Render a forward camera's view of a textured road that follows the ego trajectory (vectorised numpy).

The world is a flat ground plane. A two-lane road runs along the ego path (the ego drives in the right lane):
lane markings and edges are laid out in road coordinates (arc length `s` along the path, signed lateral offset
`d`, positive left), so a left turn shows the road bending left, and the dashes flow past at the ego's speed.
Asphalt and verge carry a periodic multi-scale noise texture in world coordinates (mip-mapped by the pixel's
ground footprint to avoid shimmer). Above the horizon: a sky gradient and a mountain silhouette fixed in world
azimuth, which slides sideways as the ego yaws.

Per pixel, everything that depends only on the camera (ray direction, ground point in the body frame, footprint,
fog, mip level, sky elevation) is computed once. Per frame, ground points are rotated and translated into the
world (2D), the road coordinates are read bilinearly from a 1 m raster of (s, d) precomputed along the path, and
the texture is sampled (the cost per frame is in docs/RESULTS.md).

Camera: equidistant fisheye ("f-theta", like the dataset's 120° front-wide camera), 120° horizontal field of view,
1.5 m above the ground, pitched 3° down, on the vehicle's centre line.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from pipeline.core.errors import PipelineError
from pipeline.standins.trajectory import Trajectory

log = logging.getLogger(__name__)

LANE_WIDTH_M = 3.5
DASH_LENGTH_M = 3.0
DASH_PERIOD_M = 12.0
_MARKINGS = (  # (lateral offset d in m, width in m, dashed)
    (-0.5 * LANE_WIDTH_M, 0.15, False),  # right edge line
    (0.5 * LANE_WIDTH_M, 0.12, True),  # centre line, dashed
    (1.5 * LANE_WIDTH_M, 0.15, False),  # left edge line
)
_ROAD_D_MIN, _ROAD_D_MAX = -0.5 * LANE_WIDTH_M - 0.6, 1.5 * LANE_WIDTH_M + 0.6  # asphalt extent, m
_RASTER_CELL_M = 1.0
_MAX_GROUND_DIST_M = 220.0
_FOG_DIST_M = 110.0
_TEXEL_M = 0.025
_TEX_SIZE = 1024  # texels per side of the periodic noise tile (25.6 m)
_FAR = 1.0e3  # d value meaning "far from the road"


@dataclass(frozen=True)
class CameraModel:
    """A forward-looking equidistant fisheye camera on a flat-ground vehicle."""

    width: int  # px
    height: int  # px
    hfov_deg: float = 120.0  # horizontal field of view
    mount_height_m: float = 1.5  # above the ground
    pitch_down_deg: float = 3.0  # optical axis below the horizontal
    yaw_deg: float = 0.0  # mounting direction, counter-clockwise from forward (90 = looking left)

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise PipelineError(f"camera size {self.width}x{self.height} too small (min 16x16)")
        if not 10.0 <= self.hfov_deg <= 180.0:
            raise PipelineError(f"camera hfov_deg must be in [10, 180], got {self.hfov_deg}")

    def ray_directions(self) -> np.ndarray:
        """Unit ray per pixel centre in the vehicle body frame (x forward, y left, z up): (H, W, 3) float64."""
        f = (self.width / 2.0) / np.radians(self.hfov_deg / 2.0)
        u = np.arange(self.width) + 0.5 - self.width / 2.0
        v = np.arange(self.height) + 0.5 - self.height / 2.0
        du, dv = np.meshgrid(u, v)
        r = np.hypot(du, dv)
        theta = r / f
        with np.errstate(invalid="ignore", divide="ignore"):
            sx = np.where(r > 0, np.sin(theta) * du / r, 0.0)  # camera right
            sy = np.where(r > 0, np.sin(theta) * dv / r, 0.0)  # camera down
        forward, left, up = np.cos(theta), -sx, -sy
        p = np.radians(self.pitch_down_deg)
        x = forward * np.cos(p) + up * np.sin(p)
        z = -forward * np.sin(p) + up * np.cos(p)
        a = np.radians(self.yaw_deg)
        x, left = x * np.cos(a) - left * np.sin(a), x * np.sin(a) + left * np.cos(a)
        return np.stack([x, left, z], axis=-1)


@functools.lru_cache(maxsize=4)
def _noise_mips(seed: int) -> tuple[np.ndarray, ...]:
    """Periodic 1/f noise tile (zero mean, unit std at full resolution) and its 2x2-averaged mip levels."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x7E47])
    white = rng.standard_normal((_TEX_SIZE, _TEX_SIZE))
    k = np.fft.fftfreq(_TEX_SIZE)
    kk = np.hypot(*np.meshgrid(k, k))
    kk[0, 0] = 1.0
    spectrum = np.fft.fft2(white) / kk**0.9
    spectrum[0, 0] = 0.0
    tile = np.fft.ifft2(spectrum).real
    tile = (tile / tile.std()).astype(np.float32)
    levels = [tile]
    while levels[-1].shape[0] > 4:
        t = levels[-1]
        levels.append(0.25 * (t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]))
    return tuple(levels)


def _mountain_profile(seed: int, bins: int = 4096) -> np.ndarray:
    """Mountain top elevation (rad) as a periodic function of world azimuth, sampled on `bins` bins of 2 pi."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x3077])
    az = np.arange(bins) * 2.0 * np.pi / bins
    h = np.full(bins, 0.035)
    for n in range(1, 40):
        h += rng.normal(0.0, 0.03 / n**1.1) * np.sin(n * az + rng.uniform(0, 2 * np.pi))
    return np.clip(h, 0.004, None).astype(np.float32)


class RoadRenderer:
    """Renders frames of one clip: `render(t_us) -> (H, W, 3) uint8 RGB` at any time inside the trajectory."""

    def __init__(self, trajectory: Trajectory, camera: CameraModel, seed: int = 0) -> None:
        self.trajectory = trajectory
        self.camera = camera
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x5CE7E])
        self._asphalt = float(rng.uniform(85, 115))  # grey level
        self._verge = np.array([0.72, 0.9, 0.5], dtype=np.float32) * float(rng.uniform(90, 130))
        self._sky_top = np.array([70, 120, 200], dtype=np.float32) * float(rng.uniform(0.85, 1.1))
        self._sky_horizon = np.array([190, 205, 220], dtype=np.float32)
        self._haze = np.array([175, 182, 190], dtype=np.float32)
        self._mountain = np.array([95, 105, 125], dtype=np.float32)
        self._mips = _noise_mips(seed)
        self._mountains = _mountain_profile(seed)
        self._build_road_raster()
        self._build_camera_tables()

    # --- precomputation -----------------------------------------------------------------------------------------

    def _build_road_raster(self) -> None:
        """Sample the path by arc length (straight extensions at both ends) and rasterise (s, d) around it."""
        tr = self.trajectory
        t_us = np.arange(tr.t_min_us, tr.t_max_us + 1, 10_000, dtype=np.int64)
        state = tr.at(t_us)
        arc = np.concatenate([[0.0], np.cumsum(0.5 * (state.speed[1:] + state.speed[:-1]) * 1e-2)])
        step = 0.5
        s_path = np.arange(0.0, arc[-1] + step, step)
        t_of_s = np.interp(s_path, arc, t_us.astype(np.float64)).round().astype(np.int64)
        on_path = tr.at(np.clip(t_of_s, tr.t_min_us, tr.t_max_us))
        px, py, yaw = on_path.x, on_path.y, on_path.yaw
        ext = np.arange(step, _MAX_GROUND_DIST_M + 50.0, step)
        back = (px[0] - ext * np.cos(yaw[0]), py[0] - ext * np.sin(yaw[0]), np.full_like(ext, yaw[0]), -ext)
        ahead = (px[-1] + ext * np.cos(yaw[-1]), py[-1] + ext * np.sin(yaw[-1]), np.full_like(ext, yaw[-1]))
        px = np.concatenate([back[0][::-1], px, ahead[0]])
        py = np.concatenate([back[1][::-1], py, ahead[1]])
        yaw = np.concatenate([back[2][::-1], yaw, ahead[2]])
        s_all = np.concatenate([back[3][::-1], s_path, s_path[-1] + ext])

        margin = _MAX_GROUND_DIST_M + 2 * _RASTER_CELL_M
        x0, y0 = state.x.min() - margin, state.y.min() - margin
        nx = int(np.ceil((state.x.max() + margin - x0) / _RASTER_CELL_M)) + 1
        ny = int(np.ceil((state.y.max() + margin - y0) / _RASTER_CELL_M)) + 1
        gx, gy = np.meshgrid(x0 + np.arange(nx) * _RASTER_CELL_M, y0 + np.arange(ny) * _RASTER_CELL_M)
        points = np.stack([gx.ravel(), gy.ravel()], axis=1)
        dist, idx = cKDTree(np.stack([px, py], axis=1)).query(points, distance_upper_bound=25.0)
        near = np.isfinite(dist)
        s_grid = np.zeros(len(points), dtype=np.float32)
        d_grid = np.full(len(points), _FAR, dtype=np.float32)
        i = idx[near]
        ex, ey = points[near, 0] - px[i], points[near, 1] - py[i]
        c, s = np.cos(yaw[i]), np.sin(yaw[i])
        s_grid[near] = s_all[i] + ex * c + ey * s
        d_grid[near] = -ex * s + ey * c
        # Keep the border "far" so that clamped lookups outside the raster land off-road.
        d_grid = d_grid.reshape(ny, nx)
        d_grid[[0, -1], :] = _FAR
        d_grid[:, [0, -1]] = _FAR
        self._raster_s, self._raster_d = s_grid, d_grid.ravel()  # flat (ny * nx,) float32
        self._raster_origin = (x0, y0)
        self._raster_shape = (ny, nx)
        log.debug("road raster %dx%d cells, path %.0f m", nx, ny, s_path[-1])

    def _build_camera_tables(self) -> None:
        cam = self.camera
        rays = cam.ray_directions().reshape(-1, 3)
        down = -rays[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_hit = np.where(down > 1e-6, cam.mount_height_m / down, np.inf)
        gx, gy = t_hit * rays[:, 0], t_hit * rays[:, 1]
        rho = np.hypot(gx, gy)
        ground = rho < _MAX_GROUND_DIST_M
        # Ground footprint of a pixel (m): geometric mean of the ground-point steps to the right/bottom neighbours.
        grid_x = np.where(ground, gx, np.nan).reshape(cam.height, cam.width)
        grid_y = np.where(ground, gy, np.nan).reshape(cam.height, cam.width)
        du = np.hypot(*(np.gradient(g, axis=1) for g in (grid_x, grid_y)))
        dv = np.hypot(*(np.gradient(g, axis=0) for g in (grid_x, grid_y)))
        footprint = np.sqrt(np.nan_to_num(du, nan=1e3) * np.nan_to_num(dv, nan=1e3)).ravel()
        footprint = np.maximum(footprint, 1e-3)

        n_levels = len(self._mips)
        level = np.clip(np.floor(np.log2(footprint / _TEXEL_M) + 0.5), 0, n_levels - 1).astype(np.int64)
        ground_idx = np.flatnonzero(ground)
        order = np.argsort(level[ground_idx], kind="stable")
        ground_idx = ground_idx[order]
        lv = level[ground_idx]
        self._level_slices = [
            (lev, int(np.searchsorted(lv, lev, "left")), int(np.searchsorted(lv, lev, "right")))
            for lev in range(n_levels)
        ]
        self._ground_idx = ground_idx
        self._gx = gx[ground_idx].astype(np.float32)
        self._gy = gy[ground_idx].astype(np.float32)
        self._footprint = np.maximum(footprint[ground_idx], 0.01).astype(np.float32)
        self._fog = (1.0 - np.exp(-rho[ground_idx] / _FOG_DIST_M)).astype(np.float32)[:, None]

        elevation = np.arcsin(np.clip(rays[:, 2], -1, 1))
        sky = ~ground & (elevation > -0.02)
        grad = np.clip(elevation / 0.6, 0, 1)[:, None] ** 0.7
        sky_color = self._sky_horizon * (1 - grad) + self._sky_top * grad
        base = np.where(sky[:, None], sky_color, self._haze).astype(np.uint8)  # far ground below the horizon: haze
        self._base = base
        # Only pixels low enough to be covered by a mountain change from frame to frame.
        band = np.flatnonzero(sky & (elevation < float(self._mountains.max()) + 1e-3))
        self._band_idx = band
        self._band_az = np.arctan2(rays[band, 1], rays[band, 0]).astype(np.float32)
        self._band_el = elevation[band].astype(np.float32)
        self._band_sky = base[band]
        self._inv_fp = (1.0 / self._footprint).astype(np.float32)
        fog = self._fog[:, 0]
        self._fog_keep = (1.0 - fog).astype(np.float32)
        self._fog_add = [(self._haze[c] * fog).astype(np.float32) for c in range(3)]

    # --- per frame ----------------------------------------------------------------------------------------------

    def render(self, t_us: int) -> np.ndarray:
        """The camera image at time `t_us` (µs on the clip timeline): (H, W, 3) uint8 RGB."""
        st = self.trajectory.at(np.array([t_us], dtype=np.int64))
        x0, y0, yaw = float(st.x[0]), float(st.y[0]), float(st.yaw[0])
        c, s = np.float32(np.cos(yaw)), np.float32(np.sin(yaw))
        wx = self._gx * c - self._gy * s + np.float32(x0)
        wy = self._gx * s + self._gy * c + np.float32(y0)

        s_road, d_road = self._road_coords(wx, wy)
        noise = self._sample_noise(wx, wy)
        inv_fp = self._inv_fp

        # Anti-aliased coverages: ramp(x) = clamp(x / footprint + 0.5, 0, 1) for a signed distance x (m) inside.
        def ramp(inside_m: np.ndarray) -> np.ndarray:
            inside_m *= inv_fp
            inside_m += 0.5
            np.maximum(inside_m, 0.0, out=inside_m)
            return np.minimum(inside_m, 1.0, out=inside_m)

        half, mid = 0.5 * (_ROAD_D_MAX - _ROAD_D_MIN), 0.5 * (_ROAD_D_MAX + _ROAD_D_MIN)
        road = ramp(half - np.abs(d_road - np.float32(mid)))
        paint = np.zeros_like(d_road)
        for d0, width, dashed in _MARKINGS:
            cover = ramp(np.float32(0.5 * width) - np.abs(d_road - np.float32(d0)))
            if dashed:
                m = np.mod(s_road - np.float32(0.5 * DASH_LENGTH_M - 0.5 * DASH_PERIOD_M), np.float32(DASH_PERIOD_M))
                m -= np.float32(0.5 * DASH_PERIOD_M)
                cover *= ramp(np.float32(0.5 * DASH_LENGTH_M) - np.abs(m))
            np.maximum(paint, cover, out=paint)

        asphalt = np.float32(self._asphalt) + np.float32(14.0) * noise
        verge_gain = np.float32(1.0) + np.float32(0.22) * noise
        out = np.empty((len(road), 3), dtype=np.uint8)
        for ch in range(3):
            verge = np.float32(self._verge[ch]) * verge_gain
            color = verge + road * (asphalt - verge)
            color += paint * (np.float32(225.0) - color)
            color *= self._fog_keep
            color += self._fog_add[ch]
            np.maximum(color, 0.0, out=color)
            np.minimum(color, 255.0, out=color)
            out[:, ch] = color

        frame = self._base.copy()
        frame.view("V3").ravel()[self._ground_idx] = out.view("V3").ravel()
        frame[self._band_idx] = self._mountain_band(yaw)
        return frame.reshape(self.camera.height, self.camera.width, 3)

    def _road_coords(self, wx: np.ndarray, wy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear (s, d) road coordinates (m) at world points (m) from the raster."""
        ny, nx = self._raster_shape
        fx = (wx - np.float32(self._raster_origin[0])) * np.float32(1.0 / _RASTER_CELL_M)
        fy = (wy - np.float32(self._raster_origin[1])) * np.float32(1.0 / _RASTER_CELL_M)
        np.minimum(np.maximum(fx, 0.0, out=fx), nx - 1.001, out=fx)
        np.minimum(np.maximum(fy, 0.0, out=fy), ny - 1.001, out=fy)
        ix, iy = fx.astype(np.int32), fy.astype(np.int32)
        ax, ay = fx - ix, fy - iy
        w11 = ax * ay
        w10, w01 = ax - w11, ay - w11
        w00 = 1.0 - ax - w01
        i00 = iy * nx + ix
        i01 = i00 + nx
        out = []
        for grid in (self._raster_s, self._raster_d):
            v = grid[i00] * w00
            v += grid[i00 + 1] * w10
            v += grid[i01] * w01
            v += grid[i01 + 1] * w11
            out.append(v)
        return out[0], out[1]

    def _sample_noise(self, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
        """Texture value per ground pixel, each from the mip level matching its footprint (nearest texel)."""
        out = np.empty_like(wx)
        for level, a, b in self._level_slices:
            if a == b:
                continue
            tex = self._mips[level]
            size = tex.shape[0]
            scale = np.float32(1.0 / (_TEXEL_M * (1 << level)))
            u = np.floor(wx[a:b] * scale).astype(np.int64) & (size - 1)
            v = np.floor(wy[a:b] * scale).astype(np.int64) & (size - 1)
            out[a:b] = tex[v, u]
        return out

    def _mountain_band(self, yaw: float) -> np.ndarray:
        """Colours of the near-horizon sky band: mountain where the silhouette (fixed in world azimuth) covers it."""
        bins = self._mountains.shape[0]
        az = np.mod(self._band_az + np.float32(yaw), np.float32(2 * np.pi))
        top = self._mountains[np.minimum((az * np.float32(bins / (2 * np.pi))).astype(np.int64), bins - 1)]
        is_mountain = (self._band_el < top)[:, None]
        return np.where(is_mountain, self._mountain.astype(np.uint8), self._band_sky)
