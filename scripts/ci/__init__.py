"""What a pull request gets: dvc diffs, the validation gates, the report, the GitHub client.

* :mod:`~scripts.ci.gates` — the gates and their report (``reports/gates.json``);
* :mod:`~scripts.ci.comparison` — candidate vs reference on the same rows (paired bootstrap);
* :mod:`~scripts.ci.reference` — which model is the reference (production's champion);
* :mod:`~scripts.ci.pr_report` — the Markdown of the sticky PR comment;
* :mod:`~scripts.ci.dvc_diff` — ``dvc metrics/params diff`` against a git reference;
* :mod:`~scripts.ci.github` — the ONE client for git, gh and CML (standard library only:
  the comment job runs it before any install; one error type, :class:`GitHubError`).
"""
