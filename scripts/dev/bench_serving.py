"""Serving benchmark: the Bento against the course's FastAPI + joblib design, same load.

``python -m scripts.dev.bench_serving`` (``make bench-serving``, after ``make bento``) serves the
model two ways on loopback — (a) the built Bento (``bentoml serve``, ONNX Runtime),
(b) ``scripts.dev.baseline_server`` (uvicorn, the scikit-learn Pipeline unpickled with
joblib, one DataFrame per request) — and drives both with ``wrk`` (Debian package) at
concurrency 1, 8 and 32, one-record ``POST /predict`` requests, alternating A/B and B/A
over the rounds. Per server and point it prints the medians over rounds of req/s,
p50/p95/p99 latency, the total requests and errors, then the ratios.

Then a sustained load on the Bento alone: ``--sustain`` seconds (default 30) at 80 % of
its peak rate (paced with wrk's Lua ``delay``: exponential waits, so the connections'
requests arrive spread out rather than in bursts), counting what was answered against what
the service counted (``credit_risk_predictions_total``) and the rows its prediction log
holds: none may be lost.

wrk's latency percentiles include its coordinated-omission correction: a pause of the
server counts for the requests a steady client would have sent meanwhile, so a 200 ms
stall every 2 s shows in the p99 even at one connection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from scripts.cd.checks import running
from scripts.cd.processes import free_port

CONCURRENCY = (1, 8, 32)
SUSTAINED_SHARE = 0.8
SUSTAINED_CONNECTIONS = 32
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
pause_ms = {pause_ms}
threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(1000 * (id or 0) + os.time())
end
if pause_ms > 0 then
  -- Exponential waits: the connections do not fall into step (bursts of 32 at once).
  delay = function() return math.floor(-math.log(1 - math.random()) * pause_ms + 0.5) end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non2xx": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk run against one server at one concurrency."""

    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds


def wrk(url: str, script: Path, connections: int, seconds: int) -> Run:
    """Run wrk and parse the JSON line its Lua ``done`` hook prints."""
    threads = 1 if connections == 1 else 2
    if connections < threads:
        threads = connections
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(output.strip().splitlines()[-1])
    return Run(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p95_ms=data["p95_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        errors=data["errors"] + data["non2xx"],
    )


def record_body(spec_path: Path) -> str:
    """A valid one-record /predict body from the test split (or mid-range values)."""
    from scripts.cd.checks import example_record

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    record = example_record({"schema": spec["schema"]})
    test_split = Path("data/split/test.parquet")
    if test_split.is_file():
        import pandas as pd

        row = pd.read_parquet(test_split)[spec["features"]].dropna().iloc[0]
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    return json.dumps({"records": [record]})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dev.bench_serving", description=__doc__
    )
    parser.add_argument("--bento", required=True, help="Bento tag, e.g. credit_risk:<git sha>")
    parser.add_argument("--bento-workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=5, help="duration of one wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds per point")
    parser.add_argument("--spec", type=Path, default=Path("models/serving.json"))
    parser.add_argument("--model", type=Path, default=Path("models/model.joblib"))
    parser.add_argument("--sustain", type=int, default=30, help="seconds of the sustained load")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench_serving: wrk not found; install it: apt-get install -y wrk", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="gitops-ml-bench-") as scratch_dir,
        ExitStack() as stack,
    ):
        scratch = Path(scratch_dir)
        body = record_body(args.spec)
        script = scratch / "predict.lua"
        script.write_text(WRK_SCRIPT.format(body=body, pause_ms=0), encoding="utf-8")
        bento_port, base_port = free_port(), free_port()
        env = {**os.environ, "GITOPS_ML_LOG_DIR": str(scratch / "logs")}
        bento_env = {**env, "GITOPS_ML_WORKERS": str(args.bento_workers)}
        bento_cmd = [
            "bentoml",
            "serve",
            args.bento,
            "--host",
            "127.0.0.1",
            "--port",
            str(bento_port),
        ]
        base_env = {**env, "GITOPS_ML_BASELINE_MODEL": str(args.model.resolve())}
        base_cmd = [
            *(sys.executable, "-m", "uvicorn", "scripts.dev.baseline_server:app"),
            *("--host", "127.0.0.1", "--port", str(base_port), "--log-level", "warning"),
        ]
        bento_url, base_url = f"http://127.0.0.1:{bento_port}", f"http://127.0.0.1:{base_port}"
        servers = {"bento": f"{bento_url}/predict", "baseline": f"{base_url}/predict"}
        stack.enter_context(running(bento_cmd, bento_url, env=bento_env, log=scratch / "b.log"))
        stack.enter_context(
            running(base_cmd, base_url, "/docs", env=base_env, log=scratch / "a.log")
        )
        for url in servers.values():  # warm-up: imports, first ONNX/sklearn calls
            wrk(url, script, 8, 2)
        results: dict[tuple[str, int], list[Run]] = {}
        for connections in CONCURRENCY:
            for round_index in range(args.rounds):
                order = list(servers) if round_index % 2 == 0 else list(reversed(servers))
                for name in order:
                    run = wrk(servers[name], script, connections, args.seconds)
                    results.setdefault((name, connections), []).append(run)
        peak = max(statistics.median(r.rps for r in results[("bento", c)]) for c in CONCURRENCY)
        single_ms = statistics.median(r.p50_ms for r in results[("bento", 1)])
        sustained = sustain(
            bento_url,
            scratch,
            body,
            peak * SUSTAINED_SHARE,
            single_ms,
            args.sustain,
            scratch / "logs",
        )
    print_table(results, args)
    print_sustained(sustained, peak)
    return 0


