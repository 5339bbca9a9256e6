"""The two runners of the same work: Ray Data (decode tasks -> model actors -> the driver) and one process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import asdict

import pyarrow as pa

from trainer.extraction.chunks import CHUNK_SCHEMA, Windows, chunk_source
from trainer.extraction.collect import Collector
from trainer.extraction.config import ExtractConfig, RaySection
from trainer.extraction.embedder import Embedder
from trainer.extraction.inputs import Video


def run_local(cfg: ExtractConfig, todo: list[Video], win: Windows, collector: Collector) -> None:
    """The plain loop, in this process: decode a video, run the model, repeat (the benchmark's baseline)."""
    embedder = Embedder(cfg.model.source, cfg.model.preset, cfg.ray.batch_size, cfg.ray.torch_threads)
    chunks = chunk_source(cfg.input)
    for v in todo:
        for row in chunks(v, win, cfg.input.storage_options):
            for out in embedder.rows([row]):
                collector.add(out)


def connect(r: RaySection) -> None:
    """`RAY_ADDRESS` (set by `ray job submit`) selects a cluster; without it a local Ray starts in-process."""
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        if not sys.stdout.isatty():  # a log file or a job's log: workers' lines without colour codes
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        ray.init(num_cpus=r.num_cpus, log_to_driver=True)
    DataContext.get_current().enable_progress_bars = False  # the driver logs its own progress lines


def resource_problem(r: RaySection, resources: dict) -> str | None:
    """Why the pipeline could never run on a cluster with these resources (None: it can). The model actors hold their
    CPUs (and GPUs) for the whole job, so a decode task needs CPU left over; without it the job waits forever."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    want_gpus = r.actors * (r.gpus_per_actor if r.gpus_per_actor is not None else (1.0 if gpus > 0 else 0.0))
    if want_gpus > gpus:
        return f"ray.actors={r.actors} x ray.gpus_per_actor need {want_gpus:g} GPUs; the cluster has {gpus:g}"
    need = r.actors * r.cpus_per_actor + r.cpus_per_decode
    if need > cpus:
        return (f"ray.actors={r.actors} x ray.cpus_per_actor={r.cpus_per_actor:g} + ray.cpus_per_decode="
                f"{r.cpus_per_decode:g} (one decode task) = {need:g} CPUs; the cluster has {cpus:g}: lower ray.actors "
                f"or give each a fraction of a CPU (e.g. --set ray.cpus_per_actor={max(cpus - 1, 0.5) / r.actors:g})")
    return None


def run_ray(cfg: ExtractConfig, todo: list[Video], win: Windows, collector: Collector) -> None:
    """Decode tasks -> model actors -> this driver, streaming (Ray Data)."""
    import ray

    chunks, opts, r = chunk_source(cfg.input), cfg.input.storage_options, cfg.ray

    def decode(batch: pa.Table) -> Iterator[pa.Table]:
        for item in batch.to_pylist():
            for row in chunks(Video(**item), win, opts):
                yield pa.Table.from_pylist([row], schema=CHUNK_SCHEMA)

    gpus = r.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    # Videos as plain rows; up to 1024 blocks, so decode tasks spread over a cluster's CPUs.
    ds = ray.data.from_items([asdict(v) for v in todo], override_num_blocks=min(len(todo), 1024))
    # Decode tasks ask for the memory a slab of full-size frames takes. That also keeps them an operator of their own
    # (Ray Data fuses a task into the next actor when their resources match, as on a CPU-only cluster): they decode
    # on every free CPU while the model runs, and `actors` means model replicas.
    ds = ds.map_batches(decode, batch_size=1, batch_format="pyarrow", num_cpus=r.cpus_per_decode,
                        memory=r.decode_memory_mb * 2**20, compute=ray.data.TaskPoolStrategy(size=r.decoders))
    ds = ds.map_batches(Embedder, batch_size=max(1, r.batch_size // win.windows_per_chunk), batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=r.actors), num_gpus=gpus, num_cpus=r.cpus_per_actor,
                        fn_constructor_kwargs={"model_source": cfg.model.source, "preset": cfg.model.preset,
                                               "batch_size": r.batch_size,
                                               "torch_threads": 0 if gpus else r.torch_threads})
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            collector.add(row)


