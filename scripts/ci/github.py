"""The one GitHub client: every call to git, the GitHub CLI or CML goes through here.

* :func:`sticky_comment_cml` / :func:`sticky_comment_gh`: the pull request's ONE sticky
  comment, found again by its watermark and updated in place on every push. With ``cml``:
  ``cml comment update --target=pr/<n> --watermark-title=<title> --publish=false`` (no image
  upload to CML's asset host). With ``gh``: the REST API, the watermark an HTML comment.
  CML has had no release since 2024-10, so every operation has a ``gh`` path.
* :func:`open_pr`: a pull request from a pushed branch unless one is open for it already
  (``gh`` only: CML's ``pr create`` commits and pushes by itself).
* :func:`propose`: commit changed files, then push them to main or to a branch with a PR.
* :func:`commit_lock`: commit a pull request run's ``lock`` artifact to its branch
  (lock.yml, main's code: only the locked paths, only on the head the run trained).

Both backends write CML's watermark (``![](https://cml.dev/watermark.png#<sha> "CML
watermark <title>")``, iterative/cml ``src/watermark.js``) and find a comment by it, so a
switch from one to the other updates the same comment instead of adding a second.

Standard library only: the comment job runs it before any project install. Tokens come
from the environment (``REPO_TOKEN`` for cml, ``GH_TOKEN`` for gh) and are never printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DEFAULT_WATERMARK = "gitops-ml model report"


@dataclass(frozen=True)
class GitHubContext:
    """What a workflow run tells this client through its environment, read once.

    Attributes:
        repository: ``GITHUB_REPOSITORY`` (``owner/name``).
        event_path: ``GITHUB_EVENT_PATH``: the event payload (the PR number comes from it).
        step_summary: ``GITHUB_STEP_SUMMARY``: the job summary file, when in a workflow.
        run_url: from ``GITHUB_SERVER_URL``, ``GITHUB_REPOSITORY`` and ``GITHUB_RUN_ID``.
        commenter: ``GITOPS_ML_COMMENTER``: ``auto`` (default), ``cml`` or ``gh``.
        state_push: ``GITOPS_ML_STATE_PUSH``: ``direct`` pushes state changes to main
            instead of opening a pull request (``pr``, the default).
        token_kind: ``GITOPS_ML_RETRAIN_TOKEN_KIND``: ``app`` or ``pat`` when the bot's token
            is one whose pushes and PRs trigger workflows; empty for ``GITHUB_TOKEN``.
        output: ``GITHUB_OUTPUT``: the step's outputs file, when in a workflow.
    """

    repository: str = ""
    event_path: str = ""
    step_summary: str = ""
    run_url: str | None = None
    commenter: str = "auto"
    state_push: str = "pr"
    token_kind: str = ""
    output: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitHubContext:
        """The context from ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        server, repo, run = (
            env.get(name, "")
            for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
        )
        return cls(
            repository=repo,
            event_path=env.get("GITHUB_EVENT_PATH", ""),
            step_summary=env.get("GITHUB_STEP_SUMMARY", ""),
            run_url=f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None,
            commenter=env.get("GITOPS_ML_COMMENTER") or "auto",
            state_push=env.get("GITOPS_ML_STATE_PUSH") or "pr",
            token_kind=env.get("GITOPS_ML_RETRAIN_TOKEN_KIND", ""),
            output=env.get("GITHUB_OUTPUT", ""),
        )

    @property
    def direct_push(self) -> bool:
        """Whether state changes are pushed to main rather than proposed as a PR."""
        return self.state_push == "direct"

    @property
    def triggers_workflows(self) -> bool:
        """Whether the bot's pushes and PRs start workflows (not so with ``GITHUB_TOKEN``)."""
        return self.token_kind in {"app", "pat"}


class GitHubError(RuntimeError):
    """A git, gh or cml call failed; the message names the command and says why."""


class LockRefused(GitHubError):
    """A run's lock artifact holds what a lock commit may not (a file outside the locked paths)."""


class BranchMoved(GitHubError):
    """The branch is no longer at the commit the run trained: a newer push locks itself."""


