"""The documentation is checked, not trusted.

Every `jaxinv ...` line in a bash/console block of README.md and docs/*.md must parse with
the CLI's own parser, and every config it names must exist, load with its argument and accept
its `--config.FIELD=VALUE` overrides (but those naming other runs' workdirs); the MkDocs site must build with `--strict`.
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from jaxinv import cli

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELL_BLOCKS = {"bash", "console", "sh", "shell"}


def _command_lines(path):
  """(line number, text) of every `jaxinv ...` line in the file's shell blocks; a trailing
  backslash joins the next line."""
  lines, out, in_shell, in_block = path.read_text().splitlines(), [], False, False
  i = 0
  while i < len(lines):
    line = lines[i]
    fence = _FENCE.match(line.strip())
    if fence:
      if in_block:
        in_block = in_shell = False
      else:
        in_block, in_shell = True, fence.group(1).lower() in _SHELL_BLOCKS
      i += 1
      continue
    start = i
    text = line.strip()
    while text.endswith("\\") and i + 1 < len(lines):
      i += 1
      text = text[:-1] + " " + lines[i].strip()
    if in_shell:
      text = text[2:] if text.startswith("$ ") else text
      if text.startswith("jaxinv "):
        out.append((start + 1, text))
    i += 1
  return out


def _all_commands():
  return [(f"{path.relative_to(ROOT)}:{n}", text)
          for path in DOC_FILES for n, text in _command_lines(path)]


def test_the_docs_have_commands():
  found = _all_commands()
  assert len(found) >= 20, found
  # Both files the reader starts from carry commands.
  assert any(where.startswith("README.md") for where, _ in found)
  assert any(where.startswith("docs/index.md") for where, _ in found)


def _config_specs(argv):
  specs = []
  for j, arg in enumerate(argv):
    if arg == "--config" and j + 1 < len(argv):
      specs.append(argv[j + 1])
    elif arg.startswith("--config="):
      specs.append(arg.partition("=")[2])
  return specs


@pytest.mark.parametrize("where,line", _all_commands())
def test_documented_command_parses(where, line):
  argv = shlex.split(line, comments=True)[1:]
  rest, overrides = cli._split_overrides(argv)
  try:
    args = cli.build_parser().parse_args(rest)
  except SystemExit as stop:
    pytest.fail(f"{where}: `{line}` does not parse with `jaxinv`'s parser (exit {stop.code})")
  assert args.command
  for spec in _config_specs(rest):
    path, _, arg = spec.partition(":")
    assert (ROOT / path).is_file(), f"{where}: --config {spec}: no file {path}"
    if not re.search(r"[A-Z]{3,}", arg):  # not a placeholder such as DATASET,MODEL,SIZE
      from jaxinv import config as config_lib
      config = config_lib.load_config(str(ROOT / spec))
      config_lib.apply_overrides(config, overrides)
      try:
        config_lib.validate(config)
      except ValueError as err:  # only fields naming other runs' workdirs may fail: no runs here
        problems = [l for l in str(err).splitlines()[1:] if l.strip()]
        assert all(l.strip().startswith(("init_from=", "classifier_ensemble.workdirs="))
                   for l in problems), f"{where}: {err}"


def _quickstart() -> str:
  section = (ROOT / "README.md").read_text().split("## Python quickstart", 1)[1].split("\n## ", 1)[0]
  return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_quickstart_runs_as_written(capsys):
  exec(compile(_quickstart(), "README.md quickstart", "exec"), {})  # noqa: S102
  printed = capsys.readouterr().out
  accuracy = float(printed.split("target accuracy:")[1].split()[0])
  assert accuracy >= 0.9, printed
  assert "(80, 28, 28, 1)" in printed


def test_ci_runs_exactly_the_readme_test_command():
  readme = (ROOT / "README.md").read_text()
  ci = (ROOT / ".ci" / "run").read_text()
  command = next(line for line in ci.splitlines() if line.startswith("python3 -m pip install"))
  assert command in readme


def test_readme_is_short():
  assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_linked_files_exist():
  """Figures everywhere, and the README's links into docs/ (mkdocs checks the site's own)."""
  for path in DOC_FILES:
    base = ROOT if path.name == "README.md" else ROOT / "docs"
    pattern = r"\]\(([^)#\s:]+)(?:#[^)]*)?\)" if path.name == "README.md" else r"\]\(([^)#\s]+\.png)\)"
    for target in re.findall(pattern, path.read_text()):
      assert (base / target).exists(), f"{path.relative_to(ROOT)} links a missing file: {target}"


def test_mkdocs_build_strict(tmp_path):
  if importlib.util.find_spec("mkdocs") is None:
    pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
  env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
  done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                         str(tmp_path / "site"), "--config-file", str(ROOT / "mkdocs.yml")],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
  api = (tmp_path / "site" / "api" / "index.html").read_text()
  assert "make_inversion_step" in api  # mkdocstrings rendered the API reference
