"""Continuous delivery: desired state (git) -> running system -> A/B decision.

* :mod:`~scripts.cd.state` — schema of ``bentos/deployments/<env>.yaml`` and its pure
  transitions (released, promoted, rolled back);
* :mod:`~scripts.cd.promotion` — THE A/B rule: figures, decision, mSPRT (pure);
* :mod:`~scripts.cd.reconcile` — release = record + reconcile, with the state's driver;
* :mod:`~scripts.cd.local_driver` — start and check new variants, shift traffic, stop old;
* :mod:`~scripts.cd.nginx`, :mod:`~scripts.cd.prometheus` — router and metrics: pure
  renderers, lifecycle, and the A/B job's PromQL;
* :mod:`~scripts.cd.kubernetes` — manifests, offline validation, ``kubectl apply``;
* :mod:`~scripts.cd.bento_store`, :mod:`~scripts.cd.processes`, :mod:`~scripts.cd.checks`,
  :mod:`~scripts.cd.runtime` (settings, what runs), :mod:`~scripts.cd.errors`.
"""
