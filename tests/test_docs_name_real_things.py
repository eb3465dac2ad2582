"""README.md and docs/*.md name only real things, and the real things are named there:

- every `NEXTBEST_*` variable the docs mention is one the code reads (a ServingSettings field, or
  a string literal in src/), and every variable the code reads is mentioned in the docs;
- every `nextbest COMMAND [SUBCOMMAND] --option` the docs show (in shell code blocks, in usage
  blocks, and in inline code) is a command of the Typer app with that option;
- every `python benchmarks/SCRIPT.py --option` the docs show runs a script that exists and
  defines that option.

tests/serving/test_settings_documented.py holds docs/serving.md's settings table to
ServingSettings; this file covers the rest of the docs and the other variables and commands."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import typer.main
from typer.core import TyperGroup

from nextbest.cli.main import app
from nextbest.serving.settings import ServingSettings

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "nextbest"

PREFIX = "NEXTBEST_"
# a name, or a pattern such as `NEXTBEST_RATE_LIMIT_*` or `NEXTBEST_*_KEYS`
VARIABLE = re.compile(r"(?<![A-Za-z0-9_])NEXTBEST_[A-Z0-9_*]*")
# "`NEXTBEST_WRITE_KEYS`, `_READ_KEYS`": a leading _ continues a name earlier on the line
FRAGMENT = re.compile(r"(?<![A-Za-z0-9_*])_[A-Z][A-Z0-9_]*(?![A-Za-z0-9_])")

SHELL_BLOCKS = {"bash", "sh", "shell", "console", "zsh"}
USAGE_BLOCKS = {"", "text"}  # unlabelled blocks: usage lines, `nextbest data prepare IN --out DIR`
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
INLINE = re.compile(r"(?<!`)`(nextbest [^`]+)`(?!`)")
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "$", "then", "do", "else", "{", "}", "!"}
REDIRECTIONS = {">", ">>", "<", "<<", ">&", "<&", "&>", "|&"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
LONG_OPTION = re.compile(r"^--[A-Za-z0-9][A-Za-z0-9_-]*")
SHORT_OPTION = re.compile(r"^-[A-Za-z]$")
HELP = frozenset({"--help"})  # click adds it to every command without listing it in .params


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# ---- the real things: variables the code reads, the CLI's commands and options ----


def variables_in_source() -> dict[str, str]:
    """The NEXTBEST_ variables src/ names as a whole string literal, and where:
    os.environ.get("NEXTBEST_HOME"), os.environ["NEXTBEST_DEMO"] = "1", ..."""
    found: dict[str, str] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"NEXTBEST_[A-Z0-9_]+", node.value)
            ):
                found.setdefault(node.value, f"{path.relative_to(SOURCE.parents[1])}:{node.lineno}")
    return found


def variables_the_code_reads() -> dict[str, str]:
    """Each NEXTBEST_ variable the code reads, and where: ServingSettings' fields (NEXTBEST_ +
    the field's name in capitals) and the variables src/ reads directly."""
    fields = {
        f"{PREFIX}{name.upper()}": f"ServingSettings.{name}"
        for name in ServingSettings.model_fields
    }
    return variables_in_source() | fields


class ClickParameter(Protocol):
    @property
    def opts(self) -> list[str]: ...

    @property
    def secondary_opts(self) -> list[str]: ...


class ClickCommand(Protocol):
    @property
    def params(self) -> Sequence[ClickParameter]: ...


@dataclass(frozen=True)
class Command:
    """A command of the CLI: its options and, for a group, its subcommands."""

    options: frozenset[str]
    subcommands: Mapping[str, Command] = field(default_factory=dict)
    group: bool = False


def describe(command: ClickCommand) -> Command:
    options = HELP | {
        opt
        for param in command.params
        for opt in [*param.opts, *param.secondary_opts]
        if opt.startswith("-")
    }
    if isinstance(command, TyperGroup):
        subcommands = {name: describe(sub) for name, sub in command.commands.items()}
        return Command(frozenset(options), subcommands, group=True)
    return Command(frozenset(options))


def the_cli() -> Command:
    return describe(typer.main.get_command(app))


# ---- what the docs name ----


@dataclass(frozen=True)
class Snippet:
    """A shell command as the docs show it: `lines` are (line number, text without comment)."""

    lines: tuple[tuple[int, str], ...]
    comments: tuple[tuple[int, str], ...] = ()

    @property
    def text(self) -> str:
        return " ".join(text for _, text in self.lines)

    def line_of(self, word: str) -> int:
        """The line `word` is on (the first line when no line has it as a word)."""
        pattern = re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])")
        for number, text in (*self.lines, *self.comments):
            if pattern.search(text):
                return number
        return self.lines[0][0]


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's code and its comment (a # that starts a word, outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :]
    return line, ""


