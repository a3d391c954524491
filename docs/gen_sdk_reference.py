"""Write docs/sdk.md, the SDK reference, from the docstrings of ``videogate.client``.

python docs/gen_sdk_reference.py          # rewrite docs/sdk.md
python docs/gen_sdk_reference.py --check  # exit 1 if docs/sdk.md is out of date
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import videogate.client as sdk

OUT = Path(__file__).with_name("sdk.md")
HANDLES = {"AsyncTask", "Task"}  # made by the clients, not constructed by callers

SECTIONS: list[tuple[str, list[str]]] = [
    ("Clients", ["AsyncClient", "Client", "CreateOptions"]),
    ("Tasks", ["AsyncTask", "Task", "TaskState", "TaskPage", "GeneratedVideo", "PreparedRequest"]),
    ("References", ["Image", "Video", "Audio"]),
    ("Helpers", ["mp4_duration", "new_idempotency_key"]),
]

HEADER = """# The videogate SDK — reference

Generated from the docstrings by `docs/gen_sdk_reference.py`; do not edit by hand. For a
walk-through, see [the five-minute tour](tour.md).

```python
from videogate.client import AsyncClient, Client, Image, Video, Audio
```

`videogate.client` needs only `httpx` (the base `pip install videogate`) and never
imports the server. `DEFAULT_MODEL` is `{default_model}`; `api` is one of {apis}.
"""


def _doc(obj: Any) -> str:
    """The docstring as Markdown: reST roles and literals to backticks, doctests fenced."""
    if not obj.__doc__:
        return ""
    text = inspect.cleandoc(obj.__doc__)
    text = re.sub(r":(?:class|meth|func|attr|data):`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    out: list[str] = []
    in_example = False
    for line in text.splitlines():
        example = line.startswith((">>> ", "... "))
        if example and not in_example:
            out.append("```python")
        elif not example and in_example:
            out.append("```")
        out.append(line[4:] if example else line)
        in_example = example
    if in_example:
        out.append("```")
    return "\n".join(out)


def _signature(func: Any, *, drop_self: bool = True) -> str:
    sig = inspect.signature(func)
    parts: list[str] = []
    star_done = False
    for param in sig.parameters.values():
        if drop_self and param.name in ("self", "cls"):
            continue
        text = param.name
        if param.kind is param.VAR_KEYWORD:
            text = f"**{param.name}"
        elif param.kind is param.VAR_POSITIONAL:
            text = f"*{param.name}"
            star_done = True
        elif param.kind is param.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {param.default!r}"
        parts.append(text)
    result = ""
    if sig.return_annotation is not sig.empty:
        result = f" -> {_annotation(sig.return_annotation)}"
    return f"({', '.join(parts)}){result}"


def _annotation(value: Any) -> str:
    if hasattr(value, "__forward_arg__"):
        value = value.__forward_arg__
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return text.replace("builtins.", "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _members(cls: type) -> list[tuple[str, Any]]:
    found = []
    for name, value in cls.__dict__.items():
        if name.startswith("_"):
            continue
        if isinstance(value, property) or inspect.isfunction(value):
            found.append((name, value))
    return found


def _class(name: str, cls: type) -> list[str]:
    lines: list[str] = []
    if dataclasses.is_dataclass(cls):
        lines.append(f"### `{name}`\n")
        lines.append(_doc(cls) + "\n")
        lines.append("| field | type |\n|---|---|")
        for f in dataclasses.fields(cls):
            lines.append(f"| `{f.name}` | `{_cell(_annotation(f.type))}` |")
        lines.append("")
    elif hasattr(cls, "__total__"):  # a TypedDict
        lines.append(f"### `{name}`\n")
        lines.append(_doc(cls) + "\n")
        lines.append("| key | type |\n|---|---|")
        for key, kind in cls.__annotations__.items():
            lines.append(f"| `{key}` | `{_cell(_annotation(kind))}` |")
        lines.append("")
        return lines
    elif name in HANDLES:
        lines.append(f"### `{name}`\n")
        lines.append(_doc(cls) + "\n")
    else:
        init = vars(cls)["__init__"]
        signature = _signature(init).removesuffix(" -> None")
        lines.append(f"### `{name}{signature}`\n")
        lines.append(_doc(cls) + "\n")
    members = _members(cls)
    properties = [(m, v) for m, v in members if isinstance(v, property)]
    if properties:
        lines.append("Properties:\n")
        for member, value in properties:
            doc = _doc(value.fget).replace("\n", " ") if value.fget else ""
            lines.append(f"- `{member}`{': ' + doc if doc else ''}")
        lines.append("")
    for member, value in members:
        if isinstance(value, property):
            continue
        prefix = "async " if inspect.iscoroutinefunction(value) else ""
        lines.append(f"#### `{prefix}{name}.{member}{_signature(value)}`\n")
        lines.append((_doc(value) or "(no docstring)") + "\n")
    return lines


def _errors() -> list[str]:
    root = sdk.VideogateClientError
    lines = [
        "## Errors\n",
        "Every error the SDK raises on purpose is a `VideogateClientError`:\n",
        "```",
    ]

    def walk(cls: type, depth: int) -> None:
        lines.append("    " * depth + cls.__name__)
        subclasses: list[type] = cls.__subclasses__()
        for sub in sorted(subclasses, key=lambda c: c.__name__):
            if sub.__module__.startswith("videogate.client"):
                walk(sub, depth + 1)

    walk(root, 0)
    lines.append("```\n")
    for name in sorted(n for n in sdk.__all__ if isinstance(getattr(sdk, n), type)):
        cls = getattr(sdk, name)
        if issubclass(cls, root):
            lines.append(f"- `{name}`: {_doc(cls) or '(no docstring)'}".replace("\n", " "))
    lines.append("")
    return lines


def render() -> str:
    lines = [HEADER.format(default_model=sdk.DEFAULT_MODEL, apis=", ".join(sdk.API_NAMES))]
    for title, names in SECTIONS:
        lines.append(f"## {title}\n")
        for name in names:
            obj = getattr(sdk, name)
            if isinstance(obj, type):
                lines += _class(name, obj)
            else:
                lines.append(f"### `{name}{_signature(obj, drop_self=False)}`\n")
                lines.append(_doc(obj) + "\n")
    lines += _errors()
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python docs/gen_sdk_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
