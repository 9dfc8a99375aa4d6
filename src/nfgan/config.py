"""One way to read a configuration, for every command that takes one (``nfgan train``, ``nfgan fer cv/train``).

Layers, later ones win::

    schema defaults  <-  base: file(s)  <-  the file  <-  --set key=value (dotted keys, YAML values)

* A schema is a (nested) dict of :class:`Option` or plain default values (a plain value's type is its default's
  type). A dict is a section; an option of kind ``mapping`` holds a free-form mapping (e.g. a feature net spec).
* Every value is checked and converted once: ``lr: 2e-3`` (a string to YAML 1.1) becomes the float 0.002, a
  ``bool`` option takes only true/false (``"no"`` is not true), numbers are range-checked, a choice must be one
  of its choices. Errors name the file and the dotted key.
* Unknown keys are refused, naming the keys that exist there.
* ``path`` options given in a file are relative to that file (a ``base:`` file's to the base file); given with
  ``--set`` or as Python overrides they are relative to the working directory. They are stored absolute, so a run folder's
  ``config.yaml`` means the same thing from anywhere.
* YAML anchors and aliases are refused (a few kilobytes of aliases can expand to gigabytes).
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

MAX_CONFIG_BYTES = 1 << 20
BASE_KEY = "base"
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Option:
    """One configuration value: its default and what it may be.

    ``kind``: ``int``, ``float``, ``bool``, ``str``, ``path``, ``path_or_name`` (a path, or the bare name of a
    file nfgan ships, kept as written), ``mapping``, ``list[float]``, ``list[str]``,
    ``list[path]``, ``table`` (named entries, each a section checked against ``item``; a later layer
    changes an entry key by key, ``null`` removes it) or ``any``; ``nullable`` allows ``null``; ``low``/``high`` bound numbers (and list items),
    ``low_open`` makes the low bound exclusive; ``choices`` lists the allowed values; ``length`` fixes a list's
    length; ``check`` is an extra test returning an error message or ``None``."""

    default: Any
    kind: str = ""
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    length: int | None = None
    check: Callable[[Any], str | None] | None = None
    path_keys: tuple = ()
    doc: str = ""
    item: dict | None = None      # kind "table": the schema of each named entry

    def resolved_kind(self) -> str:
        if self.kind:
            return self.kind
        d = self.default
        if isinstance(d, bool):
            return "bool"
        if isinstance(d, int):
            return "int"
        if isinstance(d, float):
            return "float"
        if isinstance(d, str):
            return "str"
        return "any"


def opt(default: Any = None, kind: str = "", **kw) -> Option:
    return Option(default, kind, **kw)


def positive(default, kind: str = "", **kw) -> Option:
    """A number > 0."""
    return Option(default, kind, low=0, low_open=True, **kw)


def nonneg(default, kind: str = "", **kw) -> Option:
    """A number >= 0."""
    return Option(default, kind, low=0, **kw)


# ----------------------------------------------------------------------------------------------- values
def _as_number(value, kind: str, where: str):
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip()) if kind == "float" else int(value.strip(), 10)
        except ValueError:
            raise ConfigError(f"{where}: expected {'a number' if kind == 'float' else 'a whole number'}, "
                              f"got {value!r}") from None
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{where}: expected a whole number, got {value!r}")
            value = int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int):   # a whole number stays as written (a config's hash must not change)
        return value
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


def _bounds(value, o: Option, where: str) -> None:
    if o.low is not None and (value <= o.low if o.low_open else value < o.low):
        raise ConfigError(f"{where}: must be {'>' if o.low_open else '>='} {o.low:g}, got {value!r}")
    if o.high is not None and value > o.high:
        raise ConfigError(f"{where}: must be <= {o.high:g}, got {value!r}")


def convert(value, o: Option, where: str, base_dir: Path | None):
    """``value`` checked against ``o`` and converted to its kind (paths made absolute against ``base_dir``)."""
    kind = o.resolved_kind()
    if value is None:
        if o.nullable or o.default is None:
            return None
        raise ConfigError(f"{where}: must not be null")
    if kind in ("int", "float"):
        value = _as_number(value, kind, where)
        _bounds(value, o, where)
    elif kind == "bool":
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            value = value.strip().lower() in _TRUE
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif kind == "path_or_name" and isinstance(value, str) and _is_name(value):
        pass   # the name of a file nfgan ships (nfgan.weights.protocol_file), kept as it is
    elif kind in ("path", "path_or_name"):
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        p = Path(value).expanduser()
        value = str(p if p.is_absolute() or base_dir is None else (base_dir / p).resolve())
    elif kind == "mapping":
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        value = copy.deepcopy(value)
        for key in o.path_keys:   # file names inside the mapping (e.g. a feature net's weights)
            if value.get(key) is not None:
                value[key] = convert(value[key], Option(None, "path"), f"{where}.{key}", base_dir)
    elif kind.startswith("list["):
        item = Option(None, kind[5:-1], low=o.low, high=o.high, low_open=o.low_open)
        if isinstance(value, (str, Path)) and item.kind in ("str", "path"):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if o.length is not None and len(value) != o.length:
            raise ConfigError(f"{where}: expected a list of {o.length} values, got {value!r}")
        value = [convert(v, item, f"{where}[{i}]", base_dir) for i, v in enumerate(value)]
    if o.choices is not None and value not in o.choices:
        raise ConfigError(f"{where}: must be one of {list(o.choices)}, got {value!r}")
    if o.check is not None:
        msg = o.check(value)
        if msg:
            raise ConfigError(f"{where}: {msg}")
    return value


def _is_name(value: str) -> bool:
    from nfgan.weights import is_name

    return is_name(value)


def _option(spec) -> Option:
    return spec if isinstance(spec, Option) else Option(spec)


def defaults(schema: dict) -> dict:
    """The schema's default configuration (plain values)."""
    return {k: defaults(v) if isinstance(v, dict) else copy.deepcopy(_option(v).default) for k, v in schema.items()}


