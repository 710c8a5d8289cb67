"""Which engine runs the clips (`--engine local|ray`): `EngineConfig` and `make_engine`. Kept apart from the engines
so that the CLI can declare `--engine` without loading either one (pebble, Ray): `make_engine` imports the one it
builds, when it is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pipeline.core.errors import PipelineError
from pipeline.core.options import setting
from pipeline.engines import DEFAULT_RETRIES

if TYPE_CHECKING:
    from pipeline.engines.base import Engine

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineConfig:
    """Where clips run: `--engine`, `--ray-address`, `--ray-cpus`, `--retries`."""

    engine: Literal["local", "ray"] = setting(
        "local", help="local (a process pool here) or ray (Ray tasks: a local cluster, or --ray-address)."
    )
    # None (and no $RAY_ADDRESS): start a local cluster.
    ray_address: str | None = setting(
        None,
        help="Ray cluster to join (host:port of `ray start --head`, or auto); default: start a local one.",
        envvar="RAY_ADDRESS",
    )
    # Used only when a local cluster is started.
    ray_cpus: int | None = setting(None, help="CPUs of the local Ray cluster (default: all).")
    retries: int = setting(
        DEFAULT_RETRIES, help="Extra attempts of a failed chunk download or a clip whose worker died."
    )

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise PipelineError(f"--engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        if self.ray_cpus is not None and self.ray_cpus < 1:
            raise PipelineError(f"--ray-cpus {self.ray_cpus}: must be >= 1")
        if not 0 <= self.retries <= 20:
            raise PipelineError(f"--retries {self.retries}: must be in 0..20")


def make_engine(config: EngineConfig, workers: int) -> Engine:
    """The engine of `config`; `workers` is the local process count (Ray uses its cluster's CPUs instead)."""
    if config.engine == "ray":
        from pipeline.engines.ray_engine import RayEngine

        return RayEngine(config.ray_address, config.ray_cpus, config.retries)
    from pipeline.engines.local import LocalEngine

    return LocalEngine(workers, config.retries)


__all__ = ["ENGINES", "EngineConfig", "make_engine"]
