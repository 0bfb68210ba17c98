"""Recording stand-ins for ``cml`` and ``gh``: GitHub's API is the one boundary act cannot reach.

Jobs run ``python -P -m scripts.dev.harness.github.cli gh|cml ARGS`` through the wrappers
in ``.github/act`` (``-P``: never the checkout's own copy of this code). Only the calls
``scripts/ci/github.py`` and the workflows make are implemented; anything else exits 2 with
a message, so a new call cannot pass unnoticed. The state lives in ``$GITOPS_ML_RECORD``
(:class:`~scripts.dev.harness.github.state.Record`).

Token rules (:mod:`~scripts.dev.harness.github.tokens`): every write needs a token whose
kind and scopes allow it (a workflow token has its job's ``permissions:``; HTTP 403 as on
GitHub otherwise); ``gh pr create`` with the workflow token also needs the repository
setting "Allow GitHub Actions to create and approve pull requests" (off by default); each
pull request records which token made it, and one made with the workflow token starts no
workflow; ``gh run download`` needs ``actions: read``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from scripts.dev.harness.github.state import Record
from scripts.dev.harness.github.tokens import REPOSITORY, allowed, caller_kind

WATERMARK_IMAGE = "https://cml.dev/watermark.png"


def fail(message: str) -> NoReturn:
    """Exit 2 with a message: the call is not what the stand-in supports."""
    print(f"stand-in: {message}", file=sys.stderr)
    sys.exit(2)


def require(record: Record, scope: str, level: str = "write") -> None:
    """Exit 1 with GitHub's 403 unless this call's token may ``level`` on ``scope``.

    A workflow token's scopes are its job's (``GITHUB_JOB`` names it in every step).
    """
    kind = caller_kind()
    if kind == "none":
        print(
            "gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN "
            "environment variable.",
            file=sys.stderr,
        )
        sys.exit(4)
    if not allowed(kind, scope, level, record.caller_scopes(kind)):
        print(
            f"gh: Resource not accessible by integration (HTTP 403): {kind} token, "
            f"{scope}: {level} needed",
            file=sys.stderr,
        )
        sys.exit(1)


def event_pr() -> int | None:
    """The PR number of the workflow run's event, if any."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path or not Path(path).is_file():
        return None
    event = json.loads(Path(path).read_text(encoding="utf-8"))
    number = event.get("pull_request", {}).get("number") or event.get("number")
    return number if isinstance(number, int) else None


def watermark(label: str, sha: str | None) -> str:
    """CML's watermark (iterative/cml ``src/watermark.js``): an image whose title is the label.

    With ``sha`` it is the one CML appends; without, a regex matching any commit (CML's
    ``isIn``), so a comment written by another tool with the same watermark is found too.
    """
    title = re.sub(r"([_*\[<])", r"\\\1", f"CML watermark {label}".strip())
    if sha is not None:
        return f'![]({WATERMARK_IMAGE}#{sha} "{title}")'
    return rf'!\[\]\({re.escape(WATERMARK_IMAGE)}#[0-9a-fA-F]+ "{re.escape(title)}"\)'


def cml(argv: list[str], record: Record) -> None:
    """``cml comment create|update``, with CML's watermark.

    CML appends its watermark; ``update`` edits the latest comment of the PR that carries
    it (whoever wrote it), as CML does.
    """
    require(record, "issues")
    if argv[:1] != ["comment"] or argv[1:2] not in (["create"], ["update"]):
        fail(f"cml {' '.join(argv[:2])} is not implemented by the stand-in")
    parser = argparse.ArgumentParser(prog="cml comment")
    parser.add_argument("file")
    parser.add_argument("--target", default="pr")
    parser.add_argument("--watermark-title", default="")
    parser.add_argument("--publish", default="true")
    args = parser.parse_args(argv[2:])
    kind, _, number = args.target.partition("/")
    if kind != "pr":
        fail(f"--target={args.target}: only pr targets are implemented")
    pr = int(number) if number else event_pr()
    if pr is None:
        fail("no pull request for --target=pr")
    sha = os.environ.get("GITHUB_SHA", "0" * 40)
    body = Path(args.file).read_text(encoding="utf-8")
    body = f"{body}\n\n{watermark(args.watermark_title, sha)}"
    comment = {"pr": pr, "tool": "cml", "publish": args.publish}
    pattern = re.compile(watermark(args.watermark_title, None))
    with record.update() as state:
        existing = [c for c in state["comments"] if c["pr"] == pr and pattern.search(c["body"])]
        if argv[1] == "update" and existing:
            existing[-1].update(comment, body=body, edits=existing[-1]["edits"] + 1)
            print(f"https://github.invalid/pull/{pr}#issuecomment-{existing[-1]['id']}")
            return
        state["comments"].append({**comment, "id": state["next_id"], "body": body, "edits": 0})
        state["next_id"] += 1
    print(f"https://github.invalid/pull/{pr}#issuecomment-{state['next_id'] - 1}")


