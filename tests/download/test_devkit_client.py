"""Independent client: NVIDIA's devkit (`physical_ai_av`), unmodified, downloads a synthetic chunk from the local
server and reads back the generator's ground truth (speed, curvature, frame indices at requested timestamps)."""

import numpy as np
import pytest

from pipeline.standins.frame_code import decode_frame_index
from pipeline.standins.repo import clip_truth, frame_timestamps_us

CAMERA = "camera_front_wide_120fov"


@pytest.fixture(scope="module")
def devkit_reads(hub_server, synthetic_repo, tmp_path_factory):
    """Run the devkit once (module scope); return what it read for every clip of chunk 1."""
    from physical_ai_av import PhysicalAIAVDatasetInterface

    mp = pytest.MonkeyPatch()
    try:
        from tests.fixtures.hub_fixtures import point_huggingface_hub_at

        point_huggingface_hub_at(mp, hub_server.endpoint, tmp_path_factory.mktemp("hf_home"))
        hub_server.reset_counts()
        devkit = PhysicalAIAVDatasetInterface(
            cache_dir=tmp_path_factory.mktemp("devkit_cache"), confirm_download_threshold_gb=float("inf")
        )
        devkit.download_chunk_features(1, features=["egomotion", CAMERA], max_workers=2)
        data_gets = sorted(r.path for r in hub_server.data_gets())
        reads = {}
        for clip in synthetic_repo.clips_of(chunk=1):
            reads[clip.clip_id] = (
                devkit.get_clip_feature(clip.clip_id, "egomotion"),
                devkit.get_clip_feature(clip.clip_id, CAMERA),
            )
        return devkit, data_gets, reads
    finally:
        mp.undo()


def test_devkit_sees_the_repository(devkit_reads, synthetic_repo, hub_server):
    devkit, data_gets, _ = devkit_reads
    assert devkit.revision == hub_server.commit  # "main" resolved through the refs API
    assert sorted(devkit.clip_index.index) == sorted(synthetic_repo.clip_ids)
    for clip in synthetic_repo.clips:
        assert devkit.get_clip_chunk(clip.clip_id) == clip.chunk
        assert devkit.clip_index.at[clip.clip_id, "split"] == clip.split
    assert {
        "labels/egomotion/egomotion.chunk_0001.zip",
        "camera/camera_front_wide_120fov/camera_front_wide_120fov.chunk_0001.zip",
    } <= set(data_gets)


def test_devkit_egomotion_equals_ground_truth(devkit_reads, synthetic_repo):
    _, _, reads = devkit_reads
    duration_us = round(synthetic_repo.config.duration_s * 1e6)
    t_us = np.linspace(0, duration_us, 97).astype(np.int64)
    for clip_id, (ego, _) in reads.items():
        state = ego(t_us)
        truth = clip_truth(synthetic_repo, clip_id).at(t_us)
        speed = np.linalg.norm(state.velocity, axis=1)
        # linear interpolation of ~100 Hz samples of smooth profiles (|accel| <= 3.5 m/s^2, jerk <= 4 m/s^3)
        np.testing.assert_allclose(speed, truth.speed, atol=2e-3)
        np.testing.assert_allclose(state.curvature[:, 0], truth.curvature, atol=1e-4)
        np.testing.assert_allclose(state.pose.translation[:, 0], truth.x, atol=1e-3)
        np.testing.assert_allclose(state.pose.translation[:, 1], truth.y, atol=1e-3)


def test_devkit_frames_are_the_requested_ones(devkit_reads, synthetic_repo):
    _, _, reads = devkit_reads
    for clip_id, (_, reader) in reads.items():
        frame_ts = frame_timestamps_us(synthetic_repo.config, synthetic_repo.clip(clip_id), CAMERA)
        wanted = np.array([0, 1, 29, 30, 31, 299, len(frame_ts) - 1])
        # a time just before the next frame still selects this one ("closest frame before")
        requested = np.concatenate([frame_ts[wanted], frame_ts[wanted[:-1] + 1] - 1])
        images, got_ts = reader.decode_images_from_timestamps(requested)
        expected = np.concatenate([wanted, wanted[:-1]])
        assert images.shape == (len(requested), synthetic_repo.config.height, synthetic_repo.config.width, 3)
        np.testing.assert_array_equal(got_ts, frame_ts[expected])
        assert [decode_frame_index(img) for img in images] == expected.tolist()
