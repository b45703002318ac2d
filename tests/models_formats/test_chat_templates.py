"""Chat-template inspection on templates shaped like the ones popular models ship."""

from __future__ import annotations

import pytest

from mlsec.analyzers.chat_template import template_issues

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
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
QWEN_TOOLS = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen, a helpful assistant.' }}"
    '{%- endif %}{{- "\\n\\n# Tools\\n\\n<tools>" }}{%- for tool in tools %}'
    '{{- "\\n" }}{{- tool | tojson }}{%- endfor %}{{- "\\n</tools>" }}{%- endif %}'
    '{%- for message in messages %}{%- if message.role == "assistant" and message.tool_calls %}'
    "{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}"
    "{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'<tool_call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}'
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
)
DEEPSEEK = (
    "{% set ns = namespace(is_first=false, is_tool=false, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{'<\uff5cUser\uff5c>' + message['content']}}"
    "{%- elif message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<\uff5cAssistant\uff5c>' + content + '<\uff5cend▁of▁sentence\uff5c>'}}"
    "{%- endif %}{%- endfor %}"
    "{% if add_generation_prompt %}{{'<\uff5cAssistant\uff5c><think>\\n'}}{% endif %}"
)
LLAMA31_DATE = (
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}"
    "{%- set date_string = '26 Jul 2024' %}{%- endif %}{%- endif %}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' }}"
    "{%- for m in messages|selectattr('role', 'equalto', 'user')|list %}{{ m.content }}"
    "{%- endfor %}{{ messages|map(attribute='content')|join('\\n') }}"
)


@pytest.mark.parametrize(
    "template",
    [CHATML, LLAMA3, GEMMA, QWEN_TOOLS, DEEPSEEK, LLAMA31_DATE],
    ids=["chatml", "llama3", "gemma", "qwen-tools", "deepseek", "llama31"],
)
def test_popular_templates_are_clean(template: str) -> None:
    assert template_issues(template) == []


@pytest.mark.parametrize(
    ("template", "kind", "name"),
    [
        ("{{ namespace.__init__.__globals__.os.popen('id').read() }}", "internals", "__globals__"),
        ("{{ joiner.__init__.__globals__ }}", "internals", "__globals__"),
        ("{% set c = ''.__class__ %}{{ c.mro()[1] }}", "internals", "__class__"),
        ("{{ x.mro }}", "internals", "mro"),
        ("{{ self._TemplateReference__context }}", "internals", "_TemplateReference__context"),
        (
            "{{ request|attr('application') }}{{ x|attr(y) }}",
            "dynamic",
            "attr(<computed attribute>)",
        ),
        ("{{ ('_' * 2) ~ 'class' ~ ('_' * 2) }}{{ 'x __glo' }}", "dynamic", "'x __glo'"),
    ],
)
def test_payload_shapes(template: str, kind: str, name: str) -> None:
    issues = template_issues(template)
    assert any(i.kind == kind and i.name == name for i in issues), issues


def test_never_raises_on_garbage() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from([*"{}%#()[]'\"._|~ abcx_0\n-+", "{{", "}}", "{%", "%}"])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(alphabet, max_size=60).map("".join))
    def check(source: str) -> None:
        for issue in template_issues(source):
            assert issue.kind in ("internals", "dynamic", "syntax")

    check()
