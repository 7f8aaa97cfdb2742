"""Settings classes ↔ .env.example ↔ docs/configuration.md: every variable a service
reads is documented, with its real default, and nothing documented is stale."""

from __future__ import annotations

import pytest
from harvis_static import (
    COMPOSE_NATIVE_VARS,
    COMPUTED,
    REQUIRED,
    REQUIRED_SECRETS,
    SERVICES,
    SettingField,
    all_settings,
    compose,
    compose_strings,
    config_doc,
    env_example,
    env_value,
    interpolations,
    is_secret,
    service_env,
)

FLEET = [s.name for s in SERVICES]


def expected_default(fields: dict[str, SettingField]) -> str | None:
    """The default column for a setting, or None when services differ."""
    values = {env_value(f.default) if f.default not in (REQUIRED, COMPUTED) else f.default for f in fields.values()}
    if len(values) != 1:
        return None
    value = values.pop()
    return {"": "(empty)", REQUIRED: "(required)", COMPUTED: "(computed)"}.get(value, value)


def expected_services(fields: dict[str, SettingField]) -> str:
    if set(fields) == set(FLEET):
        return "all"
    return ", ".join(name for name in FLEET if name in fields)


def compose_vars() -> set[str]:
    names = {i.name for i in interpolations(compose_strings())}
    for s in compose()["services"].values():
        names |= {k for k, v in service_env(s).items() if v is None}
    return names


def row_hint(name: str, fields: dict[str, SettingField]) -> str:
    default = expected_default(fields) or "(per service)"
    return f"| `{name}` | {expected_services(fields)} | `{default}` | <meaning> |"


# ---------------------------------------------------------------- the Settings classes themselves


def test_settings_were_found() -> None:
    table = all_settings()
    for name in FLEET:
        assert any(name in by_svc for by_svc in table.values()), f"no Settings class found for {name}"
    assert {"LOG_LEVEL", "INTERNAL_AUTH_PUBLIC_KEY", "SERVICE_NAME"} <= set(table)
    assert {"DATABASE_URL", "JWT_SECRET", "INTERNAL_AUTH_PRIVATE_KEY"} <= set(table)


def test_no_secret_setting_has_a_default() -> None:
    for name, fields in all_settings().items():
        if is_secret(name):
            for svc, f in fields.items():
                assert f.default in ("", None, REQUIRED), f"{svc}: {f.owner}.{f.attr} = {f.default_src}: no default"


# ---------------------------------------------------------------- .env.example


def test_every_setting_is_in_env_example() -> None:
    documented = env_example()
    missing = [f"{name} ({', '.join(sorted(f))})" for name, f in all_settings().items() if name not in documented]
    assert not missing, f"add to .env.example (commented out, with its default): {missing}"


def test_env_example_has_nothing_stale() -> None:
    known = set(all_settings()) | compose_vars() | COMPOSE_NATIVE_VARS
    stale = sorted(set(env_example()) - known)
    assert not stale, f".env.example lists {stale}, which no service reads and compose does not use"


def test_env_example_shows_the_real_defaults() -> None:
    entries = env_example()
    for name, fields in all_settings().items():
        entry = entries.get(name)
        if entry is None or name in REQUIRED_SECRETS:
            continue
        assert not entry.active, f".env.example:{entry.line}: {name} must be commented out (the default applies)"
        default = expected_default(fields)
        if default is None or default.startswith("("):
            continue
        assert entry.value == default, f".env.example:{entry.line}: {name}={entry.value}, but the default is {default}"


def test_env_example_secrets_are_blank() -> None:
    entries = env_example()
    for name in REQUIRED_SECRETS:
        assert name in entries and entries[name].active, f"{name}= must be an active (uncommented) line"
    for entry in entries.values():
        if is_secret(entry.name):
            assert entry.value == "", f".env.example:{entry.line}: {entry.name} must be empty (never commit a secret)"


# ---------------------------------------------------------------- docs/configuration.md


def test_docs_list_exactly_env_example() -> None:
    doc, env = set(config_doc()), set(env_example())
    assert not env - doc, f"docs/configuration.md lacks {sorted(env - doc)}"
    assert not doc - env, f"docs/configuration.md documents {sorted(doc - env)}, which .env.example does not list"


@pytest.mark.parametrize("name", sorted(all_settings()))
def test_docs_row_matches_the_settings(name: str) -> None:
    fields = all_settings()[name]
    row = config_doc().get(name)
    assert row is not None, f"add to docs/configuration.md: {row_hint(name, fields)}"
    assert row.services == expected_services(fields), f"{name}: services column, expected {row_hint(name, fields)}"
    default = expected_default(fields)
    if default is not None:
        assert row.default == default, f"{name}: default column {row.default!r}, expected {row_hint(name, fields)}"
    assert row.meaning and row.meaning != "<meaning>", f"{name}: say what it does"
