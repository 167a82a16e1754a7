#!/usr/bin/python3
"""Checks a scrape of walnotify's /metrics (itest_ops).

  check_metrics.py METRICS [PLUGIN=JSONL ...]

The Prometheus text format line by line (what prometheus_client's parser lets through: junk
after a value, a counter without _total, camelCase), the conventions (walnotify_ prefix, base
units in the name, _total on counters, the labels plugin, table, op), the families walnotify
promises, then prometheus_client's own parse. With PLUGIN=JSONL, the plugin's
walnotify_events_delivered_total per table and op must equal the lines of that jsonl file.
Prints what is wrong and exits 1; silent and 0 when all is well.
"""
import json
import re
import sys
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

NAME = r"walnotify_[a-z][a-z0-9_]*[a-z0-9]"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABELS = r"\{(?:[a-z_]+=" + LABEL_VALUE + r"(?:,[a-z_]+=" + LABEL_VALUE + r")*)?\}"
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf)|NaN)"
SAMPLE = re.compile(r"^(" + NAME + r")(" + LABELS + r")? (" + VALUE + r")$")
HELP = re.compile(r"^# HELP (" + NAME + r") \S.*$")
TYPE = re.compile(r"^# TYPE (" + NAME + r") (counter|gauge|histogram)$")
UNITS = ("_seconds", "_bytes", "_items", "_info", "_total")

# What walnotify promises: family -> (type, label names of its samples).
EXPECTED = {
    "walnotify_events_delivered_total": ("counter", {"plugin", "table", "op"}),
    "walnotify_handle_duration_seconds": ("histogram", {"plugin"}),
    "walnotify_commit_duration_seconds": ("histogram", {"plugin"}),
    "walnotify_flush_duration_seconds": ("histogram", {"plugin"}),
    "walnotify_retries_total": ("counter", {"plugin"}),
    "walnotify_events_skipped_total": ("counter", {"plugin"}),
    "walnotify_dead_letters_total": ("counter", {"plugin"}),
    "walnotify_rewinds_total": ("counter", {"plugin"}),
    "walnotify_acknowledged_position_bytes": ("gauge", set()),
    "walnotify_server_wal_end_bytes": ("gauge", set()),
    "walnotify_lag_bytes": ("gauge", set()),
    "walnotify_oldest_unacknowledged_transaction_age_seconds": ("gauge", set()),
    "walnotify_reconnections_total": ("counter", set()),
    "walnotify_queue_items": ("gauge", set()),
    "walnotify_queue_capacity_items": ("gauge", set()),
    "walnotify_slot_held": ("gauge", set()),
    "walnotify_standby": ("gauge", set()),
    "walnotify_snapshot_pending": ("gauge", set()),
    "walnotify_build_info": ("gauge", {"version", "abi"}),
}

errors = []


def wrong(message):
    errors.append(message)


def family_of(sample, types):
    """The family a sample belongs to: a histogram's _bucket/_sum/_count are its own."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample[: -len(suffix)]
        if sample.endswith(suffix) and types.get(base) == "histogram":
            return base
    return sample


def check_lines(text):
    """Every line is HELP, TYPE or a sample, in the form and the order the format asks."""
    types, helped, seen_samples = {}, set(), set()
    if not text.endswith("\n"):
        wrong("the exposition does not end with a newline")
    for number, line in enumerate(text.splitlines(), 1):
        if m := HELP.match(line):
            helped.add(m.group(1))
        elif m := TYPE.match(line):
            if m.group(1) in types:
                wrong(f"line {number}: a second TYPE for {m.group(1)}")
            if m.group(1) in seen_samples:
                wrong(f"line {number}: TYPE of {m.group(1)} after its samples")
            types[m.group(1)] = m.group(2)
        elif m := SAMPLE.match(line):
            family = family_of(m.group(1), types)
            seen_samples.add(family)
            if family not in types:
                wrong(f"line {number}: sample of {family} without a TYPE before it")
        else:
            wrong(f"line {number}: not a HELP, TYPE or sample line: {line!r}")
    for family in types:
        if family not in helped:
            wrong(f"{family} has no HELP")
    return types


def check_names(types):
    for family, kind in types.items():
        if kind == "counter" and not family.endswith("_total"):
            wrong(f"counter {family} does not end with _total")
        if kind != "counter" and family.endswith("_total"):
            wrong(f"{kind} {family} ends with _total")
        if not family.endswith(UNITS) and kind != "gauge":
            wrong(f"{family} names no unit")
        for unit in ("_milliseconds", "_microseconds", "_ms", "_kilobytes", "_megabytes"):
            if unit in family:
                wrong(f"{family} is not in base units")
    for family, (kind, _) in EXPECTED.items():
        if types.get(family) != kind:
            wrong(f"{family}: type {types.get(family)}, expected {kind}")


def parse(text):
    """prometheus_client's view: family name -> list of samples."""
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
    return families


