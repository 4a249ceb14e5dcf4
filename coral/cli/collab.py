"""Working together: `coral comment`, `coral review request|approve|reject|list|show`,
`coral audit`. Who you are is CORAL_USER, else the config's `[user] name`, else the OS user."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from coral.cli._common import (
    JsonOption,
    complete_ref,
    emit_json,
    first_line,
    human_bytes,
    open_repo,
    out,
)
from coral.cli.tables import Column, FitTable
from coral.errors import CoralError
from coral.porcelain.collab import (
    add_comment,
    approve,
    audit_log,
    delete_comment,
    list_comments,
    list_reviews,
    reject,
    request_review,
    reviews_of,
)

if TYPE_CHECKING:
    from coral.version_control.audit import AuditEntry
    from coral.version_control.comments import Comment
    from coral.version_control.reviews import Review

ORDER = 47  # position of this group in `coral --help`
PANEL = "Collaboration"
JSON = JsonOption
REF = Annotated[
    str, typer.Argument(help="The commit (branch, tag, hash, HEAD~1).", autocompletion=complete_ref)
]
SELF = Annotated[
    bool, typer.Option("--self", help="Review a commit whose review you requested yourself.")
]
SUMMARY_WIDTH = 24  # the audit table's detail column
_STATE_STYLE = {"open": "yellow", "approved": "green", "rejected": "red"}
review_app = typer.Typer(help="Ask for, give and read reviews of commits.")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]"


# -- comments ---------------------------------------------------------------------------------
def print_comments(console: Console, comments: list[Comment], indent: str = "") -> None:
    """Each comment as `#ID author, time`, its text indented under it."""
    for c in comments:
        console.print(f"{indent}[bold]#{c.id}[/bold] {escape(c.author)}, [dim]{_when(c.at)}[/dim]")
        for line in c.text.splitlines():
            console.print(f"{indent}    {escape(line)}" if line.strip() else "")


def comment(
    ref: Annotated[
        str,
        typer.Argument(
            help="The commit to comment on or list (default: HEAD).", autocompletion=complete_ref
        ),
    ] = "HEAD",
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="The comment; several -m make paragraphs."),
    ] = None,
    delete: Annotated[
        int | None,
        typer.Option("--delete", help="Delete your comment with this number.", show_default=False),
    ] = None,
    json_output: JSON = False,
) -> None:
    """Comment on a commit (-m), list its comments (no -m), or delete one of yours."""
    repo = open_repo()
    if delete is not None:
        if message:
            raise CoralError("--delete takes no -m", hint="delete and comment in two commands")
        gone = delete_comment(repo, delete)
        if json_output:
            emit_json({"deleted": gone.to_dict()})
        else:
            out().print(f"Deleted comment #{gone.id} on {gone.commit_hash[:10]}")
        return
    if message:
        made = add_comment(repo, ref, message)
        if json_output:
            emit_json(made.to_dict())
        else:
            out().print(f"Commented on {made.commit_hash[:10]} (#{made.id})")
        return
    found = list_comments(repo, ref)
    if json_output:
        emit_json(found.to_dict())
        return
    console = out()
    subject = escape(first_line(found.commit.message))
    n = len(found.comments)
    if not n:
        console.print(f"no comments on {found.commit.commit_hash[:10]} {subject}")
        return
    console.print(
        f"{n} comment{'s' if n != 1 else ''} on {found.commit.commit_hash[:10]} {subject}"
    )
    print_comments(console, found.comments)


# -- reviews ----------------------------------------------------------------------------------
def review_line(review: Review) -> str:
    """A review's state in one line: `approved by bo (#1, requested by ana)`."""
    text = _state(review.state)
    if review.state == "rejected":
        text += " by " + escape(", ".join(review.rejected_by))
    elif review.state == "approved":
        text += " by " + escape(", ".join(review.approved_by))
    elif review.waiting_on:
        text += ", waiting on " + escape(", ".join(review.waiting_on))
    asked = f", requested by {escape(review.requested_by)}" if review.requested_by else ""
    return f"{text} (#{review.id}{asked})"