def choose_backend(requested: str) -> str:
    """``cml`` or ``gh``: the requested one if on PATH, or the first found for ``auto``."""
    candidates = ("cml", "gh") if requested == "auto" else (requested,)
    for name in candidates:
        if shutil.which(name):
            return name
    raise GitHubError(
        f"{' nor '.join(candidates)} not found on PATH (backend {requested!r}): install CML "
        "with iterative/setup-cml, or use gh (preinstalled on GitHub-hosted runners)"
    )


def pr_number(explicit: int | None, context: GitHubContext) -> int:
    """The pull request number: ``--pr``, else the event payload of the workflow run."""
    if explicit is not None:
        return explicit
    event_path = Path(context.event_path) if context.event_path else None
    if event_path is not None and event_path.is_file():
        event = json.loads(event_path.read_text(encoding="utf-8"))
        number = event.get("pull_request", {}).get("number") or event.get("number")
        if isinstance(number, int):
            return number
    raise GitHubError("no pull request number: pass --pr, or run on a pull_request event")


def repository(context: GitHubContext) -> str:
    """``owner/name`` from ``GITHUB_REPOSITORY``.

    Raises:
        GitHubError: When it is not ``owner/name``.
    """
    if "/" not in context.repository:
        raise GitHubError(f"GITHUB_REPOSITORY must be owner/name, got {context.repository!r}")
    return context.repository


def _run(command: Sequence[str], stdin: str | None = None) -> str:
    result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GitHubError(f"{command[0]} {command[1]} failed: {result.stderr.strip()}")
    return result.stdout


def _gh_api(method: str, path: str, payload: Mapping[str, object] | None = None) -> str:
    command = ["gh", "api", "--method", method, path]
    if payload is None:
        return _run(command)
    return _run([*command, "--input", "-"], stdin=json.dumps(payload))


WATERMARK_IMAGE = "https://cml.dev/watermark.png"


def watermark_title(title: str) -> str:
    """CML's watermark title, with the characters GitHub escapes in markdown escaped."""
    return re.sub(r"([_*\[<])", r"\\\1", f"CML watermark {title}".strip())


def cml_watermark(title: str, sha: str) -> str:
    """The watermark ``cml comment`` appends to a report (iterative/cml src/watermark.js)."""
    return f'![]({WATERMARK_IMAGE}#{sha} "{watermark_title(title)}")'


def has_watermark(body: str, title: str) -> bool:
    """Whether ``body`` carries the watermark of ``title``, whatever its commit (as CML checks)."""
    image, label = re.escape(WATERMARK_IMAGE), re.escape(watermark_title(title))
    pattern = rf'!\[\]\({image}#[0-9a-fA-F]+ "{label}"\)'
    return re.search(pattern, body) is not None


def sticky_comment_gh(repo: str, number: int, body: str, watermark: str) -> str:
    """Create or update the comment carrying ``watermark`` through the REST API."""
    # Every page (CML itself reads only the first 30 comments), one comment per line.
    listed = _run(
        [
            "gh",
            "api",
            "--paginate",
            f"repos/{repo}/issues/{number}/comments",
            "--jq",
            ".[] | {id, body} | @json",
        ]
    )
    comments = [json.loads(line) for line in listed.splitlines() if line.strip()]
    ids = [c["id"] for c in comments if has_watermark(str(c.get("body") or ""), watermark)]
    sha = os.environ.get("GITHUB_SHA", "0" * 40)
    text = f"{body}\n\n{cml_watermark(watermark, sha)}"
    if ids:
        _gh_api("PATCH", f"repos/{repo}/issues/comments/{ids[-1]}", {"body": text})
        return f"updated comment {ids[-1]} on #{number}"
    _gh_api("POST", f"repos/{repo}/issues/{number}/comments", {"body": text})
    return f"created a comment on #{number}"


def sticky_comment_cml(number: int, path: Path, watermark: str) -> str:
    """``cml comment update`` on the pull request, images left where they are."""
    output = _run(
        [
            "cml",
            "comment",
            "update",
            f"--target=pr/{number}",
            f"--watermark-title={watermark}",
            "--publish=false",
            str(path),
        ]
    )
    return f"cml: {output.strip() or 'comment updated'} on #{number}"


# gh lists 30 pull requests unless told otherwise: a repository with more open PRs would
# hide the one a check looks for.
LIST_LIMIT = "1000"


