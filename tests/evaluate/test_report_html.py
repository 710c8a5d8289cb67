"""report.html: a self-contained offline page with the gallery's clips, checked statically and in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.contracts.answer import format_answer
from pipeline.stages.evaluate.report_html import CLIPS_DIR, HTML_FILE, gallery_indices
from pipeline.stages.evaluate.stage import EvaluateConfig, run

SCREENSHOT_ENV = "PIPELINE_REPORT_SCREENSHOT"
"""Where to copy the browser test's screenshot (the README's image: docs/report_screenshot.png)."""


class _Page(HTMLParser):
    """Every tag's attributes, by tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == name]


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def evaluate_three_kinds(dataset_dir: Path, out: Path, embed_videos: bool = False):
    """Score the test split with an exact answer, a speed 2 m/s off and a garbled one (a parse failure)."""
    import datasets

    test = datasets.load_from_disk(str(dataset_dir / "test"))
    ids = list(test["id"])
    v = np.array(test["velocity"], dtype=np.float64)
    k = np.array(test["curvature"], dtype=np.float64)
    texts = [format_answer(v[0], k[0]), format_answer(v[1] + 2.0, k[1]), "I cannot tell."]
    preds = out.parent / f"{out.name}.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, texts, strict=False)))
    result = run(EvaluateConfig(dataset=dataset_dir, output_dir=out, predictions=preds, embed_videos=embed_videos))
    return result, ids


@pytest.fixture(scope="module")
def html_report(dataset_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "eval_report"
    result, ids = evaluate_three_kinds(dataset_dir, out)
    return result, ids, out


def test_gallery_is_best_worst_and_failures(html_report):
    result, ids, out = html_report
    # two parsed answers: the exact one is best (and median), the shifted one worst; then the failure
    assert [(label, result.ids[i]) for label, i in gallery_indices(result)] == [
        ("best", ids[0]),
        ("worst", ids[1]),
        ("failure", ids[2]),
    ]


def test_page_is_self_contained_with_relative_clips(html_report, dataset_dir):
    result, ids, out = html_report
    page = parse(out / HTML_FILE)
    text = (out / HTML_FILE).read_text(encoding="utf-8")
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text) and "url(" not in text
    sources = [attrs["src"] for attrs in page.all("source")]
    assert len(page.all("video")) == 3 and sources == [f"{CLIPS_DIR}/{i}.mp4" for i in ids]
    for src, sample_id in zip(sources, ids, strict=True):
        copied = out / src
        original = next(r["video"] for r in result_rows(dataset_dir) if r["id"] == sample_id)
        assert copied.read_bytes() == Path(original).read_bytes()
    images = [attrs["src"] for attrs in page.all("img")]
    assert len(images) == 3 + 4 and all(src.startswith("data:image/png;base64,") for src in images)
    for must in ("Model vs baselines", "train_mean", "Run settings", "dataset_fingerprint", "I cannot tell."):
        assert must in text, must


def result_rows(dataset_dir: Path) -> list[dict]:
    from pipeline.contracts.dataset_reader import load_split

    return list(load_split(dataset_dir, "test").select_columns(["id", "video"]))


def test_embedded_videos_need_no_clips_folder(dataset_dir, tmp_path):
    out = tmp_path / "eval_report"
    evaluate_three_kinds(dataset_dir, out, embed_videos=True)
    sources = [attrs["src"] for attrs in parse(out / HTML_FILE).all("source")]
    assert len(sources) == 3 and all(src.startswith("data:video/mp4;base64,") for src in sources)
    assert not (out / CLIPS_DIR).exists()


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("PIPELINE_REQUIRE_BROWSER"):
        pytest.fail("no chromium on PATH (.ci/run installs the Debian package `chromium`)")
    pytest.skip("no chromium on PATH (apt-get install -y chromium)")


def open_in_chromium(page: Path, screenshot: Path, profile: Path) -> str:
    """Load `page` in headless Chromium with a virtual-time budget, screenshot it; returns the browser's log."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1280,1800",
            f"--screenshot={screenshot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


PROBE = """<script>
document.addEventListener("error", e => console.error("load error: " + (e.target.src || e.target.currentSrc)), true);
document.addEventListener("loadedmetadata", e => console.log(
    "video ready: " + e.target.currentSrc + " " + e.target.videoWidth + "x" + e.target.videoHeight), true);
</script>"""
"""Test-only listeners injected into a copy of the page: each video's decoded size, or its load error."""


def probe_copy(report_dir: Path, tmp_path: Path) -> Path:
    """A copy of the report directory whose page reports each video's fate on the browser's console."""
    copy = tmp_path / "report"
    shutil.copytree(report_dir, copy)
    page = copy / HTML_FILE
    page.write_text(page.read_text(encoding="utf-8").replace("</head>", PROBE + "</head>", 1), encoding="utf-8")
    return page


def console_messages(log: str) -> list[str]:
    """The page's console messages and the browser's load failures, from its log."""
    messages = re.findall(r':CONSOLE[^\]]*\] "(.*)", source:', log)
    return messages + [line for line in log.splitlines() if "net::ERR" in line]