def _print_verdict(console: Console, review: Review, action: str) -> None:
    console.print(
        f"{action} {review.commit_hash[:10]} ({escape(review.ref)}): review #{review.id} is "
        f"{_state(review.state)}"
    )


@review_app.command("request")
def review_request(
    ref: REF,
    reviewer: Annotated[
        list[str] | None,
        typer.Option("--reviewer", "-r", help="Ask this person (repeatable).", show_default=False),
    ] = None,
    message: Annotated[
        list[str] | None, typer.Option("--message", "-m", help="What to look at (repeatable).")
    ] = None,
    json_output: JSON = False,
) -> None:
    """Ask for a review of a commit."""
    review = request_review(
        open_repo(), ref, reviewers=reviewer or [], message="\n\n".join(message or [])
    )
    if json_output:
        emit_json(review.to_dict())
        return
    who = f" from {escape(', '.join(review.reviewers))}" if review.reviewers else ""
    out().print(
        f"Requested review #{review.id} of {review.commit_hash[:10]} ({escape(review.ref)}){who}"
    )


@review_app.command("approve")
def review_approve(
    ref: REF,
    message: Annotated[str, typer.Option("--message", "-m", help="A note with the approval.")] = "",
    allow_self: SELF = False,
    json_output: JSON = False,
) -> None:
    """Approve a commit (its open review; you cannot approve your own request without --self)."""
    review = approve(open_repo(), ref, message=message, allow_self=allow_self)
    if json_output:
        emit_json(review.to_dict())
        return
    _print_verdict(out(), review, "Approved")


@review_app.command("reject")
def review_reject(
    ref: REF,
    message: Annotated[
        str, typer.Option("--message", "-m", help="Why (required).", show_default=False)
    ] = "",
    allow_self: SELF = False,
    json_output: JSON = False,
) -> None:
    """Reject a commit, saying why (-m)."""
    review = reject(open_repo(), ref, message, allow_self=allow_self)
    if json_output:
        emit_json(review.to_dict())
        return
    _print_verdict(out(), review, "Rejected")


@review_app.command("list")
def review_list(
    state: Annotated[
        str | None,
        typer.Option("--state", help="Only reviews in this state: open, approved or rejected."),
    ] = None,
    json_output: JSON = False,
) -> None:
    """List reviews, newest first."""
    reviews = list_reviews(open_repo(), state)
    if json_output:
        emit_json([r.to_dict() for r in reviews])
        return
    console = out()
    if not reviews:
        console.print(f"no {state} reviews" if state else "no reviews")
        return
    table = FitTable(
        [
            Column("#", justify="right", keep=True),
            Column("commit", keep=True),
            Column("ref", key=True),
            Column("state", keep=True),
            Column("requested by", drop=40),
            Column("verdicts", drop=30),
            Column("updated", drop=20),
        ]
    )
    for r in reviews:
        verdicts = ", ".join(f"{v.reviewer} {v.verdict}" for v in r.latest().values())
        table.add_row(
            str(r.id),
            r.commit_hash[:10],
            escape(r.ref),
            _state(r.state),
            escape(r.requested_by or "-"),
            escape(verdicts or "-"),
            _when(r.updated_at),
        )
    table.render(console)


@review_app.command("show")
def review_show(
    ref: Annotated[
        str,
        typer.Argument(help="The commit (default: HEAD).", autocompletion=complete_ref),
    ] = "HEAD",
    json_output: JSON = False,
) -> None:
    """Show the reviews of a commit: requests and verdicts, with who and when."""
    found = reviews_of(open_repo(), ref)
    if json_output:
        emit_json(found.to_dict())
        return
    console = out()
    short = found.commit.commit_hash[:10]
    if not found.reviews:
        console.print(f"{short} has no reviews")
        return
    for i, r in enumerate(found.reviews):
        if i:
            console.print()
        console.print(
            f"[bold]review #{r.id}[/bold] of {short} ({escape(r.ref)}): {_state(r.state)}"
        )
        if r.requested_by:
            asked = f" from {escape(', '.join(r.reviewers))}" if r.reviewers else ""
            console.print(
                f"  requested by {escape(r.requested_by)}{asked}, {_when(r.requested_at)}"
            )
        for line in r.message.splitlines():
            console.print(f"      {escape(line)}" if line.strip() else "")
        for v in r.verdicts:
            own = " [dim](own request)[/dim]" if v.self_review else ""
            console.print(f"  {_state(v.verdict)} by {escape(v.reviewer)}, {_when(v.at)}{own}")
            for line in v.message.splitlines():
                console.print(f"      {escape(line)}" if line.strip() else "")
        if r.waiting_on:
            console.print(f"  waiting on {escape(', '.join(r.waiting_on))}")


