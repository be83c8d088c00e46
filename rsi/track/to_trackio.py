"""trackio (Hugging Face's local-first tracker): a run in the project named after the config,
stored in trackio's local database (`TRACKIO_DIR`, by default under the Hugging Face cache).

Scalars are logged with the axis's step (trackio keeps one step per log call, so each axis's step
is also logged as a value); text is logged as a string. A resumed run continues the same trackio
run by name. `trackio show --project rsi-<config name>`.
"""

from __future__ import annotations

from pathlib import Path


class Trackio:
    name = "trackio"

    def __init__(self, project: str, run_name: str, resume: bool, config: dict) -> None:
        import trackio

        self.run = trackio.init(project=project, name=run_name, config=config, resume="allow" if resume else "never",
                                embed=False, auto_log_cpu=False, auto_log_gpu=False)
        self.ident, self.link = run_name, f"trackio project {project}, run {run_name}"

    def params(self, flat: dict[str, str]) -> None:
        pass  # the config went in at `trackio.init`

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        self.run.log({**values, axis: step}, step=None)

    def text(self, key: str, value: str, axis: str, step: int) -> None:
        self.run.log({key: value, axis: step}, step=None)

    def close(self) -> None:
        self.run.finish()


def open_run(run_dir: Path, run_name: str, ident: str | None, config: dict) -> Trackio:
    return Trackio(f"rsi-{config.get('name', 'run')}", run_name, ident is not None, config)