def fenced_blocks(text: str) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """Each fenced code block's language and its (line number, line) pairs."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        i += 1
        if not opening:
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[tuple[int, str]] = []
        while i < len(lines) and not closing.match(lines[i]):
            line = lines[i]
            body.append((i + 1, line[min(indent, len(line) - len(line.lstrip(" "))) :]))
            i += 1
        i += 1
        yield opening["lang"].lower(), body


def block_snippets(lang: str, body: list[tuple[int, str]]) -> Iterator[Snippet]:
    """A block's commands: lines joined where they end with a backslash, and in a usage block
    also where the next line is indented (`nextbest data prepare IN --out DIR` + options)."""
    if lang not in SHELL_BLOCKS | USAGE_BLOCKS:
        return
    lines: list[tuple[int, str]] = []
    comments: list[tuple[int, str]] = []
    continued = False
    for number, raw in body:
        code, comment = split_comment(raw.removeprefix("$ ") if lang == "console" else raw)
        indented_usage = lang in USAGE_BLOCKS and raw[:1].isspace() and code.strip()
        if lines and not continued and not indented_usage:
            yield Snippet(tuple(lines), tuple(comments))
            lines, comments = [], []
        continued = code.endswith("\\")
        if lang in USAGE_BLOCKS and not lines and not code.lstrip().startswith("nextbest "):
            continue  # a usage block's other lines are output, not commands
        lines.append((number, code.removesuffix("\\").strip()))
        if comment:
            comments.append((number, comment))
    if lines:
        yield Snippet(tuple(lines), tuple(comments))


def inline_snippets(text: str, fenced: set[int]) -> Iterator[Snippet]:
    """`nextbest ...` in inline code in the prose."""
    for match in INLINE.finditer(text):
        first = text.count("\n", 0, match.start()) + 1
        if first in fenced:
            continue
        parts = match[1].split("\n")
        yield Snippet(tuple((first + k, part.strip()) for k, part in enumerate(parts)))


def tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: a string spanning lines, not a command of ours
        return text.split()


def commands_in(words: list[str]) -> Iterator[list[str]]:
    """The simple commands of a shell line: the words after any NAME=value assignments, up to
    the next separator or redirection."""
    current: list[str] = []
    at_start = True
    for word in [*words, ";"]:
        if word in SEPARATORS or word in REDIRECTIONS or word.startswith(("$(", "`")):
            if current:
                yield current
            current, at_start = [], word in SEPARATORS
            continue
        if at_start and ASSIGNMENT.match(word) and not current:
            continue
        if at_start:
            current.append(word)


def options_in(words: list[str]) -> Iterator[str]:
    """The option names among a command's words (`[--window-hours 24]` included)."""
    for word in words:
        word = word.strip("[]")
        if word == "--":
            return
        long = LONG_OPTION.match(word)
        if long:
            yield long[0]
        elif SHORT_OPTION.match(word):
            yield word


# ---- the checks ----


def check_cli(where: str, snippet: Snippet, words: list[str], cli: Command) -> Iterator[str]:
    command, path = cli, ["nextbest"]
    rest = words[1:]
    while command.group and rest and not rest[0].startswith("-"):
        name = rest.pop(0).strip("[]")
        if name not in command.subcommands:
            known = ", ".join(sorted(command.subcommands))
            yield (
                f"{where}:{snippet.line_of(name)}: '{' '.join(path)} {name}': "
                f"no command {name!r} (commands: {known})"
            )
            return
        command = command.subcommands[name]
        path.append(name)
    shown = " ".join(path)
    for option in options_in(rest):
        if option not in command.options:
            yield (
                f"{where}:{snippet.line_of(option)}: '{shown} {option}': no option {option} "
                f"(options: {', '.join(sorted(command.options))})"
            )
    # a comment on the command's lines that names options names options of this command:
    # `nextbest rules show --limit 15   # the newest version's; --version V, --category TEXT`
    for number, comment in snippet.comments:
        for option in options_in(comment.replace(",", " ").replace(";", " ").split()):
            if option not in command.options:
                yield (
                    f"{where}:{number}: '{shown} {option}' (in the comment): no option {option} "
                    f"(options: {', '.join(sorted(command.options))})"
                )


