"""Scoring predictions files end to end on the synthetic dataset: truth, train mean, parse failures, bad input."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.contracts.answer import format_answer
from pipeline.core.errors import PipelineError
from pipeline.stages.evaluate.answers_from_file import read_predictions
from pipeline.stages.evaluate.baselines import BASELINE_NAMES
from pipeline.stages.evaluate.metrics import score
from pipeline.stages.evaluate.report import REPORT_FILES, headline_table
from pipeline.stages.evaluate.resolved_run import resolve_run
from pipeline.stages.evaluate.scoring import MODEL_NAME, score_answers
from pipeline.stages.evaluate.stage import EvaluateConfig, run
from tests.reference import round_like_answer


def split_arrays(dataset_dir: Path, split: str) -> dict:
    """An independent read of a split's targets with `datasets` directly (not through the dataset reader)."""
    import datasets

    ds = datasets.load_from_disk(str(dataset_dir / split))
    return {
        "id": list(ds["id"]),
        "velocity": np.array([list(v) for v in ds["velocity"]], dtype=np.float64),
        "curvature": np.array([list(v) for v in ds["curvature"]], dtype=np.float64),
    }


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def test_split(dataset_dir) -> dict:
    return split_arrays(dataset_dir, "test")


@pytest.fixture(scope="session")
def train_mean(dataset_dir) -> tuple[np.ndarray, np.ndarray]:
    train = split_arrays(dataset_dir, "train")
    return train["velocity"].mean(axis=0), train["curvature"].mean(axis=0)


@pytest.fixture(scope="session")
def truth_report(dataset_dir, test_split, tmp_path_factory):
    """Score a predictions file written from the ground truth; the report directory is shared by report tests."""
    tmp = tmp_path_factory.mktemp("eval_truth")
    records = [
        {"id": i, "text": format_answer(v, k)}
        for i, v, k in zip(test_split["id"], test_split["velocity"], test_split["curvature"], strict=True)
    ]
    preds = write_jsonl(tmp / "truth.jsonl", records)
    out = tmp / "eval_report"
    result = run(EvaluateConfig(dataset=dataset_dir, output_dir=out, predictions=preds))
    return result, out


def test_ground_truth_predictions_score_zero_error(truth_report, test_split):
    result, _ = truth_report
    assert result.n_samples == len(test_split["id"]) > 0
    assert result.n_failures == 0
    s = result.scores["all"][MODEL_NAME]
    # the only error left is the answer's rounding: <= 0.005 m/s and <= 5e-6 1/m
    assert s.velocity_mae <= 0.005 + 1e-9
    assert s.curvature_mae <= 5e-6 + 1e-12
    assert s.ade < 0.005 and s.fde < 0.01
    # and it is exactly the error of the rounded truth, computed independently
    rounded = [round_like_answer(v, k) for v, k in zip(test_split["velocity"], test_split["curvature"], strict=True)]
    rv = np.array([r[0] for r in rounded], dtype=np.float64)
    rk = np.array([r[1] for r in rounded], dtype=np.float64)
    ref = score(rv, rk, test_split["velocity"], test_split["curvature"])
    assert s.velocity_mae == pytest.approx(ref.velocity_mae, abs=1e-12)
    assert s.ade == pytest.approx(ref.ade, abs=1e-12)
    assert set(result.scores["all"]) == {MODEL_NAME, *BASELINE_NAMES}


def test_train_mean_predictions_equal_the_train_mean_baseline(dataset_dir, test_split, train_mean, tmp_path):
    text = format_answer(*train_mean)
    preds = write_jsonl(tmp_path / "mean.jsonl", [{"id": i, "text": text} for i in test_split["id"]])
    result = run(EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "out", predictions=preds))
    model, base = result.scores["all"][MODEL_NAME], result.scores["all"]["train_mean"]
    assert result.n_failures == 0
    # equal up to the answer's rounding of the mean profile
    assert model.velocity_mae == pytest.approx(base.velocity_mae, abs=0.005)
    assert model.curvature_mae == pytest.approx(base.curvature_mae, abs=5e-6)
    assert model.ade == pytest.approx(base.ade, abs=0.005)
    # the baseline itself is the per-step mean of the train targets, checked against an independent read
    expected = np.mean(np.abs(train_mean[0][None, :] - test_split["velocity"]))
    assert base.velocity_mae == pytest.approx(expected, rel=1e-6)


