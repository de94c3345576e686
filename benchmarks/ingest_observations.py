"""Benchmark: 1,000,000 SensorThings observations into a scene, embedded (SQLite) and PostGIS, vs PostgreSQL COPY.

The same seeded observations (100 Datastreams x 10,000 one-minute values) go in through:
- ``cim.iot.add_observation_frame`` (the bulk path: column-wise checks, then on PostgreSQL COPY straight into
  the table under a savepoint — and, when some rows are there already, COPY into a temporary table and one
  ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; on SQLite ``INSERT OR IGNORE`` executemany), once into an
  empty table and once more with the same rows (all duplicates: the idempotent re-send);
- ``cim.iot.add_observations`` with value objects (what MQTT and the HTTP API build; a batch of 200 or more
  plain numeric observations takes the same bulk road), timed on ``--row-n`` rows and scaled to the total;
- the anchor: psycopg ``cursor.copy`` of the same rows (text COPY, from pandas ``to_csv``) straight into a
  table of the same key columns: with the same unique key, with the unique key and a foreign key to a
  Datastream table (what the store table has), and with no index at all; "COPY alone" leaves out the CSV
  formatting. COPY alone cannot skip duplicates: a re-send fails on the unique key.
Each timing is the median of ``--repeat`` runs, each on a fresh store; a throwaway PostGIS cluster is started
unless ``--postgis URL`` is given.

    .venv/bin/python benchmarks/ingest_observations.py [--n-streams 100] [--per-stream 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cim  # noqa: E402
from cim import iot  # noqa: E402


def observations(n_streams: int, per_stream: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01T00:00Z", periods=per_stream, freq="min")
    return pd.DataFrame({
        "datastream_id": np.repeat(np.arange(1, n_streams + 1), per_stream),
        "phenomenon_time": np.tile(times, n_streams),
        "result": np.round(rng.gamma(0.3, 2.0, n_streams * per_stream), 2),
    })


def make_scene(url: str, n_streams: int):
    scene = cim.Scene.create(url, crs="EPSG:28992", name="bench")
    unit = iot.UnitOfMeasurement("millimetre", "mm")
    streams = tuple(iot.Datastream(f"gauge {i}", unit, iot.Sensor("tipping bucket"),
                                   iot.ObservedProperty("precipitation_amount"), id=i)
                    for i in range(1, n_streams + 1))
    with scene.transaction() as conn:
        iot.add_thing(conn, iot.Thing("rain network", datastreams=streams))
    return scene


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_scene(url: str, frame: pd.DataFrame, n_streams: int, row_n: int) -> dict[str, float]:
    scene = make_scene(url, n_streams)
    try:
        def bulk():
            with scene.transaction() as conn:
                return iot.add_observation_frame(conn, frame)

        t_new, n_new = timed(bulk)
        t_dup, n_dup = timed(bulk)
        assert (n_new, n_dup) == (len(frame), 0), (n_new, n_dup)
        with scene.store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(iot.observations_table)).scalar() == len(frame)
    finally:
        scene.store.close()
    # the row path on a fresh store, row_n observations as value objects (as MQTT/HTTP create them)
    scene = make_scene(url.replace("scene.cim", "scene-rows.cim") if "://" not in url else _fresh(url), n_streams)
    try:
        part = frame.iloc[:row_n]

        def rows():
            objs = [iot.Observation(t, r, datastream_id=d) for d, t, r in
                    zip(part["datastream_id"].tolist(), part["phenomenon_time"], part["result"].tolist(),
                        strict=True)]
            with scene.transaction() as conn:
                return iot.add_observations(conn, objs)

        t_rows, n_rows = timed(rows)
        assert n_rows == row_n
    finally:
        scene.store.close()
    return {"bulk_new": t_new, "bulk_resend": t_dup, "rows": t_rows * len(frame) / row_n}


def _fresh(url: str) -> str:
    u = sa.engine.make_url(url)
    return u.update_query_dict({"schema": f"b{uuid.uuid4().hex[:10]}"}).render_as_string(hide_password=False)


def bench_copy(url: str, frame: pd.DataFrame, *, unique: bool, fk: bool = False) -> tuple[float, float]:
    """psycopg COPY of the same rows into a plain table of the same columns (with or without the unique key):
    (seconds from the DataFrame with pandas ``to_csv`` + COPY, seconds of the COPY alone)."""
    import psycopg

    u = sa.engine.make_url(url)
    dsn = u.set(drivername="postgresql").difference_update_query(["schema"]).render_as_string(hide_password=False)
    table = f"copy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn) as conn:
        if fk:
            conn.execute(f"CREATE TABLE {table}_ds (id integer primary key)")
            conn.execute(f"INSERT INTO {table}_ds SELECT generate_series(1, {int(frame['datastream_id'].max())})")
        conn.execute(f"CREATE TABLE {table} (id bigserial primary key, datastream_id integer NOT NULL "
                     + (f"REFERENCES {table}_ds (id)" if fk else "") + ", "
                     "phenomenon_time timestamptz NOT NULL, result double precision"
                     + (", UNIQUE (datastream_id, phenomenon_time))" if unique else ")"))
        conn.commit()
        t0 = time.perf_counter()
        buf = io.StringIO()
        frame.to_csv(buf, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S+00")
        text = buf.getvalue()
        t1 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {table} (datastream_id, phenomenon_time, result) "
                                            "FROM STDIN (FORMAT csv)") as copy:
            copy.write(text)
        conn.commit()
        t2 = time.perf_counter()
        n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert n == len(frame)
        conn.execute(f"DROP TABLE {table}")
        if fk:
            conn.execute(f"DROP TABLE {table}_ds")
        conn.commit()
    return t2 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-streams", type=int, default=100)
    ap.add_argument("--per-stream", type=int, default=10_000)
    ap.add_argument("--row-n", type=int, default=100_000, help="observations for the row path")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgis", help="postgresql+psycopg:// URL of a database with PostGIS (else a throwaway one)")
    args = ap.parse_args()
    frame = observations(args.n_streams, args.per_stream)
    cluster = None
    if args.postgis is None:
        from tests.services import PostgisCluster

        cluster = PostgisCluster().start()
        base = cluster.url()
    else:
        base = args.postgis
    try:
        runs: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                for k, v in bench_scene(str(Path(tmp) / "scene.cim"), frame, args.n_streams, args.row_n).items():
                    runs.setdefault(f"embedded {k}", []).append(v)
            for k, v in bench_scene(_fresh(base), frame, args.n_streams, args.row_n).items():
                runs.setdefault(f"postgis {k}", []).append(v)
            for unique, fk, label in ((True, False, "unique key"), (True, True, "unique key + foreign key"),
                                      (False, False, "no index")):
                full, alone = bench_copy(base, frame, unique=unique, fk=fk)
                runs.setdefault(f"COPY, {label} (to_csv + COPY)", []).append(full)
                runs.setdefault(f"COPY, {label} (COPY alone)", []).append(alone)
    finally:
        if cluster is not None:
            cluster.stop()
    n = len(frame)
    anchor = statistics.median(runs["COPY, unique key (to_csv + COPY)"])
    print(f"{n:,} observations ({args.n_streams} Datastreams x {args.per_stream:,}), median of {args.repeat}")
    print("| path | seconds | observations/s | time vs to_csv + COPY (unique key) |\n|---|---:|---:|---:|")
    for name, values in runs.items():
        t = statistics.median(values)
        print(f"| {name} | {t:.2f} | {n / t:,.0f} | {t / anchor:.2f}x |")


if __name__ == "__main__":
    main()
