"""MkDocs hooks: pages whose numbers come from files, never typed by hand.

- ``configuration.md`` is written at build time from the config schema, exactly as
  ``metarobust config`` prints it.
- In any page, a line ``<!-- results: benchmarks/results/FILE -->`` becomes that file's table:
  a ``.md`` result file is included (its headings demoted below the page's, the lines above
  its first table kept as lines: they name the command and machine), a ``.csv`` one becomes
  a Markdown table with floats at one decimal (``<!-- results: FILE digits=3 -->`` for
  more). A marker naming a file that does not exist fails the build.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- results: (?P<path>\S+)(?: digits=(?P<digits>\d))? -->$", re.M)
CONFIG_PAGE = "configuration.md"
CONFIG_INTRO = """# Configuration reference

Every field of a run's config: its key, its default and what it sets, in the groups of a
YAML config file. Printed by `metarobust config`; `metarobust config --config FILE` shows a
file's resolved values, and any field is overridden on the command line with
`--set key=value` (for example `--set maml.fast_lr=0.3`). Bad values are refused with one
line naming the key and what was expected.

```text
{fields}
```
"""


def on_files(files, config):
    """Add the configuration reference, generated from the schema."""
    from metarobust.config import Config, describe_fields

    content = CONFIG_INTRO.format(fields=describe_fields(Config))
    files.append(File.generated(config, CONFIG_PAGE, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    """Fill every results marker with its file's table."""
    return MARKER.sub(lambda m: results_table(m["path"], int(m["digits"] or 1)), markdown)


def results_table(path: str, digits: int) -> str:
    """The table of one result file, with a line saying where it came from."""
    file = ROOT / path
    if not file.is_file():
        raise PluginError(f"results marker: {path} does not exist")
    if file.suffix == ".md":
        table = included_markdown(file.read_text().strip())
    elif file.suffix == ".csv":
        table = markdown_table(file, digits)
    else:
        raise PluginError(f"results marker: {path} is not a .csv or .md file")
    return f"{table}\n\n<small>From `{path}`.</small>\n"


def included_markdown(text: str) -> str:
    """A result file's Markdown inside a page: ``#`` headings three levels down, and a hard
    line break after each line above the first table."""
    lines, above_table = [], True
    for line in text.splitlines():
        above_table = above_table and not line.startswith("|")
        if line.startswith("#"):
            line = "###" + line
        elif above_table and line.strip():
            line += "  "
        lines.append(line)
    return "\n".join(lines)


def markdown_table(file: Path, digits: int) -> str:
    """A CSV file as a Markdown table, floats rounded to ``digits`` decimals."""
    with file.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(value, digits) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(value: str, digits: int) -> str:
    """Integers as they are, other numbers at ``digits`` decimals, text as it is."""
    if re.fullmatch(r"-?\d+", value):
        return value
    try:
        return f"{float(value):.{digits}f}"
    except ValueError:
        return value