def test_history_ridge_is_the_in_memory_fit_on_the_train_split(dataset_dir, truth_report):
    """The evaluator streams the train split into moments; its ridge scores as the closed-form fit on all train
    samples read independently."""
    import datasets

    from pipeline.stages.evaluate.baselines import fit_history_ridge

    result, _ = truth_report
    train, test = (datasets.load_from_disk(str(dataset_dir / s)) for s in ("train", "test"))
    cols = [
        np.array([list(v) for v in ds[c]], dtype=np.float64)
        for ds in (train, test)
        for c in ("history_velocity", "history_curvature", "velocity", "curvature")
    ]
    pv, pk = fit_history_ridge(*cols[:4]).predict(cols[4], cols[5])
    assert result.info["train_size"] == len(train)
    assert result.scores["all"]["history_ridge"].ade == pytest.approx(score(pv, pk, cols[6], cols[7]).ade, rel=1e-6)


def test_garbled_answers_are_failures_scored_as_the_train_mean(dataset_dir, test_split, tmp_path):
    garbage = ["", "I cannot tell.", "nan,nan\n" * 30, "\x00\ufffd" * 50]
    records = [{"id": i, "text": garbage[j % len(garbage)]} for j, i in enumerate(test_split["id"])]
    preds = write_jsonl(tmp_path / "garbage.jsonl", records)
    result = run(EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "out", predictions=preds))
    assert result.n_failures == result.n_samples
    assert result.parse_failure_rate == 1.0
    model, base = result.scores["all"][MODEL_NAME], result.scores["all"]["train_mean"]
    assert model.velocity_mae == base.velocity_mae
    assert model.curvature_rmse == base.curvature_rmse
    assert model.fde == base.fde
    assert result.scores["parsed"][MODEL_NAME].n_samples == 0
    assert math.isnan(result.scores["parsed"][MODEL_NAME].ade)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["scores"]["parsed"][MODEL_NAME]["ade"] is None
    assert all((tmp_path / "out" / name).is_file() for name in REPORT_FILES)


def test_parse_failures_counted_right():
    n = 30
    tv = np.tile(np.linspace(5, 6, n), (6, 1))
    tk = np.zeros((6, n))
    good = format_answer(tv[0], tk[0])
    lines = good.splitlines()
    texts = [
        good,  # parsed
        "Sure! Here it is:\n" + good + "\nHope this helps.",  # stray text, 30 pairs: parsed
        "\n".join(lines[:29]),  # 29 pairs: failure
        "",  # failure
        good + "\n" + good,  # 60 pairs: the first 30 are read: parsed
        good.replace(lines[3], "fast,left"),  # one pair unreadable: failure
    ]
    targets = {
        "id": [f"s{i}" for i in range(6)],
        "clip_id": ["c"] * 6,
        "segment_index": list(range(6)),
        "velocity": tv,
        "curvature": tk,
        "history_velocity": tv,
        "history_curvature": tk,
    }
    mean_v, mean_k = np.full(n, 100.0), np.zeros(n)
    result = score_answers(texts, targets, mean_v, mean_k)
    np.testing.assert_array_equal(result.parsed, [True, True, False, False, True, False])
    np.testing.assert_array_equal(result.n_pairs, [30, 30, 29, 0, 30, 29])
    assert result.n_failures == 3
    assert result.parse_failure_rate == 0.5
    np.testing.assert_allclose(result.pred_velocity[2], 100.0)  # failures take the train mean, not partial answers
    assert result.scores["parsed"][MODEL_NAME].n_samples == 3
    assert result.scores["parsed"]["constant"].n_samples == 3
    assert result.scores["parsed"][MODEL_NAME].velocity_mae <= 0.005
    # all samples: 3 near-perfect + 3 at 100 m/s from the 5-6 m/s truth
    assert result.scores["all"][MODEL_NAME].velocity_mae == pytest.approx(np.mean(100 - tv[:3]) / 2, abs=0.005)


