"""The commands the workflows call, over the delivery and pull-request logic they use.

Each top-level module is a thin command — argparse, one call, an exit code
(:class:`pipeline.exit_codes.ExitCode`) — that also runs on a laptop:

=====================  =================================================================
command                logic it calls
=====================  =================================================================
``scripts.deploy``     :mod:`scripts.cd.reconcile` (release, record, apply, reconcile)
                       and :mod:`scripts.cd.local_driver` (status, url, down)
``scripts.host``       :mod:`scripts.cd.systemd` (a deploy host's boot units)
``scripts.promote``    :mod:`scripts.cd.prometheus` (figures), :mod:`scripts.cd.promotion`
                       (THE A/B rule), :mod:`scripts.ci.github` (the proposal)
``scripts.k8s``        :mod:`scripts.cd.kubernetes`
``scripts.smoke``      :mod:`scripts.cd.checks`
``scripts.build_bento``, ``scripts.image``   :mod:`scripts.cd.bento_store`
``scripts.gates``      :mod:`scripts.ci.gates`
``scripts.report``     :mod:`scripts.ci.pr_report`
``scripts.comment``, ``scripts.gitops``      :mod:`scripts.ci.github`
``scripts.changes``    :mod:`scripts.ci.changes` (does a PR change the model?)
``scripts.storage``    :mod:`scripts.ci.storage` (is the DVC remote shared storage?)
=====================  =================================================================

Packages:

* ``scripts.cd`` — continuous delivery: desired state -> running system -> A/B decision;
* ``scripts.ci`` — what a pull request gets: dvc diffs, gates, report, the GitHub client;
* ``scripts.dev`` — laptop and test tooling no workflow calls: the act harness, the demo,
  simulated traffic, the A/B simulation, benchmarks (``python -m scripts.dev.<name>``).

The import rule (``tests/unit/test_import_rule.py`` enforces it): commands import ``cd``
and ``ci``, never each other; ``cd`` and ``ci`` never import a command or ``dev`` (``ci``
reads ``cd``'s state schema to find the serving champion); ``pipeline`` imports no other
product package; no product package imports ``tests``; what runs before any install
(``scripts/ci/github.py``, ``scripts/comment.py``, ``scripts/gitops.py``,
``scripts/changes.py``, ``scripts/ci/changes.py``) uses the standard library only.
"""