def merge(schema: dict, cfg: dict, data: dict, source: str, base_dir: Path | None, prefix: str = "") -> dict:
    """``cfg`` with ``data`` laid over it, every value of ``data`` checked against ``schema``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the top level'} must be a mapping, got {data!r}")
    out = dict(cfg)
    for k, v in data.items():
        where = f"{prefix}{k}"
        if k not in schema:
            raise ConfigError(f"{source}: unknown key {where!r} (known here: {sorted(schema)})")
        spec = schema[k]
        if isinstance(spec, dict):
            out[k] = merge(spec, cfg.get(k) or {}, v if v is not None else {}, source, base_dir, where + ".")
        elif isinstance(spec, Option) and spec.kind == "table":
            out[k] = _merge_table(spec, cfg.get(k) or {}, v, source, base_dir, where)
        else:
            out[k] = convert(v, _option(spec), f"{source}: {where}", base_dir)
    return out


def _merge_table(spec: Option, current: dict, data, source: str, base_dir: Path | None, where: str) -> dict:
    """A table option laid over its current entries: each named entry is merged key by key into the existing
    one (or into the item defaults), ``name: null`` removes an entry, ``null`` for the whole table empties it."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where}: expected a mapping of named entries, got {data!r}")
    out = dict(current)
    for name, entry in data.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise ConfigError(f"{source}: {where}: entry name {name!r} must be letters, digits, '_', '-' or '.'")
        if entry is None:
            out.pop(name, None)
            continue
        out[name] = merge(spec.item, out.get(name) or defaults(spec.item), entry, source, base_dir,
                          f"{where}.{name}.")
    if spec.check is not None:
        msg = spec.check(out)
        if msg:
            raise ConfigError(f"{source}: {where}: {msg}")
    return out


# ----------------------------------------------------------------------------------------------- files
class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"YAML aliases are not allowed in configs (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def read_yaml(path: str | Path) -> dict:
    """A config file's top-level mapping (``{}`` for an empty file); errors name the file."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB - not a config file")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of options")
    return data


def file_layers(path: str | Path) -> list[tuple[dict, str, Path]]:
    """``(data, source name, folder)`` for ``path`` and its ``base:`` chain, the deepest base first."""
    layers: list[tuple[dict, str, Path]] = []
    seen: set[Path] = set()
    current: Path | None = Path(path)
    while current is not None:
        current = current.resolve()
        if current in seen:
            raise ConfigError(f"{path}: 'base:' files form a cycle through {current}")
        seen.add(current)
        data = read_yaml(current)
        base = data.pop(BASE_KEY, None)
        layers.append((data, str(current), current.parent))
        if base is not None and not isinstance(base, str):
            raise ConfigError(f"{current}: base must be the path of another config file, got {base!r}")
        current = (current.parent / base) if base else None
    return layers[::-1]


def parse_set(items: Sequence[str] | None) -> dict:
    """``["train.steps=20", "loss.id=0.2"]`` -> ``{"train": {"steps": 20}, "loss": {"id": 0.2}}`` (values
    read as YAML scalars or flow collections: ``[0.5, 0.999]``, ``null``, ``true``)."""
    out: dict = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY, e.g. train.steps=20")
        try:
            value = yaml.load(raw, Loader=_NoAliasLoader) if raw.strip() else None
        except (ConfigError, yaml.YAMLError) as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({e})") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set to a value and used as a section")
        node[parts[-1]] = value
    return out


def layers(path: str | Path | None, overrides: dict | None = None,
           sets: Sequence[str] | None = None) -> list[tuple[dict, str, Path | None]]:
    """All layers above the defaults: the file chain, then programmatic ``overrides``, then ``--set`` items."""
    out: list[tuple[dict, str, Path | None]] = list(file_layers(path)) if path is not None else []
    if overrides:
        out.append((copy.deepcopy(overrides), "overrides", Path.cwd()))
    if sets:
        out.append((parse_set(sets), "--set", Path.cwd()))
    return out


def peek(stack: list[tuple[dict, str, Path | None]], dotted: str, default=None):
    """The value the layers give to ``dotted`` (the last layer that sets it), before any checking."""
    value = default
    for data, _, _ in stack:
        node = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            value = node
    return value


def load(schema: dict, path: str | Path | None = None, overrides: dict | None = None,
         sets: Sequence[str] | None = None) -> dict:
    """Defaults of ``schema`` <- ``path`` (and its ``base:`` chain) <- ``overrides`` <- ``sets``, checked."""
    return load_stack(schema, layers(path, overrides, sets))


def load_stack(schema: dict, stack: list[tuple[dict, str, Path | None]]) -> dict:
    """Defaults of ``schema`` with each layer of ``stack`` (:func:`layers`) laid over them in turn, checked."""
    cfg = defaults(schema)
    for data, source, base_dir in stack:
        cfg = merge(schema, cfg, data, source, base_dir)
    return cfg
