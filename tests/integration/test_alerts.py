# The shipped Prometheus alerts and Grafana dashboard (etc/prometheus,
# etc/grafana): promtool checks the rules and runs their unit tests, the
# dashboard has the structure Grafana needs, and every metric and label an
# alert or a panel names is one a real sshtund exports.
#
# promtool is Prometheus's own (Debian's prometheus package; scripts/check
# installs it): without it these tests fail, never skip. The YAML files are
# read with a small loader of the block style they are written in, checked
# against PyYAML where it is installed, so that PyYAML is not needed.

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import sshtund_testlib as tl

RULES = os.path.join(tl.SRCDIR, "etc", "prometheus", "sshtund-alerts.yml")
RULE_TESTS = os.path.join(tl.SRCDIR, "etc", "prometheus", "sshtund-alerts.test.yml")
DASHBOARD = os.path.join(tl.SRCDIR, "etc", "grafana", "sshtund-dashboard.json")

# Series that are not sshtund's: Prometheus makes `up` for every target.
NOT_EXPORTED_OK = {"up"}
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Labels whose values are the cluster's own (node names), not a vocabulary
# sshtund defines: their names are checked, their values are not.
FREE_LABELS = {"node", "version"}
# Alerts that need per-node series (the rules' comments say so); every other
# alert works with admin.metrics_per_node = false.
NEEDS_PER_NODE = {"SshtundNodeDown", "SshtundNodeDegraded", "SshtundHostKeyMismatch",
                  "SshtundNodeFlapping", "SshtundChannelOpensQueueing"}


def promtool():
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(path, os.X_OK):
        raise tl.HarnessError("promtool is missing: apt-get install --no-install-recommends prometheus "
                              "(scripts/check does)")
    return path


# --- YAML, the block style the rule files use ------------------------------------

class YamlSubsetError(ValueError):
    pass


def _yaml_scalar(text, where):
    """One inline value: quoted, a flow sequence or mapping of scalars, or
    plain (resolved as YAML 1.1 core types would be for what we write)."""
    t = text.strip()
    if t.startswith("'"):
        if len(t) < 2 or not t.endswith("'"):
            raise YamlSubsetError(f"{where}: unterminated single-quoted string")
        return t[1:-1].replace("''", "'")
    if t.startswith('"'):
        if len(t) < 2 or not t.endswith('"') or re.search(r'(?<!\\)(?:\\\\)*\\"$', t[1:]):
            raise YamlSubsetError(f"{where}: double-quoted string not closed on its line")
        escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/"}
        out, i, body = [], 0, t[1:-1]
        while i < len(body):
            if body[i] == "\\":
                if i + 1 >= len(body) or body[i + 1] not in escapes:
                    raise YamlSubsetError(f"{where}: unsupported escape in {t!r}")
                out.append(escapes[body[i + 1]])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if t.startswith("["):
        if not t.endswith("]"):
            raise YamlSubsetError(f"{where}: flow sequence not closed on its line")
        inner = t[1:-1].strip()
        return [_yaml_scalar(x, where) for x in _split_flow(inner, where)] if inner else []
    if t.startswith("{"):
        if not t.endswith("}"):
            raise YamlSubsetError(f"{where}: flow mapping not closed on its line")
        inner = t[1:-1].strip()
        out = {}
        for item in (_split_flow(inner, where) if inner else []):
            k, sep, v = item.partition(": ")
            if not sep:
                raise YamlSubsetError(f"{where}: flow mapping item {item!r}")
            out[_yaml_scalar(k, where)] = _yaml_scalar(v, where)
        return out
    if t in ("", "~", "null"):
        return None
    if t in ("true", "false"):
        return t == "true"
    if re.fullmatch(r"[-+]?\d+", t):
        return int(t)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?", t):
        return float(t)
    if t[0] in "&*!|>%@`" or " #" in t:
        raise YamlSubsetError(f"{where}: unsupported plain scalar {t!r}")
    return t


def _split_flow(inner, where):
    items, cur, quote = [], "", None
    for ch in inner:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "[{":
            raise YamlSubsetError(f"{where}: nested flow collections are not supported")
        elif ch == ",":
            items.append(cur)
            cur = ""
            continue
        cur += ch
    items.append(cur)
    return [x.strip() for x in items]