def test_report_opens_in_headless_chromium(html_report, tmp_path):
    result, ids, out = html_report
    page = probe_copy(out, tmp_path)
    started = time.perf_counter()
    log = open_in_chromium(page, tmp_path / "report.png", tmp_path / "profile")
    print(f"chromium: {time.perf_counter() - started:.1f} s")
    messages = console_messages(log)
    # every gallery video was found and decoded (96x64 segments), and nothing else was logged: no errors
    ready = [f"video ready: {(page.parent / CLIPS_DIR / f'{i}.mp4').as_uri()} 96x64" for i in ids]
    assert sorted(messages) == sorted(ready), log[-3000:]
    with Image.open(tmp_path / "report.png") as image:
        assert image.size == (1280, 1800)
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    # not blank: the dark header, text, plots and video frames give many tones and a spread of brightness
    assert len(np.unique(gray)) > 50 and gray.std() > 20, (len(np.unique(gray)), gray.std())
    assert gray[:40].mean() < 80  # the header bar rendered (the page's CSS applied)
    if target := os.environ.get(SCREENSHOT_ENV):
        with Image.open(tmp_path / "report.png") as image:
            image.convert("RGB").resize((800, 1125)).quantize(colors=128).save(target, optimize=True)


def test_the_browser_check_sees_a_missing_clip(html_report, tmp_path):
    """The check can fail: with one clip gone, Chromium reports its load error and two videos only."""
    _, ids, out = html_report
    page = probe_copy(out, tmp_path)
    (page.parent / CLIPS_DIR / f"{ids[0]}.mp4").unlink()
    messages = console_messages(open_in_chromium(page, tmp_path / "broken.png", tmp_path / "profile"))
    assert f"load error: {(page.parent / CLIPS_DIR / f'{ids[0]}.mp4').as_uri()}" in messages
    assert len([m for m in messages if m.startswith("video ready:")]) == 2


class _Tables(HTMLParser):
    """The text of every table cell, as tables of rows, and the text of `<p>`s."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.paragraphs: list[str] = []
        self._where: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
        self._where = tag if tag in ("td", "th", "p") else self._where
        if tag == "p":
            self.paragraphs.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th", "p"):
            self._where = None

    def handle_data(self, data):
        if self._where in ("td", "th"):
            self.tables[-1][-1][-1] += data
        elif self._where == "p":
            self.paragraphs[-1] += data


def path_result(sample_id: str):
    """Two samples' path answers, k = 2 each (both first ones 1 m to the left of the truth; the first sample's second
    exact, the second's unreadable), scored with the baselines."""
    from pipeline.contracts.trajectory_answer import format_trajectory
    from pipeline.stages.evaluate.scoring import path_answer_result
    from pipeline.stages.evaluate.trajectory_scoring import score_trajectory_answers

    future = np.zeros((2, 10, 3))
    future[:, :, 0] = np.arange(1, 11)  # 1 m per 0.1 s point: 10 m/s straight ahead for 1 s
    history = np.zeros((2, 3, 3))
    history[:, :, 0] = [-2.0, -1.0, 0.0]
    left, exact = format_trajectory(future[0, :, :2] + [0.0, 1.0]), format_trajectory(future[0, :, :2])
    texts = [[left, exact], [left, "no"]]
    settings = {"target_hz": 10.0, "history_hz": 1.0}
    ids = [sample_id, "plain"]
    trajectory = score_trajectory_answers(ids, texts, future, history, settings)
    rows = {"id": ids, "clip_id": ["c<1>", "c2"], "segment_index": [0, 1]}
    result = path_answer_result(rows, [t[0] for t in texts], trajectory)
    result.info = {"split": "test", "predictions_file": "p<&>.jsonl", "settings": {}}
    return result


def test_trajectory_section_shows_the_tables_min_ade_and_the_top_down_plot(tmp_path):
    from pipeline.stages.evaluate.report import write_report
    from pipeline.stages.evaluate.report_html import write_html_report
    from pipeline.stages.evaluate.trajectory_metrics import L2_AT, L2_AVERAGED
    from pipeline.stages.evaluate.trajectory_report import trajectory_tables

    result = path_result('<img src=x onerror="alert(1)">&')
    write_report(result, tmp_path)
    write_html_report(result, tmp_path, videos=[None, None])
    text = (tmp_path / HTML_FILE).read_text(encoding="utf-8")
    assert "<img src=x" not in text and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in text
    parsed = _Tables()
    parsed.feed(text)
    # the page's tables after the settings' own: ADE/FDE and L2 over all, then over complete answers
    expected = [[header, *rows] for subset in ("all", "complete") for header, rows in trajectory_tables(
        result.trajectory, subset)]  # fmt: skip
    shown = [table for table in parsed.tables if table and table[0][0] == "predictor"]
    assert shown == expected
    ade, l2 = shown[0], shown[1]
    assert [row[0] for row in ade[1:]] == ["model", "constant_velocity", "ctrv"]
    assert ade[1][ade[0].index("ADE all (m)")] == "1.000"  # both first answers are 1 m to the left
    assert {f"L2 1s, {L2_AVERAGED} (m)", f"L2 1s, {L2_AT} (m)"} <= set(l2[0])
    assert any(p.startswith("minADE over the 2 answers: 0.500 m; minFDE: 0.500 m") for p in parsed.paragraphs)
    page = parse(tmp_path / HTML_FILE)
    images = page.all("img")
    assert any(a["alt"].startswith("Trajectories from above") for a in images)
    assert len(images) == 1 + 2 and not page.all("video")  # the plot, one path figure per card; no video found
    assert console_messages(open_in_chromium(tmp_path / HTML_FILE, tmp_path / "t.png", tmp_path / "profile")) == []