# -- audit ------------------------------------------------------------------------------------
def _target(entry: AuditEntry) -> str:
    target = entry.target
    if target.startswith("refs/heads/"):
        return target[len("refs/heads/") :]
    if target.startswith("refs/tags/"):
        return target[len("refs/") :]
    is_hash = len(target) == 64 and all(c in "0123456789abcdef" for c in target)
    return target[:10] if is_hash else target


def _summary(entry: AuditEntry) -> str:
    """The detail of an entry in a few words (cut to SUMMARY_WIDTH, so the column fits)."""
    text = _describe(entry)
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1] + "…"


def _describe(entry: AuditEntry) -> str:
    d: dict[str, Any] = entry.detail
    if entry.action.startswith("ref."):
        old, new = (str(d.get(k) or "")[:10] for k in ("old", "new"))
        message = str(d.get("message") or "")
        if old == new and message.startswith("checkout: moving "):
            return message.removeprefix("checkout: moving ")
        return f"{old}→{new}" if old and new else f"was {old}" if old else f"→{new}"
    if d.get("error"):
        return first_line(str(d["error"]))
    if d.get("errors"):
        return first_line(str(d["errors"][0]))
    if entry.action in ("push", "pull", "fetch"):
        n = len(d.get("refs") or {})
        return f"{n} ref{'s' if n != 1 else ''}" + (f" → {d['branch']}" if d.get("branch") else "")
    if entry.action == "gc":
        removed = sum(int(n) for n in (d.get("removed") or {}).values())
        return f"{removed} objects, {human_bytes(int(d.get('freed_bytes') or 0))}"
    if entry.action.startswith("comment."):
        return f"#{d.get('id')}"
    if entry.action.startswith("review."):
        return f"#{d.get('id')} {d.get('ref', '')}".strip()
    if entry.action == "publish":
        return str(d.get("version") or d.get("url") or "")
    return ", ".join(f"{k}={v}" for k, v in d.items() if isinstance(v, str | int | float))


def audit(
    action: Annotated[
        str | None,
        typer.Option("--action", help="Only this action or its family: ref, push, review, ..."),
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only what this user did.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries since a date (2026-01-31) or for a while (2h)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", help="At most this many entries.")
    ] = None,
    json_output: JSON = False,
) -> None:
    """The audit log: ref changes, pushes, pulls, publishes, gc, reviews; newest first."""
    entries = audit_log(open_repo(), action=action, actor=actor, since=since, limit=limit)
    if json_output:
        emit_json([e.to_dict() for e in entries])
        return
    console = out()
    if not entries:
        console.print("no audit entries" + (" match" if action or actor or since else ""))
        return
    table = FitTable(
        [
            Column("when", keep=True),
            Column("actor", keep=True),
            Column("action", keep=True),
            Column("target", key=True),
            Column("detail", drop=10),
        ]
    )
    for e in entries:
        what = escape(e.action)
        if e.outcome != "ok":
            what = f"[red]{what} {escape(e.outcome)}[/red]"
        when = datetime.fromtimestamp(e.at).astimezone().strftime("%Y-%m-%d %H:%M")
        table.add_row(when, escape(e.actor), what, escape(_target(e)), escape(_summary(e)))
    table.render(console)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(comment)
    app.add_typer(review_app, name="review", rich_help_panel=PANEL)
    app.command(rich_help_panel=PANEL)(audit)