def _strip_comment(text):
    """'value  # comment' -> 'value', minding quotes."""
    quote, escaped = None, False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


_KEY = re.compile(r"^('(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"|[^'\"\s#\-][^:#]*?|-[^\s:#][^:#]*?):(?:\s+|$)(.*)$")


def load_yaml(text, name="yaml"):
    """Block mappings and sequences, quoted and plain scalars, flow
    collections of scalars on one line, and | / |- literal blocks: what
    sshtund's rule files use. Anything else is an error, not a guess."""
    lines = text.split("\n")

    def significant(i):
        while i < len(lines):
            s = lines[i].strip()
            if s and not s.startswith("#"):
                return i
            i += 1
        return i

    def indent_of(line):
        if "\t" in line[:len(line) - len(line.lstrip())]:
            raise YamlSubsetError(f"{name}: tab in indentation")
        return len(line) - len(line.lstrip(" "))

    def node(i, min_indent):
        i = significant(i)
        if i >= len(lines) or indent_of(lines[i]) < min_indent:
            return None, i
        ind = indent_of(lines[i])
        content = lines[i][ind:]
        if content == "-" or content.startswith("- "):
            return sequence(i, ind)
        if _KEY.match(_strip_comment(content)):
            return mapping(i, ind)
        value = _yaml_scalar(_strip_comment(content), f"{name}:{i + 1}")
        nxt = significant(i + 1)
        if nxt < len(lines) and indent_of(lines[nxt]) > ind:
            raise YamlSubsetError(f"{name}:{nxt + 1}: multi-line plain scalars are not supported")
        return value, i + 1

    def sequence(i, ind):
        out = []
        while True:
            i = significant(i)
            if i >= len(lines) or indent_of(lines[i]) != ind:
                return out, i
            content = lines[i][ind:]
            if not (content == "-" or content.startswith("- ")):
                return out, i
            if content.strip() == "-":
                value, i = node(i + 1, ind + 1)
            else:
                # "- key: value": the rest of the line is the item's first
                # line, indented where it stands
                rest = content[2:]
                lines[i] = " " * (ind + 2 + len(rest) - len(rest.lstrip(" "))) + rest.lstrip(" ")
                value, i = node(i, ind + 1)
            out.append(value)

    def block(i, ind, chomp, where):
        body, j = [], i
        block_indent = None
        while j < len(lines):
            line = lines[j]
            if line.strip() == "":
                body.append("")
                j += 1
                continue
            li = indent_of(line)
            if li <= ind:
                break
            if block_indent is None:
                block_indent = li
            if li < block_indent:
                raise YamlSubsetError(f"{where}: literal block less indented than its first line")
            body.append(line[block_indent:])
            j += 1
        while body and body[-1] == "":
            body.pop()
        s = "\n".join(body)
        if chomp == "|" and s:
            s += "\n"
        return s, j

    def mapping(i, ind):
        out = {}
        while True:
            i = significant(i)
            if i >= len(lines) or indent_of(lines[i]) != ind:
                return out, i
            content = _strip_comment(lines[i][ind:])
            if content == "-" or content.startswith("- "):
                return out, i
            m = _KEY.match(content)
            where = f"{name}:{i + 1}"
            if not m:
                raise YamlSubsetError(f"{where}: expected 'key: value', got {content!r}")
            key = _yaml_scalar(m.group(1), where)
            if key in out:
                raise YamlSubsetError(f"{where}: duplicate key {key!r}")
            rest = m.group(2).strip()
            if rest in ("|", "|-"):
                out[key], i = block(i + 1, ind, rest, where)
            elif rest and rest[0] in "|>":
                raise YamlSubsetError(f"{where}: block scalar {rest!r} is not supported")
            elif rest:
                out[key] = _yaml_scalar(rest, where)
                i += 1
            else:
                nxt = significant(i + 1)
                if nxt < len(lines) and indent_of(lines[nxt]) == ind and \
                        (lines[nxt][ind:] == "-" or lines[nxt][ind:].startswith("- ")):
                    out[key], i = sequence(nxt, ind)
                else:
                    out[key], i = node(i + 1, ind + 1)

    value, i = node(0, 0)
    i = significant(i)
    if i < len(lines):
        raise YamlSubsetError(f"{name}:{i + 1}: unexpected {lines[i].strip()!r}")
    return value


def load_yaml_file(path):
    with open(path) as f:
        text = f.read()
    value = load_yaml(text, os.path.basename(path))
    try:
        import yaml  # the reference, where installed: the subset loader must agree
    except ImportError:
        return value
    assert value == yaml.safe_load(text), f"{path}: the test's YAML loader disagrees with PyYAML"
    return value


def alert_rules():
    """Every alerting rule of the rules file, in order."""
    doc = load_yaml_file(RULES)
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert rules and all("alert" in r for r in rules), "only alerting rules are expected"
    return rules


# --- PromQL: the metric names and label matchers an expression uses ----------------

_PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                    "and", "or", "unless", "atan2", "inf", "nan"}
_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
_GRAFANA_VAR = r'\$\{[^}]*\}|\$\w+|\[\[[\w:]+\]\]'
_TOKEN = re.compile(r"(?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:[a-zA-Z]+\d*)*)"
                    r"|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?P<other>\S)")


def promql_metric_names(expr):
    """The metric names in a PromQL expression (Grafana's $variables
    allowed): identifiers that are not followed by '(' (functions and
    aggregations), not keywords, and not label names inside {} or in
    by/without/on/ignoring/group_left/group_right lists."""
    s = re.sub(_GRAFANA_VAR, " ", expr)
    s = re.sub(_STRING, '""', s)
    s = re.sub(r"\{[^{}]*\}", " ", s)
    while True:  # ranges and subqueries, innermost first
        t = re.sub(r"\[[^\[\]]*\]", " ", s)
        if t == s:
            break
        s = t
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s,
               flags=re.IGNORECASE)
    if re.search(r"[{}\[\]]", s):
        raise ValueError(f"unbalanced braces or brackets in {expr!r}")
    names = set()
    tokens = list(_TOKEN.finditer(s))
    for k, m in enumerate(tokens):
        name = m.group("ident")
        if not name or name.lower() in _PROMQL_KEYWORDS:
            continue
        nxt = tokens[k + 1].group(0) if k + 1 < len(tokens) else ""
        if nxt == "(":
            continue  # a function or an aggregation
        names.add(name)
    return names


