"""A YAML alias bomb ("billion laughs" of nested mappings) is refused quickly, at the alias that crosses the bound."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ftkit.recipe.load import MAX_ALIAS_EXPANSION, RecipeLoader

FTKIT = Path(sys.executable).with_name("ftkit")


def nested_aliases(levels: int, width: int = 9) -> str:
    """`a0` holds 2 pairs; each `aN` maps `width` keys to `*a(N-1)`, so it expands ~width**N times."""
    lines = ["a0: &a0 {k: v, l: w}"]
    for level in range(1, levels):
        pairs = ", ".join(f"k{j}: *a{level - 1}" for j in range(width))
        lines.append(f"a{level}: &a{level} {{{pairs}}}")
    return "\n".join(lines) + "\n"


def ftkit(*args: str) -> subprocess.CompletedProcess:
    # The timeout turns a runaway expansion into a failure instead of a hung (or swapping) suite.
    return subprocess.run([str(FTKIT), *args], capture_output=True, text=True, timeout=20)


def test_validate_refuses_an_alias_bomb_at_the_alias(tmp_path):
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(nested_aliases(25))  # 9**24 nodes once expanded
    assert len(recipe.read_bytes()) < 2500
    result = ftkit("validate", str(recipe))
    assert result.returncode == 2, result.stderr
    # Expanded sizes: a0=5, a1=1+9*6=55, a2=505, a3=4555. The aliases of a1..a3 add 45+495+4545=5085 nodes; a4's
    # second *a3 brings that to 5085+2*4555 > 10,000, so the error is on a4's line (line 5).
    assert f"{recipe}:5: alias *a3" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_refuses_an_alias_to_its_own_node(tmp_path):
    recipe = tmp_path / "loop.yaml"
    recipe.write_text("name: x\na: &x\n  b: *x\n")
    result = ftkit("validate", str(recipe))
    assert result.returncode == 2, result.stderr
    assert f"{recipe}:3: alias *x refers to a node that contains itself" in result.stderr


def test_aliases_under_the_bound_load_as_plain_yaml_does():
    text = nested_aliases(3)  # expands to 45 + 495 alias nodes, well under the bound
    assert MAX_ALIAS_EXPANSION > 540
    assert yaml.load(text, Loader=RecipeLoader) == yaml.safe_load(text)  # noqa: S506 - a SafeLoader subclass