def check_families(families):
    for name, (kind, labels) in EXPECTED.items():
        # prometheus_client names a counter's family without _total.
        key = name[: -len("_total")] if kind == "counter" else name
        family = families.get(key)
        if family is None:
            wrong(f"prometheus_client finds no {name}")
            continue
        if family.type != kind:
            wrong(f"prometheus_client reads {name} as {family.type}")
        for sample in family.samples:
            got = set(sample.labels) - {"le"}
            if got != labels:
                wrong(f"{sample.name}: labels {sorted(got)}, expected {sorted(labels)}")
            if kind == "counter" and sample.name.endswith("_total") and sample.value < 0:
                wrong(f"{sample.name} is negative")
    for name in ("handle", "commit", "flush"):
        check_histogram(families.get(f"walnotify_{name}_duration_seconds"))


def check_histogram(family):
    """Buckets cumulative, from microseconds to minutes, +Inf equal to _count."""
    if family is None:
        return
    buckets, counts = {}, {}
    for sample in family.samples:
        plugin = sample.labels.get("plugin")
        if sample.name.endswith("_bucket"):
            buckets.setdefault(plugin, []).append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            counts[plugin] = sample.value
    for plugin, rows in buckets.items():
        bounds = [le for le, _ in rows]
        values = [v for _, v in rows]
        if bounds != sorted(bounds) or bounds[-1] != float("inf"):
            wrong(f"{family.name}{{plugin={plugin}}}: bounds not ascending to +Inf")
        if values != sorted(values):
            wrong(f"{family.name}{{plugin={plugin}}}: buckets not cumulative")
        if bounds[0] > 1e-5 or bounds[-2] < 60:
            wrong(f"{family.name}: buckets span {bounds[0]} s to {bounds[-2]} s")
        if values[-1] != counts.get(plugin):
            wrong(f"{family.name}{{plugin={plugin}}}: +Inf {values[-1]} != _count")


def check_against_jsonl(families, plugin, path):
    """Delivered per table and op equals what the jsonl plugin wrote."""
    wrote = Counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            wrote[(event["table"], event["op"])] += 1
    counted = Counter()
    for sample in families["walnotify_events_delivered"].samples:
        if sample.labels["plugin"] == plugin and sample.value:
            counted[(sample.labels["table"], sample.labels["op"])] += int(sample.value)
    if counted != wrote:
        wrong(f"plugin {plugin}: /metrics counts {dict(counted)}, {path} holds {dict(wrote)}")
    handled = sum(wrote.values())
    for sample in families["walnotify_handle_duration_seconds"].samples:
        if sample.name.endswith("_count") and sample.labels["plugin"] == plugin:
            if sample.value != handled:
                wrong(f"plugin {plugin}: {sample.value} handle calls timed, {handled} events")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    types = check_lines(text)
    check_names(types)
    try:
        families = parse(text)
    except ValueError as e:
        wrong(f"prometheus_client cannot parse it: {e}")
        families = {}
    if families:
        check_families(families)
        for argument in sys.argv[2:]:
            plugin, path = argument.split("=", 1)
            check_against_jsonl(families, plugin, path)
    for message in errors:
        print(f"check_metrics: {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
