"""Documentation that is generated or indexed must stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from orbwatch.detect.registry import detectors
from orbwatch.store import schema

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_schema_page_is_generated_from_the_declarations() -> None:
    assert (DOCS / "schema.md").read_text() == schema.markdown()


def test_every_detector_is_documented() -> None:
    text = (DOCS / "detectors.md").read_text()
    for det_id, cls in detectors().items():
        section = text.split(f"## `{det_id}`", 1)
        assert len(section) == 2, f"docs/detectors.md has no section for {det_id}"
        body = section[1].split("\n## ", 1)[0]
        for heading in ("ATT&CK", "Parameters", "Known false positives", "Rationale"):
            assert heading in body, f"{det_id}: section lacks {heading}"
        for technique in cls.techniques:
            assert technique in body
        assert cls.__module__ and (cls.__doc__ or "")


def test_readme_starts_with_the_two_setup_commands() -> None:
    text = README.read_text()
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert blocks[0].strip() == "make demo"
    assert blocks[1].strip() == "make test"
