"""Credentials never leave a URL: masking for every message, repr and report that names one."""

from __future__ import annotations

import re


def mask_url(url: str) -> str:
    """Return `url` with any password replaced by `***` (works on unparseable URLs too)."""
    masked = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", masked)