def open_pulls(repo: str, fields: str, head: str = "") -> list[dict[str, object]]:
    """Open pull requests (from branch ``head`` if given), with the ``--json`` ``fields``."""
    command = ["gh", "pr", "list", "--repo", repo, "--state", "open", "--limit", LIST_LIMIT]
    command += ["--head", head] if head else []
    pulls: list[dict[str, object]] = json.loads(_run([*command, "--json", fields]) or "[]")
    return pulls


def open_pr_url(repo: str, head: str) -> str | None:
    """The URL of the open PR from branch ``head``, if there is one."""
    pulls = open_pulls(repo, "url", head)
    return str(pulls[0]["url"]) if pulls else None


def own_pulls(repo: str, prefix: str, fields: str) -> list[dict[str, object]]:
    """Open PRs of this repository (not a fork's) whose branch starts with ``prefix``.

    A fork's PR may name its branch ``gitops/…`` too: it is no state change of ours.
    """
    pulls = open_pulls(repo, f"{fields},headRefName,isCrossRepository")
    return [
        pull
        for pull in pulls
        if str(pull.get("headRefName", "")).startswith(prefix) and not pull.get("isCrossRepository")
    ]


def open_pr_from_prefix(repo: str, prefix: str) -> str | None:
    """The URL of an open PR of this repository whose branch starts with ``prefix``."""
    pulls = own_pulls(repo, prefix, "url")
    return str(pulls[0]["url"]) if pulls else None


def save_release_states(repo: str, env: str, out: Path, prefix: str = "gitops/release-") -> int:
    """Write ``env``'s state file of each open release PR to ``out/<number>/<env>.yaml``.

    Only this repository's own branches (:func:`own_pulls`); the file is read from
    origin's branch as pushed. ``out/complete`` marks a full listing. Returns
    how many were written.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for pull in own_pulls(repo, prefix, "number"):
        scoped_git("fetch", "-q", "origin", f"refs/heads/{pull['headRefName']}")
        try:
            text = git("show", f"FETCH_HEAD:bentos/deployments/{env}.yaml")
        except GitHubError:
            continue  # a release PR that does not touch this environment
        target = out / str(pull["number"]) / f"{env}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n", encoding="utf-8")
        written += 1
    (out / "complete").write_text(f"{written}\n", encoding="utf-8")
    return written


def open_pr(repo: str, head: str, base: str, title: str, body_path: Path) -> str:
    """Open a PR from ``head``, or bring the open one's body up to date (idempotent)."""
    pulls = open_pulls(repo, "url,body", head)
    if pulls:
        url, body = str(pulls[0]["url"]), str(pulls[0].get("body", ""))
        if body.strip() == body_path.read_text(encoding="utf-8").strip():
            return f"a pull request is already open for {head}: {url}"
        _run(["gh", "pr", "edit", head, "--repo", repo, "--body-file", str(body_path)])
        return f"a pull request is already open for {head}: {url} (body updated)"
    url = _run(
        [
            "gh",
            "pr",
            "create",
            "--repo",
            repo,
            "--head",
            head,
            "--base",
            base,
            "--title",
            title,
            "--body-file",
            str(body_path),
        ]
    )
    return f"opened {url.strip()}"