_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{((?:" + _STRING + r"|[^{}\"'`])*)\}")
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(" + _STRING + r")\s*,?")


def promql_matchers(expr):
    """(metric, label, op, value) for each label matcher of a selector that
    names its metric: metric{label op "value", ...}."""
    out = []
    for m in _SELECTOR.finditer(expr):
        metric, body, pos = m.group(1), m.group(2), 0
        if metric.lower() in _PROMQL_KEYWORDS:
            continue  # "by {…}" is no selector; nothing we write looks like it
        while pos < len(body.rstrip()):
            mm = _MATCHER.match(body, pos)
            if not mm:
                raise ValueError(f"cannot read the matchers of {m.group(0)!r}")
            quoted = mm.group(3)
            value = quoted[1:-1] if quoted[0] == "`" else \
                re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), quoted[1:-1])
            out.append((metric, mm.group(1), mm.group(2), value))
            pos = mm.end()
    return out


def promql_grouping_labels(expr):
    """The label names of every by/without/on/ignoring/group_left/group_right
    list in a PromQL expression."""
    s = re.sub(_STRING, '""', expr)
    out = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", s,
                         re.IGNORECASE):
        out.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return out


def template_queries(text):
    """The PromQL of every `query` in a Prometheus annotation template,
    e.g. {{ with printf `sshtund_x{job=%q}` $labels.job | query }}."""
    out = []
    for action in re.findall(r"\{\{(.*?)\}\}", text, re.S):
        if not re.search(r"\bquery\b", action):
            continue
        raw = re.findall(r"`([^`]*)`", action)
        assert raw, f"write template queries as `raw strings` so that the test can read them: {action!r}"
        out.extend(re.sub(r"%[sdv]", "x", q.replace("%q", '"x"')) for q in raw)
    return out


