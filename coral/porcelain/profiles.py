"""Settings profiles: `coral config profile create|use|list|show|export|import|delete`.

A profile bundles storage, delta (`storage.mode`, `storage.max_chain_depth`,
`storage.reverse_deltas`) and similarity settings. `default`, `fast` and `archive` are built
in; a repository's own live in `.coral/profiles/NAME.toml`, the same TOML that `export`
writes and `import` reads, so a profile is shared as a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from coral.errors import CoralError
from coral.porcelain.config import Target, config_path, repository_root, set_value
from coral.porcelain.config_keys import check_value, lookup, parse_value
from coral.storage.atomic_file import write_atomic
from coral.version_control.config_profiles import (
    BUILTIN,
    DEFAULT_PROFILE,
    Profile,
    active_profile,
    all_profile_names,
    check_profile_name,
    load_profile,
    parse_profile,
    profile_file,
    unknown_profile_error,
)
from coral.version_control.repo_config import CORAL_DIR, read_raw_config


@dataclass(frozen=True)
class ProfileInfo:
    """A profile as the CLI shows it: its flattened settings, whether it is active."""

    name: str
    description: str
    builtin: bool
    active: bool
    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "builtin": self.builtin,
            "active": self.active,
            "settings": dict(self.settings),
            "path": str(self.path) if self.path else None,
        }


def _coral_dir(target: Target) -> Path:
    return repository_root(target) / CORAL_DIR


def _active(target: Target) -> str:
    return active_profile(read_raw_config(config_path(repository_root(target))))[0]


def _info(profile: Profile, active: str) -> ProfileInfo:
    return ProfileInfo(
        profile.name,
        profile.description,
        profile.builtin,
        profile.name == active,
        profile.flat(),
        profile.path,
    )


def profile_settings(repo_path_or_repo: Target, name: str) -> dict[str, Any]:
    """The settings profile `name` sets, flattened: {"storage.mode": "max", ...}. Settings it
    leaves out take the built-in defaults (`default` sets none)."""
    return load_profile(_coral_dir(repo_path_or_repo), name).flat()


def list_profiles(target: Target) -> list[ProfileInfo]:
    """Built-in profiles, then the repository's, the active one marked."""
    coral_dir, active = _coral_dir(target), _active(target)
    return [_info(load_profile(coral_dir, n), active) for n in all_profile_names(coral_dir)]


def show_profile(target: Target, name: str | None = None) -> ProfileInfo:
    """One profile (default: the active one)."""
    active = _active(target)
    return _info(load_profile(_coral_dir(target), name or active), active)


def parse_assignments(pairs: Iterable[str]) -> dict[str, Any]:
    """["storage.mode=max", ...] -> {"storage.mode": "max"} (values still text)."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CoralError(
                f"bad setting {pair!r}", hint="write KEY=VALUE, e.g. --set storage.mode=max"
            )
        found[key.strip()] = value.strip()
    return found


def _checked(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat settings (values as text or typed) -> checked {section: {key: value}}."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        setting = lookup(key)
        if not setting.in_profiles:
            raise CoralError(
                f"{key} cannot be part of a profile",
                hint="a profile holds storage.* and similarity.* settings; "
                f"set {key} with `coral config set`",
            )
        if isinstance(value, str):
            value = parse_value(setting, value)
        else:
            check_value(setting, value)
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    return nested


def _render(profile: Profile) -> str:
    head = [
        f"# Coral settings profile {profile.name!r}: share this file, then",
        "#   coral config profile import FILE && coral config profile use NAME",
    ]
    body = {"name": profile.name, "description": profile.description, **profile.settings}
    return "\n".join(head) + "\n" + tomli_w.dumps(body)


def _check_new(coral_dir: Path, name: str, force: bool, rename: str) -> Path:
    check_profile_name(name)
    if name in BUILTIN:
        raise CoralError(f"{name!r} is a built-in profile", hint=f"{rename} (e.g. my-{name})")
    path = profile_file(coral_dir, name)
    if path.exists() and not force:
        raise CoralError(f"profile {name!r} exists ({path})", hint=f"pass --force, or {rename}")
    return path


def create_profile(
    target: Target,
    name: str,
    *,
    base: str = DEFAULT_PROFILE,
    settings: Mapping[str, Any] | None = None,
    description: str | None = None,
    force: bool = False,
) -> ProfileInfo:
    """Write `.coral/profiles/NAME.toml`: `base`'s settings with `settings` over them."""
    coral_dir = _coral_dir(target)
    path = _check_new(coral_dir, name, force, "give yours another name")
    start = load_profile(coral_dir, base)
    merged = {k: dict(v) for k, v in start.settings.items()}
    for section, values in _checked(settings or {}).items():
        merged.setdefault(section, {}).update(values)
    if description is None:
        description = f"{base} with {', '.join(settings)}" if settings else start.description
    profile = Profile(name, description, merged)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, _render(profile))
    return _info(load_profile(coral_dir, name), _active(target))


def use_profile(target: Target, name: str) -> ProfileInfo:
    """Make `name` the repository's profile (`[core] profile`; CORAL_PROFILE still wins)."""
    set_value(target, "core.profile", name)
    return show_profile(target, name)


def export_profile(target: Target, name: str, output: str | Path | None = None) -> str:
    """The profile as a shareable TOML text; written to `output` too when given."""
    text = _render(load_profile(_coral_dir(target), name))
    if output is not None:
        write_atomic(Path(output), text)
    return text


def import_profile(
    target: Target, file: str | Path, *, name: str | None = None, force: bool = False
) -> ProfileInfo:
    """Add the profile in `file` (as `export` writes it) under `name`, else its own name."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CoralError(f"{path} is not a text file", hint="give an exported profile") from exc
    profile = parse_profile(text, str(path), path.stem)
    coral_dir = _coral_dir(target)
    final = name or profile.name
    dest = _check_new(coral_dir, final, force, "import it under another name with --name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, _render(Profile(final, profile.description, profile.settings)))
    return _info(load_profile(coral_dir, final), _active(target))


def delete_profile(target: Target, name: str) -> ProfileInfo:
    """Delete the repository's profile `name` (not a built-in one, not the active one)."""
    coral_dir = _coral_dir(target)
    if name in BUILTIN:
        raise CoralError(f"{name!r} is a built-in profile", hint="built-in profiles stay")
    path = profile_file(coral_dir, name)
    if not path.is_file():
        raise unknown_profile_error(coral_dir, name)
    raw = read_raw_config(config_path(repository_root(target)))
    core = raw.get("core")
    if isinstance(core, dict) and core.get("profile") == name:
        raise CoralError(
            f"profile {name!r} is the repository's profile",
            hint="switch first: `coral config profile use default`",
        )
    info = _info(load_profile(coral_dir, name), _active(target))
    path.unlink()
    return info
