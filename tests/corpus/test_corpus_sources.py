"""The corpus is what its README says: every file accounted for, every document a pod.

Unit test, no cluster: it guards the provenance (one sources.yaml row per
manifest file, a full commit for each) and the promise the other tests rely
on, that every document parses and carries a pod or a pod template.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from corpus.load import CORPUS_DIR, RUNTIME_CLASSES_DIR, SHAPES, documents, file_documents, manifest_files, runtime_classes, sources

COMMIT = re.compile(r"[0-9a-f]{40}")
FILE_NAME = re.compile(r"\d{3}-[a-z0-9-]+-[a-z0-9._-]+\.yaml")


def test_every_manifest_has_exactly_one_source_and_every_source_a_manifest() -> None:
    files = Counter(p.name for p in manifest_files())
    rows = Counter(s.file for s in sources())
    assert files, "no corpus files"
    assert not [f for f, n in rows.items() if n > 1], "files with more than one sources.yaml row"
    assert sorted(files) == sorted(rows), (
        f"without a sources.yaml row: {sorted(set(files) - set(rows))}; "
        f"rows without a file: {sorted(set(rows) - set(files))}"
    )


def test_sources_are_complete() -> None:
    for source in sources():
        assert FILE_NAME.fullmatch(source.file), source.file
        assert COMMIT.fullmatch(source.commit), f"{source.file}: commit {source.commit!r} is not 40 hex digits"
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", source.repository), f"{source.file}: repository {source.repository!r}"
        assert source.path and not source.path.startswith("/"), f"{source.file}: path {source.path!r}"
        assert source.license, f"{source.file}: no license"
        unknown = set(source.shapes) - set(SHAPES)
        assert not unknown, f"{source.file}: unknown shapes {sorted(unknown)}"


def test_readme_lists_every_file() -> None:
    readme = (CORPUS_DIR / "README.md").read_text()
    listed = [s.file for s in sources()] + [p.name for p in RUNTIME_CLASSES_DIR.glob("*.yaml")]
    missing = [name for name in listed if f"`{name}`" not in readme]
    assert not missing, f"README.md does not list {missing}"


def test_every_runtime_class_named_by_the_corpus_is_defined() -> None:
    classes = runtime_classes()
    assert all(c["kind"] == "RuntimeClass" for c in classes.values())
    named = {doc.pod_spec["runtimeClassName"] for doc in documents() if doc.pod_spec.get("runtimeClassName")}
    assert named, "the corpus names no RuntimeClass"
    assert named <= set(classes), f"no RuntimeClass file for {sorted(named - set(classes))}"


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_every_document_parses_and_carries_a_pod(path: Path) -> None:
    docs = file_documents(path)  # raises for a document that is not pod-bearing
    assert docs, f"{path.name} has no documents"
    for doc in docs:
        assert doc.name, f"{doc.id}: {doc.kind} without a name or generateName"
        containers = doc.pod_spec.get("containers")
        assert isinstance(containers, list) and containers, f"{doc.id}: {doc.kind} without containers"
