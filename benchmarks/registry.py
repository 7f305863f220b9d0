"""Registry at scale: naming a model, a version and a page of versions at 100k versions.

Builds one model with ``--versions`` versions (one file each; 90% available, 5% archived,
5% failed) plus 200 small models, and 30 days of per-minute usage of its newest version
(the one its page shows) in one slot, through the ORM in bulk (``bulk_create``: the
version-count triggers run for every row) into a fresh database: SQLite in a temp
folder, and PostgreSQL in a database of its own (``--pg-url``, dropped and created; then
ANALYZE, as autovacuum would do after a bulk load). Then it starts the real web process
(``python -m modelmgr.web_server``) and measures each request with ``wrk`` (one
connection, ``Connection: close``: every request on a fresh connection), with a read
token as a robot would, or a logged-in session for the HTML pages.

Targets (issue #13, "Registry at scale"), at 100k versions of one model, on both
databases: a version page p95 <= 20 ms (first and deep pages, API and the model's
page), name/ref resolution p95 <= 5 ms, model detail p95 <= 10 ms, /models pages
p95 <= 20 ms, health p50 <= 5 ms; the web process's memory O(page) (RSS growth). The
usage section that page fetches once shown (``usage_panel``: all-time totals and the
last 24 h, 1,440 rows) is measured without a target.

Usage: .venv/bin/python benchmarks/registry.py [--versions 100000] [--seconds 5]
       [--db sqlite,postgres] [--pg-url postgres://postgres@127.0.0.1:5432/bench_registry]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import PYTHON, ROOT, emit, free_port, print_table  # noqa: E402

BIG = "big"
WRK_SCRIPT = """
wrk.headers["Connection"] = "close"
{auth}
done = function(summary, latency, requests)
  io.write(string.format("P50_US %d\\nP95_US %d\\nP99_US %d\\nMAX_US %d\\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
  io.write(string.format("FAILED %d\\n", summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""
# name -> (target kind, figure compared, limit in ms)
TARGETS = {
    "health": ("p50_ms", 5.0),
    "model_detail": ("p95_ms", 10.0),
    "version_get": ("p95_ms", 10.0),
    "resolve_bare": ("p95_ms", 5.0),
    "resolve_ref": ("p95_ms", 5.0),
    "versions_page_first": ("p95_ms", 20.0),
    "versions_page_deep": ("p95_ms", 20.0),
    "versions_page_available_deep": ("p95_ms", 20.0),
    "models_api": ("p95_ms", 20.0),
    "models_page": ("p95_ms", 20.0),
    "model_page": ("p95_ms", 20.0),
    # No target in the issue: the usage section the model page fetches once shown.
    "usage_panel": ("p95_ms", None),
}
USAGE_DAYS = 30  # of per-minute usage of the newest version in one slot (43,200 rows)


def build(n: int) -> dict:
    """Runs in a subprocess with the benchmark's environment: fills the fresh database."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection

    from modelmgr.models import ApiToken, ArtifactFile, ModelVersion, RegisteredModel
    from modelmgr.registry.pagination import encode_newest_cursor

    users = get_user_model()
    owner = users.objects.create_user("robot-owner", password="bench")
    raw = ApiToken.generate()
    ApiToken.objects.create(
        user=owner, name="bench", token_hash=ApiToken.hash_token(raw), scopes=["read"]
    )
    started = time.perf_counter()
    small = RegisteredModel.objects.bulk_create(
        RegisteredModel(owner=owner, name=f"small-{i:03d}", task="classifier") for i in range(200)
    )
    ModelVersion.objects.bulk_create(
        ModelVersion(model=m, version=str(v), status="available", framework="onnx")
        for m in small
        for v in range(1, 4)
    )
    big = RegisteredModel.objects.create(owner=owner, name=BIG, task="detector")
    batch = 5000
    for start in range(0, n, batch):
        versions = ModelVersion.objects.bulk_create(
            ModelVersion(
                model=big,
                version=f"1.{i}",
                status="archived" if i % 20 == 7 else "error" if i % 20 == 13 else "available",
                error="load failed" if i % 20 == 13 else "",
                framework="onnx",
                size_bytes=1000 + i,
                signature={"inputs": [{"name": "x", "shape": [1, 3], "dtype": "float32"}]},
            )
            for i in range(start, min(n, start + batch))
        )
        ArtifactFile.objects.bulk_create(
            ArtifactFile(
                version=v,
                path="model.onnx",
                size=v.size_bytes,
                sha256=f"{v.pk:064x}",
                is_primary=True,
            )
            for v in versions
        )
    newest = ModelVersion.objects.filter(model=big).order_by("-created_at", "-id").first()
    _usage_history(newest)
    build_s = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    big.refresh_from_db()
    ordered = list(
        ModelVersion.objects.filter(model=big)
        .order_by("-created_at", "-id")
        .values_list("created_at", "id", "version")[n // 2 : n // 2 + 1]
    )
    stamp, pk, middle = ordered[0]
    session = SessionStore()
    session["_auth_user_id"] = str(owner.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = owner.get_session_auth_hash()
    session.create()
    return {
        "token": raw,
        "session": session.session_key,
        "middle": middle,
        "deep_cursor": encode_newest_cursor(stamp, pk),
        "version_count": big.version_count,
        "latest_version": big.latest_version,
        "build_s": round(build_s, 1),
    }


def _usage_history(version) -> None:
    """USAGE_DAYS of minutes of one slot, 60 requests a minute (a robot at 1 Hz), and
    their all-time total, as the worker's flush leaves them."""
    from datetime import timedelta

    from django.utils import timezone

    from modelmgr.models import LATENCY_BUCKETS_MS, UsageBucket, UsageTotal

    histogram = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    histogram[22], histogram[24], histogram[33] = 50, 9, 1  # ~1.4, 2.1 and 16 ms
    now = timezone.now().replace(second=0, microsecond=0)
    minutes = USAGE_DAYS * 24 * 60
    figures = {"count": 60, "total_ms": 60 * 1.6, "min_ms": 1.1, "max_ms": 15.0}
    UsageBucket.objects.bulk_create(
        (
            UsageBucket(
                version=version,
                slot_name="detector",
                minute=now - timedelta(minutes=ago),
                last_used=now - timedelta(minutes=ago),
                histogram=histogram,
                **figures,
            )
            for ago in range(minutes)
        ),
        batch_size=5000,
    )
    UsageTotal.objects.create(
        version=version,
        slot_name="detector",
        count=figures["count"] * minutes,
        total_ms=figures["total_ms"] * minutes,
        min_ms=figures["min_ms"],
        max_ms=figures["max_ms"],
        histogram=[n * minutes for n in histogram],
        last_used=now,
    )


def wrk(url: str, script: Path, seconds: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        ["wrk", "-t1", "-c1", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    fig = {k: int(v) for k, v in re.findall(r"^(\w+_US|FAILED) (\d+)$", out, re.M)}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": fig["P50_US"] / 1000,
        "p95_ms": fig["P95_US"] / 1000,
        "p99_ms": fig["P99_US"] / 1000,
        "max_ms": fig["MAX_US"] / 1000,
        "failed": fig["FAILED"],
        "wrk_cpu": round(cpu / wall, 3),
    }


def pg_recreate(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def run_one(db: str, args, tmp: Path) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "SQLITE_PATH", "REDIS_URL")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
            "MODELMGR_VAR_DIR": str(tmp / db / "var"),
            "MODELMGR_IMPORT_RUNNER": "false",
            "MODELMGR_WORKER_EVENTS_RELAY": "false",
            "PYTHONPATH": str(ROOT),
        }
    )
    if db == "postgres":
        pg_recreate(args.pg_url)
        env["DATABASE_URL"] = args.pg_url
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [PYTHON, __file__, "--build", str(args.versions)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fixture = json.loads(out.strip().splitlines()[-1])
    print(f"[{db}] built {args.versions} versions in {fixture['build_s']} s", flush=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / f"web-{db}.log", "wb")  # noqa: SIM115
    web = subprocess.Popen(
        [PYTHON, "-m", "modelmgr.web_server", "-b", "127.0.0.1", "-p", str(port)]
        + ["modelmgr.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError(f"the web process did not start; see {log.name}")
            time.sleep(0.2)
        token = f'wrk.headers["Authorization"] = "Bearer {fixture["token"]}"'
        cookie = f'wrk.headers["Cookie"] = "sessionid={fixture["session"]}"'
        scripts = {}
        for kind, auth in (("none", ""), ("token", token), ("session", cookie)):
            scripts[kind] = tmp / f"{db}-{kind}.lua"
            scripts[kind].write_text(WRK_SCRIPT.format(auth=auth))
        mid, deep = fixture["middle"], fixture["deep_cursor"]
        routes = {
            "health": ("none", "/api/v1/health"),
            "model_detail": ("token", f"/api/v1/models/{BIG}"),
            "version_get": ("token", f"/api/v1/models/{BIG}/versions/{mid}"),
            "resolve_bare": ("token", f"/api/v1/versions/{BIG}"),
            "resolve_ref": ("token", f"/api/v1/versions/{BIG}@{mid}"),
            "versions_page_first": ("token", f"/api/v1/models/{BIG}/versions?limit=50"),
            "versions_page_deep": (
                "token",
                f"/api/v1/models/{BIG}/versions?limit=50&cursor={deep}",
            ),
            "versions_page_available_deep": (
                "token",
                f"/api/v1/models/{BIG}/versions?limit=50&status=available&cursor={deep}",
            ),
            "models_api": ("token", "/api/v1/models?limit=50"),
            "models_page": ("session", "/models"),
            "model_page": ("session", f"/models/{BIG}"),
            "usage_panel": ("session", f"/models/{BIG}/versions/{fixture['latest_version']}/usage"),
        }
        headers = {
            "token": {"Authorization": f"Bearer {fixture['token']}"},
            "session": {"Cookie": f"sessionid={fixture['session']}"},
            "none": {},
        }
        for name, (kind, path) in routes.items():  # every route answers before it is timed
            answer = httpx.get(base + path, headers=headers[kind], timeout=30)
            if answer.status_code != 200:
                raise RuntimeError(f"{name}: {path} answered {answer.status_code}: {answer.text}")
        proc = psutil.Process(web.pid)
        rss_before = proc.memory_info().rss
        results: dict = {}
        for name, (kind, path) in routes.items():
            wrk(base + path, scripts[kind], 1)  # warm-up
            cpu_before = sum(proc.cpu_times()[:2])
            run = wrk(base + path, scripts[kind], args.seconds)
            cpu = sum(proc.cpu_times()[:2]) - cpu_before
            run["server_cpu_ms_per_req"] = round(
                cpu * 1000 / max(1.0, run["rps"] * args.seconds), 3
            )
            figure, limit = TARGETS[name]
            run["target"] = f"{figure} <= {limit}" if limit else "no target"
            run["met"] = run[figure] <= limit and run["failed"] == 0 if limit else None
            results[name] = run
        rss_after = proc.memory_info().rss
    finally:
        web.terminate()
        try:
            web.wait(timeout=15)
        except subprocess.TimeoutExpired:
            web.kill()
        log.close()
    return {
        "versions": fixture["version_count"],
        "latest_version": fixture["latest_version"],
        "build_s": fixture["build_s"],
        "web_rss_mb": round(rss_after / 2**20, 1),
        "web_rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
        "routes": results,
    }


def _verdict(met: bool | None) -> str:
    return "no target" if met is None else "met" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/bench_registry")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build is not None:
        print(json.dumps(build(args.build)))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="modelmgr-bench-registry-"))
    figures: dict = {"versions": args.versions, "seconds": args.seconds}
    try:
        for db in args.db.split(","):
            result = run_one(db, args, tmp)
            figures[db] = result
            rows = [
                (
                    name,
                    f"p50 {r['p50_ms']:.2f}  p95 {r['p95_ms']:.2f}  p99 {r['p99_ms']:.2f} ms  "
                    f"{r['rps']:.0f} req/s  cpu {r['server_cpu_ms_per_req']:.2f} ms/req  "
                    f"{_verdict(r['met'])} ({r['target']})",
                )
                for name, r in result["routes"].items()
            ]
            rss = f"{result['web_rss_mb']} / {result['web_rss_growth_mb']} MB"
            rows.append(("web RSS / growth", rss))
            print_table(f"{db}: {result['versions']} versions of one model", rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures["load_before"] = [round(x, 2) for x in load_before]
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["all_met"] = all(
        r["met"] is not False for db in args.db.split(",") for r in figures[db]["routes"].values()
    )
    figures["missed"] = [
        f"{db}:{name}"
        for db in args.db.split(",")
        for name, r in figures[db]["routes"].items()
        if r["met"] is False
    ]
    emit(figures)


if __name__ == "__main__":
    main()
