"""Feature extraction over a corpus (`trainer/extract.py` runs it), one module per job.

The work is cut into *chunks*: a few consecutive windows of one video and the frames they need, decoded and
transformed once (windows every 4 frames share 12 of their 16 frames; the transforms treat every frame on its own, so
cutting windows from transformed frames gives exactly the per-window result). A chunk crosses Ray as one pickled
payload (numpy arrays), so no column type conversion stands between the decoder and the model.

    listing (driver) -> decode tasks (CPU: probe, decode, transform; one video or one shard part per task)
                     -> model actors (forward_pooled, on GPU when the cluster has one)
                     -> the driver (gathers each video's chunks, writes a part of `videos_per_part` videos at a time)

- `config`: `ExtractConfig` and its sections, `load_config`;
- `inputs`: `Video`, `list_videos` (ids as ingest gives them), `written_video_ids` (what a rerun skips);
- `chunks`: the decode job, `Windows`, `window_plan`, `video_chunks` / `shard_chunks` -> chunk rows or a `Reject`;
- `embedder`: the model job, `Embedder` (chunk rows -> feature rows), `embed_file` (one video in this process);
- `collect`: the driver's job, `Collector` (chunks -> feature parts, rejects, progress);
- `runners`: `run_ray` (Ray Data) and `run_local` (one process), `connect`, `resource_problem`.

Per window the numbers are /v1/embed's: the same reader (`videomae.video.FrameReader`: the container's frame count
until a read proves it wrong, then the frames that decode), the same whole windows within those frames
(`videomae.video.windows`), frame indices (`videomae.video.clip_indices`), transform
(`videomae.transforms.CLIP_TRANSFORMS`, `eval` being the API's) and feature (`forward_pooled`); a video without one
whole window is rejected as the API refuses it (`too_short`, saying how many frames decode).
"""
