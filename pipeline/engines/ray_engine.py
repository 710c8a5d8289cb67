"""The Ray engine: the same per-chunk and per-clip work as `pipeline.engines.local.LocalEngine`, as Ray tasks.

Plain tasks, not Ray Data: the unit of work is coarse (one clip is seconds of decode and encode and writes its own
files), the disk bound needs explicit control over when a chunk's zips arrive and leave, and the results must
reach the driver in clip order. Each chunk is pinned to one node (its download, cuts and deletion), so source zips
may sit on node-local disk; at most `max_in_flight` chunks are pinned to a node at once. The output directory must
be on storage every node sees. A download is a task with `num_cpus=0` (it waits on the network, and the driver's
window already bounds how many run), and a node's downloads run one after the other (each waits for the one
before, as the local engine's one download thread), so the first chunk's transfer does not share the link with the
second's; a cut takes one CPU. Cuts depend on their chunk's download through its object
ref, so Ray starts them as soon as it is verified, while the previous chunk is still being cut. A chunk's clean-up
task is not waited for: the next download on its node depends on it, so the disk bound holds without stalling the
driver.

A new Ray worker process pays seconds of imports (pandas, PyAV, huggingface_hub) on its first task, where a forked
local worker pays none. So the engine warms its workers when it starts or joins a cluster: one task per CPU of every
node, plus one CPU-less task per node (the worker that downloads while all CPUs cut), imports the modules of the
work (`WORK_MODULES`); a local cluster started here keeps idle workers alive, so they stay warm between chunks. Every
worker process of the session, warmed or started later, imports those modules before its first task (Ray's
`worker_process_setup_hook`), so a cancelled task never interrupts a first import.

Ray is imported only here, and only when this engine is used.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.engines import DEFAULT_RETRIES
from pipeline.engines.base import (
    ChunkResults,
    ChunkSlot,
    ChunkState,
    ChunkWork,
    ClipOps,
    OnInterrupt,
    after_retries,
    complete_chunk_results,
    failure_reason,
    fetch_chunk,
    free_chunk,
    raise_environment_fault,
)

log = logging.getLogger(__name__)

RAY_PACKAGE = "ray"
CUT_CPUS = 1
DOWNLOAD_CPUS = 0
# Ray's own loggers that print set-up chatter on every start (token authentication, "Started a local Ray instance").
_NOISY_LOGGERS = ("ray", "ray._private.authentication.authentication_token_setup", "ray._private.worker")
_PROBE_TIMEOUT_S = 5.0
# How long a local cluster keeps an idle worker above its CPU count (Ray's default: 1 s).
_IDLE_WORKER_KEEP_MS = 10 * 60 * 1000
# Tries to start a local cluster.
_LOCAL_START_ATTEMPTS = 3
# How long an interrupted run waits for its cancelled tasks to stop before it returns.
_CANCEL_WAIT_S = 30.0
# Ray's switches that a local cluster started here turns off ("0") unless their variable is set already: variable ->
# the constant of `ray._private.ray_constants` that ray reads it into when it is imported.
_LOCAL_SWITCHES = {
    # off: the node on the loopback address (one node: its processes and their traffic stay on 127.0.0.1, not on
    # the machine's network address, Ray's default on Linux)
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "ENABLE_RAY_CLUSTER",
    # off: the workers run this interpreter and see this code already, where under `uv run` Ray would start each
    # through `uv run` in a packaged copy of the working directory with a venv of its own
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "RAY_ENABLE_UV_RUN_RUNTIME_ENV",
}
# What the cut and download tasks import (by name: this module does not depend on the stages), with the modules a
# download imports only when it runs (the Hub client, the clip index's parquet reader).
WORK_MODULES = (
    "pipeline.stages.segment.clip",
    "pipeline.stages.download.stage",
    "huggingface_hub.hf_api",
    "pyarrow.parquet",
)
# Seconds a warm-up task holds its CPU at least, so that every worker process of a node gets one of them (a task
# that ended at once would hand its worker the next one).
_WARM_HOLD_S = 0.5
# How long start-up waits for the warm-up (a busy cluster may not free the CPUs); the run goes on either way.
_WARM_TIMEOUT_S = 300.0


def import_ray() -> Any:
    """`ray`, or a PipelineError naming the package to install."""
    try:
        import ray
    except ImportError:
        raise PipelineError(
            f"--engine ray: the {RAY_PACKAGE!r} package is not installed (`uv add {RAY_PACKAGE}` or "
            f"`pip install {RAY_PACKAGE}`), or use --engine local"
        ) from None
    return ray


def probe_address(address: str) -> None:
    """PipelineError (one line) unless something accepts TCP connections at `address` (host:port or ray://host:port)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise PipelineError(f"--ray-address {address!r}: expected host:port (of `ray start --head`) or 'auto'")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise PipelineError(
            f"--ray-address {address}: no Ray cluster answers there ({err.strerror or type(err).__name__}); "
            "start one with `ray start --head`, or omit the address to run a local cluster"
        ) from None