def enable_auto_merge(repo: str, head: str) -> str:
    """Ask GitHub to merge the PR from ``head`` once its required checks pass.

    A repository that does not allow auto-merge (Settings > General, "Allow auto-merge")
    leaves the PR for a person to merge: said, not an error.
    """
    command = ["gh", "pr", "merge", head, "--repo", repo, "--auto", "--squash"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return "auto-merge on: it merges once its required checks pass"
    reason = (result.stderr or result.stdout).strip().splitlines()
    return f"auto-merge not enabled ({reason[-1] if reason else 'no reason given'}): merge it"


# What GitHub answers a push that branch protection (GH006) or a ruleset (GH013) refuses.
PROTECTION_REFUSALS = ("GH006", "GH013")


BOT = ("gitops-ml-bot", "gitops-ml-bot@users.noreply.github.com")


def git(*args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git (with ``env`` added to this process's environment); its stdout.

    Raises:
        GitHubError: With git's message on failure.
    """
    environ = {**os.environ, **env} if env else None
    result = subprocess.run(
        ["git", *args], capture_output=True, text=True, check=False, env=environ
    )
    if result.returncode != 0:
        raise GitHubError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def propose(
    paths: Sequence[Path],
    title: str,
    body: Path,
    branch: str,
    context: GitHubContext,
    base: str = "main",
    auto_merge: bool = False,
) -> str:
    """Commit ``paths``; push them to ``branch`` with a PR, or to ``base`` (direct push).

    A PR already open from ``branch`` with the same content of ``paths`` gets no new commit
    (its checks and reviews stand); only its body follows. ``auto_merge``: the PR merges
    once its required checks pass, where the repository allows it. A direct push that
    branch protection refuses becomes such a PR rather than a lost change.

    On GitHub, checkouts keep no credentials (``persist-credentials: false``): with
    ``GH_TOKEN`` set, :func:`scoped_git` lends git the token for one command.
    """
    names = list(map(str, paths))
    if not git("status", "--porcelain", "--", *names):
        return f"no change to commit in {', '.join(names)}"
    git("add", "--", *names)
    git("-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}", "commit", "-q", "-m", title)
    notes = []
    if context.direct_push:
        try:
            scoped_git("push", "-q", "origin", f"HEAD:refs/heads/{base}")
            return f"pushed to {base}: {title}"
        except GitHubError as error:
            if not any(code in str(error) for code in PROTECTION_REFUSALS):
                raise
        notes.append(f"{base} is protected: proposed as a pull request instead")
        auto_merge = True
    repo = repository(context)
    if branch_holds(branch, names):
        outcome = open_pr(repo, branch, base, title, body)
        notes.insert(0, f"{branch} already holds this change: no new commit")
    else:
        scoped_git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}")
        outcome = open_pr(repo, branch, base, title, body)
    if auto_merge:
        notes.append(enable_auto_merge(repo, branch))
    return "; ".join([outcome, *notes])


def branch_holds(branch: str, paths: Sequence[str]) -> bool:
    """Whether origin's ``branch`` exists with the same ``paths`` as this commit."""
    try:
        scoped_git("fetch", "-q", "origin", f"refs/heads/{branch}")
    except GitHubError:
        return False  # no such branch yet
    changed = subprocess.run(
        ["git", "diff", "--quiet", "FETCH_HEAD", "HEAD", "--", *paths], check=False
    )
    return changed.returncode == 0


LOCK_TRAILER = "Gitops-ML-Lock: true"


def scoped_git(*args: str) -> str:
    """``git ARGS`` (a push, a fetch) lending ``GH_TOKEN`` to this one command, if set.

    The token reaches git through a credential helper given with ``-c`` that reads it
    from the environment: nothing is written to the runner's git configuration (unlike
    ``gh auth setup-git``) and the token never appears in a command line or a log.
    """
    options: list[str] = []
    if os.environ.get("GH_TOKEN"):
        helper = '!f() { echo username=x-access-token; echo "password=$GH_TOKEN"; }; f'
        options = ["-c", "credential.helper=", "-c", f"credential.helper={helper}"]
    return git(*options, *args)


def lock_changes(paths: Sequence[str]) -> list[str]:
    """``git status`` of ``paths``: one line per file `dvc repro` rewrote (empty: none)."""
    return git("status", "--porcelain", "--", *paths).splitlines()


def lock_refusals(files: Sequence[str], locked: Sequence[str]) -> list[str]:
    """Why each of ``files`` (paths in the repository) may not go into a lock commit.

    A file must be one of the ``locked`` paths or lie under one of them (a folder such as
    ``reports/plots``): whatever a pull request's run uploaded, nothing else (the
    Makefile, a workflow) reaches its branch through the App's token.
    """
    named = ", ".join(locked)
    refusals = []
    for name in files:
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or ".git" in parts:
            refusals.append(f"{name}: not a path inside the repository's tree")
        elif not any(name == path or name.startswith(f"{path.rstrip('/')}/") for path in locked):
            refusals.append(f"{name}: not one of the locked paths ({named})")
    return refusals


def lock_files(artifact: Path, locked: Sequence[str]) -> dict[str, Path]:
    """The artifact's files by their path in the repository, all of them allowed.

    Raises:
        LockRefused: Naming every file outside the locked paths, every link or other
            entry that is not a plain file, or an artifact with no file at all.
    """
    if not artifact.is_dir():
        raise LockRefused(f"{artifact}: no such folder (the downloaded lock artifact)")
    entries = sorted(p for p in artifact.rglob("*") if p.is_symlink() or not p.is_dir())
    files = {p.relative_to(artifact).as_posix(): p for p in entries}
    refusals = lock_refusals(list(files), locked)
    refusals += [f"{name}: a link, not a file" for name, p in files.items() if p.is_symlink()]
    refusals += [
        f"{name}: not a plain file"
        for name, p in files.items()
        if not p.is_symlink() and not p.is_file()
    ]
    if not files:
        refusals.append(f"{artifact}: the artifact holds no file")
    if refusals:
        raise LockRefused("; ".join(refusals))
    return files


def _lock_tree(head: str, files: Mapping[str, Path], folders: Sequence[str]) -> str:
    """The tree of ``head`` with ``files`` written in; a locked folder is replaced whole.

    Built in an index of its own: nothing of the branch is checked out, no code of it runs.
    A file's mode stays what ``head`` has (artifacts keep none), else a plain file.
    """
    listed = git("ls-tree", "-r", head, "--", *files, *folders).splitlines()
    modes = {line.split("\t", 1)[1]: line.split()[0] for line in listed}
    stale = [
        name
        for name in modes
        if name not in files and any(name.startswith(f"{folder}/") for folder in folders)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git("read-tree", head, env=index)
        if stale:
            git("update-index", "--force-remove", "--", *stale, env=index)
        for name, path in files.items():
            blob = git("hash-object", "-w", f"--path={name}", str(path))
            mode = modes.get(name, "100644")
            git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{name}", env=index)
        return git("write-tree", env=index)


def commit_lock(
    artifact: Path,
    locked: Sequence[str],
    branch: str,
    sha: str,
    what: str,
    base: str = "main",
) -> tuple[str, str | None]:
    """Commit a pull request run's lock artifact on ``branch`` at ``sha`` and push it.

    lock.yml runs this from main's checkout with the App's token. The artifact is data
    from the pull request's run, never code that runs here: every file must be one of the
    ``locked`` paths (:func:`lock_files`), and the commit is built from the branch head's
    tree in an index of its own (:func:`_lock_tree`). The push is not forced: a branch
    that moved meanwhile refuses it.

    Returns:
        A sentence for the job summary, and the new commit's short sha (None: nothing
        committed).

    Raises:
        LockRefused: A file outside the locked paths, the default branch, or not a
            commit sha: nothing is pushed.
        BranchMoved: ``branch`` is no longer at ``sha`` (a newer push, whose run locks it).
        GitHubError: When ``sha`` was CI's own lock commit and the files changed again: the
            pipeline is not reproducible, and another commit would start another run, and
            so on; or when git fails.
    """
    files = lock_files(artifact, locked)
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise LockRefused(f"--sha: expected the 40-hex commit the run trained, got {sha!r}")
    named = subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], check=False)
    if branch == base or named.returncode != 0:
        raise LockRefused(f"--branch: expected a pull request's own branch, got {branch!r}")
    scoped_git("fetch", "-q", "--depth=1", "origin", f"refs/heads/{branch}")
    head = git("rev-parse", "FETCH_HEAD")
    if head != sha:
        raise BranchMoved(
            f"`{branch}` is at {head[:7]}, not at {sha[:7]} that the run trained: a newer "
            "push, whose own run locks it; nothing committed"
        )
    folders = [path.rstrip("/") for path in locked if (artifact / path).is_dir()]
    tree = _lock_tree(head, files, folders)
    if tree == git("rev-parse", f"{head}^{{tree}}"):
        return f"{what} match `{branch}` at {head[:7]}: nothing to commit.", None
    if LOCK_TRAILER in git("log", "-1", "--format=%B", head):
        raise GitHubError(
            f"{what} changed again right after CI committed them: the pipeline does not "
            "reproduce byte for byte (see `dvc status`); not committing again"
        )
    message = f"{what} from CI\n\n{LOCK_TRAILER}"
    identity = ["-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}"]
    commit = git(*identity, "commit-tree", tree, "-p", head, "-m", message)
    scoped_git("push", "-q", "origin", f"{commit}:refs/heads/{branch}")
    short = commit[:7]
    sentence = f"CI committed {what} to `{branch}` as {short}; the run for it reproduces nothing."
    return sentence, short