def check_script(where: str, snippet: Snippet, words: list[str]) -> Iterator[str]:
    """`python benchmarks/X.py --opt`: X.py exists and defines "--opt" (argparse)."""
    script = words[1].removeprefix("./")
    path = ROOT / script
    if not path.is_file():
        yield f"{where}:{snippet.line_of(words[1])}: '{' '.join(words[:2])}': no such script"
        return
    source = path.read_text()
    for option in options_in(words[2:]):
        if not re.search(rf"""["']{re.escape(option)}["']""", source):
            yield (
                f"{where}:{snippet.line_of(option)}: '{script} {option}': "
                f"no option {option} in {script}"
            )


def shown_commands(text: str) -> Iterator[tuple[Snippet, list[str]]]:
    """The `nextbest ...` and `python benchmarks/...` commands a markdown text shows, as the
    snippet they are in and their words."""
    fenced: set[int] = set()
    snippets: list[Snippet] = []
    for lang, body in fenced_blocks(text):
        fenced.update(number for number, _ in body)
        snippets.extend(block_snippets(lang, body))
    snippets.extend(inline_snippets(text, fenced))
    for snippet in snippets:
        for words in commands_in(tokens(snippet.text)):
            program = words[0].rsplit("/", 1)[-1]
            if program == "nextbest" or (
                re.fullmatch(r"python[0-9.]*", program)
                and len(words) > 1
                and words[1].removeprefix("./").startswith("benchmarks/")
            ):
                yield snippet, words


def command_problems(where: str, text: str, cli: Command) -> list[str]:
    """What the commands shown in a markdown text (named `where`) get wrong."""
    problems: list[str] = []
    for snippet, words in shown_commands(text):
        if words[0].endswith("nextbest"):
            problems.extend(check_cli(where, snippet, words, cli))
        else:
            problems.extend(check_script(where, snippet, words))
    return problems


def mentioned_variables(text: str, known: Mapping[str, str]) -> Iterator[tuple[int, str]]:
    """(line number, name or pattern) of each NEXTBEST_ variable a markdown text mentions.
    A fragment continues a name before it on the line: `_READ_KEYS` after
    `NEXTBEST_WRITE_KEYS` is NEXTBEST_READ_KEYS, and `_BROWSER_EVENTS_PER_ADDRESS` after
    `NEXTBEST_RATE_LIMIT_BROWSER_REQUESTS_PER_ADDRESS` is NEXTBEST_RATE_LIMIT_BROWSER_EVENTS_...
    (the known variable it makes; NEXTBEST + the fragment when it makes none)."""
    for number, line in enumerate(text.splitlines(), start=1):
        names = [m for m in VARIABLE.finditer(line) if m[0] != PREFIX]  # the bare prefix: none
        yield from ((number, match[0]) for match in names)
        for fragment in FRAGMENT.finditer(line):
            before = [m[0] for m in names if m.end() <= fragment.start()]
            if not before:
                continue
            stems = [before[-1][:i] for i, c in enumerate(before[-1]) if c == "_"]
            made = [stem + fragment[0] for stem in stems if stem + fragment[0] in known]
            yield number, made[-1] if made else "NEXTBEST" + fragment[0]


def variable_problems(where: str, text: str, known: Mapping[str, str]) -> list[str]:
    problems = []
    for number, name in mentioned_variables(text, known):
        if "*" in name:
            if not fnmatch.filter(known, name):
                problems.append(f"{where}:{number}: {name} matches no variable the code reads")
        elif name not in known:
            problems.append(
                f"{where}:{number}: {name} is not a variable the code reads "
                "(no ServingSettings field, no string literal in src/)"
            )
    return problems


def undocumented_variables(texts: Sequence[str], known: Mapping[str, str]) -> list[str]:
    mentioned = {
        name for text in texts for _, name in mentioned_variables(text, known) if "*" not in name
    }
    return [
        f"{name} (read at {where}) is in neither README.md nor docs/*.md"
        for name, where in sorted(known.items())
        if name not in mentioned
    ]


def test_every_variable_the_docs_name_is_read_by_the_code() -> None:
    known = variables_the_code_reads()
    problems = [
        problem
        for path in doc_files()
        for problem in variable_problems(str(path.relative_to(ROOT)), path.read_text(), known)
    ]
    assert not problems, "\n".join(problems)


def test_every_variable_the_code_reads_is_in_the_docs() -> None:
    texts = [path.read_text() for path in doc_files()]
    missing = undocumented_variables(texts, variables_the_code_reads())
    assert not missing, "\n".join(missing)


def test_every_command_and_option_the_docs_show_exists() -> None:
    cli = the_cli()
    texts = {str(path.relative_to(ROOT)): path.read_text() for path in doc_files()}
    assert any(shown_commands(texts["README.md"])), "found no command in README.md: the parser?"
    problems = [
        problem for where, text in texts.items() for problem in command_problems(where, text, cli)
    ]
    assert not problems, "\n".join(problems)


