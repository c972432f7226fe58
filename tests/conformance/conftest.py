"""The conformance suite's only addition to tests/conftest.py: the matrix, printed at the end of
every run that collected any of its cells (this directory alone, or the whole tests/ tree)."""

from __future__ import annotations

import pytest

from .matrix import RESULTS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    RESULTS.collect(items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    RESULTS.record(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = RESULTS.render()
    if lines:
        terminalreporter.section("conformance matrix: client > upstream mode, by scenario")
        for line in lines:
            terminalreporter.write_line(line)
