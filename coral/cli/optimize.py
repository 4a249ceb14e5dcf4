"""Storage advice: `coral optimize --analyze` and `coral optimize --apply PROFILE`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from coral.cli._common import emit_json, human_bytes, open_repo, out, phase_progress
from coral.cli.tables import Column, FitTable
from coral.errors import CoralError

ORDER = 51  # after gc, fsck and stats in `coral --help`
PANEL = "Maintenance"


def parse_sample(text: str | None) -> int | float | None:
    """'20' -> 20 tensor names; '0.25' or '25%' -> a quarter of them; None -> the default
    (the range is checked by the analysis)."""
    if text is None:
        return None
    s = text.strip()
    try:
        return int(s) if s.isdigit() else float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise CoralError(
            f"bad --sample {text!r}",
            hint="give a count of tensor names (--sample 20) or a fraction (--sample 0.25, 25%)",
        ) from None


def optimize(
    analyze: Annotated[
        bool,
        typer.Option(
            "--analyze", help="Estimate the store's size under other settings (trial encodes)."
        ),
    ] = False,
    apply: Annotated[
        str | None,
        typer.Option(
            "--apply",
            metavar="PROFILE",
            help="Repack every tensor with a settings profile's settings and keep them.",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[
        str | None,
        typer.Option(
            "--sample",
            metavar="N|FRACTION",
            help="Tensor names to trial-encode: a count or a fraction (default: up to 32 MiB).",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", min=1, help="Tensors listed as deduplicating well.")
    ] = 10,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="With --apply: change nothing, estimate.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --apply: do not ask for confirmation.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Advice on storage settings, measured on this repository: what other chunk sizes, chain
    depths, modes and similarity thresholds would store, and repacking under a profile."""
    if analyze == (apply is not None):
        raise CoralError(
            "say what to do: --analyze or --apply PROFILE" + (", not both" if analyze else ""),
            hint="`coral optimize --analyze` first; it prints the --apply line to run",
        )
    if analyze and (dry_run or yes):
        raise CoralError(
            "--dry-run and --yes go with --apply", hint="--analyze changes nothing anyway"
        )
    share = parse_sample(sample)
    repo = open_repo()
    from coral.porcelain.optimize import analyze_storage
    from coral.porcelain.optimize_apply import apply_profile

    if apply is None:
        with phase_progress() as progress:
            analysis = analyze_storage(repo, sample=share, top=top, progress=progress)
        if json_output:
            emit_json(analysis.to_dict())
        else:
            _print_analysis(analysis)
        return
    if not dry_run and not yes:
        from coral.porcelain.optimize import profile_target

        profile_target(repo, apply)  # an unknown profile is named before any question
        _confirm(apply, len(repo.store.list()))
    with phase_progress() as progress:
        result = apply_profile(repo, apply, dry_run=dry_run, sample=share, progress=progress)
    if json_output:
        emit_json(result.to_dict())
    else:
        _print_apply(result)


def _confirm(profile: str, tensors: int) -> None:
    question = f"Re-encode all {tensors} tensors under profile {profile!r}?"
    hint = f"see what would change with `coral optimize --apply {profile} --dry-run`"
    if not sys.stdin.isatty():
        raise CoralError(
            "--apply rewrites every pack of the repository: confirm with --yes",
            hint=hint + ", then add --yes",
        )
    if not typer.confirm(question, err=True):
        raise CoralError("nothing changed", hint=hint)


def _change(estimated: int, now: int) -> str:
    """'=' or the signed difference: '-27.0 KiB (-0.7%)', '+222 B'."""
    diff = estimated - now
    if not diff:
        return "="
    text = ("+" if diff > 0 else "-") + human_bytes(abs(diff))
    return f"{text} ({diff / now:+.1%})" if now and abs(diff) >= 0.001 * now else text


