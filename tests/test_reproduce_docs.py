"""The reproduction recipes' commands exist and their configs and overrides load: the docs cannot drift."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from woodseg.cli import app
from woodseg.config import load_config

DOCS = Path(__file__).resolve().parents[1] / "docs"
STAGES = {"train", "cam", "eval"}


def _commands(doc: str) -> list[list[str]]:
    """`woodseg ...` lines of the doc's bash blocks, continuation lines joined, shell variables expanded."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    env: dict[str, str] = {}
    out = []
    for line in lines:
        line = line.split(" #")[0].strip()
        m = re.fullmatch(r'([A-Z])="(.*)"', line)
        if m:
            env[m.group(1)] = m.group(2)
            continue
        if line.startswith("woodseg "):
            for k, v in env.items():
                line = line.replace(f"${k}", v)
            out.append(shlex.split(line))
    return out


@pytest.mark.parametrize("doc", ["reproduce-voc.md", "reproduce-coco.md"])
def test_every_command_parses_and_every_stage_config_loads(doc):
    commands = _commands(doc)
    assert len(commands) >= 4
    for argv in commands:
        assert argv[0] == "woodseg"
        args = argv[1:]
        # the command exists and accepts these options (--help stops before anything runs)
        sub = args[:2] if args[0] in ("data", "ood") else args[:1]
        helped = CliRunner().invoke(app, [*sub, "--help"])
        assert helped.exit_code == 0, f"{argv}: {helped.output}"
        for opt in (a.split("=")[0] for a in args if a.startswith("--")):
            assert opt in helped.output, f"{argv}: {opt} is not an option of `woodseg {' '.join(sub)}`"
        if args[0] in STAGES:
            i = args.index("-c")
            overrides = [a for a in args[i + 2:] if "=" in a and not a.startswith("--")]
            cfg = load_config(args[i + 1], overrides)
            assert cfg.data.root is not None


def test_coco_recipe_uses_the_official_variant_without_the_voc_only_exclusion():
    cfg = load_config("coco14_wood-official_r50")
    assert cfg.wood.variant == "official" and cfg.wood.exclude_class is None
    assert cfg.data.format == "coco" and cfg.data.heldout_split == "val2014"
    voc = load_config("voc12_wood-official_r50")
    assert voc.wood.exclude_class == "bottle"