def label_values_metric(query):
    """The series selector of a Grafana label_values(SELECTOR, LABEL)
    variable query, or None for label_values(LABEL)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", query, re.S)
    if m:
        return m.group(1), m.group(2)
    m = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", query)
    if m:
        return None, m.group(1)
    raise AssertionError(f"unexpected variable query {query!r}")


def test_promql_metric_names_extractor():
    cases = {
        'up{job="sshtund"} == 0': {"up"},
        'histogram_quantile(0.99, sum by (le) (rate(sshtund_stream_open_seconds_bucket'
        '{job="$job", instance=~"$instance"}[$__rate_interval])))': {"sshtund_stream_open_seconds_bucket"},
        'sum without (state) (sshtund_nodes{state=~"up|degraded"}) == 0\nand on (job, instance)\n'
        'sum without (state) (sshtund_nodes) > 0': {"sshtund_nodes"},
        'max without (state) (sshtund_node_state{state=~"up|x"}) == 0': {"sshtund_node_state"},
        'a / on (instance) group_left (version) b_info unless ignoring(code) c offset 5m': {"a", "b_info", "c"},
        'a * on (node) group_left c': {"a", "c"},
        'rate(x_total[5m:30s] @ end()) > bool 1e3 OR y AND z': {"x_total", "y", "z"},
        'sum(rate(x{code=~"5..", by="on(job)"}[1h30m])) by (code) / 0x1F': {"x"},
        'increase(sshtund_reconnects_total[1h]) > 3 * sshtund_pool_size': {"sshtund_reconnects_total",
                                                                            "sshtund_pool_size"},
        'time() - process_start_time_seconds{instance=~"${instance:regex}"}': {"process_start_time_seconds"},
        'count by (version) (sshtund_build_info) > Inf and NaN < -Inf': {"sshtund_build_info"},
        '{__name__="x"}': set(),
        'ns:metric:rate5m{a="b"} + on() vector(1)': {"ns:metric:rate5m"},
        'topk(5, sum by (node) (rate(a[2m])))': {"a"},
    }
    for expr, want in cases.items():
        assert promql_metric_names(expr) == want, expr
    assert promql_grouping_labels('sum by (le, code) (a) / on(job) group_left b without(x)') == \
        {"le", "code", "job", "x"}
    assert promql_matchers('sum(x{a="1", b=~"u|v", c!="w\\"q"}) by (d) / y{e!~`z`}') == [
        ("x", "a", "=", "1"), ("x", "b", "=~", "u|v"), ("x", "c", "!=", 'w"q'), ("y", "e", "!~", "z")]
    assert template_queries("{{ with printf `a{b=%q}` $labels.b | query }}{{ . | first | label `c` }}") == \
        ['a{b="x"}']
    assert label_values_metric('label_values(sshtund_build_info{job="$job"}, instance)') == \
        ('sshtund_build_info{job="$job"}', "instance")


def test_yaml_loader_reads_what_pyyaml_reads():
    text = ("# c\na: 1\nb:\n  - x: 'it''s'\n    y: \"q\\\"\" # c\n  -\n    z: [a, 'b c']\n"
            "c: |-\n  l1\n\n  l2\nd: |\n  k\ne: {k: v}\nf: []\ng:\n- 1\n- 2\nh: cp-1:9464\n")
    assert load_yaml(text) == {"a": 1, "b": [{"x": "it's", "y": 'q"'}, {"z": ["a", "b c"]}],
                               "c": "l1\n\nl2", "d": "k\n", "e": {"k": "v"}, "f": [],
                               "g": [1, 2], "h": "cp-1:9464"}
    with pytest.raises(YamlSubsetError):
        load_yaml("a: >\n  folded\n")


# --- promtool -----------------------------------------------------------------------

def test_promtool_check_rules():
    r = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "SUCCESS" in out and "FAILED" not in out, out


def test_promtool_test_rules():
    # from another directory: the test file names its rules relative to itself
    with tempfile.TemporaryDirectory() as cwd:
        r = subprocess.run([promtool(), "test", "rules", RULE_TESTS], capture_output=True, text=True,
                           timeout=120, cwd=cwd)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "SUCCESS" in out and "FAILED" not in out, out


def test_every_alert_is_tested_firing_and_not_firing():
    tests = load_yaml_file(RULE_TESTS)
    assert tests["rule_files"] == [os.path.basename(RULES)]
    fires, silent = set(), set()
    for case in tests["tests"]:
        for t in case.get("alert_rule_test") or []:
            (fires if t.get("exp_alerts") else silent).add(t["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), f"alerts never seen firing in {RULE_TESTS}"
    assert names - silent == set(), f"alerts never checked not to fire in {RULE_TESTS}"
    assert (fires | silent) - names == set(), "tests of alerts that do not exist"


def test_alerts_tell_the_on_call_what_to_do():
    tests = load_yaml_file(RULE_TESTS)
    for r in alert_rules():
        what = r["alert"]
        assert r.get("labels", {}).get("severity") in ("critical", "warning"), what
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert isinstance(ann.get(key), str) and ann[key].strip(), (what, key)
        assert re.search(r"\bsshtunctl [a-z]", ann["runbook"]), (what, "runbook without sshtunctl")
        assert set(ann) == {"summary", "description", "runbook"}, (what, sorted(ann))
    # rendered: an alert about one node names it where the on-call reads
    seen = 0
    for case in tests["tests"]:
        for t in case.get("alert_rule_test") or []:
            for a in t.get("exp_alerts") or []:
                node = a["exp_labels"].get("node")
                if not node:
                    continue
                seen += 1
                ann = a["exp_annotations"]
                assert node in ann["summary"] and node in ann["description"], (t["alertname"], ann)
                assert re.search(rf"\bsshtunctl [a-z ]+ {re.escape(node)}\b", ann["runbook"]), \
                    (t["alertname"], ann["runbook"])
    assert seen >= 5


def _comment_above(text, alert):
    """The comment lines just above '- alert: NAME' (the first such rule)."""
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if re.fullmatch(rf"\s*- alert: {alert}\s*", ln))
    block = []
    for ln in reversed(lines[:i]):
        if not ln.strip().startswith("#"):
            break
        block.append(ln.strip().lstrip("#").strip())
    return " ".join(reversed(block))


def test_rules_say_which_alerts_need_per_node_series():
    with open(RULES) as f:
        text = f.read()
    names = {r["alert"] for r in alert_rules()}
    assert NEEDS_PER_NODE <= names
    for name in names:
        says = "Needs per-node series" in _comment_above(text, name)
        assert says == (name in NEEDS_PER_NODE), (name, _comment_above(text, name))
    header = text.split("groups:", 1)[0]
    for name in names:
        assert name in header, f"the header's per-node paragraph does not mention {name}"


# --- the dashboard ----------------------------------------------------------------------

def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_panels(dash):
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])  # inside collapsed rows


def dashboard_expressions(dash):
    """(where, PromQL) of every panel target, annotation and variable."""
    out = []
    for p in all_panels(dash):
        for t in p.get("targets", []):
            out.append((f"panel {p['id']} {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for a in dash["annotations"]["list"]:
        if a.get("expr"):
            out.append((f"annotation {a['name']!r}", a["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            selector, _ = label_values_metric(q)
            if selector:
                out.append((f"variable {v['name']}", selector))
    return out


def test_dashboard_structure():
    dash = load_dashboard()
    assert isinstance(dash.get("title"), str) and dash["title"]
    assert isinstance(dash.get("uid"), str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dash["uid"])
    assert isinstance(dash.get("schemaVersion"), int) and 36 <= dash["schemaVersion"] <= 41
    assert "id" not in dash or dash["id"] is None, "an exported id ties the file to one Grafana"

    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", ds
    node = variables.get("node")
    assert node and node["type"] == "query", node
    q = node["query"]["query"] if isinstance(node["query"], dict) else node["query"]
    assert label_values_metric(q)[1] == "node", q
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, v["name"]
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            assert v.get("definition", q) == q, f"variable {v['name']}: definition and query differ"

    ds_ref = {"type": "prometheus", "uid": "${datasource}"}
    ids, cells = set(), []
    for p in all_panels(dash):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        assert isinstance(p.get("id"), int) and p["id"] not in ids, f"{where}: missing or duplicate id"
        ids.add(p["id"])
        assert isinstance(p.get("type"), str) and p.get("title"), where
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "hwxy") and g["w"] > 0 and g["h"] > 0, where
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"{where}: wider than the grid"
        cells.append((where, g))
        if p["type"] == "row":
            continue
        assert p.get("datasource") == ds_ref, f"{where}: datasource {p.get('datasource')}"
        targets = p.get("targets")
        assert targets, f"{where}: no targets"
        refs = [t.get("refId") for t in targets]
        assert all(refs) and len(set(refs)) == len(refs), f"{where}: refIds {refs}"
        for t in targets:
            assert t.get("datasource") == ds_ref, f"{where} {t.get('refId')}: datasource"
            assert isinstance(t.get("expr"), str) and t["expr"].strip(), f"{where}: empty expr"
        assert p["type"] in ("timeseries", "stat", "table", "gauge", "bargauge", "state-timeline",
                             "text"), where
    # no two panels on the same grid cells
    taken = {}
    for where, g in cells:
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{where} overlaps {taken[(x, y)]}"
                taken[(x, y)] = where
    for a in dash["annotations"]["list"]:
        if a.get("expr"):
            assert a.get("datasource") == ds_ref, a["name"]

    titles = {p.get("title") for p in all_panels(dash)}
    for want in ("Nodes by state", "Streams active", "Stream opens by result", "Stream open latency",
                 "Front-door failures by status", "SSH connect time", "Probe failures",
                 "Front-door connections against max_clients", "Channel opens pending", "Last reload",
                 "CPU", "Resident memory", "File descriptors", "Nodes"):
        assert want in titles, f"no panel {want!r}"
    table = next(p for p in all_panels(dash) if p["title"] == "Nodes")
    assert table["type"] == "table"
    exprs = " ".join(t["expr"] for t in table["targets"])
    for metric in ("sshtund_node_state", "sshtund_sessions", "sshtund_streams_active",
                   "sshtund_reconnects_total"):
        assert metric in exprs, f"the node table shows no {metric}"


def test_dashboard_expressions_parse():
    """Prometheus's own parser (promtool, on recording rules) reads every
    dashboard expression once Grafana has put its variables in."""
    grafana = {"$__rate_interval": "2m", "$__interval": "1m", "$__range": "6h", "$job": "sshtund",
               "$instance": ".*", "$node": ".*", "${datasource}": "x"}
    rules = []
    for k, (where, expr) in enumerate(dashboard_expressions(load_dashboard())):
        for var, value in grafana.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"{where}: a variable the test does not know: {expr}"
        rules.append({"record": f"dashboard:expr_{k}", "expr": expr})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard-rules.yml")
        with open(path, "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)  # JSON is YAML
        r = subprocess.run([promtool(), "check", "rules", path], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "SUCCESS" in out, out + "\n" + "\n".join(
        f"{k}: {x['expr']}" for k, x in enumerate(rules))


# --- every name against a real daemon ----------------------------------------------------

class Scrape:
    """Sample names and, per sample name, each label's values."""

    def __init__(self, text):
        self.text = text
        self.labels = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", line)
            assert m, f"unparsable sample {line!r}"
            per = self.labels.setdefault(m.group(1), {})
            for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""):
                per.setdefault(lm.group(1), set()).add(lm.group(2))

    @property
    def names(self):
        return set(self.labels)


