"""Answer extraction and comparison: a table of tricky cases, plus real gold solutions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from evaluation.datasets import load_problems, resolve_data_dir
from evaluation.grading import answers_match, extract_answer, grade

# (response, gold, expected verdict)
CASES = [
    # thousands separators
    ("so the total is \\boxed{1,000}", "1000", True),
    ("\\boxed{1000}", "1,000", True),
    ("\\boxed{1,450,000}", "1450000", True),
    ("\\boxed{1,450}", "1450000", False),
    # dollars and percent
    ("She makes \\boxed{\\$18}", "18", True),
    ("#### $18", "18", True),
    ("\\boxed{18.00}", "18", True),
    ("\\boxed{25\\%}", "25", True),
    ("The answer is 25%.", "25", True),
    ("\\boxed{26\\%}", "25", False),
    # negatives
    ("\\boxed{-3}", "-3", True),
    ("\\boxed{3}", "-3", False),
    ("\\boxed{-9867630}", "-9867630", True),
    # decimals vs fractions
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{\\dfrac{3}{4}}", "0.75", True),
    ("\\boxed{1/2}", "\\frac12", True),
    ("\\boxed{\\frac{1}{23}}", "\\frac{12}{3}", False),
    ("\\boxed{\\frac{12}{3}}", "4", True),
    ("\\boxed{0.33}", "\\frac{1}{3}", False),
    # near-integers stored as floats (GSM-Hard golds)
    ("\\boxed{3244047.1}", "3244047.0999999996", True),
    ("\\boxed{1000001}", "1000000", False),
    # similar-looking numbers
    ("\\boxed{1}", "18", False),
    ("\\boxed{18}", "1", False),
    ("\\boxed{18}", "18", True),
    # units and text in the box
    ("\\boxed{18 \\text{ dollars}}", "18", True),
    ("\\boxed{18 apples}", "18", True),
    ("\\boxed{x = 18}", "18", True),
    ("\\boxed{90^\\circ}", "90", True),
    ("\\boxed{2x}", "2", False),
    ("\\boxed{x^2}", "2", False),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}", True),
    # nested braces and symbolic answers
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", True),
    ("\\boxed{\\sqrt{18}}", "3\\sqrt{2}", True),
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", True),
    ("\\boxed{2\\pi}", "\\pi", False),
    ("first \\boxed{3} then \\boxed{\\frac{{1}}{2}}", "\\frac{1}{2}", True),
    ("\\fbox{42}", "42", True),
    # intervals and tuples
    ("\\boxed{(1, 2)}", "(1,2)", True),
    ("\\boxed{(2, 1)}", "(1,2)", False),
    ("\\boxed{[0, 1)}", "[0,1)", True),
    ("\\boxed{(0, 1]}", "[0,1)", False),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    # extraction order: boxed, ####, "the answer is", last number
    ("Janet makes 9 * 2 = 18.\n#### 18", "18", True),
    ("I think the answer is 7. Check: 3 + 4 = 7", "7", True),
    ("3 + 4 = 7", "7", True),
    ("3 + 4 = 8", "7", False),
    # no answer at all, or a cut-off box
    ("I do not know.", "7", False),
    ("", "7", False),
    ("the value is \\boxed{7", "7", True),  # unclosed box falls back to the last number
    ("the value is \\boxed{", "7", False),
]


@pytest.mark.parametrize(("response", "gold", "expected"), CASES)
def test_grading_table(response: str, gold: str, expected: bool) -> None:
    assert grade(response, gold).correct is expected


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{\\frac{a}{b}} and later \\boxed{5}", "5"),
        (
            "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        ),
        ("x\n#### 1,234\nmore", "1,234"),
        ("So the final answer is: 12 apples.", "12 apples"),
        ("values 3, 4 and 5.", "5"),
        ("nothing here", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_grading_works_off_the_main_thread() -> None:
    """math-verify's signal timeouts fail in threads; the symbolic path must not."""
    symbolic = [case for case in CASES if "\\sqrt" in case[0] or "(1, 2)" in case[0]]
    assert symbolic

    def check(case: tuple[str, str, bool]) -> bool:
        assert threading.current_thread() is not threading.main_thread()
        return grade(case[0], case[1]).correct is case[2]

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert all(pool.map(check, symbolic))


def test_none_never_matches() -> None:
    assert not answers_match(None, "0")
    assert not answers_match("  ", "0")


@pytest.mark.parametrize("name", ["gsm8k", "math500"])
def test_gold_solutions_grade_as_correct(name: str) -> None:
    """Self-consistency: every reference solution must be graded correct on its own gold."""
    if resolve_data_dir() is None:
        pytest.skip("shared/data folder absent: set INFERTUNE_DATA_DIR to run this test")
    problems = load_problems(name)
    wrong = [p.id for p in problems if not grade(p.solution or "", p.answer).correct]
    assert wrong == [], f"{len(wrong)} of {len(problems)} gold solutions graded wrong"
