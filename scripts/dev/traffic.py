"""Simulated production traffic: ``python -m scripts.dev.traffic --url ROUTER --rows N``.

Sends rows of the demo generator (whose true labels are known) to an environment's router
as ``/predict`` requests, each from one of ``--users`` simulated users (the sticky
``X-User-Id`` header), then posts ``/feedback`` with the true label for a
``--feedback-fraction`` of them. Loopback only and bounded (``--rows`` at most 200,000),
so it can never load a real service by mistake. Prints, per variant that answered:
requests, errors, feedback sent and correct predictions.

Its requests are marked ``X-Gitops-Synthetic: traffic``: Prometheus counts them (the A/B
decision reads those counters), but the drift job leaves their fabricated rows and labels
out of its window and of the retraining data. ``--as-customers`` sends them unmarked, as a
customer's: for a drift demonstration, whose drift job must see them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bentos.prediction_log import SYNTHETIC_HEADER
from pipeline.generate import DRIFTS, Window, generate

MAX_ROWS = 200_000
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TRAFFIC_SOURCE = "traffic"


@dataclass
class Tally:
    """What the simulator saw, per variant."""

    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    feedback: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{variant: {requests, errors, feedback, correct}}``."""
        variants = sorted(set(self.requests) | set(self.errors))
        return {
            name: {
                "requests": self.requests[name],
                "errors": self.errors[name],
                "feedback": self.feedback[name],
                "correct": self.correct[name],
            }
            for name in variants
        }


def post(url: str, payload: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    """POST JSON; (status, parsed body or {}, X-Model-Variant)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read() or b"{}")
            return response.status, body, response.headers.get("X-Model-Variant", "")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {}, error.headers.get("X-Model-Variant", "")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}, ""


def record_of(row: Mapping[Hashable, Any], target: str, event_time: str) -> dict[str, Any]:
    """A request record from a generated row (no label, no event time, NaN as null)."""
    return {
        str(key): None if isinstance(value, float) and math.isnan(value) else value
        for key, value in row.items()
        if key not in (target, event_time)
    }


def simulate(
    url: str,
    rows: int,
    users: int,
    feedback_fraction: float,
    seed: int,
    drift: str = "none",
    concurrency: int = 8,
    synthetic: str | None = TRAFFIC_SOURCE,
) -> Tally:
    """Send the traffic; see the module docstring.

    ``synthetic`` is the source its requests name in ``X-Gitops-Synthetic``; None sends them
    unmarked, as a customer's, so that they reach drift windows and retraining data.
    """
    host = urllib.parse.urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(
            f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))}), got {host!r}"
        )
    if not 1 <= rows <= MAX_ROWS:
        raise ValueError(f"--rows must be between 1 and {MAX_ROWS}, got {rows}")
    frame = generate(rows, seed, Window(drift=drift, missing_rate=0.0))  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    user_ids = rng.integers(0, users, size=rows)
    give_feedback = rng.random(rows) < feedback_fraction
    labels = frame["default"].to_numpy()
    records = frame.to_dict("records")
    tally = Tally()
    marker = {SYNTHETIC_HEADER: synthetic} if synthetic else {}

    def one(index: int) -> None:
        headers = {"X-User-Id": f"user-{user_ids[index]}", **marker}
        record = record_of(records[index], "default", "event_time")
        status, body, variant = post(f"{url}/predict", {"records": [record]}, headers)
        name = variant or "unknown"
        if status != 200:
            tally.errors[name] += 1
            return
        tally.requests[name] += 1
        if not give_feedback[index]:
            return
        prediction = body["predictions"][0]
        label = int(labels[index])
        status, _, _ = post(
            f"{url}/feedback", {"request_id": prediction["request_id"], "label": label}, headers
        )
        if status == 200:
            tally.feedback[name] += 1
            tally.correct[name] += int(prediction["predicted_class"] == label)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(rows)))
    return tally


def main(argv: Sequence[str] | None = None) -> int:
    """Send the traffic and print the tally as JSON; exit 1 on bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.traffic", description=__doc__)
    parser.add_argument("--url", required=True, help="the environment's router (loopback)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--feedback-fraction", type=float, default=0.5)
    parser.add_argument("--drift", choices=DRIFTS, default="none")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--as-customers",
        action="store_true",
        help="send the requests unmarked (no X-Gitops-Synthetic): drift jobs and retraining "
        "data then take them for customers'",
    )
    args = parser.parse_args(argv)
    try:
        tally = simulate(
            args.url.rstrip("/"),
            args.rows,
            args.users,
            args.feedback_fraction,
            args.seed,
            args.drift,
            args.concurrency,
            synthetic=None if args.as_customers else TRAFFIC_SOURCE,
        )
    except ValueError as error:
        print(f"traffic: {error}", file=sys.stderr)
        return 1
    print(json.dumps(tally.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