# ---- the checks can fail ----

BOGUS = """\
# Title

Run `nextbest serve --port 8000`, or `nextbest serve --bogus-inline`.
Set NEXTBEST_HOME, `NEXTBEST_WRITE_KEYS`, `_READ_KEYS`, `_NOPE_KEYS`, or NEXTBEST_NOT_A_THING.
Rates: `NEXTBEST_RATE_LIMIT_*`; keys: `NEXTBEST_*_KEYS`; nonsense: `NEXTBEST_ZZZ_*`.
`NEXTBEST_RATE_LIMIT_BROWSER_REQUESTS_PER_ADDRESS`, `_BROWSER_EVENTS_PER_ADDRESS`: browsers.

```bash
nextbest serve --port 8000 --workers 2
NEXTBEST_REDIS_URL=redis://x nextbest serve --bogus   # shared state
nextbest evaluate --model vsknn --train T.tsv \\
    --test X.tsv --not-an-option 3 -p k=1 -q
nextbest keywords no-such-subcommand --log x
nextbest frobnicate
nextbest rules show --limit 15   # --version V, --no-such-flag
.venv/bin/python benchmarks/bench_serving.py --write-docs --bogus-script-option
.venv/bin/python benchmarks/no_such_script.py --x
curl http://localhost/ --data-urlencode 'a=b'   # not ours: not checked
```

```
nextbest data prepare IN --out DIR [--gap-minutes 30]
    [--min-item-support 5] [--no-such-usage-option N]
```

```python
nextbest = "not a command: python blocks are not shell"  # --bogus-python
```
"""


def test_the_checks_name_file_line_and_the_unknown_thing() -> None:
    problems = command_problems("bogus.md", BOGUS, the_cli())
    problems += variable_problems("bogus.md", BOGUS, variables_the_code_reads())
    expected = [
        "bogus.md:3: 'nextbest serve --bogus-inline': no option --bogus-inline (options: ",
        "bogus.md:4: NEXTBEST_NOPE_KEYS is not a variable the code reads",
        "bogus.md:4: NEXTBEST_NOT_A_THING is not a variable the code reads",
        "bogus.md:5: NEXTBEST_ZZZ_* matches no variable the code reads",
        "bogus.md:10: 'nextbest serve --bogus': no option --bogus (options: ",
        "bogus.md:12: 'nextbest evaluate --not-an-option': no option --not-an-option (options: ",
        "bogus.md:12: 'nextbest evaluate -q': no option -q (options: ",
        "bogus.md:13: 'nextbest keywords no-such-subcommand': no command 'no-such-subcommand' "
        "(commands: ",
        "bogus.md:14: 'nextbest frobnicate': no command 'frobnicate' (commands: ",
        "bogus.md:15: 'nextbest rules show --no-such-flag' (in the comment): no option",
        "bogus.md:16: 'benchmarks/bench_serving.py --bogus-script-option': no option "
        "--bogus-script-option in benchmarks/bench_serving.py",
        "bogus.md:17: '.venv/bin/python benchmarks/no_such_script.py': no such script",
        "bogus.md:23: 'nextbest data prepare --no-such-usage-option': no option",
    ]
    for start in expected:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)
    # and nothing else: the real things in the same text (--port, -p, --version, --write-docs,
    # NEXTBEST_HOME, `_READ_KEYS`, `_BROWSER_EVENTS_PER_ADDRESS`, curl, the python block) pass
    assert len(problems) == len(expected), "\n".join(problems)


def test_a_bogus_option_added_to_the_real_readme_is_reported() -> None:
    cli = the_cli()
    text = (ROOT / "README.md").read_text()
    added = text + "\n```bash\nnextbest train --model pop \\\n    --bogus 1\n```\n"
    line = added.count("\n") - 1
    new = set(command_problems("README.md", added, cli)) - set(
        command_problems("README.md", text, cli)
    )
    assert [p.split(" (options: ")[0] for p in new] == [
        f"README.md:{line}: 'nextbest train --bogus': no option --bogus"
    ]


def test_variables_read_but_not_documented_are_reported() -> None:
    in_source = variables_in_source()
    assert in_source.get("NEXTBEST_HOME", "").startswith("src/nextbest/"), in_source
    known = variables_the_code_reads()
    missing = undocumented_variables([BOGUS], known)
    assert "NEXTBEST_HOME" not in " ".join(missing)
    assert any(m.startswith("NEXTBEST_DEMO (read at ") for m in missing), missing
    assert any(m.startswith("NEXTBEST_TORCH_THREADS (read at ServingSettings") for m in missing)
