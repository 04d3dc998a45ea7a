"""The README quotes only numbers its result files hold (benchmarks/readme_numbers.py)."""

from __future__ import annotations

from pathlib import Path

from helpers import benchmark_script

ROOT = Path(__file__).resolve().parents[1]
readme_numbers = benchmark_script("readme_numbers")


def _write(tmp_path: Path, readme: str, result: str) -> Path:
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "t.md").write_text(result)
    (tmp_path / "README.md").write_text(readme)
    return tmp_path / "README.md"


RESULT = "| run | mIoU |\n|---|---|\n| base | 21.8 +- 0.4 |\n| wood | 25.9 +- 0.6 |\n| speed | 66.7 |\n"


def test_agreeing_readme_passes(tmp_path):
    readme = ("# R\n\n## Table 1\n([results](benchmarks/results/t.md))\n\n| run | mIoU | paper (VOC) |\n|---|---|---|\n"
              "| base | 21.8 ± 0.4 | 49.5 |\n| wood | **25.9 ± 0.6** | 53.3 |\n| speed | 66.7 (+1.0) | |\n"
              "| gain | +4.1 | |\n| paper, vs F_in | 3.8 | |\n")
    assert readme_numbers.check(_write(tmp_path, readme, RESULT), tmp_path) == []


def test_a_changed_mean_or_std_is_caught(tmp_path):
    readme = "## T\n[r](benchmarks/results/t.md)\n\nW-OoD reaches 25.9 ± 0.7, F_in 21.4 ± 0.4.\n"
    problems = readme_numbers.check(_write(tmp_path, readme, RESULT), tmp_path)
    assert [p.quoted for p in problems] == ["25.9 ± 0.7", "21.4 ± 0.4"]


def test_a_table_number_missing_from_its_file_is_caught(tmp_path):
    readme = "## T\n[r](benchmarks/results/t.md)\n\n| path | img/s |\n|---|---|\n| train | 66.8 |\n| eval | **6.67** |\n"
    problems = readme_numbers.check(_write(tmp_path, readme, RESULT), tmp_path)
    assert [p.quoted for p in problems] == ["66.8", "6.67"]


def test_measured_numbers_without_a_result_file_are_caught(tmp_path):
    readme = ("## Demo\n\n| run | mIoU |\n|---|---|\n| base | 21.4 |\n| epochs | 5 |\n\n"
              "## Other\nabout 25.9 ± 0.6 here\n")
    problems = readme_numbers.check(_write(tmp_path, readme, RESULT), tmp_path)
    assert [(p.section, p.quoted) for p in problems] == [("Demo", "21.4"), ("Other", "25.9 ± 0.6")]
    assert "links no result file" in str(problems[0])



def test_the_readme_agrees_with_its_result_files():
    problems = readme_numbers.check(ROOT / "README.md", ROOT)
    assert not problems, "\n".join(map(str, problems))
