"""The MLflow side of bench/bench_registry.py. Runs inside ``.venv-mlflow`` (see
bench/install_mlflow.sh), never in the project's venv; it imports nothing from the project.

Each subcommand prints one JSON line on stdout. The store is MLflow's SQLite backend for
both tracking and the model registry (``sqlite:///DIR/mlflow.db``), with the artifacts of
the experiment "bench" under ``DIR/artifacts``. The registered model is called "m".

    init DIR               time a fresh store: set_tracking_uri + the first registry call
                           (creates the tables) + creating the experiment
    register DIR N PATH    register N versions of "m": per version, a run that logs the
                           artifact and create_model_version(source=artifact URI, run_id).
                           PATH is one file (logged N times) or a directory whose sorted
                           files are logged in turn (version i gets file i mod count).
                           --meta also logs a metric and a param in each run.
    alias DIR [--version V] [--repeat R]
                           set alias "production" on version V (default 100, or the latest
                           if fewer), then time get_model_version_by_alias, best of R (100)
    storage DIR FILE       register the same FILE twice (two runs); report the disk usage of
                           DIR/artifacts and of DIR before and after the second one
    coldload DIR DEST      import mlflow, resolve "m@production" and download its artifact
                           to DEST; timed from outside as a whole fresh process
    version                mlflow's version
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings

MODEL = "m"
EXPERIMENT = "bench"


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def quiet() -> None:
    """Silence MLflow's and alembic's per-call logging and warnings (they would cost time too)."""
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)


def disk_usage(path: str) -> int:
    """Sum of st_blocks * 512 of the files under `path`, each inode once (like ``du``)."""
    seen, blocks = set(), 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                blocks += st.st_blocks * 512
    return blocks


def open_store(store: str):
    """Point mlflow at the store under `store`; return (mlflow, client, experiment_id)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{os.path.abspath(store)}/mlflow.db")
    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        EXPERIMENT, artifact_location=os.path.abspath(os.path.join(store, "artifacts")))
    return mlflow, client, exp_id


def register_one(mlflow, client, exp_id: str, path: str, meta: bool):
    """The standard way: a run that logs the artifact, then a model version from its URI."""
    with mlflow.start_run(experiment_id=exp_id) as run:
        if meta:
            mlflow.log_param("lr", 0.1)
            mlflow.log_metric("val_loss", 0.3)
        mlflow.log_artifact(path)
        uri = mlflow.get_artifact_uri(os.path.basename(path))
    return client.create_model_version(MODEL, source=uri, run_id=run.info.run_id)


def ensure_model(client) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(MODEL)
    except MlflowException:
        client.create_registered_model(MODEL)


def cmd_init(a) -> None:
    t0 = time.perf_counter()
    import mlflow
    from mlflow import MlflowClient

    t_import = time.perf_counter() - t0
    quiet()
    os.makedirs(a.dir, exist_ok=True)
    t1 = time.perf_counter()
    mlflow.set_tracking_uri(f"sqlite:///{os.path.abspath(a.dir)}/mlflow.db")
    client = MlflowClient()
    client.search_registered_models()  # creates the tables (runs the schema migrations)
    t_registry = time.perf_counter() - t1
    client.create_experiment(EXPERIMENT, artifact_location=os.path.abspath(os.path.join(a.dir, "artifacts")))
    t_init = time.perf_counter() - t1
    emit(op="init", import_s=t_import, registry_tables_s=t_registry, init_s=t_init,
         db_bytes=os.path.getsize(os.path.join(a.dir, "mlflow.db")))


def cmd_register(a) -> None:
    quiet()
    mlflow, client, exp_id = open_store(a.dir)
    ensure_model(client)
    if os.path.isdir(a.path):
        files = sorted(os.path.join(a.path, f) for f in os.listdir(a.path))
    else:
        files = [a.path]
    times = []
    for i in range(a.n):
        t0 = time.perf_counter()
        register_one(mlflow, client, exp_id, files[i % len(files)], a.meta)
        times.append(time.perf_counter() - t0)
    total = sum(times)
    s = sorted(times)
    emit(op="register", n=a.n, files=len(files), total_s=total, per_version_s=total / a.n,
         median_s=s[len(s) // 2], min_s=s[0], max_s=s[-1],
         latest_version=max(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'")))


def cmd_alias(a) -> None:
    quiet()
    _, client, _ = open_store(a.dir)
    versions = [int(v.version) for v in client.search_model_versions(f"name='{MODEL}'")]
    version = a.version if a.version in versions else max(versions)
    client.set_registered_model_alias(MODEL, "production", str(version))
    best, got = float("inf"), None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        got = client.get_model_version_by_alias(MODEL, "production")
        best = min(best, time.perf_counter() - t0)
    assert int(got.version) == version, (got.version, version)
    emit(op="alias", version=version, repeat=a.repeat, best_ms=best * 1e3)


def cmd_storage(a) -> None:
    quiet()
    mlflow, client, exp_id = open_store(a.dir)
    ensure_model(client)
    art = os.path.join(a.dir, "artifacts")
    register_one(mlflow, client, exp_id, a.file, False)
    before_art, before_all = disk_usage(art), disk_usage(a.dir)
    register_one(mlflow, client, exp_id, a.file, False)
    after_art, after_all = disk_usage(art), disk_usage(a.dir)
    emit(op="storage", file_bytes=os.path.getsize(a.file),
         artifacts_before=before_art, artifacts_after=after_art,
         store_before=before_all, store_after=after_all,
         growth_artifacts=after_art - before_art, growth_store=after_all - before_all)


def cmd_coldload(a) -> None:
    quiet()
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{os.path.abspath(a.dir)}/mlflow.db")
    mv = MlflowClient().get_model_version_by_alias(MODEL, "production")
    path = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=a.dest)
    emit(op="coldload", version=int(mv.version), path=path, bytes=os.path.getsize(path))


def cmd_version(a) -> None:
    import mlflow

    emit(op="version", mlflow=mlflow.__version__, python=sys.version.split()[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("init")
    s.add_argument("dir")
    s = sub.add_parser("register")
    s.add_argument("dir")
    s.add_argument("n", type=int)
    s.add_argument("path")
    s.add_argument("--meta", action="store_true", help="also log a metric and a param per run")
    s = sub.add_parser("alias")
    s.add_argument("dir")
    s.add_argument("--version", type=int, default=100)
    s.add_argument("--repeat", type=int, default=100)
    s = sub.add_parser("storage")
    s.add_argument("dir")
    s.add_argument("file")
    s = sub.add_parser("coldload")
    s.add_argument("dir")
    s.add_argument("dest")
    sub.add_parser("version")
    a = p.parse_args(argv)
    {"init": cmd_init, "register": cmd_register, "alias": cmd_alias, "storage": cmd_storage,
     "coldload": cmd_coldload, "version": cmd_version}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
