"""`ServeConfig`: the options of `pipeline serve` (light to import: the CLI reads it; the server is
`pipeline.standins.hub_server`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.av.catalog import REPO_ID
from pipeline.core.errors import PipelineError
from pipeline.core.options import setting


@dataclass(frozen=True)
class ServeConfig:
    """Options of `pipeline serve` (the repository directory is its argument)."""

    port: int = setting(0, help="TCP port on 127.0.0.1 (0: any free port).")
    token: str | None = setting(None, help="Gated mode: require `Authorization: Bearer TOKEN`.", repr=False)
    gated: bool = setting(False, help="Gated mode with the token in $HF_TOKEN (kept off the command line).")
    fail_every: int = setting(
        0, help="Fault injection: answer every N-th file request with HTTP 500.", flags=("--fail-every",)
    )
    cut_after: int | None = setting(
        None, help="Fault injection: drop the connection after BYTES of each file's first GET.", flags=("--cut-after",)
    )
    repo_id: str = setting(REPO_ID, help="Dataset repo id to answer as.")
    revision: str = setting("main", help="Branch name to answer as.")

    def required_token(self) -> str | None:
        """The token clients must send: `token`, else with `gated` $HF_TOKEN; None: not gated."""
        if not self.gated or self.token is not None:
            return self.token
        token = os.environ.get("HF_TOKEN")
        if not token:
            raise PipelineError("--gated: set HF_TOKEN to the token the server should require (or pass --token)")
        return token


__all__ = ["ServeConfig"]
