"""The act harness: the real workflow files under nektos/act, with GitHub's rules around them.

The map (docs/harness.md has each rule with its source):

* :mod:`.workflows`, :mod:`.machines`, :mod:`.concurrency` — reading workflow files and
  GitHub's pure rules over them (which events start what, which machine a job gets, who
  waits or is cancelled in a concurrency group); tested in ``make test-fast``;
* :mod:`.runner` — what the runner does at a job's end (orphan cleanup, cache save), act's
  streaming run, a machine's reboot;
* :mod:`.repository`, :mod:`.runs`, :mod:`.events`, :mod:`.sandbox` — the sandbox: its git
  copies, one workflow run with act, the events that start runs, and the whole with the
  "adopted repository" profile (:func:`.sandbox.adopt`);
* :mod:`.github` — the only reader and writer of the recorded GitHub state
  (:mod:`.github.state`), one token rule (:mod:`.github.tokens`), environments, and the
  stand-ins jobs and services call (``gh``/``cml``, the origin's hooks, the HTTP API);
* :mod:`.actions` — the stand-ins of marketplace actions that jobs execute.

``python -m scripts.dev.act EVENT`` (``make act-pr``...) is the command over it. The package
imports nothing: the stand-ins that jobs run import only the modules they need.
"""
