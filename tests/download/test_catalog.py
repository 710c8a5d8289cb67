"""catalog: features.csv parsing checked against NVIDIA's devkit reader, chunk id specs, clip index."""

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import standins
from pipeline.av import catalog
from pipeline.core.errors import PipelineError

PACKAGED_FEATURES = Path(standins.__file__).parent / "data" / "features.csv"


@pytest.fixture(scope="module")
def features():
    return catalog.read_features(PACKAGED_FEATURES)


def test_paths_and_members_match_the_devkit(features):
    """The devkit's own Features class, fed the same file, derives the same paths and member names."""
    import json

    from physical_ai_av.dataset import Features

    df = pd.read_csv(PACKAGED_FEATURES, index_col="feature")
    df["clip_files_in_zip"] = df["clip_files_in_zip"].map(json.loads, na_action="ignore")
    devkit = Features(df)
    assert set(features) == devkit.ALL
    clip_id = "25cd4769-5dcf-4b53-a351-bf2c5deb6124"
    for name, feature in features.items():
        for chunk in (0, 7, 3145):
            assert catalog.chunk_file(feature, chunk) == devkit.get_chunk_feature_filename(chunk, name)
        if feature.is_zip:
            expected = devkit.get_clip_files_in_zip(clip_id, name)
            assert {a: catalog.member_name(feature, a, clip_id) for a in feature.clip_files_in_zip} == expected
        else:
            assert feature.directory == "calibration"


def test_known_rows(features):
    ego, cam = features["egomotion"], features["camera_front_wide_120fov"]
    assert catalog.chunk_file(ego, 3) == "labels/egomotion/egomotion.chunk_0003.zip"
    assert catalog.chunk_file(cam, 12) == "camera/camera_front_wide_120fov/camera_front_wide_120fov.chunk_0012.zip"
    assert catalog.member_name(cam, "video", "abc") == "abc.camera_front_wide_120fov.mp4"
    assert catalog.member_name(cam, "frame_timestamps", "abc") == "abc.camera_front_wide_120fov.timestamps.parquet"
    with pytest.raises(PipelineError, match="no member 'video'.*egomotion"):
        catalog.member_name(ego, "video", "abc")


def test_malformed_features_csv_names_the_file():
    with pytest.raises(PipelineError, match="x.csv: missing column"):
        catalog.parse_features_csv("feature,directory\nego,labels\n", source="x.csv")
    bad = 'feature,directory,chunk_path,clip_files_in_zip\nego,labels,a_{chunk_id:04d}.zip,"{not json"\n'
    with pytest.raises(PipelineError, match="x.csv line 2: clip_files_in_zip is not JSON"):
        catalog.parse_features_csv(bad, source="x.csv")


def test_feature_name_validation_lists_valid_names(features):
    assert catalog.validate_feature_names(["egomotion", "egomotion"], features) == ["egomotion"]
    with pytest.raises(PipelineError) as err:
        catalog.validate_feature_names(["egomotion", "camera_front"], features)
    assert "unknown feature 'camera_front'" in str(err.value)
    assert "camera_front_wide_120fov" in str(err.value) and "lidar_top_360fov" in str(err.value)
    assert catalog.split_feature_names(["egomotion,camera_a", "camera_b  camera_c"]) == [
        "egomotion",
        "camera_a",
        "camera_b",
        "camera_c",
    ]


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["0001"], [1]),
        (["0000 0001 0002"], [0, 1, 2]),
        (["0000", "0001", "0002"], [0, 1, 2]),
        (["0-9"], list(range(10))),
        (["3,5-7 9", "0003"], [3, 5, 6, 7, 9]),
        (["12-12"], [12]),
    ],
)
def test_parse_chunk_ids(specs, expected):
    assert catalog.parse_chunk_ids(specs) == expected


@pytest.mark.parametrize("bad", ["a", "1-", "-3", "5-3", "1.5", "0x10"])
def test_parse_chunk_ids_rejects(bad):
    with pytest.raises(PipelineError, match="--chunk"):
        catalog.parse_chunk_ids([bad])


@given(st.sets(st.integers(min_value=0, max_value=4000), max_size=40))
def test_ranges_round_trip(values):
    text = catalog.format_ranges(values)
    if not values:  # an empty spec (`--chunk ''`) is refused, not read as "no chunk"
        with pytest.raises(PipelineError, match="no chunk id given"):
            catalog.parse_chunk_ids([text])
        return
    assert catalog.parse_chunk_ids([text]) == sorted(values)


def test_unknown_chunk_names_the_valid_range():
    assert catalog.validate_chunk_ids([0, 2], range(0, 3146)) == [0, 2]
    with pytest.raises(PipelineError, match=r"unknown chunk id\(s\) 3146, 5000 \(valid chunk ids .*: 0-3145\)"):
        catalog.validate_chunk_ids([1, 3146, 5000], range(0, 3146))
    with pytest.raises(PipelineError, match=r"valid chunk ids .*: 0-2, 5, 7"):
        catalog.validate_chunk_ids([4], [0, 1, 2, 5, 7])


def test_clip_index_and_dataset_dir(synthetic_repo):
    """Read back the generator's clip_index and compare with what it says it wrote."""
    index = catalog.read_clip_index(synthetic_repo.root / catalog.CLIP_INDEX_PARQUET)
    assert len(index) == len(synthetic_repo.clips)
    assert index.chunks == synthetic_repo.chunks
    for clip in synthetic_repo.clips:
        assert index.chunk_of(clip.clip_id) == clip.chunk
        assert index.split_of(clip.clip_id) == clip.split
    for split in catalog.SPLITS:
        assert index.chunks_of_split(split) == sorted({c.chunk for c in synthetic_repo.clips_of(split=split)})
        for chunk in synthetic_repo.chunks:
            expected = sorted(c.clip_id for c in synthetic_repo.clips_of(chunk=chunk, split=split))
            assert index.clips(chunk=chunk, split=split) == expected

    ds = catalog.open_dataset_dir(synthetic_repo.root)
    assert ds.downloaded_chunks("egomotion") == synthetic_repo.chunks
    assert ds.chunk_path("camera_front_wide_120fov", 1) == synthetic_repo.chunk_path("camera_front_wide_120fov", 1)
    with pytest.raises(PipelineError, match="no features.csv"):
        catalog.open_dataset_dir(synthetic_repo.root / "labels")


def test_split_file_overrides_the_split_column(synthetic_repo, tmp_path):
    clip_ids = synthetic_repo.clip_ids
    pd.DataFrame({"split": ["test"] * len(clip_ids)}, index=pd.Index(clip_ids, name="clip_id")).to_parquet(
        tmp_path / "default.parquet"
    )
    index = catalog.read_clip_index(synthetic_repo.root / catalog.CLIP_INDEX_PARQUET, tmp_path / "default.parquet")
    assert index.chunks_of_split("test") == synthetic_repo.chunks
    assert index.chunks_of_split("train") == []