def test_report_files_are_real(truth_report, test_split):
    from PIL import Image

    result, out = truth_report
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    for name in REPORT_FILES:
        if name.endswith(".png"):
            with Image.open(out / name) as img:
                assert img.format == "PNG"
                pixels = np.asarray(img.convert("RGB"))
            assert pixels.shape[0] > 100 and pixels.shape[1] > 100
            assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, name  # lines, text, markers: not blank
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == len(test_split["id"])
    assert metrics["parse_failures"] == 0
    assert metrics["split"] == "test"
    assert len(metrics["dataset_fingerprint"]) == 64
    assert metrics["scores"]["all"]["constant"]["ade"] == pytest.approx(result.scores["all"]["constant"].ade)
    assert metrics["scores"]["all"][MODEL_NAME]["at_horizon"]["0.5s"]["time_s"] == pytest.approx(0.5)
    for name in ("constant", "history_ridge"):
        s = result.scores["all"][name]
        assert metrics["scores"]["all"][name]["displacement_0.5s"] == pytest.approx(s.displacement_by_step[14])
        assert metrics["scores"]["all"][name]["displacement_1s"] == pytest.approx(s.fde)
    assert len(metrics["scores"]["all"][MODEL_NAME]["by_step"]["velocity_mae"]) == 30
    with open(out / "predictions.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == test_split["id"]
    assert all(r["parsed"] == "True" for r in rows)
    true_v = np.array([float(x) for x in rows[0]["true_velocity_mps"].split()])
    np.testing.assert_allclose(true_v, test_split["velocity"][0], atol=1e-4)
    assert rows[0]["text"].count("\n") == 29
    report = (out / "report.md").read_text()
    for name in (MODEL_NAME, *BASELINE_NAMES):
        assert f"| {name} |" in report
    assert "train-mean prediction" in report
    table = headline_table(result)
    assert all(name in table for name in (MODEL_NAME, *BASELINE_NAMES))
    assert "velocity MAE (m/s)" in table
    assert "displacement @0.5 s (m)" in table and "| displacement @1 s (m) |" in report


def test_model_is_compared_with_better_baselines_on_the_synthetic_data(truth_report):
    """On the formula targets, the history predicts the future well: constant beats zero motion by far."""
    result, _ = truth_report
    s = result.scores["all"]
    assert s["constant"].ade < s["zero_motion"].ade
    assert s[MODEL_NAME].ade < s["constant"].ade


def test_fingerprint_changes_with_the_samples(dataset_dir, test_split, tmp_path, truth_report):
    preds = write_jsonl(tmp_path / "one.jsonl", [{"id": test_split["id"][0], "text": "x"}])
    result = run(EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "out", predictions=preds))
    assert result.n_samples == 1
    assert result.info["dataset_fingerprint"] != truth_report[0].info["dataset_fingerprint"]


def test_read_predictions_errors(tmp_path):
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "text": "1,2"}, {"id": "a", "text": "1,2"}])
    with pytest.raises(PipelineError, match="duplicate id 'a'"):
        read_predictions(dup)
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"id": "a", "text": ""}, {"id": "zz", "text": ""}])
    with pytest.raises(PipelineError, match="1 id\\(s\\) not in the split, e.g. 'zz'"):
        read_predictions(unknown, known_ids={"a"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "1,2"}\nnot json\n')
    with pytest.raises(PipelineError, match="bad.jsonl:2: not JSON"):
        read_predictions(bad)
    no_text = write_jsonl(tmp_path / "no_text.jsonl", [{"id": "a", "answer": "1,2"}])
    with pytest.raises(PipelineError, match="string 'text'"):
        read_predictions(no_text)


def test_config_validation(dataset_dir, tmp_path):
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "text": ""}])
    with pytest.raises(PipelineError, match="exactly one of --model"):
        EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path, model="m", predictions=preds)
    with pytest.raises(PipelineError, match="exactly one of --model"):
        EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path)
    with pytest.raises(PipelineError, match="--batch-size"):
        EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path, model="m", batch_size=0)
    with pytest.raises(PipelineError, match="--predictions .*no such file"):
        EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path, predictions=tmp_path / "nope.jsonl")