def scrape(d):
    status, _, body = d.admin_request("GET", "/metrics")
    assert status == 200, (status, body[:300])
    return Scrape(body.decode())


def used_expressions():
    """(where, PromQL) of every alert expression, annotation query and
    dashboard expression."""
    out = []
    for r in alert_rules():
        out.append((f"alert {r['alert']} expr", r["expr"]))
        for key, text in r.get("annotations", {}).items():
            out.extend((f"alert {r['alert']} {key} query", q) for q in template_queries(text))
    out.extend((f"dashboard {w}", e) for w, e in dashboard_expressions(load_dashboard()))
    return out


def _literal_alternatives(regex):
    """'up|degraded' -> ['up', 'degraded']; None for a real pattern."""
    parts = regex.split("|")
    return parts if all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts) else None


def check_names_and_labels(exported, expressions):
    """Problems with the metric names and label matchers 'expressions' use,
    against the scrape 'exported'."""
    problems = []
    for where, expr in expressions:
        used = promql_metric_names(expr)
        for name in sorted(used - NOT_EXPORTED_OK):
            if name not in exported.names:
                problems.append(f"{where}: {name} is not exported")
        # grouping and matching labels: on some series the expression uses
        # (`up` has the target's labels only)
        if used - {"up"} <= exported.names:
            have = set(TARGET_LABELS).union(*(exported.labels[n] for n in used - {"up"}))
            for label in sorted(promql_grouping_labels(expr) - have):
                problems.append(f"{where}: no series it uses has the label {label}")
        for metric, label, op, value in promql_matchers(expr):
            if metric in NOT_EXPORTED_OK or metric not in exported.names or label in TARGET_LABELS:
                continue
            have = exported.labels[metric]
            if label not in have:
                problems.append(f"{where}: {metric} has no label {label} (it has {sorted(have)})")
                continue
            if "$" in value or label in FREE_LABELS:
                continue
            wanted = [value] if op in ("=", "!=") else _literal_alternatives(value)
            for v in wanted or []:
                if v not in have[label]:
                    problems.append(f"{where}: {metric}{{{label}=\"{v}\"}} never occurs "
                                    f"(values: {sorted(have[label])})")
    return problems


