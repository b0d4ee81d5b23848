"""The one way esteira reads its settings: typed, documented, one naming scheme.

Every settings class of the project (model/config.py `Settings`, model/serving/settings.py
`ServingSettings`, the workflow's in pipelines/) derives from `EsteiraSettings`, a pydantic-settings
`BaseSettings`, and declares each field with `setting(...)`:

- its one environment name, `ESTEIRA_<NAME>` (third-party names such as MLFLOW_TRACKING_URI or
  AWS_REGION are read as those tools name them, see THIRD_PARTY);
- its type and allowed range (pydantic constraints), its default and a description, which
  scripts/settings_table.py turns into docs/settings.md (tests/unit/test_settings_doc.py keeps the two equal);
- optionally the names it had before (`old=`): read when the new name is unset, with a
  DeprecationWarning and one log warning per name, for one release.

`Cls.from_env()` reads the process environment (an empty or blank value counts as unset, values are
stripped); `Cls(field=...)` builds one from keyword arguments and defaults only, never the environment
(tests rely on that). Instances are immutable: `settings.replace(field=value)` returns a re-validated copy.
A bad value raises `SettingsError` (a ValueError) naming the environment variable and the value.
"""

from __future__ import annotations

import contextvars
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

from pydantic import BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

log = logging.getLogger("esteira.settings")

