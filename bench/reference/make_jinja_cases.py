"""Renders small templates, one construct each, with Jinja2 set up as Hugging Face transformers renders chat
templates; the C# interpreter (src/LongCtx.Core/Text/Jinja) is held to the outputs.

Needs only python3 with jinja2 >= 3.1 (Debian's python3-jinja2 will do; no transformers):
    python3 bench/reference/make_jinja_cases.py          # writes tests/data/chat/jinja2-cases.json
Each case: template, vars (JSON), and either the rendered output or the error (its message, and whether the C#
message must equal it). strftime_now reads a fixed clock, written as "now".
"""
import datetime, json, os, sys
import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = datetime.datetime(2026, 1, 5, 14, 3, 7)


class AssistantTracker(Extension):
    """transformers' {% generation %} tag, as far as rendering goes: the body, unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def environment():
    """transformers' chat-template environment (utils/chat_template_utils.py, _compile_jinja_template)."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)
    return env


D = {"role": "user", "content": "hi", "n": 3, "nested": {"a": {"b": [1, 2]}}, "items": "key named items"}
L = [{"name": "a", "v": 1, "on": True}, {"name": "b", "v": 0, "on": False}, {"name": "c", "v": 2}]

# (name, template, vars, exact_error): exact_error marks error cases whose message the C# side must repeat.
CASES = [
    # whitespace control, trim_blocks, lstrip_blocks
    ("ws_block_lines", "a\n  {% if true %}\n  b\n  {% endif %}\nc", {}, None),
    ("ws_minus_both", "x  {%- if true -%}  y  {%- endif -%}  z", {}, None),
    ("ws_minus_var", "a  {{- ' b ' -}}  \n c", {}, None),
    ("ws_comment_minus", "a  {#- c -#}  b", {}, None),
    ("ws_comment_trim", "a {# c #}\nb", {}, None),
    ("ws_comment_lstrip", "a\n  {# c #}\nb", {}, None),
    ("ws_for_lines", "{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\nend", {}, None),
    ("ws_plus_lstrip", "x\n    {%+ if true %}y{% endif %}", {}, None),
    ("ws_plus_trim", "{% if true +%}\nz{% endif %}", {}, None),
    ("ws_var_no_trim", "{{ 1 }}\n{{ 2 }}\n", {}, None),
    ("ws_after_var_no_lstrip", "{{ 1 }}  {% if true %}x{% endif %}", {}, None),
    ("ws_tabs", "\t{% if true %}\t\n\tx\n\t{% endif %}\t\n", {}, None),
    ("ws_crlf", "a\r\nb {{ 'c' }}\r\n", {}, None),
    ("ws_first_line", "   {% if true %}x{% endif %}", {}, None),
    ("raw", "{% raw %}{{ not parsed }}{% endraw %}!", {}, None),
    ("raw_minus", "a {%- raw -%}  {{ x }}  {%- endraw -%} b", {}, None),
    # literals and how values print
    ("print_values", "{{ [1, 'a', none, true, 1.5, {'k': \"it's\"}, (1,), (1, 2), ()] }}", {}, None),
    ("print_none_bool", "{{ none }} {{ None }} {{ True }} {{ false }}", {}, None),
    ("floats", "{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1.5e-7 }} {{ 123.456 }} {{ 2.0 }} {{ 1_000 }}", {}, None),
    ("string_escapes", "{{ 'a\\nb\\tc\\u00e9\\x41\\\\d\\'e' }}|{{ \"q\\\"q\" }}|{{ 'x' 'y' }}", {}, None),
    ("string_repr", "{{ ['a\\nb', \"it's\", 'say \"hi\"', 'both \\' and \"'] }}", {}, None),
    ("dict_literal", "{{ {'a': 1, 'b': [2]} }} {{ {} }}", {}, None),
    # arithmetic
    ("arith", "{{ 3/2 }} {{ 4/2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2**10 }} {{ 2**-1 }} {{ 1.5*2 }} {{ 7.5//2 }} {{ -(3) }} {{ +4 }}", {}, None),
    ("arith_bool", "{{ true + 1 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }}", {}, None),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 'a' ~ 1 * 2 }} {{ 10 - 2 - 3 }}", {}, None),
    ("add_str_int", "{{ 'a' + 1 }}", {}, False),
    ("add_int_str", "{{ 1 + 'a' }}", {}, False),
    ("div_zero", "{{ 1 / 0 }}", {}, False),
    ("concat", "{{ 'a' ~ none ~ 1.0 ~ true ~ u ~ [1] }}", {}, None),
    # comparisons and logic
    ("compare", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ none == none }} {{ 1 == 1.0 }} {{ true == 1 }} {{ '1' == 1 }}", {}, None),
    ("compare_in", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' not in 'abc' }} {{ 'k' in u }} {{ 'role' in d }}", {"d": D}, None),
    ("compare_bad", "{{ 1 < 'a' }}", {}, False),
    ("in_bad", "{{ 1 in 'abc' }}", {}, False),
    ("logic", "{{ 0 or 'x' }} {{ '' and 1 }} {{ not none }} {{ 1 and 2 }} {{ none or [] }} {{ not 0 and 3 }}", {}, None),
    ("condexpr", "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if false }}] {{ 'a' if 0 else 'b' if 1 else 'c' }}", {}, None),
    # undefined
    ("undefined_soft", "[{{ u }}] {{ u is defined }} {{ u is undefined }} {{ u | default('d') }} {{ u | length }} {{ u ~ 'x' }} [{% for x in u %}{{ x }}{% endfor %}] {{ 'q' if u else 'r' }} {{ u == u }} {{ u is none }}", {}, None),
    ("undefined_attr", "{{ u.x }}", {}, True),
    ("undefined_key_chain", "{{ d.missing.y }}", {"d": D}, True),
    ("undefined_add", "{{ d.missing + 'a' }}", {"d": D}, True),
    ("undefined_call", "{{ nothing() }}", {}, True),
    ("undefined_element", "{{ [1][3].x }}", {}, True),
    ("none_attr", "[{{ none.x }}] {{ none.x is defined }}", {}, None),
    ("none_attr_chain", "{{ none.x.y }}", {}, True),
    ("default_boolean", "{{ '' | default('e') }}|{{ '' | default('e', true) }}|{{ none | d('n', boolean=true) }}|{{ 0 | default(5) }}", {}, None),
    # attributes and items
    ("attr_item", "{{ d.role }} {{ d['content'] }} {{ d.nested.a.b[1] }} {{ d['nested']['a']['b'][-1] }} {{ d.n + 1 }}", {"d": D}, None),
    ("dict_methods", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {{ d.get('n') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }} {{ d.keys() | list | length }} {{ d['items'] }}", {"d": {"a": 1, "b": 2, "items": 3}}, None),
    ("dict_item_is_method", "{{ d.items is callable }} {{ d['items'] }}", {"d": D}, None),
    ("slices", "{{ x[1:] }} {{ x[:-1] }} {{ x[::-1] }} {{ x[::2] }} {{ x[-2:] }} {{ x[1:3] }} {{ x[none:2] }} {{ x[5:] }} {{ x[3:1:-1] }}", {"x": [0, 1, 2, 3, 4]}, None),
    ("string_index", "{{ s[0] }} {{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s | length }} [{{ s[10] }}]", {"s": "h\u00e9llo \U0001F600"}, None),
    ("tuple_index", "{{ (1, 2, 3)[1] }} {{ (1, 2, 3)[1:] }}", {}, None),
    # string methods
    ("str_strip", "[{{ s.strip() }}] [{{ s.lstrip() }}] [{{ s.rstrip() }}] [{{ 'xxhixx'.strip('x') }}] [{{ '\\n\\nhi\\n'.strip('\\n') }}]", {"s": "  hi \t\n"}, None),
    ("str_split", "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'x</think>y</think>z'.split('</think>')[-1] }} {{ 'l1\\nl2\\r\\nl3'.splitlines() }}", {}, None),
    ("str_affix", "{{ s.startswith('<tool') }} {{ s.endswith('>') }} {{ s.startswith(('a', '<')) }} {{ s.endswith('x') }} {{ s.removeprefix('<tool') }}", {"s": "<tool_response>"}, None),
    ("str_case", "{{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ s.capitalize() }} {{ 'abc'.isalpha() }} {{ '12'.isdigit() }} {{ ' '.isspace() }}", {"s": "hello WORLD-x"}, None),
    ("str_find", "{{ s.find('l') }} {{ s.rfind('l') }} {{ s.find('z') }} {{ s.count('l') }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 1) }} {{ '-'.join(['a', 'b']) }}", {"s": "hello"}, None),
    ("str_format_missing", "{{ s.nosuch }}|{{ s.nosuch is defined }}", {"s": "x"}, None),
    # filters
    ("f_trim", "[{{ '  a b  ' | trim }}] [{{ 'xxaxx' | trim('x') }}] [{{ none | trim }}]", {}, None),
    ("f_length", "{{ [1, 2] | length }} {{ 'abc' | count }} {{ {'a': 1} | length }}", {}, None),
    ("f_items", "{% for k, v in d | items %}{{ k }}:{{ v }} {% endfor %}{{ u | items | list }}", {"d": {"x": 1, "y": [2]}}, None),
    ("f_selectattr", "{{ l | selectattr('on') | map(attribute='name') | list }} {{ l | rejectattr('on') | map(attribute='name') | join(',') }} {{ l | selectattr('v', 'equalto', 2) | list | length }} {{ l | selectattr('on', 'defined') | list | length }}", {"l": L}, None),
    ("f_select", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('>', 1) | list }} {{ [0, 1, '', 'a'] | select | list }} {{ ['a', 'code_interpreter', 'b'] | reject('equalto', 'code_interpreter') | join(', ') }}", {}, None),
    ("f_map", "{{ [1, 2] | map('string') | join('+') }} {{ l | map(attribute='v') | sum }} {{ [{'a': {'b': 1}}] | map(attribute='a.b') | list }} {{ [[1, 2], [3]] | map(attribute='0') | list }} {{ [{}] | map(attribute='x', default=5) | list }} {{ ['a', 'B'] | map('upper') | list }}", {"l": L}, None),
    ("f_join", "{{ [1, 'a', none] | join }} {{ l | join(', ', attribute='name') }} {{ 'abc' | join('-') }}", {"l": L}, None),
    ("f_first_last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'xyz' | first }} [{{ [] | first }}] {{ ([] | first) is defined }}", {}, None),
    ("f_case", "{{ 'aBc' | upper }} {{ 'aBc' | lower }} {{ 'hELLo wORLD' | capitalize }} {{ 'hello world-x (y' | title }}", {}, None),
    ("f_replace", "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 123 | replace('2', 'x') }}", {}, None),
    ("f_tojson", "{{ x | tojson }}", {"x": {"a": [1, 2.5, None, True, "\u00e9\n\u2028<>&'\"", "\x01"], "b": {}, "c": []}}, None),
    ("f_tojson_opts", "{{ x | tojson(indent=2) }}|{{ x | tojson(sort_keys=true) }}|{{ x | tojson(separators=(',', ':')) }}|{{ 'é' | tojson(ensure_ascii=true) }}|{{ x | tojson(indent=0) }}", {"x": {"b": [1, {"c": None}], "a": "z"}}, None),
    ("f_tojson_scalars", "{{ 1 | tojson }} {{ 1.0 | tojson }} {{ 'x' | tojson }} {{ none | tojson }} {{ false | tojson }} {{ [] | tojson }}", {}, None),
    ("f_tojson_undefined", "{{ u | tojson }}", {}, False),
    ("f_numbers", "{{ '42' | int }} {{ ' 7 ' | int + 1 }} {{ 'x' | int }} {{ 'x' | int(9) }} {{ 3.7 | int }} {{ '0x1A' | int(base=16) }} {{ '2.5' | float }} {{ 'y' | float }} {{ 3 | float }} {{ -3 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.567 | round(2) }} {{ 2.51 | round(1, 'floor') }} {{ 3 | round }}", {}, None),
    ("f_string_list", "{{ 12 | string + 'x' }} {{ 'ab' | list }} {{ none | string }} {{ (1, 2) | list }}", {}, None),
    ("f_sort", "{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'c'] | sort(case_sensitive=true) }} {{ [3, 1, 2] | sort(reverse=true) }} {{ l | sort(attribute='v') | map(attribute='name') | join }}", {"l": L}, None),
    ("f_misc", "{{ [1, 2, 1, 3] | unique | list }} {{ ['a', 'A'] | unique | list }} {{ [3, 1, 2] | max }} {{ ['b', 'A'] | min }} {{ 'abc' | reverse }} {{ [1, 2] | reverse | list }} {{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': 1, 'a': 2} | dictsort(by='value', reverse=true) }}", {}, None),
    ("f_indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'a\\nb' | indent('> ') }}", {}, None),
    ("f_escape_safe", "{{ '<a href=\\'x\\'>&\"' | e }} {{ '<b>' | safe }} {{ 'one two  three' | wordcount }}", {}, None),
    ("f_attr", "{{ {'k': 1} | attr('k') is defined }} {{ 'x' | attr('upper') is callable }}", {}, None),
    ("f_sum", "{{ [1, 2, 3] | sum }} {{ [1, 2] | sum(start=10) }} {{ [0.5, 0.25] | sum }}", {}, None),
    # tests
    ("tests_types", "{{ 'x' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ d is mapping }} {{ [] is mapping }} {{ [] is sequence }} {{ 'x' is iterable }} {{ d is iterable }} {{ 1 is iterable }} {{ none is none }} {{ u is iterable }} {{ u is sequence }} {{ range is callable }}", {"d": D}, None),
    ("tests_values", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'a' is in 'abc' }} {{ 2 is eq 2 }} {{ 2 is equalto 3 }} {{ 2 is ne 3 }} {{ 1 is lt 2 }} {{ 2 is ge 2 }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ none is sameas none }} {{ true is true }} {{ 0 is false }} {{ 'x' is not string }}", {}, None),
    ("test_negated_and", "{{ u is not defined and d is defined }} {{ not u is defined }}", {"d": D}, None),
    # statements
    ("if_elif", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}other{% endif %} {% endfor %}", {}, None),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %} {% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", {}, None),
    ("loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.cycle('o', 'e') }} {% endfor %}", {}, None),
    ("loop_filter", "{% for x in [1, 2, 3, 4] if x is even %}{{ loop.index }}/{{ loop.length }}:{{ x }} {% endfor %}", {}, None),
    ("loop_unpack", "{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }} {% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", {}, None),
    ("loop_nested", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {}, None),
    ("loop_break_continue", "{% for x in range(10) %}{% if x is odd %}{% continue %}{% endif %}{% if x > 6 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}, None),
    ("loop_changed", "{% for x in [1, 1, 2, 2, 1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}", {}, None),
    ("scope_loop_no_leak", "{% set x = 1 %}{% for i in range(2) %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}", {}, None),
    ("scope_loop_per_iteration", "{% for i in range(3) %}{% if i == 0 %}{% set y = 'a' %}{% endif %}[{{ y }}]{% endfor %}[{{ y }}]", {}, None),
    ("scope_if_leaks", "{% if true %}{% set z = 5 %}{% endif %}{{ z }}", {}, None),
    ("scope_override_var", "{% set messages = messages[1:] %}{{ messages | length }}", {"messages": [1, 2, 3]}, None),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for i in range(4) %}{% set ns.count = ns.count + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.missing is defined }}", {}, None),
    ("namespace_from_dict", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}", {}, None),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = [3, 4] %}{{ c }}{{ d }}", {}, None),
    ("set_block", "{% set body %}Hi {{ name }}!{% endset %}[{{ body }}]{% set up | upper %}x{% endset %}{{ up }}", {"name": "Ann"}, None),
    ("set_non_namespace", "{% set d.x = 1 %}", {"d": D}, False),
    ("macro", "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }} [{{ greet() }}]", {}, None),
    ("macro_recursive", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}", {}, None),
    ("macro_sees_template_vars", "{% set greeting = 'Hey' %}{% macro m() %}{{ greeting }} {{ who }}{% endmacro %}{{ m() }}", {"who": "you"}, None),
    ("macro_default_uses_param", "{% macro m(a, b=a * 2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(3) }}", {}, None),
    ("macro_result_is_string", "{% macro m() %}abc{% endmacro %}{% set r = m() %}{{ r | length }} {{ r is string }}", {}, None),
    ("macro_too_many", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}, False),
    ("filter_block", "{% filter upper %}ab{{ 'c' }}{% endfilter %}", {}, None),
    ("with_block", "{% with a = 1, b = 'x' %}{{ a }}{{ b }}{% endwith %}[{{ a }}]", {}, None),
    ("generation_tag", "{% generation %}kept {{ 1 }}{% endgeneration %}", {}, None),
    ("output_tuple", "{{ 1, 2 }}", {}, None),
    # globals
    ("range", "{{ range(3) | list }} {{ range(1, 5, 2) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}", {}, None),
    ("dict_global", "{{ dict(a=1, b='x') }} {{ dict({'c': 3}) }}", {}, None),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%A %B %-d %H:%M:%S %p %j %y') }}", {}, None),
    ("raise_exception", "{% if x %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}", {"x": True}, True),
    ("unsafe_append", "{{ x.append(1) }}", {"x": []}, True),
    ("unsafe_update", "{{ d.update({'a': 1}) }}", {"d": D}, True),
    # templates that do not parse
    ("syntax_unknown_tag", "{% frobnicate %}", {}, False),
    ("syntax_unknown_filter", "{{ 1 | frobnicate }}", {}, False),
    ("syntax_unknown_test", "{{ 1 is frobnicated }}", {}, False),
    ("syntax_unclosed_if", "{% if true %}x", {}, False),
    ("syntax_unclosed_string", "{{ 'abc }}", {}, False),
    ("syntax_break_outside_loop", "{% break %}", {}, False),
]


def main():
    env = environment()
    out = []
    for name, template, variables, exact_error in CASES:
        case = {"name": name, "template": template, "vars": variables}
        try:
            case["output"] = env.from_string(template).render(**variables)
        except Exception as e:  # jinja2 raises several types; all are reported the same way
            case["error"] = str(e)
            case["error_type"] = type(e).__name__
            case["exact_error"] = bool(exact_error)
        else:
            if exact_error is not None and exact_error is not False:
                sys.exit(f"case {name} was expected to fail")
        out.append(case)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    path = os.path.join(root, "tests", "data", "chat", "jinja2-cases.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"source": f"jinja2 {jinja2.__version__}, transformers' chat-template environment",
                   "now": NOW.isoformat(), "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} cases to {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