def gh_api(argv: list[str], record: Record) -> None:
    """``gh api`` for the issue-comment routes, with ``--jq`` run by the real jq."""
    parser = argparse.ArgumentParser(prog="gh api")
    parser.add_argument("path")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--paginate", action="store_true")
    parser.add_argument("--jq", default=None)
    parser.add_argument("--input", default=None)
    args = parser.parse_args(argv)
    parts = args.path.split("/")
    payload = json.loads(sys.stdin.read() if args.input == "-" else "null")
    if args.method != "GET":  # reads are open to any token here (a public repository)
        require(record, "issues")
    result: Any
    with record.update() as state:
        if args.method == "GET" and parts[3:4] == ["issues"] and parts[5:] == ["comments"]:
            pr = int(parts[4])
            result = [
                {"id": c["id"], "body": c["body"]} for c in state["comments"] if c["pr"] == pr
            ]
        elif args.method == "POST" and parts[3:4] == ["issues"] and parts[5:] == ["comments"]:
            result = {"id": state["next_id"], "body": payload["body"]}
            state["comments"].append({"pr": int(parts[4]), "tool": "gh", "edits": 0, **result})
            state["next_id"] += 1
        elif args.method == "PATCH" and parts[3:5] == ["issues", "comments"]:
            matches = [c for c in state["comments"] if c["id"] == int(parts[5])]
            if not matches:
                fail(f"no comment {parts[5]}")
            matches[0].update(body=payload["body"], tool="gh", edits=matches[0]["edits"] + 1)
            result = {"id": matches[0]["id"], "body": payload["body"]}
        else:
            fail(f"gh api {args.method} {args.path} is not implemented by the stand-in")
    text = json.dumps(result)
    if args.jq:
        text = subprocess.run(
            ["jq", "-r", args.jq], input=text, capture_output=True, text=True, check=True
        ).stdout
    print(text)


def gh_pr(argv: list[str], record: Record) -> None:
    """``gh pr list|create|edit|merge --auto``."""
    parser = argparse.ArgumentParser(prog="gh pr")
    parser.add_argument("action", choices=("list", "create", "edit", "merge"))
    parser.add_argument("target", nargs="?", default="", help="edit, merge: a number or branch")
    parser.add_argument("--auto", action="store_true")
    for method in ("--squash", "--merge", "--rebase", "--delete-branch"):
        parser.add_argument(method, action="store_true")
    parser.add_argument("--repo", default="")
    parser.add_argument("--head", default="")
    parser.add_argument("--base", default="main")
    parser.add_argument("--state", default="open")
    parser.add_argument("--json", default="")
    parser.add_argument("--title", default="")
    parser.add_argument("--body-file", default="")
    parser.add_argument("--limit", "-L", type=int, default=30)
    args = parser.parse_intermixed_args(argv)
    if args.action == "list":
        pulls = [
            p
            for p in record.github()["pulls"]
            if p["state"] == args.state and (not args.head or p["head"] == args.head)
        ]
        fields = {
            "number": "number",
            "url": "url",
            "headRefName": "head",
            "title": "title",
            "body": "body",
            "isCrossRepository": "fork",
        }
        wanted = [name for name in args.json.split(",") if name] or ["number", "url"]
        unknown = [name for name in wanted if name not in fields]
        if unknown:
            fail(f"gh pr list --json {','.join(unknown)}: not implemented by the stand-in")
        # gh lists the newest first, at most --limit (30 by default).
        newest = sorted(pulls, key=lambda p: -int(p["number"]))[: args.limit]
        print(json.dumps([{name: p.get(fields[name], False) for name in wanted} for p in newest]))
        return
    if args.action == "merge":
        enable_auto_merge(args.target, args.auto, record)
        return
    require(record, "pull-requests")
    if args.action == "edit":
        edit_body(args.target, Path(args.body_file).read_text(encoding="utf-8"), record)
        return
    kind = caller_kind()
    if kind == "workflow" and not record.settings()["actions_can_create_pull_requests"]:
        # GitHub's answer (HTTP 403) when the repository setting is off, its default.
        print(
            "pull request create failed: GraphQL: GitHub Actions is not permitted to create "
            "or approve pull requests (createPullRequest)",
            file=sys.stderr,
        )
        sys.exit(1)
    body = Path(args.body_file).read_text(encoding="utf-8")
    with record.update() as state:
        number = 100 + len(state["pulls"])
        url = f"https://github.invalid/{args.repo}/pull/{number}"
        state["pulls"].append(
            {
                "number": number,
                "url": url,
                "head": args.head,
                "base": args.base,
                "state": "open",
                "title": args.title,
                "body": body,
                "token": kind,
                # Events made with the workflow's GITHUB_TOKEN start no workflow run.
                "triggers_workflows": kind != "workflow",
            }
        )
    print(url)