PREFIX = "ESTEIRA_"
# Names other tools define; read as they spell them, never renamed.
THIRD_PARTY = frozenset({"MLFLOW_TRACKING_URI", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"})
DEPRECATION = "{old} is deprecated; set {new} (old names are read until the next release)"


def _zero_one(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return bool(int(value))
    raise ValueError(f"must be 0 or 1, got {value!r}")


# A switch: 0 or 1 in the environment (True/False in code); "yes", "true" and the like are refused.
Flag = Annotated[bool, BeforeValidator(_zero_one)]
# Case-insensitive choices (log levels, modes): `Annotated[Literal[...], lower]`.
lower = BeforeValidator(lambda value: value.lower() if isinstance(value, str) else value)


class SettingsError(ValueError):
    """A setting has a value it cannot take; the message names the variable (or field) and the value."""


@dataclass(frozen=True)
class EnvSpec:
    """How one field is read: its name, names read silently after it, deprecated names read last."""

    env: str
    also: tuple[str, ...] = ()
    old: tuple[str, ...] = ()
    default_doc: str | None = None

    def names(self) -> tuple[str, ...]:
        return (self.env, *self.also, *self.old)


def setting(
    default: Any = PydanticUndefined,
    *,
    env: str,
    description: str,
    old: tuple[str, ...] = (),
    also: tuple[str, ...] = (),
    default_factory: Callable[[], Any] | None = None,
    default_doc: str | None = None,
    **constraints: Any,
) -> Any:
    """A field read from `env` (then `also`, then the deprecated `old` names); `constraints` are pydantic's
    (ge, le, gt, lt, min_length, ...). `default_doc` is the default as the docs table shows it, for defaults
    that are computed (a factory, or derived from another setting by `from_env`)."""
    extra: dict[str, Any] = {"env": env, "also": list(also), "old": list(old)}
    if default_doc is not None:
        extra["default_doc"] = default_doc
    if default_factory is not None:
        return Field(default_factory=default_factory, description=description, json_schema_extra=extra, **constraints)
    return Field(default, description=description, json_schema_extra=extra, **constraints)


def env_spec(field: FieldInfo) -> EnvSpec | None:
    """The environment names of a field declared with `setting`, or None (a field no variable sets)."""
    extra = field.json_schema_extra
    if not isinstance(extra, dict) or "env" not in extra:
        return None
    also = extra.get("also") or []
    old = extra.get("old") or []
    doc = extra.get("default_doc")
    return EnvSpec(
        str(extra["env"]),
        tuple(str(n) for n in also),  # type: ignore[union-attr]
        tuple(str(n) for n in old),  # type: ignore[union-attr]
        None if doc is None else str(doc),
    )


def is_flag(field: FieldInfo) -> bool:
    """The field is a `Flag` (0 or 1 in the environment)."""
    return any(getattr(m, "func", None) is _zero_one for m in field.metadata)


def _lookup(environ: Mapping[str, str], spec: EnvSpec) -> tuple[str, str] | None:
    """(name, stripped value) of the first of the field's names that is set to something non-blank."""
    for name in spec.names():
        value = environ.get(name)
        if value is not None and value.strip():
            return name, value.strip()
    return None


_warned: set[str] = set()


def _deprecated(old: str, new: str) -> None:
    message = DEPRECATION.format(old=old, new=new)
    warnings.warn(message, DeprecationWarning, stacklevel=4)
    if old not in _warned:  # one log line per name and process; the warning filter decides about the rest
        _warned.add(old)
        log.warning(message, extra={"setting": new, "deprecated_name": old})


# What `from_env` reads while it builds an instance: the environment and the derived defaults. Unset
# (None) when a class is built from keyword arguments, so that never reads the environment.
_reading: contextvars.ContextVar[tuple[Mapping[str, str], dict[str, Any]] | None] = contextvars.ContextVar(
    "esteira_settings_reading", default=None
)


class _EnvironmentSource(PydanticBaseSettingsSource):
    """The fields' values from the environment, by each field's names (new, also, then old with a warning)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads all fields at once

    def __call__(self) -> dict[str, Any]:
        reading = _reading.get()
        if reading is None:
            return {}
        environ, derived = reading
        values = dict(derived)
        for name, field in self.settings_cls.model_fields.items():
            spec = env_spec(field)
            found = _lookup(environ, spec) if spec else None
            if spec is None or found is None:
                continue
            used, value = found
            if used in spec.old:
                _deprecated(used, spec.env)
            values[name] = value
        return values


class EsteiraSettings(BaseSettings):
    """Base of every settings class: immutable, no .env files, case-sensitive names, `setting` fields."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_file=None,
        extra="forbid",
        protected_namespaces=(),
        validate_default=True,
    )

    # The docs table's heading for the class (scripts/settings_table.py); the class docstring follows it.
    doc_title: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, field in cls.model_fields.items():
            spec = env_spec(field)
            if spec is None:
                continue
            if not (spec.env.startswith(PREFIX) or spec.env in THIRD_PARTY):
                raise TypeError(f"{cls.__name__}.{name}: {spec.env} is neither {PREFIX}<NAME> nor a third-party name")
            if not field.description:
                raise TypeError(f"{cls.__name__}.{name}: a setting needs a description (docs/settings.md shows it)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments first, then the environment as `setting` names it (only inside from_env).
        return (init_settings, _EnvironmentSource(settings_cls))

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_explain(type(self), exc, values)) from None

    @classmethod
    def read_env(cls, environ: Mapping[str, str] | None = None, **derived: Any) -> Self:
        """An instance from the environment (`os.environ` unless given). `derived` are defaults computed
        from other settings (e.g. the canary service from the serving service): the environment wins."""
        token = _reading.set((os.environ if environ is None else environ, derived))
        try:
            return cls()
        finally:
            _reading.reset(token)

    @classmethod
    def from_env(cls) -> Self:
        return cls.read_env()

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied, validated like any other instance."""
        return type(self)(**{**self.values(), **changes})

    def values(self) -> dict[str, Any]:
        """Field name -> value."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Every environment name a field is read from (new, also and old) -> the field's current name."""
        out: dict[str, str] = {}
        for field in cls.model_fields.values():
            spec = env_spec(field)
            if spec:
                out.update({name: spec.env for name in spec.names()})
        return out

    @classmethod
    def renamed(cls, environ: Mapping[str, str]) -> dict[str, str]:
        """`environ` with the deprecated names this class reads replaced by their current ones (for code that
        builds a service's environment from names given by callers that still use the old ones)."""
        old = {name: spec.env for f in cls.model_fields.values() if (spec := env_spec(f)) for name in spec.old}
        out = {k: v for k, v in environ.items() if k not in old}
        for k, v in environ.items():
            if k in old:
                out.setdefault(old[k], v)  # a current name given too wins, as when the settings are read
        return out


def _explain(cls: type[EsteiraSettings], exc: ValidationError, values: Mapping[str, Any]) -> str:
    """The validation errors as one message naming where each bad value came from."""
    reading = _reading.get()
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else ""
        field = cls.model_fields.get(name)
        spec = env_spec(field) if field else None
        found = _lookup(reading[0], spec) if reading and spec and name not in values else None
        if found:
            used, raw = found
            where = f"environment variable {used}={raw!r}"
            if spec and used in spec.old:
                where += f" (deprecated name of {spec.env})"
            lines.append(f"{where}: {message}")
        elif field is not None:
            env = f" ({spec.env})" if spec else ""
            lines.append(f"{cls.__name__}.{name}{env}={error.get('input')!r}: {message}")
        else:
            lines.append(f"{cls.__name__}: {message}")
    return "; ".join(lines)


__all__ = [
    "DEPRECATION",
    "PREFIX",
    "THIRD_PARTY",
    "EnvSpec",
    "EsteiraSettings",
    "Flag",
    "SettingsError",
    "env_spec",
    "is_flag",
    "lower",
    "setting",
]
