"""MLflow: a run in the experiment named after the config, through `MlflowClient`.

The tracking store is `MLFLOW_TRACKING_URI` when it is set (a server, a database), else a local
file store at `RUN/mlruns` (MLflow 3 keeps its file store in maintenance behind
`MLFLOW_ALLOW_FILE_STORE=true`, which rsi sets for it). Parameters are logged once, scalars as
metrics with the axis's step (in batches), text as tags (`gate/reason/cycle-3`). A resumed run
reopens the same MLflow run by its id. `mlflow ui --backend-store-uri RUN/mlruns`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

DIR = "mlruns"
BATCH = 100  # MLflow takes at most 100 parameters, 1000 metrics a batch


class MLflow:
    name = "mlflow"

    def __init__(self, uri: str, experiment: str, run_name: str, run_id: str | None) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            exp = found.experiment_id if found else self.client.create_experiment(experiment)
            run_id = self.client.create_run(exp, run_name=run_name, tags={"rsi.run_dir": run_name}).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.ident, self.link = run_id, f"{uri} (run {run_id})"

    def params(self, flat: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.ident, params=items[i:i + BATCH])

    def log(self, values: dict[str, float], axis: str, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.ident, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def text(self, key: str, value: str, axis: str, step: int) -> None:
        self.client.set_tag(self.ident, f"{key}/{axis}-{step}", value[:5000])

    def close(self) -> None:
        self.client.set_terminated(self.ident)


def open_run(run_dir: Path, run_name: str, ident: str | None, config: dict) -> MLflow:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:  # MLflow 3 asks for this opt-in to its file store, kept (in maintenance) for exactly this use
        uri = (run_dir / DIR).resolve().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflow(uri, f"rsi-{config.get('name', 'run')}", run_name, ident)
