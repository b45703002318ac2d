"""Time of the chat-template analysis on hostile sizes and on real templates.

Run from the repository root: ``/work/venv/bin/python benchmarks/bench_templates.py``.
Inputs are generated under ``benchmarks/.work/templates`` (git-ignored):

- a GGUF whose chat template is 14 MB of Jinja tags (refused by size: MLS170),
- a ``tokenizer_config.json`` with a 1.9 MB template of the same tags, under the size limit
  but over the token limit (the parse stops at the limit: MLS170),
- a ``chat_template.jinja`` of 1.9 MB plain text (parsed and analysed whole),
- a 130-byte template whose loops unroll to 8 million steps (the step limit: MLS170),
- the real templates of ``fixtures/chat_templates``, each as a ``chat_template.jinja``
  (analysed whole, no finding).

Each line is one whole ``mlsec scan`` process on that input (wall time, the findings' rules).
``--source DIR`` runs the mlsec found in DIR instead, to compare with an older version.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / ".work" / "templates"
sys.path.insert(0, str(REPO))

TAGS = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] }}{% endfor %}"
UNROLL = (
    "{% for a in range(200) %}{% for b in range(200) %}{% for c in range(200) %}"
    "{{ x[a ~ b ~ c] }}{% endfor %}{% endfor %}{% endfor %}"
)


def build() -> dict[str, Path]:
    from fixtures.generate_formats import write_gguf

    cases: dict[str, Path] = {}
    folder = WORK / "gguf-14mb"
    if not folder.exists():
        folder.mkdir(parents=True)
        write_gguf(folder / "big.gguf", TAGS * (14_000_000 // len(TAGS)))
    cases["GGUF, 14 MB of tags"] = folder
    folder = WORK / "json-1.9mb"
    if not folder.exists():
        folder.mkdir(parents=True)
        template = TAGS * (1_900_000 // len(TAGS))
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    cases["tokenizer_config.json, 1.9 MB of tags"] = folder
    folder = WORK / "jinja-text"
    if not folder.exists():
        folder.mkdir(parents=True)
        (folder / "chat_template.jinja").write_text("plain text " * 172_000)
    cases["chat_template.jinja, 1.9 MB of text"] = folder
    folder = WORK / "unroll"
    if not folder.exists():
        folder.mkdir(parents=True)
        (folder / "chat_template.jinja").write_text(UNROLL)
    cases["chat_template.jinja, 8M-step loops"] = folder
    folder = WORK / "real"
    for template in sorted((REPO / "fixtures" / "chat_templates").glob("*.jinja")):
        (folder / template.stem).mkdir(parents=True, exist_ok=True)
        (folder / template.stem / "chat_template.jinja").write_bytes(template.read_bytes())
    count = len(list(folder.glob("*/chat_template.jinja")))
    cases[f"{count} real templates (fixtures/chat_templates)"] = folder
    return cases


MLSEC = [sys.executable, "-m", "mlsec"]
# ``--source DIR``: run the mlsec of another checkout (e.g. ``git archive`` of an older commit).
SOURCE_RUNNER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from mlsec.cli import main; main()"
)


def scan(path: Path) -> tuple[float, list[str]]:
    start = time.perf_counter()
    flags = ["--format", "json", "--offline", "--no-git", "--fail-on", "none"]
    out = subprocess.run(
        [*MLSEC, "scan", str(path), *flags],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    elapsed = time.perf_counter() - start
    try:
        findings = json.loads(out.stdout)["findings"]
    except (ValueError, KeyError):
        return elapsed, [f"no report: {out.stderr.strip()[-200:]}"]
    return elapsed, sorted({f"{f['rule_id']} {f['severity']}" for f in findings})


def main() -> None:
    if "--source" in sys.argv:
        MLSEC[1:] = ["-c", SOURCE_RUNNER, sys.argv[sys.argv.index("--source") + 1]]
    print(f"{'input':<42} {'seconds':>8}  findings")
    for label, path in build().items():
        seconds, rules = scan(path)
        print(f"{label:<42} {seconds:8.2f}  {', '.join(rules) or '-'}")


if __name__ == "__main__":
    main()
