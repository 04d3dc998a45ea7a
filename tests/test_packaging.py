"""The wheel built from the repo holds the package data and runs `woodseg demo` from a fresh venv."""

from __future__ import annotations

import fnmatch
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _package_data_files() -> list[str]:
    """Every file under src/woodseg that pyproject's package-data globs name, as wheel paths."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = cfg["tool"]["setuptools"]["package-data"]["woodseg"]
    root = REPO / "src" / "woodseg"
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and "__pycache__" not in rel and any(fnmatch.fnmatch(rel, g) for g in globs):
            out.append(f"woodseg/{rel}")
    return sorted(out)


def test_pyproject_declares_ranges_and_constraints_pin_them():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    deps = cfg["project"]["dependencies"]
    assert not [d for d in deps if "==" in d], "exact pins belong in constraints.txt"
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    for dep in deps + cfg["project"]["optional-dependencies"]["test"]:
        name = dep.split(">")[0].split("=")[0].split("[")[0].split("<")[0].strip().lower().replace("_", "-")
        if name != "woodseg":
            assert name in pins, f"{name} has no exact pin in constraints.txt"
    assert "pycocotools" in pins and "pydensecrf2" in pins
    assert "woodseg[crf,coco]" in cfg["project"]["optional-dependencies"]["test"]


@pytest.mark.slow
def test_wheel_installs_and_runs_demo_in_fresh_venv(tmp_path):
    src = tmp_path / "src-copy"  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    # --no-build-isolation: the build backend (setuptools) comes from this environment, no network needed
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    (wheel,) = wheels.glob("woodseg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in _package_data_files() if f not in names]
    assert not missing, f"package data left out of the wheel: {missing}"
    assert any(n.startswith("woodseg/configs/") and n.endswith(".yaml") for n in names)

    # A fresh venv that reuses this environment's installed dependencies (torch is GBs) through a .pth file,
    # but not its woodseg: the .pth appends those folders after the venv's own site-packages, and .pth files
    # inside them (an editable woodseg install) are not processed.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    venv_site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    (venv_site / "_woodseg_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    where = subprocess.run([str(py), "-c", "import woodseg; print(woodseg.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, check=True).stdout.strip()
    assert where.startswith(str(venv_site)), where
    woodseg = venv / "bin" / "woodseg"
    helped = subprocess.run([str(woodseg), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "demo" in helped.stdout, helped.stdout + helped.stderr
    out = tmp_path / "demo"
    tiny = ["demo.benchmark_scale=0.05", "demo.baseline_epochs=1", "demo.ood_threshold=0.0",
            "demo.ood_per_class=2", "demo.overlays=1", "demo.variants=[paper]", "train.epochs=1",
            "train.batch_size=8", "runtime.threads=1", "wood.K=4", "wood.ood_batch_size=4", "cam.scales=[1.0]",
            "model.channels_last=false"]
    demo = subprocess.run([str(woodseg), "demo", "-q", "--cache-dir", str(tmp_path / "cache"), f"out_dir={out}",
                           *tiny], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-4000:]
    assert (out / "report.html").is_file()  # the report template came from the wheel
    assert "W-OoD (paper)" in (out / "summary.json").read_text()