def _print_analysis(a: Any) -> None:
    from coral.porcelain.optimize import shown_value

    console = out()
    if not a.lineages:
        console.print("Nothing is committed yet: nothing to measure.")
        return
    console.print(
        f"Trial-encoded {a.sampled_tensors} tensors ({a.sampled_lineages} of {a.lineages} "
        f"names, {human_bytes(a.sample_bytes)}) under {a.trials} settings, seed {a.seed}."
    )
    console.print(f"Stored now: {human_bytes(a.stored_bytes)} of tensors.")
    table = FitTable(
        [
            Column("setting", key=True),
            Column("value", keep=True),
            Column("estimated", justify="right", keep=True),
            Column("change", justify="right", drop=10),
        ],
        title="Estimated size, one setting changed at a time (* = now)",
    )
    last = None
    for s in a.settings:
        mark = " *" if s.current else ""
        table.add_row(
            s.key if s.key != last else "",
            escape(shown_value(s.key, s.value)) + mark,
            human_bytes(s.estimated_bytes),
            "" if s.current else _change(s.estimated_bytes, a.stored_bytes),
        )
        last = s.key
    table.render(console)
    layers = FitTable(
        [
            Column("layer", key=True),
            Column("tensors", justify="right", drop=20),
            Column("stored now", justify="right", keep=True),
            Column("best change", keep=True),
            Column("saving", justify="right", drop=30),
        ],
        title="Per layer type",
    )
    for ly in a.layers:
        saving = f"{human_bytes(ly.saving)} ({ly.saving / ly.stored_bytes:.1%})" if ly.best else ""
        layers.add_row(
            ly.layer,
            str(ly.tensors),
            human_bytes(ly.stored_bytes),
            escape(ly.best or "none better"),
            saving,
        )
    layers.render(console)
    if a.tensors:
        tensors = FitTable(
            [
                Column("tensor", key=True),
                Column("versions", justify="right", drop=30),
                Column("distinct", justify="right", drop=20),
                Column("stored", justify="right", drop=40),
                Column("ratio", justify="right", keep=True),
                Column("by", drop=50),
            ],
            title="Tensors that deduplicate or delta well (logical over stored)",
        )
        for t in a.tensors:
            tensors.add_row(
                escape(t.name),
                str(t.versions),
                str(t.distinct),
                human_bytes(t.stored_bytes),
                f"{t.ratio:.2f}x",
                t.how,
            )
        tensors.render(console)
    console.print(_gc_line(a.gc_removed, a.gc_freed_bytes))
    _print_recommendation(a)


def _gc_line(removed: dict[str, int], freed: int) -> str:
    if not removed:
        return "gc: nothing to collect now."
    what = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(removed.items()))
    return f"gc: `coral gc` would free {human_bytes(freed)} now ({what})."


def _print_recommendation(a: Any) -> None:
    console = out()
    best = a.recommended
    if best is None:
        return
    others = ", ".join(
        f"{p.name} {human_bytes(p.estimated_bytes)}" for p in a.profiles if p is not best
    )
    why = " (in effect now)" if best.in_effect else ""
    change = _change(best.estimated_bytes, a.stored_bytes)
    console.print(
        f"Recommended profile: {escape(best.name)}{why}, estimated "
        f"{human_bytes(best.estimated_bytes)} "
        + ("(no change)" if change == "=" else f"({change})")
    )
    if others:
        console.print(f"  the others: {escape(others)}")
    if a.marginal:
        console.print("  no profile saves 1% or more: a repack is optional")
    console.print(f"  coral optimize --apply {escape(best.name)}")


def _print_apply(r: Any) -> None:
    from coral.porcelain.optimize import shown_value

    console = out()
    if r.changes:
        verb = "would change" if r.dry_run else "changed"
        console.print(f"profile {escape(r.profile)}: {verb}")
        for key, (before, after) in r.changes.items():
            console.print(
                f"  {key}: {escape(shown_value(key, before))} -> {escape(shown_value(key, after))}"
            )
    else:
        console.print(f"profile {escape(r.profile)}: the settings are already in effect")
    if r.dry_run:
        console.print(
            f"would re-encode {r.tensors} tensors: {human_bytes(r.stored_bytes or 0)} now, "
            f"estimated {human_bytes(r.estimated_bytes or 0)} after"
        )
        console.print("  (a trial encode of the sample); nothing changed")
        return
    console.print(f"re-encoded {r.tensors} tensors, verified {r.verified} bit-exact")
    change = _change(r.bytes_after, r.bytes_before)
    console.print(
        f"store {human_bytes(r.bytes_before)} -> {human_bytes(r.bytes_after)}, "
        f"{'unchanged' if change == '=' else change}; settings written to .coral/config.toml"
    )


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(optimize)