def open_pull(state: dict[str, Any], target: str) -> dict[str, Any]:
    """The newest open PR whose number or head branch is ``target``; gh's error if none."""
    named = [p for p in state["pulls"] if target in (str(p["number"]), p["head"])]
    pulls = [p for p in named if p["state"] == "open"]
    if not pulls:
        print(f"no open pull requests found for {target!r}", file=sys.stderr)
        sys.exit(1)
    pull: dict[str, Any] = pulls[-1]
    return pull


def edit_body(target: str, body: str, record: Record) -> None:
    """``gh pr edit TARGET --body-file F``: the open PR's description (no commit, no event)."""
    with record.update() as state:
        pull = open_pull(state, target)
        pull["body"] = body
        pull["body_edits"] = int(pull.get("body_edits", 0)) + 1
    print(pull["url"])


def enable_auto_merge(target: str, auto: bool, record: Record) -> None:
    """``gh pr merge --auto TARGET``: the PR merges once its requirements pass.

    GitHub refuses unless the repository allows auto-merge ("Allow auto-merge", off by
    default); the merge is then made by whoever enabled it (the harness merges when the
    required checks on the PR's head passed: ``Events.auto_merge``).
    """
    if not auto:
        fail("gh pr merge without --auto is not implemented by the stand-in")
    require(record, "pull-requests")
    require(record, "contents")
    if not record.settings()["allow_auto_merge"]:
        print(
            "GraphQL: Auto merge is not allowed for this repository (enablePullRequestAutoMerge)",
            file=sys.stderr,
        )
        sys.exit(1)
    with record.update() as state:
        pull = open_pull(state, target)
        pull["auto_merge"] = caller_kind()
    print(
        f"Pull request #{pull['number']} will be automatically merged when all "
        "requirements are met"
    )


def gh_run(argv: list[str], record: Record) -> None:
    """``gh run download RUN_ID -n NAME [-D DIR]``: one artifact of a run, into DIR.

    Artifacts are kept per run id (``$GITOPS_ML_ARTIFACTS`` is the calling run's folder,
    its parent holds every run's). gh lists the run's artifacts first, which needs
    ``actions: read``; then gh's own messages: no artifact at all, or none of that name.
    """
    parser = argparse.ArgumentParser(prog="gh run")
    parser.add_argument("action", choices=("download",))
    parser.add_argument("run_id")
    parser.add_argument("--name", "-n", action="append", default=[])
    parser.add_argument("--dir", "-D", default=".")
    parser.add_argument("--repo", "-R", default="")
    args = parser.parse_args(argv)
    if len(args.name) != 1:
        fail("gh run download without exactly one -n NAME is not implemented by the stand-in")
    kind = caller_kind()
    if kind == "none":
        require(record, "actions", "read")  # exits with gh's message: no token at all
    if not allowed(kind, "actions", "read", record.caller_scopes(kind)):
        # gh's words (pkg/cmd/run/download, shared.ListArtifacts) for GitHub's 403.
        print(
            "error fetching artifacts: HTTP 403: Resource not accessible by integration "
            f"(https://api.github.com/repos/{REPOSITORY}/actions/runs/{args.run_id}/"
            "artifacts?per_page=100)",
            file=sys.stderr,
        )
        print(f"stand-in: {kind} token, actions: read needed", file=sys.stderr)
        sys.exit(1)
    runs = Path(os.environ.get("GITOPS_ML_ARTIFACTS", "")).parent
    run = runs / args.run_id
    present = sorted(p.name for p in run.iterdir() if p.is_dir()) if run.is_dir() else []
    if not present:
        print("no valid artifacts found to download", file=sys.stderr)
        sys.exit(1)
    if args.name[0] not in present:
        print("no artifact matches any of the names or patterns provided", file=sys.stderr)
        sys.exit(1)
    shutil.copytree(run / args.name[0], Path(args.dir), dirs_exist_ok=True)


def main() -> None:
    """Record the call, then carry it out."""
    root = os.environ.get("GITOPS_ML_RECORD", "")
    if not root or not Path(root).is_dir():
        fail("GITOPS_ML_RECORD must name an existing directory")
    record = Record(Path(root))
    tool, argv = sys.argv[1], sys.argv[2:]
    record.log_call(tool, argv)
    if tool == "cml":
        cml(argv, record)
    elif argv[:1] == ["api"]:
        gh_api(argv[1:], record)
    elif argv[:2] == ["auth", "setup-git"]:
        pass  # no credentials to lend: the sandbox's origin is a local bare repository
    elif argv[:1] == ["pr"]:
        gh_pr(argv[1:], record)
    elif argv[:1] == ["run"]:
        gh_run(argv[1:], record)
    else:
        fail(f"gh {' '.join(argv[:2])} is not implemented by the stand-in")


if __name__ == "__main__":
    main()