@contextlib.contextmanager
def _switches_as_set() -> Iterator[None]:
    """For the `ray.init` inside, the constants of `_LOCAL_SWITCHES` as their variables say now.

    Ray reads them when it is imported, which may have come before they were set (a cluster joined earlier in this
    process); they are put back afterwards.
    """
    from ray._private import ray_constants

    saved = {name: getattr(ray_constants, name) for name in _LOCAL_SWITCHES.values() if hasattr(ray_constants, name)}
    for variable, name in _LOCAL_SWITCHES.items():
        if name in saved:
            setattr(ray_constants, name, os.environ[variable].lower() in ("1", "true"))
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ray_constants, name, value)


def _quiet_ray_logs() -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if name == "ray" else logging.ERROR)


def _cut(job: Any, ops: ClipOps, *_after: object) -> dict:
    return ops.cut(job, ops.config)


def _fetch(work: ChunkWork, retries: int, previous: list[Any], *_after: object) -> bool:
    """Download a chunk once the node's previous download (`previous`: its ref, not resolved) has ended.

    Waiting on the ref rather than depending on it: a download that failed must not fail the next one.
    """
    if previous:
        import ray

        ray.wait(previous, num_returns=len(previous))
    fetch_chunk(work, retries)
    return True


def import_work_modules() -> None:
    """Import `WORK_MODULES`: every worker process of a run's session does so when it starts, before its first task.

    Ray cancels a running task with a KeyboardInterrupt; one that landed in the middle of a task's first import of
    pandas would leave the module half-initialised in that worker for good, and every later task there would fail.
    """
    for name in WORK_MODULES:
        importlib.import_module(name)


def _warm(modules: Sequence[str], hold_s: float) -> int:
    """Import `modules` in this worker process, then hold its CPU until `hold_s` after the start; its pid."""
    start = time.monotonic()
    for name in modules:
        importlib.import_module(name)
    time.sleep(max(0.0, hold_s - (time.monotonic() - start)))
    return os.getpid()