def test_metrics_record_the_config_and_the_resolved_run(truth_report, dataset_dir):
    _, out = truth_report
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["dataset"] == str(dataset_dir) and "dataset_dir" not in settings
    assert settings["predictions"].endswith("truth.jsonl") and settings["model"] is None
    # a predictions file asks nothing: no training run, no video settings (written last, after the config's own)
    assert settings["run_dir"] is None
    assert list(settings)[-2:] == ["video_settings", "video_settings_source"]
    assert settings["video_settings"] is None and settings["video_settings_source"] is None


def test_a_config_reads_no_training_run_until_the_stage_resolves_it(dataset_dir, tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "train_config.json").write_text("not json")
    config = EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "out", model=str(model_dir))
    with pytest.raises(PipelineError, match=r"train_config.json: unreadable training config"):
        resolve_run(config)


def test_a_server_needs_a_training_run_directory(dataset_dir, tmp_path):
    from pipeline.stages.evaluate.serving_client import ServerSettings

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    served_dir = ServerSettings(url="http://127.0.0.1:1/v1", served_model=str(run_dir))
    resolved = resolve_run(EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "out", server=served_dir))
    assert resolved.run_dir == run_dir  # the served model's name is the directory (transformers serve)
    assert resolved.video_settings_source == "defaults" and resolved.video_settings.fps == 4.0
    assert resolved.to_json()["run_dir"] == str(run_dir)
    served_name = ServerSettings(url="http://127.0.0.1:1/v1", served_model="qwen")
    with pytest.raises(PipelineError, match="^--server needs --run-dir: the training output directory"):
        EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "out", server=served_name)
    given = EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "out", server=served_name, run_dir=run_dir)
    assert resolve_run(given).run_dir == run_dir


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `pipeline ARGS` in-process through the real entry point; (exit code, stdout, stderr)."""
    from pipeline.cli.app import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def test_cli_bad_input_is_one_line_exit_2(dataset_dir, test_split, tmp_path, capsys):
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": test_split["id"][0], "text": ""}, {"id": "nope", "text": ""}])
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys, "evaluate", "--dataset", str(dataset_dir), "--predictions", str(preds), "--output-dir", str(out)
    )
    assert code == 2, err
    assert err.strip().splitlines() == [f"error: --predictions {preds}: 1 id(s) not in the split, e.g. 'nope'"]
    assert not out.exists()
    good = write_jsonl(tmp_path / "g.jsonl", [{"id": test_split["id"][0], "text": ""}])
    code, _, err = run_cli(
        capsys, "evaluate", "--dataset", str(dataset_dir), "--split", "val", "--predictions", str(good)
    )
    assert code == 2
    assert err.strip().splitlines() == [f"error: --dataset {dataset_dir}: no split 'val' (found: test, train)"]
    code, _, err = run_cli(capsys, "evaluate", "--dataset", str(dataset_dir))
    assert code == 2
    assert err.strip().splitlines() == [
        "error: give exactly one of --model (generate answers), --predictions (score a file) and --server (ask one)"
    ]


def test_cli_video_settings_out_of_range_are_one_line_exit_2(dataset_dir, tmp_path, capsys):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "train_config.json").write_text(json.dumps({"video": {"fps": 2.0}}))
    out = tmp_path / "out"
    args = ["evaluate", "--dataset", str(dataset_dir), "--model", str(model_dir), "--output-dir", str(out)]
    code, _, err = run_cli(capsys, *args, "--video-fps", "-1")
    assert code == 2
    assert err.strip().splitlines() == ["error: --video-fps: must be a positive number, got -1.0"]
    assert not out.exists()


def test_cli_scores_a_predictions_file(dataset_dir, test_split, tmp_path, capsys):
    records = [
        {"id": i, "text": format_answer(v, k)}
        for i, v, k in zip(test_split["id"], test_split["velocity"], test_split["curvature"], strict=True)
    ]
    preds = write_jsonl(tmp_path / "p.jsonl", records)
    out = tmp_path / "out"
    args = ["evaluate", "--dataset", str(dataset_dir), "--predictions", str(preds), "--output_dir", str(out)]
    code, stdout, err = run_cli(capsys, *args, "--max_samples", "2")
    assert code == 0, err
    assert "linear_extrapolation" in stdout and "all samples (N = 2)" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 2
    assert metrics["scores"]["all"][MODEL_NAME]["velocity_mae"] <= 0.005


@pytest.mark.parametrize(
    "recorded",
    [
        {"video": {"fps": 2.0, "max_pixels": 9000}, "seed": 1},  # as `pipeline train` writes it now
        {"video_fps": 2.0, "video_max_pixels": 9000, "seed": 1, "lora_r": 8},  # flat keys of older runs
    ],
)
def test_video_settings_come_from_the_training_run_unless_overridden(dataset_dir, tmp_path, recorded):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "train_config.json").write_text(json.dumps(recorded | {"a_key_of_another_version": 1}))
    config = EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path, model=str(model_dir), video={"max_pixels": 5000})
    resolved = resolve_run(config)
    vs = resolved.video_settings
    assert (vs.fps, vs.max_pixels, vs.max_frames) == (2.0, 5000, 32)  # file, flag, default
    assert (
        resolved.video_settings_source
        == f"{model_dir / 'train_config.json'}; --video-max-pixels from the command line"
    )
    assert resolved.to_json()["video_settings"]["fps"] == 2.0
    bare = resolve_run(EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path, model="Qwen/Qwen3-VL-2B-Instruct"))
    assert bare.video_settings_source == "defaults" and bare.video_settings.fps == 4.0
    too_slow = EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path, model=str(model_dir), video={"fps": -1.0})
    with pytest.raises(PipelineError, match="--video-fps"):
        resolve_run(too_slow)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"id": "a", "text": "caf\xe9"}\n', ":1: not UTF-8 text (byte 25)"),
        (b'{"id": "a", "text": ' + b"[" * 100_000 + b"\n", ":1: JSON nested too deeply to read"),
    ],
    ids=["latin-1", "nested"],
)
def test_cli_an_unreadable_predictions_file_is_one_line_exit_2(dataset_dir, tmp_path, capsys, content, reason):
    from tests.cli_contract import assert_one_line_error, run_in_process

    preds = tmp_path / "p.jsonl"
    preds.write_bytes(content)
    out = tmp_path / "out"
    result = run_in_process(capsys, "evaluate", "--dataset", dataset_dir, "--predictions", preds, "--output-dir", out)
    assert_one_line_error(result, f"--predictions {preds}{reason}")
    assert not out.exists()


def test_cli_a_lone_surrogate_in_an_answer_is_written_as_a_replacement_character(
    dataset_dir, test_split, tmp_path, capsys
):
    """`\\ud800` reads as a lone surrogate, which UTF-8 cannot hold: it becomes U+FFFD, and every report file is
    written (before, the run stopped with a traceback after metrics.json, leaving a half-written report)."""
    first = test_split["id"][0]
    answer = format_answer(test_split["velocity"][0], test_split["curvature"][0])
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": first, "text": answer + "\ud800 <b>"}) + "\n", encoding="ascii")
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys, "evaluate", "--dataset", str(dataset_dir), "--predictions", str(preds), "--output-dir", str(out)
    )
    assert code == 0, err
    assert {p.name for p in out.iterdir()} >= set(REPORT_FILES) | {"report.html"}
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_samples"] == 1 and metrics["parse_failures"] == 0  # the pairs were read; the rest is stray text
    assert "\ufffd &lt;b&gt;" in (out / "report.html").read_text(encoding="utf-8")
