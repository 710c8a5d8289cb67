"""What the demo owns in its `--workdir`: folders of its own names (never a real stage's default output name), each
listed in `.pipeline-demo.json` when the demo makes it. The demo removes only folders that list names; a folder of
one of its names that the list does not hold is the user's, and the demo refuses to start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError

# The demo's folders: stage outputs, then the report (kept without --keep).
STAGE_DIRS = ("demo_hub_repo", "demo_source", "demo_segments", "demo_dataset", "demo_tiny_model", "demo_model")
REPORT_DIR = "demo_report"
OWNED = ".pipeline-demo.json"


class DemoWorkdir:
    """The demo's folders under `root`, and the list of those it made."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    def _owned(self) -> set[str]:
        try:
            return set(json.loads((self.root / OWNED).read_text(encoding="utf-8"))["made"])
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, KeyError, TypeError) as err:
            message = f"{self.root / OWNED}: unreadable ({err}); remove it or choose another --workdir"
            raise PipelineError(message) from None

    def _write(self, owned: set[str]) -> None:
        write_json(self.root / OWNED, {"made": sorted(owned)})

    def claim(self) -> None:
        """Remove what an earlier demo made here; refuse (before touching anything) a folder the demo did not make."""
        owned = self._owned()
        names = (*STAGE_DIRS, REPORT_DIR)
        for name in names:
            if self.path(name).exists() and name not in owned:
                raise PipelineError(
                    f"{self.path(name)}: exists and was not made by `pipeline demo`; "
                    "move it or choose another --workdir"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        self._write(owned | set(names))  # listed before made: an interrupted demo's folders are still its own
        for name in names:
            shutil.rmtree(self.path(name), ignore_errors=True)

    def remove_stage_outputs(self) -> None:
        """Remove the stage folders the demo made (not the report)."""
        owned = self._owned()
        for name in STAGE_DIRS:
            if name in owned:
                shutil.rmtree(self.path(name), ignore_errors=True)
        self._write(owned - set(STAGE_DIRS))


__all__ = ["OWNED", "REPORT_DIR", "STAGE_DIRS", "DemoWorkdir"]
