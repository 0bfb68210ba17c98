"""Laptop and test tooling that no workflow calls (``python -m scripts.dev.<name>``).

* :mod:`~scripts.dev.harness` — the act harness: the real workflow files with GitHub's rules,
  in a sandbox (:mod:`~scripts.dev.act` is its command);
* :mod:`~scripts.dev.workspace` — copies of the project, YAML edits, tool environments;
* :mod:`~scripts.dev.demo_ab` — the deployment half of ``make demo``;
* :mod:`~scripts.dev.traffic` — simulated, labelled production traffic;
* :mod:`~scripts.dev.ab_simulation` — how often the A/B rule is wrong (docs/ab-testing.md);
* ``bench_*`` and :mod:`~scripts.dev.baseline_server` — benchmarks (docs/benchmarks.md).
"""
