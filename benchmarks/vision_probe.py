"""Is the speed in a trained model's visual tokens? A linear probe on the vision tower's output.

    uv run python benchmarks/vision_probe.py MODEL_DIR DATASET_DIR [--train-samples 800] [--test-samples 300]

For random train and held-out rows of a built dataset, pools each segment's visual tokens (mean and std over
tokens), fits ridge regressions (several strengths) from them to the first answer step's velocity (m/s) and
prints train and held-out MAE next to the train-mean baseline's held-out MAE. Run it on the untrained and the
trained model of benchmarks/learning_bench.py (`--workdir`/tiny_video, trained_video) to compare.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from pipeline.contracts.run_config import VideoSettings
from pipeline.demo.profiles import PROFILES
from pipeline.model.collator import SampleEncoder
from pipeline.stages.train import trainer


def pooled_features(model, encoder: SampleEncoder, rows, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 2 * width) pooled visual tokens and (count,) first-step velocities of random rows."""
    picks = np.random.default_rng(seed).permutation(len(rows))[:count]
    features, speeds = [], []
    for index in picks:
        row = rows[int(index)]
        inputs = encoder.encode(row["messages"])
        with torch.no_grad():
            tokens = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
        tokens = tokens.pooler_output[0]
        features.append(torch.cat([tokens.mean(0), tokens.std(0)]).numpy())
        speeds.append(row["velocity"][0])
    return np.array(features), np.array(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("dataset_dir")
    parser.add_argument("--train-samples", type=int, default=800)
    parser.add_argument("--test-samples", type=int, default=300)
    parser.add_argument(
        "--video-fps", type=float, default=PROFILES["default"].video_fps, help="as the model was trained"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    processor = AutoProcessor.from_pretrained(args.model_dir)
    model = AutoModelForImageTextToText.from_pretrained(args.model_dir).eval()
    encoder = SampleEncoder(processor, VideoSettings(fps=args.video_fps))
    x_train, y_train = pooled_features(
        model, encoder, trainer.load_rows(args.dataset_dir, "train"), args.train_samples, args.seed
    )
    x_test, y_test = pooled_features(
        model, encoder, trainer.load_rows(args.dataset_dir, "test"), args.test_samples, args.seed
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a = np.c_[(x_train - mean) / std, np.ones(len(x_train))]
    b = np.c_[(x_test - mean) / std, np.ones(len(x_test))]
    baseline = np.abs(y_train.mean() - y_test).mean()
    for strength in (0.1, 1.0, 10.0, 100.0):
        weights = np.linalg.solve(a.T @ a + strength * np.eye(a.shape[1]), a.T @ y_train)
        print(
            f"ridge {strength:g}: train MAE {np.abs(a @ weights - y_train).mean():.2f} m/s, held-out MAE "
            f"{np.abs(b @ weights - y_test).mean():.2f} m/s (train mean: {baseline:.2f} m/s)"
        )


if __name__ == "__main__":
    main()
