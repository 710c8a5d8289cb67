"""Evaluate on a dataset whose targets include trajectories: the shared contract's `future_xyh`/`history_xyh`
columns and dataset_meta.json "targets", added by hand to the synthetic dataset (constant-turn motions)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.contracts.trajectory_answer import format_trajectory
from pipeline.core.errors import PipelineError
from pipeline.stages.evaluate.stage import EvaluateConfig, answer_lines, run
from pipeline.stages.evaluate.trajectory_metrics import L2_AT, L2_AVERAGED
from pipeline.stages.evaluate.trajectory_report import TOP_DOWN_PLOT
from pipeline.stages.evaluate.trajectory_scoring import score_trajectory_answers

TARGET_HZ, HORIZON_S, HISTORY_HZ, HISTORY_STEPS = 10.0, 3.2, 10.0, 11
N = round(HORIZON_S * TARGET_HZ)


def _turn(t: np.ndarray, speed: float, yaw_rate: float) -> np.ndarray:
    """[x, y, heading] at times t (s) on a circle through the origin, heading 0 at t = 0."""
    radius = speed / yaw_rate
    return np.stack([radius * np.sin(yaw_rate * t), radius * (1 - np.cos(yaw_rate * t)), yaw_rate * t], axis=-1)


@pytest.fixture(scope="module")
def trajectory_dataset(dataset_dir: Path, tmp_path_factory) -> Path:
    """The synthetic dataset with each row on its own constant turn, targets "trajectory" (seeded)."""
    import datasets

    out = tmp_path_factory.mktemp("trajectory") / "dataset"
    shutil.copytree(dataset_dir, out)
    rng = np.random.default_rng(7)
    past = -(HISTORY_STEPS - 1 - np.arange(HISTORY_STEPS)) / HISTORY_HZ
    future = (np.arange(N) + 1) / TARGET_HZ
    feature = datasets.List(datasets.List(datasets.Value("float32")))
    for split in ("train", "test"):
        ds = datasets.load_from_disk(str(dataset_dir / split))
        motions = list(zip(rng.uniform(2.0, 20.0, len(ds)), rng.uniform(-0.3, 0.3, len(ds)), strict=True))
        ds = ds.add_column("history_xyh", [_turn(past, v, w).tolist() for v, w in motions], feature=feature)
        ds = ds.add_column("future_xyh", [_turn(future, v, w).tolist() for v, w in motions], feature=feature)
        shutil.rmtree(out / split)
        ds.save_to_disk(str(out / split))
    meta = json.loads((out / "dataset_meta.json").read_text())
    meta["targets"] = {
        "targets": "trajectory",
        "horizon_s": HORIZON_S,
        "target_hz": TARGET_HZ,
        "history_steps": HISTORY_STEPS,
        "history_hz": HISTORY_HZ,
        "cameras": ["camera_front_wide_120fov"],
        "frames_per_camera": None,
        "frame_spacing_s": None,
    }
    (out / "dataset_meta.json").write_text(json.dumps(meta))
    return out


def _truth(dataset: Path) -> dict[str, np.ndarray]:
    import datasets

    ds = datasets.load_from_disk(str(dataset / "test"))
    return {i: np.array(f, dtype=np.float64)[:, :2] for i, f in zip(ds["id"], ds["future_xyh"], strict=True)}


def _predictions(path: Path, answers: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in answers.items()))
    return path


def test_true_trajectories_score_the_rounding_error_and_ctrv_is_exact(trajectory_dataset, tmp_path):
    truth = _truth(trajectory_dataset)
    preds = _predictions(tmp_path / "p.jsonl", {i: format_trajectory(xy) for i, xy in truth.items()})
    out = tmp_path / "out"
    result = run(EvaluateConfig(dataset=trajectory_dataset, output_dir=out, predictions=preds))
    traj = result.trajectory
    assert traj is not None and traj.complete.all() and len(traj.ids) == len(truth)
    model, ctrv = traj.scores["all"]["model"], traj.scores["all"]["ctrv"]
    assert 0 < model["ade_m"]["all"] <= 0.005 * np.sqrt(2) and model["coverage"] == 1.0
    # float32 storage is the only error left for CTRV on constant turns
    assert ctrv["fde_m"]["all"] < 1e-3 < traj.scores["all"]["constant_velocity"]["fde_m"]["all"]
    assert set(model["l2_m"][L2_AT]) == {"1s", "2s", "3s"} and set(model["ade_m"]) == {"1s", "3s", "all"}
    metrics = json.loads((out / "metrics.json").read_text())["trajectory"]
    assert metrics["units"]["distance"] == "m" and set(metrics["l2_conventions"]) == {L2_AVERAGED, L2_AT}
    assert metrics["scores"]["all"]["model"]["l2_m"][L2_AVERAGED]["3s"] == pytest.approx(
        model["l2_m"][L2_AVERAGED]["3s"]
    )
    assert (out / TOP_DOWN_PLOT).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "## Trajectory" in report and f"L2 1s, {L2_AVERAGED} (m)" in report


def test_partial_answers_are_scored_on_the_points_they_give(trajectory_dataset, tmp_path):
    truth = _truth(trajectory_dataset)
    preds = _predictions(tmp_path / "p.jsonl", {i: format_trajectory(xy[:5] + 1.0) for i, xy in truth.items()})
    traj = run(EvaluateConfig(dataset=trajectory_dataset, output_dir=tmp_path / "out", predictions=preds)).trajectory
    model = traj.scores["all"]["model"]
    assert not traj.complete.any() and (traj.n_points == 5).all()
    assert model["coverage"] == pytest.approx(5 / N)
    # every given point is off by (1, 1) m, up to the answer's rounding; no point at 1 s or later was given
    assert model["ade_m"]["all"] == pytest.approx(np.sqrt(2), abs=0.01)
    assert np.isnan(model["fde_m"]["1s"])
    assert traj.scores["complete"]["model"]["samples"] == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(), parse_constant=_refuse)["trajectory"]
    assert metrics["scores"]["all"]["model"]["fde_m"]["1s"] is None


def test_the_trajectory_ridge_streams_the_train_split_in_batches(trajectory_dataset, tmp_path, monkeypatch):
    """Train re-saved as 3 shards: the ridge is fit from `split_batches` a batch at a time, without loading the
    whole split, and predicts as the ridge fit on all train rows at once."""
    import datasets

    from pipeline.contracts import dataset_reader
    from pipeline.stages.evaluate.trajectory_baselines import fit_trajectory_ridge
    from pipeline.stages.evaluate.trajectory_scoring import train_trajectory_ridge, xyh_column

    dataset = tmp_path / "dataset"
    shutil.copytree(trajectory_dataset, dataset)
    train = datasets.load_from_disk(str(trajectory_dataset / "train"))
    shutil.rmtree(dataset / "train")
    train.save_to_disk(str(dataset / "train"), num_shards=3)
    batch_rows: list[int] = []
    real_split_batches = dataset_reader.split_batches

    def spy(dataset_dir, split, columns, *args, **kwargs):
        for batch in real_split_batches(dataset_dir, split, columns, *args, **kwargs):
            if split == "train" and "history_xyh" in columns:
                batch_rows.append(batch.num_rows)
            yield batch

    def refuse(*args, **kwargs):
        raise AssertionError("the whole split was loaded")

    monkeypatch.setattr(dataset_reader, "split_batches", spy)
    with monkeypatch.context() as patch:
        patch.setattr(dataset_reader, "load_split", refuse)
        ridge = train_trajectory_ridge(dataset)
    assert len(batch_rows) >= 3 and sum(batch_rows) == len(train)
    in_memory = fit_trajectory_ridge([(xyh_column(train, "history_xyh"), xyh_column(train, "future_xyh")[..., :2])])
    test = datasets.load_from_disk(str(dataset / "test"))
    history = xyh_column(test, "history_xyh")
    np.testing.assert_allclose(ridge.predict(history), in_memory.predict(history), rtol=0, atol=1e-9)
    empty = tmp_path / "empty"
    shutil.copytree(dataset, empty)
    shutil.rmtree(empty / "train")
    train.select([]).save_to_disk(str(empty / "train"))
    with pytest.raises(PipelineError, match="no trajectory ridge from the train split .no training samples"):
        train_trajectory_ridge(empty)

    batch_rows.clear()
    preds = _predictions(tmp_path / "p.jsonl", {i: format_trajectory(xy) for i, xy in _truth(dataset).items()})
    traj = run(EvaluateConfig(dataset=dataset, output_dir=tmp_path / "out", predictions=preds)).trajectory
    assert len(batch_rows) >= 3 and sum(batch_rows) == len(train)
    np.testing.assert_allclose(traj.baselines["history_ridge"], in_memory.predict(history), rtol=0, atol=1e-9)


@pytest.fixture(scope="module", params=["trajectory", "both"])
def path_dataset(request, trajectory_dataset: Path, tmp_path_factory) -> Path:
    """The trajectory dataset as built with --targets trajectory, and as with both (whose answers are paths too)."""
    if request.param == "trajectory":
        return trajectory_dataset
    out = tmp_path_factory.mktemp("both") / "dataset"
    shutil.copytree(trajectory_dataset, out)
    meta = json.loads((out / "dataset_meta.json").read_text())
    meta["targets"]["targets"] = "both"
    (out / "dataset_meta.json").write_text(json.dumps(meta))
    return out


def test_path_answers_get_no_motion_section_and_the_same_trajectory_scores(path_dataset, tmp_path):
    import datasets

    truth = _truth(path_dataset)
    answers = {i: format_trajectory(xy + [0.5, 0.0]) for i, xy in truth.items()}
    answers[next(iter(answers))] = "I cannot tell."
    out = tmp_path / "out"
    out.mkdir()
    for earlier in ("predictions.csv", "scatter_velocity.png", "notes.txt"):  # a motion run's files, and the user's
        (out / earlier).write_text("earlier")
    preds = _predictions(tmp_path / "p", answers)
    result = run(EvaluateConfig(dataset=path_dataset, output_dir=out, predictions=preds, overwrite=True))
    assert (out / "notes.txt").read_text() == "earlier"
    assert not result.motion and result.scores == {} and result.true_velocity.shape == (len(truth), 0)
    # the failures counted are the incomplete path answers, not unreadable (speed, curvature) lines
    assert result.n_failures == 1 and result.parsed.tolist() == result.trajectory.complete.tolist()
    test = datasets.load_from_disk(str(path_dataset / "test"))
    history = np.array(test["history_xyh"], dtype=np.float64)
    future = np.array(test["future_xyh"], dtype=np.float64)
    meta = json.loads((path_dataset / "dataset_meta.json").read_text())["targets"]
    alone = score_trajectory_answers(list(truth), [[t] for t in answers.values()], future, history, meta)
    # the trajectory figures are those of the scorer alone (the ridge baseline is fit on train, so left out here)
    for name in ("model", "constant_velocity", "ctrv"):
        assert result.trajectory.scores["all"][name]["ade_m"] == pytest.approx(alone.scores["all"][name]["ade_m"])
    assert result.trajectory.scores["all"]["model"]["ade_m"]["all"] == pytest.approx(0.5, abs=0.01)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["answers"] == "trajectory" and metrics["failure_policy"] == "points_given"
    assert not {"scores", "parse_failures", "parse_failure_rate", "n_steps"} & set(metrics)
    report = (out / "report.md").read_text()
    assert report.startswith("# Trajectory prediction") and "## Trajectory" in report
    motion_words = ("velocity mae", "curvature", "zero_motion", "train_mean", "parse failure")
    assert not [word for word in motion_words if word in report.lower()]
    assert sorted(p.name for p in out.glob("*.png")) == [TOP_DOWN_PLOT] and not (out / "predictions.csv").exists()
    page = (out / "report.html").read_text()
    assert not [word for word in motion_words if word in page.lower()]


def _refuse(name: str) -> None:
    raise AssertionError(f"metrics.json holds {name}, which is not JSON")


def test_min_ade_over_k_answers_picks_the_best_one():
    future = np.zeros((2, 4, 3))
    future[:, :, 0] = [1.0, 2.0, 3.0, 4.0]
    history = np.zeros((2, 3, 3))
    history[:, :, 0] = [-2.0, -1.0, 0.0]
    off, exact = format_trajectory(future[0, :, :2] + [0.0, 1.0]), format_trajectory(future[0, :, :2])
    settings = {"target_hz": 4.0, "history_hz": 1.0}
    traj = score_trajectory_answers(["a", "b"], [[off, exact], [off, "no"]], future, history, settings)
    assert traj.scores["all"]["model"]["ade_m"]["all"] == pytest.approx(1.0)
    # sample a: the exact answer (0); sample b: the only readable one (1)
    assert traj.min_over_k == pytest.approx({"min_ade_m": 0.5, "min_fde_m": 0.5})
    # constant velocity holds the history's 1 m/s (1 Hz rows): 0.25 m per 4 Hz point, against 1 m per point
    assert traj.scores["all"]["constant_velocity"]["ade_m"]["all"] == pytest.approx(
        np.mean(np.abs([1.0, 2.0, 3.0, 4.0] - np.arange(1, 5) * 0.25))
    )
    assert score_trajectory_answers(["a"], [[exact]], future[:1], history[:1], settings).min_over_k is None


def test_num_samples_generates_k_sampled_answers_in_process(trajectory_dataset, tiny_qwen3_vl, tmp_path):
    from pipeline.model.inference import GenerationSettings

    config = EvaluateConfig(
        dataset=trajectory_dataset,
        output_dir=tmp_path / "out",
        model=str(tiny_qwen3_vl),
        max_samples=2,
        num_samples=2,
        generation=GenerationSettings(max_new_tokens=8),
        device="cpu",
        dtype="float32",
    )
    result = run(config)
    traj = result.trajectory
    assert traj.samples_xy.shape[:2] == (2, 2) and [t[0] for t in traj.texts] == result.texts
    assert result.info["generation"]["do_sample"] is True
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["trajectory"]
    assert metrics["answers_per_sample"] == 2 and set(metrics["min_over_answers"]) == {"min_ade_m", "min_fde_m"}


def test_a_server_gives_k_sampled_choices_scored_resumed_and_checked(trajectory_dataset, tiny_qwen3_vl, tmp_path):
    import datasets

    from pipeline.stages.evaluate.serving_client import PREDICTIONS_FILE, ServerSettings
    from tests.evaluate.fake_chat_server import FakeChatServer

    truth = _truth(trajectory_dataset)
    test = datasets.load_from_disk(str(trajectory_dataset / "test"))
    video = {i: Path(v).name for i, v in zip(test["id"], test["video"], strict=True)}
    # every sample: a first answer 1 m to the left, then the exact one; one sample's server gives a single choice
    answers = {video[i]: [format_trajectory(xy + [0.0, 1.0]), format_trajectory(xy)] for i, xy in truth.items()}
    short = sorted(truth)[0]
    answers[video[short]] = answers[video[short]][:1]
    out = tmp_path / "out"
    settings = ServerSettings(url="http://127.0.0.1:1/v1", max_failed_share=1.0, max_retries=0)
    with FakeChatServer(answers) as server:
        config = EvaluateConfig(
            dataset=trajectory_dataset,
            output_dir=out,
            server=replace(settings, url=server.url),
            run_dir=tiny_qwen3_vl,
            num_samples=2,
        )
        traj = run(config).trajectory
        body = server.bodies[0]
        assert len(server.bodies) == len(truth)  # no parity pre-flight request
        # sampled as in-process --num-samples samples: transformers' defaults once do_sample is on
        assert (body["n"], body["temperature"], body["top_p"], body["top_k"]) == (2, 1.0, 1.0, 50)
        assert body["repetition_penalty"] == 1.0
        metrics = json.loads((out / "metrics.json").read_text())
        server_info = metrics["server"]
        assert server_info["parity"] == {
            "checked": False,
            "reason": "--num-samples 2: the check compares greedy answers' prompts",
        }
        assert server_info["failures"] == 1
        assert "1 choice(s) where n=2" in server_info["failure_examples"][short]
        rows = [json.loads(line) for line in (out / PREDICTIONS_FILE).read_text().splitlines()]
        assert sorted(r["id"] for r in rows) == sorted(set(truth) - {short})
        assert all(len(r["samples"]) == 2 and r["samples"][0] == r["text"] for r in rows)
        # the first answers (1 m off) are scored, the exact second ones give the minimum; the failure has neither
        others = [traj.ids.index(i) for i in truth if i != short]
        assert traj.samples_xy.shape[:2] == (len(truth), 2) and np.isnan(traj.samples_xy[traj.ids.index(short)]).all()
        assert traj.scores["complete"]["model"]["ade_m"]["all"] == pytest.approx(1.0, abs=0.01)
        assert np.nanmax(np.abs(traj.samples_xy[others, 1] - traj.true_xy[others])) <= 0.005 + 1e-6
        server.answers[video[short]] = [format_trajectory(truth[short])] * 2
        server.reset()
        again = run(config).trajectory
        assert dict(server.counts) == {video[short]: 1}  # only the failed sample is asked again
    # the k answers of the earlier run come back from predictions.jsonl
    np.testing.assert_array_equal(again.samples_xy[others], traj.samples_xy[others])
    assert again.min_over_k["min_ade_m"] <= 0.005 * np.sqrt(2)


def test_the_default_dataset_gets_no_trajectory_scores(dataset_dir, tmp_path):
    import datasets

    ids = datasets.load_from_disk(str(dataset_dir / "test"))["id"]
    preds = _predictions(tmp_path / "p.jsonl", dict.fromkeys(ids, ""))
    out = tmp_path / "out"
    out.mkdir()
    (out / TOP_DOWN_PLOT).write_text("an earlier path run's plot")
    config = EvaluateConfig(dataset=dataset_dir, output_dir=out, predictions=preds, overwrite=True)
    assert run(config).trajectory is None
    metrics = json.loads((out / "metrics.json").read_text())
    assert "trajectory" not in metrics and metrics["answers"] == "motion" and metrics["parse_failures"] == len(ids)
    assert not (out / TOP_DOWN_PLOT).exists() and "Trajectories" not in (out / "report.html").read_text()


def test_num_samples_needs_a_model_or_a_server(trajectory_dataset, tmp_path):
    preds = _predictions(tmp_path / "p.jsonl", {})
    with pytest.raises(PipelineError, match="--num-samples > 1 needs --model or --server"):
        EvaluateConfig(dataset=trajectory_dataset, output_dir=tmp_path / "out", predictions=preds, num_samples=2)
    with pytest.raises(PipelineError, match="--num-samples must be >= 1"):
        EvaluateConfig(dataset=trajectory_dataset, output_dir=tmp_path / "out", predictions=preds, num_samples=0)


def test_answers_are_sized_on_the_trajectory_points():
    targets = {"targets": "trajectory", "horizon_s": 6.4, "target_hz": 30}
    assert answer_lines({"targets": targets}, 30) == 192  # a build without n_targets: horizon_s * target_hz
    assert answer_lines({"targets": targets, "n_targets": 64}, 30) == 64
    assert answer_lines({"targets": {**targets, "targets": "motion"}}, 30) == 30
    assert answer_lines({}, 30) == 30
