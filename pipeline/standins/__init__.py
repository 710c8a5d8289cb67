"""Offline stand-ins for what the tests, the demo and the benchmarks cannot reach: synthetic PhysicalAI-AV-shaped
repositories (analytic trajectories, rendered road videos, frame-index codes), a local Hub-protocol server
(`hub_server`), tiny random-init Qwen-VL models (`tiny_model`, chat templates in `templates/`), the dataset's
`features.csv` (`data/`) and the `transformers serve` launcher (`transformers_serve`). No stage imports this
package; only the demo and the `synth`, `serve` and `make-tiny-model` commands do.

Import the submodules by name: the package itself imports nothing, so the command line reads the stand-ins' settings
(`SynthConfig`, `ServeConfig`, `MakeTinyModelConfig`) without loading the renderer.
"""
