"""render_table: the plain table every CLI listing and plan rendering goes through."""

import pytest

from pipeline.render import render_table


def test_columns_are_as_wide_as_their_widest_cell_and_lines_carry_no_trailing_space():
    text = render_table(["version", "what"], [(1, "create t"), ("10.2", None), ("3", "")])
    assert text.splitlines() == [
        "version  what",
        "-------  --------",
        "1        create t",
        "10.2     None",
        "3",
    ]


def test_a_cell_wider_than_its_header_widens_the_column_for_every_row():
    assert render_table(["a", "b"], [("x" * 12, "y")]).splitlines() == [
        "a" + " " * 13 + "b",
        "-" * 12 + "  -",
        "x" * 12 + "  y",
    ]


def test_braces_in_cells_are_printed_as_they_are():
    # rows go through one format string: cell text must never be read as a format field
    assert render_table(["sql"], [("SELECT '{0}' {x}",)]).splitlines()[2] == "SELECT '{0}' {x}"


def test_a_row_with_the_wrong_number_of_cells_names_the_header():
    with pytest.raises(ValueError, match=r"every row needs 2 cells: \['a', 'b'\]"):
        render_table(["a", "b"], [("only one",)])


def test_markdown_escapes_pipes():
    assert render_table(["x"], [("a|b",)], markdown=True).splitlines()[2] == "| a\\|b |"