class RayEngine:
    """Run clips as Ray tasks on the cluster at `address` (or $RAY_ADDRESS), else on a local cluster started here."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        retries: int = DEFAULT_RETRIES,
        preload: Sequence[str] = WORK_MODULES,
    ) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.retries = retries
        self.preload = tuple(preload)
        # Seconds this engine spent starting or joining the cluster, and warming its workers (0 for a session it
        # found already running).
        self.start_s = self.warm_s = 0.0
        self._ray: Any = None
        self._started = False
        self._refs: set[Any] = set()
        self._functions: dict[Callable, Any] = {}

    def describe(self) -> str:
        return f"ray ({self.address or 'local cluster'})"

    # --- the cluster ---------------------------------------------------------------------------------------------

    def __enter__(self) -> RayEngine:
        if not self.address:
            for variable in _LOCAL_SWITCHES:
                os.environ.setdefault(variable, "0")
        ray = self._ray = import_ray()
        if ray.is_initialized():  # the caller's session (e.g. a test's cluster, warmed when it began): use it
            return self
        started = time.perf_counter()
        if self.address and self.address not in ("auto", "local"):
            probe_address(self.address)
        _quiet_ray_logs()
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
            "runtime_env": {"worker_process_setup_hook": f"{__name__}.{import_work_modules.__name__}"},
        }
        if not self.address:
            kwargs["num_cpus"] = self.num_cpus
            # The raylet gives up when its metrics agent takes long to register: it does on a busy machine.
            os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
            # Download and clean-up tasks (num_cpus=0) run in workers beyond the CPU count, which Ray kills after
            # 1 s idle by default: every chunk would then pay new worker processes (Python + imports) again.
            os.environ.setdefault("RAY_idle_worker_killing_time_threshold_ms", str(_IDLE_WORKER_KEEP_MS))
            # Nothing reads this cluster's metrics (no dashboard): not exporting them halves an idle cluster's CPU.
            os.environ.setdefault("RAY_enable_metrics_collection", "0")
            # Ray starts workers at nice 15, below the driver and everything else on the machine, which then preempt
            # the cuts (docs/SCALE.md); the local pool's workers run at the driver's priority, and so do these.
            os.environ.setdefault("RAY_worker_niceness", "0")
        # A local node gives up starting after Ray's fixed 30 s when its agents are slow (a busy machine): try again.
        attempts = 1 if self.address else _LOCAL_START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                with contextlib.nullcontext() if self.address else _switches_as_set():
                    ray.init(address=self.address, **kwargs)
                break
            except Exception as err:  # noqa: BLE001 - ray raises bare Exceptions for a node that fails to start
                ray.shutdown()
                if attempt == attempts:
                    where = self.address or f"local cluster (after {attempts} attempts)"
                    raise PipelineError(f"--ray-address {where}: {failure_reason(err)}") from None
                log.warning("ray: the local cluster did not start (%s); trying again", failure_reason(err))
        self._started = True
        self.start_s = time.perf_counter() - started
        resources = ray.cluster_resources()
        log.info(
            "ray: %s with %d node(s), %g CPU(s) in %.1f s",
            "joined " + self.address if self.address else "started a local cluster",
            len(self._nodes()),
            resources.get("CPU", 0),
            self.start_s,
        )
        if self.preload:
            self.warm_up(self.preload)
        return self

    def warm_up(self, modules: Sequence[str]) -> set[int]:
        """Start every node's worker processes and import `modules` in them; the pids warmed. Failures are logged."""
        ray, started = self._ray, time.perf_counter()
        cpus = {n["NodeID"]: int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")}
        refs = []
        for node in self._nodes():
            for num_cpus in [CUT_CPUS] * cpus[node] + [DOWNLOAD_CPUS]:
                refs.append(self._track(self._remote(_warm, num_cpus, node).remote(tuple(modules), _WARM_HOLD_S)))
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=_WARM_TIMEOUT_S)
        pids = set()
        for ref in ready:
            try:
                pids.add(ray.get(ref))
            except ray.exceptions.RayError as err:
                log.warning("ray: a worker could not import %s (%s)", ", ".join(modules), failure_reason(err))
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        self._refs.difference_update(refs)
        self.warm_s = time.perf_counter() - started
        log.info("ray: %d worker process(es) warmed in %.1f s", len(pids), self.warm_s)
        return pids

    def __exit__(self, exc_type, exc, tb) -> None:
        ray = self._ray
        if ray is None:
            return
        if exc_type is not None and self._refs:  # Ctrl-C or an error: stop the work this run started on the cluster
            refs = list(self._refs)
            for ref in refs:
                # not force: the task gets a KeyboardInterrupt and cleans up as a Ctrl-C'ed local worker does
                with contextlib.suppress(Exception):  # the task may have finished, or its worker died already
                    ray.cancel(ref, force=False)
            with contextlib.suppress(Exception):
                ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_WAIT_S)
        self._refs.clear()
        if self._started:
            ray.shutdown()
            self._started = False

    def _nodes(self) -> list[str]:
        """Alive nodes with CPUs, sorted by id."""
        return sorted(n["NodeID"] for n in self._ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0)

    def _remote(self, fn: Callable, num_cpus: float, node: str | None = None) -> Any:
        options: dict[str, Any] = {"num_cpus": num_cpus, "max_retries": self.retries}
        if node is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        if fn not in self._functions:
            self._functions[fn] = self._ray.remote(fn)
        return self._functions[fn].options(**options)

    def _track(self, ref: Any) -> Any:
        self._refs.add(ref)
        return ref

    def _result(self, ref: Any, job: Any, ops: ClipOps) -> dict:
        """The record of a cut task, or a skipped record saying why it failed after its retries."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None) or err
            raise_environment_fault(cause)  # a full disk on a node stops the run; the chunk's zips are kept
            return ops.skipped(job, failure_reason(cause))
        except ray.exceptions.RayError as err:
            return ops.skipped(job, f"ray: {failure_reason(err)} {after_retries(self.retries)}")
        finally:
            self._refs.discard(ref)

    def _task_ops(self, ops: ClipOps) -> ClipOps:
        """`ops` with `workers` set to this node's core count, which gives each cut one decoder thread (a task holds
        one CPU; `SegmentConfig.encode_settings`); the outputs do not change."""
        config = ops.config
        if hasattr(config, "workers"):
            cores = os.cpu_count() or 1
            config = replace(config, workers=max(1, cores))
        return replace(ops, config=config)

    # --- the work ------------------------------------------------------------------------------------------------

    def map_clips(self, jobs: Sequence[Any], ops: ClipOps) -> Iterator[dict]:
        """Submit one task per clip now; yield their records in job order."""
        task_ops = self._ray.put(self._task_ops(ops))
        cut = self._remote(_cut, CUT_CPUS)
        refs = [self._track(cut.remote(job, task_ops)) for job in jobs]
        return (self._result(ref, job, ops) for ref, job in zip(refs, jobs, strict=True))

    def run_chunks(
        self, works: Iterable[ChunkWork], ops: ClipOps, max_in_flight: int, on_interrupt: OnInterrupt = None
    ) -> ChunkResults:
        """Download, cut and free chunks, at most `max_in_flight` per node; yield (job, record) in order.

        `on_interrupt` is not called: the transfers run in download tasks, and cancelling them (`__exit__`) raises
        KeyboardInterrupt in the task, which stops its transfers as Ctrl-C does in one process.
        """
        return self._chunk_results(iter(works), ops, max_in_flight)

    def _chunk_results(self, works: Iterator[ChunkWork], ops: ClipOps, max_in_flight: int) -> ChunkResults:
        ray = self._ray
        task_ops = ray.put(self._task_ops(ops))
        nodes = self._nodes()
        load = dict.fromkeys(nodes, 0)
        # Per node, the clean-up tasks of chunks done: each releases a slot, and the next download there waits for it.
        freeing: dict[str, deque[Any]] = {n: deque() for n in nodes}
        # Per node, its latest download: the next one starts when it ends, so the first chunk is not slowed down by
        # the second (one download at a time per node, as the local engine's download thread).
        last_fetch: dict[str, Any] = {}
        window: deque[ChunkSlot] = deque()

        def top_up() -> None:
            while (free := [n for n in nodes if load[n] < max_in_flight]) and (work := next(works, None)):
                if work.complete:
                    window.append(ChunkSlot(work, ChunkState.COMPLETE))
                    continue
                node = min(free, key=lambda n: load[n])
                load[node] += 1
                after = [freeing[node].popleft()] if freeing[node] else []
                fetch = self._remote(_fetch, DOWNLOAD_CPUS, node)
                previous = [last_fetch[node]] if node in last_fetch else []
                fetched = last_fetch[node] = self._track(fetch.remote(work, self.retries, previous, *after))
                cut = self._remote(_cut, CUT_CPUS, node)
                clips = [self._track(cut.remote(j, task_ops, fetched)) for j in work.jobs]
                window.append(ChunkSlot(work, ChunkState.CUTTING, fetched, clips, node=node, steps=tuple(after)))

        top_up()
        while window:
            slot = window.popleft()
            if slot.state is ChunkState.COMPLETE:  # nothing fetched; leftovers of an interrupted run are freed here
                yield from complete_chunk_results(slot.work, ops)
            else:
                for job, ref in zip(slot.work.jobs, slot.clips, strict=True):
                    yield job, self._result(ref, job, ops)
                if slot.work.free is not None:
                    freeing[slot.node].append(
                        self._track(self._remote(free_chunk, DOWNLOAD_CPUS, slot.node).remote(slot.work))
                    )
                load[slot.node] -= 1
                self._refs.difference_update((slot.fetched, *slot.steps))
            top_up()
        for ref in [ref for refs in freeing.values() for ref in refs]:  # every zip is gone when the run returns
            ray.get(ref)
            self._refs.discard(ref)


__all__ = ["CUT_CPUS", "DOWNLOAD_CPUS", "RAY_PACKAGE", "WORK_MODULES", "RayEngine", "import_ray", "probe_address"]
