"""The conformance matrix: every cell's outcome, printed at the end of the run.

Rows are client x upstream x mode (the upstream families of test_conformance.py, and the Azure
column of tests/test_azure_conformance.py), columns are scenarios. Outcomes come from pytest's reports,
so a cell marked xfail shows as such, and a strict xfail that passes shows as FAIL. A scenario
that a client's API cannot express is no test at all: its cells show `n/a`, are counted apart
from the cells run, and the matrix says why under the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import get_args

import pytest

from .clients import CLIENT_TYPES
from .conversation import Family, Mode
from .scenarios import SCENARIOS, Scenario

CLIENTS = tuple(client.name for client in CLIENT_TYPES)
FAMILIES: tuple[Family, ...] = get_args(Family)
MODES: tuple[Mode, ...] = get_args(Mode)
NOT_RUN = "-"
NOT_APPLICABLE = "n/a"
# (client, scenario) -> why the client's API cannot express the scenario.
INEXPRESSIBLE: dict[tuple[str, str], str] = {
    (client.name, scenario): why for client in CLIENT_TYPES for scenario, why in client.inexpressible.items()
}


@dataclass(frozen=True)
class Cell:
    client: str
    upstream: Family
    mode: Mode
    scenario: Scenario

    @property
    def row(self) -> tuple[str, Family, Mode]:
        return self.client, self.upstream, self.mode

    @property
    def id(self) -> str:
        return f"{self.client}-{self.upstream}-{self.mode}-{self.scenario.name}"


CELLS = [
    Cell(client, upstream, mode, scenario)
    for client in CLIENTS
    for upstream in FAMILIES
    for mode in MODES
    for scenario in SCENARIOS
    if (client, scenario.name) not in INEXPRESSIBLE
]


# The printed columns: each family the cells above run against, and Azure OpenAI, whose cells run
# on a router of their own (tests/test_azure_conformance.py) under ids of the same form.
AZURE = "azure"
COLUMNS: tuple[str, ...] = (*FAMILIES, AZURE)
# Every cell shown, by id: (client, column, mode) and its scenario.
SHOWN: dict[str, tuple[tuple[str, str, Mode], Scenario]] = {
    f"{client}-{column}-{mode}-{scenario.name}": ((client, column, mode), scenario)
    for client in CLIENTS
    for column in COLUMNS
    for mode in MODES
    for scenario in SCENARIOS
    if (client, scenario.name) not in INEXPRESSIBLE
}
_CELL_TESTS = ("test_conformance.py::test_cell[", "test_azure_conformance.py::test_azure_cell[")


def outcome_of(report: pytest.TestReport) -> str | None:
    """A report's word for the matrix; None when the phase says nothing new."""
    if report.failed:
        return "FAIL"
    if report.skipped:
        return "xfail" if hasattr(report, "wasxfail") else "skip"
    return "pass" if report.when == "call" else None


class Results:
    """The outcome of each cell, read off the reports pytest hands the process that prints (with
    pytest-xdist, the controller, which collects nothing itself): a cell is known by its test id."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}  # by cell id

    def record(self, report: pytest.TestReport) -> None:
        cell = cell_of(report.nodeid)
        outcome = outcome_of(report)
        if cell is not None and outcome is not None and self.outcomes.get(cell) != "FAIL":
            self.outcomes[cell] = outcome

    def render(self) -> list[str]:
        if not self.outcomes:
            return []
        names = [scenario.name for scenario in SCENARIOS]
        label = max(len(f"{c} > {u} {m}") for c in CLIENTS for u in COLUMNS for m in MODES)
        widths = [max(len(name), 5) for name in names]

        def line(first: str, cells: Iterable[str], last: str) -> str:
            middle = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths))
            return f"{first.ljust(label)}  {middle}  {last}"

        lines = [line("", names, "pass")]

        def outcome(row: tuple[str, str, Mode], name: str) -> str:
            cell = f"{row[0]}-{row[1]}-{row[2]}-{name}"
            return NOT_APPLICABLE if cell not in SHOWN else self.outcomes.get(cell, NOT_RUN)

        for client in CLIENTS:
            for upstream in COLUMNS:
                for mode in MODES:
                    row = [outcome((client, upstream, mode), name) for name in names]
                    applicable = len(row) - row.count(NOT_APPLICABLE)
                    lines.append(line(f"{client} > {upstream} {mode}", row, f"{row.count('pass')}/{applicable}"))
        passed = Counter(SHOWN[cell][1].name for cell, outcome in self.outcomes.items() if outcome == "pass")
        applicable_rows = Counter(scenario.name for _, scenario in SHOWN.values())
        lines.append(line("pass per scenario", [f"{passed[name]}/{applicable_rows[name]}" for name in names], ""))
        totals = Counter(self.outcomes.values())
        summary = ", ".join(f"{totals[word]} {word}" for word in ("pass", "FAIL", "xfail", "skip") if totals[word])
        inexpressible = len(INEXPRESSIBLE) * len(COLUMNS) * len(MODES)
        lines.append(
            f"{len(SHOWN)} cells: {summary or 'none run'}; {len(SHOWN) - len(self.outcomes)} not run; "
            f"and {inexpressible} n/a, neither run nor counted:"
        )
        lines.extend(f"  n/a {client} x {scenario}: {why}" for (client, scenario), why in INEXPRESSIBLE.items())
        return lines


def cell_of(nodeid: str) -> str | None:
    """The id of the cell a test runs (`...test_cell[<cell id>]`, or the Azure column's
    `...test_azure_cell[<cell id>]`), or None."""
    for test in _CELL_TESTS:
        _, found, rest = nodeid.partition(test)
        if found:
            cell = rest.removesuffix("]")
            return cell if cell in SHOWN else None
    return None


RESULTS = Results()
