"""pgbackrest.conf as INI text: read it, and set dbops' keys in place while keeping the operator's own lines."""

from __future__ import annotations


def parse_config(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            sections.setdefault(section, {})
        elif "=" in line:
            key, _, value = line.partition("=")
            sections.setdefault(section, {})[key.strip()] = value.strip()
    return sections


def with_settings(text: str, settings: dict[str, dict[str, str]]) -> str:
    """Set `settings` in the INI `text`, in place where a key exists, else at the end of its section."""
    lines = text.splitlines()
    pending = {section: dict(values) for section, values in settings.items()}
    out: list[str] = []
    section = ""

    def flush(name: str) -> None:
        for key, value in pending.pop(name, {}).items():
            out.append(f"{key}={value}")

    for raw in lines:
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            flush(section)
            section = line[1:-1].strip()
        elif "=" in line and not line.startswith("#"):
            key = line.partition("=")[0].strip()
            if key in pending.get(section, {}):
                out.append(f"{key}={pending[section].pop(key)}")
                continue
        out.append(raw)
    flush(section)
    for name in list(pending):
        if pending[name]:
            out += ["", f"[{name}]"]
            flush(name)
    return "\n".join(out).rstrip("\n") + "\n"