@dataclass(frozen=True)
class Sustained:
    """A paced load on the Bento and what the service recorded of it."""

    target_rps: float
    run: Run
    counted: int
    logged: int


def predictions_counted(url: str) -> int:
    """The service's ``credit_risk_predictions_total``, summed over its series."""
    from scripts.cd.checks import request

    _, text = request(f"{url}/metrics")
    return round(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("credit_risk_predictions_total{")
        )
    )


def sustain(
    url: str,
    scratch: Path,
    body: str,
    rate: float,
    service_ms: float,
    seconds: int,
    log_dir: Path,
) -> Sustained:
    """``seconds`` of one-record requests at ``rate`` req/s; count answers, series and logs."""
    from bentos.prediction_log import read_predictions

    cycle_ms = 1000 * SUSTAINED_CONNECTIONS / rate  # per connection, request and wait
    script = scratch / "paced.lua"
    # Each connection waits after each answer so that together they send about `rate` a
    # second: below saturation a request takes about its unloaded time (`service_ms`, the
    # p50 at one connection); four 2 s calibration runs correct the wait from the rate it gave.
    pause_ms = max(0.0, cycle_ms - service_ms)
    for _ in range(4):
        script.write_text(WRK_SCRIPT.format(body=body, pause_ms=int(pause_ms)), "utf-8")
        trial = wrk(f"{url}/predict", script, SUSTAINED_CONNECTIONS, 2)
        pause_ms = max(0.0, pause_ms + cycle_ms - 1000 * SUSTAINED_CONNECTIONS / trial.rps)
    script.write_text(WRK_SCRIPT.format(body=body, pause_ms=int(pause_ms)), "utf-8")
    before_counted, before_logged = predictions_counted(url), len(read_predictions(log_dir))
    run = wrk(f"{url}/predict", script, SUSTAINED_CONNECTIONS, seconds)
    time.sleep(1.0)  # the last answers' log lines
    return Sustained(
        target_rps=rate,
        run=run,
        counted=predictions_counted(url) - before_counted,
        logged=len(read_predictions(log_dir)) - before_logged,
    )


def print_sustained(sustained: Sustained, peak: float) -> None:
    """The sustained run's line: rate, latency, errors, lost logs."""
    run = sustained.run
    answered = run.requests - run.errors
    print()
    print(
        f"sustained: {run.rps:.0f} req/s ({run.rps / peak:.0%} of the peak {peak:.0f}) for "
        f"{run.seconds:.0f} s at {SUSTAINED_CONNECTIONS} connections: p50 {run.p50_ms:.2f} ms, "
        f"p99 {run.p99_ms:.2f} ms; {run.requests} answered, {run.errors} errors; the service "
        f"counted {sustained.counted} predictions and logged {sustained.logged} "
        f"(lost: {sustained.counted - sustained.logged}; answered but not logged: "
        f"{max(0, answered - sustained.logged)})"
    )


def print_table(results: dict[tuple[str, int], list[Run]], args: argparse.Namespace) -> None:
    """Markdown table of medians, then the ratios and the goals."""
    print(
        f"bento workers={args.bento_workers}, {args.rounds} rounds x {args.seconds} s per "
        "server and point, one-record POST /predict, wrk on loopback"
    )
    print()
    print("| server | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    medians: dict[tuple[str, int], dict[str, float]] = {}
    for (name, connections), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row = {
            "rps": statistics.median(r.rps for r in runs),
            "p50": statistics.median(r.p50_ms for r in runs),
            "p95": statistics.median(r.p95_ms for r in runs),
            "p99": statistics.median(r.p99_ms for r in runs),
        }
        medians[(name, connections)] = row
        total, errors = sum(r.requests for r in runs), sum(r.errors for r in runs)
        print(
            f"| {name} | {connections} | {total} | {row['rps']:.0f} | {row['p50']:.2f} "
            f"| {row['p95']:.2f} | {row['p99']:.2f} | {errors} |"
        )
    print()
    for connections in CONCURRENCY:
        bento, base = medians[("bento", connections)], medians[("baseline", connections)]
        print(
            f"concurrency {connections}: throughput x{bento['rps'] / base['rps']:.1f}, "
            f"p50 x{base['p50'] / bento['p50']:.1f} lower"
        )
    top, single = medians[("bento", 32)], medians[("bento", 1)]
    ratio = top["rps"] / medians[("baseline", 32)]["rps"]
    print(
        f"goals: throughput >= 10x at 32 -> x{ratio:.1f}; p99 <= 100 ms at 32 -> "
        f"{top['p99']:.1f} ms; p99 <= 10 ms at 1 -> {single['p99']:.2f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
