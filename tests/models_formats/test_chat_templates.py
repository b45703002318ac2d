"""Chat templates judged by what their name lookups can reach (parsed and folded, never rendered).

Benign inputs are real templates of published models (fixtures/chat_templates, licences in its
README) and templates shaped like the popular ones; hostile ones are built here, one per
folding technique and per access form.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate_formats import write_gguf
from mlsec.analyzers import chat_template
from mlsec.analyzers.chat_template import TemplateIssue, template_issues
from tests.models_pickle.conftest import plain_zip, tar_bytes

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "chat_templates"
REAL_TEMPLATES = sorted(REAL.glob("*.jinja"))
Scan = Callable[..., Any]

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}"
    "{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
LLAMA31_TOOLS = (
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}"
    "{%- set date_string = '26 Jul 2024' %}{%- endif %}{%- endif %}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' }}"
    "{%- for t in tools %}{{- t | tojson(indent=4) }}{%- endfor %}"
    "{%- for m in messages|selectattr('role', 'equalto', 'user')|list %}{{ m.content }}"
    "{%- endfor %}{{ messages|map(attribute='content')|join('\\n') }}"
    '{%- for tool_call in message.tool_calls %}{{- \'{"name": "\' + tool_call.function.name }}'
    "{%- for arg_name, arg_val in tool_call.arguments | items %}{{- arg_name ~ '=' ~ arg_val }}"
    "{%- endfor %}{%- endfor %}"
)
COMMAND_R_STYLE = (
    "{% macro json_to_python_type(json_spec) %}{% set basic_type_map = {'string': 'str',"
    " 'number': 'float', 'integer': 'int', 'boolean': 'bool'} %}"
    "{%- if basic_type_map[json_spec.type] is defined %}{{- basic_type_map[json_spec.type] }}"
    "{%- elif json_spec.type == 'array' %}{{- 'List[' +  json_to_python_type(json_spec.items)"
    " + ']'}}{%- else %}{{- 'Any' }}{%- endif %}{% endmacro %}"
    "{% for tool in tools %}{% for key, param in tool.parameter_definitions.items() %}"
    "{{ key }}: {{ json_to_python_type(param) }}{% set param_fields = tool.fields %}"
    "{{ param_fields[key] }}{% endfor %}{% endfor %}"
)
# Shaped like AI21 Jamba's: macros kept in a list and called through an index.
MACRO_TABLE = (
    "{% macro docs(d) %}{{ d|tojson }}{% endmacro %}{% macro knobs(k) %}{{ k }}{% endmacro %}"
    "{% set calls = [] %}{% set params = [] %}{% if use_docs %}{% set calls = calls + [docs] %}"
    "{% set params = params + [[documents]] %}{% endif %}{% if use_knobs %}"
    "{% set calls = calls + [knobs] %}{% set params = params + [[knobs_value]] %}{% endif %}"
    "{% for i in range(calls|length) %}{% if i > 0 %}{{ '\\n' }}{% endif %}"
    "{{ calls[i](*params[i]) }}{% endfor %}"
)
# Text that merely contains double underscores (printed, compared, split on): never a name.
DUNDER_TEXT = (
    "{{ '__end__' }}{% set marker = '__init__' %}{{ marker ~ '\\n' }}"
    "{% if message.content.startswith('__start__') %}{{ message.content.split('__sep__')[0] }}"
    "{% endif %}{{ {'__meta__': 1} | tojson }}{{ 'x __globals__ y' }}"
)


@pytest.mark.parametrize("path", REAL_TEMPLATES, ids=[p.stem for p in REAL_TEMPLATES])
def test_real_templates_are_clean(path: Path) -> None:
    assert template_issues(path.read_text(encoding="utf-8")) == []


def test_there_are_real_templates() -> None:
    assert len(REAL_TEMPLATES) >= 12


@pytest.mark.parametrize(
    "template",
    [CHATML, GEMMA, LLAMA31_TOOLS, COMMAND_R_STYLE, MACRO_TABLE, DUNDER_TEXT],
    ids=["chatml", "gemma", "llama31-tools", "command-r-style", "macro-table", "dunder-text"],
)
def test_template_shapes_are_clean(template: str) -> None:
    assert template_issues(template) == []


def _internals(source: str) -> set[str]:
    return {i.name for i in template_issues(source) if i.kind == "internals"}


# Each way of building '__class__' from literals, used as a subscript key.
@pytest.mark.parametrize(
    "key",
    [
        "'__cla' ~ 'ss__'",
        "'__cla' + 'ss__'",
        "['__cla', 'ss__']|join",
        "['', 'class', '']|join('__')",
        "'%sclass%s'|format('__', '__')",
        "'%c%cclass%c%c' % (95, 95, 95, 95)",
        "'%(u)s%(u)sclass%(u)s%(u)s'|format(u='__'[0])",
        "'{0}class{0}'.format('__')",
        "'{u}class{u}'.format(u='__')",
        "'XXclassXX'|replace('X', '_')",
        "'XXclassXX'.replace('X', '_')",
        "'__ssalc__'|reverse",
        "'__ssalc__'[::-1]",
        "'a__class__b'[1:-1]",
        "'__CLASS__'|lower",
        "'__CLASS__'.lower()",
        "'__Class__'|lower|string",
        "dict(__class__=1)|list|first",
        "dict(__class__=1)|first",
        "['a', '__class__']|last",
        "('_' * 2) ~ 'class' ~ ('_' * 2)",
        "'class'|center(9, '_')",
        "'a __class__ b'.split()[1]",
        "['__cla', 'ss__']|join|string|trim",
        "('__class__'|tojson)[1:-1]",
        "{'k': '__class__'}['k']",
        "{'k': '__class__'}.get('k')",
        "'__cla' ~ ('ss__' if flag else 'ss__')",
    ],
)
def test_folded_subscript_keys(key: str) -> None:
    assert _internals(f"{{{{ x[{key}] }}}}") == {"__class__"}


@pytest.mark.parametrize(
    "template",
    [
        "{% set a = '__cla' %}{% set b = a ~ 'ss__' %}{{ x[b] }}",
        "{% set a %}__cla{% endset %}{{ x[a ~ 'ss__'] }}",
        "{% set a %}{% filter lower %}__CLASS__{% endfilter %}{% endset %}{{ x[a] }}",
        "{% set ns = namespace(k='__cla') %}{% set ns.k = ns.k ~ 'ss__' %}{{ x[ns.k] }}",
        "{% set ns = namespace(k='') %}{% for p in ['__cla', 'ss__'] %}"
        "{% set ns.k = ns.k ~ p %}{% endfor %}{{ x[ns.k] }}",
        "{% set ns = namespace(k='') %}{% for c in '__class__' %}"
        "{% set ns.k = ns.k ~ c %}{% endfor %}{{ x|attr(ns.k) }}",
        "{% for a, b in [('__cla', 'ss__')] %}{{ x[a ~ b] }}{% endfor %}",
        "{% for k, v in {'__class__': 1}.items() %}{{ x[k] }}{% endfor %}",
        "{% macro n(a) %}{{ a }}ss__{% endmacro %}{{ x[n('__cla')] }}",
        "{% macro n() %}__cla{% endmacro %}{{ x[n() ~ 'ss__'] }}",
        "{% macro n(a='__cla') %}{{ x[a ~ 'ss__'] }}{% endmacro %}",
        "{% with k = '__cla' ~ 'ss__' %}{{ x[k] }}{% endwith %}",
        "{% if y %}{% set k = '__class__' %}{% else %}{% set k = 'a' %}{% endif %}{{ x[k] }}",
        "{% set u = '%c'|format(95) %}{{ x[u ~ u ~ 'class' ~ u ~ u] }}",
        "{% set k = '__cla' ~ 'ss__' %}{% for m in messages %}{% set k = 'x' %}{% endfor %}"
        "{{ x[k] }}",
        "{% set a, b = '__cla', 'ss__' %}{{ x[a ~ b] }}",
        "{% set k %}{% for c in ['__cla', 'ss__'] %}{{ c }}{% endfor %}{% endset %}{{ x[k] }}",
        "{% for c in ['__class__', 'b'] %}{{ x[loop.previtem] }}{% endfor %}",
        "{% for i in [1] %}{{ x[loop.cycle('__class__')] }}{% endfor %}",
        "{% for m in messages %}{{ x[loop.cycle('__cla' ~ 'ss__')] }}{% endfor %}",
        "{% set c = cycler('__class__') %}{{ x[c.next()] }}{{ y[c.current] }}",
        "{% set j = joiner('__class__') %}{{ x[j()] }}",
        "{% macro m() %}{{ x[caller()] }}{% endmacro %}{% call m() %}__class__{% endcall %}",
        "{% block b %}__class__{% endblock %}{{ x[self.b()] }}",
        "{% block b %}__cla{% endblock %}{{ x[self['b']() ~ 'ss__'] }}",
        "{% macro m() %}{{ x[varargs[0]] }}{% endmacro %}{{ m('__class__') }}",
        "{% macro m() %}{{ x[kwargs.k] }}{% endmacro %}{{ m(k='__class__') }}",
        "{% macro m(a) %}{{ x[a] }}{% endmacro %}{{ m(a='__cla' ~ 'ss__') }}",
        "{{ x[['__class__', 'zzz']|min] }}",
        "{{ x[['__class__', 'a']|random] }}",
        "{{ x[['__class__'][loop.index0]] }}",
        "{{ x[{'a': '__class__'}[key]] }}",
        "{% set u = ({}.items()|string)[4] %}{{ x[u ~ u ~ 'class' ~ u ~ u] }}",
        "{% set d = {} %}{% do d.update({'k': '__class__'}) %}{{ x[d['k']] }}",
        "{% set l = [] %}{% do l.append('__cla' ~ 'ss__') %}{{ x[l[0]] }}",
        "{% set l = ['a', '__class__'] %}{% set _ = l.pop(0) %}{{ x[l[0]] }}",
        "{% set ns = namespace(l=[]) %}{% set _ = ns.l.append('__class__') %}{{ x[ns.l.pop(0)] }}",
    ],
    ids=[
        "set",
        "set-block",
        "filter-block",
        "namespace",
        "loop-literal-list",
        "loop-over-chars",
        "loop-unpacking",
        "dict-items",
        "macro-argument",
        "macro-output",
        "macro-default",
        "with",
        "branches",
        "printf-char",
        "loop-keeps-outer",
        "tuple-set",
        "loop-output",
        "loop-previtem",
        "loop-cycle",
        "loop-cycle-over-input",
        "cycler",
        "joiner",
        "caller",
        "self-block",
        "self-block-item",
        "macro-varargs",
        "macro-kwargs",
        "macro-named-argument",
        "min",
        "random",
        "unknown-index-into-literal-list",
        "unknown-key-into-literal-dict",
        "dict-view-text",
        "dict-update",
        "list-append",
        "list-pop",
        "namespace-list-queue",
    ],
)
def test_folded_through_variables(template: str) -> None:
    assert _internals(template) == {"__class__"}


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("{{ x.__class__ }}", {"__class__"}),
        ("{{ x['__class__'] }}", {"__class__"}),
        ("{{ x|attr('__class__') }}", {"__class__"}),
        ("{{ x|attr('\\x5f\\x5fclass\\x5f\\x5f') }}", {"__class__"}),
        ("{{ x|attr('__cla' ~ 'ss__') }}", {"__class__"}),
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", {"__init__", "__globals__"}),
        ("{{ lipsum.__globals__['os'] }}", {"__globals__"}),
        ("{{ lipsum['__glo' ~ 'bals__'] }}", {"__globals__"}),
        ("{{ self._TemplateReference__context }}", {"_TemplateReference__context"}),
        ("{{ joiner.__init__.__globals__ }}", {"__init__", "__globals__"}),
        ("{{ namespace.__init__.__globals__ }}", {"__init__", "__globals__"}),
        ("{{ ''.__class__.mro()[1].__subclasses__() }}", {"__class__", "mro", "__subclasses__"}),
        ("{{ x.gi_frame.f_back.f_globals }}", {"gi_frame", "f_back", "f_globals"}),
        ("{{ [x]|map(attribute='__init__.__globals__')|list }}", {"__init__", "__globals__"}),
        ("{{ [x]|map('attr', '__cla' ~ 'ss__')|list }}", {"__class__"}),
        ("{{ [x]|map('at' ~ 'tr', '__class__')|list }}", {"__class__"}),
        ("{{ [x]|sort(attribute='__cla' ~ 'ss__') }}", {"__class__"}),
        ("{{ [x]|selectattr('__class__') }}", {"__class__"}),
        ("{{ [x]|join('', attribute='__class__') }}", {"__class__"}),
        ("{{ '{0.__class__}'.format(x) }}", {"__class__"}),
        ("{{ ('{0.__cla' ~ 'ss__}').format(x) }}", {"__class__"}),
        ("{% set ns = namespace() %}{% set ns.__class__ = 1 %}", {"__class__"}),
        ("{{ x[('__glo', '__cla')|last ~ 'ss__'] }}", {"__class__"}),
    ],
)
def test_access_forms(template: str, names: set[str]) -> None:
    assert _internals(template) == names


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("{{ x['con' ~ 'tent'] }}", "'content'"),
        ("{{ x|attr('ro' ~ 'le') }}", "'role'"),
        ("{{ x|attr(messages[0].content) }}", "messages[...].content (chosen at render time)"),
        ("{% set n = messages[0].content %}{{ ()|attr(n) }}", "n (chosen at render time)"),
        ("{{ messages|map(attribute=m.name)|list }}", "m.name (chosen at render time)"),
        ("{{ messages|map(f)|list }}", "map(<filter chosen at render time>)"),
        # Render-time keys on the template's own objects (not data) reach attributes.
        ("{{ lipsum[messages[0].content] }}", "messages[...].content (chosen at render time)"),
        ("{% set ns = namespace(a=1) %}{{ ns[key] }}", "key (chosen at render time)"),
        # Characters sliced out of the text of the template's own objects: unfoldable, hostile.
        (
            "{% set u = (lipsum|string)[18] %}{{ x[u ~ u ~ 'class' ~ u ~ u] }}",
            "u ~ u ~ 'class' ~ u ~ u (computed from the template's objects)",
        ),
        (
            "{% set u = (()|select|string)[24] %}{{ x|attr(u * 2 ~ 'class' ~ u * 2) }}",
            "u * 2 ~ 'class' ~ u * 2 (computed from the template's objects)",
        ),
        (
            "{{ x[['a', '__class__']|reject('eq', 'a')|first] }}",
            "['a', '__class__']|reject|first (computed from the template's objects)",
        ),
    ],
)
def test_computed_names_that_are_not_internal(template: str, name: str) -> None:
    issues = template_issues(template)
    assert [(i.kind, i.name) for i in issues] == [("dynamic", name)]


@pytest.mark.parametrize(
    "template",
    [
        "{{ message['content'] }}{{ param_fields[key] }}{{ tool.function }}",
        "{% set k = 'content' %}{{ m[k] }}",
        "{% for k in ['role', 'content'] %}{{ m[k] }}{% endfor %}",
        "{{ x|attr('application') }}",
        "{{ messages[ns.index - 1]['content'] }}{{ x[loop.index0] }}",
        "{{ m[key ~ '_id'] }}{{ m[key|lower] }}",
        "{% for f, label in [('maximum', 'Max')] %}{{ param[f] }}{% endfor %}",
        "{% set roles = ['user', 'assistant'] %}{{ x[roles[loop.index0 % 2]] }}",
        "{% set names = {'user': 'human'} %}{{ tokens[names[message.role]] }}",
        "{{ x[strftime_now('%d')] }}{{ x[messages|length - 1] }}",
        "{% set ns = namespace(i=0) %}{% for m in messages %}{% set ns.i = ns.i + 1 %}"
        "{% endfor %}{{ messages[ns.i] }}",
        "{% set q = namespace(ids=[]) %}{% for m in messages %}{% set _ = q.ids.append(m.id) %}"
        "{% endfor %}{{ calls[q.ids.pop(0)] }}",
    ],
)
def test_names_from_data_or_literals_are_nothing(template: str) -> None:
    assert template_issues(template) == []


def test_folding_records_how() -> None:
    (issue,) = template_issues("{{ x['__cla' ~ 'ss__'] }}")
    assert issue == TemplateIssue("internals", "__class__", 1, "'__cla' ~ 'ss__'")


# -- bounds: each one reached is reported, with the limit ---------------------------------------
def _bounds(source: str) -> list[str]:
    return [i.name for i in template_issues(source) if i.kind == "bound"]


def test_size_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_template, "MAX_TEMPLATE_BYTES", 100)
    assert _bounds("{{ m }}" * 20) == ["140 bytes, over the 100-byte limit on chat templates"]


def test_token_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_template, "MAX_TOKENS", 50)
    assert _bounds("{{ m }}" * 20) == ["over 50 Jinja tokens (the parse limit)"]


def test_step_bound_keeps_literal_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_template, "MAX_STEPS", 15)
    issues = template_issues("{{ m }}" * 30 + "{{ x.__class__ }}")
    assert [(i.kind, i.name) for i in issues] == [
        ("bound", "over 15 folding steps (the interpreter limit)"),
        ("internals", "__class__"),
    ]


def test_nesting_bound() -> None:
    chain = " + ".join(["'a'"] * 400)
    assert _bounds(f"{{{{ x[{chain}] }}}}") == [
        "nested over 250 levels deep (the interpreter limit)"
    ]
    assert _bounds("{% if a %}" * 600 + "{% endif %}" * 600) == [
        "nested too deeply for the Jinja parser"
    ]


def test_folding_bound_on_a_name() -> None:
    assert _bounds("{{ x[('_' * 100000)[:2] ~ 'class__'] }}") == [
        "a name computed at line 1 is too long or has too many possible values to fold"
        " (limits 65536 characters, 32 values)"
    ]
    fork = "{% if c %}{% set k = k ~ 'b' %}{% else %}{% set k = k ~ 'c' %}{% endif %}"
    many = "{% set k = 'a' %}" + fork * 8 + "{{ x[k] }}"  # 256 possible names
    assert _bounds(many) == [
        "a name computed at line 1 is too long or has too many possible values to fold"
        " (limits 65536 characters, 32 values)"
    ]
    # A long value that is never used as a name is no bound.
    assert template_issues("{{ '_' * 100000 }}") == []


def test_fourteen_megabyte_template_is_refused_fast() -> None:
    unit = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + m['content'] }}{% endfor %}"
    source = unit * (14_000_000 // len(unit))
    start = time.perf_counter()
    bounds = _bounds(source)
    assert time.perf_counter() - start < 2
    assert bounds == [f"{len(source)} bytes, over the 2097152-byte limit on chat templates"]


def test_token_dense_template_under_the_size_limit_is_bounded() -> None:
    unit = "{% for m in messages %}{{ m['role'] ~ m['content'] }}{% endfor %}"
    source = unit * (1_900_000 // len(unit))
    start = time.perf_counter()
    assert _bounds(source) == ["over 100000 Jinja tokens (the parse limit)"]
    assert time.perf_counter() - start < 10  # ~1 s alone; generous for a loaded CI machine


def test_never_raises_on_garbage() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(
        [*"{}%#()[]'\"._|~ abcx_0\n-+*", "{{", "}}", "{%", "%}", "set ", "for ", " in ", "~"]
    )

    @settings(max_examples=300, deadline=None)
    @given(st.lists(alphabet, max_size=60).map("".join))
    def check(source: str) -> None:
        for issue in template_issues(source):
            assert issue.kind in ("internals", "dynamic", "syntax", "bound")

    check()


# -- one analysis for every place a template lives ---------------------------------------------
def rules_of(report: Any) -> list[tuple[str, str, str, str | None]]:
    return sorted((f.rule_id, f.severity.value, f.path, f.member) for f in report.findings)


EVIL = "{{ x['__glo' ~ 'bals__'] }}"
BENIGN = (REAL / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")


def test_every_template_file_form(tmp_path: Path, scan_formats: Scan) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "tokenizer_config.json").write_text(json.dumps({"chat_template": EVIL}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "chat_template": [
                    {"name": "default", "template": BENIGN},
                    {"name": "tool_use", "template": EVIL},
                ]
            }
        )
    )
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "chat_template.json").write_text(json.dumps({"chat_template": EVIL}))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "chat_template.jinja").write_text(EVIL)
    (tmp_path / "d" / "additional_chat_templates").mkdir()
    (tmp_path / "d" / "additional_chat_templates" / "rag.jinja").write_text(EVIL)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "processor_config.json").write_text(json.dumps({"chat_template": EVIL}))
    (tmp_path / "e" / "chat_template.jinja").write_bytes(b"{{ x.__class__ }}\x00")  # not text
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "chat_template.jinja").write_bytes(b"{{ m }}\xff\xfe")
    (tmp_path / "f" / "page.jinja").write_text(EVIL)  # a web template, not a chat template
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "tool_chat_template_mistral.jinja").write_text(EVIL)  # vLLM's naming
    (tmp_path / "g" / "preprocessor_config.json").write_text(json.dumps({"chat_template": EVIL}))
    (tmp_path / "g" / "base.html.j2").write_text(EVIL)
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS143", "critical", "a/tokenizer_config.json", "chat_template"),
        ("MLS143", "critical", "b/tokenizer_config.json", "chat_template.tool_use"),
        ("MLS143", "critical", "c/chat_template.json", "chat_template"),
        ("MLS143", "critical", "d/additional_chat_templates/rag.jinja", "chat_template.rag"),
        ("MLS143", "critical", "d/chat_template.jinja", "chat_template"),
        ("MLS143", "critical", "e/chat_template.jinja", "chat_template"),
        ("MLS143", "critical", "e/processor_config.json", "chat_template"),
        ("MLS143", "critical", "g/preprocessor_config.json", "chat_template"),
        (
            "MLS143",
            "critical",
            "g/tool_chat_template_mistral.jinja",
            "chat_template.tool_chat_template_mistral",
        ),
        ("MLS144", "medium", "f/chat_template.jinja", "chat_template"),
    ]
    message = next(f for f in report.findings if f.path == "a/tokenizer_config.json").message
    assert "__globals__ from '__glo' ~ 'bals__'" in message


def test_gguf_every_named_template(tmp_path: Path, scan_formats: Scan) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "multi.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_chat_template(
        [
            {"name": "default", "template": BENIGN},
            {"name": "tool_use", "template": EVIL},
            {"name": "rag", "template": "{{ x|attr('ro' ~ 'le') }}"},
        ]
    )
    writer.add_tensor("w", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS143", "critical", "multi.gguf", "tokenizer.chat_template.tool_use"),
        ("MLS145", "high", "multi.gguf", "tokenizer.chat_template.rag"),
    ]


def test_templates_inside_archives(tmp_path: Path, scan_formats: Scan) -> None:
    gguf_path = tmp_path / "build.gguf"
    write_gguf(gguf_path, EVIL)
    members = {
        "hf/tokenizer_config.json": json.dumps(
            {"chat_template": [{"name": "x", "template": EVIL}]}
        ),
        "hf/chat_template.jinja": EVIL,
        "hf/ok/tokenizer_config.json": json.dumps({"chat_template": BENIGN}),
    }
    repo = tmp_path / "repo"
    repo.mkdir()
    encoded = {name: text.encode() for name, text in members.items()}
    (repo / "snap.zip").write_bytes(plain_zip(encoded, zipfile.ZIP_DEFLATED))
    (repo / "snap.tgz").write_bytes(
        tar_bytes({**encoded, "m.gguf": gguf_path.read_bytes()}, mode="w:gz")
    )
    report = scan_formats(
        repo,
        analyzers=(
            "mlsec.models.containers:PickleModelsAnalyzer",
            "mlsec.models.checks:ModelFormatsAnalyzer",
        ),
    )
    assert rules_of(report) == [
        ("MLS143", "critical", "snap.tgz", "hf/chat_template.jinja!chat_template"),
        ("MLS143", "critical", "snap.tgz", "hf/tokenizer_config.json!chat_template.x"),
        ("MLS143", "critical", "snap.tgz", "m.gguf!tokenizer.chat_template"),
        ("MLS143", "critical", "snap.zip", "hf/chat_template.jinja!chat_template"),
        ("MLS143", "critical", "snap.zip", "hf/tokenizer_config.json!chat_template.x"),
    ]


def test_bound_findings_name_the_limit(
    tmp_path: Path, scan_formats: Scan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_template, "MAX_TOKENS", 50)
    (tmp_path / "chat_template.jinja").write_text("{{ m }}" * 20)
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS170", "high", "chat_template.jinja", "chat_template")]
    assert "over 50 Jinja tokens" in report.findings[0].message


@pytest.mark.parametrize("path", REAL_TEMPLATES[:4], ids=[p.stem for p in REAL_TEMPLATES[:4]])
def test_real_templates_clean_in_every_container(
    tmp_path: Path, scan_formats: Scan, path: Path
) -> None:
    text = path.read_text(encoding="utf-8")
    write_gguf(tmp_path / "m.gguf", text)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": text}))
    (tmp_path / "chat_template.jinja").write_text(text)
    assert scan_formats(tmp_path).findings == ()


def test_every_value_of_a_repeated_key_is_analysed(tmp_path: Path, scan_formats: Scan) -> None:
    # Python's json keeps the last value; readers that keep the first would render EVIL.
    text = f'{{"chat_template": {json.dumps(EVIL)}, "chat_template": {json.dumps(BENIGN)}}}'
    (tmp_path / "tokenizer_config.json").write_text(text)
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS143", "critical", "tokenizer_config.json", "chat_template")]


def test_sort_attribute_lists_are_split_on_commas() -> None:
    assert _internals("{{ [x]|sort(attribute='name,__class__') }}") == {"__class__"}
    assert _internals("{{ [x]|sort(attribute='name,' ~ '__cla' ~ 'ss__') }}") == {"__class__"}