def test_every_metric_used_is_exported(env):
    n1 = env.sshd("n1")
    d = env.sshtund([n1])
    d.wait_all_up(30)
    exported = scrape(d)

    problems = check_names_and_labels(exported, used_expressions())
    # the unit tests' series too: a misspelt input series passes them vacuously
    tests = load_yaml_file(RULE_TESTS)
    series = [(f"{RULE_TESTS} {c['name']!r}", s["series"]) for c in tests["tests"]
              for s in c.get("input_series") or []]
    problems += check_names_and_labels(exported, series)
    assert not problems, "\n".join(["names that sshtund does not export:"] + problems)


def test_daemon_wide_alerts_work_without_per_node_series(env):
    """With admin.metrics_per_node = false every alert outside
    NEEDS_PER_NODE still finds its series (a stand-in's `unless` guard names
    the per-node series on purpose), and those in it find none."""
    n1 = env.sshd("n1")
    d = env.sshtund([n1], admin={"metrics_per_node": False})
    d.wait_all_up(30)
    exported = scrape(d)
    assert not any("node" in labels for labels in exported.labels.values()), \
        "per-node series exported with admin.metrics_per_node = false"

    problems = []
    for r in alert_rules():
        expr = re.split(r"\bunless\b", r["expr"])[0]
        missing = sorted(promql_metric_names(expr) - NOT_EXPORTED_OK - exported.names)
        if r["alert"] in NEEDS_PER_NODE:
            if not missing:
                problems.append(f"{r['alert']} is said to need per-node series, but finds all it uses")
        elif missing:
            problems.append(f"{r['alert']}: {', '.join(missing)} not exported without per-node series")
    assert not problems, "\n".join(problems)


# --- installation ------------------------------------------------------------------------

def test_installed_under_datadir():
    """make install puts the rules and the dashboard in $(datadir)/sshtund/,
    as shipped, and make uninstall takes them away."""
    make = tl.make
    with tempfile.TemporaryDirectory(prefix="sshtund-alerts-dest-", dir="/tmp") as dest:
        datadir = tl.make_variables("datadir")["datadir"]
        make("install", f"DESTDIR={dest}", timeout=600)
        share = os.path.join(dest, datadir.lstrip("/"), "sshtund")
        for src in (RULES, DASHBOARD):
            path = os.path.join(share, os.path.basename(src))
            with open(path, "rb") as a, open(src, "rb") as b:
                assert a.read() == b.read(), path
            assert os.stat(path).st_mode & 0o777 == 0o644, path
        make("uninstall", f"DESTDIR={dest}", timeout=600)
        assert not os.path.exists(os.path.join(share, os.path.basename(RULES)))
        assert not os.path.exists(os.path.join(share, os.path.basename(DASHBOARD)))
